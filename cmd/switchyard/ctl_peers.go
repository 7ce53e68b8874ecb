package main

// ctl peers: list the peers, remove a dead one, and the peer allow-list
// (GET|DELETE /v1/peers, /v1/peers/allow-list; node/DESIGN.md "Peer
// admission").

import (
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

func parsePeers(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/peers", decoded(func(w io.Writer, l adminapi.PeerList) error { return renderPeers(w, l.Peers) })), nil
}

func parsePeersAllowList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/peers/allow-list", decoded(renderAllowList)), nil
}

func parsePeersAllow(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodPut, path: apiPath("/v1/peers/allow-list", pos[0]),
		show: confirm("peer %s allowed", pos[0])}, nil
}

func parsePeersDisallow(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: apiPath("/v1/peers/allow-list", pos[0]),
		show: confirm("peer %s disallowed", pos[0])}, nil
}

func parsePeersRemove(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: apiPath("/v1/peers", pos[0]),
		show: confirm("peer %s removed", pos[0])}, nil
}

func renderAllowList(w io.Writer, l adminapi.AllowList) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ALLOWED\tSOURCE")
	for _, n := range l.AllowList {
		fmt.Fprintf(tw, "%s\treplicated\n", n)
	}
	for _, n := range l.Static {
		fmt.Fprintf(tw, "%s\t--allow-peer (this peer)\n", n)
	}
	if err := tw.Flush(); err != nil || len(l.Unproven) == 0 {
		return err
	}
	tw = newTable(w)
	fmt.Fprintln(tw, "\nUNPROVEN\tREASON")
	for _, u := range l.Unproven {
		fmt.Fprintf(tw, "%s\t%s\n", u.Name, u.Reason)
	}
	return tw.Flush()
}

func renderPeers(w io.Writer, peers []adminapi.Peer) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tREGION\tKAFKA\tADMIN\tRAFT\tGOSSIP\tLIVE")
	for _, p := range peers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, dash(p.Name), dash(p.Region), dash(p.KafkaAddr),
			dash(p.AdminAddr), dash(p.Raft), dash(p.Gossip), yesNo(p.Live))
	}
	return tw.Flush()
}
