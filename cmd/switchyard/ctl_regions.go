package main

// ctl regions (issue 11, docs/regions.md) and the route-target flags of
// routes set / routes default: --region REGION=CLUSTER, --fallback,
// --resume, --failback.

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// targetsEmpty: a route without region targets or failover policy.
func targetsEmpty(t fsm.RouteTargets) bool {
	return len(t.Regions) == 0 && len(t.Fallback) == 0 && t.Resume == "" && t.Failback == ""
}

// targetsCell is the targets in one table cell: "dc1=east,dc2=west fallback=east
// resume=timestamp failback=manual", or "-".
func targetsCell(t fsm.RouteTargets) string {
	var parts []string
	if len(t.Regions) > 0 {
		keys := make([]string, 0, len(t.Regions))
		for k := range t.Regions {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			keys[i] = k + "=" + t.Regions[k]
		}
		parts = append(parts, strings.Join(keys, ","))
	}
	if len(t.Fallback) > 0 {
		parts = append(parts, "fallback="+strings.Join(t.Fallback, ","))
	}
	if t.Resume != "" {
		parts = append(parts, "resume="+t.Resume)
	}
	if t.Failback != "" {
		parts = append(parts, "failback="+t.Failback)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// regionFlag is the repeatable --region REGION=CLUSTER.
type regionFlag struct{ m *map[string]string }

func (f regionFlag) String() string { return "" }
func (f regionFlag) Set(s string) error {
	region, cluster, ok := strings.Cut(s, "=")
	if !ok || region == "" || cluster == "" {
		return fmt.Errorf("%q is not REGION=CLUSTER (e.g. dc1=east)", s)
	}
	if *f.m == nil {
		*f.m = map[string]string{}
	}
	if _, dup := (*f.m)[region]; dup {
		return fmt.Errorf("region %q given twice", region)
	}
	(*f.m)[region] = cluster
	return nil
}

// defineTargetFlags defines the route-target flags on fs, filling t.
func defineTargetFlags(fs *flag.FlagSet, t *fsm.RouteTargets) {
	fs.Var(regionFlag{&t.Regions}, "region", "send clients of `REGION=CLUSTER`'s region to that cluster (repeatable)")
	fs.Var(listFlag{&t.Fallback}, "fallback", "clusters that take over, in order, when the target is failed over (`C1,C2`; repeatable)")
	fs.StringVar(&t.Resume, "resume", "", "where groups resume on the fallback cluster: committed (default), timestamp, latest or earliest")
	fs.StringVar(&t.Failback, "failback", "", "auto (default) or manual")
}

func parseRegionsList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/regions", decoded(renderRegions)), nil
}

func parseRegionsSet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var b adminapi.RegionBody
	fs.Var(listFlag{&b.Networks}, "network", "a client network of the region, `CIDR` (repeatable, or comma-separated)")
	fs.Var(listFlag{&b.Fallback}, "fallback", "`REGION`s whose peers serve this region's clients when it has none live, in order (repeatable)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if err := positional(pos, "REGION"); err != nil {
		return nil, err
	}
	if b.Networks == nil {
		b.Networks = []string{}
	}
	if b.Fallback == nil {
		b.Fallback = []string{}
	}
	return &ctlCall{method: http.MethodPut, path: apiPath("/v1/regions", pos[0]), body: b,
		show: confirm("region %s: %d networks, fallback %s", pos[0], len(b.Networks), dash(strings.Join(b.Fallback, ",")))}, nil
}

func parseRegionsDelete(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if err := positional(pos, "REGION"); err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: apiPath("/v1/regions", pos[0]),
		show: confirm("region %s deleted", pos[0])}, nil
}

func renderRegions(w io.Writer, regions []fsm.Region) error {
	if len(regions) == 0 {
		_, err := fmt.Fprintln(w, "no regions: clients are served by every peer and routed by their peer's region")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "REGION\tNETWORKS\tFALLBACK")
	for _, r := range regions {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, dash(strings.Join(r.Networks, ",")), dash(strings.Join(r.Fallback, ",")))
	}
	return tw.Flush()
}
