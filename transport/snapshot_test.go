package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// fileSource is a SnapshotSource holding one snapshot file, as a replica holds
// its latest. It records each request it answers.
type fileSource struct {
	mu    sync.Mutex // guards every field
	index uint64
	file  []byte
	asked []sourceRequest
	err   error // returned instead of a chunk when set
	// mangle, when set, changes each chunk before it is returned.
	mangle func(*SnapshotChunk)
}

type sourceRequest struct {
	from, index uint64
	offset      int64
	maxBytes    int
}

var _ SnapshotSource = (*fileSource)(nil)

// set replaces the snapshot, as a replica does when it takes a newer one.
func (s *fileSource) set(index uint64, file []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index, s.file = index, file
}

func (s *fileSource) requests() []sourceRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sourceRequest(nil), s.asked...)
}

func (s *fileSource) SnapshotChunk(_ context.Context, from, index uint64, offset int64, maxBytes int) (SnapshotChunk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, sourceRequest{from, index, offset, maxBytes})
	if s.err != nil {
		return SnapshotChunk{}, s.err
	}
	if s.index == 0 {
		return SnapshotChunk{From: 2}, nil
	}
	if index != s.index {
		offset = 0 // not held any more: start again on the latest
	}
	if offset > int64(len(s.file)) {
		return SnapshotChunk{}, fmt.Errorf("offset %d beyond %d bytes", offset, len(s.file))
	}
	end := min(offset+int64(maxBytes), int64(len(s.file)))
	ch := SnapshotChunk{
		From:   2,
		Index:  s.index,
		Size:   int64(len(s.file)),
		Sum:    sha256.Sum256(s.file),
		Offset: offset,
		Data:   s.file[offset:end],
	}
	if s.mangle != nil {
		s.mangle(&ch)
	}
	return ch, nil
}

// randomFile returns n reproducible pseudo-random bytes.
func randomFile(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fetchAll fetches the whole of a snapshot in chunks of maxBytes, as a
// replica catching up would, and checks it against its checksum.
func fetchAll(t *testing.T, c *PeerClient, maxBytes int) (SnapshotChunk, []byte) {
	t.Helper()
	ctx := ctxWithTimeout(t)
	first, err := c.FetchSnapshot(ctx, 1, 0, 0, maxBytes)
	if err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	var file bytes.Buffer
	ch := first
	for {
		if ch.Index != first.Index || ch.Size != first.Size || ch.Sum != first.Sum {
			t.Fatalf("chunk at %d describes snapshot %d (%d bytes), want %d (%d bytes)",
				ch.Offset, ch.Index, ch.Size, first.Index, first.Size)
		}
		if ch.Offset != int64(file.Len()) {
			t.Fatalf("chunk at offset %d, want %d", ch.Offset, file.Len())
		}
		file.Write(ch.Data)
		if int64(file.Len()) == first.Size {
			break
		}
		if ch, err = c.FetchSnapshot(ctx, 1, first.Index, int64(file.Len()), maxBytes); err != nil {
			t.Fatalf("chunk at %d: %v", file.Len(), err)
		}
	}
	if sha256.Sum256(file.Bytes()) != first.Sum {
		t.Fatalf("the %d bytes received do not match the checksum", file.Len())
	}
	return first, file.Bytes()
}

// TestFetchSnapshotRoundTrip fetches a file larger than two of the largest chunks
// through a real server and gets it back intact, in chunks of the size asked for
// and never more than MaxSnapshotChunk.
func TestFetchSnapshotRoundTrip(t *testing.T) {
	file := randomFile(2*MaxSnapshotChunk + 12345)
	src := &fileSource{}
	src.set(42, file)
	srv := startPeer(t, NewPeerHandler(echoStep, src, 0), ServerOptions{MaxFrameSize: PeerMaxFrameSize})
	c := newClient(t, srv, ClientOptions{})

	for _, maxBytes := range []int{MaxSnapshotChunk + 1, 1 << 20} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			before := len(src.requests())
			first, got := fetchAll(t, c, maxBytes)
			if first.Index != 42 || first.From != 2 || first.Size != int64(len(file)) {
				t.Errorf("first chunk: index %d from %d size %d; want 42 from 2 size %d",
					first.Index, first.From, first.Size, len(file))
			}
			if !bytes.Equal(got, file) {
				t.Fatalf("received file differs from the source's")
			}
			want := min(maxBytes, MaxSnapshotChunk)
			asked := src.requests()[before:]
			for i, r := range asked {
				if r.from != 1 || r.maxBytes != want {
					t.Errorf("request %d reached the source as %+v; want from 1, maxBytes %d", i, r, want)
				}
			}
			if n := (len(file) + want - 1) / want; len(asked) != n {
				t.Errorf("%d requests for %d bytes in chunks of %d, want %d", len(asked), len(file), want, n)
			}
		})
	}
}

