package main

// switchyard ctl: the command-line client of the admin HTTP API
// (docs/admin-api.md, docs/openapi.yaml). Parsing is pure: a command line
// becomes a ctlOptions and one ctlCall (method, path, query, body and how to
// show the answer) before anything touches the network, so every command's
// flags are unit-tested without a server. ctlClient.do is the only place that
// speaks HTTP.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

const (
	ctlDefaultServer = "http://127.0.0.1:18080"
	// ctlMaxAnswerBytes bounds what ctl reads of one answer; the API's
	// largest answers (a routing table of thousands of topics) are far below.
	ctlMaxAnswerBytes = 64 << 20
)

// ctlExitError is what runCtl returns once it has printed its own message:
// run exits with code (2 for a usage error, 1 for a failure) and prints
// nothing more.
type ctlExitError struct{ code int }

func (e *ctlExitError) Error() string { return fmt.Sprintf("ctl: exit status %d", e.code) }

// ctlUsageError is a command line ctl cannot run. usage is the text of the
// command (or command group) that was being parsed.
type ctlUsageError struct {
	err   error // nil with help: the user asked for the usage
	help  bool
	usage string
}

func (e *ctlUsageError) Error() string {
	if e.err == nil {
		return "help requested"
	}
	return e.err.Error()
}

// ctlAPIError is an error answer of the admin API.
type ctlAPIError struct {
	status  int
	message string
	// body is the answer as sent, for commands whose errors carry more
	// than a message (a refused migration finish lists the groups behind).
	body []byte
}

// Error is printed after "switchyard ctl: ", so it reads
// "switchyard ctl: 404 cluster \"x\" does not exist".
func (e *ctlAPIError) Error() string { return fmt.Sprintf("%d %s", e.status, e.message) }

// apiErrorFrom builds the error of a non-2xx answer: the server's
// {"error": ...} message, else the body's text, else the status text.
func apiErrorFrom(status int, body []byte) *ctlAPIError {
	var e struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	} else if text := strings.TrimSpace(string(body)); text != "" {
		// Not the API's error shape (a proxy in between, a server of another
		// kind): show the start of it, on one line.
		text = strings.Join(strings.Fields(text), " ")
		if len(text) > 200 {
			text = text[:200] + "..."
		}
		msg = text
	} else if msg = http.StatusText(status); msg == "" {
		msg = "error"
	}
	return &ctlAPIError{status: status, message: msg, body: body}
}

