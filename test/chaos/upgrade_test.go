package chaos

// The rolling-upgrade case: peers start on the previous release's binary
// and are replaced one at a time by the binary under test while clients
// run. The previous release is, in order:
//
//  1. SWITCHYARD_UPGRADE_FROM, any commit-ish git understands (HEAD~3, a
//     tag, a hash);
//  2. the last tag (`git describe --tags --abbrev=0`);
//  3. the merge-base of HEAD with main (origin/main when there is no local
//     main): on a branch, the main it started from; on main itself, where
//     that is HEAD, HEAD's first parent (the previous landed change).
//
// It is built from `git archive` of that commit into a temp dir (the
// checkout is not touched), with -trimpath so that the build cache serves
// every package the two commits share.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var previous struct {
	once      sync.Once
	bin, desc string
	err       error
	dir       string
}

func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", &gitError{args: args, stderr: string(ee.Stderr), err: err}
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	return "git " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

// previousCommit resolves the commit to upgrade from and says why.
func previousCommit() (sha, why string, err error) {
	from, why := os.Getenv("SWITCHYARD_UPGRADE_FROM"), "SWITCHYARD_UPGRADE_FROM"
	if from == "" {
		if tag, err := git("describe", "--tags", "--abbrev=0"); err == nil && tag != "" {
			from, why = tag, "the last tag"
		}
	}
	if from == "" {
		head, err := git("rev-parse", "HEAD")
		if err != nil {
			return "", "", err
		}
		for _, m := range []string{"main", "origin/main"} {
			if mb, err := git("merge-base", "HEAD", m); err == nil && mb != "" {
				from, why = mb, "the merge-base of HEAD and "+m
				break
			}
		}
		if from == "" || from == head {
			from, why = "HEAD^1", "HEAD's first parent (HEAD is on main)"
		}
	}
	sha, err = git("rev-parse", "--verify", from+"^{commit}")
	if err != nil {
		return "", "", err
	}
	return sha, why, nil
}

// previousBinary builds the previous release's switchyard once per run.
func previousBinary(t *testing.T) (string, string) {
	t.Helper()
	previous.once.Do(func() {
		sha, why, err := previousCommit()
		if err != nil {
			previous.err = err
			return
		}
		dir, err := os.MkdirTemp("", "switchyard-previous-")
		if err != nil {
			previous.err = err
			return
		}
		previous.dir = dir
		src := filepath.Join(dir, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			previous.err = err
			return
		}
		top, err := git("rev-parse", "--show-toplevel")
		if err != nil {
			previous.err = err
			return
		}
		// From the top: in a subdirectory git archive takes only that subtree.
		tar := filepath.Join(dir, "src.tar")
		if _, err := git("-C", top, "archive", "--format=tar", "-o", tar, sha); err != nil {
			previous.err = err
			return
		}
		if out, err := exec.Command("tar", "-xf", tar, "-C", src).CombinedOutput(); err != nil {
			previous.err = &gitError{args: []string{"(tar -xf)"}, stderr: string(out), err: err}
			return
		}
		bin := filepath.Join(dir, "switchyard-previous")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=previous-"+sha[:12], "-o", bin, "./cmd/switchyard")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			previous.err = &gitError{args: []string{"(go build of " + sha + ")"}, stderr: string(out), err: err}
			return
		}
		previous.bin, previous.desc = bin, sha[:12]+" ("+why+")"
	})
	if previous.err != nil {
		t.Fatalf("build the previous release: %v", previous.err)
	}
	return previous.bin, previous.desc
}

// TestFaultRollingUpgrade: three peers on the previous release's binary,
// each in turn stopped (SIGTERM) and started with the binary under test,
// waited for (/readyz), while clients run.
func TestFaultRollingUpgrade(t *testing.T) {
	needChaos(t)
	old, desc := previousBinary(t)
	t.Logf("upgrading from %s", desc)
	runFault(t, faultCase{peers: 3, peerBin: old, storedTwiceOK: acrossPeers, fault: func(t *testing.T, c *procCluster) {
		for i := range c.peers {
			c.peers[i].Stop(t, syscall.SIGTERM)
			t.Logf("%s stopped (previous release)", c.peers[i].Name)
			time.Sleep(time.Second)
			c.restartWith(i, c.bin)
			time.Sleep(2 * time.Second)
		}
	}})
}
