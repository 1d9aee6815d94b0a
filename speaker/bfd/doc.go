// Package bfd implements Bidirectional Forwarding Detection (RFC 5880) in
// asynchronous mode, over IPv4 and IPv6, single hop (RFC 5881, UDP 3784,
// TTL 255 on send and required on receive) and multihop (RFC 5883, UDP
// 4784, a configurable minimum received TTL). It has no echo function, no
// demand mode of its own (it honours a peer's) and no authentication:
// packets with the Authentication bit are dropped and counted.
//
// A Session runs one peer's state machine; sessions share receive sockets
// through a Mux, which hands packets to sessions by discriminator. A BGP
// speaker creates one Mux per node, one Session per neighbor with BFD, and
// tears the neighbor's BGP session down when OnChange reports a change from
// Up to Down, unless the change's RemoteState is AdminDown: a peer shut on
// purpose is not a failure (RFC 5882 §3.2). Our own stop (Run's context
// ending) sends AdminDown for the same reason.
//
//	mux := bfd.NewMux(log)
//	s, err := bfd.New(bfd.Options{Local: local, Peer: peer, Mux: mux, OnChange: f})
//	go s.Run(ctx)
//
// The state machine (fsm.go) is pure: it takes the time as an argument and
// returns the packets to send, so it is tested without sockets or sleeps;
// lab_test.go runs sessions against FRR's bfdd in network namespaces.
package bfd
