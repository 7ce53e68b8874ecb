// Package fsm holds Switchyard's replicated state: the immutable State the
// data plane reads and, once the control plane lands, the Raft state machine
// that produces it.
//
// It must not import any other Switchyard package and must do no I/O: a
// State is a plain value that every peer computes identically.
package fsm
