package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestLoopbackWithSASL: with SASL on the Kafka listener, the peer's own
// loopback admin client still works (through an in-process connection, as
// kafka.InternalPrincipal), while a client from the network without
// credentials is refused.
func TestLoopbackWithSASL(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	n := startSoloWith(t, func(c *Config) {
		c.KafkaSecurity = kafka.Security{SASLMechanisms: []string{kafka.MechScramSHA512}}
	})
	if code, _, body := call(t, n, "PUT", "/v1/clusters/c1", "", `{"bootstrap":["`+strings.Join(kc.ListenAddrs(), `","`)+`"]}`); code != 200 {
		t.Fatalf("put cluster: %d %s", code, body)
	}
	if code, _, body := call(t, n, "PUT", "/v1/default-cluster", "", `{"cluster":"c1"}`); code != 200 {
		t.Fatalf("default cluster: %d %s", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.readiness() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", n.readiness())
		}
		time.Sleep(20 * time.Millisecond)
	}
	adm, err := n.loopbackAdmin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil || !topics.Has("orders") {
		t.Fatalf("loopback ListTopics: %v %v", topics.Names(), err)
	}

	cl := proxyClient(t, n, kgo.RequestRetries(0))
	err = cl.Ping(ctx)
	if err == nil {
		t.Fatal("a client without credentials was served")
	}
	if errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("unexpected SASL exchange: %v", err)
	}
}
