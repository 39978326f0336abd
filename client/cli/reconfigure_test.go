package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

// fakeCluster is fake replicas 1..n acting as one cluster: the leader commits
// reconfigure calls and the members old and new follow each change at once
// (a lagging one only after some status calls); the others answer reconfigure
// with NotLeader naming the leader. A removed leader hands over to the lowest
// remaining id.
type fakeCluster struct {
	t   *testing.T
	srv []*kvtest.Server // srv[id-1] is replica id

	mu sync.Mutex // guards every field below
	// leader is the id of the replica that commits changes.
	leader uint64
	// peer is each replica's peer address as it reports it (by id).
	peer map[uint64]string
	// lag is, per replica, how many more status calls it answers before
	// following the last change; -1 never.
	lag map[uint64]int
	// pending is the change a lagging replica has yet to follow.
	pending map[uint64]kvapi.ReconfigureResult_
	// calls lists the members of every reconfigure call a leader received;
	// failAt is the one (1-based) that answers Unavailable without a change, 0
	// for none.
	calls  []string
	failAt int
	// behind lists, for each call a leader received, the members that did not
	// yet follow its configuration.
	behind [][]uint64
}

// startCluster starts n fake replicas whose committed configuration (epoch 1)
// is members, led by leader; the others have none, as new replicas.
func startCluster(t *testing.T, n int, leader uint64, members ...uint64) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{t: t, leader: leader, peer: map[uint64]string{},
		lag: map[uint64]int{}, pending: map[uint64]kvapi.ReconfigureResult_{}}
	for i := range n {
		id := uint64(i + 1)
		s := kvtest.Start(t)
		fc.srv = append(fc.srv, s)
		fc.peer[id] = fmt.Sprintf("127.0.0.1:%d", 9000+id)
		s.SetHook(func(_ context.Context, c kvtest.Call) error { return fc.hook(id, c) })
		s.OnReconfigure(fc.follow)
	}
	var addrs []*kvapi.ReplicaAddress
	for _, id := range members {
		addrs = append(addrs, fc.address(id))
	}
	for _, id := range members {
		fc.srv[id-1].SetConfiguration(1, 0, addrs)
	}
	fc.mu.Lock()
	fc.setStatuses()
	fc.mu.Unlock()
	return fc
}

func (fc *fakeCluster) addr(id uint64) string { return fc.srv[id-1].Addr() }

func (fc *fakeCluster) address(id uint64) *kvapi.ReplicaAddress {
	return &kvapi.ReplicaAddress{ID: int64(id), ClientAddr: fc.addr(id), PeerAddr: fc.peer[id]}
}

// setStatuses has every replica report its id, peer address and the leader.
// fc.mu is held.
func (fc *fakeCluster) setStatuses() {
	for i, s := range fc.srv {
		id := uint64(i + 1)
		s.SetStatus(&kvapi.ReplicaStatus{ID: int64(id), PeerAddr: fc.peer[id],
			IsLeader: id == fc.leader, LeaderID: int64(fc.leader)})
	}
}

func (fc *fakeCluster) hook(id uint64, c kvtest.Call) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	switch c.Method {
	case "reconfigure":
		if id != fc.leader {
			return &kvapi.NotLeader{LeaderAddr: fc.addr(fc.leader), LeaderID: int64(fc.leader)}
		}
		fc.calls = append(fc.calls, c.Members)
		epoch, members := fc.srv[id-1].Configuration()
		var behind []uint64
		for _, m := range members {
			if e, _ := fc.srv[m.ID-1].Configuration(); e != epoch {
				behind = append(behind, uint64(m.ID))
			}
		}
		fc.behind = append(fc.behind, behind)
		if len(fc.calls) == fc.failAt {
			return &kvapi.Unavailable{Message: "no quorum for the change"}
		}
	case "status":
		if n, ok := fc.lag[id]; ok && n > 0 {
			fc.lag[id]--
		} else if p, ok := fc.pending[id]; ok && n == 0 {
			delete(fc.pending, id)
			fc.srv[id-1].SetConfiguration(p.Epoch, p.Slot, p.Members)
		}
	}
	return nil
}

// follow makes the old and new members follow a change the leader committed.
func (fc *fakeCluster) follow(res kvapi.ReconfigureResult_) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	_, old := fc.srv[fc.leader-1].Configuration()
	for _, m := range slices.Concat(old, res.Members) {
		id := uint64(m.ID)
		if _, lagging := fc.lag[id]; lagging {
			fc.pending[id] = res
			continue
		}
		fc.srv[id-1].SetConfiguration(res.Epoch, res.Slot, res.Members)
	}
	if !slices.ContainsFunc(res.Members, func(m *kvapi.ReplicaAddress) bool { return uint64(m.ID) == fc.leader }) {
		fc.leader = uint64(res.Members[0].ID)
		fc.setStatuses()
	}
}

