// Package node runs one Switchyard peer: it wires the data plane (kafka)
// to the cluster view and serves the admin HTTP listener (/metrics,
// /healthz, /readyz).
//
// The cluster view is static configuration for now: the peers and backend
// clusters come from Config. The Raft state machine and gossip membership
// (fsm, transport) replace that source without changing the data plane,
// which only reads a *fsm.State through an atomic pointer.
package node
