package compat

// kafka-python (Debian package python3-kafka, 2.0.2) run as an external
// process (testdata/pyclient.py) against the in-process sandbox.

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pythonPath is the interpreter Debian's python3-kafka is installed for; a
// python3 earlier on PATH (pyenv, venv) may lack it.
const pythonPath = "/usr/bin/python3"

// runPyclient runs testdata/pyclient.py with args, bounded by timeout, and
// returns its stdout and stderr. Stderr (kafka-python's INFO log) is logged
// when the test fails.
func runPyclient(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string) {
	t.Helper()
	py := needCommand(t, pythonPath)
	script, err := filepath.Abs(filepath.Join("testdata", "pyclient.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{script}, args...)...)
	cmd.Env = append(cmd.Environ(), "PYTHONUNBUFFERED=1", "PYCLIENT_LOG=INFO")
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pyclient %s stderr:\n%s", args[0], errOut.String())
		}
	})
	if err != nil {
		t.Fatalf("pyclient %s: %v (context: %v)", args[0], err, ctx.Err())
	}
	// The point of running without api_version: the client must have
	// probed the proxy and settled on a version.
	if !strings.Contains(errOut.String(), "Broker version identified as") {
		t.Errorf("pyclient %s: no broker version detection in its log", args[0])
	}
	return out.String(), errOut.String()
}

// TestPythonProduceConsumeGroup produces with kafka-python through peer 0
// and consumes in a consumer group through peer 2, committing
// synchronously, with broker version auto-detection (no api_version).
func TestPythonProduceConsumeGroup(t *testing.T) {
	sb := startSandbox(t)
	const topic, group = "python-compat", "python-compat-group"
	createTopic(t, sb.Bootstrap, topic, numPartitions)

	_, prodLog := runPyclient(t, 45*time.Second, "produce", sb.Bootstrap[0], topic, strconv.Itoa(numRecords))
	out, _ := runPyclient(t, 45*time.Second, "consume", sb.Bootstrap[2], topic, group, strconv.Itoa(numRecords), "35")
	if i := strings.Index(prodLog, "Broker version identified as"); i >= 0 {
		t.Log("kafka-python: " + strings.SplitN(prodLog[i:], "\n", 2)[0])
	}

	var recs []consumed
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		r, ok := parseTabRecord(line)
		if !ok {
			t.Errorf("unparsable pyclient line %q", line)
			continue
		}
		recs = append(recs, r)
	}
	checkConsumed(t, recs, numRecords)
	checkBackend(t, sb, topic, group, numRecords)
}
