//go:build unix

package resp

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// probe tells whether an idle connection can still carry a command: its
// peer has not closed it, and nothing is waiting to be read on it (on an
// idle RESP2 connection that can only be garbage, or a TLS alert). It
// reads the socket once without waiting; a byte it takes goes with the
// connection, which is then closed. It is made once per connection, so
// that a check allocates nothing.
type probe struct {
	raw  syscall.RawConn // nil: the connection has no socket to look at
	read func(fd uintptr) bool
	idle bool
	b    [1]byte
}

func newProbe(nc net.Conn) *probe {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	p := &probe{}
	if sc, ok := nc.(syscall.Conn); ok {
		p.raw, _ = sc.SyscallConn()
	}
	p.read = func(fd uintptr) bool {
		_, err := syscall.Read(int(fd), p.b[:])
		p.idle = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
		return true // never wait
	}
	return p
}

func (p *probe) alive() bool {
	if p.raw == nil {
		return true
	}
	p.idle = false
	return p.raw.Read(p.read) == nil && p.idle
}
