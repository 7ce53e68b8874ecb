package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
	"github.com/switchyard-proxy/switchyard/transport"
)

// Admission: gossip is open to any process that reaches the gossip port
// (and holds the key, when gossip is encrypted), and a member's name and
// addresses are only what it claims. Before the leader registers a member
// as a broker, adds it to Raft or promotes it, and before bootstrap counts
// it, the member's name must be proven by one of:
//
//   - the insecure mode (Config.AdmitUnproven): every member is admitted;
//   - the allow-list: Config.AllowPeers or the replicated
//     State.PeerAllowList names it;
//   - its certificate: peer TLS is on and the member's advertised peer
//     port presents a certificate the cluster CA signed whose CN or a DNS
//     SAN is the member's name.
//
// A proof by certificate is cached per (name, peer address); a refusal is
// retried after Timing.ProofRetry. Refused members are counted in
// switchyard_peer_unproven_members and logged once per member and reason.

// admitVia says how a member was admitted ("" when it was not).
type admitVia string

const (
	viaSelf      admitVia = "self"
	viaInsecure  admitVia = "insecure"
	viaAllowList admitVia = "allow-list"
	viaCert      admitVia = "certificate"
)

type proof struct {
	addr string
	err  error // nil: proven
	at   time.Time
}

type admission struct {
	mu     sync.Mutex
	proofs map[string]proof
	// logged is each live member's verdict: its refusal reason, or ""
	// once admitted. A member logs only when its verdict flips, not every
	// reconcile round; the admin API lists the reasons.
	logged map[string]string

	unproven prometheus.Gauge
	refusals prometheus.Counter
}

func newAdmission(reg prometheus.Registerer) *admission {
	a := &admission{
		proofs: map[string]proof{},
		logged: map[string]string{},
		unproven: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_peer_unproven_members",
			Help: "Live gossip members the leader refuses to admit (register, add to Raft, promote) because nothing proves their name.",
		}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_peer_admission_refusals_total",
			Help: "Times a gossip member was found unproven (counted once per member until it is admitted or gone).",
		}),
	}
	reg.MustRegister(a.unproven, a.refusals)
	return a
}

// admit reports how a member is admitted, or why not.
func (n *Node) admit(ctx context.Context, st *fsm.State, name string, m member) (admitVia, error) {
	switch {
	case name == n.cfg.Name:
		return viaSelf, nil
	case n.cfg.AdmitUnproven:
		return viaInsecure, nil
	case st.PeerAllowed(name) || slices.Contains(n.cfg.AllowPeers, name):
		return viaAllowList, nil
	case n.cfg.PeerClientTLS == nil:
		return "", fmt.Errorf("%w: peer TLS is off and no allow-list names %q (allow it: switchyard ctl peers allow %s)", ErrUnproven, name, name)
	case m.meta.Raft == "":
		return "", fmt.Errorf("%w: %q gossips no peer port to prove its certificate on", ErrUnproven, name)
	}
	a := n.admission
	a.mu.Lock()
	p, ok := a.proofs[name]
	a.mu.Unlock()
	if ok && p.addr == m.meta.Raft && (p.err == nil || time.Since(p.at) < n.cfg.Timing.ProofRetry) {
		if p.err != nil {
			return "", p.err
		}
		return viaCert, nil
	}
	pctx, cancel := context.WithTimeout(ctx, n.cfg.Timing.ProofTimeout)
	err := proveByCert(pctx, n.cfg.PeerClientTLS, name, m.meta.Raft)
	cancel()
	a.mu.Lock()
	a.proofs[name] = proof{addr: m.meta.Raft, err: err, at: time.Now()}
	a.mu.Unlock()
	if err != nil {
		return "", err
	}
	return viaCert, nil
}

