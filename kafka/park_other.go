//go:build !linux

package kafka

import (
	"errors"
	"time"
)

// parker is Linux's (park_linux.go); elsewhere idle connections keep
// their reader goroutine.
type parker struct{}

func newParker(func(*clientConn)) (*parker, error) {
	return nil, errors.New("parking idle connections needs Linux")
}
func (p *parker) park(c *clientConn, until time.Time) bool { return false }
func (p *parker) unpark(c *clientConn)                     {}
func (p *parker) close()                                   {}
