package main

import (
	"io"
	"testing"
)

func TestParseSettings(t *testing.T) {
	env := map[string]string{"BENCH_REPLICAS": "3", "BALLOTD": "/opt/ballotd"}
	s, ballotd, err := parseSettings(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || ballotd != "/opt/ballotd" || len(s.Replicas) != 1 || s.Replicas[0] != 3 {
		t.Errorf("settings %+v, ballotd %q, %v", s, ballotd, err)
	}
	_, ballotd, err = parseSettings([]string{"-ballotd", "x"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || ballotd != "x" {
		t.Errorf("flag override: ballotd %q, %v", ballotd, err)
	}
	_, ballotd, err = parseSettings(nil, func(string) string { return "" }, io.Discard)
	if err != nil || ballotd != "bin/ballotd" {
		t.Errorf("default: ballotd %q, %v", ballotd, err)
	}
	if _, _, err := parseSettings([]string{"-replicas", "0"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("0 replicas accepted")
	}
}
