package node

import "github.com/switchyard-proxy/switchyard/kafka"

// produceInFlight is srv.ProduceInFlight(topic): the Produce requests to
// topic this peer's data plane has forwarded and not yet answered. The
// method lands on kafka.Server on main separately; until this branch is
// merged with it, a server without the method counts nothing in flight
// and a peer's fence confirmation rests on its applied index alone. The
// lead deletes this file at the merge and calls dp.srv.ProduceInFlight
// directly.
func produceInFlight(srv *kafka.Server, topic string) int {
	if c, ok := any(srv).(interface{ ProduceInFlight(topic string) int }); ok {
		return c.ProduceInFlight(topic)
	}
	return 0
}
