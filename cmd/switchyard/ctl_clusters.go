package main

// ctl clusters: list, get, set (with TLS and SASL towards the brokers) and
// delete the backend clusters (/v1/clusters).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

func parseClustersList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/clusters", decoded(func(w io.Writer, l adminapi.ClusterList) error { return renderClusters(w, l.Clusters) })), nil
}

func parseClustersGet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	return getCall(apiPath("/v1/clusters", pos[0]), decoded(renderCluster)), nil
}

func parseClustersSet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var c adminapi.ClusterBody // the path names the cluster
	fs.Var(listFlag{&c.Bootstrap}, "bootstrap", "`host:port` of the cluster's brokers, comma-separated or repeated (required)")
	fs.StringVar(&c.Region, "region", "", "region/AZ of the cluster")
	var useTLS bool
	var t fsm.ClusterTLS
	var s fsm.ClusterSASL
	fs.BoolVar(&useTLS, "tls", false, "connect to the brokers with TLS (implied by any --tls-* flag; alone: the system roots)")
	fs.StringVar(&t.CAFile, "tls-ca-file", "", "PEM CA bundle, an absolute `path` on every peer (default: system roots)")
	fs.StringVar(&t.CertFile, "tls-cert-file", "", "PEM client certificate, an absolute `path` on every peer (with --tls-key-file)")
	fs.StringVar(&t.KeyFile, "tls-key-file", "", "PEM client key, an absolute `path` on every peer (with --tls-cert-file)")
	fs.StringVar(&t.ServerName, "tls-server-name", "", "`name` checked in the brokers' certificates (default: the broker address's host)")
	fs.BoolVar(&t.InsecureSkipVerify, "tls-insecure-skip-verify", false, "do not check the brokers' certificates (tests only)")
	fs.StringVar(&s.Mechanism, "sasl-mechanism", "", "SASL `mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
	fs.StringVar(&s.Username, "sasl-username", "", "SASL `user` name (PLAIN, SCRAM)")
	fs.StringVar(&s.PasswordFile, "sasl-password-file", "", "file holding the SASL password, an absolute `path` on every peer (PLAIN, SCRAM)")
	fs.StringVar(&s.TokenFile, "sasl-token-file", "", "file holding an OAUTHBEARER token (a JWT), an absolute `path` on every peer, re-read when it changes")
	fs.StringVar(&s.TokenEndpoint, "sasl-token-endpoint", "", "OAuth 2 token endpoint `URL` for the client-credentials grant (OAUTHBEARER)")
	fs.StringVar(&s.ClientID, "sasl-client-id", "", "OAuth 2 client `id` (with --sasl-token-endpoint)")
	fs.StringVar(&s.ClientSecretFile, "sasl-client-secret-file", "", "file holding the OAuth 2 client secret, an absolute `path` on every peer (with --sasl-token-endpoint)")
	fs.StringVar(&s.Scope, "sasl-scope", "", "OAuth 2 `scope` to ask for (with --sasl-token-endpoint)")
	var downAfter, upAfter, drain time.Duration
	fs.DurationVar(&downAfter, "down-after", 0, "how long a majority of peers must see the cluster down before it fails over (default 10s)")
	fs.DurationVar(&upAfter, "up-after", 0, "how long it must be seen up again before it fails back (default 60s)")
	fs.DurationVar(&drain, "failback-drain", 0, "how long a failback keeps consumers on the fallback at most, after producers came back, for their groups to read it (default 2m)")
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case len(c.Bootstrap) == 0:
		return nil, errors.New("--bootstrap is required")
	case (t.CertFile == "") != (t.KeyFile == ""):
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	case s.Mechanism == "" && s != (fsm.ClusterSASL{}):
		return nil, errors.New("the --sasl-* flags need --sasl-mechanism")
	case (s.Mechanism == fsm.SASLPlain || s.Mechanism == fsm.SASLScramSHA256 || s.Mechanism == fsm.SASLScramSHA512) && (s.Username == "" || s.PasswordFile == ""):
		return nil, errors.New("--sasl-mechanism " + s.Mechanism + " needs --sasl-username and --sasl-password-file")
	case s.Mechanism == fsm.SASLOAuthBearer && s.TokenFile == "" && (s.TokenEndpoint == "" || s.ClientID == "" || s.ClientSecretFile == ""):
		return nil, errors.New("--sasl-mechanism OAUTHBEARER needs --sasl-token-file, or --sasl-token-endpoint with --sasl-client-id and --sasl-client-secret-file")
	case slices.ContainsFunc([]time.Duration{downAfter, upAfter, drain}, func(d time.Duration) bool { return d < 0 || d > 0 && d < time.Millisecond }):
		return nil, errors.New("--down-after, --up-after and --failback-drain take a positive duration of at least 1ms, like 10s")
	}
	c.DownAfterMS, c.UpAfterMS, c.FailbackDrainMS = downAfter.Milliseconds(), upAfter.Milliseconds(), drain.Milliseconds()
	if useTLS || t != (fsm.ClusterTLS{}) {
		c.TLS = &t
	}
	if s.Mechanism != "" {
		c.SASL = &s
	}
	name := pos[0]
	return &ctlCall{method: http.MethodPut, path: apiPath("/v1/clusters", name), body: c,
		show: confirm("cluster %s stored", name)}, nil
}

