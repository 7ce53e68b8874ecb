package chaos

// The partition case: the fault cases' clients and checks (faults_test.go)
// against peers and a dev broker in containers on a private Docker
// network, with one peer's interface removed for 30 s.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionFor is how long the peer is cut off.
const partitionFor = 30 * time.Second

// TestFaultPeerPartitioned: three peers (peer i co-located with backend
// broker i) and a `switchyard broker` container; p0, which presents broker
// 0's partitions and is the clients' first bootstrap address, is
// disconnected from the network for 30 s and reconnected. The clients run
// on the host and reach the containers over the bridge.
func TestFaultPeerPartitioned(t *testing.T) {
	needChaos(t)
	needImage(t)
	nw := newNetwork(t)
	bip := nw.ip(9) // the backend
	backend := nw.name + "-backend"
	docker(t, "run", "-d", "--name", backend, "--network", nw.name, "--ip", bip, image,
		"broker", "--listen", "0.0.0.0:9093", "--advertise", bip+":9093", "--brokers", "3",
		"--data-dir", "/data", "--auto-create=false", "--cluster-id", "chaos", "--log-level", "warn")
	nw.peers = append(nw.peers, backend) // removed with the peers
	brokers := []string{bip + ":9093", bip + ":9094", bip + ":9095"}
	nw.startPeers(3, func(i int) []string {
		return []string{"--local-broker", fmt.Sprintf("main:%d", i), "--metadata-refresh", "1s"}
	})
	waitFor(t, 60*time.Second, "a leader with 3 voters", func() error {
		s, err := nw.status(0)
		if err != nil {
			return err
		}
		if s.Leader == nil || s.Raft.Voters != 3 {
			return fmt.Errorf("leader %v, voters %d", s.Leader, s.Raft.Voters)
		}
		return nil
	})
	waitFor(t, 30*time.Second, "define the backend", func() error {
		_, err := nw.ctl(1, "clusters", "set", "main", "--bootstrap", strings.Join(brokers, ","))
		return err
	})
	waitFor(t, 30*time.Second, "route to it", func() error {
		_, err := nw.ctl(2, "routes", "default", "main")
		return err
	})
	hc := &http.Client{Timeout: 3 * time.Second}
	var boot []string
	for i := range 3 {
		boot = append(boot, net.JoinHostPort(nw.ip(i), "9092"))
		waitFor(t, 60*time.Second, fmt.Sprintf("p%d ready", i), func() error {
			resp, err := hc.Get("http://" + nw.ip(i) + ":18080/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz: %s", resp.Status)
			}
			return nil
		})
	}
	waitFor(t, 60*time.Second, "create the topic on the backend", func() error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, faultPartitions, 1, nil, faultTopic)
		if err == nil {
			err = resp.Err
		}
		return err
	})
	runTraffic(t, boot, 3, "", func() {
		docker(t, "network", "disconnect", nw.name, nw.container(0))
		t.Logf("p0 cut off for %v", partitionFor)
		time.Sleep(partitionFor)
		docker(t, "network", "connect", "--ip", nw.ip(0), nw.name, nw.container(0))
		t.Logf("p0 reconnected")
	})
}
