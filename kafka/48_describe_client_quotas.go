package kafka

// DescribeClientQuotas (48): all versions kmsg and the backends share.
//
// Client quotas are written to every cluster (30_cluster_wide_writes.go),
// so the filter goes as sent to a broker of every cluster and the answer
// lists the union of the entities they hold, in the order first seen
// (default cluster first). An entity some clusters lack or hold with other
// values is answered as the default cluster has it, else as the first
// cluster that has it, and named in the ErrorMessage, with ErrorCode 0
// (merged_reads.go). With one cluster the request goes as sent.

import (
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeClientQuotas(r *request) error { return mergeRead(r, describeClientQuotasMerge) }

var describeClientQuotasMerge = mergedRead[*kmsg.DescribeClientQuotasResponse, kmsg.DescribeClientQuotasResponseEntry]{
	failed: func(resp *kmsg.DescribeClientQuotasResponse) int16 { return resp.ErrorCode },
	entries: func(resp *kmsg.DescribeClientQuotasResponse) []readEntry[kmsg.DescribeClientQuotasResponseEntry] {
		out := make([]readEntry[kmsg.DescribeClientQuotasResponseEntry], 0, len(resp.Entries))
		for _, en := range resp.Entries {
			// An entity is a set of components and a quota a set of
			// values: compared in sorted order.
			var entity, values []string
			for _, c := range en.Entity {
				name := "<default>" // a null name is the entity type's default
				if c.Name != nil {
					name = strconv.Quote(*c.Name)
				}
				entity = append(entity, c.Type+"="+name)
			}
			for _, v := range en.Values {
				values = append(values, v.Key+"="+strconv.FormatFloat(v.Value, 'g', -1, 64))
			}
			slices.Sort(entity)
			slices.Sort(values)
			out = append(out, readEntry[kmsg.DescribeClientQuotasResponseEntry]{
				key: strings.Join(entity, ","), value: strings.Join(values, ","), e: en,
			})
		}
		return out
	},
	answer: func(into *kmsg.DescribeClientQuotasResponse, merged []kmsg.DescribeClientQuotasResponseEntry, note *string) {
		into.Entries = merged
		if note != nil {
			into.ErrorMessage = note
		}
	},
}
