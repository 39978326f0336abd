package xlang

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

var writeOK = regexp.MustCompile(`^OK slot=([0-9]+) existed=(true|false)\n$`)

// wantWrite fails the test unless r is a successful put or delete that reports
// existed.
func wantWrite(t *testing.T, what string, r result, existed bool) {
	t.Helper()
	m := writeOK.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || m[2] != strconv.FormatBool(existed) {
		t.Fatalf("%s: %v; want exit 0 and \"OK slot=N existed=%t\"", what, r, existed)
	}
}

// wantValue fails the test unless r is a successful get that printed value.
func wantValue(t *testing.T, what string, r result, value []byte) {
	t.Helper()
	if r.code != 0 || r.stdout != string(value)+"\n" {
		t.Fatalf("%s: %v; want exit 0 and %q", what, r, string(value)+"\n")
	}
}

// wantNotFound fails the test unless r is a get that ended in NotFound for key.
func wantNotFound(t *testing.T, what string, r result, key string) {
	t.Helper()
	if r.code != 1 || !strings.HasPrefix(r.stderr, "NotFound:") || !strings.Contains(r.stderr, key) {
		t.Fatalf("%s: %v; want exit 1 and \"NotFound: ... %s ...\" on stderr", what, r, key)
	}
}

// liveArgs returns the arguments of a client run against the live cluster at eps:
// a generous deadline, so that an election on a loaded machine is waited out.
func liveArgs(eps string, args ...string) []string {
	return append([]string{"--endpoints", eps, "--timeout", "20"}, args...)
}

