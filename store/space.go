package store

import (
	"fmt"
	"syscall"
)

// Rewrite, WriteSnapshot and InstallSnapshot write a second copy of the data
// beside the store's file. On a nearly full disk that copy could take the last
// free bytes and make the store's own next write fail, which stops the replica;
// so each first checks that the file system has room for the copy and a reserve
// left for the store, and otherwise refuses with ErrNoSpace and changes nothing.
// The check is an estimate taken before writing, not a reservation: it lowers
// the risk, and a write that still finds the disk full fails as any other.

// spaceReserve is what a second copy must leave free for the store's own writes
// while the copy exists: an eighth of the copy's size, at least 256 KiB.
func spaceReserve(need int64) int64 { return max(need/8, 256<<10) }

// checkSpace returns an error wrapping ErrNoSpace, naming dir and the figures,
// unless dir's file system has need bytes free and spaceReserve(need) besides.
// When the free space cannot be read, it lets the write go ahead.
func checkSpace(op, dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil
	}
	free := int64(uint64(st.Bavail) * uint64(st.Bsize))
	reserve := spaceReserve(need)
	if free >= need+reserve {
		return nil
	}
	return fmt.Errorf("%s: %w in %s: about %d bytes needed plus %d kept for the store's own writes, %d free",
		op, ErrNoSpace, dir, need, reserve, free)
}

// recordBytes is the size of a buntdb "set" record of a key and value of these
// lengths, within a few bytes (the length fields' digits).
func recordBytes(key, val int) int64 { return int64(key+val) + 32 }
