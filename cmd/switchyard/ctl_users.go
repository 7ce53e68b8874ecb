package main

// ctl users (issue 12, docs/security.md): the Kafka listener's SASL users.
// users set NAME --mechanism M --password-file F [--iterations N] reads the
// password from a file (never from the command line, where ps and shell
// history would show it) and sends it once to the admin API, which salts
// it; users list and users delete NAME [--mechanism M].

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// maxPasswordFileBytes bounds what users set reads: the API takes at most
// 1024 bytes of password, plus a line ending.
const maxPasswordFileBytes = 1024 + 2

func parseUsersList(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	if err := noArgs(fs, args); err != nil {
		return nil, err
	}
	return getCall("/v1/users", decoded(renderUsers)), nil
}

func parseUsersSet(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var b adminapi.UserBody
	var file string
	fs.StringVar(&b.Mechanism, "mechanism", "", "SASL `mechanism`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (required)")
	fs.StringVar(&file, "password-file", "", "`file` holding the password (one trailing line ending is dropped; required)")
	fs.IntVar(&b.Iterations, "iterations", 0, "PBKDF2 `iterations`, 4096 to 16384 (default 8192)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if err := positional(pos, "NAME"); err != nil {
		return nil, err
	}
	switch b.Mechanism {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	case "":
		return nil, errors.New("--mechanism is required: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	default:
		return nil, fmt.Errorf("--mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", b.Mechanism)
	}
	if file == "" {
		return nil, errors.New("--password-file is required (a password is never taken from the command line)")
	}
	if b.Password, err = readPasswordFile(file); err != nil {
		return nil, err
	}
	return &ctlCall{method: http.MethodPut, path: apiPath("/v1/users", pos[0]), body: b,
		show: confirm("user %s: %s credential set", pos[0], b.Mechanism)}, nil
}

// readPasswordFile reads a password: the file's bytes without one trailing
// "\n" or "\r\n" (what an editor or echo adds); other white space is part
// of the password.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	if len(b) > maxPasswordFileBytes {
		return "", fmt.Errorf("password file %s is over 1024 bytes", path)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return s, nil
}

func parseUsersDelete(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	var mechanism string
	fs.StringVar(&mechanism, "mechanism", "", "delete only this `mechanism`'s credential (the user goes with its last)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if err := positional(pos, "NAME"); err != nil {
		return nil, err
	}
	call := &ctlCall{method: http.MethodDelete, path: apiPath("/v1/users", pos[0]),
		show: confirm("user %s deleted", pos[0])}
	if mechanism != "" {
		call.query = url.Values{"mechanism": {mechanism}}
		call.show = confirm("user %s: %s credential deleted", pos[0], mechanism)
	}
	return call, nil
}

func renderUsers(w io.Writer, v adminapi.UserList) error {
	if len(v.Users) == 0 {
		_, err := fmt.Fprintln(w, "no users")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tMECHANISMS")
	for _, u := range v.Users {
		var m []string
		for _, c := range u.Mechanisms {
			m = append(m, fmt.Sprintf("%s(%d)", c.Mechanism, c.Iterations))
		}
		fmt.Fprintf(tw, "%s\t%s\n", u.Name, dash(strings.Join(m, ",")))
	}
	return tw.Flush()
}
