package main

// ctl status: this peer, the leader, Raft's view and every peer
// (GET /v1/status).

import (
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

func parseStatus(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/status", decoded(renderStatus)), nil
}

// idCell shows an id that may be null.
func idCell(id *int32) string {
	if id == nil {
		return "-"
	}
	return strconv.Itoa(int(*id))
}

func renderStatus(w io.Writer, s adminapi.Status) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "node:\t%s (id %s), region %s, version %s\n", dash(s.Node.Name), idCell(s.Node.ID), dash(s.Node.Region), dash(s.Node.Version))
	if s.Leader == nil {
		fmt.Fprintf(tw, "leader:\tnone known (no quorum?)\n")
	} else {
		fmt.Fprintf(tw, "leader:\t%s, raft %s, admin %s\n", dash(s.Leader.Name), dash(s.Leader.RaftAddr), dash(s.Leader.AdminAddr))
	}
	r := s.Raft
	fmt.Fprintf(tw, "raft:\t%s, term %d, %d voters, %d nonvoters, last contact %dms\n", dash(r.State), r.Term, r.Voters, r.Nonvoters, r.LastContactMS)
	fmt.Fprintf(tw, "log:\tlast %d, commit %d, applied %d\n", r.LastLogIndex, r.CommitIndex, r.AppliedIndex)
	fmt.Fprintf(tw, "state index:\t%d\n", s.StateIndex)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return renderPeers(w, s.Peers)
}
