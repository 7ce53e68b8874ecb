// Package serveproc runs `switchyard serve` as real processes for the
// tests that need them (a peer killed with SIGKILL, restarted on the same
// addresses): it builds the binary once per test binary and starts, stops
// and keeps the output of each process. It holds test support only.
package serveproc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Builder builds cmd/switchyard once, on first use; a test package makes
// one in TestMain and calls Close after m.Run.
type Builder struct {
	race bool
	once sync.Once
	dir  string
	path string
	err  error
}

// NewBuilder returns a builder; race builds with the race detector.
func NewBuilder(race bool) *Builder { return &Builder{race: race} }

// Build builds the binary now (TestMain may, so that no test's time
// counts the build) and reports the build's error.
func (b *Builder) Build() error {
	b.once.Do(b.build)
	return b.err
}

// Path builds the binary the first time and returns its path, failing t
// when the build fails. The caller's working directory must be a package
// two levels below the module root (test/NAME), as every test package
// that runs processes is.
func (b *Builder) Path(t testing.TB) string {
	t.Helper()
	if err := b.Build(); err != nil {
		t.Fatal(err)
	}
	return b.path
}

func (b *Builder) build() {
	if b.dir, b.err = os.MkdirTemp("", "switchyard-bin-"); b.err != nil {
		return
	}
	b.path = filepath.Join(b.dir, "switchyard")
	args := []string{"build", "-o", b.path}
	if b.race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../../cmd/switchyard")...).CombinedOutput()
	if err != nil {
		b.err = fmt.Errorf("go build ./cmd/switchyard: %v\n%s", err, out)
	}
}

// Close removes the built binary.
func (b *Builder) Close() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// Proc is one `switchyard serve` process with fixed addresses, so that it
// can be stopped and started again as the same peer.
type Proc struct {
	Name         string
	Args         []string
	Kafka, Admin string
	// Out, when set, receives the output instead of the process's own
	// buffer (Output then reports nothing).
	Out interface{ Write([]byte) (int, error) }

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    bytes.Buffer
	exited chan struct{}
}

// Start starts the process from binary bin.
func (p *Proc) Start(t testing.TB, bin string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(bin, p.Args...)
	var out interface{ Write([]byte) (int, error) } = lockedBuffer{&p.mu, &p.log}
	if p.Out != nil {
		out = p.Out
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(p.exited)
}

// Stop sends sig and waits for the process to exit (killing it after 20
// seconds, which fails t).
func (p *Proc) Stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Errorf("%s did not stop on %v", p.Name, sig)
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
}

// Output is what the process wrote to its own buffer so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// lockedBuffer writes into the process's buffer under its lock.
type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuffer) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}
