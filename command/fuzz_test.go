package command

import (
	"errors"
	"testing"

	"github.com/ballot-kv/ballot/gen/peerapi"
)

// FuzzDecodeBatch checks that DecodeBatch never panics, that everything it accepts
// the generated Thrift reader accepts with the same meaning (and the reverse, apart
// from the two things DecodeBatch is stricter about), and that what it accepts
// re-encodes to a batch that decodes to the same commands.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(mustEncode(f, nil))
	f.Add(mustEncode(f, []Command{{ClientID: 1, Seq: 1, Op: OpPut, Key: "k", Value: []byte("v")}}))
	f.Add(mustEncode(f, sampleBatch(3, 5)))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeBatch(data)
		if verr := ValidateBatch(data); (verr == nil) != (err == nil) || (err != nil && verr.Error() != err.Error()) {
			t.Fatalf("ValidateBatch says %v where DecodeBatch says %v", verr, err)
		}
		gen, left, genErr := generatedDecode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if genErr == nil && left == 0 && validOps(gen) {
				t.Fatalf("rejected a batch the generated reader accepts: %v", err)
			}
			return
		}
		if genErr != nil || left != 0 {
			t.Fatalf("accepted a batch the generated reader rejects: %v, %d bytes left", genErr, left)
		}
		equalCommands(t, got, fromGenerated(gen))
		again, err := DecodeBatch(mustEncode(t, got))
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		equalCommands(t, again, got)
	})
}

func validOps(b *peerapi.CommandBatch) bool {
	for _, c := range b.Commands {
		if c.Op < 0 || c.Op > 255 || !Op(c.Op).Valid() {
			return false
		}
	}
	return true
}
