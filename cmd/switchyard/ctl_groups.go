package main

// switchyard ctl groups: list and describe consumer groups, and reset a
// group's offsets while its consumers keep running (issue 10; the flags
// are kafka-consumer-groups.sh --reset-offsets').

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// resetPollInterval is how often `groups reset --wait` reads the job.
const resetPollInterval = 200 * time.Millisecond

// resetOver reports whether --wait stops at the job: applied or failed.
func resetOver(r fsm.OffsetReset) bool {
	return r.State == fsm.ResetApplied || r.State == fsm.ResetFailed
}

// resetToString shows a reset's target for people.
func resetToString(to fsm.ResetTo) string {
	switch to.Kind {
	case "", fsm.ResetToEarliest, fsm.ResetToLatest:
		return dash(to.Kind)
	case fsm.ResetToTimestamp:
		return "timestamp " + time.UnixMilli(to.Value).UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s %d", to.Kind, to.Value)
}

func groupPath(group string) string { return apiPath("/v1/groups", group) }

func parseGroupsList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/groups", decoded(renderGroups)), nil
}

func parseGroupsDescribe(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "GROUP")
	}
	if err != nil {
		return nil, err
	}
	return getCall(groupPath(pos[0]), decoded(renderGroup)), nil
}

// int64Flag is an integer flag that knows whether it was given.
type int64Flag struct {
	set bool
	v   int64
}

func (f *int64Flag) String() string { return strconv.FormatInt(f.v, 10) }
func (f *int64Flag) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not an integer")
	}
	f.set, f.v = true, v
	return nil
}

func parseGroupsReset(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var topics, partitions []string
	var datetime optString
	var offset, shift int64Flag
	fs.Var(listFlag{&topics}, "topic", "a `TOPIC` to reset, repeated or comma-separated (required)")
	fs.Var(listFlag{&partitions}, "partitions", "only these `partitions` (0,1,...) of the one --topic (default: all)")
	earliest := fs.Bool("to-earliest", false, "reset to the earliest offset")
	latest := fs.Bool("to-latest", false, "reset to the latest offset (skip everything not yet consumed)")
	fs.Var(&datetime, "to-datetime", "reset to the first offset at or after `TIME`: RFC 3339 (2026-12-01T10:00:00Z) or YYYY-MM-DDTHH:mm:SS[.sss] in local time")
	fs.Var(&offset, "to-offset", "reset to offset `N` (clamped into [earliest, latest])")
	fs.Var(&shift, "shift-by", "move the committed offset by `N` (negative: back; clamped into [earliest, latest])")
	dryRun := fs.Bool("dry-run", false, "show the resolved targets and change nothing")
	wait := fs.Bool("wait", false, "follow the reset until it is applied or failed (a line per state; exit 1 on failed)")
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "GROUP")
	}
	if err != nil {
		return nil, err
	}
	group := pos[0]
	if len(topics) == 0 {
		return nil, errors.New("--topic TOPIC is required")
	}
	body := adminapi.OffsetResetRequest{Topics: topics, DryRun: *dryRun}
	if len(partitions) > 0 {
		if len(topics) != 1 {
			return nil, fmt.Errorf("--partitions applies to a single --topic; reset the topics %s one at a time", strings.Join(topics, ", "))
		}
		ps := make([]int32, 0, len(partitions))
		for _, s := range partitions {
			p, err := strconv.ParseInt(s, 10, 32)
			if err != nil || p < 0 {
				return nil, fmt.Errorf("--partitions: %q is not a partition number", s)
			}
			ps = append(ps, int32(p))
		}
		body.Partitions = map[string][]int32{topics[0]: ps}
	}
	var chosen []string
	if *earliest {
		chosen, body.To = append(chosen, "--to-earliest"), adminapi.ResetToJSON(fsm.ResetTo{Kind: "earliest"})
	}
	if *latest {
		chosen, body.To = append(chosen, "--to-latest"), adminapi.ResetToJSON(fsm.ResetTo{Kind: "latest"})
	}
	if datetime.set {
		ts, err := parseResetDatetime(datetime.v, time.Local)
		if err != nil {
			return nil, err
		}
		chosen, body.To = append(chosen, "--to-datetime"), adminapi.ResetToJSON(fsm.ResetTo{Kind: "timestamp", Value: ts})
	}
	if offset.set {
		if offset.v < 0 {
			return nil, fmt.Errorf("--to-offset %d is negative", offset.v)
		}
		chosen, body.To = append(chosen, "--to-offset"), adminapi.ResetToJSON(fsm.ResetTo{Kind: "offset", Value: offset.v})
	}
	if shift.set {
		chosen, body.To = append(chosen, "--shift-by"), adminapi.ResetToJSON(fsm.ResetTo{Kind: "shift", Value: shift.v})
	}
	switch {
	case len(chosen) == 0:
		return nil, errors.New("say where to: one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by")
	case len(chosen) > 1:
		return nil, fmt.Errorf("%s: give exactly one target", strings.Join(chosen, " and "))
	case *wait && *dryRun:
		return nil, errors.New("--wait follows a reset, and --dry-run starts none")
	}
	call := &ctlCall{method: http.MethodPost, path: groupPath(group) + "/offset-resets", body: body,
		show: decoded(func(w io.Writer, r fsm.OffsetReset) error { return renderReset(w, group, r, *dryRun) })}
	if *wait {
		call.follow = func(c *ctlClient, raw []byte, stdout io.Writer, asJSON bool) error {
			return waitReset(c, group, raw, stdout, asJSON)
		}
	}
	return call, nil
}

