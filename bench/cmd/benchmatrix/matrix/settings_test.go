package matrix

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseSettings(t *testing.T) {
	env := map[string]string{"BENCH_REPLICAS": "3", "BENCH_CLIENTS": "16, 64", "BENCH_VALUES": "100", "BENCH_OPS": "PUT,stale",
		"BENCH_DURATION": "2s"}
	s, err := ParseSettings("test", nil, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Replicas) != 1 || s.Replicas[0] != 3 || len(s.Clients) != 2 || s.Clients[1] != 64 ||
		strings.Join(s.Ops, ",") != "put,stale" || s.Duration != 2*time.Second || s.Warmup != time.Second {
		t.Errorf("settings %+v", s)
	}
	// A flag overrides the environment.
	s, err = ParseSettings("test", []string{"-replicas", "1,5"}, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil || len(s.Replicas) != 2 || s.Replicas[1] != 5 {
		t.Errorf("flag override: %+v, %v", s.Replicas, err)
	}
	for _, bad := range []map[string]string{
		{"BENCH_REPLICAS": "0"}, {"BENCH_CLIENTS": "x"}, {"BENCH_OPS": "scan"}, {"BENCH_DURATION": "-1s"}, {"BENCH_VALUES": ","},
	} {
		if _, err := ParseSettings("test", nil, func(k string) string { return bad[k] }, io.Discard, nil); err == nil {
			t.Errorf("settings from %v accepted", bad)
		}
	}
	// The defaults are the full matrix.
	s, err = ParseSettings("test", nil, func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &Matrix{S: s}
	if n := len(m.Cells()); n != 3*4*2*3 {
		t.Errorf("default matrix has %d cells, want 72", n)
	}
}

func TestParseSettingsExtraFlags(t *testing.T) {
	var server *string
	_, err := ParseSettings("test", []string{"-server", "x", "-clients", "2"}, func(string) string { return "" }, io.Discard,
		func(fs *flag.FlagSet) { server = fs.String("server", "", "") })
	if err != nil || *server != "x" {
		t.Errorf("extra flag: %q, %v", *server, err)
	}
	if _, err := ParseSettings("test", []string{"-server", "x"}, func(string) string { return "" }, io.Discard, nil); err == nil {
		t.Error("an unknown flag was accepted")
	}
}