// TestFetchSnapshotRestartsOnNewerSnapshot resumes a transfer after the replica
// replaced its snapshot: the answer names the new index and starts at offset 0.
func TestFetchSnapshotRestartsOnNewerSnapshot(t *testing.T) {
	src := &fileSource{}
	src.set(7, randomFile(10000))
	srv := startPeer(t, NewPeerHandler(echoStep, src, 0), ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	ctx := ctxWithTimeout(t)

	first, err := c.FetchSnapshot(ctx, 1, 0, 0, 4000)
	if err != nil || first.Index != 7 || first.Offset != 0 || len(first.Data) != 4000 {
		t.Fatalf("first chunk: index %d offset %d, %d bytes, %v", first.Index, first.Offset, len(first.Data), err)
	}
	newer := randomFile(3000)
	src.set(9, newer)
	ch, err := c.FetchSnapshot(ctx, 1, 7, 4000, 4000)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Index != 9 || ch.Offset != 0 || ch.Size != 3000 || ch.Sum != sha256.Sum256(newer) || !bytes.Equal(ch.Data, newer) {
		t.Errorf("resumed on a replaced snapshot: index %d offset %d size %d; want all of snapshot 9 from 0",
			ch.Index, ch.Offset, ch.Size)
	}
	if r := src.requests()[1]; r.index != 7 || r.offset != 4000 {
		t.Errorf("source was asked %+v, want index 7 at offset 4000", r)
	}
}

// TestFetchSnapshotNone: a replica without snapshots, or without a source,
// answers index 0.
func TestFetchSnapshotNone(t *testing.T) {
	for name, src := range map[string]SnapshotSource{"nil source": nil, "empty source": &fileSource{}} {
		t.Run(name, func(t *testing.T) {
			srv := startPeer(t, NewPeerHandler(echoStep, src, 0), ServerOptions{})
			c := newClient(t, srv, ClientOptions{})
			ch, err := c.FetchSnapshot(ctxWithTimeout(t), 1, 0, 0, 100)
			if err != nil || ch.Index != 0 || ch.Size != 0 || len(ch.Data) != 0 {
				t.Errorf("got %+v, %v; want index 0 and nothing else", ch, err)
			}
		})
	}
}

// TestFetchSnapshotFitsClientFrame: a client with a small frame limit asks for no
// more than its frames can hold.
func TestFetchSnapshotFitsClientFrame(t *testing.T) {
	src := &fileSource{}
	src.set(3, randomFile(200<<10))
	srv := startPeer(t, NewPeerHandler(echoStep, src, 0), ServerOptions{})
	c := newClient(t, srv, ClientOptions{MaxFrameSize: 64 << 10})
	_, got := fetchAll(t, c, MaxSnapshotChunk)
	if len(got) != 200<<10 {
		t.Fatalf("got %d bytes", len(got))
	}
	if r := src.requests()[0]; r.maxBytes != 64<<10-snapshotReplyOverhead {
		t.Errorf("asked for %d bytes per chunk with 64 KiB frames, want %d", r.maxBytes, 64<<10-snapshotReplyOverhead)
	}
}

// TestFetchSnapshotClientRefusesBadRequests sends nothing for a request the
// server would refuse.
func TestFetchSnapshotClientRefusesBadRequests(t *testing.T) {
	srv := startPeer(t, NewPeerHandler(echoStep, &fileSource{}, 0), ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	cases := []struct {
		index    uint64
		offset   int64
		maxBytes int
		want     string
	}{
		{5, -1, 100, "offset -1 is negative"},
		{0, 10, 100, "offset 10 with index 0"},
		{5, 0, 0, "max_bytes 0 is not positive"},
		{5, 0, -3, "max_bytes -3 is not positive"},
		{1 << 63, 0, 100, "index 9223372036854775808 exceeds"},
	}
	for _, tc := range cases {
		_, err := c.FetchSnapshot(ctxWithTimeout(t), 1, tc.index, tc.offset, tc.maxBytes)
		if !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("index %d offset %d max %d: %v; want ErrOutOfRange saying %q",
				tc.index, tc.offset, tc.maxBytes, err, tc.want)
		}
	}
	if n := srv.ln.accepts.Load(); n != 0 {
		t.Errorf("%d connections for requests that cannot be sent", n)
	}
}

// rawPeerClient is a plain generated client on its own connection, which sends
// whatever it is given.
func rawPeerClient(t *testing.T, srv *testServer) *peerapi.PeerClient {
	t.Helper()
	strict := true
	cfg := &thrift.TConfiguration{ConnectTimeout: waitLimit, SocketTimeout: waitLimit,
		TBinaryStrictRead: &strict, TBinaryStrictWrite: &strict}
	sock := thrift.NewTSocketConf(srv.addr(), cfg)
	if err := sock.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	prot := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(sock, cfg), cfg)
	return peerapi.NewPeerClient(thrift.NewTStandardClient(prot, prot))
}