// setLag has replica id answer n status calls before following each change
// (-1: never).
func (fc *fakeCluster) setLag(id uint64, n int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.lag[id] = n
}

func (fc *fakeCluster) failCall(n int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.failAt = n
}

// file writes a replicas file listing these replicas.
func (fc *fakeCluster) file(ids ...uint64) string {
	fc.t.Helper()
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%d %s %s\n", id, fc.addr(id), fc.peer[id])
	}
	path := filepath.Join(fc.t.TempDir(), "replicas.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fc.t.Fatal(err)
	}
	return path
}

// sent lists the member ids of every reconfigure call a leader received.
func (fc *fakeCluster) sent() []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return slices.Clone(fc.calls)
}

// checkCaughtUp fails the test if a step was asked for while a member had not
// followed the configuration in force.
func (fc *fakeCluster) checkCaughtUp(t *testing.T) {
	t.Helper()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for i, b := range fc.behind {
		if len(b) > 0 {
			t.Errorf("reconfigure call %d (%s) came while members %v were behind", i+1, fc.calls[i], b)
		}
	}
}

// committed is what replica id follows, as "epoch 3: 1,2,3".
func (fc *fakeCluster) committed(id uint64) string {
	epoch, ms := fc.srv[id-1].Configuration()
	var ids []string
	for _, m := range ms {
		ids = append(ids, fmt.Sprint(m.ID))
	}
	return fmt.Sprintf("epoch %d: %s", epoch, strings.Join(ids, ","))
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

func checkLines(t *testing.T, got string, want ...string) {
	t.Helper()
	if g := lines(got); !slices.Equal(g, want) {
		t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func TestReconfigureAddsTwo(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 5, 1, 1, 2, 3)
	r := run(t, "", "--replicas", fc.file(1, 2, 3, 4, 5), "reconfigure")
	if r.code != 0 {
		t.Fatalf("reconfigure: %v", r)
	}
	checkLines(t, r.stdout,
		fmt.Sprintf("epoch 2: added 4 (%s) -> members 1,2,3,4", fc.addr(4)),
		fmt.Sprintf("epoch 3: added 5 (%s) -> members 1,2,3,4,5", fc.addr(5)),
		"configuration epoch 3: members 1,2,3,4,5")
	if got := fc.sent(); !slices.Equal(got, []string{"1,2,3,4", "1,2,3,4,5"}) {
		t.Errorf("reconfigure calls %v", got)
	}
	for id := uint64(1); id <= 5; id++ {
		if got := fc.committed(id); got != "epoch 3: 1,2,3,4,5" {
			t.Errorf("replica %d follows %s", id, got)
		}
	}
	// The addresses sent are the file's.
	sent := fc.srv[0].Reconfigures()
	if last := sent[len(sent)-1]; *last[4] != *fc.address(5) {
		t.Errorf("member 5 sent as %v, want %v", last[4], fc.address(5))
	}
}

func TestReconfigureRemovesTwoWithTheLeader(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 5, 5, 1, 2, 3, 4, 5)
	r := run(t, "", "--replicas", fc.file(1, 2, 3), "reconfigure", "--current", fc.file(1, 2, 3, 4, 5))
	if r.code != 0 {
		t.Fatalf("reconfigure: %v", r)
	}
	checkLines(t, r.stdout,
		"epoch 2: removed 4 -> members 1,2,3,5",
		"epoch 3: removed 5 -> members 1,2,3",
		"configuration epoch 3: members 1,2,3")
	if got := fc.committed(1); got != "epoch 3: 1,2,3" {
		t.Errorf("replica 1 follows %s", got)
	}
}

// Removing the leader is a step like any other; the next step finds the new
// leader through NotLeader.
func TestReconfigureAfterRemovingTheLeader(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 6, 1, 1, 2, 3)
	r := run(t, "", "--replicas", fc.file(2, 3, 4, 5, 6), "reconfigure", "--current", fc.file(1, 2, 3))
	if r.code != 0 {
		t.Fatalf("reconfigure: %v", r)
	}
	checkLines(t, r.stdout,
		fmt.Sprintf("epoch 2: added 4 (%s) -> members 1,2,3,4", fc.addr(4)),
		"epoch 3: removed 1 -> members 2,3,4",
		fmt.Sprintf("epoch 4: added 5 (%s) -> members 2,3,4,5", fc.addr(5)),
		fmt.Sprintf("epoch 5: added 6 (%s) -> members 2,3,4,5,6", fc.addr(6)),
		"configuration epoch 5: members 2,3,4,5,6")
	if n := len(fc.srv[0].Reconfigures()); n != 3 {
		t.Errorf("the removed leader got %d reconfigure calls, want 3 (two steps, then one NotLeader)", n)
	}
}

