package kafka

// CreateACLs (30), DeleteACLs (31), AlterClientQuotas (49),
// AlterUserSCRAMCredentials (51): all versions kmsg and the backend share.
//
// Cluster-wide security and quota settings are written to every cluster,
// so the virtual cluster behaves as one: each request goes as sent to a
// broker of every cluster, and each entry's answer is the first error any
// cluster gave, else success. Reads: 29_default_cluster.go.

import "github.com/twmb/franz-go/pkg/kmsg"

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
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		switch out := resps[0].(type) {
		case *kmsg.CreateACLsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.CreateACLsResponse)
				for i := range min(len(out.Results), len(o.Results)) {
					if out.Results[i].ErrorCode == 0 {
						out.Results[i] = o.Results[i]
					}
				}
			}
		case *kmsg.DeleteACLsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.DeleteACLsResponse)
				for i := range min(len(out.Results), len(o.Results)) {
					if out.Results[i].ErrorCode == 0 && o.Results[i].ErrorCode != 0 {
						out.Results[i].ErrorCode, out.Results[i].ErrorMessage = o.Results[i].ErrorCode, o.Results[i].ErrorMessage
					}
				}
			}
		case *kmsg.AlterClientQuotasResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.AlterClientQuotasResponse)
				for i := range min(len(out.Entries), len(o.Entries)) {
					if out.Entries[i].ErrorCode == 0 {
						out.Entries[i] = o.Entries[i]
					}
				}
			}
		case *kmsg.AlterUserSCRAMCredentialsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.AlterUserSCRAMCredentialsResponse)
				for i := range min(len(out.Results), len(o.Results)) {
					if out.Results[i].ErrorCode == 0 {
						out.Results[i] = o.Results[i]
					}
				}
			}
		}
		return resps[0]
	})
}