// TestFetchSnapshotServerRefusesBadRequests sends malformed requests past the
// client's checks: each gets an error naming what is wrong, and the source is
// never asked.
func TestFetchSnapshotServerRefusesBadRequests(t *testing.T) {
	src := &fileSource{}
	src.set(5, randomFile(100))
	srv := startPeer(t, NewPeerHandler(echoStep, src, 0), ServerOptions{})
	cases := []struct {
		req  *peerapi.SnapshotRequest
		want string
	}{
		{&peerapi.SnapshotRequest{Sender: -1, Index: 5, MaxBytes: 10}, "sender -1 is negative"},
		{&peerapi.SnapshotRequest{Sender: 1, Index: -5, MaxBytes: 10}, "index -5 is negative"},
		{&peerapi.SnapshotRequest{Sender: 1, Index: 5, Offset: -1, MaxBytes: 10}, "offset -1 is negative"},
		{&peerapi.SnapshotRequest{Sender: 1, Index: 0, Offset: 3, MaxBytes: 10}, "offset 3 with index 0"},
		{&peerapi.SnapshotRequest{Sender: 1, Index: 5, MaxBytes: 0}, "max_bytes 0 is not positive"},
		{&peerapi.SnapshotRequest{Sender: 1, Index: 5, MaxBytes: -1}, "max_bytes -1 is not positive"},
	}
	for _, tc := range cases {
		_, err := rawPeerClient(t, srv).FetchSnapshot(ctxWithTimeout(t), tc.req)
		var ex thrift.TApplicationException
		if !errors.As(err, &ex) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an application exception saying %q", tc.req, err, tc.want)
		}
	}
	if n := len(src.requests()); n != 0 {
		t.Errorf("source asked %d times for invalid requests", n)
	}

	// The handler itself, without the wire: the errors are ErrOutOfRange.
	h := NewPeerHandler(echoStep, src, 0)
	for _, tc := range cases {
		if _, err := h.FetchSnapshot(ctxWithTimeout(t), tc.req); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("handler, %+v: %v; want ErrOutOfRange", tc.req, err)
		}
	}
	if _, err := h.FetchSnapshot(ctxWithTimeout(t), nil); !errors.Is(err, ErrMissingField) {
		t.Errorf("handler, nil request: %v; want ErrMissingField", err)
	}
}

// TestFetchSnapshotServerChecksSource: a source error, or a chunk that does not
// answer the request, reaches the fetcher as an error, not as bad data.
func TestFetchSnapshotServerChecksSource(t *testing.T) {
	src := &fileSource{}
	src.set(5, randomFile(100))
	srv := startPeer(t, NewPeerHandler(echoStep, src, 0), ServerOptions{})
	c := newClient(t, srv, ClientOptions{})

	src.mu.Lock()
	src.err = errors.New("snapshot file unreadable")
	src.mu.Unlock()
	if _, err := c.FetchSnapshot(ctxWithTimeout(t), 1, 0, 0, 10); err == nil || !strings.Contains(err.Error(), "snapshot file unreadable") {
		t.Errorf("source error: got %v", err)
	}

	src.mu.Lock()
	src.err = nil
	src.mangle = func(ch *SnapshotChunk) { ch.Data = append(ch.Data, 0) } // one byte too many
	src.mu.Unlock()
	if _, err := c.FetchSnapshot(ctxWithTimeout(t), 1, 0, 0, 10); err == nil || !strings.Contains(err.Error(), "more than the 10 asked for") {
		t.Errorf("oversized chunk from the source: got %v", err)
	}
}

// badPeer answers fetch_snapshot with a fixed chunk, right or wrong.
type badPeer struct {
	peerapi.Peer
	chunk *peerapi.SnapshotChunk
}

func (p badPeer) FetchSnapshot(context.Context, *peerapi.SnapshotRequest) (*peerapi.SnapshotChunk, error) {
	return p.chunk, nil
}