// runCtl runs `switchyard ctl ARGS`. It prints its own errors and returns a
// *ctlExitError for them, flag.ErrHelp after printing a requested usage.
func runCtl(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, call, err := parseCtl(args, os.Getenv)
	if err != nil {
		var ue *ctlUsageError
		if errors.As(err, &ue) && ue.help {
			fmt.Fprint(stdout, ue.usage)
			return flag.ErrHelp
		}
		fmt.Fprintf(stderr, "switchyard ctl: %v\n", err)
		if ue != nil {
			fmt.Fprintf(stderr, "\n%s", ue.usage)
		}
		return &ctlExitError{code: 2}
	}
	client, err := newCtlClient(ctx, opts)
	if err == nil {
		err = execCtl(client, opts, call, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard ctl: %v\n", err)
		return &ctlExitError{code: 1}
	}
	return nil
}

// execCtl makes the call and prints its answer.
func execCtl(c *ctlClient, opts ctlOptions, call *ctlCall, stdout io.Writer) error {
	query := call.query
	if opts.consistent && call.method == http.MethodGet {
		query = url.Values{}
		for k, v := range call.query {
			query[k] = v
		}
		query.Set("consistent", "1")
	}
	var raw json.RawMessage
	index, err := c.do(call.method, call.path, query, call.body, &raw)
	if err != nil {
		var ae *ctlAPIError
		if call.apiError != nil && errors.As(err, &ae) {
			return call.apiError(ae)
		}
		return err
	}
	if call.follow != nil {
		// The follow-up prints the final answer itself in JSON mode, so
		// stdout holds one JSON document.
		if opts.output != "json" {
			if err := call.show(stdout, raw, index); err != nil {
				return err
			}
		}
		return call.follow(c, raw, stdout, opts.output == "json")
	}
	if opts.output == "json" {
		return printJSON(stdout, raw)
	}
	return call.show(stdout, raw, index)
}

// printJSON pretty-prints an answer body; an empty one (204) prints {}.
func printJSON(w io.Writer, raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		_, err := fmt.Fprintln(w, "{}")
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// --- client -----------------------------------------------------------------

// ctlClient talks to one peer's admin API. It lives for one ctl invocation,
// which is why it holds that invocation's context.
type ctlClient struct {
	ctx   context.Context
	base  string // scheme://host[:port][/path], no trailing slash
	token string
	http  *http.Client
}

func newCtlClient(ctx context.Context, opts ctlOptions) (*ctlClient, error) {
	c := &ctlClient{ctx: ctx, base: opts.server, http: &http.Client{Timeout: opts.timeout}}
	if opts.caFile != "" {
		tr, err := ctlTransport(opts.caFile)
		if err != nil {
			return nil, err
		}
		c.http.Transport = tr
	}
	if opts.tokenFile != "" {
		b, err := os.ReadFile(opts.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token file: %w; check --token-file or $SWITCHYARD_TOKEN_FILE", err)
		}
		// The peer trims surrounding white space from its token file too.
		if c.token = strings.TrimSpace(string(b)); c.token == "" {
			return nil, fmt.Errorf("token file %s is empty; it must hold an admin API token of the peer (any role)", opts.tokenFile)
		}
	}
	return c, nil
}

// do sends one request and decodes a 2xx answer into out (a
// *json.RawMessage keeps it as sent). path must already be escaped (see
// apiPath). It answers the X-Switchyard-Index header of a write, and a
// *ctlAPIError for an error answer.
func (c *ctlClient) do(method, path string, query url.Values, body, out any) (index string, err error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", fmt.Errorf("encode request for %s %s: %w", method, target, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, target, rd)
	if err != nil {
		return "", fmt.Errorf("build request %s %s: %w; check --server", method, target, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "switchyard-ctl/"+version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", c.transportError(method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, ctlMaxAnswerBytes+1))
	if err != nil {
		return "", fmt.Errorf("read answer of %s %s: %w", method, target, err)
	}
	if len(data) > ctlMaxAnswerBytes {
		return "", fmt.Errorf("answer of %s %s is over %d MiB; is --server a Switchyard admin API?", method, target, ctlMaxAnswerBytes>>20)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", apiErrorFrom(resp.StatusCode, data)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return "", fmt.Errorf("answer of %s %s is not the expected JSON: %w; is --server a Switchyard admin API?", method, target, err)
		}
	}
	return resp.Header.Get("X-Switchyard-Index"), nil
}

func (c *ctlClient) transportError(method, target string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s %s: interrupted", method, target)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no answer from %s within %s; raise --timeout, or point --server at another peer", target, c.http.Timeout)
		}
		err = ue.Err
	}
	if hint := tlsHint(err); hint != "" {
		return fmt.Errorf("cannot reach %s: %v; %s", target, err, hint)
	}
	return fmt.Errorf("cannot reach %s: %v; is a peer's admin API listening there? Point --server (or $SWITCHYARD_SERVER) at one", target, err)
}

// apiPath joins a fixed API path and one user-given segment, escaped. A
// segment of only dots ("." or "..", legal topic prefixes and group
// prefixes) is percent-encoded too, so no client or server on the way
// resolves it as a relative path; Go's ServeMux matches on the escaped path
// and gives the handler the decoded value.
func apiPath(prefix, segment string) string {
	esc := url.PathEscape(segment)
	if esc == "." || esc == ".." {
		esc = strings.ReplaceAll(esc, ".", "%2E")
	}
	return prefix + "/" + esc
}

