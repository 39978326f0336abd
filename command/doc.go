// Package command encodes and decodes the batches of client writes that make up the
// value of one log slot.
//
// The format is the Thrift binary protocol encoding of peerapi.CommandBatch as
// idl/peer.thrift defines it, so the bytes in the replicated log, in the acceptor's
// file and in peer messages are readable by any Thrift implementation. The codec is
// written by hand for speed (it appends to one buffer and does not go through the
// TProtocol interface); its tests check it byte for byte against the generated code
// in gen/peerapi, in both directions.
//
// DecodeBatch accepts exactly what the generated decoder accepts (fields in any order,
// missing fields as zero values, unknown fields skipped, the last of a repeated field
// winning) except that it also rejects trailing bytes after the batch and operations
// other than PUT and REMOVE. It never panics and never allocates more than a small
// multiple of its input, whatever the input; length prefixes are checked against the
// bytes that remain before anything is allocated.
package command
