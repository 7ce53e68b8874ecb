package kafka

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFamilyShapes: every partition-keyed key's kmsg types have the layout
// the splitter reads, and every family is served.
func TestFamilyShapes(t *testing.T) {
	table := handlerTable()
	for key, f := range partitionFamilies {
		if err := f.checkShape(); err != nil {
			t.Errorf("%s: %v", kmsg.NameForKey(key), err)
		}
		if table[key] == nil {
			t.Errorf("%s has a family but no handler", kmsg.NameForKey(key))
		}
	}
}

// TestShapeAnswersAndMerges: the proxy's own answers carry the family's
// "none" values, and merging joins partitions of the same topic.
func TestShapeAnswersAndMerges(t *testing.T) {
	req := kmsg.NewPtrListOffsetsRequest()
	for _, name := range []string{"a", "b"} {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = name
		for p := range int32(2) {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	out := listOffsetsFamily.failed(req).(*kmsg.ListOffsetsResponse)
	if len(out.Topics) != 2 || len(out.Topics[0].Partitions) != 2 {
		t.Fatalf("failure answer %+v", out.Topics)
	}
	for _, rt := range out.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != kerr.NotLeaderForPartition.Code || p.Offset != -1 || p.Timestamp != -1 {
				t.Fatalf("%s[%d] answered %+v", rt.Topic, p.Partition, p)
			}
		}
	}
	coord := offsetCommitFamily.failed(kmsg.NewPtrOffsetCommitRequest())
	if len(coord.(*kmsg.OffsetCommitResponse).Topics) != 0 {
		t.Fatal("an empty commit's failure named topics")
	}

	sh := listOffsetsFamily.shape()
	a := kmsg.NewPtrListOffsetsResponse()
	b := kmsg.NewPtrListOffsetsResponse()
	sh.answer(valueOf(a), "a", [16]byte{}, 0, 0, nil)
	sh.answer(valueOf(b), "a", [16]byte{}, 1, 0, nil)
	sh.answer(valueOf(b), "c", [16]byte{}, 0, 0, nil)
	sh.merge(valueOf(a), valueOf(b))
	if len(a.Topics) != 2 || len(a.Topics[0].Partitions) != 2 || a.Topics[1].Topic != "c" {
		t.Fatalf("merged %+v", a.Topics)
	}
}

// TestKeepMaxThrottle: a merged answer waits as long as its slowest part.
func TestKeepMaxThrottle(t *testing.T) {
	a, b := kmsg.NewPtrFetchResponse(), kmsg.NewPtrFetchResponse()
	a.ThrottleMillis, b.ThrottleMillis = 5, 70
	keepMaxThrottle(a, []kmsg.Response{a, b})
	if a.ThrottleMillis != 70 {
		t.Fatalf("throttle %d, want 70", a.ThrottleMillis)
	}
}

func valueOf(resp kmsg.Response) reflect.Value { return reflect.ValueOf(resp).Elem() }

// TestReflectedLayouts: the fields the config, cluster-wide write and list
// merges read by name exist in every version's kmsg types, so a kmsg
// upgrade that renames one fails here rather than in a client's request.
func TestReflectedLayouts(t *testing.T) {
	has := func(v reflect.Type, path ...string) {
		t.Helper()
		for _, name := range path {
			f, ok := v.FieldByName(name)
			if !ok {
				t.Fatalf("%s has no field %s", v, name)
			}
			v = f.Type
			for v.Kind() == reflect.Slice || v.Kind() == reflect.Pointer {
				v = v.Elem()
			}
		}
	}
	for _, key := range []int16{32, 33, 44} {
		req := reflect.TypeOf(kmsg.RequestForKey(key)).Elem()
		resp := reflect.TypeOf(kmsg.ResponseForKey(key)).Elem()
		for _, f := range []string{cfgType, cfgName} {
			has(req, cfgResources, f)
			has(resp, cfgResources, f)
		}
		has(resp, cfgResources, "ErrorCode")
		has(resp, cfgResources, "ErrorMessage")
	}
	for _, key := range []int16{30, 31, 49, 51} {
		field := "Results"
		if key == 49 {
			field = "Entries"
		}
		resp := reflect.TypeOf(kmsg.ResponseForKey(key)).Elem()
		has(resp, field, "ErrorCode")
		has(resp, field, "ErrorMessage")
	}
	for _, key := range []int16{16, 66} {
		list, id := listFields(key)
		resp := reflect.TypeOf(kmsg.ResponseForKey(key)).Elem()
		has(resp, list, id)
		has(resp, "ErrorCode")
	}
}
