package compat

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBadFramesCloseOnlyTheirConnection sends malformed frames on raw
// connections while a real client is connected to the same peer: each bad
// connection is closed, the client's connection is untouched, and the
// peer counts the closes as bad requests.
func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	sb := startSandbox(t)
	const topic = "isolation"
	createTopic(t, sb.Bootstrap[:1], topic, 3)
	var dials atomic.Int32
	d := &net.Dialer{Timeout: 5 * time.Second}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(sb.Bootstrap[0]),
		kgo.DefaultProduceTopic(topic),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, host)
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 50 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	before := dials.Load()

	frame := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	cases := map[string][]byte{
		"unknown api key":   frame([]byte{0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff}),
		"too short header":  frame([]byte{0, 3, 0}),
		"oversized frame":   binary.BigEndian.AppendUint32(nil, 0x7fff0000),
		"negative size":     binary.BigEndian.AppendUint32(nil, 0xffffffff),
		"truncated body":    frame([]byte{0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0, 0, 0, 9}),
		"bad client id len": frame([]byte{0, 3, 0, 1, 0, 0, 0, 7, 0x7f, 0xff}),
	}
	for name, payload := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			nc, err := net.Dial("tcp", sb.Bootstrap[0])
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(payload); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.ReadAll(nc)
			if err != nil || len(n) != 0 {
				t.Fatalf("want the proxy to close the connection without answering; read %d bytes, err %v", len(n), err)
			}
		})
	}

	for i := range 50 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("client broken by another connection's bad frames: %v", err)
		}
	}
	if after := dials.Load(); after != before {
		t.Errorf("client reconnected %d times: its connection was disturbed", after-before)
	}
	resp, err := http.Get(sb.AdminURLs[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := `switchyard_kafka_connections_closed_total{reason="bad_request"} 6`
	if !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q", want)
	}
}
