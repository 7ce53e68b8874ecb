package sites

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// image holds /switchyard (the peer, ENTRYPOINT as in
// deploy/docker/Dockerfile), /kbackend and /verifier.
var image string

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sites:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// setup builds the three static binaries into one FROM scratch image (the
// peer image of deploy/docker/Dockerfile plus the two test programs), runs
// the tests and removes the image.
func setup(m *testing.M) (int, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return 0, fmt.Errorf("docker is required for the two-site container test (the CI and development machines have it): %w", err)
	}
	dir, err := os.MkdirTemp("", "switchyard-sites-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	for bin, pkg := range map[string]string{
		"switchyard": "../../cmd/switchyard",
		"kbackend":   "./cmd/kbackend",
		"verifier":   "./cmd/verifier",
	} {
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, bin), pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("build static %s: %v\n%s", bin, err, out)
		}
	}
	df, err := os.ReadFile("../../deploy/docker/Dockerfile")
	if err != nil {
		return 0, err
	}
	df = append(df, []byte("\n# test/sites: the backend cluster and the client verifier.\nCOPY kbackend verifier /\n")...)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return 0, err
	}
	image = "switchyard-sites:" + randHex(4)
	if out, err := exec.Command("docker", "build", "-q", "-t", image, dir).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("docker build: %v\n%s", err, out)
	}
	defer exec.Command("docker", "rmi", "-f", image).Run()
	return m.Run(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// report prints a figure both to the test log and to stdout (go test
// shows stdout of a passing test only with -v; CI logs keep it).
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf(format, args...)
	fmt.Printf("sites: "+format+"\n", args...)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// env owns every container and network of one test and removes them in
// t.Cleanup, whatever the outcome; on failure it logs each container's
// last lines first.
type env struct {
	t          *testing.T
	name       string
	mu         sync.Mutex
	containers []string
	networks   []string
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, name: "sy-sites-" + randHex(3)}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, c := range e.containers {
			if t.Failed() {
				logs, _ := exec.Command("docker", "logs", "--tail", "40", c).CombinedOutput()
				t.Logf("--- %s log:\n%s", c, logs)
			}
			if dir := os.Getenv("SWITCHYARD_SITES_LOGS"); dir != "" {
				// Every line of every container, pass or fail.
				all, _ := exec.Command("docker", "logs", c).CombinedOutput()
				_ = os.WriteFile(filepath.Join(dir, c+".log"), all, 0o644)
			}
			exec.Command("docker", "rm", "-f", "-v", c).Run()
		}
		for _, n := range e.networks {
			exec.Command("docker", "network", "rm", n).Run()
		}
	})
	return e
}

