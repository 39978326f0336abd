package client

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
)

// session is one (client id, seq) stream of writes. It is held by one operation
// at a time, so it never has two writes outstanding.
type session struct {
	// id is random, non-zero and fits in 63 bits (it travels as a Thrift i64).
	id int64
	// seq is the sequence number of the session's next new write; a retry of the
	// current write reuses it.
	seq int64
}

// sessionPool keeps the sessions not in use. It grows to the number of writes
// that have been in flight at once.
type sessionPool struct {
	mu   sync.Mutex // guards free
	free []*session
}

// get takes a free session, or starts a new one with a random id and seq 1.
func (p *sessionPool) get() (*session, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return s, nil
	}
	p.mu.Unlock()
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	return &session{id: id, seq: 1}, nil
}

// put returns s for the next write.
func (p *sessionPool) put(s *session) {
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

// randomID returns a random non-zero 63-bit client id.
func randomID() (int64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("new client id: %w", err)
		}
		if id := int64(binary.BigEndian.Uint64(b[:]) >> 1); id != 0 {
			return id, nil
		}
	}
}