// normalizeServer turns --server into a base URL: a bare host:port gets
// http://, a trailing slash goes.
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("--server is empty; give a peer's admin URL such as " + ctlDefaultServer)
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("--server %q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("--server %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("--server %q has no host; give host:port or a URL such as %s", s, ctlDefaultServer)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("--server %q: give scheme://host:port[/path] only (no user, query or fragment)", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// --- parsing ----------------------------------------------------------------

// ctlOptions are the global flags, resolved.
type ctlOptions struct {
	server     string // normalized base URL
	tokenFile  string
	caFile     string // PEM CA bundle for an https:// server, "" for the system's
	output     string // "table" or "json"
	timeout    time.Duration
	consistent bool
}

// ctlCall is the one API call a command makes.
type ctlCall struct {
	method string
	path   string     // escaped (apiPath)
	query  url.Values // nil when none
	body   any        // JSON-encoded when non-nil
	// show prints the answer for people: a table for a read, one line for a
	// write. raw is the answer body (empty for 204), index the
	// X-Switchyard-Index header ("" when absent).
	show func(w io.Writer, raw []byte, index string) error
	// apiError, when set, rewrites an error answer (to say what to do
	// about it from what its body carries).
	apiError func(*ctlAPIError) error
	// follow, when set, runs after a successful call (migrations start
	// --wait) with the answer; asJSON is -o json.
	follow func(c *ctlClient, raw []byte, stdout io.Writer, asJSON bool) error
}

// ctlCommand is one leaf command: "clusters set", "status".
type ctlCommand struct {
	name  string
	args  string // synopsis after the name
	about string
	parse func(fs *flag.FlagSet, args []string) (*ctlCall, error)
}

func ctlCommands() []ctlCommand {
	return []ctlCommand{
		{"status", "", "this peer, the leader, Raft's view and every peer", parseStatus},
		{"peers", "", "every peer with its addresses and health", parsePeers},
		{"peers allow-list", "", "the peer names admitted without a certificate, and the members the leader refuses", parsePeersAllowList},
		{"peers allow", "NAME", "admit the gossip member NAME as a peer without a certificate naming it", parsePeersAllow},
		{"peers disallow", "NAME", "remove NAME from the allow-list (an admitted peer stays until removed)", parsePeersDisallow},
		{"peers remove", "NAME", "remove the dead peer NAME from the peer table (a peer lost for good; refused while it is live)", parsePeersRemove},
		{"clusters list", "", "the backend clusters", parseClustersList},
		{"clusters get", "NAME", "one backend cluster", parseClustersGet},
		{"clusters set", "NAME --bootstrap h:p[,h:p...] [flags]", "define or replace a backend cluster", parseClustersSet},
		{"clusters delete", "NAME", "delete a backend cluster no route uses", parseClustersDelete},
		{"topics list", "[--prefix PREFIX] [--limit N]", "the topics the backend clusters hold: routed cluster, partitions, where each is, migrating", parseTopicsList},
		{"routes list", "", "the routing table: topic, prefix and group routes and the default cluster", parseRoutesList},
		{"routes get", "TOPIC [--region REGION] | --prefix PREFIX | --group PREFIX", "how a topic resolves (for a region's clients), or one prefix or group rule", parseRoutesGet},
		{"routes set", "TOPIC CLUSTER | --prefix PREFIX CLUSTER | --group PREFIX CLUSTER [--region R=C...] [--fallback C1,C2] [--resume POLICY] [--failback auto|manual]", "route a topic, a topic prefix or a group-id prefix to a cluster (per region with --region)", parseRoutesSet},
		{"routes delete", "TOPIC | --prefix PREFIX | --group PREFIX", "remove a route", parseRoutesDelete},
		{"routes default", "[CLUSTER] | --clear", "show, set or clear the default cluster (set takes routes set's --region, --fallback, --resume, --failback)", parseRoutesDefault},
		{"quotas list", "", "the quota rules, exact topics first", parseQuotasList},
		{"quotas get", "TOPIC | --prefix PREFIX", "the rule that governs a topic, or one prefix rule", parseQuotasGet},
		{"quotas set", "TOPIC | --prefix PREFIX [--produce RATE] [--fetch RATE]", "set a quota rule (it replaces the rule; a rate left out is unlimited)", parseQuotasSet},
		{"quotas delete", "TOPIC | --prefix PREFIX", "remove a quota rule", parseQuotasDelete},
		{"migrations list", "", "every topic's latest live migration", parseMigrationsList},
		{"migrations get", "TOPIC", "one topic's migration: phase, partition bases, groups behind", parseMigrationsGet},
		{"migrations start", "TOPIC --to CLUSTER [--wait]", "move TOPIC to CLUSTER while its clients keep running (docs/migration.md)", parseMigrationsStart},
		{"migrations finish", "TOPIC [--force]", "retire the source segment of a switched migration once every group is past the base", parseMigrationsFinish},
		{"migrations abort", "TOPIC", "stop a migration before its switch; nothing changes for clients", parseMigrationsAbort},
		{"regions list", "", "the regions: client networks and fallback regions", parseRegionsList},
		{"regions set", "REGION --network CIDR [--network CIDR...] [--fallback REGION...]", "define or replace a region (docs/regions.md)", parseRegionsSet},
		{"regions delete", "REGION", "delete a region no other region falls back to", parseRegionsDelete},
		{"acls add", "--principal User:NAME --resource-type TYPE --resource-name NAME --operation OP [--pattern prefixed] [--permission deny] [--host IP]", "add an authorization rule (docs/security.md)", parseACLsAdd},
		{"acls list", "[--principal P] [--resource-type T] [--resource-name N] [--pattern P] [--operation O] [--permission P] [--host H]", "the authorization rules the filters match", parseACLsList},
		{"acls delete", "[--principal P] [--resource-type T] [--resource-name N] [--pattern P] [--operation O] [--permission P] [--host H]", "delete the rules the filters match (at least one filter)", parseACLsDelete},
		{"groups list", "", "every consumer group of the virtual cluster, with state and type", parseGroupsList},
		{"groups describe", "GROUP", "a group's members, assignment, committed offsets and lag, and its last offset reset", parseGroupsDescribe},
		{"groups reset", "GROUP --topic T [--topic T2] [--partitions 0,1] (--to-earliest|--to-latest|--to-datetime TIME|--to-offset N|--shift-by N) [--dry-run] [--wait]",
			"reset a group's offsets while its consumers keep running (docs/offset-reset.md)", parseGroupsReset},
		{"top", "[--interval 2s] [--rows 10] [--once]", "a live view of the busiest topics and clients, summed over every live peer's /metrics", parseTop},
		{"health", "", "each backend cluster's health as the leader judges it, with every peer's verdict", parseHealth},
		{"failover", "CLUSTER", "move the routes of CLUSTER to their fallbacks now (manual; stays until failback)", parseFailover(true)},
		{"failback", "CLUSTER", "move the routes of a failed-over CLUSTER back (manual)", parseFailover(false)},
		{"failover list", "", "every cluster's failover state", parseFailoverList},
		{"users list", "", "the Kafka listener's SASL users and their mechanisms", parseUsersList},
		{"users set", "NAME --mechanism M --password-file F [--iterations N]", "set a user's credential for one mechanism, creating the user (docs/security.md)", parseUsersSet},
		{"users delete", "NAME [--mechanism M]", "delete a user, or only one mechanism's credential", parseUsersDelete},
		{"snapshot save", "FILE [--force]", "back up the replicated state, read through the Raft leader, to FILE (admin role; docs/operations.md)", parseSnapshotSave},
		{"snapshot restore", "FILE", "replace the replicated state with a backup through Raft, keeping this cluster's peers (admin role)", parseSnapshotRestore},
	}
}

const ctlRateHelp = "RATE is bytes per second: 1048576, 500KB, 10MB, 1.5MiB, 2GiB/s (KB=1000, KiB=1024);\n0 or \"unlimited\" means no limit.\n"

// newGlobalFlags defines the global flags on a new flag set.
func newGlobalFlags(opts *ctlOptions, output *string, server, tokenFile *string) *flag.FlagSet {
	fs := flag.NewFlagSet("switchyard ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(server, "server", *server, "admin API URL of any peer, or host:port ($SWITCHYARD_SERVER)")
	fs.StringVar(tokenFile, "token-file", *tokenFile, "file holding an admin API bearer token of any role ($SWITCHYARD_TOKEN_FILE)")
	fs.StringVar(&opts.caFile, "ca-file", opts.caFile, "PEM CA bundle that signs the admin API's certificate, for an https:// --server ($SWITCHYARD_CA_FILE; default: the system's CAs)")
	fs.StringVar(output, "o", *output, "output: table or json")
	fs.StringVar(output, "output", *output, "same as -o")
	fs.DurationVar(&opts.timeout, "timeout", opts.timeout, "time allowed for the whole request (0: none)")
	fs.BoolVar(&opts.consistent, "consistent", false, "read through the Raft leader (?consistent=1) instead of this peer's state")
	return fs
}

func ctlUsage() string {
	var b strings.Builder
	b.WriteString("usage: switchyard ctl [flags] COMMAND [ARGS]\n\n")
	b.WriteString("Drives the admin API of a Switchyard peer (docs/admin-api.md). Writes may go to\nany peer; it forwards them to the Raft leader.\n\ncommands:\n")
	for _, c := range ctlCommands() {
		fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(c.name+" "+c.args))
	}
	b.WriteString("\n" + ctlRateHelp + "\nflags (before COMMAND):\n")
	var opts ctlOptions
	opts.timeout = 10 * time.Second
	output, server, tokenFile := "table", ctlDefaultServer, ""
	fs := newGlobalFlags(&opts, &output, &server, &tokenFile)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString("\nRun 'switchyard ctl COMMAND -h' for what a command does and its flags.\n")
	return b.String()
}

// groupUsage lists the commands of one group ("routes").
func groupUsage(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: switchyard ctl %s SUBCOMMAND [ARGS]\n\n", group)
	for _, c := range ctlCommands() {
		if strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(&b, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.about)
		}
	}
	if group == "quotas" {
		b.WriteString("\n" + ctlRateHelp)
	}
	return b.String()
}

func commandUsage(c ctlCommand, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: switchyard ctl %s\n\n%s\n", strings.TrimSpace(c.name+" "+c.args), c.about)
	if strings.HasPrefix(c.name, "quotas set") {
		b.WriteString("\n" + ctlRateHelp)
	}
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		b.WriteString("\nflags (before or after the arguments):\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return b.String()
}

// parseCtl parses a ctl command line; getenv supplies the environment
// defaults of the global flags.
func parseCtl(args []string, getenv func(string) string) (ctlOptions, *ctlCall, error) {
	opts := ctlOptions{timeout: 10 * time.Second, caFile: getenv("SWITCHYARD_CA_FILE")}
	output, server, tokenFile := "table", getenv("SWITCHYARD_SERVER"), getenv("SWITCHYARD_TOKEN_FILE")
	if server == "" {
		server = ctlDefaultServer
	}
	fs := newGlobalFlags(&opts, &output, &server, &tokenFile)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, nil, &ctlUsageError{help: true, usage: ctlUsage()}
		}
		return opts, nil, &ctlUsageError{err: err, usage: ctlUsage()}
	}
	bad := func(err error) (ctlOptions, *ctlCall, error) {
		return opts, nil, &ctlUsageError{err: err, usage: ctlUsage()}
	}
	var err error
	if opts.server, err = normalizeServer(server); err != nil {
		return bad(err)
	}
	opts.tokenFile = tokenFile
	switch output {
	case "table", "json":
		opts.output = output
	default:
		return bad(fmt.Errorf("-o %q: use table or json", output))
	}
	if opts.timeout < 0 {
		return bad(fmt.Errorf("--timeout %s is negative", opts.timeout))
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return bad(errors.New("no command given"))
	}
	if rest[0] == "help" {
		return opts, nil, &ctlUsageError{help: true, usage: ctlUsage()}
	}
	cmd, cmdArgs, err := findCommand(rest)
	if err != nil {
		return opts, nil, err
	}
	cfs := flag.NewFlagSet("switchyard ctl "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(io.Discard)
	cfs.Usage = func() {}
	call, err := cmd.parse(cfs, cmdArgs)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, nil, &ctlUsageError{help: true, usage: commandUsage(cmd, cfs)}
		}
		return opts, nil, &ctlUsageError{err: fmt.Errorf("%s: %w", cmd.name, err), usage: commandUsage(cmd, cfs)}
	}
	return opts, call, nil
}

