package kafka

// Characterisation of the config keys across two clusters: DescribeConfigs
// (32), AlterConfigs (33), IncrementalAlterConfigs (44). A resource goes
// where it lives: a topic to its cluster, a group to its home, a broker
// (named by the peer id clients know) to the broker on that peer's host,
// of whichever cluster, else a default-cluster broker that peer presents,
// under that broker's id, and back.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type cxResource struct {
	typ  kmsg.ConfigResourceType
	name string
}

func (r cxResource) String() string { return fmt.Sprintf("%s:%s", r.typ, r.name) }

// cxConfigKey builds one of the three config requests and reads its answer
// as resource → "served by" (the error message the fixture's brokers
// answer) and → error code.
type cxConfigKey struct {
	name     string
	versions []int16
	req      func([]cxResource) kmsg.Request
	sent     func(kmsg.Request) []cxResource
	read     func(kmsg.Response) (by map[string]string, codes cxCodes, throttle int32)
}

func cxConfigKeys() []cxConfigKey {
	return []cxConfigKey{
		{
			name: "DescribeConfigs", versions: []int16{0, 1, 3, 4},
			req: func(rs []cxResource) kmsg.Request {
				r := kmsg.NewPtrDescribeConfigsRequest()
				for _, x := range rs {
					r.Resources = append(r.Resources, kmsg.DescribeConfigsRequestResource{ResourceType: x.typ, ResourceName: x.name, ConfigNames: []string{"retention.ms"}})
				}
				return r
			},
			sent: func(kr kmsg.Request) (out []cxResource) {
				for _, x := range kr.(*kmsg.DescribeConfigsRequest).Resources {
					out = append(out, cxResource{x.ResourceType, x.ResourceName})
				}
				return out
			},
			read: func(kr kmsg.Response) (map[string]string, cxCodes, int32) {
				resp := kr.(*kmsg.DescribeConfigsResponse)
				by, codes := map[string]string{}, cxCodes{}
				for _, x := range resp.Resources {
					k := cxResource{x.ResourceType, x.ResourceName}.String()
					if _, dup := by[k]; dup {
						by[k] += " and again"
					} else {
						by[k] = cxStrOr(x.ErrorMessage)
					}
					codes[k] = int64(x.ErrorCode)
				}
				return by, codes, resp.ThrottleMillis
			},
		},
		{
			name: "AlterConfigs", versions: []int16{0, 1, 2},
			req: func(rs []cxResource) kmsg.Request {
				r := kmsg.NewPtrAlterConfigsRequest()
				r.ValidateOnly = true
				for _, x := range rs {
					r.Resources = append(r.Resources, kmsg.AlterConfigsRequestResource{ResourceType: x.typ, ResourceName: x.name, Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000")}}})
				}
				return r
			},
			sent: func(kr kmsg.Request) (out []cxResource) {
				for _, x := range kr.(*kmsg.AlterConfigsRequest).Resources {
					out = append(out, cxResource{x.ResourceType, x.ResourceName})
				}
				return out
			},
			read: func(kr kmsg.Response) (map[string]string, cxCodes, int32) {
				resp := kr.(*kmsg.AlterConfigsResponse)
				by, codes := map[string]string{}, cxCodes{}
				for _, x := range resp.Resources {
					k := cxResource{x.ResourceType, x.ResourceName}.String()
					if _, dup := by[k]; dup {
						by[k] += " and again"
					} else {
						by[k] = cxStrOr(x.ErrorMessage)
					}
					codes[k] = int64(x.ErrorCode)
				}
				return by, codes, resp.ThrottleMillis
			},
		},
		{
			name: "IncrementalAlterConfigs", versions: []int16{0, 1},
			req: func(rs []cxResource) kmsg.Request {
				r := kmsg.NewPtrIncrementalAlterConfigsRequest()
				for _, x := range rs {
					r.Resources = append(r.Resources, kmsg.IncrementalAlterConfigsRequestResource{ResourceType: x.typ, ResourceName: x.name, Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: 0, Value: kmsg.StringPtr("1000")}}})
				}
				return r
			},
			sent: func(kr kmsg.Request) (out []cxResource) {
				for _, x := range kr.(*kmsg.IncrementalAlterConfigsRequest).Resources {
					out = append(out, cxResource{x.ResourceType, x.ResourceName})
				}
				return out
			},
			read: func(kr kmsg.Response) (map[string]string, cxCodes, int32) {
				resp := kr.(*kmsg.IncrementalAlterConfigsResponse)
				by, codes := map[string]string{}, cxCodes{}
				for _, x := range resp.Resources {
					k := cxResource{x.ResourceType, x.ResourceName}.String()
					if _, dup := by[k]; dup {
						by[k] += " and again"
					} else {
						by[k] = cxStrOr(x.ErrorMessage)
					}
					codes[k] = int64(x.ErrorCode)
				}
				return by, codes, resp.ThrottleMillis
			},
		},
	}
}

func cxStrOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// cxConfigAnswer answers every resource as it was sent, with the broker that
// served it as the error message (code 0), for any of the three keys.
func cxConfigAnswer(a cxAt, kr kmsg.Request) kmsg.Response {
	msg := kmsg.StringPtr("served by " + a.String())
	switch req := kr.(type) {
	case *kmsg.DescribeConfigsRequest:
		resp := kmsg.NewPtrDescribeConfigsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		for _, x := range req.Resources {
			resp.Resources = append(resp.Resources, kmsg.DescribeConfigsResponseResource{ResourceType: x.ResourceType, ResourceName: x.ResourceName, ErrorMessage: msg,
				Configs: []kmsg.DescribeConfigsResponseResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000")}}})
		}
		return resp
	case *kmsg.AlterConfigsRequest:
		resp := kmsg.NewPtrAlterConfigsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		for _, x := range req.Resources {
			resp.Resources = append(resp.Resources, kmsg.AlterConfigsResponseResource{ResourceType: x.ResourceType, ResourceName: x.ResourceName, ErrorMessage: msg})
		}
		return resp
	case *kmsg.IncrementalAlterConfigsRequest:
		resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		for _, x := range req.Resources {
			resp.Resources = append(resp.Resources, kmsg.IncrementalAlterConfigsResponseResource{ResourceType: x.ResourceType, ResourceName: x.ResourceName, ErrorMessage: msg})
		}
		return resp
	}
	panic(fmt.Sprintf("not a config request: %T", kr))
}

// cxPeerBroker is the east broker that peer presents, as the client's
// broker resource for peer is sent: its co-located live broker, else one
// it presents by rendezvous, else this host's (east/100).
func cxPeerBroker(f *cx, peer int32) int32 {
	pr := f.srv.testPresenter(f.east)
	for _, b := range []int32{100, 101, 102} {
		if pr.peerFor(b) == peer {
			return b
		}
	}
	return 100
}

func TestCharacteriseConfigs(t *testing.T) {
	const (
		topic  = kmsg.ConfigResourceTypeTopic
		broker = kmsg.ConfigResourceTypeBroker
		logger = kmsg.ConfigResourceTypeBrokerLogger
		group  = kmsg.ConfigResourceTypeGroupConfig
		client = kmsg.ConfigResourceTypeClientMetrics
	)
	unknown := int64(kerr.UnknownTopicOrPartition.Code)
	// Each resource, and the broker that must serve it under which name
	// (nil: the proxy answers UNKNOWN_TOPIC_OR_PARTITION).
	type route struct {
		res  cxResource
		to   *cxAt
		sent string // the name the broker sees
	}
	at := func(a cxAt) *cxAt { return &a }
	cases := []struct {
		name   string
		dead   []int32 // peers dead in this case
		routes func(t *testing.T, f *cx) []route
	}{
		{"topics by their cluster, this host's broker", nil, func(*testing.T, *cx) []route {
			return []route{
				{cxResource{topic, "orders"}, at(cxE100), "orders"},
				{cxResource{topic, "w.clicks"}, at(cxW201), "w.clicks"},
				{cxResource{topic, "payments"}, at(cxW201), "payments"},
				{cxResource{topic, "x.gone"}, nil, ""},
			}
		}},
		{"groups by their home", nil, func(*testing.T, *cx) []route {
			return []route{
				{cxResource{group, "wg-1"}, at(cxW201), "wg-1"},
				{cxResource{group, "g1"}, at(cxE100), "g1"},
			}
		}},
		{"broker resources: the peer's broker on the default cluster, renamed both ways", nil, func(*testing.T, *cx) []route {
			return []route{
				{cxResource{broker, "1"}, at(cxE101), "101"},
				{cxResource{logger, "0"}, at(cxE100), "100"},
			}
		}},
		{"a peer that presents no default-cluster broker: this host's answers for it", nil, func(t *testing.T, f *cx) []route {
			if cxPeerBroker(f, 3) != 100 {
				t.Fatal("fixture: peer 3 presents an east broker")
			}
			return []route{{cxResource{broker, "3"}, at(cxE100), "100"}}
		}},
		{"a peer on a host of another cluster's broker: that broker, renamed both ways", nil, func(*testing.T, *cx) []route {
			// p2 runs on west/100's host; p0 runs on east/100's and
			// west/201's, and the default cluster comes first.
			return []route{
				{cxResource{broker, "2"}, at(cxAt{cxWest, 100}), "100"},
				{cxResource{logger, "2"}, at(cxAt{cxWest, 100}), "100"},
				{cxResource{broker, "0"}, at(cxE100), "100"},
			}
		}},
		{"a peer on no broker's host: a default-cluster broker it presents by rendezvous", []int32{1}, func(t *testing.T, f *cx) []route {
			b := cxPeerBroker(f, 3)
			if b == 100 {
				t.Fatal("fixture: peer 3 presents no east broker")
			}
			return []route{{cxResource{broker, "3"}, at(cxAt{cxEast, b}), fmt.Sprint(b)}}
		}},
		{"cluster-wide broker defaults and client metrics: the default cluster as named", nil, func(*testing.T, *cx) []route {
			return []route{
				{cxResource{broker, ""}, at(cxE100), ""},
				{cxResource{client, "cm"}, at(cxE100), "cm"},
				{cxResource{topic, "w.clicks"}, at(cxW201), "w.clicks"},
			}
		}},
		{"unrouted only: answered by the proxy", nil, func(*testing.T, *cx) []route {
			return []route{{cxResource{topic, "x.gone"}, nil, ""}, {cxResource{topic, "x.other"}, nil, ""}}
		}},
	}
	for _, k := range cxConfigKeys() {
		for _, v := range k.versions {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s v%d %s", k.name, v, tc.name), func(t *testing.T) {
					f := newCx(t, true)
					for _, p := range tc.dead {
						f.view.live[p] = false
					}
					routes := tc.routes(t, f)
					var ress []cxResource
					wantSent := map[cxAt][]cxResource{}
					wantBy, wantCodes := map[string]string{}, cxCodes{}
					wantThrottle := int32(0)
					for _, r := range routes {
						ress = append(ress, r.res)
						if r.to == nil {
							wantBy[r.res.String()] = "switchyard: no route, prefix rule or default cluster routes this topic"
							wantCodes[r.res.String()] = unknown
							continue
						}
						wantSent[*r.to] = append(wantSent[*r.to], cxResource{r.res.typ, r.sent})
						wantBy[r.res.String()] = "served by " + r.to.String()
						wantCodes[r.res.String()] = 0
						wantThrottle = max(wantThrottle, cxThrottle(*r.to))
					}
					h := f.conn(t)
					ex, kr := h.answered(k.req(ress), v, cxConfigAnswer)
					var targets []cxAt
					for a := range wantSent {
						targets = append(targets, a)
					}
					cxWantTargets(t, ex, targets...)
					for a, want := range wantSent {
						if got := k.sent(ex.reqs[a][0]); fmt.Sprint(got) != fmt.Sprint(want) {
							t.Fatalf("%s asked %v, want %v", a, got, want)
						}
					}
					by, codes, throttle := k.read(kr)
					if fmt.Sprint(by) != fmt.Sprint(wantBy) {
						t.Fatalf("answered:\n got %v\nwant %v", by, wantBy)
					}
					cxWantCodes(t, "error codes", codes, wantCodes)
					if throttle != wantThrottle {
						t.Fatalf("throttle %d, want %d", throttle, wantThrottle)
					}
				})
			}
		}
	}
}

