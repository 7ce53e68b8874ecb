package verifier

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer is a running producer.
type Producer interface {
	// Name is the prefix of its record values.
	Name() string
	// Stop stops producing, waits for every record handed to the client
	// to be acknowledged or failed (bounded by ctx) and closes the client.
	Stop(ctx context.Context) error
}

// KgoProducer is an idempotent franz-go producer (acks=all, retries
// unbounded) writing about rate records per second.
type KgoProducer struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// StartKgo starts a franz-go producer named name. Extra options are
// appended (a test's logger, say).
func StartKgo(bootstrap []string, topic, name string, rate int, log *Log, extra ...kgo.Opt) (*KgoProducer, error) {
	if rate < 1 {
		return nil, fmt.Errorf("verifier: rate %d: want at least 1 record/s", rate)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(bootstrap...),
		kgo.DefaultProduceTopic(topic),
		kgo.ClientID("chaos-" + name),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordDeliveryTimeout(5 * time.Minute),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("verifier: franz-go producer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &KgoProducer{name: name, cl: cl, cancel: cancel, done: make(chan struct{})}
	go p.run(ctx, rate, log)
	return p, nil
}

func (p *KgoProducer) Name() string { return p.name }

func (p *KgoProducer) run(ctx context.Context, rate int, log *Log) {
	defer close(p.done)
	start := time.Now()
	var seq int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		// Pace by the clock, not by sleeps, so a stall is made up for
		// (the client buffers; Produce blocks when its buffer is full).
		due := int64(time.Since(start).Seconds()*float64(rate)) + 1
		for ; seq < due; seq++ {
			s := seq
			r := &kgo.Record{Key: []byte(p.name + "-" + strconv.FormatInt(s%1000, 10)), Value: []byte(Value(p.name, s))}
			p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err != nil {
					if errors.Is(err, context.Canceled) && ctx.Err() != nil {
						// Handed to the client as Stop began and cancelled
						// before it was sent: neither acknowledged nor failed.
						log.Note(fmt.Sprintf("%s: record %d not sent: stopped", p.name, s))
						return
					}
					log.fail(p.name, s, err.Error())
					return
				}
				log.ack(Ack{Producer: p.name, Seq: s, Partition: r.Partition, Offset: r.Offset, At: time.Now()})
			})
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *KgoProducer) Stop(ctx context.Context) error {
	p.cancel()
	<-p.done
	defer p.cl.Close()
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("verifier: %s: flush: %w", p.name, err)
	}
	return nil
}

//go:embed rdkproducer.py
var rdkScript []byte

// PythonPath is the interpreter Debian's python3-confluent-kafka is
// installed for (a python3 earlier on PATH may lack it).
var PythonPath = "/usr/bin/python3"

// RdkProducer is an idempotent librdkafka producer (acks=all), run as
// rdkproducer.py in a child process.
type RdkProducer struct {
	name   string
	dir    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{}
	mu     sync.Mutex
	stderr bytes.Buffer
	ended  bool
}

// StartRdk starts the librdkafka producer named name.
func StartRdk(bootstrap []string, topic, name string, rate int, log *Log) (*RdkProducer, error) {
	if rate < 1 {
		return nil, fmt.Errorf("verifier: rate %d: want at least 1 record/s", rate)
	}
	dir, err := os.MkdirTemp("", "chaos-rdk-")
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "rdkproducer.py")
	if err := os.WriteFile(script, rdkScript, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &RdkProducer{name: name, dir: dir, done: make(chan struct{})}
	// Run from the script's own directory: a kafka/ folder in the working
	// directory would shadow the Python kafka module.
	p.cmd = exec.Command(PythonPath, script, strings.Join(bootstrap, ","), topic, strconv.Itoa(rate), name)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, b: &p.stderr}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("verifier: start librdkafka producer (%s; make deps installs python3-confluent-kafka): %w", PythonPath, err)
	}
	go p.read(out, log)
	return p, nil
}

func (p *RdkProducer) Name() string { return p.name }

func (p *RdkProducer) read(out io.Reader, log *Log) {
	defer close(p.done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		switch {
		case f[0] == "ack" && len(f) == 6:
			seq, err1 := strconv.ParseInt(f[1], 10, 64)
			part, err2 := strconv.ParseInt(f[2], 10, 32)
			off, err3 := strconv.ParseInt(f[3], 10, 64)
			ns, err4 := strconv.ParseInt(f[4], 10, 64)
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				log.Note(fmt.Sprintf("%s: unparsable ack %q: %v", p.name, sc.Text(), err))
				continue
			}
			log.ack(Ack{Producer: p.name, Seq: seq, Partition: int32(part), Offset: off, At: time.Unix(0, ns)})
		case f[0] == "fail" && len(f) >= 3:
			seq, _ := strconv.ParseInt(f[1], 10, 64)
			log.fail(p.name, seq, strings.Join(f[2:], " "))
		case f[0] == "error":
			log.Note(p.name + ": " + strings.Join(f[1:], " "))
		case f[0] == "done":
			p.mu.Lock()
			p.ended = true
			p.mu.Unlock()
		default:
			log.Note(fmt.Sprintf("%s: unparsable line %q", p.name, sc.Text()))
		}
	}
}

func (p *RdkProducer) Stop(ctx context.Context) error {
	defer os.RemoveAll(p.dir)
	p.stdin.Close()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.cmd.Process.Kill()
		<-p.done
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended || err != nil {
		return fmt.Errorf("verifier: %s: librdkafka producer ended badly (exit: %v); stderr tail:\n%s", p.name, err, tail(p.stderr.String(), 4<<10))
	}
	return nil
}

// Stderr is what the librdkafka producer wrote to its stderr so far.
func (p *RdkProducer) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Member is one member of the consumer group. It commits what it was
// given after every poll, before it lets the group rebalance, so a
// rebalance redelivers nothing it processed unless a commit failed.
type Member struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// StartMember starts a member named name of group, reading topic from the
// start when the group has no offsets.
func StartMember(bootstrap []string, topic, group, name string, log *Log, extra ...kgo.Opt) (*Member, error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(bootstrap...),
		kgo.ClientID("chaos-" + name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("verifier: franz-go member: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Member{name: name, cl: cl, cancel: cancel, done: make(chan struct{})}
	go m.run(ctx, log)
	return m, nil
}

func (m *Member) run(ctx context.Context, log *Log) {
	defer close(m.done)
	for {
		fs := m.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			m.cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			log.Note(fmt.Sprintf("%s: fetch %s/%d: %v", m.name, topic, p, err))
		})
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			name, seq, ok := parseValue(r.Value)
			if !ok {
				log.foreignRecord()
				return
			}
			log.deliver(Delivery{Producer: name, Seq: seq, Partition: r.Partition, Offset: r.Offset, Member: m.name, At: now})
		})
		if err := m.cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			log.Note(fmt.Sprintf("%s: commit: %v", m.name, err))
		}
		m.cl.AllowRebalance()
	}
}

// Stop leaves the group and closes the client.
func (m *Member) Stop() {
	m.cancel()
	<-m.done
	m.cl.Close()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() > 1<<20 { // bounded: keep the start and drop the rest
		return len(p), nil
	}
	return w.b.Write(p)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
