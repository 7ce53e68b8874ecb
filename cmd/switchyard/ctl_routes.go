package main

// ctl routes: the routing table: exact topic routes, topic-prefix and
// group-prefix rules and the default cluster, and how a topic resolves
// (/v1/routes, /v1/prefix-routes, /v1/group-routes, /v1/default-cluster).
// The region-target flags are in ctl_regions.go.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

func parseRoutesList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/routes", decoded(renderRoutes)), nil
}

// routeKind is what a routes command addresses: an exact topic route, a
// topic-prefix rule or a group-prefix rule.
type routeKind struct {
	base  string // API collection path
	what  string // in confirmations: "route", "prefix route", "group route"
	key   string // the topic or prefix
	isTop bool   // an exact topic route
}

// parseRouteTarget defines --prefix and --group, parses, and answers the
// rule addressed and the positional arguments after the topic (if any).
func parseRouteTarget(fs *flag.FlagSet, args []string, after ...string) (routeKind, []string, error) {
	var prefix, group optString
	fs.Var(&prefix, "prefix", "address the topic-prefix rule `PREFIX` instead of a topic")
	fs.Var(&group, "group", "address the consumer-group-prefix rule `PREFIX` instead of a topic")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return routeKind{}, nil, err
	}
	switch {
	case prefix.set && group.set:
		return routeKind{}, nil, errors.New("give --prefix or --group, not both")
	case prefix.set:
		return routeKind{base: "/v1/prefix-routes", what: "prefix route", key: prefix.v}, pos, positional(pos, after...)
	case group.set:
		return routeKind{base: "/v1/group-routes", what: "group route", key: group.v}, pos, positional(pos, after...)
	}
	if err := positional(pos, append([]string{"TOPIC"}, after...)...); err != nil {
		return routeKind{}, nil, err
	}
	return routeKind{base: "/v1/routes", what: "route", key: pos[0], isTop: true}, pos[1:], nil
}

func parseRoutesGet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var region optString
	fs.Var(&region, "region", "resolve TOPIC for a client of `REGION` (its region-aware target)")
	k, _, err := parseRouteTarget(fs, args)
	if err != nil {
		return nil, err
	}
	if k.isTop {
		call := getCall(apiPath(k.base, k.key), decoded(renderResolution))
		if region.set {
			call.query = url.Values{"region": {region.v}}
		}
		return call, nil
	}
	if region.set {
		return nil, errors.New("--region resolves a TOPIC; a prefix or group rule shows all its targets")
	}
	header := "PREFIX"
	if k.base == "/v1/group-routes" {
		header = "GROUP PREFIX"
	}
	return getCall(apiPath(k.base, k.key), decoded(func(w io.Writer, r fsm.PrefixRoute) error {
		return renderPrefixRoutes(w, header, []fsm.PrefixRoute{r})
	})), nil
}

func parseRoutesSet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var t fsm.RouteTargets
	defineTargetFlags(fs, &t)
	k, pos, err := parseRouteTarget(fs, args, "CLUSTER")
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("%s %s -> %s", k.what, k.key, pos[0])
	if !targetsEmpty(t) {
		line += " (" + targetsCell(t) + ")"
	}
	return &ctlCall{method: http.MethodPut, path: apiPath(k.base, k.key), body: adminapi.RouteBody{Cluster: pos[0], RouteTargets: t},
		show: confirm("%s", line)}, nil
}

func parseRoutesDelete(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	k, _, err := parseRouteTarget(fs, args)
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: apiPath(k.base, k.key),
		show: confirm("%s %s deleted", k.what, k.key)}, nil
}

