package main

// ctl migrations: start, follow (--wait), get, list, finish and abort a
// live topic migration (docs/migration.md).

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// --- migrations ---------------------------------------------------------------

// migrationPollInterval is how often `migrations start --wait` reads the
// migration: often enough to show a producer pause of well under a second.
const migrationPollInterval = 200 * time.Millisecond

// migrationPollGrace is how long --wait keeps polling through failed reads
// (a leader change, a peer restarting, a follower that has not applied the
// start yet and answers 404) before giving up.
const migrationPollGrace = 10 * time.Second

// migrationDone counts the partitions whose base is known, of all listed.
func migrationDone(m adminapi.Migration) (done, total int) {
	for _, p := range m.Partitions {
		if p.Base != nil && *p.Base >= 0 {
			done++
		}
	}
	return done, len(m.Partitions)
}

// migrationOver reports whether --wait stops at m: clients are on the
// target (switched, or already finished), or the migration ended without a
// switch (aborted, failed).
func migrationOver(m adminapi.Migration) bool {
	switch m.State {
	case fsm.MigrationSwitched, fsm.MigrationFinished, fsm.MigrationAborted, fsm.MigrationFailed:
		return true
	}
	return false
}

// migrationPath is /v1/migrations/{topic}, escaped.
func migrationPath(topic string) string { return apiPath("/v1/migrations", topic) }

func parseMigrationsList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/migrations", decoded(func(w io.Writer, l adminapi.MigrationList) error { return renderMigrations(w, l.Migrations) })), nil
}

func parseMigrationsGet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "TOPIC")
	}
	if err != nil {
		return nil, err
	}
	return getCall(migrationPath(pos[0]), decoded(renderMigration)), nil
}

func parseMigrationsStart(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var to optString
	fs.Var(&to, "to", "the `CLUSTER` to move the topic to (required)")
	wait := fs.Bool("wait", false, "follow the migration until clients are on the target (or it fails): a live status line on a terminal, a line per phase otherwise")
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "TOPIC")
	}
	if err != nil {
		return nil, err
	}
	if !to.set {
		return nil, errors.New("--to CLUSTER is required")
	}
	topic := pos[0]
	call := &ctlCall{method: http.MethodPost, path: "/v1/migrations", body: adminapi.MigrationStart{Topic: topic, To: to.v},
		show: func(w io.Writer, raw []byte, index string) error {
			line := fmt.Sprintf("migration of %s to %s started", topic, to.v)
			var m adminapi.Migration
			if json.Unmarshal(raw, &m) == nil && m.From != "" {
				line = fmt.Sprintf("migration of %s started: %s -> %s, %s", topic, m.From, m.To, dash(m.Phase))
			}
			if index != "" {
				line += " (index " + index + ")"
			}
			_, err := fmt.Fprintln(w, line)
			return err
		}}
	if *wait {
		call.follow = func(c *ctlClient, raw []byte, stdout io.Writer, asJSON bool) error {
			return waitMigration(c, topic, raw, stdout, asJSON, isTerminal(stdout))
		}
	}
	return call, nil
}

func parseMigrationsFinish(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	force := fs.Bool("force", false, "finish even if some groups' committed offsets are below the base: those groups can no longer read what they have not consumed from the source")
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "TOPIC")
	}
	if err != nil {
		return nil, err
	}
	topic := pos[0]
	call := &ctlCall{method: http.MethodPost, path: migrationPath(topic) + "/finish",
		show: func(w io.Writer, raw []byte, index string) error {
			var m adminapi.Migration
			_ = json.Unmarshal(raw, &m) // an empty or other answer: a plain confirmation
			if len(m.GroupsBehind) > 0 {
				fmt.Fprintf(w, "warning: finished with groups behind the base (they can no longer read the rest of the source): %s\n", strings.Join(m.GroupsBehind, ", "))
			}
			line := fmt.Sprintf("migration of %s finished", topic)
			if m.From != "" {
				line += fmt.Sprintf("; the segment on %s is retired (its data stays there)", m.From)
			}
			if index != "" {
				line += " (index " + index + ")"
			}
			_, err := fmt.Fprintln(w, line)
			return err
		},
		apiError: func(e *ctlAPIError) error {
			if e.status != http.StatusConflict {
				return e
			}
			var b adminapi.MigrationBehind
			if json.Unmarshal(e.body, &b) != nil || len(b.GroupsBehind) == 0 {
				return e
			}
			return fmt.Errorf("%w\ngroups behind the base: %s\nwait until they commit past it (switchyard ctl migrations get %s), or finish with --force: they then can no longer read what they have not consumed from the source",
				e, strings.Join(b.GroupsBehind, ", "), topic)
		}}
	if *force {
		call.query = url.Values{"force": {"1"}}
	}
	return call, nil
}

