// Package transport is Ballot's Thrift plumbing: a hardened server for any Thrift
// service, a pooled client for the Peer service, the conversions between the
// Peer service's structs and the core's peer.Message, and the Peer service handler
// that hands requests to the local replica and snapshot files to peers (through a
// SnapshotSource). The server package only wires them:
//
//	srv, err := transport.Listen(peerAddr,
//		peerapi.NewPeerProcessor(transport.NewPeerHandler(step, snapshots, time.Second)),
//		transport.ServerOptions{MaxFrameSize: transport.PeerMaxFrameSize, Logger: log})
//	go srv.Serve()
//	...
//	pc := transport.NewPeerClient(addr, transport.ClientOptions{})
//	reply, err := pc.Call(ctx, msg)
//	chunk, err := pc.FetchSnapshot(ctx, self, index, offset, transport.MaxSnapshotChunk)
//
// # Wire format
//
// Framed transport and strict binary protocol on both ports, as the IDL says. Every
// connection, on either side, gets one thrift.TConfiguration for its socket, its
// framed transport and its protocol alike, so the limits below hold at every layer.
//
// # What the server promises
//
//   - A length prefix above ServerOptions.MaxFrameSize (frames) or the same limit
//     (strings, binaries, lists inside a frame), or a string, binary, list, set or
//     map that the rest of its frame cannot hold, closes the connection before
//     anything is allocated for it; a 2 GiB frame header costs nothing.
//   - A connection waits at most IdleTimeout for its next request; once a request
//     has begun, all of it must arrive within ReadTimeout, and each write of the
//     reply gets ReadTimeout. Neither an idle client nor one that stalls halfway
//     or drips a byte at a time holds a goroutine for long.
//   - At most MaxConns connections are served. When full, a new connection takes
//     the place of the one idle longest; only if every connection is in the
//     middle of a request is the new one closed. A request is never cut off to
//     make room.
//   - A handler panic is recovered and logged with its stack; it closes only the
//     connection it happened on.
//   - With ServerOptions.TLS every connection begins with a TLS handshake on its
//     own goroutine, held to the same bounds as a request: IdleTimeout until its
//     first byte, ReadTimeout from then on. A failed one closes the connection
//     and is logged with the caller and the reason.
//   - Malformed input (failed handshakes included), refused connections and
//     panics are logged at most once per ten seconds each, with a count of what
//     was held back.
//   - Close stops accepting, closes every connection, cancels the requests in
//     progress and returns once every connection goroutine has finished.
//
// # What the client promises
//
// PeerClient.Call and PeerClient.FetchSnapshot are safe for concurrent use: each call takes a pooled connection
// of its own (Thrift clients are not safe to share) or dials one. The context's
// deadline bounds the dial and every read and write of the call, and cancelling
// the context aborts it; a call whose context has no deadline gets CallTimeout.
// With ClientOptions.TLS each connection is a TLS one, the server's
// certificate checked for the host of the address dialled; ConnectTimeout
// bounds the dial and the handshake together. A connection that saw any error
// is closed, never reused. A pooled connection
// the server closed meanwhile is noticed before use or, if the close crosses the
// call, the call is sent once more on a new connection (peer requests may be
// repeated). Otherwise the client does not retry: a failed call is the caller's to
// resend (the core does, after MsgUnreachable).
//
// # Snapshots
//
// fetch_snapshot reads a snapshot file in chunks of at most MaxSnapshotChunk
// (4 MiB), which PeerMaxFrameSize holds with room to spare. Both sides check a
// chunk against its request (the offset asked for, or 0 when the replica answers
// with a newer snapshot; no more bytes than asked for; nothing beyond the file's
// size; a 32-byte checksum), so a receiver that writes what FetchSnapshot returns
// at its Offset builds the file the checksum describes, or fails on the checksum.
//
// # Conversions
//
// Thrift has no unsigned integers. A negative i64 from the wire is an error
// (ErrOutOfRange), never a huge uint64, and a core value above math.MaxInt64 is an
// error rather than a negative number on the wire. Absent ballots, requests and
// entries are errors (ErrMissingField). Entry data is shared, not copied, and an
// empty one arrives as nil.
package transport
