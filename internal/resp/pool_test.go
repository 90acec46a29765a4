package resp

import (
	"bufio"
	"context"
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
// shows its peer's close to alive: a close takes a moment to arrive. If
// alive never sees it, the test fails on the next command.
func waitClosed(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		cn := <-c.idle
		gone := !alive(cn.nc)
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

// TestCommandTimeout: a command whose context has no deadline is bounded
// by the client's timeout, and says so.
func TestCommandTimeout(t *testing.T) {
	c, _ := New("redis://" + fakeServer(t)) // never answers
	c.timeout = 50 * time.Millisecond
	defer c.Close()
	start := time.Now()
	_, err := c.Do(context.Background(), "GET", "k")
	if err == nil || !strings.Contains(err.Error(), "no reply within 50ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // a later deadline: the timeout still bounds it
	defer cancel()
	if _, err := c.Do(ctx, "GET", "k"); err == nil || !strings.Contains(err.Error(), "no reply within") {
		t.Fatalf("with a later deadline: %v", err)
	}
}
