package fsm

import (
	"encoding/json"
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what the replicated state holds. They keep log entries and
// snapshots small and names safe in URLs, metric labels and log lines.
const (
	maxNameLen      = 255     // peer, cluster, job id and kind names
	maxTopicLen     = 249     // Kafka's own limit on a topic name
	maxTextLen      = 255     // regions, versions, user names, group prefixes
	maxPathLen      = 4096    // file paths
	maxAddrLen      = 1024    // host:port addresses
	maxJobSpecBytes = 1 << 20 // a job's Spec
)

// The item validators below check one value on its own. They are shared by
// State.Validate (the whole-state invariants, run on Restore) and by every
// command's Validate (run before proposing and again inside Apply), so the
// admin API, the leader and every follower apply the same rules.

// validName accepts 1..maxNameLen bytes of [A-Za-z0-9._-].
func validName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s has an empty name", ErrInvalid, what)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%w: %s name is %d bytes, at most %d allowed", ErrInvalid, what, len(s), maxNameLen)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !nameRune(r) }); i >= 0 {
		return fmt.Errorf("%w: %s name %q has %q at byte %d; use letters, digits, '.', '_' and '-'", ErrInvalid, what, s, s[i:i+1], i)
	}
	return nil
}

func nameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// validTopic accepts a Kafka topic name (or, with prefix, a topic-name
// prefix): 1..249 bytes of [A-Za-z0-9._-], and not "." or "..".
func validTopic(what, s string, prefix bool) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(s) > maxTopicLen {
		return fmt.Errorf("%w: %s is %d bytes, Kafka allows at most %d", ErrInvalid, what, len(s), maxTopicLen)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !nameRune(r) }); i >= 0 {
		return fmt.Errorf("%w: %s %q has %q at byte %d; Kafka topic names use letters, digits, '.', '_' and '-'", ErrInvalid, what, s, s[i:i+1], i)
	}
	if !prefix && (s == "." || s == "..") {
		return fmt.Errorf("%w: %s %q is not a legal Kafka topic name", ErrInvalid, what, s)
	}
	return nil
}

// validText accepts valid UTF-8 without control characters, at most max
// bytes; empty is allowed.
func validText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalid, what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalid, what, s)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%w: %s %q has a control character at byte %d", ErrInvalid, what, s, i)
	}
	return nil
}

// validHostPort accepts host:port with a non-empty port.
func validHostPort(what, s string) error {
	if err := validText(what, s, maxAddrLen); err != nil {
		return err
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return fmt.Errorf("%w: %s %q is not host:port", ErrInvalid, what, s)
	}
	return nil
}

// validFile accepts an absolute slash-separated path (empty is allowed).
// path.IsAbs, not filepath.IsAbs: the answer must not depend on the OS of
// the peer applying the command.
func validFile(what, s string) error {
	if s == "" {
		return nil
	}
	if err := validText(what, s, maxPathLen); err != nil {
		return err
	}
	if !path.IsAbs(s) {
		return fmt.Errorf("%w: %s %q is not an absolute path", ErrInvalid, what, s)
	}
	return nil
}

// validatePeer checks one peer on its own. A peer's Name may be empty in a
// hand-built State; RegisterPeer requires one.
func validatePeer(p Peer) error {
	if p.ID < 0 {
		return fmt.Errorf("%w: peer %q has negative id %d", ErrInvalid, p.Name, p.ID)
	}
	what := fmt.Sprintf("peer %d", p.ID)
	if p.Name != "" {
		if err := validName(what, p.Name); err != nil {
			return err
		}
	}
	if err := validHostPort(what+" kafka address", p.KafkaAddr); err != nil {
		return err
	}
	for _, a := range []struct{ what, addr string }{
		{"admin address", p.AdminAddr}, {"raft address", p.RaftAddr}, {"gossip address", p.GossipAddr},
	} {
		if a.addr != "" {
			if err := validHostPort(what+" "+a.what, a.addr); err != nil {
				return err
			}
		}
	}
	if err := validText(what+" region", p.Region, maxTextLen); err != nil {
		return err
	}
	if err := validText(what+" version", p.Version, maxTextLen); err != nil {
		return err
	}
	seen := make(map[BrokerRef]bool, len(p.LocalBrokers))
	for _, b := range p.LocalBrokers {
		if err := validName(what+" local broker cluster", b.Cluster); err != nil {
			return err
		}
		if b.BrokerID < 0 {
			return fmt.Errorf("%w: %s local broker %d of cluster %q has a negative id", ErrInvalid, what, b.BrokerID, b.Cluster)
		}
		if seen[b] {
			return fmt.Errorf("%w: %s lists local broker %d of cluster %q twice", ErrInvalid, what, b.BrokerID, b.Cluster)
		}
		seen[b] = true
	}
	return nil
}

