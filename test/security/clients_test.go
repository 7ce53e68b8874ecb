package security

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/testpki"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestSaramaSCRAM: sarama over TLS with SCRAM-SHA-512 and SCRAM-SHA-256
// produces, consumes in a group and commits; a wrong password is refused.
func TestSaramaSCRAM(t *testing.T) {
	const topic = "sarama-scram"
	p := startProxy(t, topic, []string{kafka.MechScramSHA512, kafka.MechScramSHA256},
		user(t, "alice", "alice-pw", fsm.SASLScramSHA512, fsm.SASLScramSHA256))
	cfg := func(mech sarama.SASLMechanism, password string) *sarama.Config {
		c := sarama.NewConfig()
		c.Version = sarama.V3_0_0_0
		c.ClientID = "sarama-scram"
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = p.tlsConfig()
		c.Net.SASL.Enable = true
		c.Net.SASL.Handshake = true
		c.Net.SASL.Mechanism = mech
		c.Net.SASL.User, c.Net.SASL.Password = "alice", password
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
			if mech == sarama.SASLTypeSCRAMSHA512 {
				return &testpki.ScramClient{H: sha512.New}
			}
			return &testpki.ScramClient{H: sha256.New}
		}
		c.Producer.Return.Successes = true
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Consumer.Offsets.Initial = sarama.OffsetOldest
		c.Consumer.Offsets.AutoCommit.Enable = false
		c.Metadata.Retry.Max = 2
		return c
	}
	prod, err := sarama.NewSyncProducer([]string{p.addr}, cfg(sarama.SASLTypeSCRAMSHA512, "alice-pw"))
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	for i := range numRecords {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(value(i))}); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	prod.Close()

	group, err := sarama.NewConsumerGroup([]string{p.addr}, "sarama-group", cfg(sarama.SASLTypeSCRAMSHA256, "alice-pw"))
	if err != nil {
		t.Fatalf("consumer group: %v", err)
	}
	defer group.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := &groupHandler{want: numRecords, done: cancel}
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
			t.Fatalf("consume: %v", err)
		}
	}
	if got := h.seen.Load(); got < numRecords {
		t.Fatalf("consumed %d of %d records", got, numRecords)
	}
	p.checkBackend(t, topic, "sarama-group", numRecords)

	c := cfg(sarama.SASLTypeSCRAMSHA512, "wrong")
	c.Metadata.Retry.Max = 0
	if _, err := sarama.NewClient([]string{p.addr}, c); err == nil || !strings.Contains(err.Error(), "SASL Authentication failed") {
		t.Fatalf("client with a wrong password: %v, want a SASL authentication failure", err)
	}
}

type groupHandler struct {
	want int64
	seen atomic.Int64
	done context.CancelFunc
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		s.MarkMessage(msg, "")
		if h.seen.Add(1) >= h.want {
			s.Commit()
			h.done()
		}
	}
	s.Commit()
	return nil
}

// TestKcatSASLSSL: kcat (librdkafka) with SASL_SSL and SCRAM-SHA-512
// produces, then consumes in a group, committing as it closes.
func TestKcatSASLSSL(t *testing.T) {
	kcat := needCommand(t, "kcat")
	const topic, group = "kcat-sasl", "kcat-group"
	p := startProxy(t, topic, []string{kafka.MechScramSHA512}, user(t, "carol", "carol-pw", fsm.SASLScramSHA512))
	conf := filepath.Join(p.dir, "kcat.conf")
	writeFile(t, conf, strings.Join([]string{
		"security.protocol=SASL_SSL",
		"sasl.mechanisms=SCRAM-SHA-512",
		"sasl.username=carol",
		"sasl.password=carol-pw",
		"ssl.ca.location=" + p.ca.File,
	}, "\n")+"\n")
	var in bytes.Buffer
	for i := range numRecords {
		fmt.Fprintln(&in, value(i))
	}
	runKcat(t, kcat, &in, "-F", conf, "-b", p.addr, "-P", "-t", topic)
	out := runKcat(t, kcat, nil, "-F", conf, "-b", p.addr, "-G", group, topic,
		"-X", "auto.offset.reset=earliest", "-c", strconv.Itoa(numRecords), "-f", "%s\n")
	if n := strings.Count(out, "\n"); n != numRecords {
		t.Fatalf("kcat consumed %d lines, want %d", n, numRecords)
	}
	p.checkBackend(t, topic, group, numRecords)

	// A wrong password: librdkafka reports the broker's refusal.
	bad := filepath.Join(p.dir, "bad.conf")
	writeFile(t, bad, "security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=carol\nsasl.password=nope\nssl.ca.location="+p.ca.File+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, _ := exec.CommandContext(ctx, kcat, "-F", bad, "-b", p.addr, "-L", "-m", "5").CombinedOutput()
	if !strings.Contains(string(res), "Authentication failed") {
		t.Fatalf("kcat with a wrong password:\n%s\nwant an authentication failure", res)
	}
}

func runKcat(t *testing.T, kcat string, stdin *bytes.Buffer, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// TestPythonSASLSSLPlain: kafka-python with SASL_SSL and PLAIN produces,
// consumes in a group and commits.
func TestPythonSASLSSLPlain(t *testing.T) {
	py := needCommand(t, "/usr/bin/python3")
	const topic, group = "python-sasl", "python-group"
	p := startProxy(t, topic, []string{kafka.MechPlain, kafka.MechScramSHA512}, user(t, "dave", "dave-pw", fsm.SASLPlain))
	script, err := filepath.Abs(filepath.Join("testdata", "secclient.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, p.addr, p.ca.File, "PLAIN", "dave", "-", topic, group, strconv.Itoa(numRecords))
	cmd.Env = append(cmd.Environ(), "SECCLIENT_PASSWORD=dave-pw", "PYTHONUNBUFFERED=1")
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("secclient.py: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("consumed %d", numRecords)) {
		t.Fatalf("secclient.py printed %q", out.String())
	}
	p.checkBackend(t, topic, group, numRecords)
}