// findCommand picks the leaf command that args start with.
func findCommand(args []string) (ctlCommand, []string, error) {
	cmds := ctlCommands()
	// "peers" is a command and a group: a subcommand name wins.
	if len(args) >= 2 {
		for _, c := range cmds {
			if c.name == args[0]+" "+args[1] {
				return c, args[2:], nil
			}
		}
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c, args[1:], nil
		}
	}
	group := args[0]
	isGroup := false
	for _, c := range cmds {
		if strings.HasPrefix(c.name, group+" ") {
			isGroup = true
		}
	}
	if !isGroup {
		return ctlCommand{}, nil, &ctlUsageError{err: fmt.Errorf("unknown command %q", group), usage: ctlUsage()}
	}
	if len(args) < 2 {
		return ctlCommand{}, nil, &ctlUsageError{err: fmt.Errorf("%s: no subcommand given", group), usage: groupUsage(group)}
	}
	if args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		return ctlCommand{}, nil, &ctlUsageError{help: true, usage: groupUsage(group)}
	}
	for _, c := range cmds {
		if c.name == group+" "+args[1] {
			return c, args[2:], nil
		}
	}
	return ctlCommand{}, nil, &ctlUsageError{err: fmt.Errorf("%s: unknown subcommand %q", group, args[1]), usage: groupUsage(group)}
}

