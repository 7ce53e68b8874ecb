package kafka

// DescribeUserSCRAMCredentials (50): all versions kmsg and the backends
// share.
//
// SCRAM credentials are written to every cluster
// (30_cluster_wide_writes.go), so the request goes as sent to a broker of
// every cluster and the answer has one result per user any cluster
// answered, in the order first seen (default cluster first): a user some
// clusters lack (RESOURCE_NOT_FOUND) or hold with other mechanisms or
// iterations is answered as the default cluster has it, else as the first
// cluster that has it, and named in the ErrorMessage, with ErrorCode 0
// (merged_reads.go); a user no cluster has is RESOURCE_NOT_FOUND; another
// error for a user is the first any cluster gave. With one cluster the
// request goes as sent.
//
// When the listener authenticates (Config.Authenticates), the proxy's own
// users are described instead, answered by the proxy from the replicated
// state (KIP-554 semantics): no users or an empty list describes every
// user with a SCRAM credential, sorted by name; a named user without one
// is RESOURCE_NOT_FOUND, a user named twice DUPLICATE_RESOURCE. PLAIN
// credentials are not SCRAM credentials and are never listed.

import (
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

func handleDescribeUserSCRAMCredentials(r *request) error {
	if !r.c.s.cfg.Authenticates {
		return mergeRead(r, describeUserSCRAMCredentialsMerge)
	}
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	// Authorization: Describe on the cluster resource, checked before the
	// handler runs (acl_requests.go wholeNeeds).
	return r.c.respond(r, r.start, describeProxySCRAM(r.st, kreq.(*kmsg.DescribeUserSCRAMCredentialsRequest)))
}

// describeProxySCRAM answers req from the proxy's users in st.
func describeProxySCRAM(st *fsm.State, req *kmsg.DescribeUserSCRAMCredentialsRequest) *kmsg.DescribeUserSCRAMCredentialsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	result := func(u fsm.User) (kmsg.DescribeUserSCRAMCredentialsResponseResult, bool) {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = u.Name
		for _, c := range u.Credentials {
			if t := scramMechanismType(c.Mechanism); t != 0 {
				ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
				ci.Mechanism, ci.Iterations = t, int32(c.Iterations)
				res.CredentialInfos = append(res.CredentialInfos, ci)
			}
		}
		return res, len(res.CredentialInfos) > 0
	}
	if len(req.Users) == 0 {
		for _, u := range st.Users {
			if res, ok := result(u); ok {
				resp.Results = append(resp.Results, res)
			}
		}
		return resp
	}
	count := make(map[string]int, len(req.Users))
	for _, ru := range req.Users {
		count[ru.Name]++
	}
	answered := make(map[string]bool, len(req.Users))
	for _, ru := range req.Users {
		if answered[ru.Name] {
			continue
		}
		answered[ru.Name] = true
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = ru.Name
		u, found := st.User(ru.Name)
		ok := false
		if found {
			res, ok = result(u)
		}
		switch {
		case count[ru.Name] > 1:
			res.CredentialInfos = nil
			res.ErrorCode = kerr.DuplicateResource.Code
			res.ErrorMessage = kmsg.StringPtr("Cannot describe SCRAM credentials for the same user twice in a single request: " + ru.Name)
		case !ok:
			res.ErrorCode = kerr.ResourceNotFound.Code
			res.ErrorMessage = kmsg.StringPtr("Attempt to describe a user credential that does not exist: " + ru.Name)
		}
		resp.Results = append(resp.Results, res)
	}
	return resp
}

var describeUserSCRAMCredentialsMerge = mergedRead[*kmsg.DescribeUserSCRAMCredentialsResponse, kmsg.DescribeUserSCRAMCredentialsResponseResult]{
	failed: func(resp *kmsg.DescribeUserSCRAMCredentialsResponse) int16 { return resp.ErrorCode },
	entries: func(resp *kmsg.DescribeUserSCRAMCredentialsResponse) []readEntry[kmsg.DescribeUserSCRAMCredentialsResponseResult] {
		out := make([]readEntry[kmsg.DescribeUserSCRAMCredentialsResponseResult], 0, len(resp.Results))
		for _, res := range resp.Results {
			en := readEntry[kmsg.DescribeUserSCRAMCredentialsResponseResult]{key: strconv.Quote(res.User), e: res}
			switch res.ErrorCode {
			case 0:
				var creds []string
				for _, ci := range res.CredentialInfos {
					creds = append(creds, scramMechanism(ci.Mechanism)+"/"+strconv.Itoa(int(ci.Iterations)))
				}
				slices.Sort(creds)
				en.value = strings.Join(creds, ",")
			case kerr.ResourceNotFound.Code:
				en.state = entryAbsent
			default:
				en.state = entryFailed
			}
			out = append(out, en)
		}
		return out
	},
	answer: func(into *kmsg.DescribeUserSCRAMCredentialsResponse, merged []kmsg.DescribeUserSCRAMCredentialsResponseResult, note *string) {
		into.Results = merged
		if note != nil {
			into.ErrorMessage = note
		}
	},
}

// scramMechanism names a SCRAM mechanism as Kafka does (KIP-554).
func scramMechanism(m int8) string {
	switch m {
	case 1:
		return "SCRAM-SHA-256"
	case 2:
		return "SCRAM-SHA-512"
	}
	return "mechanism-" + strconv.Itoa(int(m))
}
