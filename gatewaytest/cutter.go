package gatewaytest

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Cutter is a TCP proxy on loopback that breaks the network between a
// client and a server as a test decides: connection n (from 1) goes to
// Route(n) and is cut, both ways, once Cut(n) bytes came from the server
// (never when Cut(n) <= 0). It stands for a flaky network, or a load
// balancer that sends a client's next connection to another replica.
type Cutter struct {
	ln     net.Listener
	route  func(n int) string
	cut    func(n int) int64
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	ctx    context.Context // ends when the Cutter closes, and with it any dial
	cancel context.CancelFunc
	conns  atomic.Int64
	cuts   atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	done   bool
}

// dialTimeout bounds how long a Cutter waits to connect to a connection's
// upstream; past it, the client's connection is closed.
const dialTimeout = 5 * time.Second

// NewCutter starts a Cutter. route and cut are called once per connection,
// from one goroutine. Each upstream is dialled on the connection's own
// goroutine, within 5 s (then the client's connection is closed): a slow
// dial delays neither other connections nor Close.
func NewCutter(route func(n int) string, cut func(n int) int64) (*Cutter, error) {
	return newCutter(route, cut, (&net.Dialer{Timeout: dialTimeout}).DialContext)
}

func newCutter(route func(n int) string, cut func(n int) int64, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*Cutter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Cutter{ln: ln, route: route, cut: cut, dial: dial, open: map[net.Conn]struct{}{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Go(c.accept)
	return c, nil
}

// Addr returns the address clients dial.
func (c *Cutter) Addr() string { return c.ln.Addr().String() }

// Conns returns how many connections the Cutter accepted.
func (c *Cutter) Conns() int64 { return c.conns.Load() }

// Cuts returns how many connections it cut.
func (c *Cutter) Cuts() int64 { return c.cuts.Load() }

// Close stops accepting, ends the dials under way, closes every connection
// and waits for the copying to end.
func (c *Cutter) Close() {
	c.mu.Lock()
	c.done = true
	c.cancel()
	c.ln.Close()
	for x := range c.open {
		x.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Cutter) accept() {
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		n := int(c.conns.Add(1))
		addr, limit := c.route(n), c.cut(n)
		if !c.track(down) {
			return
		}
		c.wg.Go(func() { c.proxy(down, addr, limit) })
	}
}

// proxy dials addr for down and copies both ways, cutting the connection
// once limit bytes came from upstream (never when limit <= 0).
func (c *Cutter) proxy(down net.Conn, addr string, limit int64) {
	ctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
	up, err := c.dial(ctx, "tcp", addr)
	cancel()
	if err != nil || !c.track(up) {
		c.forget(down)
		return
	}
	c.wg.Go(func() { io.Copy(up, down); up.Close() })
	if limit > 0 {
		if k, _ := io.CopyN(down, up, limit); k == limit {
			c.cuts.Add(1)
		}
	} else {
		io.Copy(down, up)
	}
	c.forget(down, up)
}

// forget closes conns and drops them from the set Close closes.
func (c *Cutter) forget(conns ...net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range conns {
		x.Close()
		delete(c.open, x)
	}
}

// track remembers conns for Close; false when the Cutter is closing.
func (c *Cutter) track(conns ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		for _, x := range conns {
			x.Close()
		}
		return false
	}
	for _, x := range conns {
		c.open[x] = struct{}{}
	}
	return true
}
