package kafka

// Routing for the admin keys (each in its NN_name.go file): topic
// administration goes to the controller of the cluster each topic routes
// to (byCluster, controllerOf), cluster-wide requests to every cluster
// (everyCluster), and keys with no topic to the default cluster's
// controller (toController). These keys are not bounced after a route
// change (pipeline.go): a client caches no leader for them, and a request
// that reaches the old cluster's controller is answered by it.

// byCluster groups items by the cluster their topic routes to, in cluster
// name order; items of unrouted topics come back apart.
func byCluster[T any](r *request, items []T, topic func(T) string) (map[*Backend][]T, []*Backend, []T) {
	by := map[*Backend][]T{}
	var unrouted []T
	for _, it := range items {
		be := r.route(topic(it))
		if be == nil {
			unrouted = append(unrouted, it)
			continue
		}
		by[be] = append(by[be], it)
	}
	var order []*Backend
	for _, be := range r.set.sorted {
		if _, ok := by[be]; ok {
			order = append(order, be)
		}
	}
	return by, order, unrouted
}

// controllerOf is the target for be's controller (any broker when unknown:
// it answers NOT_CONTROLLER and the client retries).
func controllerOf(be *Backend) target { return target{be, be.controller()} }

// everyCluster lists each backend's controller or any broker.
func (r *request) everyCluster(controller bool) []target {
	var out []target
	for _, be := range r.set.sorted {
		t := target{be, -1}
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

// toController sends r to the default cluster's controller.
func toController(r *request) error {
	c, start := r.c, r.start
	be := r.defaultBackend()
	if be == nil {
		return errNoCluster
	}
	u, err := c.upstreamOrAny(target{be, be.controller()})
	if err != nil {
		return err
	}
	return c.forwardTo(u, r, start, nil)
}
