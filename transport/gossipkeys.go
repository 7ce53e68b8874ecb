package transport

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/hashicorp/memberlist"
)

// MaxGossipKeys bounds a key file: memberlist tries every key on every
// packet it cannot decrypt with the primary, so a long ring costs CPU on
// every message. A rotation needs two.
const MaxGossipKeys = 8

// maxGossipKeyFile bounds the key file read into memory.
const maxGossipKeyFile = 64 << 10

// ParseGossipKeys reads a gossip key file: one base64 (standard encoding)
// AES key of 16, 24 or 32 bytes per line, the first the primary (the one
// this peer encrypts with), the others accepted on receipt. Blank lines
// and lines starting with '#' are skipped.
func ParseGossipKeys(b []byte) ([][]byte, error) {
	if len(b) > maxGossipKeyFile {
		return nil, fmt.Errorf("%w: key file is %d bytes, over %d", ErrGossipKey, len(b), maxGossipKeyFile)
	}
	var keys [][]byte
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
		n, err := base64.StdEncoding.Decode(k, line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d is not base64: %v", ErrGossipKey, i+1, err)
		}
		k = k[:n]
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("%w: line %d: key is %d bytes; want 16, 24 or 32 (e.g. head -c 32 /dev/urandom | base64)", ErrGossipKey, i+1, n)
		}
		if slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return nil, fmt.Errorf("%w: line %d repeats an earlier key", ErrGossipKey, i+1)
		}
		if len(keys) == MaxGossipKeys {
			return nil, fmt.Errorf("%w: more than %d keys; remove retired ones", ErrGossipKey, MaxGossipKeys)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the key file holds no key", ErrGossipKey)
	}
	return keys, nil
}

// ReadGossipKeyFile reads and parses a gossip key file.
func ReadGossipKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGossipKey, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxGossipKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrGossipKey, path, err)
	}
	keys, err := ParseGossipKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// InstallGossipKeys makes kr hold exactly keys, with keys[0] primary, in
// the order that never leaves the ring unable to read a live peer: add the
// new keys, switch the primary, then drop the keys no longer listed.
// Rotation without downtime is three edits of every peer's key file, each
// applied everywhere before the next: append the new key; move it first;
// delete the old one.
func InstallGossipKeys(kr *memberlist.Keyring, keys [][]byte) error {
	if len(keys) == 0 {
		return fmt.Errorf("%w: no key to install", ErrGossipKey)
	}
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("%w: add key: %v", ErrGossipKey, err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("%w: use key: %v", ErrGossipKey, err)
	}
	for _, k := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			if err := kr.RemoveKey(k); err != nil {
				return fmt.Errorf("%w: remove key: %v", ErrGossipKey, err)
			}
		}
	}
	return nil
}
