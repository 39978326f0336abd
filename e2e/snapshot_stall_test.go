package e2e

import (
	"strconv"
	"testing"
	"time"
)

// TestSnapshotTransferStalledSender stops the sender of a snapshot (SIGSTOP)
// part-way through: the receiver must give up on it within a few peer timeouts
// and complete the transfer from the new leader while the old one is still
// stopped.
func TestSnapshotTransferStalledSender(t *testing.T) {
	const keys, valueBytes, everySlots = 3000, 64 << 10, 250
	c := newClusterWith(t, 3,
		"--snapshot-every-slots", strconv.Itoa(everySlots), "--snapshot-retain-slots", "10",
		"--snapshot-every-bytes", strconv.Itoa(1<<30), "--rewrite-min-bytes", strconv.Itoa(1<<32))
	leader := c.waitLeader()
	recv := others(c.ids(), leader)[0]
	c.kill(recv)
	x := &transferTest{t: t, c: c, recv: recv, keys: keys, valueBytes: valueBytes, everySlots: everySlots}
	x.load(others(c.ids(), recv))
	x.fill(others(c.ids(), recv), 0)

	sender := x.restartUntilMidTransfer()
	failures := len(c.logLines(recv, "snapshot transfer failed"))
	c.pause(sender)
	defer c.resume(sender)
	stalled := time.Now()
	c.waitLog(recv, 10*time.Second, "snapshot transfer failed", failures)
	t.Logf("the receiver gave up on the stalled sender after %s", time.Since(stalled).Round(time.Millisecond))
	x.waitInstalled(sender)
	c.resume(sender)
	x.converged()
}