// parseResetDatetime reads --to-datetime as kafka-consumer-groups.sh
// does: RFC 3339 (any fraction of a second, a zone Z or ±hh:mm), or
// YYYY-MM-DDTHH:mm:SS[.sss] with a zone ±hhmm or none (then in loc).
// It answers unix milliseconds.
func parseResetDatetime(s string, loc *time.Location) (int64, error) {
	var t time.Time
	var err error
	if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		for _, layout := range []string{"2006-01-02T15:04:05.999999999-0700", "2006-01-02T15:04:05.999999999"} {
			if t, err = time.ParseInLocation(layout, s, loc); err == nil {
				break
			}
		}
	}
	if err != nil {
		return 0, fmt.Errorf("--to-datetime %q: use RFC 3339 (2026-12-01T10:00:00Z) or YYYY-MM-DDTHH:mm:SS.sss in local time", s)
	}
	if t.Before(time.UnixMilli(0)) {
		return 0, fmt.Errorf("--to-datetime %q is out of range", s)
	}
	return t.UnixMilli(), nil
}

func renderGroups(w io.Writer, l adminapi.GroupList) error {
	for _, e := range l.Errors {
		fmt.Fprintf(w, "warning: %s (the list may miss groups)\n", e)
	}
	if len(l.Groups) == 0 {
		_, err := fmt.Fprintln(w, "no groups")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "GROUP\tTYPE\tSTATE\tPROTOCOL TYPE")
	for _, g := range l.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Group, dash(g.Type), dash(g.State), dash(g.ProtocolType))
	}
	return tw.Flush()
}