func parseRoutesDefault(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	clear := fs.Bool("clear", false, "clear the default cluster: topics no rule matches are not routed")
	var t fsm.RouteTargets
	defineTargetFlags(fs, &t)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	const path = "/v1/default-cluster"
	switch {
	case *clear:
		if err := positional(pos); err != nil {
			return nil, fmt.Errorf("--clear takes no CLUSTER: %w", err)
		}
		if !targetsEmpty(t) {
			return nil, fmt.Errorf("--clear takes no --region, --fallback, --resume or --failback")
		}
		return &ctlCall{method: http.MethodDelete, path: path, show: confirm("default cluster cleared")}, nil
	case len(pos) == 0:
		if !targetsEmpty(t) {
			return nil, fmt.Errorf("missing CLUSTER: --region, --fallback, --resume and --failback go with a default cluster")
		}
		return getCall(path, decoded(func(w io.Writer, t adminapi.RouteBody) error {
			if t.Cluster == "" {
				_, err := fmt.Fprintln(w, "no default cluster")
				return err
			}
			if !targetsEmpty(t.RouteTargets) {
				_, err := fmt.Fprintf(w, "default cluster: %s (%s)\n", t.Cluster, targetsCell(t.RouteTargets))
				return err
			}
			_, err := fmt.Fprintf(w, "default cluster: %s\n", t.Cluster)
			return err
		})), nil
	}
	if err := positional(pos, "CLUSTER"); err != nil {
		return nil, err
	}
	line := "default cluster -> " + pos[0]
	if !targetsEmpty(t) {
		line += " (" + targetsCell(t) + ")"
	}
	return &ctlCall{method: http.MethodPut, path: path, body: adminapi.RouteBody{Cluster: pos[0], RouteTargets: t},
		show: confirm("%s", line)}, nil
}

func renderRoutes(w io.Writer, r adminapi.Routes) error {
	tw := newTable(w)
	if len(r.Topics) == 0 {
		fmt.Fprintln(tw, "no topic routes")
	} else {
		targets := slices.ContainsFunc(r.Topics, func(t fsm.TopicRoute) bool { return !targetsEmpty(t.RouteTargets) })
		if targets {
			fmt.Fprintln(tw, "TOPIC\tCLUSTER\tTARGETS")
		} else {
			fmt.Fprintln(tw, "TOPIC\tCLUSTER")
		}
		for _, t := range r.Topics {
			if targets {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Topic, t.Cluster, targetsCell(t.RouteTargets))
			} else {
				fmt.Fprintf(tw, "%s\t%s\n", t.Topic, t.Cluster)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.Prefixes) == 0 {
		fmt.Fprintln(w, "no prefix routes")
	} else if err := renderPrefixRoutes(w, "PREFIX", r.Prefixes); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.GroupPrefixes) == 0 {
		fmt.Fprintln(w, "no group routes")
	} else if err := renderPrefixRoutes(w, "GROUP PREFIX", r.GroupPrefixes); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if r.DefaultCluster == "" {
		_, err := fmt.Fprintln(w, "no default cluster")
		return err
	}
	if !targetsEmpty(r.Default) {
		_, err := fmt.Fprintf(w, "default cluster: %s (%s)\n", r.DefaultCluster, targetsCell(r.Default))
		return err
	}
	_, err := fmt.Fprintf(w, "default cluster: %s\n", r.DefaultCluster)
	return err
}

func renderPrefixRoutes(w io.Writer, header string, routes []fsm.PrefixRoute) error {
	tw := newTable(w)
	targets := slices.ContainsFunc(routes, func(p fsm.PrefixRoute) bool { return !targetsEmpty(p.RouteTargets) })
	if targets {
		fmt.Fprintf(tw, "%s\tCLUSTER\tTARGETS\n", header)
	} else {
		fmt.Fprintf(tw, "%s\tCLUSTER\n", header)
	}
	for _, p := range routes {
		if targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Prefix, p.Cluster, targetsCell(p.RouteTargets))
		} else {
			fmt.Fprintf(tw, "%s\t%s\n", p.Prefix, p.Cluster)
		}
	}
	return tw.Flush()
}

func renderResolution(w io.Writer, r adminapi.RouteResolution) error {
	tw := newTable(w)
	if r.Region != "" {
		fmt.Fprintln(tw, "TOPIC\tREGION\tCLUSTER\tMATCH\tRULE")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Topic, r.Region, r.Cluster, dash(r.Match), dash(r.Rule))
	} else {
		fmt.Fprintln(tw, "TOPIC\tCLUSTER\tMATCH\tRULE")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Topic, r.Cluster, dash(r.Match), dash(r.Rule))
	}
	if err := tw.Flush(); err != nil || r.ProduceCluster == "" {
		return err
	}
	// A draining failback: producers are back, consumers not yet.
	_, err := fmt.Fprintf(w, "produce: %s (failing back; consumers stay on %s until their groups have read it)\n", r.ProduceCluster, r.Cluster)
	return err
}