// Replacing every member alternates additions and removals; the members the new
// file drops are found through --current, and an added member that is behind
// is waited for before the next step.
func TestReconfigureReplacesAll(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 6, 2, 1, 2, 3)
	fc.setLag(4, 3)
	r := run(t, "", "--replicas", fc.file(4, 5, 6), "reconfigure", "--current", fc.file(1, 2, 3))
	if r.code != 0 {
		t.Fatalf("reconfigure: %v", r)
	}
	checkLines(t, r.stdout,
		fmt.Sprintf("epoch 2: added 4 (%s) -> members 1,2,3,4", fc.addr(4)),
		"epoch 3: removed 1 -> members 2,3,4",
		fmt.Sprintf("epoch 4: added 5 (%s) -> members 2,3,4,5", fc.addr(5)),
		"epoch 5: removed 3 -> members 2,4,5",
		fmt.Sprintf("epoch 6: added 6 (%s) -> members 2,4,5,6", fc.addr(6)),
		"epoch 7: removed 2 -> members 4,5,6",
		"configuration epoch 7: members 4,5,6")
	for _, want := range []string{
		fmt.Sprintf("waiting for replica 4 (%s) to catch up with epoch 2, slot 1", fc.addr(4)),
		fmt.Sprintf("replica 4 (%s) caught up: epoch 2", fc.addr(4)),
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q lacks %q", r.stderr, want)
		}
	}
	// Replica 4 followed epoch 2 before 1 was removed.
	fc.checkCaughtUp(t)
	if got := fc.committed(4); got != "epoch 7: 4,5,6" {
		t.Errorf("replica 4 follows %s", got)
	}

	// Without the old members' addresses there is no list to send.
	fc2 := startCluster(t, 6, 1, 1, 2, 3)
	r = run(t, "", "--replicas", fc2.file(1, 5, 6), "reconfigure")
	if r.code != 3 || !strings.Contains(r.stderr, "members 2,3") || !strings.Contains(r.stderr, "--current") {
		t.Errorf("reconfigure without the old members' addresses: %v; want exit 3 naming them and --current", r)
	}
	if got := fc2.sent(); len(got) != 0 {
		t.Errorf("reconfigure calls %v, want none", got)
	}
}

// A member whose peer address changed is removed and added back.
func TestReconfigureAddressChange(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 3, 1, 1, 2, 3)
	path := fc.file(1, 2, 3)
	fc.mu.Lock()
	fc.peer[2] = "127.0.0.1:9902" // what replica 2 says it runs with
	fc.setStatuses()
	fc.mu.Unlock()
	r := run(t, "", "--replicas", path, "reconfigure")
	if r.code != 0 {
		t.Fatalf("reconfigure: %v", r)
	}
	checkLines(t, r.stdout,
		"epoch 2: removed 2 -> members 1,3",
		fmt.Sprintf("epoch 3: added 2 (%s) -> members 1,2,3", fc.addr(2)),
		"configuration epoch 3: members 1,2,3")
	sent := fc.srv[0].Reconfigures()
	if len(sent) != 2 || sent[1][1].PeerAddr != "127.0.0.1:9002" {
		t.Errorf("reconfigure calls %v; want replica 2 added back with the file's peer address", sent)
	}
}

