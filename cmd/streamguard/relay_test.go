package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

var listening = regexp.MustCompile(`relay: http://(\S+) -> `)

// startRelay runs the relay command until the test ends and returns its
// address.
func startRelay(t *testing.T, args ...string) string {
	t.Helper()
	addr, _ := startRelayLog(t, args...)
	return addr
}

// startRelayLog is startRelay, and returns what the relay writes to
// stderr, its log, too.
func startRelayLog(t *testing.T, args ...string) (string, *gatewaytest.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb gatewaytest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- relay(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), &out, &errb) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("relay exit %d: %s", code, errb.String())
		}
	})
	for range 500 {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			return m[1], &errb
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("relay exit %d: %s", code, errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the relay never said where it listens")
	return "", nil
}

func TestRelayUsage(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{}, {"-upstream", "ftp://x"}, {"-upstream", "http://x", "-store", "disk"}, {"-upstream", "http://x", "extra"}} {
		if code := relay(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d", args, code)
		}
	}
}

// TestRelayStoreErrors: a store the relay cannot use stops it at once,
// with exit 2 when the -store value is wrong and 1 when the store does not
// answer (a usage error it is not), and what it says never holds the
// store's password. A URL's scheme is case-insensitive.
func TestRelayStoreErrors(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel() // a relay that took the store would stop at once, exit 0
	for store, want := range map[string]int{"disk://u:hunter2@x": 2, "redis://u:hunter2@h\x7f": 2, "rediss://u:hunter2@127.0.0.1:1/0": 1, "redis://u:hunter2@127.0.0.1:1/x": 2,
		"redis://hunter2@127.0.0.1:1/0": 1, "rediss://hunter2@127.0.0.1:1/x": 2, "redis://default:/hunter2@127.0.0.1:1/0": 2, "redis://default:12#hunter2@127.0.0.1:1/0": 2,
		"redis:/default:hunter2@h": 2, "REDIS://u:hunter2@127.0.0.1:1/0": 1} {
		var out, errb bytes.Buffer
		if code := relay(canceled, []string{"-listen", "127.0.0.1:0", "-upstream", "http://x", "-store", store}, &out, &errb); code != want {
			t.Errorf("%q: exit %d, want %d: %s", store, code, want, errb.String())
		}
		if all := out.String() + errb.String(); strings.Contains(all, "hunter2") || !strings.Contains(all, "-store") {
			t.Errorf("%q: %s", store, all)
		}
	}
}

// TestRelayStoreUserName: the line the relay prints when it starts does
// not show the user name of a redis URL either: "redis://s3cret@host" is a
// password written without its ':', which Redis gets as the user.
func TestRelayStoreUserName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a Redis that says OK to every command (AUTH, PING, INFO)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n') // *N
					if err != nil {
						return
					}
					n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
					for range 2 * n {
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
					}
					c.Write([]byte("+OK\r\n"))
				}
			}()
		}
	}()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := relay(canceled, []string{"-listen", "127.0.0.1:0", "-upstream", "http://x", "-store", "redis://hunter2@" + ln.Addr().String() + "/0"}, &out, &errb)
	if all := out.String() + errb.String(); code != 0 || strings.Contains(all, "hunter2") || !strings.Contains(out.String(), "store redis://REDACTED@") {
		t.Errorf("exit %d, said %q", code, all)
	}
}

// TestRelayDurations: a budget, idle or linger the layers would not take
// as given stops the relay with exit 2 and says why.
func TestRelayDurations(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, extra := range [][]string{{"-linger", "0"}, {"-linger", "-1s"}, {"-linger", "1ms"}, {"-budget", "0"}, {"-budget", "-1s"}, {"-idle", "0"}, {"-drain", "-1s"}, {"-attempts", "0"}} {
		var out, errb bytes.Buffer
		code := relay(canceled, append([]string{"-listen", "127.0.0.1:0", "-upstream", "http://127.0.0.1:9"}, extra...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), extra[0]+" must") { // the flag named
			t.Errorf("%q: exit %d, said %q", extra, code, out.String()+errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := relay(canceled, []string{"-listen", "127.0.0.1:0", "-upstream", "http://127.0.0.1:9", "-idle", "-1s", "-linger", "100ms"}, &out, &errb); code != 0 {
		t.Errorf("idle off, the shortest linger: exit %d, said %q", code, out.String()+errb.String())
	}
}

// TestRelayAttempts: -attempts bounds the relay's calls to the upstream
// for one request, the first included.
func TestRelayAttempts(t *testing.T) {
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
	}))
	defer up.Close()
	for _, n := range []int32{1, 2} {
		calls.Store(0)
		addr := startRelay(t, "-upstream", up.URL, "-attempts", strconv.Itoa(int(n)))
		resp, err := http.Get("http://" + addr + "/v1/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := calls.Load(); resp.StatusCode != http.StatusServiceUnavailable || got != n {
			t.Errorf("-attempts %d: %d, %d calls", n, resp.StatusCode, got)
		}
	}
}

