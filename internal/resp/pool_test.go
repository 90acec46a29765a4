package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard/resume/resumetest"
)

// closingServer answers one PING per connection with +PONG and then
// closes it, as Redis does to a connection past its timeout, or when it
// restarts.
func closingServer(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			for range 3 { // *1, $4, PING
				r.ReadString('\n')
			}
			c.Write([]byte("+PONG\r\n"))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// waitClosed waits (at most five seconds) until the pooled connection
// shows its peer's close to its probe: a close takes a moment to arrive. If
// the probe never sees it, the test fails on the next command.
func waitClosed(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		cn := <-c.idle
		gone := !cn.probe.alive()
		c.idle <- cn
		if gone {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClosedIdleConnection: a pooled connection whose server has closed
// it is not used again; the next command dials a new one.
func TestClosedIdleConnection(t *testing.T) {
	c, err := New("redis://" + closingServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for i := range 3 {
		if i > 0 {
			waitClosed(t, c)
		}
		if v, err := c.Do(ctx, "PING"); err != nil || v != "PONG" {
			t.Fatalf("command %d: %v %v", i, v, err)
		}
	}
}

// TestKilledConnection: the same against a real Redis, which kills the
// client's pooled connection (CLIENT KILL from another client).
func TestKilledConnection(t *testing.T) {
	addr := resumetest.RedisAddr(t)
	c, _ := New("redis://" + addr)
	killer, _ := New("redis://" + addr)
	defer c.Close()
	defer killer.Close()
	ctx := context.Background()
	id, err := c.Do(ctx, "CLIENT", "ID")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := killer.Do(ctx, "CLIENT", "KILL", "ID", id.(int64)); err != nil || n != int64(1) {
		t.Fatalf("CLIENT KILL: %v %v", n, err)
	}
	waitClosed(t, c)
	if v, err := c.Do(ctx, "PING"); err != nil || v != "PONG" {
		t.Fatalf("after the kill: %v %v", v, err)
	}
}

// TestCallTimeout: a call whose context has no earlier deadline is bounded
// by the client's timeout, and says so; so is a new connection's TLS
// handshake with a server that never answers.
func TestCallTimeout(t *testing.T) {
	for _, scheme := range []string{"redis", "rediss"} {
		c, _ := New(scheme + "://" + fakeServer(t)) // never answers
		c.timeout = 50 * time.Millisecond
		defer c.Close()
		start := time.Now()
		_, err := c.Do(context.Background(), "GET", "k")
		if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") || !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("%s: %v after %v", scheme, err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // a later deadline: the timeout still bounds it
		defer cancel()
		if _, err := c.Do(ctx, "GET", "k"); err == nil || !strings.Contains(err.Error(), "no answer within") {
			t.Fatalf("%s, with a later deadline: %v", scheme, err)
		}
	}
}

// TestIdleConnectionKept: a connection idle for longer than the client's
// timeout, or than the deadline of the call that used it, is used again:
// the call's deadline does not stay on it.
func TestIdleConnectionKept(t *testing.T) {
	c, _ := New("redis://" + resumetest.RedisAddr(t))
	c.timeout = 100 * time.Millisecond
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	first, err := c.Do(ctx, "CLIENT", "ID")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // past both
	if id, err := c.Do(context.Background(), "CLIENT", "ID"); err != nil || id != first {
		t.Fatalf("CLIENT ID %v (%v) after an idle time, was %v: the connection was not used again", id, err, first)
	}
}

// holdConn gathers what is written to it while held, and sends it in one
// write when flushed: TLS records written one by one arrive in one TCP
// segment.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  []byte
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

func (h *holdConn) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.Conn.Write(h.buf)
	h.buf, h.hold = nil, false
	return err
}

// extraReplyServer answers each PING with +PONG, over TLS with cert when
// it is not nil, on every connection it accepts; on the first one, the
// first reply is followed by "+STALE\r\n", which nothing asked for: in
// the same TCP write, and over TLS in a record of its own. It returns its
// address and a count of the connections it accepted.
func extraReplyServer(t *testing.T, cert *tls.Certificate) (string, *atomic.Int32) {
	t.Helper()
	ln := listen(t)
	var accepted atomic.Int32
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			first := accepted.Add(1) == 1
			go func() {
				defer raw.Close()
				raw.SetDeadline(time.Now().Add(10 * time.Second))
				hc := &holdConn{Conn: raw}
				var c net.Conn = hc
				if cert != nil {
					c = tls.Server(hc, &tls.Config{Certificates: []tls.Certificate{*cert}})
				}
				r := bufio.NewReader(c)
				for {
					for range 3 { // *1, $4, PING
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
					}
					if !first {
						c.Write([]byte("+PONG\r\n"))
						continue
					}
					first = false
					hc.mu.Lock()
					hc.hold = true
					hc.mu.Unlock()
					c.Write([]byte("+PONG\r\n"))  // a record: the reply
					c.Write([]byte("+STALE\r\n")) // another: unasked
					hc.flush()
				}
			}()
		}
	}()
	return ln.Addr().String(), &accepted
}

// TestExtraReplyDropsConnection: a connection on which the server sent
// more than the reply is not used again, over plain TCP and over TLS,
// where the extra bytes may have been read (and decrypted) by crypto/tls
// along with the reply, out of sight of both r.Buffered and the probe of
// the socket: the next command takes a new connection, and gets its own
// reply, not the stale one.
func TestExtraReplyDropsConnection(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	cert, leaf := hs.TLS.Certificates[0], hs.Certificate()
	hs.Close()
	for _, scheme := range []string{"redis", "rediss"} {
		t.Run(scheme, func(t *testing.T) {
			var addr string
			var accepted *atomic.Int32
			if scheme == "rediss" {
				addr, accepted = extraReplyServer(t, &cert)
			} else {
				addr, accepted = extraReplyServer(t, nil)
			}
			c, err := New(scheme + "://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.tls != nil {
				c.tls.RootCAs = x509.NewCertPool()
				c.tls.RootCAs.AddCert(leaf)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if v, err := c.Do(ctx, "PING"); err != nil || v != "PONG" {
				t.Fatalf("first PING: %v %v", v, err)
			}
			time.Sleep(100 * time.Millisecond) // the extra bytes have arrived
			if v, err := c.Do(ctx, "PING"); err != nil || v != "PONG" {
				t.Fatalf("second PING: %q %v: the previous call's extra bytes were taken for its reply", v, err)
			}
			if n := accepted.Load(); n != 2 {
				t.Fatalf("%d connections, want 2: the one with extra bytes was used again", n)
			}
			// The new connection had nothing extra: it is used again.
			if v, err := c.Do(ctx, "PING"); err != nil || v != "PONG" || accepted.Load() != 2 {
				t.Fatalf("third PING: %v %v, %d connections: a clean connection was not used again", v, err, accepted.Load())
			}
		})
	}
}

// TestDoAfterClose: a call on a closed client fails with ErrClosed; it
// does not dial a new connection.
func TestDoAfterClose(t *testing.T) {
	c, _ := New("redis://" + fakeServer(t, "+PONG\r\n", "+PONG\r\n"))
	c.timeout = time.Second
	if v, err := c.Do(context.Background(), "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING: %v %v", v, err)
	}
	c.Close()
	if v, err := c.Do(context.Background(), "PING"); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("PING after Close: %v %v, want ErrClosed", v, err)
	}
}
