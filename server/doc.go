// Package server is a Ballot replica: it drives the Multi-Paxos core of package
// peer with real time, stable storage (package store) and the network (package
// transport), and serves the client service of idl/kv.thrift.
//
// One goroutine, the node loop, owns the core. Everything else (Thrift
// connections, peer senders, client handlers) talks to it through channels, so the
// core needs no locks and sees events in one order.
package server