func (e *env) docker(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newNetworks creates bridge networks on /24s 10.231.x.0/24 with
// consecutive x, trying a few random bases until none overlaps one the
// host has. It answers each network's name and address prefix ("10.231.7.").
func (e *env) newNetworks(labels ...string) (names, prefixes []string) {
	e.t.Helper()
	var lastErr error
	for range 10 {
		n, _ := rand.Int(rand.Reader, big.NewInt(240))
		base := int(n.Int64()) + 4
		names, prefixes = nil, nil
		var err error
		for i, l := range labels {
			name := e.name + "-" + l
			prefix := fmt.Sprintf("10.231.%d.", base+i)
			out, cerr := exec.Command("docker", "network", "create", "--driver", "bridge", "--subnet", prefix+"0/24", name).CombinedOutput()
			if cerr != nil {
				err = fmt.Errorf("%v: %s", cerr, out)
				break
			}
			names, prefixes = append(names, name), append(prefixes, prefix)
		}
		if err == nil {
			e.mu.Lock()
			e.networks = append(e.networks, names...)
			e.mu.Unlock()
			return names, prefixes
		}
		for _, name := range names {
			exec.Command("docker", "network", "rm", name).Run()
		}
		lastErr = err
	}
	e.t.Fatalf("docker network create: %v", lastErr)
	return nil, nil
}

// attach is one network interface of a container: network name and fixed IP.
type attach struct{ network, ip string }

// start creates a container on its networks (fixed addresses, so a
// restarted or reconnected container keeps them) and starts it.
func (e *env) start(name string, nets []attach, entrypoint string, args ...string) string {
	e.t.Helper()
	c := e.name + "-" + name
	create := []string{"create", "--name", c, "--network", nets[0].network, "--ip", nets[0].ip}
	if entrypoint != "" {
		create = append(create, "--entrypoint", entrypoint)
	}
	create = append(create, image)
	create = append(create, args...)
	e.docker(create...)
	e.mu.Lock()
	e.containers = append(e.containers, c)
	e.mu.Unlock()
	for _, n := range nets[1:] {
		e.docker("network", "connect", "--ip", n.ip, n.network, c)
	}
	e.docker("start", c)
	return c
}

// peerSpec is one Switchyard peer: its name, region, the address it
// advertises (its home network) and every interface it has.
type peerSpec struct {
	name, region string
	nets         []attach
}

func (p peerSpec) ip() string { return p.nets[0].ip }

// startPeers runs the peers as one Raft group (each --bootstrap-expect
// len(peers), each joining all the others).
func (e *env) startPeers(peers []peerSpec) {
	e.t.Helper()
	for i, p := range peers {
		ip := p.ip()
		args := []string{"serve", "--name", p.name, "--data-dir", "/data",
			"--kafka-listen", "0.0.0.0:9092", "--kafka-advertise", ip + ":9092",
			"--admin-listen", "0.0.0.0:18080",
			"--raft-listen", "0.0.0.0:17000", "--raft-advertise", ip + ":17000",
			"--gossip-listen", "0.0.0.0:17946", "--gossip-advertise", ip + ":17946",
			"--bootstrap-expect", fmt.Sprint(len(peers)), "--dead-peer-timeout", "10m", "--log-level", "info",
			"--metadata-refresh", "2s",
			// The two-site deployment of docs/regions.md: a site cut off
			// from the Raft majority keeps accepting writes.
			"--write-lease", "0",
			// Private docker networks of test containers: no TLS, no keys.
			"--insecure", "--admit-unproven-peers"}
		if p.region != "" {
			args = append(args, "--region", p.region)
		}
		for j, q := range peers {
			if j != i {
				args = append(args, "--join", q.ip()+":17946")
			}
		}
		e.start(p.name, p.nets, "", args...)
	}
}

// startBackend runs a kbackend of three brokers on ip:9092-9094 with its
// data in the container (kept across docker kill and docker start).
func (e *env) startBackend(name string, nets []attach, topic string) string {
	return e.start(name, nets, "/kbackend", "-advertise", nets[0].ip, "-ports", "9092,9093,9094",
		"-data-dir", "/data", "-cluster-id", name, "-partitions", "3", "-topic", topic)
}

func backendAddrs(ip string) []string {
	return []string{ip + ":9092", ip + ":9093", ip + ":9094"}
}

func kafkaAddrs(peers []peerSpec) string {
	var a []string
	for _, p := range peers {
		a = append(a, p.ip()+":9092")
	}
	return strings.Join(a, ",")
}

// admin sends one admin API request to a peer and decodes a 2xx answer
// into out (when not nil); any other status is an error naming the body.
func admin(ip, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+ip+":18080"+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &apiError{code: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.Join(strings.Fields(string(b)), " "))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// apiError is an admin API answer other than 2xx.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

// retryable says whether an admin request may succeed when sent again: a
// transport error or a 5xx (no leader yet, a forward that timed out), not
// a 4xx (the request itself is refused).
func retryable(err error) bool {
	var ae *apiError
	return err != nil && (!errors.As(err, &ae) || ae.code >= 500)
}

type status struct {
	Leader *struct {
		Name string `json:"name"`
	} `json:"leader"`
	Raft struct {
		Voters    int `json:"voters"`
		Nonvoters int `json:"nonvoters"`
	} `json:"raft"`
	Peers []struct {
		Name string `json:"name"`
		Raft string `json:"raft"`
	} `json:"peers"`
}

// waitLeader waits until the peer at ip knows a leader, voters voters and
// nonvoters non-voters (the leader keeps at most five voters, spread over
// the peers' regions: node/leader.go), and answers the leader's name and
// the voters' names.
func waitLeader(t *testing.T, ip string, voters, nonvoters int) (string, []string) {
	t.Helper()
	var leader string
	var names []string
	waitFor(t, 90*time.Second, fmt.Sprintf("a leader with %d voters and %d non-voters", voters, nonvoters), func() error {
		var s status
		if err := admin(ip, "GET", "/v1/status", nil, &s); err != nil {
			return err
		}
		if s.Leader == nil || s.Raft.Voters != voters || s.Raft.Nonvoters != nonvoters {
			return fmt.Errorf("leader %v, voters %d, non-voters %d", s.Leader, s.Raft.Voters, s.Raft.Nonvoters)
		}
		leader, names = s.Leader.Name, nil
		for _, p := range s.Peers {
			if p.Raft == "voter" {
				names = append(names, p.Name)
			}
		}
		sort.Strings(names)
		return nil
	})
	return leader, names
}

// Event is a verifier output line (test/sites/cmd/verifier).
type Event struct {
	Ev   string `json:"ev"`
	By   string `json:"by,omitempty"`
	Src  string `json:"src"`
	Seq  int64  `json:"seq"`
	Part int32  `json:"part"`
	Off  int64  `json:"off"`
	T    int64  `json:"t"`
	Err  string `json:"err,omitempty"`
}

// events reads a verifier container's stdout (docker logs) as events.
func events(t *testing.T, container string) []Event {
	t.Helper()
	cmd := exec.Command("docker", "logs", container)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker logs %s: %v: %s", container, err, errb.String())
	}
	var evs []Event
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Ev != "" {
			evs = append(evs, e)
		}
	}
	return evs
}

// acked answers a producer's acknowledged records by seq.
func acked(evs []Event) map[int64]Event {
	m := map[int64]Event{}
	for _, e := range evs {
		if e.Ev == "ack" {
			m[e.Seq] = e
		}
	}
	return m
}

