package resp

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// allocated returns the bytes a call allocates while it reads reply from
// a server that then says nothing, and the call's error.
func allocated(t *testing.T, reply string) (uint64, error) {
	t.Helper()
	c, err := New("redis://" + fakeServer(t, reply))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.timeout = 200 * time.Millisecond
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = c.Do(context.Background(), "GET", "k")
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// TestAnnouncedLengths: the lengths a reply announces do not size what the
// client allocates: a bulk of 64 MiB announced in 13 bytes, or 8 nested
// arrays of a million elements in 88, cost it little, and the call fails
// by its timeout.
func TestAnnouncedLengths(t *testing.T) {
	for _, reply := range []string{"$67108864\r\n", strings.Repeat("*1048576\r\n", 8)} {
		n, err := allocated(t, reply)
		if err == nil || n > 1<<20 {
			t.Errorf("%.12q: %d KiB allocated, %v; want less than 1 MiB and the timeout", reply, n>>10, err)
		}
	}
}

// TestBulkFraming: a bulk string not followed by CRLF is a malformed
// reply, not data; a large one that arrives whole is read whole.
func TestBulkFraming(t *testing.T) {
	big := strings.Repeat("x", 300<<10)
	c, _ := New("redis://" + fakeServer(t, "$300\r\n"+big[:300]+"\r\n", "$307200\r\n"+big+"\r\n", "$3\r\nabcXY"))
	defer c.Close()
	ctx := context.Background()
	for _, want := range []string{big[:300], big} {
		if v, err := c.Do(ctx, "GET", "k"); err != nil || v != want {
			t.Fatalf("a bulk of %d: %d bytes, %v", len(want), len(v.(string)), err)
		}
	}
	if v, err := c.Do(ctx, "GET", "k"); err == nil {
		t.Fatalf("a bulk of 3 followed by \"XY\": %q, nil", v)
	}
}

// TestLongLines: an error reply longer than the reader's buffer (a
// script's) reaches the caller as the server's error, whole; a line past
// 64 KiB fails clearly.
func TestLongLines(t *testing.T) {
	long := "ERR " + strings.Repeat("x", 5000)
	c, _ := New("redis://" + fakeServer(t, "-"+long+"\r\n", "+"+strings.Repeat("y", 70<<10)+"\r\n"))
	defer c.Close()
	ctx := context.Background()
	var re Error
	if _, err := c.Do(ctx, "EVAL"); !errors.As(err, &re) || string(re) != long {
		t.Fatalf("a long error reply: %.60v", err)
	}
	if _, err := c.Do(ctx, "GET", "k"); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("a status line of 70 KiB: %v", err)
	}
}

// TestCloseInFlight: a connection in use when the client is closed is
// closed when its call returns, not kept.
func TestCloseInFlight(t *testing.T) {
	ln := listen(t)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 64)
		nc.Read(buf)
		time.Sleep(200 * time.Millisecond)
		nc.Write([]byte("+PONG\r\n"))
		nc.Read(buf)
	}()
	c, _ := New("redis://" + ln.Addr().String())
	done := make(chan error)
	go func() { _, err := c.Do(context.Background(), "PING"); done <- err }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(c.idle); n != 0 {
		t.Fatalf("after Close, %d connections kept", n)
	}
}

// TestReplyBudget: a whole reply is bounded, not only each of its parts:
// a reply over maxReply fails at once (not by the call's timeout), whether
// it is made of large bulks or of many small values, and the connection
// is dropped; one within it is read whole.
func TestReplyBudget(t *testing.T) {
	defer func(m int) { maxReply = m }(maxReply)
	maxReply = 1 << 20
	bulk := "$262144\r\n" + strings.Repeat("x", 256<<10) + "\r\n"
	ints := strings.Repeat(":1\r\n", 40000) // 160 KB, but 40,000 values
	for _, tc := range []struct {
		name, reply string
		ok          bool
	}{
		{"3 bulks of 256 KiB", "*3\r\n" + strings.Repeat(bulk, 3), true},
		{"5 bulks of 256 KiB", "*5\r\n" + strings.Repeat(bulk, 5), false},
		{"nested arrays of bulks", "*2\r\n*2\r\n" + bulk + bulk + "*3\r\n" + bulk + bulk + bulk, false},
		{"40,000 integers", "*40000\r\n" + ints, false},
		{"a bulk announced over the budget", "$2000000\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New("redis://" + fakeServer(t, tc.reply, "+OK\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.timeout = 5 * time.Second
			start := time.Now()
			v, err := c.Do(context.Background(), "GET", "k")
			if tc.ok {
				if arr, _ := v.([]any); err != nil || len(arr) != 3 {
					t.Fatalf("%d values, %v; want 3, nil", len(arr), err)
				}
				return
			}
			if !errors.Is(err, errTooLarge) {
				t.Fatalf("%T, %v; want %v", v, err, errTooLarge)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("failed after %v, by the timeout", d)
			}
			if len(c.idle) != 0 {
				t.Errorf("the connection was kept after a reply over the budget")
			}
		})
	}
}
