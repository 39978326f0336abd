package xlang

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// TestClientRetryRules holds each example client to the rules every Ballot client
// follows, against scripted replicas: NotLeader with an address is followed,
// Unavailable, NotLeader without an address and a dropped connection are retried
// with the same client_id and seq, a new write takes the next seq, and NotFound and
// InvalidArgument are final.
func TestClientRetryRules(t *testing.T) {
	for _, l := range allLangs {
		t.Run(l.name, func(t *testing.T) {
			l.need(t)
			t.Run("write retried with the same client id and seq", func(t *testing.T) {
				a, b := startScripted(t), startScripted(t)
				a.answer(
					&kvapi.Unavailable{Message: "no quorum within the deadline"},
					&kvapi.NotLeader{Message: "no leader is known yet"},
					errDrop,
					&kvapi.NotLeader{LeaderAddr: b.addr, LeaderID: 2, Message: "replica 2 leads"},
				)
				r := l.run(t, nil, "--endpoints", a.addr, "--timeout", "30", "-v", "put", "colour", "blue")
				if r.code != 0 || r.stdout != "OK slot=1 existed=false\n" {
					t.Fatalf("put through Unavailable, NotLeader, a dropped connection and a redirect: %v", r)
				}
				atA, atB := a.received(), b.received()
				if len(atA) != 4 || len(atB) != 1 {
					t.Fatalf("replica a got %d calls (want 4: three retried, one redirected), b got %d (want 1)\na: %+v\nb: %+v",
						len(atA), len(atB), atA, atB)
				}
				checkOneWrite(t, append(atA, atB...), "put", "colour")
				if v, _ := b.value("colour"); string(v) != "blue" {
					t.Errorf("the leader stored %q, want %q", v, "blue")
				}
			})
			t.Run("delete follows NotLeader", func(t *testing.T) {
				a, b := startScripted(t), startScripted(t)
				b.set("colour", []byte("blue"))
				a.answer(&kvapi.NotLeader{LeaderAddr: b.addr, LeaderID: 2})
				r := l.run(t, nil, "--endpoints", a.addr, "--timeout", "30", "delete", "colour")
				if r.code != 0 || r.stdout != "OK slot=1 existed=true\n" {
					t.Fatalf("delete redirected to the leader: %v", r)
				}
				checkOneWrite(t, append(a.received(), b.received()...), "remove", "colour")
				if _, ok := b.value("colour"); ok {
					t.Error("the leader still holds the deleted key")
				}
			})
			t.Run("each new write takes the next seq", func(t *testing.T) {
				a := startScripted(t)
				a.answer(nil, &kvapi.Unavailable{Message: "leadership changed"})
				r := l.run(t, nil, "--endpoints", a.addr, "--timeout", "30", "bench-put", "3")
				if r.code != 0 {
					t.Fatalf("bench-put 3: %v", r)
				}
				calls := a.received()
				wantKeys := []string{"bench/warm-up", "bench/0", "bench/0", "bench/1", "bench/2"}
				if len(calls) != len(wantKeys) {
					t.Fatalf("got %d calls, want %d: %+v", len(calls), len(wantKeys), calls)
				}
				first := calls[0].seq
				for i, c := range calls {
					// The third call retries the second write: same seq.
					wantSeq := first + []int64{0, 1, 1, 2, 3}[i]
					if c.key != wantKeys[i] || c.seq != wantSeq || c.clientID != calls[0].clientID {
						t.Errorf("call %d: key %q client_id %d seq %d; want key %q client_id %d seq %d",
							i, c.key, c.clientID, c.seq, wantKeys[i], calls[0].clientID, wantSeq)
					}
				}
				if first < 1 || calls[0].clientID < 1 {
					t.Errorf("first write: client_id %d seq %d; both must be positive", calls[0].clientID, first)
				}
			})
			t.Run("InvalidArgument and NotFound are final", func(t *testing.T) {
				a := startScripted(t)
				a.answer(&kvapi.InvalidArgument{Message: "value is 9 bytes; the limit is 8 bytes", Field: "value", Limit: 8})
				r := l.run(t, nil, "--endpoints", a.addr, "--timeout", "30", "put", "colour", "blue-blue")
				if r.code != 3 || !strings.HasPrefix(r.stderr, "InvalidArgument: value is 9 bytes; the limit is 8 bytes") {
					t.Errorf("put answered InvalidArgument: %v; want exit 3 and the message on stderr", r)
				}
				r = l.run(t, nil, "--endpoints", a.addr, "--timeout", "30", "get", "nothing-here")
				if r.code != 1 || !strings.HasPrefix(r.stderr, "NotFound:") || !strings.Contains(r.stderr, "nothing-here") {
					t.Errorf("get of a missing key: %v; want exit 1 and NotFound naming the key", r)
				}
				if calls := a.received(); len(calls) != 2 {
					t.Errorf("the replica got %d calls, want 2 (one each, no retry): %+v", len(calls), calls)
				}
			})
		})
	}
}

// checkOneWrite fails the test unless every call is the same write: method on
// key with one positive client id and one positive seq.
func checkOneWrite(t *testing.T, calls []call, method, key string) {
	t.Helper()
	if len(calls) == 0 {
		t.Fatal("no calls")
	}
	want := calls[0]
	if want.clientID < 1 || want.seq < 1 {
		t.Errorf("client_id %d seq %d; both must be positive", want.clientID, want.seq)
	}
	for i, c := range calls {
		if c.method != method || c.key != key || c.clientID != want.clientID || c.seq != want.seq {
			t.Errorf("call %d is %s; want %s", i, describe(c), describe(call{method, want.clientID, want.seq, key}))
		}
	}
}

func describe(c call) string {
	return fmt.Sprintf("%s(client_id=%d, seq=%d, key=%q)", c.method, c.clientID, c.seq, c.key)
}