// stored reads a backend cluster directly (not through Switchyard) up to
// its high watermarks and answers which (src, seq) it holds, with the
// offsets of each copy.
func stored(bootstrap []string, topic string) (map[string]map[int64][]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	offs := map[string]map[int32]kgo.Offset{topic: {}}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		offs[topic][o.Partition] = kgo.NewOffset().AtStart()
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	got := map[string]map[int64][]int64{}
	if len(want) == 0 {
		return got, nil
	}
	cl.AddConsumePartitions(offs)
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s up to its end offsets %v: %w", topic, want, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			src, seq, ok := strings.Cut(string(r.Value), " ")
			if ok {
				var n int64
				fmt.Sscan(seq, &n)
				if got[src] == nil {
					got[src] = map[int64][]int64{}
				}
				got[src][n] = append(got[src][n], r.Offset)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return got, nil
}

// window is a span with no acknowledgement (or no consumed record).
type window struct{ from, to time.Time }

func (w window) String() string {
	return fmt.Sprintf("%s–%s (%v)", w.from.Format("15:04:05.000"), w.to.Format("15:04:05.000"), w.to.Sub(w.from).Round(time.Millisecond))
}

// gaps answers the windows longer than min between consecutive times.
func gaps(ts []int64, min time.Duration) []window {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	var ws []window
	for i := 1; i < len(ts); i++ {
		if time.Duration(ts[i]-ts[i-1])*time.Millisecond > min {
			ws = append(ws, window{time.UnixMilli(ts[i-1]), time.UnixMilli(ts[i])})
		}
	}
	return ws
}

// accounting compares producers' acknowledgements with what consumers
// logged: lost are acknowledged seqs never consumed (by any consumer),
// dups counts records consumed more than once by the same consumer.
type accounting struct {
	acked, lost, dups, errs int
	lostSeqs                []string
	ackGaps, consumeGaps    map[string][]window
}

// Windows are those longer than minGap; a consumer's windows are counted up
// to the producers' last acknowledgement (after it there is nothing to read).
func account(producers map[string][]Event, consumers map[string][]Event, minGap time.Duration) accounting {
	a := accounting{ackGaps: map[string][]window{}, consumeGaps: map[string][]window{}}
	var lastAck int64
	for _, evs := range producers {
		for _, e := range evs {
			if e.Ev == "ack" && e.T > lastAck {
				lastAck = e.T
			}
		}
	}
	seen := map[string]map[int64]bool{}
	for by, evs := range consumers {
		per := map[string]int{}
		var ts []int64
		for _, e := range evs {
			if e.Ev != "rec" {
				continue
			}
			k := fmt.Sprintf("%s/%d", e.Src, e.Seq)
			per[k]++
			if per[k] == 2 {
				a.dups++
			}
			if seen[e.Src] == nil {
				seen[e.Src] = map[int64]bool{}
			}
			seen[e.Src][e.Seq] = true
			if e.T <= lastAck {
				ts = append(ts, e.T)
			}
		}
		if len(ts) > 0 && ts[len(ts)-1] < lastAck {
			ts = append(ts, lastAck) // a window still open at the last acknowledgement
		}
		a.consumeGaps[by] = gaps(ts, minGap)
	}
	for src, evs := range producers {
		var ts []int64
		for seq, e := range acked(evs) {
			a.acked++
			ts = append(ts, e.T)
			if !seen[src][seq] {
				a.lost++
				if len(a.lostSeqs) < 20 {
					a.lostSeqs = append(a.lostSeqs, fmt.Sprintf("%s/%d@%d:%d", src, seq, e.Part, e.Off))
				}
			}
		}
		for _, e := range evs {
			if e.Ev == "err" {
				a.errs++
			}
		}
		a.ackGaps[src] = gaps(ts, minGap)
	}
	sort.Strings(a.lostSeqs)
	return a
}

func (a accounting) report(t *testing.T) {
	t.Helper()
	report(t, "acknowledged %d, lost %d %v, consumed twice by the same consumer %d, failed produce %d", a.acked, a.lost, a.lostSeqs, a.dups, a.errs)
	for _, m := range []struct {
		what string
		ws   map[string][]window
	}{{"no acknowledgement", a.ackGaps}, {"nothing consumed", a.consumeGaps}} {
		keys := make([]string, 0, len(m.ws))
		for k := range m.ws {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			report(t, "%s: %s windows: %v", k, m.what, m.ws[k])
		}
	}
}

// waitConsumed waits until every acknowledged record of the producers was
// consumed by some consumer.
func waitConsumed(t *testing.T, timeout time.Duration, producers, consumers map[string]string) {
	t.Helper()
	waitFor(t, timeout, "every acknowledged record consumed", func() error {
		p, c := map[string][]Event{}, map[string][]Event{}
		for k, n := range producers {
			p[k] = events(t, n)
		}
		for k, n := range consumers {
			c[k] = events(t, n)
		}
		if a := account(p, c, time.Hour); a.lost > 0 {
			return fmt.Errorf("%d of %d not consumed yet, e.g. %v", a.lost, a.acked, a.lostSeqs)
		}
		return nil
	})
}
