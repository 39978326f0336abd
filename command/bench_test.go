package command

import "testing"

// The benchmarks use the batch the store's benchmarks assume: 64 commands with
// 100-byte values.

func BenchmarkEncodeBatch(b *testing.B) {
	cmds := sampleBatch(64, 100)
	for i := range cmds {
		cmds[i].Op, cmds[i].Value = OpPut, make([]byte, 100)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeBatch(cmds); err != nil {
			b.Fatal(err)
		}
	}
}

// benchmarkBatch is the encoded batch of 64 puts the decoding benchmarks read.
func benchmarkBatch(b *testing.B) []byte {
	cmds := sampleBatch(64, 100)
	for i := range cmds {
		cmds[i].Op, cmds[i].Value = OpPut, make([]byte, 100)
	}
	return mustEncode(b, cmds)
}

func BenchmarkDecodeBatch(b *testing.B) {
	data := benchmarkBatch(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateBatch is the check of a peer's entry on receipt.
func BenchmarkValidateBatch(b *testing.B) {
	data := benchmarkBatch(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBatchGenerated measures the generated reader on the same input,
// for comparison with the hand-written one.
func BenchmarkDecodeBatchGenerated(b *testing.B) {
	data := benchmarkBatch(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := generatedDecode(data); err != nil {
			b.Fatal(err)
		}
	}
}