// Replacing one member: its replacement first, then the old member, whose
// addresses --current gives. Without them no list can name the old member, so
// it goes first, and a note says so.
func TestReconfigureReplacesOne(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 4, 1, 1, 2, 3)
	path := fc.file(1, 2, 4)
	r := run(t, "", "--replicas", path, "reconfigure", "--current", fc.file(1, 2, 3))
	if r.code != 0 {
		t.Fatalf("reconfigure: %v", r)
	}
	checkLines(t, r.stdout,
		fmt.Sprintf("epoch 2: added 4 (%s) -> members 1,2,3,4", fc.addr(4)),
		"epoch 3: removed 3 -> members 1,2,4",
		"configuration epoch 3: members 1,2,4")
	fc.checkCaughtUp(t)

	fc = startCluster(t, 4, 1, 1, 2, 3)
	path = fc.file(1, 2, 4)
	r = run(t, "", "--replicas", path, "reconfigure")
	if r.code != 0 {
		t.Fatalf("reconfigure without --current: %v", r)
	}
	checkLines(t, r.stdout,
		"epoch 2: removed 3 -> members 1,2",
		fmt.Sprintf("epoch 3: added 4 (%s) -> members 1,2,4", fc.addr(4)),
		"configuration epoch 3: members 1,2,4")
	if want := "replica 3 of configuration 1 is not in " + path; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--current") {
		t.Errorf("stderr %q lacks %q and the --current hint", r.stderr, want)
	}

	// Removing one member needs no addresses but those of the members that stay.
	fc = startCluster(t, 3, 1, 1, 2, 3)
	r = run(t, "", "--replicas", fc.file(1, 2), "reconfigure")
	if r.code != 0 || strings.Contains(r.stderr, "removed first") {
		t.Fatalf("reconfigure removing one member: %v; want no note on the order", r)
	}
	checkLines(t, r.stdout, "epoch 2: removed 3 -> members 1,2", "configuration epoch 2: members 1,2")
}

func TestReconfigureNothingToChange(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 3, 1, 1, 2, 3)
	r := run(t, "", "--replicas", fc.file(1, 2, 3), "reconfigure")
	if r.code != 0 || r.stdout != "nothing to change: epoch 1, members 1,2,3\n" {
		t.Errorf("reconfigure to the committed members: %v", r)
	}
	if got := fc.sent(); len(got) != 0 {
		t.Errorf("reconfigure calls %v, want none", got)
	}
}

func TestReconfigureDryRun(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 4, 1, 1, 2, 3)
	current := fc.file(1, 2, 3)
	r := run(t, "", "--replicas", fc.file(1, 2, 4), "reconfigure", "--dry-run", "--current", current)
	if r.code != 0 {
		t.Fatalf("reconfigure --dry-run: %v", r)
	}
	checkLines(t, r.stdout,
		fmt.Sprintf("step 1 of 2: add 4 (%s) -> members 1,2,3,4", fc.addr(4)),
		"step 2 of 2: remove 3 -> members 1,2,4",
		"dry run: from epoch 1, members 1,2,3; nothing was changed")

	r = run(t, "", "--replicas", fc.file(1, 2, 4), "reconfigure", "--dry-run", "--json", "--current", current)
	var steps []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &steps); err != nil || r.code != 0 || len(steps) != 2 {
		t.Fatalf("reconfigure --dry-run --json: %v (%v)", r, err)
	}
	if steps[1]["action"] != "remove" || steps[1]["id"] != 3.0 || steps[1]["epoch"] != nil {
		t.Errorf("dry-run step 2 = %v", steps[1])
	}
	if got := fc.sent(); len(got) != 0 {
		t.Errorf("--dry-run sent reconfigure calls %v", got)
	}
	if got := fc.committed(1); got != "epoch 1: 1,2,3" {
		t.Errorf("after --dry-run, replica 1 follows %s", got)
	}
}

func TestReconfigureJSON(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 4, 1, 1, 2, 3)
	r := run(t, "", "--replicas", fc.file(1, 2, 4), "reconfigure", "--json", "--current", fc.file(1, 2, 3))
	if r.code != 0 {
		t.Fatalf("reconfigure --json: %v", r)
	}
	var steps []stepJSON
	if err := json.Unmarshal([]byte(r.stdout), &steps); err != nil {
		t.Fatalf("reconfigure --json printed invalid JSON: %v\n%s", err, r.stdout)
	}
	want := []stepJSON{
		{Action: "add", ID: 4, ClientAddr: fc.addr(4), PeerAddr: fc.peer[4], Members: []uint64{1, 2, 3, 4}, Epoch: 2, Slot: 1},
		{Action: "remove", ID: 3, ClientAddr: fc.addr(3), PeerAddr: fc.peer[3], Members: []uint64{1, 2, 4}, Epoch: 3, Slot: 2},
	}
	if fmt.Sprint(steps) != fmt.Sprint(want) {
		t.Errorf("steps %+v, want %+v", steps, want)
	}
}

