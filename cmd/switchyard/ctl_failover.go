package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// ctl health, failover, failback (docs/regions.md, "Failover and failback").

func parseHealth(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/health", decoded(renderHealth)), nil
}

func parseFailoverList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/failover", decoded(renderFailovers)), nil
}

func parseFailover(over bool) func(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	verb, path := "failback", "/v1/failback"
	if over {
		verb, path = "failover", "/v1/failover"
	}
	return func(fs *flag.FlagSet, args []string) (*ctlCall, error) {
		pos, err := parseInterleaved(fs, args)
		if err == nil {
			err = positional(pos, "CLUSTER")
		}
		if err != nil {
			return nil, err
		}
		return &ctlCall{method: http.MethodPost, path: apiPath(path, pos[0]),
			show: decoded(func(w io.Writer, f adminapi.FailoverEntry) error {
				_, err := fmt.Fprintf(w, "%s of cluster %s: %s, %d routes\n", verb, f.Cluster, f.State, f.RoutesMoved)
				return err
			})}, nil
	}
}

func renderHealth(w io.Writer, hs []adminapi.ClusterHealth) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CLUSTER\tSTATE\tSINCE\tPEERS")
	for _, h := range hs {
		peers := make([]string, 0, len(h.Peers))
		for p, v := range h.Peers {
			peers = append(peers, p+"="+v)
		}
		slices.Sort(peers)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Cluster, h.State, msTime(h.Since), dash(strings.Join(peers, " ")))
	}
	return tw.Flush()
}

func renderFailovers(w io.Writer, fs []adminapi.FailoverEntry) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CLUSTER\tSTATE\tSINCE\tROUTES MOVED\tMODE")
	for _, f := range fs {
		mode := "auto"
		if f.Manual {
			mode = "manual"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", f.Cluster, f.State, msTime(f.Since), f.RoutesMoved, mode)
	}
	return tw.Flush()
}

// msTime shows unix milliseconds as UTC time, "-" for 0.
func msTime(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// msOrDefault shows a millisecond setting as a duration, or the default.
func msOrDefault(ms int64, def string) string {
	if ms == 0 {
		return def + " (default)"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}
