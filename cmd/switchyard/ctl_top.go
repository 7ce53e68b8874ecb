package main

// ctl top: a live view of the busiest topics and clients across every peer,
// from the peers' own /metrics (the byte counters the data plane keeps), as
// rates between two scrapes.

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// topMaxScrapeBytes bounds one peer's /metrics answer.
const topMaxScrapeBytes = 32 << 20

type topOptions struct {
	interval time.Duration
	rows     int
	once     bool
}

func parseTop(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var o topOptions
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "time between two samples")
	fs.IntVar(&o.rows, "rows", 10, "rows per table")
	fs.BoolVar(&o.once, "once", false, "print one sample and stop (for scripts)")
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	if o.interval < 100*time.Millisecond {
		return nil, fmt.Errorf("--interval %s is too short (100ms at least)", o.interval)
	}
	if o.rows <= 0 {
		return nil, fmt.Errorf("--rows must be positive")
	}
	call := getCall("/v1/peers", nil)
	call.show = func(io.Writer, []byte, string) error { return nil }
	call.follow = func(c *ctlClient, raw []byte, stdout io.Writer, asJSON bool) error {
		return runTop(c, raw, stdout, o)
	}
	return call, nil
}

// topSample is the counters of one scrape of every peer, summed over peers:
// bytes by topic and direction, by client and direction.
type topSample struct {
	at      time.Time
	topics  map[[2]string]float64 // topic, direction
	clients map[[3]string]float64 // client id, principal, direction
	peers   int
}

func runTop(c *ctlClient, peersRaw []byte, stdout io.Writer, o topOptions) error {
	var peers struct {
		Peers []struct {
			Name      string `json:"name"`
			AdminAddr string `json:"admin_addr"`
			Live      bool   `json:"live"`
		} `json:"peers"`
	}
	if err := json.Unmarshal(peersRaw, &peers); err != nil {
		return fmt.Errorf("peers answer: %w", err)
	}
	base, err := url.Parse(c.base)
	if err != nil {
		return err
	}
	var targets []string
	for _, p := range peers.Peers {
		if p.Live && p.AdminAddr != "" {
			targets = append(targets, (&url.URL{Scheme: base.Scheme, Host: p.AdminAddr, Path: "/metrics"}).String())
		}
	}
	if len(targets) == 0 { // a peer without an admin address in the table: this one
		targets = append(targets, strings.TrimSuffix(c.base, "/")+"/metrics")
	}
	prev, err := scrapeAll(c.http, targets)
	if err != nil {
		return err
	}
	for {
		time.Sleep(o.interval)
		cur, err := scrapeAll(c.http, targets)
		if err != nil {
			return err
		}
		if !o.once {
			fmt.Fprint(stdout, "\033[H\033[2J") // clear the terminal
		}
		printTop(stdout, prev, cur, o.rows)
		if o.once {
			return nil
		}
		prev = cur
	}
}

func scrapeAll(hc *http.Client, targets []string) (*topSample, error) {
	s := &topSample{at: time.Now(), topics: map[[2]string]float64{}, clients: map[[3]string]float64{}}
	for _, t := range targets {
		mfs, err := scrape(hc, t)
		if err != nil {
			return nil, err
		}
		s.peers++
		addTop(s, mfs)
	}
	return s, nil
}

func scrape(hc *http.Client, target string) (map[string]*dto.MetricFamily, error) {
	resp, err := hc.Get(target)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", target, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, topMaxScrapeBytes))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", target, err)
	}
	return mfs, nil
}

// addTop adds the byte counters of one peer's metric families to s.
func addTop(s *topSample, mfs map[string]*dto.MetricFamily) {
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	if mf := mfs["switchyard_kafka_topic_bytes_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			s.topics[[2]string{label(m, "topic"), label(m, "direction")}] += m.GetCounter().GetValue()
		}
	}
	if mf := mfs["switchyard_kafka_client_bytes_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			s.clients[[3]string{label(m, "client_id"), label(m, "principal"), label(m, "direction")}] += m.GetCounter().GetValue()
		}
	}
}

// printTop prints the busiest topics and clients between two samples, in
// bytes per second.
func printTop(w io.Writer, prev, cur *topSample, rows int) {
	secs := cur.at.Sub(prev.at).Seconds()
	type row struct {
		cells []string
		in    float64
		out   float64
	}
	rate := func(now, before float64) float64 {
		if now < before { // a peer restarted: its counters began again
			return now / secs
		}
		return (now - before) / secs
	}
	var topics []row
	byTopic := map[string]*row{}
	for k, v := range cur.topics {
		r := byTopic[k[0]]
		if r == nil {
			r = &row{cells: []string{k[0]}}
			byTopic[k[0]] = r
		}
		if k[1] == "produce" {
			r.in += rate(v, prev.topics[k])
		} else {
			r.out += rate(v, prev.topics[k])
		}
	}
	for _, r := range byTopic {
		topics = append(topics, *r)
	}
	var clients []row
	byClient := map[[2]string]*row{}
	for k, v := range cur.clients {
		ck := [2]string{k[0], k[1]}
		r := byClient[ck]
		if r == nil {
			r = &row{cells: []string{k[0], k[1]}}
			byClient[ck] = r
		}
		if k[2] == "in" {
			r.in += rate(v, prev.clients[k])
		} else {
			r.out += rate(v, prev.clients[k])
		}
	}
	for _, r := range byClient {
		clients = append(clients, *r)
	}
	busiest := func(rs []row) []row {
		slices.SortFunc(rs, func(a, b row) int {
			return cmp.Or(cmp.Compare(b.in+b.out, a.in+a.out), strings.Compare(strings.Join(a.cells, " "), strings.Join(b.cells, " ")))
		})
		return rs[:min(len(rs), rows)]
	}
	fmt.Fprintf(w, "switchyard top: %d peers, %s\n\n", cur.peers, cur.at.Format("15:04:05"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPRODUCE/s\tFETCH/s")
	for _, r := range busiest(topics) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.cells[0], humanBytes(r.in), humanBytes(r.out))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tPRINCIPAL\tIN/s\tOUT/s")
	for _, r := range busiest(clients) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.cells[0], r.cells[1], humanBytes(r.in), humanBytes(r.out))
	}
	tw.Flush()
}

// humanBytes is n bytes in B, KiB, MiB or GiB with one decimal.
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
