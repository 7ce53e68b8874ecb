package kafka

// DescribeACLs (29), DescribeClientQuotas (48),
// DescribeUserSCRAMCredentials (50), GetTelemetrySubscriptions (71),
// PushTelemetry (72): all versions kmsg and the backend share.
//
// Forwarded as the client sent them to a broker of the default cluster,
// this host's first; the answer passes through unchanged. The writes of
// the same settings go to every cluster (30_cluster_wide_writes.go), so the
// default cluster's view is every cluster's unless one was changed
// directly.

func toAny(r *request) error {
	c, start := r.c, r.start
	return c.forwardAny(r, start, r.defaultBackend(), nil)
}
