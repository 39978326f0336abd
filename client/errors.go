package client

import (
	"errors"
	"fmt"
)

// Errors wrapped by every error the client returns; test for them with errors.Is.
var (
	// ErrNotFound: the key holds no value.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: no replica completed the operation before its deadline. A write
	// that fails this way may or may not have taken effect.
	ErrUnavailable = errors.New("unavailable")
	// ErrInvalidArgument: the request is malformed (an empty key, or a key or value
	// over its limit). The error's text keeps the server's message naming the limit;
	// errors.As with *InvalidArgumentError gives the field and the limit.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrClosed: the Client has been closed.
	ErrClosed = errors.New("client closed")
	// ErrCorrupt: a replica's answer contradicts itself or the request (a digest
	// or checksum that is not 32 bytes, a backup chunk out of place), or a backup's
	// bytes do not match the checksum the replica announced.
	ErrCorrupt = errors.New("corrupt")
)

// InvalidArgumentError is a request rejected as malformed, by a replica or before
// sending. It matches ErrInvalidArgument with errors.Is.
type InvalidArgumentError struct {
	// Message says what is wrong, naming the limit.
	Message string
	// Field is the argument at fault: "key", "value", "client_id" or "seq".
	Field string
	// Limit is the limit in bytes that was exceeded, or 0.
	Limit int64
}

// Error returns the message, which names the limit.
func (e *InvalidArgumentError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	if e.Limit > 0 {
		return fmt.Sprintf("invalid %s: over the limit of %d bytes", e.Field, e.Limit)
	}
	return fmt.Sprintf("invalid %s", e.Field)
}

// Is reports whether target is ErrInvalidArgument.
func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

// StartingError is the status of a replica that answered while starting: it
// serves nothing yet. It matches ErrUnavailable with errors.Is.
type StartingError struct {
	// Endpoint is the client address asked, and ID the replica's id.
	Endpoint string
	ID       int64
	// Reason says what the replica is waiting for.
	Reason string
}

func (e *StartingError) Error() string {
	return fmt.Sprintf("status %s: replica %d is starting: %s", e.Endpoint, e.ID, e.Reason)
}

// Is reports whether target is ErrUnavailable.
func (e *StartingError) Is(target error) bool { return target == ErrUnavailable }
