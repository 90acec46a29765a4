package gatewaytest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Cutter is a TCP proxy on loopback that breaks the network between a
// client and a server as a test decides: connection n (from 1) goes to
// Route(n) and is cut, both ways, once Cut(n) bytes came from the server
// (never when Cut(n) <= 0). It stands for a flaky network, or a load
// balancer that sends a client's next connection to another replica.
type Cutter struct {
	ln    net.Listener
	route func(n int) string
	cut   func(n int) int64
	conns atomic.Int64
	cuts  atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  map[net.Conn]struct{}
	done  bool
}

// NewCutter starts a Cutter. route and cut are called once per connection,
// from one goroutine.
func NewCutter(route func(n int) string, cut func(n int) int64) (*Cutter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Cutter{ln: ln, route: route, cut: cut, open: map[net.Conn]struct{}{}}
	c.wg.Go(c.accept)
	return c, nil
}

// Addr returns the address clients dial.
func (c *Cutter) Addr() string { return c.ln.Addr().String() }

// Conns returns how many connections the Cutter accepted.
func (c *Cutter) Conns() int64 { return c.conns.Load() }

// Cuts returns how many connections it cut.
func (c *Cutter) Cuts() int64 { return c.cuts.Load() }

// Close stops accepting, closes every connection and waits for the
// copying to end.
func (c *Cutter) Close() {
	c.mu.Lock()
	c.done = true
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
		up, err := net.Dial("tcp", c.route(n))
		if err != nil {
			down.Close()
			continue
		}
		if !c.track(down, up) {
			return
		}
		limit := c.cut(n)
		c.wg.Go(func() { io.Copy(up, down); up.Close() })
		c.wg.Go(func() {
			if limit > 0 {
				if k, _ := io.CopyN(down, up, limit); k == limit {
					c.cuts.Add(1)
				}
			} else {
				io.Copy(down, up)
			}
			down.Close()
			up.Close()
			c.mu.Lock()
			delete(c.open, down)
			delete(c.open, up)
			c.mu.Unlock()
		})
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
