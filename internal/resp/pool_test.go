package resp

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
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
