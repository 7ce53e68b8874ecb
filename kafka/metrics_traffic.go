package kafka

// Traffic and backend-health series (issue 13): records per topic counted
// from batch headers, Kafka error codes per topic, per-client bytes,
// requests and connections, and per-broker latency, connection errors and
// up/down. Every label a client can grow is capped with an "(other)"
// bucket, as the per-topic series are (metrics.go); docs/metrics.md lists
// each series with its bound.
//
// On the hot path a series is resolved once (per connection, per topic,
// per broker connection) and then only incremented: no allocation per
// request in the steady state.

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
)

// OtherClient is every label (client_id, principal, family, region) of
// the client series past the per-client series cap, and of the
// connection gauge's series past it.
const OtherClient = "(other)"

// DefaultMaxClientSeries is the default cap of distinct (client id,
// principal, family, region) tuples with series of their own, and of
// distinct (principal, family, region) tuples in the connection gauge.
const DefaultMaxClientSeries = 1000

// Client address families, the family label of the client series: a
// fixed set, so the label adds no cardinality of its own.
const (
	FamilyIPv4   = "ipv4"
	FamilyIPv6   = "ipv6"
	FamilyUnix   = "unix"
	FamilyInproc = "inproc" // the peer's own in-process clients, and net.Pipe connections in tests
)

// addrFamily is the address family of a client connection.
func addrFamily(nc net.Conn, ip netip.Addr) string {
	if _, ok := nc.(*internalConn); ok {
		return FamilyInproc
	}
	if _, ok := nc.RemoteAddr().(*net.UnixAddr); ok {
		return FamilyUnix
	}
	switch {
	case ip.Is4():
		return FamilyIPv4
	case ip.Is6():
		return FamilyIPv6
	}
	return FamilyInproc
}

// trafficMetrics are the vectors behind the series of this file.
type trafficMetrics struct {
	topicRecords   *prometheus.CounterVec
	topicRequests  *prometheus.CounterVec
	topicErrors    *prometheus.CounterVec
	clientBytes    *prometheus.CounterVec
	clientRequests *prometheus.CounterVec
	clientConns    *prometheus.GaugeVec
	backendLatency *prometheus.HistogramVec
	backendErrors  *prometheus.CounterVec
	brokerUp       *brokerUpCollector

	clientMu   sync.RWMutex
	maxClients int
	clients    map[clientLabel]*clientCounters
	principals map[connLabel]prometheus.Gauge
}

func newTrafficMetrics(reg prometheus.Registerer) *trafficMetrics {
	t := &trafficMetrics{
		maxClients: DefaultMaxClientSeries,
		clients:    map[clientLabel]*clientCounters{},
		principals: map[connLabel]prometheus.Gauge{},
	}
	t.topicRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_topic_records_total",
		Help: "Records per topic, backend cluster and direction (produce, fetch), counted from record batch headers (no decompression; control batches not counted, a legacy message set counts one per message); topics past the cap are counted as \"(other)\".",
	}, []string{"topic", "cluster", "direction"})
	t.topicRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_topic_requests_total",
		Help: "Produce requests naming the topic and fetch answers carrying it (empty long polls included), per topic, backend cluster and direction; topics past the cap are counted as \"(other)\".",
	}, []string{"topic", "cluster", "direction"})
	t.topicErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_topic_errors_total",
		Help: "Partition answers of produce and fetch carrying a Kafka error, per topic, backend cluster and error code name (e.g. NOT_LEADER_OR_FOLLOWER); topics past the cap are counted as \"(other)\".",
	}, []string{"topic", "cluster", "code"})
	t.clientBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_client_bytes_total",
		Help: "Bytes of client requests received (in) and responses written (out), frames included, per client.id, principal, client address family (ipv4, ipv6, unix, inproc) and client region; tuples past the cap (--metrics-max-clients) are counted as \"(other)\".",
	}, []string{"client_id", "principal", "family", "region", "direction"})
	t.clientRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_client_requests_total",
		Help: "Client requests received per client.id, principal, client address family (ipv4, ipv6, unix, inproc) and client region; tuples past the cap (--metrics-max-clients) are counted as \"(other)\".",
	}, []string{"client_id", "principal", "family", "region"})
	t.clientConns = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_kafka_client_connections",
		Help: "Open client connections per principal (User:ANONYMOUS until the connection authenticates), client address family (ipv4, ipv6, unix, inproc) and client region; tuples past the cap are counted as \"(other)\".",
	}, []string{"principal", "family", "region"})
	t.backendLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_backend_request_seconds",
		Help:    "Time from sending a request to a backend broker to reading its answer, client requests forwarded and the proxy's own control exchanges, per cluster and broker address.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"cluster", "broker"})
	t.backendErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_backend_connection_errors_total",
		Help: "Failed dials, broken connections and failed control exchanges with a backend broker, per cluster and broker address.",
	}, []string{"cluster", "broker"})
	t.brokerUp = &brokerUpCollector{
		desc: prometheus.NewDesc("switchyard_backend_broker_up",
			"1 when this peer's last control exchange with the backend broker succeeded (or none failed yet), 0 while it is marked suspect; per cluster and broker address of the current metadata.",
			[]string{"cluster", "broker"}, nil),
		backends: map[*Backend]struct{}{},
	}
	reg.MustRegister(t.topicRecords, t.topicRequests, t.topicErrors, t.clientBytes, t.clientRequests, t.clientConns,
		t.backendLatency, t.backendErrors, t.brokerUp)
	return t
}

