package kafka

// Topic quotas, Kafka-native (KIP-219).
//
// A request is admitted whatever the quota: produce data is never dropped or
// refused. Its bytes are charged per (topic, direction) to the peer's share
// of the cluster-wide quota (package quota; the node drives the shares).
// The answer goes back at once with throttle_time_ms = max(the proxy's
// throttle, the broker's), and the proxy stops reading from that client
// connection until the throttle ends. Produce is charged its record-batch
// bytes when the request arrives, fetch its record bytes when the answer
// does. Produce before v6, Fetch before v8 and acks=0 produce are throttled
// by the mute alone: those clients do not wait on throttle_time_ms (as
// Kafka brokers do). A fetch's max_bytes is capped to what the topic's
// share allows soon, so one fetch cannot run far past the quota; answers
// are never synthesised, so fetch sessions are never disturbed.

import (
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/quota"
)

// Limiter is what the data plane needs of the cluster-wide quotas: the
// node's *quota.Limiter.
type Limiter interface {
	Charge(k quota.Key, n int64, now time.Time) quota.Throttle
	FetchCap(k quota.Key, clientMax int32, now time.Time) int32
}

// muteCheck bounds how long a muted reader sleeps before it looks again: a
// grant that raises the share can end a mute early.
const muteCheck = 50 * time.Millisecond

// mute is a connection's pending mute: the longest throttle charged to it.
type mute struct {
	mu sync.Mutex
	th quota.Throttle
	on bool
}

// set records th when it mutes longer than the mute already pending.
func (m *mute) set(th quota.Throttle) {
	if th.Delay <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on || th.MuteEnd().After(m.th.MuteEnd()) {
		m.th, m.on = th, true
	}
}

// end returns when the connection may be read again (zero when not muted).
func (m *mute) end() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on {
		return time.Time{}
	}
	return m.th.MuteEnd()
}

func (m *mute) clear() {
	m.mu.Lock()
	m.on = false
	m.th = quota.Throttle{}
	m.mu.Unlock()
}

// waitMute holds the reader while the connection is muted, sending what is
// queued upstream first. Responses keep flowing: only reading stops.
func (c *clientConn) waitMute() error {
	end := c.mute.end()
	if end.IsZero() {
		return nil
	}
	if err := c.flushUpstreams(); err != nil {
		return err
	}
	for {
		left := time.Until(end)
		if left <= 0 {
			c.mute.clear()
			return nil
		}
		t := time.NewTimer(min(left, muteCheck))
		select {
		case <-c.closing:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		end = c.mute.end()
		if end.IsZero() {
			return nil
		}
	}
}

// charge charges n bytes of topic in direction dir, when quotas are on and
// the topic is served, and returns the throttle (the zero Throttle when
// none).
func (c *clientConn) charge(tt topicTarget, dir quota.Direction, n int, now time.Time) quota.Throttle {
	if c.s.cfg.Limiter == nil || tt.be == nil || n <= 0 {
		return quota.Throttle{}
	}
	th := c.s.cfg.Limiter.Charge(quota.Key{Topic: tt.name, Dir: dir}, int64(n), now)
	if th.Delay > 0 {
		c.s.metrics.throttled(tt.be, tt.metricName(), dir, th.Delay)
	}
	return th
}
