package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchyard-proxy/switchyard/node"
)

// voterFlag is the repeatable --voter NAME=RAFTADDR.
type voterFlag struct{ v *[]node.RecoverVoter }

func (f voterFlag) String() string {
	if f.v == nil {
		return ""
	}
	s := ""
	for i, v := range *f.v {
		if i > 0 {
			s += ","
		}
		s += v.Name + "=" + v.Addr
	}
	return s
}

func (f voterFlag) Set(s string) error {
	v, err := node.ParseRecoverVoter(s)
	if err != nil {
		return err
	}
	*f.v = append(*f.v, v)
	return nil
}

// runRecover is `switchyard recover`: the offline forced recovery of a
// stopped peer's Raft state to a new set of voters (node.Recover), for when
// a majority of voters is gone for good. docs/regions.md, "Forced recovery".
func runRecover(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: switchyard recover --data-dir DIR --voter NAME=RAFTADDR [--voter NAME=RAFTADDR ...]

Rewrites a STOPPED peer's Raft state so that the cluster's only servers are the
voters given. Use it only when a majority of voters is lost for good: run it on
every surviving peer with the same voters, then start them. See docs/regions.md,
"Forced recovery".

`)
		fs.PrintDefaults()
	}
	var dataDir, level string
	var voters []node.RecoverVoter
	fs.StringVar(&dataDir, "data-dir", "", "the stopped peer's --data-dir (required)")
	fs.Var(voterFlag{&voters}, "voter", "a surviving voter: its --name and peer-port address (`NAME=RAFTADDR`; repeatable; this peer included)")
	fs.StringVar(&level, "log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("recover: unexpected argument %q", fs.Arg(0))
	}
	if dataDir == "" {
		return errors.New("recover: --data-dir is required")
	}
	if len(voters) == 0 {
		return errors.New("recover: at least one --voter NAME=RAFTADDR is required: every surviving voter, this peer included")
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return err
	}
	rep, err := node.Recover(dataDir, voters, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recovered the raft state in %s\n", dataDir)
	fmt.Fprintf(stdout, "old configuration:\n")
	printServers(stdout, rep.Old)
	fmt.Fprintf(stdout, "new configuration:\n")
	printServers(stdout, rep.New)
	fmt.Fprintf(stdout, "last index %d (term %d): snapshot at %d plus %d log entries replayed into a new snapshot; the log was cleared\n",
		rep.LastIndex, rep.LastTerm, rep.SnapshotIndex, rep.Replayed)
	fmt.Fprintln(stdout, "next: run the same command on every other surviving voter, then start them all")
	return nil
}

func printServers(w io.Writer, servers []node.RecoverServer) {
	if len(servers) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, s := range servers {
		role := "nonvoter"
		if s.Voter {
			role = "voter"
		}
		fmt.Fprintf(w, "  %-8s %s %s\n", role, s.Name, s.Addr)
	}
}