// SetMaxClientSeries sets the cap of distinct (client id, principal,
// family, region) tuples, and of (principal, family, region) tuples in the
// connection gauge, with series of their own (n <= 0: the default). Set it
// before serving: tuples already counted keep their series.
func (m *Metrics) SetMaxClientSeries(n int) {
	if n <= 0 {
		n = DefaultMaxClientSeries
	}
	m.traffic.clientMu.Lock()
	m.traffic.maxClients = n
	m.traffic.clientMu.Unlock()
}

// recordCount counts the records of the record batches in b (a
// partition's Records field) from their headers, without decompressing:
// a v2 batch counts its header's record count unless it is a control
// batch (transaction markers are not data); a legacy (v0/v1) message
// counts one, a compressed wrapper too. It stops at the first batch that
// is not whole: a fetch answer may end with a truncated one, which the
// client fetches again.
func recordCount(b []byte) int {
	const (
		recordsOff  = 57 // int32: records in the batch
		controlAttr = 0x20
	)
	n := 0
	for len(b) > batchMagicOff {
		size := int(int32(binary.BigEndian.Uint32(b[batchLengthOff:])))
		end := size + batchLengthOff + 4
		if size < 0 || end > len(b) || end <= batchMagicOff {
			break
		}
		if b[batchMagicOff] == 2 {
			if end < batchHeaderLen {
				break
			}
			if binary.BigEndian.Uint16(b[batchAttrOff:])&controlAttr == 0 {
				if c := int(int32(binary.BigEndian.Uint32(b[recordsOff:]))); c > 0 {
					n += c
				}
			}
		} else {
			n++
		}
		b = b[end:]
	}
	return n
}

// topicRecords counts records of tc in direction dir.
func (tc *topicCounters) count(dir string, records int) {
	if records <= 0 {
		return
	}
	if dir == "produce" {
		tc.produceRecs.Add(float64(records))
	} else {
		tc.fetchRecs.Add(float64(records))
	}
}

// topicError counts one partition answer of topic on be with code.
func (m *Metrics) topicError(be *Backend, topic string, code int16) {
	tc := m.topic(clusterLabel(be), topic)
	if c, ok := tc.errs.Load(code); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.traffic.topicErrors.WithLabelValues(tc.key.topic, tc.key.cluster, errorCodeName(code))
	tc.errs.Store(code, c)
	c.Inc()
}

// errorCodeName is Kafka's name of code ("code_N" for a code franz-go
// does not know): at most one label value per int16. Code 6 has Kafka's
// name since 2.6 (KIP-392), NOT_LEADER_OR_FOLLOWER; franz-go keeps the
// old one.
func errorCodeName(code int16) string {
	if code == kerr.NotLeaderForPartition.Code {
		return "NOT_LEADER_OR_FOLLOWER"
	}
	if e := kerr.ErrorForCode(code); e != nil {
		if ke, ok := e.(*kerr.Error); ok {
			return ke.Message
		}
	}
	return "code_" + strconv.Itoa(int(code))
}

