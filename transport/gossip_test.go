package transport

import (
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestGossipConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		gc      GossipConfig
		wantErr string
	}{
		{"loopback ephemeral", GossipConfig{Name: "g1", BindAddr: "127.0.0.1:0"}, ""},
		{"wildcard with advertise", GossipConfig{Name: "g1", BindAddr: "0.0.0.0:7946", AdvertiseAddr: "10.0.0.5:7946"}, ""},
		{"empty host with advertise", GossipConfig{Name: "g1", BindAddr: ":7946", AdvertiseAddr: "10.0.0.5:7946"}, ""},
		{"bad name", GossipConfig{Name: "g 1", BindAddr: "127.0.0.1:0"}, "gossip name"},
		{"host name bind", GossipConfig{Name: "g1", BindAddr: "localhost:0"}, "IP address"},
		{"host name advertise", GossipConfig{Name: "g1", BindAddr: ":0", AdvertiseAddr: "peer1:7946"}, "IP address"},
		{"wildcard without advertise", GossipConfig{Name: "g1", BindAddr: "0.0.0.0:7946"}, "advertise"},
		{"advertise port 0", GossipConfig{Name: "g1", BindAddr: ":0", AdvertiseAddr: "10.0.0.5:0"}, "port 0"},
		{"negative interval", GossipConfig{Name: "g1", BindAddr: "127.0.0.1:0", ProbeInterval: -time.Second}, "negative"},
		{"negative suspicion", GossipConfig{Name: "g1", BindAddr: "127.0.0.1:0", SuspicionMult: -1}, "negative"},
		{"timeout over interval", GossipConfig{Name: "g1", BindAddr: "127.0.0.1:0", ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond}, "shorter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.gc.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewMemberlistConfig(t *testing.T) {
	f := NewFaults()
	mc, err := NewMemberlistConfig(GossipConfig{
		Name: "g1", BindAddr: "127.0.0.1:0", Faults: f, Logger: testLogger(t, slog.LevelDebug),
		ProbeInterval: 200 * time.Millisecond, SuspicionMult: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Transport.Shutdown() })
	def := memberlist.DefaultLANConfig()
	if mc.Name != "g1" || mc.BindAddr != "127.0.0.1" || mc.BindPort == 0 || mc.AdvertisePort != mc.BindPort || mc.AdvertiseAddr != "127.0.0.1" {
		t.Fatalf("addresses: name %s bind %s:%d advertise %s:%d", mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertiseAddr, mc.AdvertisePort)
	}
	if mc.ProbeInterval != 200*time.Millisecond || mc.SuspicionMult != 2 {
		t.Fatalf("knobs not applied: %v %d", mc.ProbeInterval, mc.SuspicionMult)
	}
	if mc.ProbeTimeout != def.ProbeTimeout || mc.GossipInterval != def.GossipInterval || mc.TCPTimeout != def.TCPTimeout {
		t.Fatal("unset knobs must keep the LAN defaults")
	}
	if gt, ok := mc.Transport.(*gossipTransport); !ok || gt.faults != f {
		t.Fatalf("transport is %T, want the fault-aware one", mc.Transport)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(mc.BindPort))
	if got := f.nameOf(addr); got != "g1" {
		t.Fatalf("faults name of %s = %q", addr, got)
	}
	// The port really is bound. A connection nobody reads (no memberlist
	// yet) must not hang Shutdown, as a bare NetTransport's would.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("gossip port not listening: %v", err)
	}
	defer c.Close()
	if _, err := net.Dial("udp", addr); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- mc.Transport.Shutdown() }()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("transport Shutdown hangs on an unread inbound connection")
	}

	// Without Faults nothing is registered or cut.
	plain, err := NewMemberlistConfig(GossipConfig{Name: "g2", BindAddr: "127.0.0.1:0", AdvertiseAddr: "127.0.0.1:17946"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plain.Transport.Shutdown() })
	if gt, ok := plain.Transport.(*gossipTransport); !ok || gt.faults != nil || plain.AdvertisePort != 17946 {
		t.Fatalf("transport %T advertise port %d", plain.Transport, plain.AdvertisePort)
	}
}

func TestGossipIsolate(t *testing.T) {
	f := NewFaults()
	names := []string{"g1", "g2", "g3"}
	var mls []*memberlist.Memberlist
	for _, name := range names {
		mc, err := NewMemberlistConfig(GossipConfig{
			Name:     name,
			BindAddr: "127.0.0.1:0",
			Faults:   f,
			// memberlist logs every probe at debug; info keeps failures readable.
			Logger:           testLogger(t, slog.LevelInfo),
			ProbeInterval:    100 * time.Millisecond,
			ProbeTimeout:     50 * time.Millisecond,
			SuspicionMult:    2,
			GossipInterval:   20 * time.Millisecond,
			TCPTimeout:       200 * time.Millisecond,
			PushPullInterval: 500 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		ml, err := memberlist.Create(mc)
		if err != nil {
			_ = mc.Transport.Shutdown()
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ml.Shutdown() })
		mls = append(mls, ml)
	}
	seed := mls[0].LocalNode().Address()
	for _, ml := range mls[1:] {
		if _, err := ml.Join([]string{seed}); err != nil {
			t.Fatal(err)
		}
	}
	// alive lists the members ml sees alive, as "name,name".
	alive := func(ml *memberlist.Memberlist) string {
		var s []string
		for _, n := range ml.Members() {
			if n.State == memberlist.StateAlive {
				s = append(s, n.Name)
			}
		}
		return strings.Join(sortStrings(s), ",")
	}
	seesAll := func(want string, mls ...*memberlist.Memberlist) func() bool {
		return func() bool {
			for _, ml := range mls {
				if alive(ml) != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, "all three members alive everywhere", seesAll("g1,g2,g3", mls...))

	f.Isolate("g3")
	waitFor(t, 10*time.Second, "g1 and g2 to mark g3 dead", func() bool {
		for _, ml := range mls[:2] {
			for _, n := range ml.Members() {
				if n.Name == "g3" { // Members omits dead nodes
					return false
				}
			}
		}
		return true
	})
	if got := alive(mls[0]); got != "g1,g2" {
		t.Fatalf("g1 sees %s alive while g3 is isolated", got)
	}

	// memberlist does not probe or push/pull with members it holds dead,
	// so after a heal someone must join again (node's reconcile loop does;
	// serf calls this "reconnect"). The rejoin refutes g3's death.
	f.Heal()
	if _, err := mls[2].Join([]string{seed}); err != nil {
		t.Fatalf("rejoin after heal: %v", err)
	}
	waitFor(t, 10*time.Second, "g3 alive again everywhere", seesAll("g1,g2,g3", mls...))
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}
