package main

// ctl acls (issue 12, docs/security.md): add, list and delete the proxy's
// authorization rules with Kafka's words, over /v1/acls.
//
//	acls add --principal User:alice --resource-type topic --resource-name orders
//	         [--pattern prefixed] --operation write [--permission deny] [--host IP]
//	acls list   [--principal P] [--resource-type T] [--resource-name N] [--pattern P] [--operation O] [--permission P] [--host H]
//	acls delete (the same filters; at least one)

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// defineACLFlags defines the rule's fields as flags on fs.
func defineACLFlags(fs *flag.FlagSet, a *adminapi.ACL, filter bool) {
	anyNote := ""
	if filter {
		anyNote = "; empty: any"
	}
	fs.StringVar(&a.Principal, "principal", "", "the principal, `User:NAME` or User:*"+anyNote)
	fs.StringVar(&a.Host, "host", "", "the client address, `IP` or * (default *)"+anyNote)
	fs.StringVar(&a.ResourceType, "resource-type", "", "`TYPE`: topic, group, transactional_id or cluster"+anyNote)
	fs.StringVar(&a.ResourceName, "resource-name", "", "the resource's `NAME` (a topic, group or transactional id; * for all; kafka-cluster for the cluster)"+anyNote)
	fs.StringVar(&a.Pattern, "pattern", "", "`PATTERN`: literal (default) or prefixed"+map[bool]string{true: "; any, or match (rules that apply to --resource-name)", false: ""}[filter])
	fs.StringVar(&a.Operation, "operation", "", "`OP`: all, read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write"+anyNote)
	fs.StringVar(&a.Permission, "permission", "", "allow (default) or deny"+anyNote)
}

func parseACLsAdd(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var a adminapi.ACL
	defineACLFlags(fs, &a, false)
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"--principal", a.Principal}, {"--resource-type", a.ResourceType},
		{"--resource-name", a.ResourceName}, {"--operation", a.Operation}} {
		if f.v == "" {
			return nil, fmt.Errorf("missing %s", f.name)
		}
	}
	return &ctlCall{method: http.MethodPost, path: "/v1/acls", body: adminapi.ACLsBody{ACL: a}, show: decoded(renderACLs("added"))}, nil
}

// aclQuery is the filter flags as /v1/acls query parameters.
func aclQuery(a adminapi.ACL) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"principal": a.Principal, "host": a.Host, "resource_type": a.ResourceType,
		"resource_name": a.ResourceName, "pattern": a.Pattern, "operation": a.Operation, "permission": a.Permission} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func parseACLsList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var a adminapi.ACL
	defineACLFlags(fs, &a, true)
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	call := getCall("/v1/acls", decoded(renderACLs("")))
	if q := aclQuery(a); len(q) > 0 {
		call.query = q
	}
	return call, nil
}

func parseACLsDelete(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var a adminapi.ACL
	defineACLFlags(fs, &a, true)
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	q := aclQuery(a)
	if len(q) == 0 {
		return nil, errors.New("give at least one filter (--resource-type any deletes every rule)")
	}
	return &ctlCall{method: http.MethodDelete, path: "/v1/acls", query: q, show: decoded(renderACLs("deleted"))}, nil
}

// renderACLs prints rules as a table, after "N rules VERB" for a write.
func renderACLs(verb string) func(io.Writer, []fsm.ACL) error {
	return func(w io.Writer, acls []fsm.ACL) error {
		if verb != "" {
			fmt.Fprintf(w, "%d rules %s\n", len(acls), verb)
		} else if len(acls) == 0 {
			_, err := fmt.Fprintln(w, "no acls")
			return err
		}
		if len(acls) == 0 {
			return nil
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "PRINCIPAL\tHOST\tRESOURCE_TYPE\tPATTERN\tRESOURCE_NAME\tOPERATION\tPERMISSION")
		for _, a := range acls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, dash(a.Host), a.ResourceType, dash(a.Pattern), a.ResourceName, a.Operation, dash(a.Permission))
		}
		return tw.Flush()
	}
}
