package kafka

// DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44):
// all versions. Each resource goes where it lives: a TOPIC resource to a
// broker of the cluster the topic routes to (unrouted topics are answered
// UNKNOWN_TOPIC_OR_PARTITION), a GROUP resource to the group's home
// cluster, everything else (client metrics, cluster-wide broker defaults)
// to the default cluster. A BROKER or BROKER_LOGGER resource names a broker
// id, which the client knows as a peer id: it goes to a broker of the
// default cluster that peer presents (its co-located broker first), with
// the name rewritten to that broker's id and back in the answer. Resources
// bound for different brokers are split and the answers concatenated; two
// peers sent to one broker under the same name go in separate requests.

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	resourceBroker       = kmsg.ConfigResourceTypeBroker
	resourceBrokerLogger = kmsg.ConfigResourceTypeBrokerLogger
)

func isBrokerResource(t kmsg.ConfigResourceType, name string) bool {
	return (t == resourceBroker || t == resourceBrokerLogger) && name != ""
}

// configTarget is where a config resource is served, and the broker name it
// is sent under (for broker resources).
type configTarget struct {
	t    target
	name string // rewritten resource name; "" keeps the client's
	code int16  // answered locally with this code when not 0
}

func (r *request) configTarget(typ kmsg.ConfigResourceType, name string) (configTarget, error) {
	def := r.defaultBackend()
	if def == nil {
		return configTarget{}, errNoCluster
	}
	switch {
	case typ == kmsg.ConfigResourceTypeTopic:
		be := r.route(name)
		if be == nil {
			return configTarget{code: kerr.UnknownTopicOrPartition.Code}, nil
		}
		return configTarget{t: target{be, be.anyBroker(r.localBrokers(be))}}, nil
	case typ == kmsg.ConfigResourceTypeGroupConfig:
		be := r.home(name)
		return configTarget{t: target{be, be.anyBroker(r.localBrokers(be))}}, nil
	case isBrokerResource(typ, name):
		peer, err := strconv.ParseInt(name, 10, 32)
		if err != nil {
			return configTarget{}, fmt.Errorf("%w: broker resource name %q is not a broker id", ErrMalformed, name)
		}
		broker := brokerOfPeer(r, def, int32(peer))
		if broker < 0 {
			// The peer presents no broker: any broker answers for it.
			broker = def.anyBroker(r.localBrokers(def))
		}
		return configTarget{t: target{def, broker}, name: strconv.Itoa(int(broker))}, nil
	}
	return configTarget{t: target{def, def.anyBroker(r.localBrokers(def))}}, nil
}

// configSpec reads and rebuilds one of the three config requests.
type configSpec[X any, Y any] struct {
	resources []X
	key       func(*X) (kmsg.ConfigResourceType, *string)
	sub       func([]X) kmsg.Request
	local     func(kmsg.ConfigResourceType, string, int16) Y
	respRes   func(kmsg.Response) *[]Y
	respKey   func(*Y) (kmsg.ConfigResourceType, *string)
	throttle  func(kmsg.Response) *int32
	newLocal  func([]Y) kmsg.Response
}

// configPart is one sub-request of a config request: to t, and with slot
// > 0 a further one to t, for a broker resource whose sent name an earlier
// one already uses for another peer (two peers that present no broker are
// both answered by this host's): the answer is renamed back by name, so
// one sub-request must not carry one name for two peers.
type configPart struct {
	t    target
	slot int
}

func routeConfigs[X any, Y any](c *clientConn, r *request, start time.Time, sp configSpec[X, Y]) error {
	by := map[configPart][]X{}
	names := map[configPart]map[string]string{} // broker name sent → peer name asked
	var locals []Y
	for i := range sp.resources {
		x := sp.resources[i]
		typ, name := sp.key(&x)
		ct, err := r.configTarget(typ, *name)
		if err != nil {
			return err
		}
		if ct.code != 0 {
			locals = append(locals, sp.local(typ, *name, ct.code))
			continue
		}
		key := configPart{t: ct.t}
		if ct.name != "" {
			for {
				asked, taken := names[key][ct.name]
				if !taken || asked == *name {
					break
				}
				key.slot++
			}
			if names[key] == nil {
				names[key] = map[string]string{}
			}
			names[key][ct.name] = *name
			*name = ct.name
		}
		by[key] = append(by[key], x)
	}
	keys := make([]configPart, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b configPart) int {
		if c := cmpTarget(a.t, b.t); c != 0 {
			return c
		}
		return a.slot - b.slot
	})
	parts := make([]part, 0, len(by)+1)
	backs := make([]map[string]string, 0, len(by)+1)
	for _, k := range keys {
		parts = append(parts, part{t: k.t, req: sp.sub(by[k])})
		backs = append(backs, names[k])
	}
	if len(locals) > 0 {
		parts = append(parts, part{local: sp.newLocal(locals)})
		backs = append(backs, nil)
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0]
		all := sp.respRes(out)
		for i, x := range resps {
			back := backs[i]
			res := sp.respRes(x)
			for j := range *res {
				if typ, name := sp.respKey(&(*res)[j]); isBrokerResource(typ, *name) {
					if peer, ok := back[*name]; ok {
						*name = peer
					}
				}
			}
			if i > 0 {
				*sp.throttle(out) = max(*sp.throttle(out), *sp.throttle(x))
				*all = append(*all, *res...)
			}
		}
		return out
	})
}

