//go:build !linux

package rawio

import "net"

// Clipped returns nc: raw-syscall I/O (rawio_linux.go) is Linux only.
func Clipped(nc net.Conn) net.Conn { return nc }
