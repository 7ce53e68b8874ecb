package kafka

// GetTelemetrySubscriptions (71), PushTelemetry (72): all versions kmsg and
// the backend share.
//
// Client telemetry (KIP-714) is configured as client-metrics resources,
// which the config keys keep on the default cluster (32_configs.go), so
// these go as the client sent them to a broker of the default cluster,
// this host's first; the answer passes through unchanged.
// ListConfigResources (74_list_config_resources.go) is served the same way.

// toAny forwards r as is to any broker of the default cluster.
func toAny(r *request) error {
	c, start := r.c, r.start
	return c.forwardAny(r, start, r.defaultBackend(), nil)
}
