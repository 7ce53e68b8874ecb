package security

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestSecureSandbox is issue 12's acceptance on the whole deployment:
// three peers with TLS and SASL on their listeners in front of two kfake
// clusters that require TLS and SCRAM-SHA-512 of the proxy. Users and ACLs
// are made through the admin API, as an operator would.
//   - kcat (librdkafka) with SASL_SSL SCRAM-SHA-512 produces, consumes in a
//     group and commits; the records are on the backend, the commit too.
//   - A principal without Write on a topic gets TOPIC_AUTHORIZATION_FAILED
//     for it and nothing is written, while its allowed topic is written in
//     the same run; without Describe it does not see the topic.
//   - A wrong password and an unknown user are refused with
//     SASL_AUTHENTICATION_FAILED.
func TestSecureSandbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{{Name: "east", Brokers: 2}, {Name: "west", Brokers: 1}},
		Setup:    []fsm.Command{&fsm.PutPrefixRoute{Prefix: "west.", Cluster: "west"}},
		Peers:    3,
		Secure:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if err := sb.SelfCheck(ctx); err != nil {
		t.Fatalf("self-check through TLS + SCRAM: %v", err)
	}
	admin := sb.AdminURLs[1] // a follower or the leader: writes are forwarded

	// An operator adds two users through the admin API.
	putUser := func(name, mech, password string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"mechanism": mech, "password": password})
		adminDo(t, http.MethodPut, admin+"/v1/users/"+name, body, http.StatusOK)
	}
	putUser("writer", "SCRAM-SHA-512", "writer-pw")
	putUser("reader", "SCRAM-SHA-512", "reader-pw")
	acl := func(principal, typ, name, op string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"principal": principal, "resource_type": typ, "resource_name": name, "operation": op})
		adminDo(t, http.MethodPost, admin+"/v1/acls", body, 0)
	}
	// writer: Write (so Describe) on orders, nothing on payroll.
	acl("User:writer", "topic", "orders", "write")
	acl("User:writer", "cluster", "kafka-cluster", "idempotent_write")
	// reader: Read on orders and its group.
	acl("User:reader", "topic", "orders", "read")
	acl("User:reader", "group", "readers", "read")

	admCl := newClient(t, sb, sandbox.SecureUser, mustRead(t, sb.Secure.PasswordFile))
	adm := kadm.NewClient(admCl)
	for _, tp := range []string{"orders", "payroll", "west.kcat"} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, tp); err != nil {
			t.Fatalf("create %s: %v", tp, err)
		}
	}

	// kcat with SASL_SSL SCRAM-SHA-512 as the sandbox's user: produce to
	// west (the other cluster), consume in a group, commit.
	kcat := needCommand(t, "kcat")
	sec := []string{"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=" + sandbox.SecureUser, "-X", "sasl.password=" + mustRead(t, sb.Secure.PasswordFile),
		"-X", "ssl.ca.location=" + sb.Secure.CAFile}
	var in bytes.Buffer
	for i := range 50 {
		fmt.Fprintln(&in, value(i))
	}
	cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", sb.Bootstrap[0], "-P", "-t", "west.kcat"}, sec...)...)
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	cmd = exec.CommandContext(ctx, kcat, append([]string{"-b", sb.Bootstrap[2], "-G", "kcat-group", "-o", "beginning", "-e", "-c", "50",
		"-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100", "-f", "%s\n", "west.kcat"}, sec...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	if got := strings.Count(string(out), "\n"); got != 50 {
		t.Fatalf("kcat consumed %d records, want 50:\n%s", got, out)
	}
	waitCommitted(t, ctx, adm, "kcat-group", "west.kcat", 50)

	// writer: orders is written, payroll refused in the same producer run.
	wr := newClient(t, sb, "writer", "writer-pw")
	res := wr.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("ok")})
	if err := res.FirstErr(); err != nil {
		t.Fatalf("writer produce to orders: %v", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	res = wr.ProduceSync(pctx, &kgo.Record{Topic: "payroll", Value: []byte("no")})
	pcancel()
	if err := res.FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("writer produce to payroll: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	ends, err := adm.ListEndOffsets(ctx, "orders", "payroll")
	if err != nil {
		t.Fatal(err)
	}
	total := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { total[o.Topic] += o.Offset })
	if total["orders"] != 1 || total["payroll"] != 0 {
		t.Fatalf("records on the backends: %v, want orders 1, payroll 0", total)
	}

	// reader: sees orders but not payroll; consumes orders in its group.
	rd := newClient(t, sb, "reader", "reader-pw", kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("readers"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	md, err := kadm.NewClient(rd).Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.Topics["payroll"]; ok {
		t.Fatal("reader sees payroll without Describe on it")
	}
	if _, ok := md.Topics["orders"]; !ok {
		t.Fatalf("reader does not see orders: %v", md.Topics.Names())
	}
	fctx, fcancel := context.WithTimeout(ctx, 60*time.Second)
	defer fcancel()
	for got := 0; got < 1; {
		fs := rd.PollFetches(fctx)
		if fctx.Err() != nil {
			t.Fatal("reader consumed nothing from orders")
		}
		got += fs.NumRecords()
	}

	// Refusals: a wrong password and an unknown user.
	for _, c := range []struct{ user, pw string }{{"reader", "wrong"}, {"nobody", "x"}} {
		cl := newClient(t, sb, c.user, c.pw)
		actx, acancel := context.WithTimeout(ctx, 15*time.Second)
		err := cl.Ping(actx)
		acancel()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s/%s: %v, want SASL_AUTHENTICATION_FAILED", c.user, c.pw, err)
		}
	}
}

// newClient is a franz-go client of the secure sandbox as user.
func newClient(t *testing.T, sb *sandbox.Sandbox, user, password string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.DialTLSConfig(sb.Secure.TLSConfig()), kgo.SeedBrokers(sb.Bootstrap...),
		kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()),
		kgo.RequestRetries(2), kgo.RetryTimeout(10 * time.Second)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// adminDo sends one admin request; want 0 accepts any 2xx.
func adminDo(t *testing.T, method, url string, body []byte, want int) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msg bytes.Buffer
	msg.ReadFrom(resp.Body)
	if (want != 0 && resp.StatusCode != want) || (want == 0 && resp.StatusCode/100 != 2) {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, msg.String())
	}
}

// waitCommitted waits until group committed n records of topic.
func waitCommitted(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		off, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			sum := int64(0)
			off.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic {
					sum += o.At
				}
			})
			if sum == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s committed %d of %d records of %s", group, sum, n, topic)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
