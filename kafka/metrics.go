package kafka

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/quota"
)

// OtherTopic is the label that stands for every topic past the per-topic
// series cap. Kafka topic names cannot contain parentheses, so it never
// collides with a real topic.
const OtherTopic = "(other)"

// Metrics are the data plane's Prometheus metrics. Per-topic series are
// capped at MaxTopics distinct topics; later topics are counted as
// OtherTopic.
type Metrics struct {
	connections         prometheus.Gauge
	parked              prometheus.Gauge
	upstreamsClosedIdle prometheus.Counter
	closedConns         *prometheus.CounterVec
	refusedConns        map[string]prometheus.Counter
	budgetWaits         prometheus.Counter
	upstreamDialErrors  prometheus.Counter
	requests            [kmsg.MaxKey + 1]prometheus.Counter
	bytesIn             [kmsg.MaxKey + 1]prometheus.Counter
	bytesOut            [kmsg.MaxKey + 1]prometheus.Counter
	latency             [kmsg.MaxKey + 1]prometheus.Observer
	topicBytes          *prometheus.CounterVec
	auth                authMetrics // security.go
	clusterRequests     *prometheus.CounterVec
	clusterBytes        *prometheus.CounterVec
	clusterErrors       *prometheus.CounterVec
	metadataRefreshes   *prometheus.CounterVec
	quotaThrottled      *prometheus.CounterVec
	chainedReads        *prometheus.CounterVec
	quotaThrottle       *prometheus.HistogramVec
	corruptBatches      prometheus.Counter
	producerIDClaims    *prometheus.CounterVec
	readDisagreements   *prometheus.CounterVec
	regionBytes         *prometheus.CounterVec
	authzDenied         *prometheus.CounterVec // acl.go

	// backendAuthFailures counts failed TLS/SASL handshakes with backend
	// brokers (backend_auth.go).
	backendAuthFailures *prometheus.CounterVec

	// traffic: per-topic records and errors, per-client and per-broker
	// series (metrics_traffic.go).
	traffic *trafficMetrics
	// fetchSessions: the client fetch session cache (fetch_session.go).
	fetchSessions *fetchSessionMetrics

	maxTopics int
	mu        sync.RWMutex
	topics    map[topicLabel]*topicCounters
}

// topicLabel is one per-topic series: a topic of a cluster.
type topicLabel struct{ cluster, topic string }

type topicCounters struct {
	key                    topicLabel
	produce, fetch         prometheus.Counter
	produceRecs, fetchRecs prometheus.Counter
	produceReqs, fetchReqs prometheus.Counter
	errs                   sync.Map // int16 error code → prometheus.Counter
}

