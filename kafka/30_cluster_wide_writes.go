package kafka

// CreateACLs (30), DeleteACLs (31), AlterClientQuotas (49),
// AlterUserSCRAMCredentials (51): all versions kmsg and the backend share.
//
// Cluster-wide security and quota settings are written to every cluster,
// so the virtual cluster behaves as one: each request goes as sent to a
// broker of every cluster, and each entry's answer is the first error any
// cluster gave, else success. Reads: merged_reads.go.

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// toEveryCluster writes r to any broker of every cluster and merges each
// entry's answer: the first error any cluster gave, else success.
func toEveryCluster(r *request) error {
	c, start := r.c, r.start
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	targets := r.everyCluster(false)
	if len(targets) <= 1 {
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	parts := make([]part, len(targets))
	for i, t := range targets {
		parts[i] = part{t: t, req: req}
	}
	field := "Results"
	if r.key == 49 { // AlterClientQuotas
		field = "Entries"
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := reflect.ValueOf(resps[0]).Elem().FieldByName(field)
		for _, x := range resps[1:] {
			in := reflect.ValueOf(x).Elem().FieldByName(field)
			for i := range min(out.Len(), in.Len()) {
				o, e := out.Index(i), in.Index(i)
				if o.FieldByName("ErrorCode").Int() == 0 && e.FieldByName("ErrorCode").Int() != 0 {
					o.FieldByName("ErrorCode").Set(e.FieldByName("ErrorCode"))
					o.FieldByName("ErrorMessage").Set(e.FieldByName("ErrorMessage"))
				}
			}
		}
		return resps[0]
	})
}
