package kafka

// ApiVersions (key 18): v0–v5 (whatever kmsg knows), answered by the proxy.
//
// Each served key is advertised with the intersection of what kmsg parses,
// what every broker of every backend cluster supports and any cap in
// versionCaps; keys the proxy does not serve, or some cluster lacks, are
// left out. A version newer than ours gets a v0 answer with
// UNSUPPORTED_VERSION and our ApiVersions range (KIP-511), so the client
// retries at a version we speak. Feature flags (KIP-584) are the default
// cluster's: they describe a backend's behaviour, and clients rarely read
// them. transaction.version is capped at 1: KIP-890 part 2 is not served
// (txn_clusters.go).
//
// A cluster whose brokers have not said their versions yet (a peer just
// restarted, a cluster just defined) is waited for, within its
// DialTimeout (5 s at most), before the answer: see awaitVersions.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleApiVersions(r *request) error {
	c, start := r.c, r.start
	resp := kmsg.NewPtrApiVersionsResponse()
	maxV := kmsg.NewPtrApiVersionsRequest().MaxVersion()
	if r.version > maxV {
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 18, MinVersion: 0, MaxVersion: maxV}}
		return c.respond(r, start, resp)
	}
	resp.Version = r.version
	if err := c.awaitVersions(); err != nil {
		return err
	}
	resp.ApiKeys = c.s.advertisedVersions()
	if be := r.defaultBackend(); be != nil {
		if vs := be.versions.Load(); vs != nil {
			resp.SupportedFeatures = vs.supported
			resp.FinalizedFeatures = capFeatures(vs.finalized)
			resp.FinalizedFeaturesEpoch = vs.epoch
		}
	}
	return c.respond(r, start, resp)
}

// maxVersionsWait bounds how long ApiVersions waits for a cluster's first
// versions (awaitVersions).
const maxVersionsWait = 5 * time.Second

// awaitVersions waits, within the cluster's DialTimeout (at most
// maxVersionsWait), for every cluster whose brokers' versions have not
// arrived yet: a peer just started, or a cluster just defined. Answered
// at once, ApiVersions would leave out every key those clusters serve,
// and clients would drop the connection (franz-go: "closed the connection
// immediately during api versions negotiation") and count the peer as
// failing. Only this connection's reader waits; past the bound the answer
// says what is known.
func (c *clientConn) awaitVersions() error {
	var deadline <-chan time.Time
	for _, be := range c.s.backendSet().sorted {
		if be.versions.Load() != nil {
			continue
		}
		if deadline == nil {
			if err := c.flushUpstreams(); err != nil {
				return err
			}
			t := time.NewTimer(min(be.cfg.DialTimeout, maxVersionsWait))
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-be.Ready():
		case <-deadline:
			return nil
		case <-c.closing:
			return ErrClosed
		}
	}
	return nil
}

// advertisedVersions lists what the proxy serves for every key it routes.
func (s *Server) advertisedVersions() []kmsg.ApiVersionsResponseApiKey {
	backends := s.backendSet().sorted
	var out []kmsg.ApiVersionsResponseApiKey
	for k := int16(0); k <= maxKey; k++ {
		if s.handlers[k] == nil {
			continue
		}
		req := kmsg.RequestForKey(k)
		lo, hi := int16(0), req.MaxVersion()
		if k != 18 && k != 17 && k != 36 { // answered by the proxy (sasl.go)
			if len(backends) == 0 {
				continue
			}
			ok := true
			for _, be := range backends {
				br, has := be.versionsFor(k)
				if !has {
					ok = false
					break
				}
				lo, hi = max(lo, br.min), min(hi, br.max)
			}
			if !ok {
				continue
			}
		}
		if cap, ok := versionCaps[k]; ok {
			hi = min(hi, cap)
		}
		if lo > hi {
			continue
		}
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: lo, MaxVersion: hi})
	}
	return out
}

// txnVersionCap is the highest transaction.version finalized level
// advertised: level 2 (KIP-890 part 2) has clients add partitions
// implicitly by producing and EndTxn bump the epoch on one cluster, which
// transactions that follow their partitions cannot route (txn_clusters.go).
const txnVersionCap = 1

// capFeatures returns finalized with transaction.version capped (a copy
// when it changes anything).
func capFeatures(finalized []kmsg.ApiVersionsResponseFinalizedFeature) []kmsg.ApiVersionsResponseFinalizedFeature {
	for i, f := range finalized {
		if f.Name != "transaction.version" || f.MaxVersionLevel <= txnVersionCap {
			continue
		}
		out := append([]kmsg.ApiVersionsResponseFinalizedFeature(nil), finalized...)
		out[i].MaxVersionLevel = txnVersionCap
		out[i].MinVersionLevel = min(out[i].MinVersionLevel, txnVersionCap)
		return out
	}
	return finalized
}