// validateCluster checks one backend cluster on its own.
func validateCluster(c Cluster) error {
	if c.Name == "" {
		return fmt.Errorf("%w: cluster with empty name", ErrInvalid)
	}
	if err := validName("cluster", c.Name); err != nil {
		return err
	}
	what := fmt.Sprintf("cluster %q", c.Name)
	if len(c.Bootstrap) == 0 {
		return fmt.Errorf("%w: %s has no bootstrap servers", ErrInvalid, what)
	}
	for _, b := range c.Bootstrap {
		if err := validHostPort(what+" bootstrap server", b); err != nil {
			return err
		}
	}
	if err := validText(what+" region", c.Region, maxTextLen); err != nil {
		return err
	}
	for _, d := range []struct {
		what string
		ms   int64
	}{{"down after", c.DownAfterMS}, {"up after", c.UpAfterMS}, {"failback drain", c.FailbackDrainMS}} {
		if d.ms < 0 || d.ms > MaxFailoverDelayMS {
			return fmt.Errorf("%w: %s %s of %dms is outside 0 (the default) to %dms", ErrInvalid, what, d.what, d.ms, MaxFailoverDelayMS)
		}
	}
	if err := validateClusterTLS(what, c.TLS); err != nil {
		return err
	}
	return validateClusterSASL(what, c.SASL)
}

func validateTopicRoute(r TopicRoute) error {
	if err := validTopic("route topic", r.Topic, false); err != nil {
		return err
	}
	if err := validName(fmt.Sprintf("route for topic %q: cluster", r.Topic), r.Cluster); err != nil {
		return err
	}
	return validateTargets(fmt.Sprintf("route for topic %q", r.Topic), r.Cluster, r.RouteTargets)
}

func validatePrefixRoute(what string, r PrefixRoute, topic bool) error {
	if topic {
		if err := validTopic(what+" prefix", r.Prefix, true); err != nil {
			return err
		}
	} else if err := validGroupPrefix(what+" prefix", r.Prefix); err != nil {
		return err
	}
	if err := validName(fmt.Sprintf("%s %q: cluster", what, r.Prefix), r.Cluster); err != nil {
		return err
	}
	return validateTargets(fmt.Sprintf("%s %q", what, r.Prefix), r.Cluster, r.RouteTargets)
}

// validGroupPrefix: Kafka group ids are any string, so a group prefix is any
// non-empty text. An empty prefix would shadow the default cluster.
func validGroupPrefix(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty; set the default cluster instead", ErrInvalid, what)
	}
	return validText(what, s, maxTextLen)
}

func validateQuota(q Quota) error {
	what := "quota topic"
	if q.Prefix {
		what = "quota prefix"
	}
	if err := validTopic(what, q.Topic, q.Prefix); err != nil {
		return err
	}
	if q.ProduceBytesPerSec < 0 || q.FetchBytesPerSec < 0 {
		return fmt.Errorf("%w: %s %q has a negative rate (produce %d, fetch %d bytes/s); use 0 for no limit", ErrInvalid, what, q.Topic, q.ProduceBytesPerSec, q.FetchBytesPerSec)
	}
	return nil
}

