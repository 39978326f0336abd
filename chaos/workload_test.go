package chaos

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// TestClassify checks how each answer is read: only NotLeader means "not
// proposed", and anything that is neither an answer nor a declared refusal
// leaves a write's outcome unknown.
func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		want       errorKind
		wantLeader string
	}{
		{"success", nil, errNone, ""},
		{"not found", &kvapi.NotFound{Key: "k"}, errNotFound, ""},
		{"not leader", &kvapi.NotLeader{LeaderAddr: "127.0.0.1:7001"}, errNotLeader, "127.0.0.1:7001"},
		{"not leader, wrapped", fmt.Errorf("put: %w", &kvapi.NotLeader{}), errNotLeader, ""},
		{"unavailable", &kvapi.Unavailable{}, errUnknown, ""},
		{"transport", thrift.NewTTransportException(thrift.TIMED_OUT, "i/o timeout"), errUnknown, ""},
		{"other", errors.New("connection reset by peer"), errUnknown, ""},
		{"undeclared", thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "boom"), errUndeclared, ""},
		{"invalid argument", &kvapi.InvalidArgument{Field: "key"}, errBad, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, leader := classify(tt.err)
			if got != tt.want || leader != tt.wantLeader {
				t.Errorf("classify(%v) = %d, %q; want %d, %q", tt.err, got, leader, tt.want, tt.wantLeader)
			}
		})
	}
}