// TestCharacteriseConfigsBadBrokerName: a broker resource whose name is
// not a number is answered INVALID_REQUEST with a reason, as a broker
// answers it ("broker id must be an integer"); the request's other
// resources go on and the connection stays open. (Until December 2026 the
// proxy closed the connection; the fuzz target found it.)
func TestCharacteriseConfigsBadBrokerName(t *testing.T) {
	for _, k := range cxConfigKeys() {
		t.Run(k.name, func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			v := k.versions[len(k.versions)-1]
			req := k.req([]cxResource{{kmsg.ConfigResourceTypeBroker, "east-100"}, {kmsg.ConfigResourceTypeTopic, "orders"}})
			ex, resp := h.answered(req, v, cxConfigAnswer)
			by, codes, _ := k.read(resp)
			bad := cxResource{kmsg.ConfigResourceTypeBroker, "east-100"}.String()
			if codes[bad] != int64(kerr.InvalidRequest.Code) || !strings.Contains(by[bad], "not a broker id") {
				t.Fatalf("bad broker name answered %d %q", codes[bad], by[bad])
			}
			if topic := (cxResource{kmsg.ConfigResourceTypeTopic, "orders"}).String(); codes[topic] != 0 || len(ex.targets()) != 1 {
				t.Fatalf("the topic resource was not served (%d, sent to %v)", codes[topic], ex.targets())
			}
		})
	}
}

