// Package smalldisk gives tests a real file system that fills up: a tmpfs of a
// chosen size, mounted on a directory of the test's own. Writes past its size
// fail with ENOSPC, as on a full disk.
package smalldisk

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Mount mounts a tmpfs of size (mount's size= option, as in "8m") on a new
// directory and returns it. The file system is unmounted when the test ends,
// after the cleanups registered later (a cluster started on it stops first).
// Where it cannot mount (not root, no mount command, no permission) it skips
// the test, saying why.
func Mount(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs as a full disk")
	}
	dir := filepath.Join(t.TempDir(), "small-disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs of %s (needs root and the mount capability): %v: %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Resize changes the size of a file system Mount mounted, as an operator
// freeing space would.
func Resize(t testing.TB, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s with size %s: %v: %s", dir, size, err, out)
	}
}
