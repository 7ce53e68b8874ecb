// Package kafka is Switchyard's data plane: the Kafka listener, framing,
// one handler file per API key (named by key number), backend broker
// connections, the presentation of peers as brokers, and per-API and
// per-topic metrics.
//
// It reads the cluster through the View interface (the latest applied
// fsm.State and gossip liveness) and never waits on consensus; a
// WriteGate (an atomic load) tells it whether it may forward writes. It decodes a
// request body only where routing or a feature needs it and otherwise
// forwards the client's bytes unchanged. It must not import node or
// transport.
package kafka