// parseInterleaved parses flags that come before, between or after the
// positional arguments (flag.FlagSet.Parse stops at the first positional
// one) and answers the positional ones. "--" ends the flags, so a topic may
// start with '-'.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// positional checks the count of positional arguments against their names.
func positional(pos []string, names ...string) error {
	if len(pos) < len(names) {
		return fmt.Errorf("missing %s", strings.Join(names[len(pos):], " and "))
	}
	if len(pos) > len(names) {
		return fmt.Errorf("unexpected argument %q", pos[len(names)])
	}
	for i, p := range pos {
		if p == "" {
			return fmt.Errorf("%s is empty", names[i])
		}
	}
	return nil
}

// optString is a string flag that knows whether it was given, so that
// --prefix "" is an error rather than no prefix.
type optString struct {
	set bool
	v   string
}

func (o *optString) String() string { return o.v }
func (o *optString) Set(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	o.set, o.v = true, s
	return nil
}

// --- commands ---------------------------------------------------------------

// noArgs parses a command that takes flags only.
func noArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	return positional(pos)
}

func getCall(path string, show func(io.Writer, []byte, string) error) *ctlCall {
	return &ctlCall{method: http.MethodGet, path: path, show: show}
}

// decoded adapts a table renderer of T to ctlCall.show.
func decoded[T any](render func(io.Writer, T) error) func(io.Writer, []byte, string) error {
	return func(w io.Writer, raw []byte, _ string) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("answer is not the expected JSON: %w", err)
		}
		return render(w, v)
	}
}

