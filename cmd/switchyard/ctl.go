package main

// switchyard ctl: the command-line client of the admin HTTP API
// (docs/admin-api.md, docs/openapi.yaml). Parsing is pure: a command line
// becomes a ctlOptions and one ctlCall (method, path, query, body and how to
// show the answer) before anything touches the network, so every command's
// flags are unit-tested without a server. ctlClient.do is the only place that
// speaks HTTP.
//
// This file is the framework: global options, the client, the command
// table, usage and the helpers every command shares. Each command family
// has its own file (ctl_status.go, ctl_peers.go, ctl_clusters.go,
// ctl_topics.go, ctl_routes.go, ctl_quotas.go, ctl_migrations.go,
// ctl_regions.go, ctl_acls.go, ctl_groups.go, ctl_top.go, ctl_failover.go,
// ctl_users.go, ctl_snapshot.go); the wire types they send and read are
// internal/adminapi's, shared with node's handlers.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
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
// do sends one request and decodes its answer into out. A read (GET)
// answered 503 (the peers are electing a leader, or the leader is moving)
// is sent again, backing off, until it is answered or ctl's --timeout
// ends; a write is never repeated here: its outcome may be unknown.
func (c *ctlClient) do(method, path string, query url.Values, body, out any) (index string, err error) {
	backoff := 100 * time.Millisecond
	for {
		index, err = c.doOnce(method, path, query, body, out)
		var ae *ctlAPIError
		if method != http.MethodGet || !errors.As(err, &ae) || ae.status != http.StatusServiceUnavailable {
			return index, err
		}
		select {
		case <-c.ctx.Done():
			return index, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *ctlClient) doOnce(method, path string, query url.Values, body, out any) (index string, err error) {
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
	fs.DurationVar(&opts.timeout, "timeout", opts.timeout, "time allowed for the whole command (0: none); a read answered 503 (a leader election) is asked again within it")
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

// --- shared helpers of the commands -------------------------------------------

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

// --- tables -------------------------------------------------------------------

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// dash shows an empty cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
