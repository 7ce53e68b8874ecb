package verifier

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Stored is one verifier record found at a position of a backend
// cluster by Audit.
type Stored struct {
	Cluster   string
	Producer  string
	Seq       int64
	Partition int32
	Offset    int64
}

// Audit reads topic on one backend cluster directly (bootstrap is the
// cluster's brokers, not the proxy), every partition from its start to the
// end offset it has when Audit begins, and records where each verifier
// record is stored. It is what follows a topic across a route change:
// the proxy then moves clients, not data or offsets, so the records
// written before the change stay on the old cluster, where the group no
// longer reads them, and the two clusters' offsets overlap. With audits in
// the log, Analyze counts a record lost only when it is stored on no
// audited cluster, and takes stored twice and out of order from the
// clusters' own positions.
func Audit(ctx context.Context, log *Log, cluster string, bootstrap []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
	if err != nil {
		return fmt.Errorf("verifier: audit %s: %w", cluster, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("verifier: audit %s: end offsets of %s: %w", cluster, topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("verifier: audit %s: start offsets of %s: %w", cluster, topic, err)
	}
	want := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Offset < o.Offset {
			want[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(s.Offset)
		}
	})
	if len(want) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return fmt.Errorf("verifier: audit %s: %w", cluster, err)
	}
	defer rd.Close()
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("verifier: audit %s: %d partitions not read to their end: %w", cluster, len(want), ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) {
			log.Note(fmt.Sprintf("audit %s: fetch %s/%d: %v", cluster, topic, p, err))
		})
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
			name, seq, ok := parseValue(r.Value)
			if !ok {
				return
			}
			log.store(Stored{Cluster: cluster, Producer: name, Seq: seq, Partition: r.Partition, Offset: r.Offset})
		})
	}
	return nil
}
