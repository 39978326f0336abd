package store

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/ballot-kv/ballot/peer"
)

// Key layout. Every key starts with a one-letter prefix and a slash, so user keys
// (under "d/") can never collide with the replica's own records.
const (
	prefixData   = "d/" // "d/" + user key → value bytes
	prefixClient = "c/" // "c/" + 20-digit client id → dedupRecord
	prefixLog    = "l/" // "l/" + 20-digit slot → accepted entry
	// Each prefix's range ends before the same letter followed by '0', the byte
	// after '/'.
	endData   = "d0"
	endClient = "c0"
	endLog    = "l0"

	keyPromised  = "m/promised"  // highest ballot promised
	keyApplied   = "m/applied"   // last slot applied to the data
	keyIntent    = "m/intent"    // the writes of the last Apply, for redo; see apply.go
	keyCompacted = "m/compacted" // slot up to which the log was compacted
	keyConfig    = "m/config"    // the committed configuration (opaque to the store); in snapshots
	keyRebuild   = "m/rebuild"   // slot a replica that lost its storage rebuilds to; see peer.Durable.RebuildTo
)

// digits is the width of a decimal uint64; fixed width keeps slots in numeric order.
const digits = 20

func numberKey(prefix string, n uint64) string {
	var b [len(prefixLog) + digits]byte
	copy(b[:], prefix)
	num := strconv.AppendUint(b[len(prefix):len(prefix)], n, 10)
	pad := digits - len(num)
	copy(b[len(prefix)+pad:], num)
	for i := len(prefix); i < len(prefix)+pad; i++ {
		b[i] = '0'
	}
	return string(b[:len(prefix)+digits])
}

func logKey(slot uint64) string     { return numberKey(prefixLog, slot) }
func clientKey(id uint64) string    { return numberKey(prefixClient, id) }
func dataKey(userKey string) string { return prefixData + userKey }

// slotOfLogKey parses the slot out of a log key.
func slotOfLogKey(key string) (uint64, error) {
	return strconv.ParseUint(strings.TrimPrefix(key, prefixLog), 10, 64)
}

// errShort is returned by the value decoders; callers wrap it with ErrCorrupt and
// the key's location.
var errShort = errors.New("record too short")

// reader decodes the compact binary records stored as buntdb values (which are Go
// strings), without copying them.
type reader struct {
	s   string
	err error
}

func (r *reader) uvarint() uint64 {
	var v uint64
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.s = r.s[i+1:]
			return v
		}
	}
	r.fail()
	return 0
}

func (r *reader) byte1() byte {
	if len(r.s) == 0 {
		r.fail()
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}

// bytes reads a uvarint length and that many bytes.
func (r *reader) bytes() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.s)) {
		r.fail()
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.s = ""
}

// done returns the first decoding error, or an error if bytes are left over.
func (r *reader) done() error {
	if r.err == nil && len(r.s) != 0 {
		r.err = errors.New("trailing bytes in record")
	}
	return r.err
}

// Ballot: round, id (uvarints).

func appendBallot(b []byte, bal peer.Ballot) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(b, bal.Round), bal.ID)
}

func encodeBallot(bal peer.Ballot) string {
	return string(appendBallot(make([]byte, 0, 2*binary.MaxVarintLen64), bal))
}

func decodeBallot(s string) (peer.Ballot, error) {
	r := reader{s: s}
	bal := peer.Ballot{Round: r.uvarint(), ID: r.uvarint()}
	return bal, r.done()
}

// Applied slot: uvarint.

func encodeSlot(slot uint64) string {
	return string(binary.AppendUvarint(nil, slot))
}

func decodeSlot(s string) (uint64, error) {
	r := reader{s: s}
	slot := r.uvarint()
	return slot, r.done()
}

// Log entry: ballot round, ballot id (uvarints), kind (one byte), then the data to
// the end of the value. The slot is in the key. One key holds the whole acceptor
// record, so a torn write keeps all of it or none.