// TestFetchSnapshotClientChecksChunk: the client refuses, as ErrInvalidChunk, a
// chunk that contradicts its request or itself.
func TestFetchSnapshotClientChecksChunk(t *testing.T) {
	sum := make([]byte, 32)
	// The request in every case: snapshot 5 from offset 10, at most 20 bytes.
	cases := []struct {
		name  string
		chunk *peerapi.SnapshotChunk
		want  string
	}{
		{"short checksum", &peerapi.SnapshotChunk{Index: 5, Size: 100, Checksum: sum[:31], Offset: 10, Data: make([]byte, 20)},
			"checksum of 31 bytes, want 32"},
		{"no checksum", &peerapi.SnapshotChunk{Index: 5, Size: 100, Offset: 10, Data: make([]byte, 20)},
			"checksum of 0 bytes, want 32"},
		{"long checksum", &peerapi.SnapshotChunk{Index: 5, Size: 100, Checksum: make([]byte, 33), Offset: 10, Data: make([]byte, 20)},
			"checksum of 33 bytes, want 32"},
		{"wrong offset", &peerapi.SnapshotChunk{Index: 5, Size: 100, Checksum: sum, Offset: 20, Data: make([]byte, 20)},
			"offset 20, want 10"},
		{"new snapshot not from 0", &peerapi.SnapshotChunk{Index: 6, Size: 100, Checksum: sum, Offset: 10, Data: make([]byte, 20)},
			"offset 10, want 0"},
		{"too many bytes", &peerapi.SnapshotChunk{Index: 5, Size: 100, Checksum: sum, Offset: 10, Data: make([]byte, 21)},
			"21 bytes, more than the 20 asked for"},
		{"beyond the file", &peerapi.SnapshotChunk{Index: 5, Size: 25, Checksum: sum, Offset: 10, Data: make([]byte, 20)},
			"bytes 10 to 30 of a 25-byte file"},
		{"no progress", &peerapi.SnapshotChunk{Index: 5, Size: 100, Checksum: sum, Offset: 10},
			"no bytes at offset 10 of 100"},
		{"data without a snapshot", &peerapi.SnapshotChunk{Data: make([]byte, 3)},
			"index 0 (no snapshot) with 3 bytes"},
		{"negative index", &peerapi.SnapshotChunk{Index: -5, Size: 100, Checksum: sum, Offset: 10, Data: make([]byte, 20)},
			"index -5 is negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startPeer(t, badPeer{chunk: tc.chunk}, ServerOptions{})
			c := newClient(t, srv, ClientOptions{})
			_, err := c.FetchSnapshot(ctxWithTimeout(t), 1, 5, 10, 20)
			if err == nil || !strings.Contains(err.Error(), tc.want) ||
				!(errors.Is(err, ErrInvalidChunk) || errors.Is(err, ErrOutOfRange)) {
				t.Errorf("got %v; want ErrInvalidChunk saying %q", err, tc.want)
			}
		})
	}

	// The last chunk of a file, and an empty file, are fine.
	for _, ok := range []*peerapi.SnapshotChunk{
		{Index: 5, Size: 15, Checksum: sum, Offset: 10, Data: make([]byte, 5)},
		{Index: 5, Size: 10, Checksum: sum, Offset: 10},
	} {
		srv := startPeer(t, badPeer{chunk: ok}, ServerOptions{})
		if _, err := newClient(t, srv, ClientOptions{}).FetchSnapshot(ctxWithTimeout(t), 1, 5, 10, 20); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// TestInquireRoundTrip asks a real server what a replica starting without state
// must know, and gets the answer the replica gave; without an answerer the call
// fails rather than answering zeros (which would read as "a new cluster").
func TestInquireRoundTrip(t *testing.T) {
	want := Inquiry{From: 2, Promised: peer.Ballot{Round: 9, ID: 3}, Highest: 12345, Epoch: 3, Members: []uint64{1, 2, 4},
		StartNonce: 1 << 62, FoundedWith: 77}
	var asked uint64
	h := WithInquire(NewPeerHandler(echoStep, nil, 0), func(_ context.Context, from uint64) (Inquiry, error) {
		asked = from
		return want, nil
	})
	srv := startPeer(t, h, ServerOptions{MaxFrameSize: PeerMaxFrameSize})
	c := newClient(t, srv, ClientOptions{})
	got, err := c.Inquire(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || asked != 1 {
		t.Fatalf("inquire: got %+v (asked for %d), want %+v (asked for 1)", got, asked, want)
	}

	bare := startPeer(t, NewPeerHandler(echoStep, nil, 0), ServerOptions{MaxFrameSize: PeerMaxFrameSize})
	if q, err := newClient(t, bare, ClientOptions{}).Inquire(context.Background(), 1); err == nil {
		t.Fatalf("inquire without an answerer: %+v, want an error", q)
	}
}
