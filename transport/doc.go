// Package transport is the peer-to-peer networking of one Switchyard peer.
//
// It owns:
//
//   - the peer port (Mux): one TCP listener, optionally TLS, that carries
//     both Raft traffic and the peer RPC stream. Every connection opens with
//     a short handshake naming its type and the dialing peer, so the
//     acceptor knows who is on the other end;
//   - the Raft stream layer over that port (Mux.RaftLayer), for
//     raft.NewNetworkTransportWithConfig;
//   - peer RPC (Mux.HandleRPC, Client.Call): length-prefixed, pipelined
//     request/response frames with JSON bodies and coded errors (RPCError),
//     used to forward writes and consistent reads to the leader and for
//     quota demand reports and leases;
//   - the memberlist configuration (NewMemberlistConfig): LAN defaults,
//     tuning knobs, bound-port resolution and a logger that routes
//     memberlist's lines to slog;
//   - fault hooks (Faults) that tests share between in-process peers to
//     partition, isolate, drop or delay traffic on the peer port and on
//     gossip. A nil *Faults means no faults, so production wiring passes
//     nil and pays one nil check.
//
// It must not know about the replicated state machine, the Kafka data plane
// or the node: it moves bytes between named peers. Method names, error
// codes beyond the few transport-level ones (CodeInternal, CodeUnavailable,
// CodeTooLarge) and the meaning of bodies belong to the caller (node), which
// also owns the raft.Raft and memberlist.Memberlist built on top of this
// package. The wire formats are described in DESIGN.md beside this file.
package transport