func renderGroup(w io.Writer, g adminapi.Group) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "group:\t%s\n", g.Group)
	fmt.Fprintf(tw, "type:\t%s\n", dash(g.Type))
	fmt.Fprintf(tw, "state:\t%s\n", dash(g.State))
	fmt.Fprintf(tw, "protocol:\t%s\n", dash(strings.TrimSpace(g.ProtocolType+" "+g.Protocol)))
	if r := g.OffsetReset; r != nil {
		line := fmt.Sprintf("%s to %s", r.State, resetToString(r.To))
		if r.Error != "" {
			line += ": " + r.Error
		}
		fmt.Fprintf(tw, "last offset reset:\t%s\n", line)
	}
	if g.OffsetsError != "" {
		fmt.Fprintf(tw, "offsets:\tunavailable: %s\n", g.OffsetsError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(g.Members) == 0 {
		fmt.Fprintln(w, "no members")
	} else {
		tw = newTable(w)
		fmt.Fprintln(tw, "MEMBER\tINSTANCE\tCLIENT\tHOST\tASSIGNMENT")
		for _, m := range g.Members {
			var as []string
			for _, a := range m.Assignment {
				ps := make([]string, len(a.Partitions))
				for i, p := range a.Partitions {
					ps[i] = strconv.Itoa(int(p))
				}
				as = append(as, fmt.Sprintf("%s[%s]", a.Topic, strings.Join(ps, ",")))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.MemberID, dash(m.InstanceID), dash(m.ClientID), dash(m.ClientHost), dash(strings.Join(as, " ")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(g.Topics) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tLOG END\tLAG")
	for _, t := range g.Topics {
		for _, p := range t.Partitions {
			lag := "-"
			if p.Lag != nil {
				lag = strconv.FormatInt(*p.Lag, 10)
			}
			if p.Error != "" {
				lag += " (" + p.Error + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.Topic, p.Partition, offsetCell(p.Committed), offsetCell(p.LogEndOffset), lag)
		}
		fmt.Fprintf(tw, "%s\ttotal\t\t\t%d\n", t.Topic, t.Lag)
	}
	return tw.Flush()
}

func offsetCell(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

// renderReset prints a reset's answer: the job (or the dry run's
// targets), one line per partition old -> new.
func renderReset(w io.Writer, group string, r fsm.OffsetReset, dryRun bool) error {
	switch {
	case dryRun:
		fmt.Fprintf(w, "dry run: resetting %s would move these offsets; nothing changed\n", group)
	default:
		line := fmt.Sprintf("offset reset of %s: %s", group, dash(string(r.State)))
		if r.To.Kind != "" {
			line += ", to " + resetToString(r.To)
		}
		if r.Error != "" {
			line += ", error: " + r.Error
		}
		fmt.Fprintln(w, line)
	}
	if len(r.Targets) == 0 {
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD\t\tNEW")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%d\t%s\t->\t%d\n", t.Topic, t.Partition, offsetCell(t.Old), t.New)
	}
	return tw.Flush()
}

// waitReset follows a just-started reset of group (first is the POST's
// answer, the job) until it is applied or failed, printing a line per
// state change; failed is an error. Reads that fail are retried for
// migrationPollGrace; a read that shows an older job (a follower that has
// not applied the start yet) counts as no news.
func waitReset(c *ctlClient, group string, first []byte, stdout io.Writer, asJSON bool) error {
	var progress io.Writer = stdout
	if asJSON {
		progress = io.Discard
	}
	var job fsm.OffsetReset
	if err := json.Unmarshal(first, &job); err != nil {
		return fmt.Errorf("the reset's answer is not the expected JSON: %w", err)
	}
	raw := json.RawMessage(first)
	state, begin := job.State, time.Now()
	var failingSince time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for !resetOver(job) {
		select {
		case <-c.ctx.Done():
			return fmt.Errorf("stopped waiting; the reset of %s goes on: see switchyard ctl groups describe %s", group, group)
		case <-timer.C:
		}
		timer.Reset(resetPollInterval)
		var next json.RawMessage
		_, err := c.do(http.MethodGet, groupPath(group)+"/offset-resets", url.Values{"consistent": {"1"}}, nil, &next)
		if err == nil {
			var nj fsm.OffsetReset
			if err = json.Unmarshal(next, &nj); err == nil {
				failingSince = time.Time{}
				if job.Created != 0 && nj.Created != job.Created {
					continue // not this job yet
				}
				job, raw = nj, next
				if job.State != state {
					state = job.State
					line := fmt.Sprintf("%s: %s", group, dash(string(state)))
					if job.Error != "" {
						line += ": " + job.Error
					}
					fmt.Fprintln(progress, line)
				}
				continue
			}
		}
		if c.ctx.Err() != nil {
			continue
		}
		var ae *ctlAPIError
		if errors.As(err, &ae) && (ae.status == http.StatusBadRequest || ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden) {
			return fmt.Errorf("reading the reset of %s: %w", group, err)
		}
		now := time.Now()
		if failingSince.IsZero() {
			failingSince = now
		}
		if now.Sub(failingSince) > migrationPollGrace {
			return fmt.Errorf("reading the reset of %s failed for %s: %w; it may still be running: see switchyard ctl groups describe %s",
				group, migrationPollGrace, err, group)
		}
	}
	if asJSON {
		if err := printJSON(stdout, raw); err != nil {
			return err
		}
	}
	if job.State == "failed" {
		why := job.Error
		if why == "" {
			why = "no reason given"
		}
		return fmt.Errorf("the offset reset of %s failed: %s", group, why)
	}
	if !asJSON {
		fmt.Fprintf(progress, "the offsets of %s are reset (waited %s)\n", group, time.Since(begin).Round(time.Millisecond))
	}
	return nil
}