// NewMetrics registers the data-plane metrics on reg.
func NewMetrics(reg prometheus.Registerer, maxTopics int) *Metrics {
	if maxTopics <= 0 {
		maxTopics = 1000
	}
	m := &Metrics{maxTopics: maxTopics, topics: map[topicLabel]*topicCounters{}}
	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_kafka_connections",
		Help: "Open client connections.",
	})
	m.parked = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_kafka_connections_parked",
		Help: "Open client connections idle long enough to be held without a reader goroutine (Limits.ParkIdleAfter).",
	})
	m.upstreamsClosedIdle = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_kafka_upstreams_closed_idle_total",
		Help: "Backend connections of parked client connections closed after --kafka-upstream-idle-close with no request (dialed again at the connection's next request to that broker).",
	})
	m.closedConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_connections_closed_total",
		Help: "Client connections closed, by reason (normal, bad_request, backend_mismatch, idle, frame_timeout, auth, panic, error).",
	}, []string{"reason"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_connections_refused_total",
		Help: "Client connections refused by a connection limit, by reason (max_connections, max_connections_per_ip, creation_rate).",
	}, []string{"reason"})
	m.refusedConns = map[string]prometheus.Counter{}
	for _, r := range refusedReasons {
		m.refusedConns[r] = refused.WithLabelValues(r)
	}
	m.budgetWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_kafka_request_budget_waits_total",
		Help: "Requests whose reading waited for the request byte budget (queued.max.request.bytes) to have room.",
	})
	m.upstreamDialErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_kafka_upstream_dial_errors_total",
		Help: "Failed connection attempts to backend brokers.",
	})
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_requests_total",
		Help: "Client requests received, by API.",
	}, []string{"api"})
	in := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_request_bytes_total",
		Help: "Bytes of client requests received, by API.",
	}, []string{"api"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_response_bytes_total",
		Help: "Bytes of responses written to clients, by API.",
	}, []string{"api"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_kafka_request_duration_seconds",
		Help:    "Time from reading a request to writing its response, by API.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"api"})
	m.topicBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_topic_bytes_total",
		Help: "Record-batch bytes per backend cluster, topic and direction (produce, fetch); topics past the cap are counted as \"(other)\".",
	}, []string{"cluster", "topic", "direction"})
	m.clusterRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_cluster_requests_total",
		Help: "Requests sent to a backend cluster's brokers.",
	}, []string{"cluster"})
	m.clusterBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_cluster_bytes_total",
		Help: "Bytes sent to (out) and received from (in) a backend cluster's brokers, frames included.",
	}, []string{"cluster", "direction"})
	m.metadataRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_metadata_refreshes_total",
		Help: "Completed all-topics metadata refreshes of a backend cluster, by result: decoded (the answer was applied and a new snapshot built) or unchanged (its digest matched the current snapshot's, which was kept).",
	}, []string{"cluster", "result"})
	m.clusterErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_cluster_errors_total",
		Help: "Errors from a backend cluster: connection failures (dial, connection), Kafka error codes in produce and fetch answers, and the retriable codes the proxy answered for it while no broker of it could be reached, by name.",
	}, []string{"cluster", "error"})
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		name := kmsg.NameForKey(k)
		if name == "" || name == "Unknown" {
			name = "key" + strconv.Itoa(int(k))
		}
		m.requests[k] = reqs.WithLabelValues(name)
		m.bytesIn[k] = in.WithLabelValues(name)
		m.bytesOut[k] = out.WithLabelValues(name)
		m.latency[k] = lat.WithLabelValues(name)
	}
	m.chainedReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_migration_chained_read_bytes_total",
		Help: "Record bytes of migrated topics fetched from a previous segment (below the live segment's start), per segment cluster and topic.",
	}, []string{"cluster", "topic"})
	m.quotaThrottled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_quota_throttled_requests_total",
		Help: "Requests throttled by a topic quota, per cluster, topic and direction (topics past the series cap count as \"(other)\").",
	}, []string{"cluster", "topic", "direction"})
	m.quotaThrottle = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_quota_throttle_seconds",
		Help:    "Throttle time a topic quota gave throttled requests, per cluster, topic and direction (the mute; the advertised throttle_time_ms is capped at 1 s).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"cluster", "topic", "direction"})
	m.corruptBatches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_kafka_corrupt_batches_total",
		Help: "Client record batches whose CRC-32C did not match, refused with CORRUPT_MESSAGE before their producer id was rewritten: batches under 4 KiB after their header, whose CRC the rewrite recomputes (a larger one's CRC is patched, so a mismatch stays one and the broker refuses the batch).",
	})
	m.producerIDClaims = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_producer_id_claims_total",
		Help: "Real producer ids found for a virtual one on first use on a cluster, by where they came from: shared (another peer's, from the replicated table), won (this peer's, claimed in the table), local (this peer's, unshared: the claim failed or timed out, or a peer predates the table); and refreshes of a claim in use every 6 hours: refreshed, refresh_failed (tried again at a later batch), refresh_differs (the table dropped this peer's id and holds another; this peer keeps its own).",
	}, []string{"result"})
	for _, r := range []string{claimShared, claimWon, claimLocal, claimRefreshed, claimRefreshFailed, claimRefreshDiffers} {
		m.producerIDClaims.WithLabelValues(r)
	}
	m.readDisagreements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_merged_read_disagreements_total",
		Help: "Entries the backend clusters disagree on (held by some only, or with different values) in merged reads of cluster-wide settings, by API (DescribeACLs, DescribeClientQuotas, DescribeUserSCRAMCredentials); each answer counts each such entry.",
	}, []string{"api"})
	for _, k := range mergedReadKeys {
		m.readDisagreements.WithLabelValues(kmsg.NameForKey(k))
	}
	// Labels are bounded: client regions are defined regions or peers'
	// regions, cluster regions are the clusters' (docs/regions.md).
	m.regionBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_region_bytes_total",
		Help: "Record bytes produced and fetched by client region, the region of the peer that forwarded them and the region of the backend cluster that served them (cross-datacenter traffic where they differ; \"\" when unknown).",
	}, []string{"client_region", "peer_region", "cluster_region", "direction"})
	m.authzDenied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_authz_denied_total",
		Help: "Requests, or entries of a request (topics, groups, transactional ids), the ACLs denied, by operation and resource type.",
	}, []string{"operation", "resource_type"})
	reg.MustRegister(m.authzDenied)
	m.backendAuthFailures = newAuthFailures()
	reg.MustRegister(m.backendAuthFailures)
	reg.MustRegister(m.connections, m.parked, m.upstreamsClosedIdle, m.closedConns, refused, m.budgetWaits, m.upstreamDialErrors, reqs, in, out, lat, m.topicBytes,
		m.clusterRequests, m.clusterBytes, m.clusterErrors, m.metadataRefreshes, m.quotaThrottled, m.quotaThrottle, m.chainedReads, m.corruptBatches, m.readDisagreements,
		m.regionBytes, m.producerIDClaims)
	m.auth = newAuthMetrics(reg)
	m.traffic = newTrafficMetrics(reg)
	m.fetchSessions = newFetchSessionMetrics(reg)
	return m
}

