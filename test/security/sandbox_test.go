package security

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/testpki"
	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestSandboxMutualTLS: three real peers (Raft, gossip, the node's data
// plane wiring) with TLS and required client certificates on their Kafka
// listeners: the sandbox's self-check and a franz-go group round trip
// across peers work with a client certificate; without one the peers
// refuse the client.
func TestSandboxMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	srv := ca.Server(t, "peers")
	cli := ca.Client(t, "app", pkix.Name{CommonName: "app", Organization: []string{"acme"}})
	cert, err := tls.LoadX509KeyPair(cli.CertFile, cli.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Config{
		Brokers: 3, Peers: 3, MetadataRefresh: time.Second,
		// Client certificates authenticate, so requests are authorized:
		// the certificate's subject is the principal the rules name.
		Setup:         []fsm.Command{&fsm.CreateACLs{ACLs: sandbox.AllowAll("User:CN=app,O=acme")}},
		KafkaSecurity: kafka.Security{TLSCertFile: srv.CertFile, TLSKeyFile: srv.KeyFile, TLSClientCAFile: ca.File},
		ClientOpts:    []kgo.Opt{kgo.DialTLSConfig(tlsCfg)},
	})
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("sandbox close: %v", err)
		}
	})
	if err := sb.SelfCheck(ctx); err != nil {
		t.Fatalf("self-check over mutual TLS: %v", err)
	}

	const topic, group = "mtls", "mtls-group"
	prod, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap[0]), kgo.DialTLSConfig(tlsCfg), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range numRecords {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(value(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap[2]), kgo.DialTLSConfig(tlsCfg), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < numRecords {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume after %d records: %v", len(seen), err)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// No client certificate: refused by every peer.
	for _, addr := range sb.Bootstrap {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		err = cl.Ping(pctx)
		pcancel()
		cl.Close()
		if err == nil {
			t.Fatalf("peer %s served a client without a certificate", addr)
		}
	}
}
