package main

// ctl topics: GET /v1/topics, the topics a peer's backends hold with the
// cluster their route resolves to.

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

func parseTopicsList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var prefix optString
	fs.Var(&prefix, "prefix", "list only the topics whose name starts with `PREFIX`")
	limit := fs.Int("limit", adminapi.TopicsDefaultLimit, fmt.Sprintf("list at most `N` topics (1 to %d)", adminapi.TopicsMaxLimit))
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	if *limit < 1 || *limit > adminapi.TopicsMaxLimit {
		return nil, fmt.Errorf("--limit must be from 1 to %d, not %d", adminapi.TopicsMaxLimit, *limit)
	}
	call := getCall("/v1/topics", decoded(renderTopics))
	q := url.Values{}
	if prefix.set {
		q.Set("prefix", prefix.v)
	}
	if *limit != adminapi.TopicsDefaultLimit {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if len(q) > 0 {
		call.query = q
	}
	return call, nil
}

// renderTopics shows one topic a line; 0 partitions (unknown on the
// routed cluster) shows as "-".
func renderTopics(w io.Writer, l adminapi.TopicList) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tCLUSTER\tPARTITIONS\tPRESENT-ON\tMIGRATING")
	for _, t := range l.Topics {
		parts := "-"
		if t.Partitions > 0 {
			parts = strconv.Itoa(t.Partitions)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, dash(t.Cluster), parts, dash(strings.Join(t.PresentOn, ",")), yesNo(t.Migrating))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Truncated {
		_, err := fmt.Fprintf(w, "(more topics match: raise --limit or narrow --prefix)\n")
		return err
	}
	return nil
}
