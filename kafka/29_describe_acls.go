package kafka

// DescribeACLs (29): all versions kmsg and the backends share.
//
// ACLs are written to every cluster (30_cluster_wide_writes.go), so the
// filter goes as sent to a broker of every cluster and the answer lists
// the union of the bindings they hold, grouped by resource in the order
// first seen (default cluster first). A binding some clusters lack is
// listed and named in the ErrorMessage, with ErrorCode 0
// (merged_reads.go). With one cluster the request goes as sent.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeACLs(r *request) error { return mergeRead(r, describeACLsMerge) }

// aclBinding is one binding of a DescribeACLs answer: a resource (its ACLs
// left out) and one of its ACLs.
type aclBinding struct {
	res kmsg.DescribeACLsResponseResource
	acl kmsg.DescribeACLsResponseResourceACL
}

var describeACLsMerge = mergedRead[*kmsg.DescribeACLsResponse, aclBinding]{
	failed: func(resp *kmsg.DescribeACLsResponse) int16 { return resp.ErrorCode },
	entries: func(resp *kmsg.DescribeACLsResponse) []readEntry[aclBinding] {
		var out []readEntry[aclBinding]
		for _, res := range resp.Resources {
			acls := res.ACLs
			res.ACLs = nil
			for _, a := range acls {
				key := fmt.Sprintf("%s %s %s %s %q %s from %q", a.PermissionType, a.Operation, res.ResourcePatternType, res.ResourceType, res.ResourceName, a.Principal, a.Host)
				out = append(out, readEntry[aclBinding]{key: key, e: aclBinding{res, a}})
			}
		}
		return out
	},
	answer: func(into *kmsg.DescribeACLsResponse, merged []aclBinding, note *string) {
		type resKey struct {
			typ     kmsg.ACLResourceType
			name    string
			pattern kmsg.ACLResourcePatternType
		}
		at := map[resKey]int{}
		into.Resources = into.Resources[:0]
		for _, b := range merged {
			k := resKey{b.res.ResourceType, b.res.ResourceName, b.res.ResourcePatternType}
			i, ok := at[k]
			if !ok {
				i = len(into.Resources)
				at[k] = i
				into.Resources = append(into.Resources, b.res)
			}
			into.Resources[i].ACLs = append(into.Resources[i].ACLs, b.acl)
		}
		if note != nil {
			into.ErrorMessage = note
		}
	},
}
