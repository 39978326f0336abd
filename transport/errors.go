package transport

import "errors"

// Errors returned by this package; check them with errors.Is.
var (
	// ErrClosed is returned by PeerClient.Call after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrOutOfRange marks a number that does not fit the other side of a
	// conversion: a negative i64 from the wire, or a uint64 above the largest i64.
	ErrOutOfRange = errors.New("value out of range")
	// ErrMissingField marks a Thrift struct whose required part (a request, a
	// ballot, an entry) is absent.
	ErrMissingField = errors.New("missing field")
	// ErrUnsupported marks a message this package cannot carry: a type that is not
	// a request or reply of the Peer service, or an unknown entry kind.
	ErrUnsupported = errors.New("unsupported message")
	// ErrInvalidChunk marks a snapshot chunk that contradicts its request or
	// itself: a checksum that is not 32 bytes, an offset other than the one asked
	// for, more bytes than asked for, or bytes beyond the file's size.
	ErrInvalidChunk = errors.New("invalid snapshot chunk")
)