// admitAll decides every live member at once and reports the verdicts,
// logging a member once when it becomes refused and once when admitted.
func (n *Node) admitAll(ctx context.Context, st *fsm.State, members map[string]member) map[string]bool {
	a := n.admission
	out := make(map[string]bool, len(members))
	refused := 0
	for _, name := range sortedNames(members) {
		m := members[name]
		if !alive(m) {
			continue
		}
		via, err := n.admit(ctx, st, name, m)
		out[name] = err == nil
		a.mu.Lock()
		last, seen := a.logged[name]
		if err != nil {
			refused++
			// The reason is kept current for the admin API, but logged
			// only when the member becomes refused: a probe's error can
			// differ every time (ephemeral ports) and must not log per
			// retry.
			a.logged[name] = err.Error()
			if !seen || last == "" {
				a.refusals.Inc()
				a.mu.Unlock()
				n.log.Warn("not admitting an unproven gossip member: it is not registered, added to raft or presented to clients",
					"peer", name, "kafka", m.meta.Kafka, "raft", m.meta.Raft, "gossip", m.addr, "err", err)
				continue
			}
		} else if !seen || last != "" {
			a.logged[name] = ""
			if via != viaSelf && via != viaInsecure {
				a.mu.Unlock()
				n.log.Info("gossip member admitted", "peer", name, "via", string(via))
				continue
			}
		}
		a.mu.Unlock()
	}
	// Forget members gone from gossip, so a return logs again.
	a.mu.Lock()
	for name := range a.logged {
		if _, ok := members[name]; !ok {
			delete(a.logged, name)
			delete(a.proofs, name)
		}
	}
	a.mu.Unlock()
	a.unproven.Set(float64(refused))
	return out
}

// refused reports whether the leader's last verdict on a live member was a
// refusal. Such a member is never registered or added to Raft, so it never
// receives a log entry, and nothing it gossips (its command set included)
// may hold the cluster back.
func (a *admission) refused(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	reason, seen := a.logged[name]
	return seen && reason != ""
}

// proveByCert dials addr with the cluster's peer TLS client settings and
// checks that the certificate it presents chains to the cluster CA and
// names name. The hostname in addr is not checked: peers advertise IPs
// and names interchangeably, and the name, not the address, is what the
// cluster trusts.
func proveByCert(ctx context.Context, client *tls.Config, name, addr string) error {
	cfg := client.Clone()
	cfg.InsecureSkipVerify = true // verified below, against name instead of addr's host
	var leaf *x509.Certificate
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no certificate presented")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         client.RootCAs,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return err
		}
		leaf = cs.PeerCertificates[0]
		return nil
	}
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %q: peer port %s: %v", ErrUnproven, name, addr, err)
	}
	// The probe never speaks the peer protocol; the peer logs a connection
	// that closed before its handshake.
	_ = c.Close()
	if err := transport.CheckPeerName(leaf, name); err != nil {
		return fmt.Errorf("%w: %q on peer port %s: %w", ErrUnproven, name, addr, err)
	}
	return nil
}

// Admin API: the peer allow-list (docs/admin-api.md).

func (n *Node) getAllowList(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	v := adminapi.AllowList{AllowList: nonNil(st.PeerAllowList), Static: nonNil(slices.Clone(n.cfg.AllowPeers)), Unproven: []adminapi.UnprovenMember{}}
	n.admission.mu.Lock()
	for _, name := range sortedNames(n.admission.logged) {
		if why := n.admission.logged[name]; why != "" {
			v.Unproven = append(v.Unproven, adminapi.UnprovenMember{Name: name, Reason: why})
		}
	}
	n.admission.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (n *Node) putAllowedPeer(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	return n.write(w, r, &fsm.AllowPeer{Name: name}, http.StatusOK, func(fsm.Applied) any { return map[string]string{"name": name} })
}

func (n *Node) deleteAllowedPeer(w http.ResponseWriter, r *http.Request) error {
	return n.write(w, r, &fsm.DisallowPeer{Name: r.PathValue("name")}, http.StatusNoContent, nil)
}