// confirm prints a write's one-line confirmation.
func confirm(format string, a ...any) func(io.Writer, []byte, string) error {
	return func(w io.Writer, _ []byte, index string) error {
		line := fmt.Sprintf(format, a...)
		if index != "" {
			line += " (index " + index + ")"
		}
		_, err := fmt.Fprintln(w, line)
		return err
	}
}

func parseStatus(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/status", decoded(renderStatus)), nil
}

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

func parseClustersList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/clusters", decoded(func(w io.Writer, l apiClusterList) error { return renderClusters(w, l.Clusters) })), nil
}

func parseClustersGet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	return getCall(apiPath("/v1/clusters", pos[0]), decoded(renderCluster)), nil
}

func parseClustersSet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var c apiCluster
	fs.Var(listFlag{&c.Bootstrap}, "bootstrap", "`host:port` of the cluster's brokers, comma-separated or repeated (required)")
	fs.StringVar(&c.Region, "region", "", "region/AZ of the cluster")
	var useTLS bool
	var t fsm.ClusterTLS
	var s fsm.ClusterSASL
	fs.BoolVar(&useTLS, "tls", false, "connect to the brokers with TLS (implied by any --tls-* flag; alone: the system roots)")
	fs.StringVar(&t.CAFile, "tls-ca-file", "", "PEM CA bundle, an absolute `path` on every peer (default: system roots)")
	fs.StringVar(&t.CertFile, "tls-cert-file", "", "PEM client certificate, an absolute `path` on every peer (with --tls-key-file)")
	fs.StringVar(&t.KeyFile, "tls-key-file", "", "PEM client key, an absolute `path` on every peer (with --tls-cert-file)")
	fs.StringVar(&t.ServerName, "tls-server-name", "", "`name` checked in the brokers' certificates (default: the broker address's host)")
	fs.BoolVar(&t.InsecureSkipVerify, "tls-insecure-skip-verify", false, "do not check the brokers' certificates (tests only)")
	fs.StringVar(&s.Mechanism, "sasl-mechanism", "", "SASL `mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
	fs.StringVar(&s.Username, "sasl-username", "", "SASL `user` name (PLAIN, SCRAM)")
	fs.StringVar(&s.PasswordFile, "sasl-password-file", "", "file holding the SASL password, an absolute `path` on every peer (PLAIN, SCRAM)")
	fs.StringVar(&s.TokenFile, "sasl-token-file", "", "file holding an OAUTHBEARER token (a JWT), an absolute `path` on every peer, re-read when it changes")
	fs.StringVar(&s.TokenEndpoint, "sasl-token-endpoint", "", "OAuth 2 token endpoint `URL` for the client-credentials grant (OAUTHBEARER)")
	fs.StringVar(&s.ClientID, "sasl-client-id", "", "OAuth 2 client `id` (with --sasl-token-endpoint)")
	fs.StringVar(&s.ClientSecretFile, "sasl-client-secret-file", "", "file holding the OAuth 2 client secret, an absolute `path` on every peer (with --sasl-token-endpoint)")
	fs.StringVar(&s.Scope, "sasl-scope", "", "OAuth 2 `scope` to ask for (with --sasl-token-endpoint)")
	var downAfter, upAfter time.Duration
	fs.DurationVar(&downAfter, "down-after", 0, "how long a majority of peers must see the cluster down before it fails over (default 10s)")
	fs.DurationVar(&upAfter, "up-after", 0, "how long it must be seen up again before it fails back (default 60s)")
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case len(c.Bootstrap) == 0:
		return nil, errors.New("--bootstrap is required")
	case (t.CertFile == "") != (t.KeyFile == ""):
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	case s.Mechanism == "" && s != (fsm.ClusterSASL{}):
		return nil, errors.New("the --sasl-* flags need --sasl-mechanism")
	case (s.Mechanism == fsm.SASLPlain || s.Mechanism == fsm.SASLScramSHA256 || s.Mechanism == fsm.SASLScramSHA512) && (s.Username == "" || s.PasswordFile == ""):
		return nil, errors.New("--sasl-mechanism " + s.Mechanism + " needs --sasl-username and --sasl-password-file")
	case s.Mechanism == fsm.SASLOAuthBearer && s.TokenFile == "" && (s.TokenEndpoint == "" || s.ClientID == "" || s.ClientSecretFile == ""):
		return nil, errors.New("--sasl-mechanism OAUTHBEARER needs --sasl-token-file, or --sasl-token-endpoint with --sasl-client-id and --sasl-client-secret-file")
	case downAfter < 0 || upAfter < 0 || (downAfter > 0 && downAfter < time.Millisecond) || (upAfter > 0 && upAfter < time.Millisecond):
		return nil, errors.New("--down-after and --up-after take a positive duration of at least 1ms, like 10s")
	}
	c.DownAfterMS, c.UpAfterMS = downAfter.Milliseconds(), upAfter.Milliseconds()
	if useTLS || t != (fsm.ClusterTLS{}) {
		c.TLS = &t
	}
	if s.Mechanism != "" {
		c.SASL = &s
	}
	name := pos[0]
	return &ctlCall{method: http.MethodPut, path: apiPath("/v1/clusters", name), body: c,
		show: confirm("cluster %s stored", name)}, nil
}

