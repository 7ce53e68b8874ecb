package kafka

// Routing for the admin keys (each in its NN_name.go file): topic
// administration goes to the controller of the cluster each topic routes
// to (controllerOf; the splitter's controller families, split.go),
// cluster-wide requests to every cluster (everyCluster), and keys with no
// topic to the default cluster's controller (toController). These keys are not bounced after a route
// change (pipeline.go): a client caches no leader for them, and a request
// that reaches the old cluster's controller is answered by it.

// controllerOf is the target for be's controller (any broker when unknown:
// it answers NOT_CONTROLLER and the client retries).
func controllerOf(be *Backend) target { return target{be, be.controller()} }

// everyCluster lists each backend's controller or any broker.
func (r *request) everyCluster(controller bool) []target {
	var out []target
	for _, be := range r.set.sorted {
		t := target{be, anyBroker}
		if controller {
			t = controllerOf(be)
		}
		out = append(out, t)
	}
	return out
}

// noRouteMessage is the message of a topic no rule routes.
func noRouteMessage(tt topicTarget) *string {
	m := "switchyard: no route, prefix rule or default cluster routes topic " + tt.name + "; add a route first"
	return &m
}

// toController sends r to the default cluster's controller; when no broker
// of that cluster can be reached, r gets its key's retriable answer
// (unavailable.go) rather than a closed connection.
func toController(r *request) error {
	c, start := r.c, r.start
	be := r.defaultBackend()
	if be == nil {
		return errNoCluster
	}
	u, err := c.upstreamOrAny(target{be, be.controller()})
	if err != nil {
		return c.answerUnreachable(r, start, be, err)
	}
	return c.forwardTo(u, r, start, nil)
}