func parseClustersDelete(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: apiPath("/v1/clusters", pos[0]),
		show: confirm("cluster %s deleted", pos[0])}, nil
}

func saslCell(c fsm.Cluster) string {
	switch {
	case c.SASL == nil:
		return "-"
	case c.SASL.Username != "":
		return c.SASL.Mechanism + " (" + c.SASL.Username + ")"
	case c.SASL.ClientID != "":
		return c.SASL.Mechanism + " (client " + c.SASL.ClientID + ")"
	}
	return c.SASL.Mechanism
}

func renderClusters(w io.Writer, clusters []fsm.Cluster) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tREGION\tBOOTSTRAP\tTLS\tSASL")
	for _, c := range clusters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, dash(c.Region), strings.Join(c.Bootstrap, ","), yesNo(c.TLS != nil), saslCell(c))
	}
	return tw.Flush()
}

// renderCluster shows one cluster with every field set.
func renderCluster(w io.Writer, c fsm.Cluster) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "name:\t%s\n", c.Name)
	fmt.Fprintf(tw, "bootstrap:\t%s\n", strings.Join(c.Bootstrap, ","))
	fmt.Fprintf(tw, "region:\t%s\n", dash(c.Region))
	fmt.Fprintf(tw, "tls:\t%s\n", yesNo(c.TLS != nil))
	if t := c.TLS; t != nil {
		if t.CAFile == "" {
			fmt.Fprintf(tw, "tls ca file:\t(system roots)\n")
		}
		for _, f := range []struct{ k, v string }{
			{"tls server name", t.ServerName}, {"tls ca file", t.CAFile},
			{"tls cert file", t.CertFile}, {"tls key file", t.KeyFile},
		} {
			if f.v != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", f.k, f.v)
			}
		}
		if t.InsecureSkipVerify {
			fmt.Fprintf(tw, "tls insecure skip verify:\tyes\n")
		}
	}
	fmt.Fprintf(tw, "sasl:\t%s\n", saslCell(c))
	if s := c.SASL; s != nil {
		// File paths and the endpoint only: the secrets are in the files.
		for _, f := range []struct{ k, v string }{
			{"sasl password file", s.PasswordFile}, {"sasl token file", s.TokenFile},
			{"sasl token endpoint", s.TokenEndpoint}, {"sasl client secret file", s.ClientSecretFile}, {"sasl scope", s.Scope},
		} {
			if f.v != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", f.k, f.v)
			}
		}
	}
	if c.DownAfterMS != 0 || c.UpAfterMS != 0 || c.FailbackDrainMS != 0 {
		fmt.Fprintf(tw, "down after:\t%s\n", msOrDefault(c.DownAfterMS, "10s"))
		fmt.Fprintf(tw, "up after:\t%s\n", msOrDefault(c.UpAfterMS, "60s"))
		fmt.Fprintf(tw, "failback drain:\t%s\n", msOrDefault(c.FailbackDrainMS, "2m0s"))
	}
	return tw.Flush()
}
