package sites

import (
	"fmt"
	"testing"
	"time"
)

// TestOneSiteBackendRestart proves the harness the two-site test stands on,
// with nothing of regions or failover: one site (a kbackend of three brokers,
// three peers, a producer and a consumer verifier in containers on one
// network). The backend container is killed (SIGKILL, no flush) and started
// again: it comes back with every record it acknowledged (read directly,
// at the acknowledged offsets), the clients resume through the peers, and
// every acknowledged record is consumed at least once.
func TestOneSiteBackendRestart(t *testing.T) {
	e := newEnv(t)
	names, prefixes := e.newNetworks("one")
	net, pre := names[0], prefixes[0]
	const topic = "sites"
	backendIP := pre + "5"
	backend := e.startBackend("kb", []attach{{net, backendIP}}, topic)
	var peers []peerSpec
	for i := range 3 {
		peers = append(peers, peerSpec{name: fmt.Sprintf("a%d", i+1), region: "dc1", nets: []attach{{net, fmt.Sprintf("%s%d", pre, 11+i)}}})
	}
	e.startPeers(peers)
	waitLeader(t, peers[0].ip(), 3, 0)
	waitFor(t, 30*time.Second, "configure the cluster and routes", func() error {
		if err := admin(peers[0].ip(), "PUT", "/v1/clusters/east", map[string]any{"bootstrap": backendAddrs(backendIP), "region": "dc1"}, nil); err != nil {
			return err
		}
		if err := admin(peers[0].ip(), "PUT", "/v1/routes/"+topic, map[string]any{"cluster": "east"}, nil); err != nil {
			return err
		}
		return admin(peers[0].ip(), "PUT", "/v1/default-cluster", map[string]any{"cluster": "east"}, nil)
	})
	brokers := kafkaAddrs(peers)
	prod := e.start("prod", []attach{{net, pre + "50"}}, "/verifier", "produce", "-brokers", brokers, "-topic", topic, "-site", "dc1", "-rate", "20")
	cons := e.start("cons", []attach{{net, pre + "51"}}, "/verifier", "consume", "-brokers", brokers, "-topic", topic, "-site", "dc1", "-group", "sites-dc1")

	waitFor(t, 60*time.Second, "acknowledgements and consumed records", func() error {
		if n := len(acked(events(t, prod))); n < 50 {
			return fmt.Errorf("%d acknowledged", n)
		}
		for _, ev := range events(t, cons) {
			if ev.Ev == "rec" {
				return nil
			}
		}
		return fmt.Errorf("nothing consumed")
	})

	e.docker("kill", backend)
	killed := time.Now()
	before := acked(events(t, prod))
	time.Sleep(5 * time.Second)
	e.docker("start", backend)
	restarted := time.Now()
	var resumed time.Duration
	waitFor(t, 60*time.Second, "the producer acknowledges again after the restart", func() error {
		for _, ev := range acked(events(t, prod)) {
			if ev.T > restarted.UnixMilli() {
				resumed = time.UnixMilli(ev.T).Sub(restarted)
				return nil
			}
		}
		return fmt.Errorf("no acknowledgement since the restart")
	})
	report(t, "one site: backend killed at %s, started again after %v; producer acknowledged again %v after the start",
		killed.Format("15:04:05.000"), restarted.Sub(killed).Round(time.Millisecond), resumed.Round(time.Millisecond))

	// The restarted backend kept what it acknowledged before the kill, at
	// the offsets it answered.
	var got map[string]map[int64][]int64
	waitFor(t, 30*time.Second, "read the restarted backend directly", func() (err error) {
		got, err = stored(backendAddrs(backendIP), topic)
		return err
	})
	var missing []string
	for seq, ev := range before {
		found := false
		for _, off := range got["dc1"][seq] {
			found = found || off == ev.Off
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%d@%d:%d (stored at %v)", seq, ev.Part, ev.Off, got["dc1"][seq]))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d records acknowledged before the kill are not in the restarted backend at their offsets: %v", len(missing), len(before), missing)
	}
	report(t, "one site: all %d records acknowledged before the kill are in the restarted backend", len(before))

	time.Sleep(3 * time.Second)
	e.docker("stop", "-t", "15", prod)
	waitConsumed(t, 60*time.Second, map[string]string{"dc1": prod}, map[string]string{"dc1": cons})
	e.docker("stop", "-t", "15", cons)
	a := account(map[string][]Event{"dc1": events(t, prod)}, map[string][]Event{"dc1": events(t, cons)}, time.Second)
	a.report(t)
	if a.lost > 0 {
		t.Fatalf("%d acknowledged records never consumed", a.lost)
	}
}
