package main

// ctl quotas: the fleet-wide topic quota rules and their live shares
// (/v1/quotas, /v1/prefix-quotas), and the byte rates their flags take
// (parseRate, formatRate).

import (
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

const ctlRateHelp = "RATE is bytes per second: 1048576, 500KB, 10MB, 1.5MiB, 2GiB/s (KB=1000, KiB=1024);\n0 or \"unlimited\" means no limit.\n"

func parseQuotasList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/quotas", decoded(func(w io.Writer, l adminapi.QuotaList) error { return renderQuotas(w, l.Quotas) })), nil
}

// quotaKind is what a quotas command addresses.
type quotaKind struct {
	base, what, key string
}

func parseQuotaTarget(fs *flag.FlagSet, args []string) (quotaKind, error) {
	var prefix optString
	fs.Var(&prefix, "prefix", "address the prefix rule `PREFIX` instead of a topic")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return quotaKind{}, err
	}
	if prefix.set {
		return quotaKind{base: "/v1/prefix-quotas", what: "prefix quota", key: prefix.v}, positional(pos)
	}
	if err := positional(pos, "TOPIC"); err != nil {
		return quotaKind{}, err
	}
	return quotaKind{base: "/v1/quotas", what: "quota", key: pos[0]}, nil
}

func parseQuotasGet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	k, err := parseQuotaTarget(fs, args)
	if err != nil {
		return nil, err
	}
	return getCall(apiPath(k.base, k.key), decoded(renderQuotaView)), nil
}

func renderQuotaView(w io.Writer, v adminapi.QuotaView) error {
	if err := renderQuotas(w, []fsm.Quota{v.Quota}); err != nil {
		return err
	}
	if len(v.Shares) == 0 {
		return nil
	}
	// Measured figures: 0 is none, not "unlimited" as in a rule.
	measured := func(r float64) string {
		if r < 1 {
			return "0"
		}
		return formatRate(int64(r))
	}
	fmt.Fprintf(w, "\nmeasured: produce %s, fetch %s\n\n", measured(v.ProduceRate), measured(v.FetchRate))
	tw := newTable(w)
	fmt.Fprintln(tw, "PEER\tDIRECTION\tSHARE\tRATE\tMODE\tSATURATED")
	for _, sh := range v.Shares {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", sh.Peer, sh.Direction, measured(sh.Share), measured(sh.Rate), sh.Mode, sh.Saturated)
	}
	return tw.Flush()
}

// rateFlag is a bytes-per-second flag (see parseRate).
type rateFlag struct{ v *int64 }

// String is "" for no limit, so flag's usage shows no "(default 0)".
func (r rateFlag) String() string {
	if r.v == nil || *r.v == 0 {
		return ""
	}
	return formatRate(*r.v)
}
func (r rateFlag) Set(s string) error {
	n, err := parseRate(s)
	if err != nil {
		return err
	}
	*r.v = n
	return nil
}

func parseQuotasSet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var rates adminapi.QuotaBody
	fs.Var(rateFlag{&rates.ProduceBytesPerSec}, "produce", "produce `RATE` summed over all peers (default unlimited)")
	fs.Var(rateFlag{&rates.FetchBytesPerSec}, "fetch", "fetch `RATE` summed over all peers (default unlimited)")
	k, err := parseQuotaTarget(fs, args)
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodPut, path: apiPath(k.base, k.key), body: rates,
		show: confirm("%s %s: produce %s, fetch %s", k.what, k.key, formatRate(rates.ProduceBytesPerSec), formatRate(rates.FetchBytesPerSec))}, nil
}

func parseQuotasDelete(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	k, err := parseQuotaTarget(fs, args)
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: apiPath(k.base, k.key), show: confirm("%s %s deleted", k.what, k.key)}, nil
}

type rateUnit struct {
	name string
	size int64
}

// rateUnits are the units parseRate accepts and formatRate prints, largest
// first within each system.
func rateUnits() []rateUnit {
	return []rateUnit{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"B", 1},
	}
}

// parseRate parses a byte rate: a whole number of bytes per second, or a
// decimal number with a unit (KB=1000, KiB=1024, up to TB/TiB; case does not
// matter), optionally followed by "/s". "0" and "unlimited" mean no limit.
// The result must be a whole number of bytes; it is computed exactly (a
// float would turn 1.1MB into 1100000.0000000002).
func parseRate(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if strings.EqualFold(in, "unlimited") {
		return 0, nil
	}
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("rate %q %s; give bytes per second such as 1048576, 500KB, 1.5MiB or 2GiB/s (0 for unlimited)", s, why)
	}
	body := in
	if len(body) >= 2 && strings.EqualFold(body[len(body)-2:], "/s") {
		body = body[:len(body)-2]
	}
	if strings.HasPrefix(body, "-") {
		return bad("is negative")
	}
	end := strings.IndexFunc(body, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(body)
	}
	num, unitName := body[:end], strings.TrimSpace(body[end:])
	intPart, fracPart, hasDot := strings.Cut(num, ".")
	if intPart == "" || hasDot && (fracPart == "" || strings.Contains(fracPart, ".")) {
		return bad("is not a number")
	}
	unit := int64(1)
	if unitName != "" {
		found := false
		for _, u := range rateUnits() {
			if strings.EqualFold(unitName, u.name) {
				unit, found = u.size, true
				break
			}
		}
		if !found {
			return bad(fmt.Sprintf("has unknown unit %q (use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB)", unitName))
		}
	}
	v, ok := new(big.Rat).SetString(num) // num is digits[.digits] by now
	if !ok {
		return bad("is not a number")
	}
	v.Mul(v, new(big.Rat).SetInt64(unit))
	if !v.IsInt() {
		return bad("is not a whole number of bytes")
	}
	if !v.Num().IsInt64() {
		return bad("is too large")
	}
	return v.Num().Int64(), nil
}

// formatRate prints a byte rate for people, exactly: the shortest form in
// a unit (at most two decimals) that is exact, else bytes. 0 is "unlimited".
func formatRate(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	best := ""
	for _, u := range rateUnits() {
		if u.size == 1 || n < u.size {
			continue
		}
		q, r := n/u.size, n%u.size
		if r*100%u.size != 0 { // r*100 fits: r < 2^40
			continue
		}
		s := strconv.FormatInt(q, 10)
		if r != 0 {
			s += "." + strings.TrimRight(fmt.Sprintf("%02d", r*100/u.size), "0")
		}
		s += " " + u.name + "/s"
		if best == "" || len(s) < len(best) {
			best = s
		}
	}
	if best == "" {
		best = strconv.FormatInt(n, 10) + " B/s"
	}
	return best
}

func renderQuotas(w io.Writer, quotas []fsm.Quota) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tKIND\tPRODUCE\tFETCH")
	for _, q := range quotas {
		kind := "exact"
		if q.Prefix {
			kind = "prefix"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", q.Topic, kind, formatRate(q.ProduceBytesPerSec), formatRate(q.FetchBytesPerSec))
	}
	return tw.Flush()
}
