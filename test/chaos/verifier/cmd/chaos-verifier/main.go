// Command chaos-verifier runs the verifier's clients against any Kafka
// bootstrap address (a `switchyard dev` sandbox, a deployment, a backend
// directly) while an operator injects faults by hand, then prints the
// verifier's report. It is a test tool, not part of the switchyard binary.
//
//	go run ./test/chaos/verifier/cmd/chaos-verifier -bootstrap 127.0.0.1:19092 -duration 60s
//
// The topic must exist (or the brokers auto-create it). Stalls are
// measured from the end of the warm-up (the first -warmup of traffic) to
// the end of traffic; Ctrl-C ends traffic early.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/test/chaos/verifier"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos-verifier:", err)
		os.Exit(1)
	}
}

func run() error {
	bootstrap := flag.String("bootstrap", "127.0.0.1:19092", "bootstrap addresses, comma-separated")
	topic := flag.String("topic", "chaos-verifier", "topic the records go to")
	group := flag.String("group", "", "consumer group (default: chaos-verifier-<unix time>, a new one per run)")
	rate := flag.Int("rate", 100, "records per second per producer")
	members := flag.Int("members", 2, "consumer group members")
	rdk := flag.Bool("rdk", true, "run the librdkafka producer too (needs /usr/bin/python3 with confluent_kafka)")
	duration := flag.Duration("duration", time.Minute, "how long the producers run")
	warmup := flag.Duration("warmup", 5*time.Second, "traffic before stalls are counted")
	drain := flag.Duration("drain", 90*time.Second, "how long to wait for the group to get every acknowledged record")
	flag.Parse()
	if *rate < 1 || *members < 1 || *duration <= *warmup {
		return errors.New("want -rate ≥ 1, -members ≥ 1 and -duration longer than -warmup")
	}
	boot := strings.Split(*bootstrap, ",")
	if *group == "" {
		*group = fmt.Sprintf("chaos-verifier-%d", time.Now().Unix())
	}
	log := verifier.NewLog()
	var ms []*verifier.Member
	for i := range *members {
		m, err := verifier.StartMember(boot, *topic, *group, fmt.Sprintf("member-%d", i), log)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	var ps []verifier.Producer
	kp, err := verifier.StartKgo(boot, *topic, "kgo", *rate, log)
	if err != nil {
		return err
	}
	ps = append(ps, kp)
	if *rdk {
		rp, err := verifier.StartRdk(boot, *topic, "rdk", *rate, log)
		if err != nil {
			return err
		}
		ps = append(ps, rp)
	}
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	fmt.Printf("producing to %s at %d records/s per producer, group %s; inject faults now\n", *topic, *rate, *group)
	select {
	case <-sig.Done():
	case <-time.After(*duration):
	}
	stoppedAt := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	for _, p := range ps {
		if err := p.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), *drain)
	if err := log.WaitDelivered(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "drain:", err)
	}
	cancel()
	for _, m := range ms {
		m.Stop()
	}
	r := verifier.Analyze(log, start.Add(*warmup), stoppedAt)
	fmt.Println(r)
	notes, n := log.Notes()
	if n > 0 {
		fmt.Printf("%d client events; first %d:\n%s\n", n, min(len(notes), 20), strings.Join(notes[:min(len(notes), 20)], "\n"))
	}
	if r.Lost > 0 {
		return fmt.Errorf("%d acknowledged records lost", r.Lost)
	}
	return nil
}
