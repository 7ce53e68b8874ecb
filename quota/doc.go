// Package quota is the deterministic core of Switchyard's cluster-wide
// topic quotas (flow control, DESIGN.md §1.4): produce and fetch rates per
// topic capped across all peers by a distributed token bucket with Kafka's
// client-visible semantics (KIP-219: admit, answer at once with
// throttle_time_ms, then stop reading from the connection until the
// throttle ends; never drop produce data).
//
// It owns:
//
//   - Bucket: a debt-capable token bucket with KIP-599 TokenBucket
//     semantics, and the throttle helpers (AdvertisedMillis, MuteFor,
//     RescaleMute);
//   - Limiter, the peer side: one bucket per (topic, direction) key whose
//     rate is this peer's leased share of the key's quota, the lease and
//     its loss (safe share, then pessimistic), and the demand estimate
//     reported to the leader;
//   - Allocator, the leader side: soft state per key and peer, max-min fair
//     shares with a headroom credit, shrink-before-grow so the shares in
//     force never sum to more than the quota plus that credit, leases,
//     learning mode after a leadership change, and reservations for silent
//     peers;
//   - the wire types Report and Grants, small JSON-friendly structs the node
//     carries over its peer RPC.
//
// It must not do I/O, start goroutines, read a clock or keep package-level
// state: every function takes the time as now (a time.Time with a monotonic
// reading, or any consistent virtual clock), so the same code runs in the
// data plane, the node and a simulation. The Kafka data plane (kafka) calls
// Limiter.Charge and Limiter.FetchCap per request and knows nothing of the
// allocation; the node (node) owns the Limiter and, while it is the Raft
// leader, the Allocator, moves Report and Grants between peers, feeds the
// replicated quota configuration (SetQuotas) and memberlist's dead verdicts
// (PeerDead). Shares are soft state and never enter the Raft log.
//
// quota/DESIGN.md describes the algorithm, its parameters, how to wire it,
// and where and why it departs from the design note
// (notes/throttling.md).
package quota
