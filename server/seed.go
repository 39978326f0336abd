package server

import (
	"crypto/rand"
	"encoding/binary"
)

// seed draws the core's election-timeout seed, so replicas started together do
// not time out in step.
func seed() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}