// TestCharacteriseConfigValuesPassThrough pins that broker config values
// reach the client as the backend wrote them: a listener address names the
// backend broker's host, the one place a backend address reaches a client.
func TestCharacteriseConfigValuesPassThrough(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1"}}
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		resp := kmsg.NewPtrDescribeConfigsResponse()
		for _, x := range kr.(*kmsg.DescribeConfigsRequest).Resources {
			resp.Resources = append(resp.Resources, kmsg.DescribeConfigsResponseResource{ResourceType: x.ResourceType, ResourceName: x.ResourceName,
				Configs: []kmsg.DescribeConfigsResponseResourceConfig{{Name: "advertised.listeners", Value: kmsg.StringPtr("PLAINTEXT://e101.kafka.internal:9101")}}})
		}
		return resp
	}
	ex := h.run(cxFrame(req, 4), answer)
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("exchange %+v", ex)
	}
	cxWantTargets(t, ex, cxE101)
	_, kr := decodeOut(t, ex.out, 32, 4)
	resp := kr.(*kmsg.DescribeConfigsResponse)
	if len(resp.Resources) != 1 || resp.Resources[0].ResourceName != "1" || !strings.Contains(cxStrOr(resp.Resources[0].Configs[0].Value), "e101.kafka.internal") {
		t.Fatalf("answer %+v", resp.Resources)
	}
}

// TestCharacteriseConfigsBrokerNameCollision: two broker resources the
// proxy sends to the same backend broker under the same name (peer 0's own
// broker, and a peer that presents no default-cluster broker, which any
// broker answers for: this host's) must each come back under the name the
// client asked for. Today the second name overwrites the first in the
// rename map, so both answers carry the second name and the first is
// never answered.
func TestCharacteriseConfigsBrokerNameCollision(t *testing.T) {
	for _, k := range cxConfigKeys() {
		t.Run(k.name, func(t *testing.T) {
			f := newCx(t, true)
			other := int32(4) // dead: presents nothing, so any broker answers for it
			h := f.conn(t)
			v := k.versions[len(k.versions)-1]
			_, kr := h.answered(k.req([]cxResource{{kmsg.ConfigResourceTypeBroker, "0"}, {kmsg.ConfigResourceTypeBroker, fmt.Sprint(other)}}), v, cxConfigAnswer)
			by, _, _ := k.read(kr)
			want := map[string]string{"BROKER:0": "served by east/100", fmt.Sprintf("BROKER:%d", other): "served by east/100"}
			if fmt.Sprint(by) != fmt.Sprint(want) {
				t.Fatalf("broker resources answered as %v, want %v: each under the name the client asked for", by, want)
			}
		})
	}
}
