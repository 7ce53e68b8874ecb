package kafka

// ListConfigResources (74; ListClientMetricsResources before KIP-1142):
// v0 only (versionCaps), if the backends serve it.
//
// v0 lists the client-metrics resources (KIP-714), which the config keys
// keep on the default cluster (32_configs.go), so it goes as the client
// sent it to a broker of the default cluster, this host's first, and the
// answer passes through unchanged (toAny, 71_telemetry.go). v1 also lists
// topics, brokers and group configs: one cluster's topics (including ones
// routed elsewhere, without the other clusters'), its real broker ids and
// its groups, which is not what the virtual cluster holds; it is not
// advertised until those are merged and presented.
