package replicas

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
)

// Replica is one line of replicas.txt.
type Replica struct {
	// ID identifies the replica; it is positive and unique within the file.
	ID uint64
	// ClientAddr is the host:port of the client-facing KV service.
	ClientAddr string
	// PeerAddr is the host:port of the Peer service used between replicas.
	PeerAddr string
	// Line is the 1-based line number the replica was read from.
	Line int
}

// Errors wrapped by a *ParseError; test for them with errors.Is.
var (
	// ErrFields: a line does not have exactly three fields.
	ErrFields = errors.New("wrong number of fields")
	// ErrID: the id is not an integer from 1 to MaxID.
	ErrID = errors.New("invalid id")
	// ErrDuplicateID: two lines carry the same id.
	ErrDuplicateID = errors.New("duplicate id")
	// ErrAddr: an address is not host:port with a port from 1 to 65535.
	ErrAddr = errors.New("invalid address")
	// ErrDuplicateAddr: an address appears twice, as client or peer address.
	ErrDuplicateAddr = errors.New("duplicate address")
	// ErrEmpty: the file lists no replica.
	ErrEmpty = errors.New("no replicas")
	// ErrLineTooLong: a line exceeds MaxLineBytes.
	ErrLineTooLong = errors.New("line too long")
)

// MaxID is the largest replica id: ids travel on the wire as Thrift i64.
const MaxID = math.MaxInt64

// MaxLineBytes is the longest line Parse accepts.
const MaxLineBytes = 64 * 1024

// ParseError reports what is wrong with replicas.txt and where.
type ParseError struct {
	// File is the name given to Parse (the path, for Load).
	File string
	// Line is the 1-based line number, or 0 when the error concerns the whole file.
	Line int
	// Err says what is wrong; it wraps one of the Err values of this package, or a
	// read error.
	Err error
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Load reads and parses the replicas file at path. Errors name path and the line.
func Load(path string) ([]Replica, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load replicas %s: %w", path, err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a replicas file from r. name is used in errors, as in
// "replicas.txt:3: invalid id \"0\"". The result is in file order.
func Parse(r io.Reader, name string) ([]Replica, error) {
	var (
		list    []Replica
		idLine  = make(map[uint64]int)
		addrUse = make(map[string]addrOwner)
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		rep, ok, err := parseLine(sc.Text(), line)
		if err != nil {
			return nil, &ParseError{File: name, Line: line, Err: err}
		}
		if !ok {
			continue
		}
		if first, dup := idLine[rep.ID]; dup {
			return nil, &ParseError{File: name, Line: line,
				Err: fmt.Errorf("%w %d: already on line %d", ErrDuplicateID, rep.ID, first)}
		}
		idLine[rep.ID] = line
		for _, a := range []struct{ role, addr string }{
			{"client", rep.ClientAddr},
			{"peer", rep.PeerAddr},
		} {
			key := addrKey(a.addr)
			if prev, dup := addrUse[key]; dup {
				return nil, &ParseError{File: name, Line: line,
					Err: fmt.Errorf("%w %s (%s address): already used as %s address on line %d",
						ErrDuplicateAddr, a.addr, a.role, prev.role, prev.line)}
			}
			addrUse[key] = addrOwner{role: a.role, line: line}
		}
		list = append(list, rep)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ParseError{File: name, Line: line + 1,
				Err: fmt.Errorf("%w: longer than %d bytes", ErrLineTooLong, MaxLineBytes)}
		}
		return nil, &ParseError{File: name, Err: fmt.Errorf("read: %w", err)}
	}
	if len(list) == 0 {
		return nil, &ParseError{File: name, Err: fmt.Errorf("%w: want at least one line \"id client-addr peer-addr\"", ErrEmpty)}
	}
	return list, nil
}

// addrOwner records where an address was first used, for duplicate errors.
type addrOwner struct {
	role string
	line int
}

// parseLine parses one line. ok is false for a blank or comment-only line.
func parseLine(text string, line int) (rep Replica, ok bool, err error) {
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	fields := strings.Fields(text)
	if len(fields) == 0 {
		return Replica{}, false, nil
	}
	if len(fields) != 3 {
		return Replica{}, false, fmt.Errorf("%w: got %d, want 3 (id client-addr peer-addr)", ErrFields, len(fields))
	}
	id, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil || id == 0 || id > MaxID {
		return Replica{}, false, fmt.Errorf("%w %q: want an integer from 1 to %d", ErrID, fields[0], uint64(MaxID))
	}
	if err := checkAddr(fields[1]); err != nil {
		return Replica{}, false, fmt.Errorf("client address: %w", err)
	}
	if err := checkAddr(fields[2]); err != nil {
		return Replica{}, false, fmt.Errorf("peer address: %w", err)
	}
	return Replica{ID: id, ClientAddr: fields[1], PeerAddr: fields[2], Line: line}, true, nil
}

// checkAddr reports whether addr is host:port with a non-empty host and a numeric
// port from 1 to 65535.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w %q: want host:port", ErrAddr, addr)
	}
	if host == "" {
		return fmt.Errorf("%w %q: missing host", ErrAddr, addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("%w %q: port %q is not a number from 1 to 65535", ErrAddr, addr, port)
	}
	return nil
}

// addrKey normalises a valid address for duplicate detection: host names are
// case-insensitive and "07001" is the same port as "7001". Names are not resolved,
// so "localhost:7001" and "127.0.0.1:7001" count as different addresses.
func addrKey(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(n, 10))
}

// Find returns the replica with the given id, and whether there is one.
func Find(list []Replica, id uint64) (Replica, bool) {
	for _, r := range list {
		if r.ID == id {
			return r, true
		}
	}
	return Replica{}, false
}

// ClientAddrs returns the client addresses of list, in list order.
func ClientAddrs(list []Replica) []string {
	addrs := make([]string, 0, len(list))
	for _, r := range list {
		addrs = append(addrs, r.ClientAddr)
	}
	return addrs
}