// A failed step names itself and says how to resume; running again starts from
// what the cluster committed and finishes the job.
func TestReconfigureFailureMidwayAndResume(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 6, 1, 1, 2, 3)
	fc.failCall(3)
	path := fc.file(4, 5, 6)
	current := fc.file(1, 2, 3)
	r := run(t, "", "--replicas", path, "reconfigure", "--current", current)
	if r.code != 3 {
		t.Fatalf("reconfigure with step 3 failing: %v; want exit 3", r)
	}
	checkLines(t, r.stdout,
		fmt.Sprintf("epoch 2: added 4 (%s) -> members 1,2,3,4", fc.addr(4)),
		"epoch 3: removed 2 -> members 1,3,4")
	for _, want := range []string{
		fmt.Sprintf("step 3 of 6 (add 5 (%s) -> members 1,3,4,5) failed", fc.addr(5)),
		"no quorum for the change",
		"run 'ballot reconfigure' again",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q lacks %q", r.stderr, want)
		}
	}

	r = run(t, "", "--replicas", path, "reconfigure", "--current", current)
	if r.code != 0 {
		t.Fatalf("reconfigure again: %v", r)
	}
	checkLines(t, r.stdout,
		fmt.Sprintf("epoch 4: added 5 (%s) -> members 1,3,4,5", fc.addr(5)),
		"epoch 5: removed 3 -> members 1,4,5",
		fmt.Sprintf("epoch 6: added 6 (%s) -> members 1,4,5,6", fc.addr(6)),
		"epoch 7: removed 1 -> members 4,5,6",
		"configuration epoch 7: members 4,5,6")
	if got := fc.sent(); len(got) != 7 {
		t.Errorf("reconfigure calls %v, want 7: 2 made, 1 failed, 4 made on resuming", got)
	}
}

func TestReconfigureCatchUpTimeout(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 4, 1, 1, 2, 3)
	fc.setLag(4, -1)
	path, current := fc.file(1, 2, 4), fc.file(1, 2, 3)
	r := run(t, "", "--replicas", path, "reconfigure", "--catch-up-timeout", "300ms", "--current", current)
	if r.code != 3 {
		t.Fatalf("reconfigure with a member that never catches up: %v; want exit 3", r)
	}
	checkLines(t, r.stdout, fmt.Sprintf("epoch 2: added 4 (%s) -> members 1,2,3,4", fc.addr(4)))
	for _, want := range []string{
		"step 1 of 2", "committed at epoch 2",
		fmt.Sprintf("replica 4 (%s) did not catch up with epoch 2, slot 1 within 300ms", fc.addr(4)),
		"run 'ballot reconfigure' again",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q lacks %q", r.stderr, want)
		}
	}
	if got := fc.sent(); len(got) != 1 {
		t.Errorf("reconfigure calls %v; the removal must wait for the new member", got)
	}

	// Running again waits for it before removing anything.
	r = run(t, "", "--replicas", path, "reconfigure", "--catch-up-timeout", "300ms", "--current", current)
	if r.code != 3 || !strings.Contains(r.stderr, "before step 1 of 1 (remove 3") {
		t.Errorf("reconfigure again with member 4 behind: %v; want a failure before the removal", r)
	}
	if got := fc.sent(); len(got) != 1 {
		t.Errorf("reconfigure calls %v after running again; want none more", got)
	}
}

func TestReconfigureUsage(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 3, 1, 1, 2, 3)
	path := fc.file(1, 2, 3)
	for _, args := range [][]string{
		{"--replicas", path, "reconfigure", "extra"},
		{"--replicas", path, "reconfigure", "--catch-up-timeout", "0s"},
		{"--replicas", path, "--endpoints", fc.addr(1), "reconfigure"},
	} {
		r := run(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "ballot reconfigure --help") {
			t.Errorf("ballot %v: %v; want a usage error", args, r)
		}
	}
	if got := fc.sent(); len(got) != 0 {
		t.Errorf("usage errors sent %v", got)
	}
}

func TestReconfigureNoConfiguration(t *testing.T) {
	clearEnv(t)
	fc := startCluster(t, 2, 0) // replicas that report no configuration
	r := run(t, "", "--replicas", fc.file(1, 2), "reconfigure")
	if r.code != 3 || !strings.Contains(r.stderr, "reports a committed configuration") {
		t.Errorf("reconfigure with no configuration reported: %v", r)
	}
	r = run(t, "", "--replicas", writeReplicas(t, deadAddr(t)), "--timeout", "200ms", "reconfigure")
	if r.code != 3 || !strings.Contains(r.stderr, "no replica answered") {
		t.Errorf("reconfigure with every replica down: %v", r)
	}
}
