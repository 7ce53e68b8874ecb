package kafka

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OtherTopic is the label that stands for every topic past the per-topic
// series cap. Kafka topic names cannot contain parentheses, so it never
// collides with a real topic.
const OtherTopic = "(other)"

// Metrics are the data plane's Prometheus metrics. Per-topic series are
// capped at MaxTopics distinct topics; later topics are counted as
// OtherTopic.
type Metrics struct {
	connections        prometheus.Gauge
	closedConns        *prometheus.CounterVec
	upstreamDialErrors prometheus.Counter
	requests           [kmsg.MaxKey + 1]prometheus.Counter
	bytesIn            [kmsg.MaxKey + 1]prometheus.Counter
	bytesOut           [kmsg.MaxKey + 1]prometheus.Counter
	latency            [kmsg.MaxKey + 1]prometheus.Observer
	topicBytes         *prometheus.CounterVec

	maxTopics int
	mu        sync.RWMutex
	topics    map[string]*topicCounters
}

type topicCounters struct {
	produce, fetch prometheus.Counter
}

// NewMetrics registers the data-plane metrics on reg.
func NewMetrics(reg prometheus.Registerer, maxTopics int) *Metrics {
	if maxTopics <= 0 {
		maxTopics = 1000
	}
	m := &Metrics{maxTopics: maxTopics, topics: map[string]*topicCounters{}}
	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_kafka_connections",
		Help: "Open client connections.",
	})
	m.closedConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_connections_closed_total",
		Help: "Client connections closed, by reason (normal, bad_request, backend_mismatch, error).",
	}, []string{"reason"})
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
		Help: "Record-batch bytes per topic and direction (produce, fetch); topics past the cap are counted as \"(other)\".",
	}, []string{"topic", "direction"})
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
	reg.MustRegister(m.connections, m.closedConns, m.upstreamDialErrors, reqs, in, out, lat, m.topicBytes)
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

func (m *Metrics) closed(reason string) { m.closedConns.WithLabelValues(reason).Inc() }

func (m *Metrics) topic(name string) *topicCounters {
	// A topic name comes from client bytes before any broker checked it;
	// Prometheus label values must be UTF-8 (it panics otherwise).
	if !utf8.ValidString(name) || name == "" {
		name = OtherTopic
	}
	m.mu.RLock()
	tc, ok := m.topics[name]
	m.mu.RUnlock()
	if ok {
		return tc
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if tc, ok := m.topics[name]; ok {
		return tc
	}
	label := name
	if len(m.topics) >= m.maxTopics {
		// Past the cap nothing new is stored: memory stays bounded too.
		if tc, ok := m.topics[OtherTopic]; ok {
			return tc
		}
		label = OtherTopic
	}
	tc = &topicCounters{
		produce: m.topicBytes.WithLabelValues(label, "produce"),
		fetch:   m.topicBytes.WithLabelValues(label, "fetch"),
	}
	m.topics[label] = tc
	return tc
}

func (m *Metrics) produced(topic string, n int) {
	if n > 0 {
		m.topic(topic).produce.Add(float64(n))
	}
}

func (m *Metrics) fetched(topic string, n int) {
	if n > 0 {
		m.topic(topic).fetch.Add(float64(n))
	}
}
