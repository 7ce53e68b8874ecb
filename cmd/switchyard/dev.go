package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.Int("brokers", 3, "kfake brokers in each backend cluster (east and west)")
	peers := fs.Int("peers", 3, "Switchyard peers (a Raft + gossip cluster)")
	kafkaPort := fs.Int("kafka-port", 19092, "peer i serves Kafka on 127.0.0.1:kafka-port+i (0: free ports)")
	adminPort := fs.Int("admin-port", 18080, "peer i serves the admin API on 127.0.0.1:admin-port+i (0: free ports)")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	secure := fs.Bool("secure", false, "TLS (a CA made for the session) and SASL SCRAM-SHA-512 and PLAIN on the peers' listeners and on the backends, with one user allowed everything; prints the CA, the user and its password file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dev: unexpected argument %q", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(*logLevel))); err != nil {
		return fmt.Errorf("dev: log level %q: use debug, info, warn or error", *logLevel)
	}
	// A level the stop can raise: while the sandbox's peers stop one after
	// another, the survivors' Raft and gossip report the others gone,
	// which is the stop working, not news for whoever pressed Ctrl-C.
	var levelVar slog.LevelVar
	levelVar.Set(level)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &levelVar}))
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	sb, err := sandbox.Start(sctx, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{{Name: "east", Brokers: *brokers}, {Name: "west", Brokers: *brokers}},
		// Topics starting with "west." live on west; everything else on
		// east, the default cluster.
		Setup:         []fsm.Command{&fsm.PutPrefixRoute{Prefix: devWestPrefix, Cluster: "west"}},
		Peers:         *peers,
		KafkaBasePort: *kafkaPort,
		AdminBasePort: *adminPort,
		Secure:        *secure,
		// Lag in the console within seconds of a group committing.
		GroupLagInterval: 10 * time.Second,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	defer sb.Close()
	for _, name := range sb.ClusterNames {
		fmt.Fprintf(stdout, "backend cluster %q (kfake): %s\n", name, strings.Join(sb.Backends[name].ListenAddrs(), ","))
	}
	fmt.Fprintf(stdout, "routes: topics starting with %q -> west; everything else -> %s (the default cluster)\n", devWestPrefix, sb.ClusterName)
	fmt.Fprintf(stdout, "bootstrap: %s\n", strings.Join(sb.Bootstrap, ","))
	fmt.Fprintf(stdout, "admin: %s\n", strings.Join(sb.AdminURLs, " "))
	if len(sb.AdminURLs) > 0 {
		fmt.Fprintf(stdout, "console: %s/ui/\n", sb.AdminURLs[0])
	}
	fmt.Fprintf(stdout, "raft leader: %s\n", sb.Nodes[0].Leader())
	if s := sb.Secure; s != nil {
		fmt.Fprintf(stdout, "tls ca: %s\n", s.CAFile)
		fmt.Fprintf(stdout, "sasl user: %s\n", s.User)
		fmt.Fprintf(stdout, "sasl password file: %s\n", s.PasswordFile)
		fmt.Fprintf(stdout, "kcat: kcat -b %s %s -L\n", sb.Bootstrap[0], s.KcatArgs())
	}
	if err := sb.SelfCheck(sctx); err != nil {
		return fmt.Errorf("sandbox started but clients cannot use it: %w", err)
	}
	kcatArgs := ""
	if sb.Secure != nil {
		kcatArgs = " " + sb.Secure.KcatArgs()
	}
	fmt.Fprintf(stdout, "ready: try  kcat -b %s%s -L   and   switchyard ctl --server %s status\n", sb.Bootstrap[0], kcatArgs, firstOr(sb.AdminURLs, "(no admin API)"))
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	levelVar.Set(slog.LevelError + 4) // quiet: see levelVar
	return sb.Close()
}

// devWestPrefix is the sandbox's example prefix rule.
const devWestPrefix = "west."

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}