// clientLabel is one per-client series: a client id, a principal, the
// client's address family and its region.
type clientLabel struct{ clientID, principal, family, region string }

// otherClient is the label set of every tuple past the cap.
var otherClient = clientLabel{OtherClient, OtherClient, OtherClient, OtherClient}

// clientCounters are one client tuple's series.
type clientCounters struct {
	requests, in, out prometheus.Counter
}

// client resolves the series of (clientID, principal, family, region); nil
// clientID (a null client.id) is "". Past the cap, and for ids that are
// not UTF-8, the tuple is otherClient's. family is one of the Family
// constants and region a defined region or a peer's (fsm.ClientRegion), so
// neither grows the label space beyond the cap.
func (m *Metrics) client(clientID *string, principal, family, region string) *clientCounters {
	t := m.traffic
	key := clientLabel{principal: principal, family: family, region: region}
	if clientID != nil {
		key.clientID = *clientID
	}
	if !utf8.ValidString(key.clientID) || !utf8.ValidString(key.principal) || !utf8.ValidString(key.region) {
		key = otherClient
	}
	t.clientMu.RLock()
	cc, ok := t.clients[key]
	t.clientMu.RUnlock()
	if ok {
		return cc
	}
	t.clientMu.Lock()
	defer t.clientMu.Unlock()
	if cc, ok := t.clients[key]; ok {
		return cc
	}
	if len(t.clients) >= t.maxClients {
		key = otherClient
		if cc, ok := t.clients[key]; ok {
			return cc
		}
	}
	cc = &clientCounters{
		requests: t.clientRequests.WithLabelValues(key.clientID, key.principal, key.family, key.region),
		in:       t.clientBytes.WithLabelValues(key.clientID, key.principal, key.family, key.region, "in"),
		out:      t.clientBytes.WithLabelValues(key.clientID, key.principal, key.family, key.region, "out"),
	}
	t.clients[key] = cc
	return cc
}

// connLabel is one series of the connection gauge.
type connLabel struct{ principal, family, region string }

// connGauge resolves the connection gauge of (principal, family, region),
// capped like the client tuples.
func (m *Metrics) connGauge(principal, family, region string) prometheus.Gauge {
	t := m.traffic
	key := connLabel{principal, family, region}
	if !utf8.ValidString(principal) || !utf8.ValidString(region) {
		key = connLabel{OtherClient, OtherClient, OtherClient}
	}
	t.clientMu.RLock()
	g, ok := t.principals[key]
	t.clientMu.RUnlock()
	if ok {
		return g
	}
	t.clientMu.Lock()
	defer t.clientMu.Unlock()
	if g, ok := t.principals[key]; ok {
		return g
	}
	if len(t.principals) >= t.maxClients {
		key = connLabel{OtherClient, OtherClient, OtherClient}
		if g, ok := t.principals[key]; ok {
			return g
		}
	}
	g = t.clientConns.WithLabelValues(key.principal, key.family, key.region)
	t.principals[key] = g
	return g
}

// clientStats is a connection's view of its client series, owned by the
// reader goroutine: re-resolved only when the client id, the principal or
// the client's region changes (the family is fixed per connection).
type clientStats struct {
	family    string  // the connection's address family, set once
	id        *string // the client id the series were resolved for
	principal string
	region    string
	counters  *clientCounters
	conn      prometheus.Gauge // the connection gauge it is counted in
	connOf    connLabel        // the labels conn was resolved for
}

// noteRequest counts a request of n bytes under the connection's current
// client id, principal and region (the request's, set by newRequest).
func (c *clientConn) noteRequest(n int) {
	cs := &c.stats
	if cs.counters == nil || cs.id != c.clientID || cs.principal != c.principal || cs.region != c.region {
		cs.id, cs.principal, cs.region = c.clientID, c.principal, c.region
		cs.counters = c.s.metrics.client(c.clientID, c.principal, c.family(), c.region)
	}
	cs.counters.requests.Inc()
	cs.counters.in.Add(float64(n))
}

