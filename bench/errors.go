package bench

import (
	"errors"

	"github.com/ballot-kv/ballot/client"
)

// ErrorKind sorts failed operations for the report.
type ErrorKind uint8

const (
	// ErrNotFound: a get found no value under the key (client.ErrNotFound).
	ErrNotFound ErrorKind = iota
	// ErrUnavailable: no replica completed the operation before its deadline
	// (client.ErrUnavailable).
	ErrUnavailable
	// ErrInvalid: the request was refused as malformed, e.g. a key or value over
	// its limit (client.ErrInvalidArgument).
	ErrInvalid
	// ErrOther: anything else.
	ErrOther
	numErrorKinds
)

// ErrorKinds lists every kind in report order.
var ErrorKinds = [numErrorKinds]ErrorKind{ErrNotFound, ErrUnavailable, ErrInvalid, ErrOther}

// String returns the name used in reports and JSON: not_found, unavailable,
// invalid or other.
func (k ErrorKind) String() string {
	switch k {
	case ErrNotFound:
		return "not_found"
	case ErrUnavailable:
		return "unavailable"
	case ErrInvalid:
		return "invalid"
	}
	return "other"
}

// Classify returns the kind of an error returned by a client operation.
func Classify(err error) ErrorKind {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, client.ErrUnavailable):
		return ErrUnavailable
	case errors.Is(err, client.ErrInvalidArgument):
		return ErrInvalid
	}
	return ErrOther
}
