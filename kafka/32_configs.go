package kafka

// DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44):
// all versions. Each resource goes where it lives: a TOPIC resource to a
// broker of the cluster the topic routes to (unrouted topics are answered
// UNKNOWN_TOPIC_OR_PARTITION), a GROUP resource to the group's home
// cluster, everything else (client metrics, cluster-wide broker defaults)
// to the default cluster. A BROKER or BROKER_LOGGER resource names a broker
// id, which the client knows as a peer id: it goes to the broker on that
// peer's host, of whichever cluster (the default cluster's first; see
// brokerOfPeer), else a default-cluster broker that peer presents, with
// the name rewritten to that broker's id and back in the answer. Resources
// bound for different brokers are split and the answers concatenated; two
// peers sent to one broker under the same name go in separate requests.

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

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
	name string  // rewritten resource name; "" keeps the client's
	code int16   // answered locally with this code when not 0
	msg  *string // and this message
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
			m := "switchyard: no route, prefix rule or default cluster routes this topic"
			return configTarget{code: kerr.UnknownTopicOrPartition.Code, msg: &m}, nil
		}
		return configTarget{t: target{be, be.anyBroker(r.localBrokers(be))}}, nil
	case typ == kmsg.ConfigResourceTypeGroupConfig:
		be := r.home(name)
		return configTarget{t: target{be, be.anyBroker(r.localBrokers(be))}}, nil
	case isBrokerResource(typ, name):
		peer, err := strconv.ParseInt(name, 10, 32)
		if err != nil {
			// As a broker answers it: this resource fails, the rest of
			// the request goes on.
			m := fmt.Sprintf("switchyard: broker resource name %q is not a broker id", name)
			return configTarget{code: kerr.InvalidRequest.Code, msg: &m}, nil
		}
		be, broker := brokerOfPeer(r, def, int32(peer))
		if broker < 0 {
			// The peer presents no broker: any broker answers for it.
			be, broker = def, def.anyBroker(r.localBrokers(def))
		}
		return configTarget{t: target{be, broker}, name: strconv.Itoa(int(broker))}, nil
	}
	return configTarget{t: target{def, def.anyBroker(r.localBrokers(def))}}, nil
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

// The three config keys share one layout: Resources, each with a
// ResourceType and ResourceName, in the request and the answer, where each
// also has an ErrorCode and ErrorMessage. It is read by reflection (as the
// splitter reads topics, split.go) rather than written out three times.
const (
	cfgResources = "Resources"
	cfgType      = "ResourceType"
	cfgName      = "ResourceName"
)

func handleConfigs(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	rv := reflect.ValueOf(kreq).Elem()
	res := rv.FieldByName(cfgResources)
	if !res.IsValid() {
		return fmt.Errorf("%w: %s is not a config request", ErrUnroutable, kmsg.NameForKey(r.key))
	}
	by := map[configPart][]int{}
	names := map[configPart]map[string]string{} // broker name sent → peer name asked
	local := kmsg.ResponseForKey(r.key)
	lv := reflect.ValueOf(local).Elem()
	for i := range res.Len() {
		x := res.Index(i)
		typ := kmsg.ConfigResourceType(x.FieldByName(cfgType).Int())
		nameField := x.FieldByName(cfgName)
		name := nameField.String()
		ct, err := r.configTarget(typ, name)
		if err != nil {
			return err
		}
		if ct.code != 0 {
			addConfigError(lv, typ, name, ct.code, ct.msg)
			continue
		}
		key := configPart{t: ct.t}
		if ct.name != "" {
			for {
				asked, taken := names[key][ct.name]
				if !taken || asked == name {
					break
				}
				key.slot++
			}
			if names[key] == nil {
				names[key] = map[string]string{}
			}
			names[key][ct.name] = name
			nameField.SetString(ct.name)
		}
		by[key] = append(by[key], i)
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
		sub := reflect.New(rv.Type())
		sub.Elem().Set(rv)
		subRes := reflect.MakeSlice(res.Type(), 0, len(by[k]))
		for _, i := range by[k] {
			subRes = reflect.Append(subRes, res.Index(i))
		}
		sub.Elem().FieldByName(cfgResources).Set(subRes)
		parts = append(parts, part{t: k.t, req: sub.Interface().(kmsg.Request)})
		backs = append(backs, names[k])
	}
	if lv.FieldByName(cfgResources).Len() > 0 {
		parts = append(parts, part{local: local})
		backs = append(backs, nil)
	}
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := reflect.ValueOf(resps[0]).Elem().FieldByName(cfgResources)
		for i, x := range resps {
			xs := reflect.ValueOf(x).Elem().FieldByName(cfgResources)
			for j := range xs.Len() {
				y := xs.Index(j)
				nameField := y.FieldByName(cfgName)
				typ := kmsg.ConfigResourceType(y.FieldByName(cfgType).Int())
				if peer, ok := backs[i][nameField.String()]; ok && isBrokerResource(typ, nameField.String()) {
					nameField.SetString(peer)
				}
			}
			if i > 0 {
				out.Set(reflect.AppendSlice(out, xs))
			}
		}
		return resps[0]
	})
}

// addConfigError answers one resource in resp (a config answer struct)
// with code and msg.
func addConfigError(resp reflect.Value, typ kmsg.ConfigResourceType, name string, code int16, msg *string) {
	res := resp.FieldByName(cfgResources)
	y := reflect.New(res.Type().Elem()).Elem()
	y.FieldByName(cfgType).SetInt(int64(typ))
	y.FieldByName(cfgName).SetString(name)
	y.FieldByName("ErrorCode").SetInt(int64(code))
	y.FieldByName("ErrorMessage").Set(reflect.ValueOf(msg))
	res.Set(reflect.Append(res, y))
}

// brokerOfPeer returns the broker a BROKER resource named peer means:
// the broker on that peer's host (peers run one per broker host, whatever
// the broker's cluster), the default cluster's first when the host runs
// brokers of several clusters, then other clusters by name. A peer with
// no co-located broker means a default-cluster broker it presents by
// rendezvous. It returns -1 when the peer presents none.
func brokerOfPeer(r *request, def *Backend, peer int32) (*Backend, int32) {
	if id := colocated(r, def, peer); id >= 0 {
		return def, id
	}
	for _, be := range r.set.sorted {
		if be == def {
			continue
		}
		if id := colocated(r, be, peer); id >= 0 {
			return be, id
		}
	}
	pr := r.presenter(def)
	for _, id := range def.brokerIDs() {
		if pr.peerFor(id) == peer {
			return def, id
		}
	}
	return def, -1
}

// colocated returns the lowest-numbered broker of be on peer's host that
// be's metadata knows, or -1.
func colocated(r *request, be *Backend, peer int32) int32 {
	pr := r.presenter(be)
	for _, id := range be.brokerIDs() {
		if b, ok := pr.local[id]; ok && b == peer {
			return id
		}
	}
	return -1
}
