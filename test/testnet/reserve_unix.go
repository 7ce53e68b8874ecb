//go:build unix

package testnet

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// reservation is how long a handed-out port stays reserved: longer than
// any one test package runs (make test's timeout is 15 minutes).
const reservation = 20 * time.Minute

// reserve records port p in the machine-wide reservation file, under an
// exclusive lock, and reports false when another reservation holds it.
// When the file cannot be used, it reserves nothing and says yes: the
// free-port check alone is what tests had before.
func reserve(p int) bool {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "switchyard-testnet-ports"), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return true
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return true
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	now := time.Now()
	var keep []string
	taken := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		port, at, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		sec, err := strconv.ParseInt(at, 10, 64)
		if err != nil || now.Sub(time.Unix(sec, 0)) > reservation {
			continue
		}
		if port == strconv.Itoa(p) {
			taken = true
		}
		keep = append(keep, sc.Text())
	}
	if taken {
		return false
	}
	keep = append(keep, fmt.Sprintf("%d %d", p, now.Unix()))
	if err := f.Truncate(0); err != nil {
		return true
	}
	if _, err := f.WriteAt([]byte(strings.Join(keep, "\n")+"\n"), 0); err != nil {
		return true
	}
	return true
}