func parseMigrationsAbort(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "TOPIC")
	}
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: migrationPath(pos[0]),
		show: confirm("migration of %s aborted; the topic stays where it was", pos[0])}, nil
}

func renderMigrations(w io.Writer, l []adminapi.Migration) error {
	if len(l) == 0 {
		_, err := fmt.Fprintln(w, "no migrations")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tFROM\tTO\tSTATE\tPHASE\tPARTITIONS\tSTARTED\tSWITCHED\tGROUPS BEHIND")
	for _, m := range l {
		done, total := migrationDone(m)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%d\n", m.Topic, m.From, m.To, dash(string(m.State)), dash(m.Phase),
			done, total, m.Started, m.Switched, len(m.GroupsBehind))
	}
	return tw.Flush()
}

func renderMigration(w io.Writer, m adminapi.Migration) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "topic:\t%s\n", m.Topic)
	fmt.Fprintf(tw, "from:\t%s\n", dash(m.From))
	fmt.Fprintf(tw, "to:\t%s\n", dash(m.To))
	fmt.Fprintf(tw, "state:\t%s\n", dash(string(m.State)))
	fmt.Fprintf(tw, "phase:\t%s\n", dash(m.Phase))
	fmt.Fprintf(tw, "started:\t%s\n", m.Started)
	fmt.Fprintf(tw, "switched:\t%s\n", m.Switched)
	if m.Error != "" {
		fmt.Fprintf(tw, "error:\t%s\n", m.Error)
	}
	if len(m.GroupsBehind) > 0 {
		fmt.Fprintf(tw, "groups behind:\t%s\n", strings.Join(m.GroupsBehind, ", "))
	} else {
		fmt.Fprintf(tw, "groups behind:\tnone\n")
	}
	if err := tw.Flush(); err != nil || len(m.Partitions) == 0 {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "PARTITION\tBASE")
	for _, p := range m.Partitions {
		base := "-"
		if p.Base != nil && *p.Base >= 0 {
			base = strconv.FormatInt(*p.Base, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\n", p.Partition, base)
	}
	return tw.Flush()
}

// isTerminal reports whether w is a character device (a terminal), where
// --wait redraws one status line instead of printing a line per phase.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// migrationWatch turns the successive reads of one migration into what
// --wait prints. The producer pause is measured here, from the first read
// in phase fence to the first read after it, so it is accurate to a poll
// interval; the peers' fence-duration histogram is the exact figure.
type migrationWatch struct {
	w     io.Writer
	tty   bool
	begin time.Time // the first read

	seen       bool
	state      string
	phase      string
	fenceSince time.Time     // when the fence was first seen; zero if never
	pause      time.Duration // the fence's length once it is over
	fenceOver  bool
	drawn      bool // a status line is on the terminal
}

func newMigrationWatch(w io.Writer, tty bool) *migrationWatch {
	return &migrationWatch{w: w, tty: tty}
}

// pauseSoFar is the producer pause observed up to now.
func (mw *migrationWatch) pauseSoFar(now time.Time) time.Duration {
	switch {
	case mw.fenceOver:
		return mw.pause
	case !mw.fenceSince.IsZero():
		return now.Sub(mw.fenceSince)
	}
	return 0
}

// observe takes one read of the migration at now and prints what changed.
func (mw *migrationWatch) observe(m adminapi.Migration, now time.Time) {
	if !mw.seen {
		mw.begin = now
	}
	if m.Phase == "fence" && mw.fenceSince.IsZero() {
		mw.fenceSince = now
	}
	if m.Phase != "fence" && !mw.fenceSince.IsZero() && !mw.fenceOver {
		mw.fenceOver, mw.pause = true, now.Sub(mw.fenceSince)
	}
	changed := !mw.seen || string(m.State) != mw.state || m.Phase != mw.phase
	mw.seen, mw.state, mw.phase = true, string(m.State), m.Phase
	if mw.tty {
		fmt.Fprintf(mw.w, "\r\033[K%s", mw.statusLine(m, now))
		mw.drawn = true
		return
	}
	if changed {
		fmt.Fprintln(mw.w, mw.statusLine(m, now))
	}
}

// statusLine is one line of progress: topic, route, state and phase,
// partitions whose base is known, and the producer pause so far.
func (mw *migrationWatch) statusLine(m adminapi.Migration, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s -> %s: %s, phase %s", m.Topic, dash(m.From), dash(m.To), dash(string(m.State)), dash(m.Phase))
	if done, total := migrationDone(m); total > 0 {
		fmt.Fprintf(&b, ", partitions %d/%d", done, total)
	}
	if p := mw.pauseSoFar(now); p > 0 || !mw.fenceSince.IsZero() {
		fmt.Fprintf(&b, ", producer pause %s", p.Round(time.Millisecond))
	}
	if m.Error != "" {
		fmt.Fprintf(&b, ", error: %s", m.Error)
	}
	return b.String()
}

// finish prints the closing line (ending the status line on a terminal)
// and answers the migration's outcome: nil once clients are on the target,
// an error for an aborted or failed migration.
func (mw *migrationWatch) finish(m adminapi.Migration, now time.Time) error {
	if mw.drawn {
		fmt.Fprintln(mw.w)
	}
	switch m.State {
	case "aborted", "failed":
		why := m.Error
		if why == "" {
			why = "no reason given"
		}
		return fmt.Errorf("migration of %s %s: %s; the topic stays on %s", m.Topic, m.State, why, dash(m.From))
	}
	line := fmt.Sprintf("%s is %s: clients use %s (waited %s", m.Topic, m.State, dash(m.To), now.Sub(mw.begin).Round(time.Millisecond))
	if !mw.fenceSince.IsZero() {
		line += fmt.Sprintf(", producer pause about %s", mw.pauseSoFar(now).Round(time.Millisecond))
	}
	line += ")"
	if m.State == "switched" {
		line += fmt.Sprintf("; finish it with: switchyard ctl migrations finish %s", m.Topic)
	}
	_, err := fmt.Fprintln(mw.w, line)
	return err
}

// waitMigration follows a just-started migration of topic until it is
// switched or over. first is the start's answer. Reads that fail (a
// leader change, a peer restarting) are retried for migrationPollGrace.
func waitMigration(c *ctlClient, topic string, first []byte, stdout io.Writer, asJSON, tty bool) error {
	var progress io.Writer = stdout
	if asJSON {
		progress = io.Discard
	}
	mw := newMigrationWatch(progress, tty && !asJSON)
	var m adminapi.Migration
	raw := json.RawMessage(first)
	if err := json.Unmarshal(first, &m); err == nil && m.Topic != "" {
		mw.observe(m, time.Now())
	}
	var failingSince time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for !migrationOver(m) {
		select {
		case <-c.ctx.Done():
			if mw.drawn {
				fmt.Fprintln(progress)
			}
			return fmt.Errorf("stopped waiting; the migration of %s goes on: see switchyard ctl migrations get %s", topic, topic)
		case <-timer.C:
		}
		timer.Reset(migrationPollInterval)
		var next json.RawMessage
		_, err := c.do(http.MethodGet, migrationPath(topic), url.Values{"consistent": {"1"}}, nil, &next)
		if err == nil {
			var nm adminapi.Migration
			if err = json.Unmarshal(next, &nm); err == nil && nm.Topic == "" {
				err = fmt.Errorf("the answer names no topic: %.200s", next)
			}
			if err == nil {
				m, raw, failingSince = nm, next, time.Time{}
				mw.observe(m, time.Now())
				continue
			}
		}
		if c.ctx.Err() != nil {
			continue // the select above reports it
		}
		var ae *ctlAPIError
		if errors.As(err, &ae) && (ae.status == http.StatusBadRequest || ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden) {
			return fmt.Errorf("reading the migration of %s: %w", topic, err) // retrying will not help
		}
		now := time.Now()
		if failingSince.IsZero() {
			failingSince = now
		}
		if now.Sub(failingSince) > migrationPollGrace {
			if mw.drawn {
				fmt.Fprintln(progress)
			}
			return fmt.Errorf("reading the migration of %s failed for %s: %w; it may still be running: see switchyard ctl migrations get %s",
				topic, migrationPollGrace, err, topic)
		}
	}
	outcome := mw.finish(m, time.Now())
	if asJSON {
		if err := printJSON(stdout, raw); err != nil {
			return err
		}
	}
	return outcome
}