func parseClustersDelete(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = positional(pos, "NAME")
	}
	if err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodDelete, path: apiPath("/v1/clusters", pos[0]),
		show: confirm("cluster %s deleted", pos[0])}, nil
}

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

// --- rates ------------------------------------------------------------------

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

// --- API types and rendering ------------------------------------------------

// These mirror docs/admin-api.md. ctl decodes only what it shows; unknown
// fields in answers are ignored so a newer peer does not break an older ctl.

// apiCluster is a Cluster; as a PUT body it leaves name out (the path names
// the cluster) and every empty field.
type apiCluster struct {
	Name        string   `json:"name,omitempty"`
	Bootstrap   []string `json:"bootstrap"`
	Region      string   `json:"region,omitempty"`
	DownAfterMS int64    `json:"down_after_ms,omitempty"`
	UpAfterMS   int64    `json:"up_after_ms,omitempty"`
	// TLS and SASL towards the brokers; they name files, never secrets.
	TLS  *fsm.ClusterTLS  `json:"tls,omitempty"`
	SASL *fsm.ClusterSASL `json:"sasl,omitempty"`
}

type apiClusterList struct {
	Clusters []apiCluster `json:"clusters"`
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// dash shows an empty cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// idCell shows an id that may be null.
func idCell(id *int32) string {
	if id == nil {
		return "-"
	}
	return strconv.Itoa(int(*id))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
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

func renderPeers(w io.Writer, peers []adminapi.Peer) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tREGION\tKAFKA\tADMIN\tRAFT\tGOSSIP\tLIVE")
	for _, p := range peers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, dash(p.Name), dash(p.Region), dash(p.KafkaAddr),
			dash(p.AdminAddr), dash(p.Raft), dash(p.Gossip), yesNo(p.Live))
	}
	return tw.Flush()
}

