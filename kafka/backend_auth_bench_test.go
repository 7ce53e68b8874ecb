package kafka

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// BenchmarkUpstreamDial is what one upstream connection costs to open, per
// client connection per broker: TCP alone, TLS (full handshake and
// resumed), SASL PLAIN and SCRAM-SHA-512 over TLS. The broker is an
// in-process kfake (which keeps its SCRAM keys precomputed), so ns/op counts both ends of the handshake on the same
// cores; allocs/op are the proxy's and kfake's together too. cpu-ns/op
// (process CPU time, both ends) is steadier than ns/op on a busy machine;
// resumed/op is the share of TLS handshakes that resumed a session.
//
//	go test -run '^$' -bench UpstreamDial -benchmem ./kafka/
func BenchmarkUpstreamDial(b *testing.B) {
	ca := newAuthCA(b)
	plainKC, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(plainKC.Close)
	tlsKC, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(ca.serverTLS(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tlsKC.Close)
	secureKC := secureCluster(b, ca)
	dir := b.TempDir()
	scramPW, plainPW := filepath.Join(dir, "scram.pw"), filepath.Join(dir, "plain.pw")
	writeFile(b, scramPW, "scram-secret")
	writeFile(b, plainPW, "plain-secret")
	tlsc := &fsm.ClusterTLS{CAFile: ca.caFile}

	plain := &fsm.ClusterSASL{Mechanism: fsm.SASLPlain, Username: "plainproxy", PasswordFile: plainPW}
	scram512 := &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA512, Username: "proxy", PasswordFile: scramPW}
	for _, bc := range []struct {
		name     string
		kc       *kfake.Cluster
		tls      *fsm.ClusterTLS
		sasl     *fsm.ClusterSASL
		noResume bool // a full TLS handshake every time
		noSalted bool // PBKDF2 every time, as a SCRAM client without the cache
	}{
		{"Plain", plainKC, nil, nil, false, false},
		{"TLSFull", tlsKC, tlsc, nil, true, false},
		{"TLSFullPLAIN", secureKC, tlsc, plain, true, false},
		{"TLSResumedPLAIN", secureKC, tlsc, plain, false, false},
		{"TLSResumedSCRAM512Uncached", secureKC, tlsc, scram512, false, true},
		{"TLSResumedSCRAM512", secureKC, tlsc, scram512, false, false},
		{"TLSFullSCRAM512", secureKC, tlsc, scram512, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			be := authBackend(b, bc.kc, nil, bc.tls, bc.sasl)
			addr := bc.kc.ListenAddrs()[0]
			ctx := context.Background()
			resumed := 0
			dial := func() {
				if bc.noSalted {
					be.auth.salted.mu.Lock()
					be.auth.salted.key = ""
					be.auth.salted.mu.Unlock()
				}
				nc, err := be.dial(ctx, addr)
				if err != nil {
					b.Fatal(err)
				}
				if tc, ok := nc.(*tls.Conn); ok && tc.ConnectionState().DidResume {
					resumed++
				}
				nc.Close()
			}
			dial() // builds the TLS configuration once
			if bc.noResume {
				be.auth.tlsCfg.ClientSessionCache = nil
			}
			b.ReportAllocs()
			resumed = 0
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				dial()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(resumed)/float64(b.N), "resumed/op")
		})
	}
}
