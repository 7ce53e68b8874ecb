// Package node runs one Switchyard peer. It owns the peer's Raft instance
// (hashicorp/raft over raft-boltdb and file snapshots) and its replicated
// state machine (fsm), gossip membership (hashicorp/memberlist), the
// leadership loop that reconciles gossip into the Raft configuration and
// the peer table, the one write path (Apply: local on the leader, forwarded
// over the peer port otherwise), the admin HTTP API, and the data plane's
// lifecycle (kafka), which it feeds the latest applied state and gates
// with the write lease (lease.go: writes only while a grant from the
// verified leader is fresh).
//
// It must not put soft state (liveness, quota demand) in the Raft log, and
// the data plane must never wait on Raft: it reads the latest applied
// state and gossip liveness through the kafka.View this package implements.
package node
