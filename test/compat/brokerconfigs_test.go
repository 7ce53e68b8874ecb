package compat

// Broker configs of every cluster through the proxy. Clients name a broker
// by the node id they know, a peer's; the proxy sends a BROKER resource to
// the broker on that peer's host, whichever cluster it belongs to
// (kafka/32_configs.go), so with one peer per broker host, as in
// production, every cluster's brokers can be read and changed.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

func TestBrokerConfigsOfEveryCluster(t *testing.T) {
	const name = "log.retention.ms"
	sb := startSandboxWith(t, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{
			{Name: "east", Brokers: 2, KfakeOpts: []kfake.Opt{kfake.BrokerConfigs(map[string]string{name: "111000"})}},
			{Name: "west", Brokers: 2, KfakeOpts: []kfake.Opt{kfake.BrokerConfigs(map[string]string{name: "222000"})}},
		},
		Peers: 4, // one per broker host: peers 0-1 on east's, 2-3 on west's
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The node id clients know for each sandbox peer, by its address.
	var ids [4]int32
	waitFor(t, 20*time.Second, "every peer in metadata", func() bool {
		m, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return false
		}
		found := 0
		for _, b := range m.Brokers {
			for i, addr := range sb.Bootstrap {
				if addr == b.Host+":"+strconv.Itoa(int(b.Port)) {
					ids[i] = b.NodeID
					found++
				}
			}
		}
		return found == len(sb.Bootstrap)
	})
	want := []string{"111000", "111000", "222000", "222000"}
	read := func(id int32) string {
		t.Helper()
		rcs, err := adm.DescribeBrokerConfigs(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(strconv.Itoa(int(id)), nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("broker %d: %v %v", id, err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == name {
				return c.MaybeValue()
			}
		}
		t.Fatalf("broker %d: no %s in %v", id, name, rc.Configs)
		return ""
	}
	for i, id := range ids {
		if got := read(id); got != want[i] {
			t.Errorf("franz-go kadm: broker %d (peer %d) %s = %s, want %s (its host's cluster)", id, i, name, got, want[i])
		}
	}

	// kafka-python sends a broker resource to the node it names.
	for _, i := range []int{1, 3} {
		out, _ := runPyclient(t, 60*time.Second, "brokerconfig", sb.Bootstrap[0], strconv.Itoa(int(ids[i])), name)
		if got := strings.TrimSpace(out); got != want[i] {
			t.Errorf("kafka-python: broker %d (peer %d) %s = %q, want %s", ids[i], i, name, got, want[i])
		}
	}

	// Changed through the proxy on a west broker: west changes, east does
	// not (checked on each backend directly).
	alter := []kadm.AlterConfig{{Name: name, Value: kadm.StringPtr("333000")}}
	res, err := adm.AlterBrokerConfigs(ctx, alter, ids[3])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("alter broker %s: %v %s", r.Name, r.Err, r.ErrMessage)
		}
		if r.Name != strconv.Itoa(int(ids[3])) {
			t.Fatalf("alter answered for %q, want the name asked, %d", r.Name, ids[3])
		}
	}
	for cluster, wantV := range map[string]string{"east": "111000", "west": "333000"} {
		_, dadm := directTo(t, sb, cluster)
		rcs, err := dadm.DescribeBrokerConfigs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("1", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rc.Configs {
			if c.Key == name && c.MaybeValue() != wantV {
				t.Errorf("%s broker 1 directly: %s = %s, want %s", cluster, name, c.MaybeValue(), wantV)
			}
		}
	}
	if got := read(ids[2]); got != "333000" {
		t.Errorf("after the change, west through peer 2: %s = %s, want 333000", name, got)
	}
}