func validateJob(j Job) error {
	if err := validName("job", j.ID); err != nil {
		return err
	}
	what := fmt.Sprintf("job %q", j.ID)
	if err := validName(what+" kind", j.Kind); err != nil {
		return err
	}
	if !j.State.known() {
		return fmt.Errorf("%w: %s state %q is not one of %s, %s, %s, %s, %s", ErrInvalid, what, j.State, JobPending, JobRunning, JobSucceeded, JobFailed, JobCancelled)
	}
	if len(j.Spec) > maxJobSpecBytes {
		return fmt.Errorf("%w: %s spec is %d bytes, at most %d allowed", ErrInvalid, what, len(j.Spec), maxJobSpecBytes)
	}
	if len(j.Spec) > 0 && !json.Valid(j.Spec) {
		return fmt.Errorf("%w: %s spec is not valid JSON", ErrInvalid, what)
	}
	// The limit is on the form stored in the state and snapshots.
	if n := len(canonicalSpec(j.Spec)); n > maxJobSpecBytes {
		return fmt.Errorf("%w: %s spec is %d bytes, at most %d allowed", ErrInvalid, what, n, maxJobSpecBytes)
	}
	if j.CreatedAt <= 0 {
		return fmt.Errorf("%w: %s created_at %d is not a unix time in milliseconds", ErrInvalid, what, j.CreatedAt)
	}
	if j.UpdatedAt < j.CreatedAt {
		return fmt.Errorf("%w: %s updated_at %d is before created_at %d", ErrInvalid, what, j.UpdatedAt, j.CreatedAt)
	}
	return nil
}

// Validate checks the invariants every State must hold: valid, uniquely
// named clusters; peers sorted by unique id with unique names and Kafka and
// Raft addresses, whose local brokers name known clusters and are claimed by
// one peer only; routes, quotas and jobs sorted, unique, and naming known
// clusters. A State the FSM produced always passes.
func (s *State) Validate() error {
	return s.validate(false)
}

// validate with canonical also demands what the FSM itself maintains but a
// hand-built State need not: clusters sorted by name. Restore uses it.
func (s *State) validate(canonical bool) error {
	if s.ClusterID != "" {
		if err := validClusterID(s.ClusterID); err != nil {
			return err
		}
	}
	clusters := make(map[string]bool, len(s.Clusters))
	for i, c := range s.Clusters {
		if err := validateCluster(c); err != nil {
			return err
		}
		if clusters[c.Name] {
			return fmt.Errorf("%w: cluster %q defined twice", ErrInvalid, c.Name)
		}
		if canonical && i > 0 && s.Clusters[i-1].Name > c.Name {
			return fmt.Errorf("%w: clusters not sorted by name at %q", ErrInvalid, c.Name)
		}
		clusters[c.Name] = true
	}
	if err := validatePeers(s.Peers); err != nil {
		return err
	}
	if err := validateRoutes(&s.Routes, clusters); err != nil {
		return err
	}
	for i, q := range s.Quotas {
		if err := validateQuota(q); err != nil {
			return err
		}
		if i > 0 && cmpQuotaKeys(s.Quotas[i-1].key(), q.key()) >= 0 {
			return fmt.Errorf("%w: quotas not sorted by unique rule at %q", ErrInvalid, q.Topic)
		}
	}
	if len(s.PeerAllowList) > MaxAllowedPeers {
		return fmt.Errorf("%w: peer allow-list holds %d names, at most %d", ErrInvalid, len(s.PeerAllowList), MaxAllowedPeers)
	}
	for i, name := range s.PeerAllowList {
		if err := validName("allowed peer", name); err != nil {
			return err
		}
		if i > 0 && s.PeerAllowList[i-1] >= name {
			return fmt.Errorf("%w: peer allow-list not sorted or repeats %q", ErrInvalid, name)
		}
	}
	if err := validateFailover(&s.Failover, clusters); err != nil {
		return err
	}
	if err := validateMigrations(s, clusters); err != nil {
		return err
	}
	if err := validateOffsetResets(s); err != nil {
		return err
	}
	if err := validateRegions(s.Regions); err != nil {
		return err
	}
	if err := validateUsers(s.Users); err != nil {
		return err
	}
	if err := validateACLs(s.ACLs); err != nil {
		return err
	}
	for i, j := range s.Jobs {
		if err := validateJob(j); err != nil {
			return err
		}
		if i > 0 && s.Jobs[i-1].ID >= j.ID {
			return fmt.Errorf("%w: jobs not sorted by unique id at %q", ErrInvalid, j.ID)
		}
	}
	return nil
}

