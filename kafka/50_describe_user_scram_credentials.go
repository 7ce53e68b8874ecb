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

import (
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeUserSCRAMCredentials(r *request) error {
	return mergeRead(r, describeUserSCRAMCredentialsMerge)
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
