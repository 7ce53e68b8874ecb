package kafka

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOldMetadataKeepsTopicIDs: a client that asks Metadata at a version
// without topic ids (v9, as kafka-python and older sarama do) must not
// make the proxy forget the cluster's id for the topic: a franz-go
// Fetch v13 naming the topic by its virtual id right after is served,
// and its answer carries that virtual id (an unknown id in an answer is
// what franz-go logs as "broker returned topic from fetch that we did not
// ask for").
func TestOldMetadataKeepsTopicIDs(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be, addr := startProxy(t, kc, BackendConfig{Name: "k"})
	select {
	case <-be.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("backend metadata not loaded")
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	corr := int32(0)
	roundTrip := func(req kmsg.Request, v int16) kmsg.Response {
		t.Helper()
		corr++
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := nc.Write(reqFrame(req, v, corr)); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatalf("read response %d: %v", corr, err)
		}
		_, resp := decodeOut(t, buf.b, req.Key(), v)
		return resp
	}
	topic := "t"
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = &topic
	md.Topics = append(md.Topics, mt)
	if r := roundTrip(md, 9).(*kmsg.MetadataResponse); len(r.Topics) != 1 || r.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata v9: %+v", r.Topics)
	}
	vid := virtualTopicID(topic)
	fr := kmsg.NewPtrFetchRequest()
	fr.ReplicaID, fr.MaxWaitMillis, fr.MaxBytes, fr.SessionEpoch = -1, 10, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.TopicID = vid
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch, fp.LogStartOffset = 0, 1<<20, -1, -1
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	resp := roundTrip(fr, 13).(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].TopicID != vid || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch v13 answer topics %+v, want one: the virtual id %x", resp.Topics, vid)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("fetch v13 after a metadata v9: partition error %d, want none (the proxy forgot the topic's id)", code)
	}
}