func validatePeers(peers []Peer) error {
	names := map[string]int32{}
	kafkaAddrs := map[string]int32{}
	raftAddrs := map[string]int32{}
	brokers := map[BrokerRef]int32{}
	for i, p := range peers {
		if i > 0 && peers[i-1].ID >= p.ID {
			return fmt.Errorf("%w: peers not sorted by unique id at id %d", ErrInvalid, p.ID)
		}
		if err := validatePeer(p); err != nil {
			return err
		}
		if p.Name != "" {
			if other, dup := names[p.Name]; dup {
				return fmt.Errorf("%w: peers %d and %d share name %q", ErrInvalid, other, p.ID, p.Name)
			}
			names[p.Name] = p.ID
		}
		if other, dup := kafkaAddrs[p.KafkaAddr]; dup {
			return fmt.Errorf("%w: peers %d and %d share kafka address %s", ErrInvalid, other, p.ID, p.KafkaAddr)
		}
		kafkaAddrs[p.KafkaAddr] = p.ID
		if p.RaftAddr != "" {
			if other, dup := raftAddrs[p.RaftAddr]; dup {
				return fmt.Errorf("%w: peers %d and %d share raft address %s", ErrInvalid, other, p.ID, p.RaftAddr)
			}
			raftAddrs[p.RaftAddr] = p.ID
		}
		for _, b := range p.LocalBrokers {
			if other, dup := brokers[b]; dup {
				return fmt.Errorf("%w: peers %d and %d both list broker %d of cluster %q as local", ErrInvalid, other, p.ID, b.BrokerID, b.Cluster)
			}
			brokers[b] = p.ID
		}
	}
	return nil
}

func validateRoutes(r *Routes, clusters map[string]bool) error {
	has := func(c string) bool { return clusters[c] }
	for i, t := range r.Topics {
		if err := validateTopicRoute(t); err != nil {
			return err
		}
		if i > 0 && r.Topics[i-1].Topic >= t.Topic {
			return fmt.Errorf("%w: topic routes not sorted by unique topic at %q", ErrInvalid, t.Topic)
		}
		if !clusters[t.Cluster] {
			return fmt.Errorf("%w: route for topic %q names cluster %q", ErrUnknownCluster, t.Topic, t.Cluster)
		}
		if c := t.missingCluster(has); c != "" {
			return fmt.Errorf("%w: route for topic %q targets cluster %q", ErrUnknownCluster, t.Topic, c)
		}
	}
	for _, list := range []struct {
		what  string
		rules []PrefixRoute
		topic bool
	}{{"prefix route", r.Prefixes, true}, {"group prefix route", r.GroupPrefixes, false}} {
		for i, p := range list.rules {
			if err := validatePrefixRoute(list.what, p, list.topic); err != nil {
				return err
			}
			if i > 0 && list.rules[i-1].Prefix >= p.Prefix {
				return fmt.Errorf("%w: %ss not sorted by unique prefix at %q", ErrInvalid, list.what, p.Prefix)
			}
			if !clusters[p.Cluster] {
				return fmt.Errorf("%w: %s %q names cluster %q", ErrUnknownCluster, list.what, p.Prefix, p.Cluster)
			}
			if c := p.missingCluster(has); c != "" {
				return fmt.Errorf("%w: %s %q targets cluster %q", ErrUnknownCluster, list.what, p.Prefix, c)
			}
		}
	}
	if r.DefaultCluster != "" && !clusters[r.DefaultCluster] {
		return fmt.Errorf("%w: default cluster %q", ErrUnknownCluster, r.DefaultCluster)
	}
	if err := validateTargets("the default route", r.DefaultCluster, r.Default); err != nil {
		return err
	}
	if c := r.Default.missingCluster(has); c != "" {
		return fmt.Errorf("%w: the default route targets cluster %q", ErrUnknownCluster, c)
	}
	return nil
}

// sortedBrokers returns refs sorted, as a new slice (nil when empty).
func sortedBrokers(refs []BrokerRef) []BrokerRef {
	if len(refs) == 0 {
		return nil
	}
	out := slices.Clone(refs)
	slices.SortFunc(out, cmpBrokerRef)
	return out
}

// validClusterID checks a virtual cluster id: Kafka cluster ids are short
// printable strings (brokers use 22 base64url characters).
func validClusterID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: cluster id %q must be 1 to 64 characters", ErrInvalid, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%w: cluster id %q may hold only letters, digits, - and _", ErrInvalid, id)
		}
	}
	return nil
}