func (m *Metrics) request(key int16, n int) {
	m.requests[key].Inc()
	m.bytesIn[key].Add(float64(n))
}

func (m *Metrics) response(key int16, n int, d time.Duration) {
	m.bytesOut[key].Add(float64(n))
	m.latency[key].Observe(d.Seconds())
}

// mergedReadKeys are the keys whose merged reads count disagreements (the
// api label's only values).
var mergedReadKeys = []int16{29, 48, 50}

// disagreed counts n entries of a merged read of key that the clusters
// disagree on (merged_reads.go).
func (m *Metrics) disagreed(key int16, n int) {
	if m == nil {
		return
	}
	m.readDisagreements.WithLabelValues(kmsg.NameForKey(key)).Add(float64(n))
}

func (m *Metrics) closed(reason string) { m.closedConns.WithLabelValues(reason).Inc() }

func (m *Metrics) refused(reason string) { m.refusedConns[reason].Inc() }

func (m *Metrics) topic(cluster, name string) *topicCounters {
	// A topic name comes from client bytes before any broker checked it;
	// Prometheus label values must be UTF-8 (it panics otherwise).
	if !utf8.ValidString(name) || name == "" {
		name = OtherTopic
	}
	key := topicLabel{cluster, name}
	m.mu.RLock()
	tc, ok := m.topics[key]
	m.mu.RUnlock()
	if ok {
		return tc
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if tc, ok := m.topics[key]; ok {
		return tc
	}
	if len(m.topics) >= m.maxTopics {
		// Past the cap nothing new is stored: memory stays bounded too.
		key.topic = OtherTopic
		if tc, ok := m.topics[key]; ok {
			return tc
		}
	}
	tc = &topicCounters{
		key:         key,
		produce:     m.topicBytes.WithLabelValues(key.cluster, key.topic, "produce"),
		fetch:       m.topicBytes.WithLabelValues(key.cluster, key.topic, "fetch"),
		produceRecs: m.traffic.topicRecords.WithLabelValues(key.topic, key.cluster, "produce"),
		fetchRecs:   m.traffic.topicRecords.WithLabelValues(key.topic, key.cluster, "fetch"),
		produceReqs: m.traffic.topicRequests.WithLabelValues(key.topic, key.cluster, "produce"),
		fetchReqs:   m.traffic.topicRequests.WithLabelValues(key.topic, key.cluster, "fetch"),
	}
	m.topics[key] = tc
	return tc
}

// produced counts record bytes and records produced to topic of be (nil:
// answered by the proxy, counted under cluster "").
func (m *Metrics) produced(be *Backend, topic string, n, records int) {
	tc := m.topic(clusterLabel(be), topic)
	tc.produceReqs.Inc()
	if n > 0 {
		tc.produce.Add(float64(n))
		tc.count("produce", records)
	}
}

func (m *Metrics) fetched(be *Backend, topic string, n, records int) {
	tc := m.topic(clusterLabel(be), topic)
	tc.fetchReqs.Inc()
	if n > 0 {
		tc.fetch.Add(float64(n))
		tc.count("fetch", records)
	}
}

// regionTraffic counts n record bytes a client of region moved through a
// peer of peerRegion to or from a cluster (dir "produce" or "fetch") under
// st.
func (m *Metrics) regionTraffic(st *fsm.State, region, peerRegion string, be *Backend, dir string, n int) {
	if n <= 0 || be == nil {
		return
	}
	c, _ := st.Cluster(be.Name())
	m.regionBytes.WithLabelValues(region, peerRegion, c.Region, dir).Add(float64(n))
}

// chainedRead counts n record bytes of topic read from its previous
// segment on be (segments.go). Topics with a chain are few and named by
// the operator, so the topic label is bounded by the migrations run.
func (m *Metrics) chainedRead(be *Backend, topic string, n int64) {
	m.chainedReads.WithLabelValues(clusterLabel(be), topic).Add(float64(n))
}

// throttled counts one request of topic of be throttled for d.
func (m *Metrics) throttled(be *Backend, topic string, dir quota.Direction, d time.Duration) {
	k := m.topic(clusterLabel(be), topic).key
	m.quotaThrottled.WithLabelValues(k.cluster, k.topic, dir.String()).Inc()
	m.quotaThrottle.WithLabelValues(k.cluster, k.topic, dir.String()).Observe(quota.MuteFor(d).Seconds())
}

func clusterLabel(be *Backend) string {
	if be == nil {
		return ""
	}
	return be.Name()
}

// clusterMetrics are one backend cluster's series, resolved once.
type clusterMetrics struct {
	requests          prometheus.Counter
	bytesIn, bytesOut prometheus.Counter
	vec               *prometheus.CounterVec // errors, by name
	refreshes         *prometheus.CounterVec // metadata refreshes, by result
	name              string
	codes             sync.Map // int16 → prometheus.Counter
	brokers           sync.Map // broker address → *brokerMetrics
	traffic           *trafficMetrics
}

// forCluster resolves the series of cluster name; with m nil it returns
// unregistered counters, for backends built without metrics (tests).
func (m *Metrics) forCluster(name string) *clusterMetrics {
	if m == nil {
		reqs := prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
		return &clusterMetrics{requests: reqs, bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"}),
			bytesOut:  prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"}),
			vec:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unregistered"}, []string{"cluster", "error"}),
			refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unregistered"}, []string{"cluster", "result"}), name: name}
	}
	return &clusterMetrics{
		requests:  m.clusterRequests.WithLabelValues(name),
		bytesIn:   m.clusterBytes.WithLabelValues(name, "in"),
		bytesOut:  m.clusterBytes.WithLabelValues(name, "out"),
		vec:       m.clusterErrors,
		refreshes: m.metadataRefreshes,
		name:      name,
		traffic:   m.traffic,
	}
}

// metadataRefreshes counts the all-topics refreshes that ended in result.
func (cm *clusterMetrics) metadataRefreshes(result string) prometheus.Counter {
	return cm.refreshes.WithLabelValues(cm.name, result)
}

// errors is the counter of a named error ("dial", "connection").
func (cm *clusterMetrics) errors(what string) prometheus.Counter {
	return cm.vec.WithLabelValues(cm.name, what)
}

// errorCode is the counter of a Kafka error code in answers.
func (cm *clusterMetrics) errorCode(code int16) prometheus.Counter {
	if c, ok := cm.codes.Load(code); ok {
		return c.(prometheus.Counter)
	}
	name := "code_" + strconv.Itoa(int(code))
	if e := kerr.ErrorForCode(code); e != nil {
		if ke, ok := e.(*kerr.Error); ok {
			name = ke.Message
		}
	}
	c := cm.vec.WithLabelValues(cm.name, name)
	cm.codes.Store(code, c)
	return c
}