func encodeEntry(e peer.Entry) string {
	var hdr [2*binary.MaxVarintLen64 + 1]byte
	h := append(appendBallot(hdr[:0], e.Ballot), byte(e.Kind))
	var sb strings.Builder
	sb.Grow(len(h) + len(e.Data))
	sb.Write(h)
	sb.Write(e.Data)
	return sb.String()
}

func decodeEntry(slot uint64, s string) (peer.Entry, error) {
	r := reader{s: s}
	e := peer.Entry{Slot: slot, Ballot: peer.Ballot{Round: r.uvarint(), ID: r.uvarint()}}
	e.Kind = peer.EntryKind(r.byte1())
	if r.err != nil {
		return peer.Entry{}, r.err
	}
	if !validKind(e.Kind) {
		return peer.Entry{}, errors.New("unknown entry kind " + strconv.Itoa(int(e.Kind)))
	}
	if len(r.s) > 0 {
		e.Data = []byte(r.s)
	}
	return e, nil
}

func validKind(k peer.EntryKind) bool {
	return k == peer.KindCommands || k == peer.KindNoop || k == peer.KindConfig
}

// dedupRecord is what the store remembers of a client's last applied command: its
// sequence number, where it was applied (slot and index in the slot's batch) and
// its result. Stored as seq, slot, index (uvarints) and existed (one byte).
type dedupRecord struct {
	Seq     uint64
	Slot    uint64
	Index   uint64
	Existed bool
}

func encodeDedup(d dedupRecord) string {
	b := make([]byte, 0, 3*binary.MaxVarintLen64+1)
	b = binary.AppendUvarint(b, d.Seq)
	b = binary.AppendUvarint(b, d.Slot)
	b = binary.AppendUvarint(b, d.Index)
	if d.Existed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return string(b)
}

func decodeDedup(s string) (dedupRecord, error) {
	r := reader{s: s}
	d := dedupRecord{Seq: r.uvarint(), Slot: r.uvarint(), Index: r.uvarint()}
	switch r.byte1() {
	case 0:
	case 1:
		d.Existed = true
	default:
		r.fail()
	}
	return d, r.done()
}

// change is one key write of an Apply: set key to val, or delete key.
type change struct {
	key string
	val string
	del bool
}

// intent is the redo record of one Apply: the slots it applies and the final value
// of every key it writes. Stored as from, to, count (uvarints), then per change a
// flag byte (0 set, 1 delete), the key and, for a set, the value (each a uvarint
// length and the bytes).
type intent struct {
	From, To uint64
	Changes  []change
}

func encodeIntent(in intent) string {
	size := 3 * binary.MaxVarintLen64
	for _, c := range in.Changes {
		size += 1 + 2*binary.MaxVarintLen64 + len(c.key) + len(c.val)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, in.From)
	b = binary.AppendUvarint(b, in.To)
	b = binary.AppendUvarint(b, uint64(len(in.Changes)))
	for _, c := range in.Changes {
		if c.del {
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(c.key)))
			b = append(b, c.key...)
			continue
		}
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(len(c.key)))
		b = append(b, c.key...)
		b = binary.AppendUvarint(b, uint64(len(c.val)))
		b = append(b, c.val...)
	}
	return string(b)
}

func decodeIntent(s string) (intent, error) {
	r := reader{s: s}
	in := intent{From: r.uvarint(), To: r.uvarint()}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.s))/2 { // each change takes at least 2 bytes
		r.fail()
	}
	if r.err != nil {
		return intent{}, r.err
	}
	in.Changes = make([]change, 0, n)
	for range n {
		var c change
		switch r.byte1() {
		case 0:
			c.key, c.val = r.bytes(), r.bytes()
		case 1:
			c.key, c.del = r.bytes(), true
		default:
			r.fail()
		}
		if r.err != nil {
			return intent{}, r.err
		}
		in.Changes = append(in.Changes, c)
	}
	return in, r.done()
}
