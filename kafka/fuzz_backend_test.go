package kafka

// Fuzz target for the control connection's side of the backend: framing
// (readBackendFrame), response decoding (decodeCtlResponse) and what the
// Backend does with each answer it asks for (ApiVersions, Metadata,
// FindCoordinator, InitProducerId).
//
//	go test -run '^$' -fuzz '^FuzzControlResponse$' -fuzztime 30s ./kafka/

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ctlRequests are the requests the control connection sends, by fuzzed kind.
func ctlRequest(kind uint8) kmsg.Request {
	switch kind % 4 {
	case 0:
		return kmsg.NewPtrApiVersionsRequest()
	case 1:
		return kmsg.NewPtrMetadataRequest()
	case 2:
		return kmsg.NewPtrFindCoordinatorRequest()
	default:
		return kmsg.NewPtrInitProducerIDRequest()
	}
}

func FuzzControlResponse(f *testing.F) {
	md := fxMetadata()
	fc := kmsg.NewPtrFindCoordinatorResponse()
	fc.NodeID = 101
	fc.Coordinators = []kmsg.FindCoordinatorResponseCoordinator{{Key: "g", NodeID: 101}}
	av := kmsg.NewPtrApiVersionsResponse()
	av.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 0, MinVersion: 3, MaxVersion: 11}, {ApiKey: 18, MaxVersion: 4}}
	ip := kmsg.NewPtrInitProducerIDResponse()
	ip.ProducerID, ip.ProducerEpoch = 7, 1
	for kind, resp := range []kmsg.Response{av, md, fc, ip} {
		for v := int16(0); v <= resp.MaxVersion(); v++ {
			f.Add(uint8(kind), uint8(v), respFrame(resp, v, 1)[8:])
		}
	}
	f.Fuzz(func(t *testing.T, kind, version uint8, body []byte) {
		defer catchPanic(t)
		req := ctlRequest(kind)
		req.SetVersion(fuzzVersion(version, req.MaxVersion()))
		frame := backendFrame(1, body)
		buf, err := readBackendFrame(bufio.NewReader(bytes.NewReader(frame)), 1<<20)
		if err != nil {
			return
		}
		if !bytes.Equal(buf.b, frame) {
			t.Fatalf("read %d bytes, framed %d", len(buf.b), len(frame))
		}
		resp, err := decodeCtlResponse(req, 1, buf.b[4:])
		if err != nil {
			return
		}
		switch r := resp.(type) {
		case *kmsg.ApiVersionsResponse:
			vs := versionSetOf(r)
			for k := range vs.keys {
				_ = vs.keys[k]
			}
		case *kmsg.MetadataResponse:
			b, err := NewBackend(BackendConfig{Name: "c", Bootstrap: []string{"127.0.0.1:1"}})
			if err != nil {
				t.Fatal(err)
			}
			b.updateMetadata(r, true)
			for _, tp := range r.Topics {
				if tp.Topic != nil {
					for _, p := range tp.Partitions {
						b.leader(*tp.Topic, p.Partition)
					}
				}
			}
			b.brokersByHealth()
			b.knownAddrs()
		case *kmsg.FindCoordinatorResponse:
			coordinatorOf(r, "g")
		}
	})
}