func handleConfigs(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	msg := func(code int16) *string {
		if code != kerr.UnknownTopicOrPartition.Code {
			return nil
		}
		m := "switchyard: no route, prefix rule or default cluster routes this topic"
		return &m
	}
	switch req := kreq.(type) {
	case *kmsg.DescribeConfigsRequest:
		return routeConfigs(c, r, start, configSpec[kmsg.DescribeConfigsRequestResource, kmsg.DescribeConfigsResponseResource]{
			resources: req.Resources,
			key: func(x *kmsg.DescribeConfigsRequestResource) (kmsg.ConfigResourceType, *string) {
				return x.ResourceType, &x.ResourceName
			},
			sub: func(xs []kmsg.DescribeConfigsRequestResource) kmsg.Request {
				s := *req
				s.Resources = xs
				return &s
			},
			local: func(t kmsg.ConfigResourceType, n string, code int16) kmsg.DescribeConfigsResponseResource {
				return kmsg.DescribeConfigsResponseResource{ResourceType: t, ResourceName: n, ErrorCode: code, ErrorMessage: msg(code)}
			},
			respRes: func(x kmsg.Response) *[]kmsg.DescribeConfigsResponseResource {
				return &x.(*kmsg.DescribeConfigsResponse).Resources
			},
			respKey: func(y *kmsg.DescribeConfigsResponseResource) (kmsg.ConfigResourceType, *string) {
				return y.ResourceType, &y.ResourceName
			},
			throttle: func(x kmsg.Response) *int32 { return &x.(*kmsg.DescribeConfigsResponse).ThrottleMillis },
			newLocal: func(ys []kmsg.DescribeConfigsResponseResource) kmsg.Response {
				return &kmsg.DescribeConfigsResponse{Resources: ys}
			},
		})
	case *kmsg.AlterConfigsRequest:
		return routeConfigs(c, r, start, configSpec[kmsg.AlterConfigsRequestResource, kmsg.AlterConfigsResponseResource]{
			resources: req.Resources,
			key: func(x *kmsg.AlterConfigsRequestResource) (kmsg.ConfigResourceType, *string) {
				return x.ResourceType, &x.ResourceName
			},
			sub: func(xs []kmsg.AlterConfigsRequestResource) kmsg.Request {
				s := *req
				s.Resources = xs
				return &s
			},
			local: func(t kmsg.ConfigResourceType, n string, code int16) kmsg.AlterConfigsResponseResource {
				return kmsg.AlterConfigsResponseResource{ResourceType: t, ResourceName: n, ErrorCode: code, ErrorMessage: msg(code)}
			},
			respRes: func(x kmsg.Response) *[]kmsg.AlterConfigsResponseResource {
				return &x.(*kmsg.AlterConfigsResponse).Resources
			},
			respKey: func(y *kmsg.AlterConfigsResponseResource) (kmsg.ConfigResourceType, *string) {
				return y.ResourceType, &y.ResourceName
			},
			throttle: func(x kmsg.Response) *int32 { return &x.(*kmsg.AlterConfigsResponse).ThrottleMillis },
			newLocal: func(ys []kmsg.AlterConfigsResponseResource) kmsg.Response {
				return &kmsg.AlterConfigsResponse{Resources: ys}
			},
		})
	case *kmsg.IncrementalAlterConfigsRequest:
		return routeConfigs(c, r, start, configSpec[kmsg.IncrementalAlterConfigsRequestResource, kmsg.IncrementalAlterConfigsResponseResource]{
			resources: req.Resources,
			key: func(x *kmsg.IncrementalAlterConfigsRequestResource) (kmsg.ConfigResourceType, *string) {
				return x.ResourceType, &x.ResourceName
			},
			sub: func(xs []kmsg.IncrementalAlterConfigsRequestResource) kmsg.Request {
				s := *req
				s.Resources = xs
				return &s
			},
			local: func(t kmsg.ConfigResourceType, n string, code int16) kmsg.IncrementalAlterConfigsResponseResource {
				return kmsg.IncrementalAlterConfigsResponseResource{ResourceType: t, ResourceName: n, ErrorCode: code, ErrorMessage: msg(code)}
			},
			respRes: func(x kmsg.Response) *[]kmsg.IncrementalAlterConfigsResponseResource {
				return &x.(*kmsg.IncrementalAlterConfigsResponse).Resources
			},
			respKey: func(y *kmsg.IncrementalAlterConfigsResponseResource) (kmsg.ConfigResourceType, *string) {
				return y.ResourceType, &y.ResourceName
			},
			throttle: func(x kmsg.Response) *int32 { return &x.(*kmsg.IncrementalAlterConfigsResponse).ThrottleMillis },
			newLocal: func(ys []kmsg.IncrementalAlterConfigsResponseResource) kmsg.Response {
				return &kmsg.IncrementalAlterConfigsResponse{Resources: ys}
			},
		})
	}
	return fmt.Errorf("%w: %s is not a config request", ErrUnroutable, kmsg.NameForKey(r.key))
}

// brokerOfPeer returns a broker of be presented by peer, its co-located
// brokers first, or -1.
func brokerOfPeer(r *request, be *Backend, peer int32) int32 {
	pr := r.presenter(be)
	ids := be.brokerIDs()
	for _, id := range ids {
		if b, ok := pr.local[id]; ok && b == peer {
			return id
		}
	}
	for _, id := range ids {
		if pr.peerFor(id) == peer {
			return id
		}
	}
	return -1
}
