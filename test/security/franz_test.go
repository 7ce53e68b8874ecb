package security

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/switchyard-proxy/switchyard/internal/testpki"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestFranzOAuthBearer: franz-go with OAUTHBEARER (a JWT the test's
// identity provider signed) produces, consumes in a group and commits
// through a TLS listener in front of a backend that requires TLS and SCRAM
// of the proxy; an expired token is refused with SASL_AUTHENTICATION_FAILED.
func TestFranzOAuthBearer(t *testing.T) {
	const topic = "franz-oauth"
	signer := testpki.NewRSASigner(t, "idp-1")
	p := startProxyWith(t, topic, func(sec *kafka.Security, _ *testpki.CA, dir string) {
		jwks := filepath.Join(dir, "jwks.json")
		testpki.WriteJWKS(t, jwks, signer)
		sec.SASLMechanisms = []string{kafka.MechOAuthBearer}
		sec.OAuthJWKSFile, sec.OAuthIssuer, sec.OAuthAudience = jwks, "https://idp.test", "switchyard"
	}, []string{"User:svc-orders"})
	token := func(exp time.Time) kgo.Opt {
		tok := signer.Token(t, map[string]any{"sub": "svc-orders", "iss": "https://idp.test", "aud": "switchyard", "exp": exp.Unix()})
		return kgo.SASL(oauth.Oauth(func(context.Context) (oauth.Auth, error) { return oauth.Auth{Token: tok}, nil }))
	}
	franzRoundTrip(t, p, topic, "franz-oauth-group", kgo.DialTLSConfig(p.tlsConfig()), token(time.Now().Add(time.Hour)))

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.DialTLSConfig(p.tlsConfig()), token(time.Now().Add(-time.Hour)), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("expired token: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

// TestFranzMutualTLS: franz-go with a client certificate (the principal is
// its subject) does the same round trip; without a certificate the
// listener refuses the client.
func TestFranzMutualTLS(t *testing.T) {
	const topic = "franz-mtls"
	var cert tls.Certificate
	p := startProxyWith(t, topic, func(sec *kafka.Security, ca *testpki.CA, _ string) {
		sec.TLSClientCAFile = ca.File
		pair := ca.Client(t, "svc", pkix.Name{CommonName: "svc", Organization: []string{"acme"}})
		var err error
		if cert, err = tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile); err != nil {
			t.Fatal(err)
		}
	}, []string{"User:CN=svc,O=acme"})
	withCert := p.tlsConfig()
	withCert.Certificates = []tls.Certificate{cert}
	franzRoundTrip(t, p, topic, "franz-mtls-group", kgo.DialTLSConfig(withCert))

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.DialTLSConfig(p.tlsConfig()), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err == nil {
		t.Fatal("the listener served a client without a certificate")
	}
}

// franzRoundTrip produces numRecords to topic, consumes them in group,
// commits, and checks both on the backend.
func franzRoundTrip(t *testing.T, p *proxy, topic, group string, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.addr), kgo.DefaultProduceTopic(topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range numRecords {
		prod.Produce(ctx, &kgo.Record{Value: []byte(value(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.addr), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit()}, opts...)...)
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
	p.checkBackend(t, topic, group, numRecords)
}
