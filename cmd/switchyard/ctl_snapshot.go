package main

// ctl snapshot save|restore: backup and restore of the replicated state
// through /v1/snapshot (docs/operations.md, "Backup and restore"). Both
// need a token with the admin role.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// ctlMaxSnapshotBytes bounds a backup ctl reads or sends; it matches the
// peers' cap on POST /v1/snapshot (node.MaxSnapshotBytes).
const ctlMaxSnapshotBytes = 256 << 20

// snapshotSummary is what save and restore print.
type snapshotSummary struct {
	File      string `json:"file"`
	Bytes     int    `json:"bytes"`
	Index     uint64 `json:"index"`
	ClusterID string `json:"cluster_id"`
	Clusters  int    `json:"clusters"`
	Routes    int    `json:"routes"`
	Quotas    int    `json:"quotas"`
	Users     int    `json:"users"`
	ACLs      int    `json:"acls"`
	Regions   int    `json:"regions"`
	Jobs      int    `json:"jobs"`
	Peers     int    `json:"peers"`
	// RestoredIndex is the index the restore was installed at (restore only).
	RestoredIndex uint64 `json:"restored_index,omitempty"`
}

func summarize(file string, size int, st *fsm.State) snapshotSummary {
	return snapshotSummary{
		File: file, Bytes: size, Index: st.Index, ClusterID: st.ClusterID,
		Clusters: len(st.Clusters), Routes: len(st.Routes.Topics) + len(st.Routes.Prefixes) + len(st.Routes.GroupPrefixes),
		Quotas: len(st.Quotas), Users: len(st.Users), ACLs: len(st.ACLs), Regions: len(st.Regions),
		Jobs: len(st.Jobs), Peers: len(st.Peers),
	}
}

func (s snapshotSummary) print(w io.Writer, asJSON bool, verb string) error {
	if asJSON {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(w, "%s %s: state index %d, %d bytes: %d clusters, %d routes, %d quotas, %d users, %d acls, %d regions, %d jobs\n",
		verb, s.File, s.Index, s.Bytes, s.Clusters, s.Routes, s.Quotas, s.Users, s.ACLs, s.Regions, s.Jobs)
	if err == nil && s.RestoredIndex > 0 {
		_, err = fmt.Fprintf(w, "installed at raft index %d; this cluster's peers were kept\n", s.RestoredIndex)
	}
	return err
}

func parseSnapshotSave(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	force := fs.Bool("force", false, "replace FILE if it exists")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if err := positional(pos, "FILE"); err != nil {
		return nil, err
	}
	file := pos[0]
	if !*force {
		if _, err := os.Stat(file); err == nil {
			return nil, fmt.Errorf("%s exists; give --force to replace it", file)
		}
	}
	// The status call checks the server answers before the backup is read.
	call := getCall("/v1/status", nil)
	call.show = func(io.Writer, []byte, string) error { return nil }
	call.follow = func(c *ctlClient, _ []byte, stdout io.Writer, asJSON bool) error {
		data, err := c.snapshotRequest(http.MethodGet, c.base+"/v1/snapshot", nil)
		if err != nil {
			return err
		}
		st, err := fsm.ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("the peer's snapshot does not decode with this ctl (%s); use a ctl of the peers' version: %w", version, err)
		}
		if err := writeFileAtomic(file, data); err != nil {
			return err
		}
		return summarize(file, len(data), st).print(stdout, asJSON, "saved")
	}
	return call, nil
}

func parseSnapshotRestore(fs *flag.FlagSet, args []string) (*ctlCall, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if err := positional(pos, "FILE"); err != nil {
		return nil, err
	}
	file := pos[0]
	data, err := readSnapshotFile(file)
	if err != nil {
		return nil, err
	}
	st, err := fsm.ReadSnapshot(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s is not a snapshot this version can restore: %w", file, err)
	}
	call := getCall("/v1/status", nil)
	call.show = func(io.Writer, []byte, string) error { return nil }
	call.follow = func(c *ctlClient, _ []byte, stdout io.Writer, asJSON bool) error {
		answer, err := c.snapshotRequest(http.MethodPost, c.base+"/v1/snapshot", data)
		if err != nil {
			return err
		}
		var rep adminapi.RestoreReport
		if err := json.Unmarshal(answer, &rep); err != nil {
			return fmt.Errorf("answer of POST /v1/snapshot is not the expected JSON: %w", err)
		}
		s := summarize(file, len(data), st)
		s.RestoredIndex = rep.Index
		return s.print(stdout, asJSON, "restored")
	}
	return call, nil
}

func readSnapshotFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, ctlMaxSnapshotBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", file, err)
	}
	if len(data) > ctlMaxSnapshotBytes {
		return nil, fmt.Errorf("snapshot %s is over %d MiB, the peers' limit", file, ctlMaxSnapshotBytes>>20)
	}
	return data, nil
}

// snapshotRequest sends one /v1/snapshot request and answers the body of a
// 2xx answer. It follows one 307 (a follower sends a restore to the leader)
// itself, so the token goes with it to the leader's admin address.
func (c *ctlClient) snapshotRequest(method, target string, body []byte) ([]byte, error) {
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for hop := 0; ; hop++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(c.ctx, method, target, rd)
		if err != nil {
			return nil, fmt.Errorf("build request %s %s: %w; check --server", method, target, err)
		}
		req.Header.Set("User-Agent", "switchyard-ctl/"+version)
		if body != nil {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, c.transportError(method, target, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, ctlMaxSnapshotBytes+1))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read answer of %s %s: %w", method, target, err)
		}
		if len(data) > ctlMaxSnapshotBytes {
			return nil, fmt.Errorf("answer of %s %s is over %d MiB", method, target, ctlMaxSnapshotBytes>>20)
		}
		if resp.StatusCode == http.StatusTemporaryRedirect && hop == 0 {
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("%s %s: redirect without a usable Location: %w", method, target, err)
			}
			target = loc.String()
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			err := error(apiErrorFrom(resp.StatusCode, data))
			if u, perr := url.Parse(target); perr == nil && target != c.base+"/v1/snapshot" {
				err = fmt.Errorf("the leader at %s: %w", u.Host, err)
			}
			return nil, err
		}
		return data, nil
	}
}

// writeFileAtomic writes data to file with mode 0600 (a backup holds
// credentials) through a temporary file in the same directory, synced and
// renamed, so an interrupted save never leaves a truncated backup.
func writeFileAtomic(file string, data []byte) error {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("save snapshot: directory %s does not exist", dir)
		}
		return fmt.Errorf("save snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save snapshot: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	return nil
}
