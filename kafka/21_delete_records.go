package kafka

// DeleteRecords (key 21): all versions. Each partition goes to its leader
// in the cluster its topic routes to (split.go); passed through unchanged
// when one broker leads every partition. Partitions of unrouted topics are
// answered UNKNOWN_TOPIC_OR_PARTITION, of re-pointed ones
// NOT_LEADER_OR_FOLLOWER once (pipeline.go).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleDeleteRecords(r *request) error { return deleteRecordsFamily.serve(r) }

var deleteRecordsFamily = &family[*kmsg.DeleteRecordsRequest, *kmsg.DeleteRecordsResponse]{
	seg:      deleteRecordsSeg,
	minusOne: []string{"LowWatermark"},
}
