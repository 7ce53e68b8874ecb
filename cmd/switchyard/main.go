// Command switchyard runs a Switchyard peer (serve), the embedded sandbox
// (dev), a dev Kafka broker for demos (broker), drives a cluster's admin API (ctl), recovers a peer's Raft state
// after a lost majority (recover), or prints its version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

// cpuProfileEnv names a file to write a Go CPU profile of the whole run to
// (any command; written when the command returns, e.g. after SIGTERM). It
// is how `make bench` profiles the peers of its three-peer scenario; there
// is deliberately no network profiling endpoint.
const cpuProfileEnv = "SWITCHYARD_CPUPROFILE"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := startCPUProfile(os.Getenv(cpuProfileEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchyard: $%s: %v\n", cpuProfileEnv, err)
		os.Exit(1)
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startCPUProfile starts a CPU profile into path ("" for none) and returns
// the function that ends it and closes the file.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "switchyard: $%s: %v\n", cpuProfileEnv, err)
		}
	}, nil
}

const usage = `usage: switchyard <command> [flags]

commands:
  serve     run one peer (see: switchyard serve -h)
  dev       run the embedded sandbox: a kfake cluster and 3 peers on loopback
  broker    run a small Kafka-compatible dev broker (kfake) as a demo backend
            (see: switchyard broker -h)
  ctl       drive a running cluster through its admin API (see: switchyard ctl -h)
  recover   rewrite a stopped peer's Raft state to the surviving voters, after a
            majority of voters is lost for good (see: switchyard recover -h)
  version   print the version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stderr)
	case "dev":
		err = runDev(ctx, args[1:], stdout, stderr)
	case "broker":
		err = runBroker(ctx, args[1:], stdout, stderr)
	case "ctl":
		err = runCtl(ctx, args[1:], stdout, stderr)
	case "recover":
		err = runRecover(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "switchyard", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "switchyard: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var exit *ctlExitError
	if errors.As(err, &exit) {
		return exit.code // ctl has printed its own message
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchyard:", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