// TestRelayQueryCredentials: a key in the upstream's query (which the
// relay sends on with every request) or a password in the store's never
// shows in what the relay says, and a query in the store's URL, whose
// options the relay's Redis client would not apply, is refused.
func TestRelayQueryCredentials(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-upstream", "http://127.0.0.1:9/v1?api_key=sk-hunter2"}, 0},
		{[]string{"-upstream", "ftp://127.0.0.1:9/v1?api_key=sk-hunter2"}, 2},
		{[]string{"-upstream", "http://x", "-store", "redis://127.0.0.1:1/0?password=hunter2"}, 2},
		{[]string{"-upstream", "http://x", "-store", "redis://127.0.0.1:1?db=3&x=hunter2"}, 2},
	} {
		var out, errb bytes.Buffer
		code := relay(canceled, append([]string{"-listen", "127.0.0.1:0"}, tc.args...), &out, &errb)
		if all := out.String() + errb.String(); code != tc.code || strings.Contains(all, "hunter2") {
			t.Errorf("%q: exit %d (want %d), said %q", tc.args, code, tc.code, all)
		}
	}
}

// balancer sends connection 1 to first, cut after cutAt bytes from the
// server, and every later connection to rest: a client whose connection to
// one relay broke reconnects to another.
func balancer(t *testing.T, first, rest string, cutAt int64) *gatewaytest.Cutter {
	c, err := gatewaytest.NewCutter(
		func(n int) string {
			if n == 1 {
				return first
			}
			return rest
		},
		func(n int) int64 {
			if n == 1 {
				return cutAt
			}
			return 0
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// readThrough streams a chat completion through addr with the client stack
// (resume on) and returns the events' data.
func readThrough(t *testing.T, addr string) []string {
	t.Helper()
	base := middleware.DefaultBase(0)
	base.DisableKeepAlives = true
	defer base.CloseIdleConnections()
	client := middleware.NewClient(middleware.Config{Base: base,
		Stream: sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}}})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-test-relay")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var data []string
	for ev, err := range gosse.Read(resp.Body, nil) {
		if err != nil {
			t.Fatalf("after %d events: %v", len(data), err)
		}
		data = append(data, ev.Data)
	}
	return data
}

func wantChat(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n+1 || got[n] != "[DONE]" {
		t.Fatalf("%d events, want %d and [DONE]", len(got), n+1)
	}
	for i := range n {
		if got[i] != gatewaytest.ChatChunk(i) {
			t.Fatalf("event %d: %q", i, got[i])
		}
	}
}

// TestRelayMemory relays through one relay with the memory store, its
// client's connection cut mid-stream.
func TestRelayMemory(t *testing.T) {
	const n = 200
	up := gatewaytest.NewServer(gatewaytest.ChatStream(n))
	defer up.Close()
	addr := startRelay(t, "-upstream", up.URL, "-linger", "2s")
	lb := balancer(t, addr, addr, 9000)
	wantChat(t, readThrough(t, lb.Addr()), n)
	if lb.Conns() < 2 {
		t.Fatalf("%d connections: the cut never happened", lb.Conns())
	}
}

// TestRelayLogs: the relay logs an upstream call that failed to stderr,
// and never the key the upstream echoed back.
func TestRelayLogs(t *testing.T) {
	const key = "sk-relaylog-8f3a9c2e"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s"}}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	}))
	defer up.Close()
	addr, logs := startRelayLog(t, "-upstream", up.URL)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want the upstream's 401", resp.StatusCode)
	}
	for i := 0; i < 500 && !strings.Contains(logs.String(), "request failed"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "request failed") || !strings.Contains(l, "401") || strings.Contains(l, "relaylog") {
		t.Fatalf("the relay's log:\n%s", l)
	}
}

// TestRelayHelp: -h prints the relay's usage to stdout and exits 0, as the
// probe's and the top-level command's do (so that `relay -h | less` shows
// it); a flag it does not know exits 2, the usage on stderr; a usage error
// says what is wrong.
func TestRelayHelp(t *testing.T) {
	for args, want := range map[string]int{"-h": 0, "-nope": 2} {
		var out, errb bytes.Buffer
		code := relay(context.Background(), []string{args}, &out, &errb)
		got := errb.String()
		if want == 0 {
			got = out.String()
		}
		if code != want || !strings.Contains(got, "-upstream") {
			t.Errorf("relay %s: exit %d, want %d; said %q", args, code, want, got)
		}
	}
	for _, args := range [][]string{{}, {"-upstream", "http://x", "sk-typed-here"}} {
		var out, errb bytes.Buffer
		code := relay(context.Background(), args, &out, &errb)
		first, _, _ := strings.Cut(errb.String(), "\n")
		if code != 2 || !strings.HasPrefix(first, "streamguard relay: ") || strings.Contains(errb.String(), "sk-typed") {
			t.Errorf("relay %q: exit %d, first line %q", args, code, first)
		}
	}
	var out, errb bytes.Buffer
	code := run1(context.Background(), []string{"probe", "-h"}, &out, &errb, noenv)
	if code != 0 || !strings.Contains(out.String(), "usage: streamguard probe") {
		t.Errorf("probe -h: exit %d, stdout %q", code, out.String())
	}
	out.Reset()
	errb.Reset()
	code = run1(context.Background(), []string{"probe", "http://127.0.0.1:1/", "--stream"}, &out, &errb, noenv)
	if code != 2 || !strings.Contains(errb.String(), "flags go before the URL") {
		t.Errorf("probe URL --stream: exit %d, stderr %q", code, errb.String())
	}
}