func newGoClient(t *testing.T, c *cluster) *client.Client {
	t.Helper()
	goc, err := client.New(client.Config{Endpoints: c.allAddrs(), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { goc.Close() })
	return goc
}

// TestLiveCluster runs the example clients and the Go client against one
// three-replica cluster.
func TestLiveCluster(t *testing.T) {
	c := startCluster(t, 3)
	goc := newGoClient(t, c)
	ctx := context.Background()

	t.Run("one key through python, c++, go and java", func(t *testing.T) {
		langPython.need(t)
		langCpp.need(t)
		// A follower first: every client has to follow NotLeader to the leader.
		eps := c.endpoints(c.follower(c.waitLeader(t)))
		const key = "xlang/colour"
		fromPython := []byte("from python: \x00\xff, \u2602 and a newline\n")

		wantWrite(t, "python put", langPython.run(t, fromPython, liveArgs(eps, "put", key, "-")...), false)
		wantValue(t, "c++ get of python's value", langCpp.run(t, nil, liveArgs(eps, "get", key)...), fromPython)

		res, err := goc.Put(ctx, key, []byte("from go"))
		if err != nil || !res.Existed {
			t.Fatalf("go put over python's value: %+v, %v; want existed", res, err)
		}
		wantValue(t, "python get of go's value", langPython.run(t, nil, liveArgs(eps, "get", key)...), []byte("from go"))
		t.Run("java reads go's value", func(t *testing.T) {
			langJava.need(t)
			wantValue(t, "java get of go's value", langJava.run(t, nil, liveArgs(eps, "get", key)...), []byte("from go"))
		})

		wantWrite(t, "c++ delete", langCpp.run(t, nil, liveArgs(eps, "delete", key)...), true)
		if v, err := goc.Get(ctx, key); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("go get after the c++ delete: %q, %v; want not found", v, err)
		}
		for _, l := range allLangs {
			t.Run(l.name+" sees the delete", func(t *testing.T) {
				l.need(t)
				wantNotFound(t, l.name+" get after delete", l.run(t, nil, liveArgs(eps, "get", key)...), key)
			})
		}
	})

	t.Run("follows NotLeader", func(t *testing.T) {
		for _, l := range allLangs {
			t.Run(l.name, func(t *testing.T) {
				l.need(t)
				key := "xlang/redirect/" + l.name
				// Only a follower's address: the write succeeds only through the
				// leader's address in NotLeader. Should leadership move during the
				// run, the redirect cannot be told apart, so try again.
				for attempt := 1; ; attempt++ {
					leader := c.waitLeader(t)
					follower := c.reps[c.follower(leader)-1]
					r := l.run(t, nil, liveArgs(follower.clientAddr, "-v", "put", key, l.name)...)
					wantWrite(t, l.name+" put through a follower", r, attempt > 1)
					redirect := fmt.Sprintf("NotLeader from %s; following to %s", follower.clientAddr, c.reps[leader-1].clientAddr)
					if strings.Contains(r.stderr, redirect) {
						break
					}
					if now, err := c.leader(); (err == nil && now == leader) || attempt == 3 {
						t.Fatalf("%s put through follower %d: no %q on stderr:\n%s", l.name, follower.id, redirect, r.stderr)
					}
					t.Logf("leadership moved from replica %d during the run; trying again", leader)
				}
				if v, err := goc.Get(ctx, key); err != nil || string(v) != l.name {
					t.Fatalf("go get of %s's write: %q, %v", l.name, v, err)
				}
			})
		}
	})

	t.Run("declared exceptions", func(t *testing.T) {
		eps := strings.Join(c.allAddrs(), ",")
		tooLongKey := strings.Repeat("k", kvapi.MAX_KEY_BYTES+1)
		tooBigValue := bytes.Repeat([]byte{'v'}, kvapi.MAX_VALUE_BYTES+1)
		for _, l := range allLangs {
			t.Run(l.name, func(t *testing.T) {
				l.need(t)
				missing := "xlang/missing/" + l.name
				wantNotFound(t, "get of a missing key", l.run(t, nil, liveArgs(eps, "get", missing)...), missing)

				big := "xlang/big/" + l.name
				for _, tc := range []struct {
					what       string
					args       []string
					stdin      []byte
					wantInText []string
				}{
					{"put of a value over MAX_VALUE_BYTES", []string{"put", big, "-"}, tooBigValue,
						[]string{strconv.Itoa(kvapi.MAX_VALUE_BYTES), "field value"}},
					{"put of a key over MAX_KEY_BYTES", []string{"put", tooLongKey, "v"}, nil,
						[]string{strconv.Itoa(kvapi.MAX_KEY_BYTES), "field key"}},
					{"put of an empty key", []string{"put", "", "v"}, nil,
						[]string{"key is empty", "field key"}},
				} {
					r := l.run(t, tc.stdin, liveArgs(eps, tc.args...)...)
					ok := r.code == 3 && strings.HasPrefix(r.stderr, "InvalidArgument: ")
					for _, s := range tc.wantInText {
						ok = ok && strings.Contains(r.stderr, s)
					}
					if !ok {
						t.Errorf("%s: %v; want exit 3 and InvalidArgument naming %q", tc.what, r, tc.wantInText)
					}
				}
				if v, err := goc.Get(ctx, big); !errors.Is(err, client.ErrNotFound) {
					t.Errorf("the oversized value was stored: get gives %d bytes, %v", len(v), err)
				}
			})
		}
	})

	t.Run("put latency", func(t *testing.T) {
		n := 200
		if s := os.Getenv("BALLOT_XLANG_BENCH"); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n < 1 {
				t.Fatalf("BALLOT_XLANG_BENCH=%q: want a positive number of puts", s)
			}
		}
		eps := c.endpoints(c.waitLeader(t))
		line := regexp.MustCompile(`^bench-put: n=([0-9]+) median_us=([0-9]+) p99_us=([0-9]+) `)
		for _, l := range allLangs {
			t.Run(l.name, func(t *testing.T) {
				l.need(t)
				r := l.run(t, nil, liveArgs(eps, "bench-put", strconv.Itoa(n))...)
				m := line.FindStringSubmatch(r.stdout)
				if r.code != 0 || m == nil || m[1] != strconv.Itoa(n) {
					t.Fatalf("bench-put %d: %v", n, r)
				}
				median, _ := strconv.Atoi(m[2])
				p99, _ := strconv.Atoi(m[3])
				if median <= 0 || p99 < median {
					t.Fatalf("bench-put %d: median %dus, p99 %dus", n, median, p99)
				}
				// The puts happened: the last one is readable.
				last := fmt.Sprintf("bench/%d", n-1)
				if v, err := goc.Get(ctx, last); err != nil || !bytes.Equal(v, bytes.Repeat([]byte{'v'}, 100)) {
					t.Fatalf("go get %s after %s's bench-put: %q, %v", last, l.name, v, err)
				}
				t.Logf("%s: median put round trip %.3f ms, p99 %.3f ms, over %d puts", l.name, float64(median)/1e3, float64(p99)/1e3, n)
			})
		}
		t.Run("go", func(t *testing.T) {
			value := bytes.Repeat([]byte{'g'}, 100)
			if _, err := goc.Put(ctx, "bench/warm-up", value); err != nil {
				t.Fatal(err)
			}
			took := make([]time.Duration, n)
			for i := range took {
				start := time.Now()
				if _, err := goc.Put(ctx, fmt.Sprintf("bench/%d", i), value); err != nil {
					t.Fatalf("put %d: %v", i, err)
				}
				took[i] = time.Since(start)
			}
			slices.Sort(took)
			t.Logf("go (client library, test binary built with -race when run with it): median put round trip %.3f ms, p99 %.3f ms, over %d puts",
				float64(median(took))/1e6, float64(took[min(n-1, n*99/100)])/1e6, n)
		})
	})
}

// median returns the median of sorted durations.
func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