// family is the connection's address family label, computed once.
func (c *clientConn) family() string {
	if c.stats.family == "" {
		c.stats.family = addrFamily(c.nc, c.clientIP)
	}
	return c.stats.family
}

// notePrincipal moves the connection to its gauge series when the
// principal (authentication, re-authentication) or the client's region (a
// region definition changed) did.
func (c *clientConn) notePrincipal() {
	region := c.region
	if st := c.s.view.State(); st != nil {
		region = c.clientRegion(st)
	}
	l := connLabel{c.principal, c.family(), region}
	if c.stats.conn != nil && c.stats.connOf == l {
		return
	}
	g := c.s.metrics.connGauge(l.principal, l.family, l.region)
	c.stats.connOf = l
	if g == c.stats.conn {
		return
	}
	if c.stats.conn != nil {
		c.stats.conn.Dec()
	}
	g.Inc()
	c.stats.conn = g
}

// connClosed takes the connection out of its principal's gauge.
func (c *clientConn) connClosed() {
	if c.stats.conn != nil {
		c.stats.conn.Dec()
		c.stats.conn = nil
	}
}

// brokerMetrics are one backend broker's series.
type brokerMetrics struct {
	latency prometheus.Observer
	errors  prometheus.Counter
}

// broker resolves the series of the broker at addr; addresses are those
// of the cluster's metadata and bootstrap list.
func (cm *clusterMetrics) broker(addr string) *brokerMetrics {
	if b, ok := cm.brokers.Load(addr); ok {
		return b.(*brokerMetrics)
	}
	bm := &brokerMetrics{latency: noObserver{}, errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})}
	if cm.traffic != nil {
		bm = &brokerMetrics{
			latency: cm.traffic.backendLatency.WithLabelValues(cm.name, addr),
			errors:  cm.traffic.backendErrors.WithLabelValues(cm.name, addr),
		}
	}
	b, _ := cm.brokers.LoadOrStore(addr, bm)
	return b.(*brokerMetrics)
}

type noObserver struct{}

func (noObserver) Observe(float64) {}

// observeSince records a backend answer that took from sent to now; a
// nil bm (an upstream built without them, in tests) records nothing.
func (bm *brokerMetrics) observeSince(sent time.Time) {
	if bm != nil {
		bm.latency.Observe(time.Since(sent).Seconds())
	}
}

// failed counts a connection error.
func (bm *brokerMetrics) failed() {
	if bm != nil {
		bm.errors.Inc()
	}
}

// brokerUpCollector reports switchyard_backend_broker_up at scrape time
// from the running backends' health (Backend.suspect): nothing on the data
// path updates it.
type brokerUpCollector struct {
	desc     *prometheus.Desc
	mu       sync.Mutex
	backends map[*Backend]struct{}
}

func (c *brokerUpCollector) track(b *Backend) {
	c.mu.Lock()
	c.backends[b] = struct{}{}
	c.mu.Unlock()
}

func (c *brokerUpCollector) untrack(b *Backend) {
	c.mu.Lock()
	delete(c.backends, b)
	c.mu.Unlock()
}

func (c *brokerUpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *brokerUpCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	bes := make([]*Backend, 0, len(c.backends))
	for b := range c.backends {
		bes = append(bes, b)
	}
	c.mu.Unlock()
	// Two backends of one name (a data plane restarting) would report the
	// same series twice, which a scrape refuses: the first one wins.
	seen := map[[2]string]bool{}
	for _, b := range bes {
		for addr, up := range b.brokerHealth() {
			k := [2]string{b.Name(), addr}
			if seen[k] {
				continue
			}
			seen[k] = true
			v := 0.0
			if up {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, b.Name(), addr)
		}
	}
}

// brokerHealth answers, for each broker address of the current metadata,
// whether it is healthy (not marked suspect).
func (b *Backend) brokerHealth() map[string]bool {
	bs := b.brokers.Load()
	out := make(map[string]bool, len(bs.addrs))
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	for _, addr := range bs.addrs {
		_, bad := b.suspect[addr]
		out[addr] = !bad
	}
	return out
}
