package quota

import (
	"fmt"
	"strings"
)

// Direction says which way a key's bytes flow through the proxy.
type Direction uint8

// The directions. The zero Direction is invalid, so a missing field in a
// decoded message cannot pass for produce.
const (
	Produce Direction = iota + 1
	Fetch
)

// String returns "produce" or "fetch" (or "direction(N)" for anything else).
func (d Direction) String() string {
	switch d {
	case Produce:
		return "produce"
	case Fetch:
		return "fetch"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Valid reports whether d is Produce or Fetch.
func (d Direction) Valid() bool { return d == Produce || d == Fetch }

// MarshalText writes "produce" or "fetch", so wire messages stay readable.
func (d Direction) MarshalText() ([]byte, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("%w: direction %d", ErrInvalid, uint8(d))
	}
	return []byte(d.String()), nil
}

// UnmarshalText reads "produce" or "fetch" (case-insensitive).
func (d *Direction) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "produce":
		*d = Produce
	case "fetch":
		*d = Fetch
	default:
		return fmt.Errorf("%w: direction %q (want produce or fetch)", ErrInvalid, b)
	}
	return nil
}

// Key names one quota: a topic and a direction. Each Key has its own bucket
// on every peer and its own allocation at the leader.
type Key struct {
	Topic string    `json:"topic"`
	Dir   Direction `json:"dir"`
}

// String returns "topic/produce" or "topic/fetch".
func (k Key) String() string { return k.Topic + "/" + k.Dir.String() }

func (k Key) valid() bool { return k.Topic != "" && k.Dir.Valid() }

// compareKeys orders keys by topic, then direction (for deterministic output).
func compareKeys(a, b Key) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Dir) - int(b.Dir)
}
