package node

import (
	"fmt"
	"os"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// checkClusterFiles checks, on the peer that receives PUT /v1/clusters/{name},
// that every file the cluster's TLS and SASL settings name exists, is a
// regular file and can be read, so a typo is a 400 with the path instead of
// a cluster that never connects. Every other peer reads the same paths when
// it connects; a file missing there shows in its log and in
// switchyard_backend_auth_failures_total{reason="secret"}. The contents are
// not read into the request (a secret never enters the log) beyond the
// check that the file opens.
func checkClusterFiles(c fsm.Cluster) error {
	var files []struct{ what, path string }
	if t := c.TLS; t != nil {
		files = append(files, []struct{ what, path string }{{"tls ca_file", t.CAFile}, {"tls cert_file", t.CertFile}, {"tls key_file", t.KeyFile}}...)
	}
	if s := c.SASL; s != nil {
		files = append(files, []struct{ what, path string }{{"sasl password_file", s.PasswordFile}, {"sasl token_file", s.TokenFile}, {"sasl client_secret_file", s.ClientSecretFile}}...)
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := readableFile(f.path); err != nil {
			return badRequest("cluster %q: %s %s: %v", c.Name, f.what, f.path, err)
		}
	}
	return nil
}

func readableFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return fmt.Errorf("no such file on this peer")
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("not a regular file")
	}
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("not readable by this peer: %w", err)
	}
	return fh.Close()
}
