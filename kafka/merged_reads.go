package kafka

// Merged reads of the cluster-wide security and quota settings:
// DescribeACLs (29_describe_acls.go), DescribeClientQuotas
// (48_describe_client_quotas.go) and DescribeUserSCRAMCredentials
// (50_describe_user_scram_credentials.go).
//
// Their writes go to every cluster (30_cluster_wide_writes.go), so the
// clusters normally agree; but a cluster can still be changed directly, or
// have missed a write that failed on it. A read therefore asks a broker of
// every cluster and answers the union of what they hold. An entry (an ACL
// binding, a quota entity, a user) that some clusters lack, or hold with
// different values, is answered as the default cluster has it, else as the
// first cluster by name that has it, and the disagreement is marked in the
// answer's top-level ErrorMessage with ErrorCode 0: kadm shows that message
// for DescribeACLs and ignores it otherwise, librdkafka reads it only when
// the code is set, kafka-python ignores it, so no client fails on it. It is
// also counted (switchyard_kafka_merged_read_disagreements_total) and
// logged at debug.
//
// A cluster's whole-request error (authorization, an invalid filter) is the
// answer: the first any cluster gave, default cluster first, as the writes
// do. So is an entry's error other than "not found" (SCRAM's
// RESOURCE_NOT_FOUND says the cluster lacks the user).

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// entryState is what one cluster says about one entry of a merged read.
type entryState uint8

const (
	entryPresent entryState = iota // the cluster holds the entry
	entryAbsent                    // it answered that it does not (RESOURCE_NOT_FOUND)
	entryFailed                    // it answered an error for the entry
)

// readEntry is one entry of one cluster's answer: key names the entry
// across clusters, value is what the cluster holds for it (compared between
// clusters; "" for an entry that is only present or not), e is the
// answer's own element, which the merged answer reuses.
type readEntry[E any] struct {
	key, value string
	state      entryState
	e          E
}

// mergedRead says how to take one key's answers apart and put the merged
// answer together.
type mergedRead[R kmsg.Response, E any] struct {
	// failed is the answer's whole-request error code.
	failed func(R) int16
	// entries lists the answer's entries.
	entries func(R) []readEntry[E]
	// answer puts the merged entries, and the note naming the entries the
	// clusters disagree on (nil when they agree), into into.
	answer func(into R, merged []E, note *string)
}

// maxNotedEntries bounds how many disagreeing entries the note names; the
// count covers them all.
const maxNotedEntries = 8

// mergeRead serves r from every cluster (a broker each, this host's first),
// merged by m. With one cluster the request goes as sent.
func mergeRead[R kmsg.Response, E any](r *request, m mergedRead[R, E]) error {
	c, start := r.c, r.start
	def := r.defaultBackend()
	if len(r.set.sorted) <= 1 {
		return c.forwardAny(r, start, def, nil)
	}
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	clusters := defaultFirst(r.set.sorted, def)
	parts := make([]part, len(clusters))
	names := make([]string, len(clusters))
	for i, be := range clusters {
		parts[i] = part{t: target{be, anyBroker}, req: req}
		names[i] = be.Name()
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		answers := make([]R, len(resps))
		lists := make([][]readEntry[E], len(resps))
		for i, x := range resps {
			answers[i] = x.(R)
			if m.failed(answers[i]) != 0 {
				return x // the first whole-request error, default cluster first
			}
			lists[i] = m.entries(answers[i])
		}
		merged, diffs := mergeEntries(names, lists)
		var note *string
		if len(diffs) > 0 {
			note = disagreementNote(names[0], diffs)
			c.s.metrics.disagreed(r.key, len(diffs))
			c.log.Debug("backend clusters disagree on a merged read", "api", kmsg.NameForKey(r.key), "entries", len(diffs), "note", *note)
		}
		m.answer(answers[0], merged, note)
		return answers[0]
	})
}

// defaultFirst orders clusters (sorted by name) with def first.
func defaultFirst(sorted []*Backend, def *Backend) []*Backend {
	out := make([]*Backend, 0, len(sorted))
	out = append(out, def)
	for _, be := range sorted {
		if be != def {
			out = append(out, be)
		}
	}
	return out
}

// mergeEntries merges the clusters' entry lists (in names order, the
// default cluster first) by key, in the order keys are first seen. Each
// key is answered by the first cluster that failed it, else the first that
// holds it, else the first that answered it absent. It returns the merged
// elements and a description of each entry the clusters disagree on: held
// by some only, or held with different values.
func mergeEntries[E any](names []string, lists [][]readEntry[E]) ([]E, []string) {
	index := map[string]int{}
	var byKey [][]*readEntry[E] // per key, each cluster's entry (nil: not listed)
	for ci, list := range lists {
		for i := range list {
			en := &list[i]
			k, ok := index[en.key]
			if !ok {
				k = len(byKey)
				index[en.key] = k
				byKey = append(byKey, make([]*readEntry[E], len(lists)))
			}
			if byKey[k][ci] == nil {
				byKey[k][ci] = en
			}
		}
	}
	out := make([]E, 0, len(byKey))
	var diffs []string
	for _, per := range byKey {
		chosen, differ := pickEntry(per)
		out = append(out, chosen.e)
		if differ {
			diffs = append(diffs, describeEntry(chosen.key, names, per))
		}
	}
	return out, diffs
}

// pickEntry chooses the answer for one key from each cluster's entry and
// says whether the clusters disagree on it. An error is not a
// disagreement: it is answered as is.
func pickEntry[E any](per []*readEntry[E]) (*readEntry[E], bool) {
	first := func(s entryState) *readEntry[E] {
		for _, en := range per {
			if en != nil && en.state == s {
				return en
			}
		}
		return nil
	}
	if en := first(entryFailed); en != nil {
		return en, false
	}
	held := first(entryPresent)
	if held == nil {
		return first(entryAbsent), false // absent everywhere that answered
	}
	for _, en := range per {
		if en == nil || en.state != entryPresent || en.value != held.value {
			return held, true
		}
	}
	return held, false
}

// describeEntry says what each cluster holds for a disagreed entry:
// "key (east: v; west: absent)".
func describeEntry[E any](key string, names []string, per []*readEntry[E]) string {
	var b strings.Builder
	b.WriteString(key)
	b.WriteString(" (")
	for i, en := range per {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(names[i])
		b.WriteString(": ")
		switch {
		case en == nil || en.state != entryPresent:
			b.WriteString("absent")
		case en.value == "":
			b.WriteString("present")
		default:
			b.WriteString(en.value)
		}
	}
	b.WriteString(")")
	return b.String()
}

// disagreementNote is the answer's ErrorMessage naming the disagreements.
func disagreementNote(def string, diffs []string) *string {
	noted := diffs[:min(len(diffs), maxNotedEntries)]
	s := fmt.Sprintf("switchyard: the backend clusters disagree on %d entries, each answered as the default cluster %s has it, else as the first cluster that has it: %s",
		len(diffs), def, strings.Join(noted, "; "))
	if len(diffs) > len(noted) {
		s += fmt.Sprintf("; and %d more", len(diffs)-len(noted))
	}
	return &s
}
