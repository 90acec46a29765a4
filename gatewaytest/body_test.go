package gatewaytest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
)

// endlessBody is a request body of unknown length that does not end until
// ctx does.
type endlessBody struct{ ctx context.Context }

func (e endlessBody) Read(p []byte) (int, error) {
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// stuckBody sends n bytes and then nothing until ctx ends.
type stuckBody struct {
	ctx context.Context
	n   int
}

func (s *stuckBody) Read(p []byte) (int, error) {
	if s.n == 0 {
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	k := min(len(p), s.n)
	for i := range k {
		p[i] = 'x'
	}
	s.n -= k
	return k, nil
}

// postAsync posts body to srv in the background; the channel gets the
// response (nil on error).
func postAsync(srv *gatewaytest.Server, req *http.Request) <-chan *http.Response {
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err != nil {
			got <- nil
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- resp
	}()
	return got
}

// closeWithin closes srv and reports whether Close returned within d.
func closeWithin(srv *gatewaytest.Server, d time.Duration) (closed <-chan struct{}, ok bool) {
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
		return done, true
	case <-time.After(d):
		return done, false
	}
}

// A body of unknown length that never ends gets its 413 after a bounded
// count, saying "at least", and Server.Close does not wait for the upload.
func TestOversizeEndlessBodyGets413(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	srv.MaxBody = 1024
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/predict", endlessBody{ctx})
	var resp *http.Response
	select {
	case resp = <-postAsync(srv, req):
	case <-time.After(5 * time.Second):
	}
	closed, ok := closeWithin(srv, 5*time.Second)
	cancel() // let a hung upload go, so that the test ends
	<-closed
	if resp == nil || resp.StatusCode != http.StatusRequestEntityTooLarge || !ok {
		t.Fatalf("an endless upload past MaxBody: response %v (want 413); Server.Close returned: %v", resp, ok)
	}
	if recs := srv.Records(); len(recs) != 1 || recs[0].Fault.Kind() != gatewaytest.KindPayloadTooLarge {
		t.Errorf("records %v", recs)
	}
	if n := srv.BodyBytes(); n <= 1024 || n > 1025+4<<20 {
		t.Errorf("BodyBytes %d: want the limit and at most 4 MiB more", n)
	}
}

// The 413 of a body whose end the gateway did not see says "at least".
func TestOversizeBodyMessageSaysAtLeast(t *testing.T) {
	g := gatewaytest.New(gatewaytest.Echo())
	g.MaxBody = 10
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/predict", endlessBody{ctx})
	req.ContentLength = -1
	g.ServeHTTP(rec, req)
	resp := rec.Result()
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || resp.StatusCode != 413 ||
		!strings.HasPrefix(se.Message, "payload size of at least ") || !strings.HasSuffix(se.Message, "exceeds maximum size of 10 bytes") {
		t.Fatalf("%d %v", resp.StatusCode, se)
	}
}

// A body stuck past the limit holds the 413 no longer than the gateway's
// Close: Server.Close ends the count at once.
func TestOversizeStuckBodyEndsOnClose(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	srv.MaxBody = 1024
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/predict", &stuckBody{ctx: ctx, n: 4096})
	got := postAsync(srv, req)
	for srv.Requests() == 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the gateway is now waiting for more body
	start := time.Now()
	closed, ok := closeWithin(srv, 1500*time.Millisecond) // the drain's own bound is 2 s
	took := time.Since(start)
	cancel()
	<-closed
	<-got
	if !ok {
		t.Fatalf("Server.Close took %v with an upload stuck past MaxBody", took)
	}
}

// A declared Content-Length over the cap is refused before upload: 413 at
// once, the connection closed, no body byte read.
func TestOversizeContentLengthRefusedBeforeUpload(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.MaxBody = 1000
	req, _ := http.NewRequest("POST", srv.URL+"/predict", strings.NewReader(strings.Repeat("x", 5000)))
	req.Header.Set("Expect", "100-continue")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || resp.StatusCode != 413 ||
		se.Message != "payload size of 5000 bytes exceeds maximum size of 1000 bytes" {
		t.Fatalf("%d %v", resp.StatusCode, se)
	}
	if !resp.Close {
		t.Error("the 413 does not close the connection")
	}
	if n := srv.BodyBytes(); n != 0 {
		t.Errorf("the gateway read %d body bytes of a body it refused before upload", n)
	}
}

// MaxBody = math.MaxInt64 means no cap: the body reaches the model whole.
func TestMaxBodyMaxInt64(t *testing.T) {
	g := gatewaytest.New(gatewaytest.Echo())
	g.MaxBody = math.MaxInt64
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("POST", "/predict", strings.NewReader(`{"x":1}`)))
	if rec.Code != 200 || rec.Body.String() != `{"x":1}` {
		t.Fatalf("status %d, model echoed %q, want {\"x\":1}", rec.Code, rec.Body.String())
	}
}

// A record keeps at most 1 MiB of a body, and not the rest: the gateway
// does not pin each big body it saw.
func TestRecordDoesNotPinTheBody(t *testing.T) {
	g := gatewaytest.New(gatewaytest.JSON(200, "{}"))
	const size, n = 8 << 20, 6
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		src := bytes.Repeat([]byte{'x'}, size)
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/predict", bytes.NewReader(src)))
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if recs := g.Records(); len(recs) != n || len(recs[0].Body) != 1<<20 {
		t.Fatalf("%d records, the first with %d body bytes", len(recs), len(recs[0].Body))
	}
	runtime.KeepAlive(g)
	if held > n*(1<<20)+8<<20 {
		t.Fatalf("%d records of 1 MiB each hold %d MiB of heap", n, held>>20)
	}
}

// Records returns copies: changing one changes nothing the gateway holds.
func TestRecordsAreCopies(t *testing.T) {
	g := gatewaytest.New(gatewaytest.Echo())
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader("abc")))
	r := g.Records()
	r[0].Header.Set("X-Mutated", "1")
	r[0].Body[0] = 'Z'
	again := g.Records()[0]
	if again.Header.Get("X-Mutated") != "" || string(again.Body) != "abc" {
		t.Fatalf("changing a copy changed the gateway's record: header %q, body %q", again.Header.Get("X-Mutated"), again.Body)
	}
}
