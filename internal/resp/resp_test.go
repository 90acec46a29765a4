package resp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/resume/resumetest"
)

// listen returns a loopback listener, closed when the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// fakeServer answers each command with the next canned reply.
func fakeServer(t *testing.T, replies ...string) string {
	t.Helper()
	ln := listen(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for _, rep := range replies {
			line, err := r.ReadString('\n') // *N
			if err != nil {
				return
			}
			var n int
			for _, ch := range strings.TrimSpace(line[1:]) {
				n = n*10 + int(ch-'0')
			}
			for range 2 * n {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
			}
			c.Write([]byte(rep))
		}
		io.Copy(io.Discard, c) // then say nothing until the client hangs up
	}()
	return ln.Addr().String()
}

func TestReplies(t *testing.T) {
	addr := fakeServer(t, "+OK\r\n", ":42\r\n", "$5\r\nhello\r\n", "$-1\r\n", "*3\r\n$1\r\na\r\n:7\r\n*-1\r\n", "-ERR nope\r\n")
	c, err := New("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	want := []any{"OK", int64(42), "hello", nil, []any{"a", int64(7), nil}}
	for i, w := range want {
		v, err := c.Do(ctx, "X", i)
		if err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("reply %d: %#v, %v; want %#v", i, v, err, w)
		}
	}
	var re Error
	if _, err := c.Do(ctx, "X"); !errors.As(err, &re) || string(re) != "ERR nope" {
		t.Fatalf("error reply: %v", err)
	}
}

func TestCancel(t *testing.T) {
	addr := fakeServer(t) // never answers
	c, _ := New("redis://" + addr)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Do(ctx, "BLPOP", "k", 0); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"http://x", "redis://", "redis://h:1/x"} {
		if _, err := New(u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// TestRealRedis runs against the server STREAMGUARD_REDIS_ADDR names.
func TestRealRedis(t *testing.T) {
	addr := resumetest.RedisAddr(t)
	c, err := New("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if v, err := c.Do(ctx, "SET", "streamguard:resp-test", "v\r\nx", "PX", 10000); err != nil || v != "OK" {
		t.Fatalf("SET: %v %v", v, err)
	}
	if v, err := c.Do(ctx, "GET", "streamguard:resp-test"); err != nil || v != "v\r\nx" {
		t.Fatalf("GET: %q %v", v, err)
	}
}

// TestCommandBytes: each kind of argument goes out as a bulk string of its
// bytes, and one of another type fails the call before anything is sent.
func TestCommandBytes(t *testing.T) {
	want := "*6\r\n$3\r\nSET\r\n$4\r\nk\r\n\x00\r\n$2\r\n-3\r\n$13\r\n1099511627776\r\n$19\r\n9223372036854775808\r\n$0\r\n\r\n"
	ln := listen(t)
	got := make(chan string, 2)
	go func() {
		for range 2 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, len(want))
			n, _ := io.ReadFull(c, b)
			got <- string(b[:n])
			c.Write([]byte("+OK\r\n"))
			c.Close()
		}
	}()
	c, err := New("redis://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Do(ctx, "GET", 3.5); err == nil || !strings.Contains(err.Error(), "float64") {
		t.Fatalf("an argument of type float64: %v", err)
	}
	if v, err := c.Do(ctx, "SET", []byte("k\r\n\x00"), -3, int64(1<<40), uint64(1<<63), []byte(nil)); err != nil || v != "OK" {
		t.Fatalf("SET: %v %v", v, err)
	}
	for _, want := range []string{"", want} { // the failed call's connection is closed
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("the server read %q, want %q", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the server read nothing")
		}
	}
}
