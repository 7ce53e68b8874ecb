//go:build !linux

package kafka

import (
	"io"
	"net"
)

// rawIO returns nc: raw-syscall I/O (rawio_linux.go) is Linux only.
func rawIO(nc net.Conn) io.ReadWriter { return nc }

// rawMax sizes the connection read buffer (connio.go) as on Linux.
const rawMax = 64 << 10
