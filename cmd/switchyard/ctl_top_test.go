package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestCtlTop: while a franz-go producer writes one topic through a
// two-peer sandbox, `ctl top --once` lists that topic with a produce rate
// and the producer's client id, summed over the peers' /metrics.
func TestCtlTop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Config{Brokers: 1, Peers: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.ClientID("top-producer"), kgo.DefaultProduceTopic("busy-topic"),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pctx.Err() == nil {
			cl.ProduceSync(pctx, &kgo.Record{Value: bytes.Repeat([]byte("x"), 1000)})
		}
	}()
	defer func() { pcancel(); <-done }()

	var out, errb bytes.Buffer
	waitUntil(t, 60*time.Second, "ctl top to show the producer", func() bool {
		out.Reset()
		errb.Reset()
		if code := run(ctx, []string{"ctl", "--server", sb.AdminURLs[0], "top", "--once", "--interval", "1s"}, &out, &errb); code != 0 {
			t.Fatalf("ctl top: %d %s", code, errb.String())
		}
		return topRow(out.String(), "busy-topic") && topRow(out.String(), "top-producer")
	})
	if !strings.Contains(out.String(), "2 peers") {
		t.Fatalf("ctl top did not sum both peers:\n%s", out.String())
	}
	if code := run(ctx, []string{"ctl", "--server", sb.AdminURLs[0], "top", "--interval", "1ms"}, &out, &errb); code == 0 {
		t.Fatal("ctl top accepted a 1ms interval")
	}
}

// topRow reports whether out has a row for name with a nonzero rate.
func topRow(out, name string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+" ") && !strings.Contains(line, " 0 B  ") && strings.Contains(line, "B") {
			f := strings.Fields(line)
			return len(f) >= 3 && f[1] != "0"
		}
	}
	return false
}
