// Command franzold is franz-go at an older module version (see go.mod) for
// Switchyard's client-version matrix (test/compat/matrix_test.go). Two
// versions of one module cannot be linked into one test binary, so the
// test builds this program with `go build` and runs it as a process.
//
//	franzold produce BOOTSTRAP TOPIC FROM TO
//	    writes records FROM..TO-1 in order (key "key-<i%97>", value "%08d"
//	    of i, the formulas of recordKey/recordValue in helpers_test.go)
//	    with an idempotent acks=all producer hashing keys to partitions.
//	franzold consume BOOTSTRAP TOPIC GROUP N TIMEOUT
//	    one consumer group member, from the earliest offset when the group
//	    has no commit, until N records were seen; the offsets of every
//	    poll are committed synchronously before the next, then the member
//	    leaves the group and prints "partition<TAB>offset<TAB>key<TAB>value"
//	    per record.
//
// Both print "franz-go <version>" (the linked module's) to stderr first,
// so the test can check which version it ran. Exit status is non-zero on
// any error or when TIMEOUT (a Go duration) passes first.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "franzold:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fmt.Fprintln(os.Stderr, "franz-go", franzVersion())
	switch {
	case len(args) == 5 && args[0] == "produce":
		from, err1 := strconv.Atoi(args[3])
		to, err2 := strconv.Atoi(args[4])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return produce(strings.Split(args[1], ","), args[2], from, to)
	case len(args) == 6 && args[0] == "consume":
		n, err1 := strconv.Atoi(args[4])
		timeout, err2 := time.ParseDuration(args[5])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return consume(strings.Split(args[1], ","), args[2], args[3], n, timeout)
	}
	return errors.New("usage: franzold produce BOOTSTRAP TOPIC FROM TO | consume BOOTSTRAP TOPIC GROUP N TIMEOUT")
}

// franzVersion is the franz-go module version linked in.
func franzVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/twmb/franz-go" {
				return m.Version
			}
		}
	}
	return "unknown"
}

func produce(bootstrap []string, topic string, from, to int) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := from; i < to; i++ {
		wg.Add(1)
		r := &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", i%97)), Value: []byte(fmt.Sprintf("%08d", i))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("produce: %w", first)
	}
	fmt.Fprintf(os.Stderr, "produced %d\n", to-from)
	return nil
}

func consume(bootstrap []string, topic, group string, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return err
	}
	var lines []string
	for len(lines) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			cl.Close()
			return fmt.Errorf("timed out after %v with %d of %d records", timeout, len(lines), n)
		}
		fs.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", t, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			lines = append(lines, fmt.Sprintf("%d\t%d\t%s\t%s\n", r.Partition, r.Offset, r.Key, r.Value))
		})
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			cl.Close()
			return fmt.Errorf("commit: %w", err)
		}
	}
	cl.Close() // leaves the group
	w := bufio.NewWriter(os.Stdout)
	for _, l := range lines {
		w.WriteString(l)
	}
	return w.Flush()
}
