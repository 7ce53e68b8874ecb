// Command verifier is the client of one site in the two-site container test
// (test/sites). It is a plain franz-go client pointed at its site's
// Switchyard peers, and it writes what it saw as JSON lines on stdout (the
// test reads them with docker logs), so the test can account for every
// record after the fact:
//
//	verifier produce -brokers h:p,... -topic T -site dc1 [-rate 20]
//	  writes records "dc1 <seq>" (seq from 1, key "dc1-<seq>") with the
//	  idempotent producer (acks=all, unlimited retries) and logs each
//	  acknowledgement: {"ev":"ack","src":"dc1","seq":N,"part":P,"off":O,"t":MS}
//	  and each failed record: {"ev":"err","src":"dc1","seq":N,"err":"...","t":MS}
//	verifier consume -brokers h:p,... -topic T -group G -site dc1
//	  reads in the consumer group and logs each record:
//	  {"ev":"rec","by":"dc1","src":"dc1","seq":N,"part":P,"off":O,"t":MS}
//
// t is the wall-clock time in Unix milliseconds when the client saw it.
// SIGTERM stops the program: a producer flushes what it buffered (bounded),
// a consumer commits what it logged.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Event is one JSON line of the verifier's output; the test decodes the
// same shape.
type Event struct {
	Ev   string `json:"ev"`
	By   string `json:"by,omitempty"`
	Src  string `json:"src"`
	Seq  int64  `json:"seq"`
	Part int32  `json:"part"`
	Off  int64  `json:"off"`
	T    int64  `json:"t"`
	Err  string `json:"err,omitempty"`
}

// out serializes the lines of concurrent promises and the main loop.
type out struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *out) log(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.enc.Encode(e)
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "produce" && os.Args[1] != "consume") {
		fmt.Fprintln(os.Stderr, "usage: verifier produce|consume -brokers h:p,... -topic T -site S [-group G] [-rate N]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	brokers := fs.String("brokers", "", "comma-separated Kafka addresses of the site's peers (required)")
	topic := fs.String("topic", "", "topic (required)")
	site := fs.String("site", "", "this client's site, written into each record (required)")
	group := fs.String("group", "", "consumer group (consume)")
	rate := fs.Int("rate", 20, "records per second (produce; 1..1000)")
	fs.Parse(os.Args[2:])
	if *brokers == "" || *topic == "" || *site == "" || (mode == "consume" && *group == "") {
		fmt.Fprintln(os.Stderr, "verifier: -brokers, -topic, -site (and -group to consume) are required")
		os.Exit(2)
	}
	if *rate < 1 || *rate > 1000 {
		fmt.Fprintln(os.Stderr, "verifier: -rate must be 1..1000")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	o := &out{enc: json.NewEncoder(os.Stdout)}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ClientID("verifier-" + *site),
		// The client's own account (group sessions, resets) on stderr,
		// beside the events on stdout: test/sites reads only the JSON
		// lines, and a failure's container log shows both.
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return time.Now().UTC().Format("15:04:05.000 ") })),
	}
	var err error
	if mode == "produce" {
		err = produce(ctx, o, opts, *topic, *site, *rate)
	} else {
		err = consume(ctx, o, opts, *topic, *site, *group)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifier:", err)
		os.Exit(1)
	}
}

func produce(ctx context.Context, o *out, opts []kgo.Opt, topic, site string, rate int) error {
	cl, err := kgo.NewClient(append(opts,
		kgo.DefaultProduceTopic(topic),
		// Bounded: while the site's cluster is down the producer blocks
		// instead of buffering without limit.
		kgo.MaxBufferedRecords(2000),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for seq := int64(1); ; seq++ {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return cl.Flush(fctx)
		case <-tick.C:
		}
		r := &kgo.Record{Key: []byte(site + "-" + strconv.FormatInt(seq, 10)), Value: []byte(site + " " + strconv.FormatInt(seq, 10))}
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			e := Event{Src: site, Seq: seqOf(r), T: time.Now().UnixMilli()}
			if err != nil {
				e.Ev, e.Err = "err", err.Error()
			} else {
				e.Ev, e.Part, e.Off = "ack", r.Partition, r.Offset
			}
			o.log(e)
		})
	}
}

func consume(ctx context.Context, o *out, opts []kgo.Opt, topic, site, group string) error {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return cl.CommitUncommittedOffsets(cctx)
		}
		fs.EachError(func(t string, p int32, err error) {
			o.log(Event{Ev: "fetch-err", By: site, Part: p, Err: err.Error(), T: time.Now().UnixMilli()})
		})
		now := time.Now().UnixMilli()
		fs.EachRecord(func(r *kgo.Record) {
			src, seq := parseValue(r.Value)
			o.log(Event{Ev: "rec", By: site, Src: src, Seq: seq, Part: r.Partition, Off: r.Offset, T: now})
		})
	}
}

// seqOf reads the sequence number back from a record's value.
func seqOf(r *kgo.Record) int64 {
	_, seq := parseValue(r.Value)
	return seq
}

// parseValue splits "<site> <seq>"; a record of another shape gives seq -1.
func parseValue(v []byte) (string, int64) {
	src, n, ok := strings.Cut(string(v), " ")
	if !ok {
		return string(v), -1
	}
	seq, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		return src, -1
	}
	return src, seq
}