func saslCell(c apiCluster) string {
	switch {
	case c.SASL == nil:
		return "-"
	case c.SASL.Username != "":
		return c.SASL.Mechanism + " (" + c.SASL.Username + ")"
	case c.SASL.ClientID != "":
		return c.SASL.Mechanism + " (client " + c.SASL.ClientID + ")"
	}
	return c.SASL.Mechanism
}

func renderClusters(w io.Writer, clusters []apiCluster) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tREGION\tBOOTSTRAP\tTLS\tSASL")
	for _, c := range clusters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, dash(c.Region), strings.Join(c.Bootstrap, ","), yesNo(c.TLS != nil), saslCell(c))
	}
	return tw.Flush()
}

// renderCluster shows one cluster with every field set.
func renderCluster(w io.Writer, c apiCluster) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "name:\t%s\n", c.Name)
	fmt.Fprintf(tw, "bootstrap:\t%s\n", strings.Join(c.Bootstrap, ","))
	fmt.Fprintf(tw, "region:\t%s\n", dash(c.Region))
	fmt.Fprintf(tw, "tls:\t%s\n", yesNo(c.TLS != nil))
	if t := c.TLS; t != nil {
		if t.CAFile == "" {
			fmt.Fprintf(tw, "tls ca file:\t(system roots)\n")
		}
		for _, f := range []struct{ k, v string }{
			{"tls server name", t.ServerName}, {"tls ca file", t.CAFile},
			{"tls cert file", t.CertFile}, {"tls key file", t.KeyFile},
		} {
			if f.v != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", f.k, f.v)
			}
		}
		if t.InsecureSkipVerify {
			fmt.Fprintf(tw, "tls insecure skip verify:\tyes\n")
		}
	}
	fmt.Fprintf(tw, "sasl:\t%s\n", saslCell(c))
	if s := c.SASL; s != nil {
		// File paths and the endpoint only: the secrets are in the files.
		for _, f := range []struct{ k, v string }{
			{"sasl password file", s.PasswordFile}, {"sasl token file", s.TokenFile},
			{"sasl token endpoint", s.TokenEndpoint}, {"sasl client secret file", s.ClientSecretFile}, {"sasl scope", s.Scope},
		} {
			if f.v != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", f.k, f.v)
			}
		}
	}
	if c.DownAfterMS != 0 || c.UpAfterMS != 0 {
		fmt.Fprintf(tw, "down after:\t%s\n", msOrDefault(c.DownAfterMS, "10s"))
		fmt.Fprintf(tw, "up after:\t%s\n", msOrDefault(c.UpAfterMS, "60s"))
	}
	return tw.Flush()
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
		return tw.Flush()
	}
	fmt.Fprintln(tw, "TOPIC\tCLUSTER\tMATCH\tRULE")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Topic, r.Cluster, dash(r.Match), dash(r.Rule))
	return tw.Flush()
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
