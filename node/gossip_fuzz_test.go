package node

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

// FuzzDecodeMeta: gossip metadata comes from whoever joined gossip. No
// input makes decodeMeta or the peer entry built from it panic, nothing
// over memberlist's bound decodes, and what encodeMeta writes decodes to
// the same metadata.
func FuzzDecodeMeta(f *testing.F) {
	full := peerMeta{Region: "eu-1a", Kafka: "10.0.0.1:9092", Admin: "10.0.0.1:18080", Raft: "10.0.0.1:7000",
		Gossip: "10.0.0.1:7946", Version: "1.0.0", Expect: 3, HasState: true, Brokers: []string{"east:1", "west:2"}}
	b, err := encodeMeta(full)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"k":"a:1","lb":["x:1","bad",":2","c:-1","c:99999999999"]}`))
	f.Add([]byte(`{"k":"a:1","e":-1,"s":true,"unknown":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"lb":` + strings.Repeat("[", 600)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMeta(data)
		if err != nil {
			return
		}
		if len(data) > memberlist.MetaMaxSize {
			t.Fatalf("decoded %d bytes of metadata, over %d", len(data), memberlist.MetaMaxSize)
		}
		_ = m.peer("fuzz")
		if len(m.Brokers) == 0 {
			m.Brokers = nil // omitempty: [] and absent are the same metadata
		}
		enc, err := encodeMeta(m)
		if err != nil {
			return // re-encoding may grow past the bound (escapes)
		}
		again, err := decodeMeta(enc)
		if err != nil {
			t.Fatalf("encodeMeta output %q does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip changed metadata:\n%+v\n%+v", m, again)
		}
	})
}

func TestDecodeMetaBounded(t *testing.T) {
	big := []byte(`{"k":"a:1","r":"` + strings.Repeat("x", memberlist.MetaMaxSize) + `"}`)
	if _, err := decodeMeta(big); err == nil {
		t.Fatalf("decoded %d bytes of metadata", len(big))
	}
}

// FuzzGossipMsg: a peer's broadcast (NotifyMsg) never panics, and what
// decodes re-encodes to the same bytes.
func FuzzGossipMsg(f *testing.F) {
	f.Add(encodeTopicsChanged("main"))
	f.Add([]byte{})
	f.Add([]byte{gossipTopicsChanged})
	f.Add([]byte{gossipTopicsChanged, 0})
	f.Add([]byte{gossipTopicsChanged, 5, 'a'})
	f.Add([]byte{9, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, cluster, err := decodeGossipMsg(b)
		if err != nil {
			return
		}
		if kind != gossipTopicsChanged || !bytes.Equal(encodeTopicsChanged(cluster), b) {
			t.Fatalf("%x decoded to kind %d cluster %q, which does not encode back", b, kind, cluster)
		}
	})
}
