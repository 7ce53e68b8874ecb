package kafka

// DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44):
// all versions. Topic, group and client-metrics resources can be served by
// any broker and go through unchanged. A BROKER or BROKER_LOGGER resource
// names a broker id, which the client knows as a peer id: the proxy sends
// the request to a backend broker that peer presents (its co-located
// broker first), with the name rewritten to that broker's id, and rewrites
// the name back in the answer. A request naming two different brokers is
// refused (Kafka's admin clients send one request per broker).

import (
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	resourceBroker       = kmsg.ConfigResourceTypeBroker
	resourceBrokerLogger = kmsg.ConfigResourceTypeBrokerLogger
)

func isBrokerResource(t kmsg.ConfigResourceType, name string) bool {
	return (t == resourceBroker || t == resourceBrokerLogger) && name != ""
}

func handleConfigs(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var names []*string
	switch v := kreq.(type) {
	case *kmsg.DescribeConfigsRequest:
		for i := range v.Resources {
			if isBrokerResource(v.Resources[i].ResourceType, v.Resources[i].ResourceName) {
				names = append(names, &v.Resources[i].ResourceName)
			}
		}
	case *kmsg.AlterConfigsRequest:
		for i := range v.Resources {
			if isBrokerResource(v.Resources[i].ResourceType, v.Resources[i].ResourceName) {
				names = append(names, &v.Resources[i].ResourceName)
			}
		}
	case *kmsg.IncrementalAlterConfigsRequest:
		for i := range v.Resources {
			if isBrokerResource(v.Resources[i].ResourceType, v.Resources[i].ResourceName) {
				names = append(names, &v.Resources[i].ResourceName)
			}
		}
	}
	if len(names) == 0 {
		return c.forwardAny(r, start, nil)
	}
	peerName := *names[0]
	for _, n := range names[1:] {
		if *n != peerName {
			return fmt.Errorf("%w: %s names brokers %s and %s in one request", ErrUnroutable, kmsg.NameForKey(r.key), peerName, *n)
		}
	}
	peer, err := strconv.ParseInt(peerName, 10, 32)
	if err != nil {
		return fmt.Errorf("%w: broker resource name %q is not a broker id", ErrMalformed, peerName)
	}
	broker := c.s.brokerOfPeer(int32(peer))
	if broker < 0 {
		// The peer presents no broker: any broker answers for it.
		broker = c.s.backend.anyBroker(c.s.localBrokers())
	}
	brokerName := strconv.Itoa(int(broker))
	for _, n := range names {
		*n = brokerName
	}
	return c.scatter(r, start, []part{{broker: broker, req: kreq}}, func(resps []kmsg.Response) kmsg.Response {
		back := func(t kmsg.ConfigResourceType, name *string) {
			if isBrokerResource(t, *name) && *name == brokerName {
				*name = peerName
			}
		}
		switch v := resps[0].(type) {
		case *kmsg.DescribeConfigsResponse:
			for i := range v.Resources {
				back(v.Resources[i].ResourceType, &v.Resources[i].ResourceName)
			}
		case *kmsg.AlterConfigsResponse:
			for i := range v.Resources {
				back(v.Resources[i].ResourceType, &v.Resources[i].ResourceName)
			}
		case *kmsg.IncrementalAlterConfigsResponse:
			for i := range v.Resources {
				back(v.Resources[i].ResourceType, &v.Resources[i].ResourceName)
			}
		}
		return resps[0]
	})
}

// brokerOfPeer returns a backend broker presented by peer, its co-located
// brokers first, or -1.
func (s *Server) brokerOfPeer(peer int32) int32 {
	pr := s.presenter()
	ids := s.backend.brokerIDs()
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
