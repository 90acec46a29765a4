package bench

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/sse"
	"github.com/streamguard/streamguard/tracing"
)

// idleStreams is how many streams BenchmarkIdleStreams holds open at once.
const idleStreams = 1000

// idleServer is a loopback server whose streams send their headers and one
// event, then wait until released (or until the client goes away), then end
// with data: [DONE] and close the connection. It counts open connections so
// that a benchmark can wait for the last of them to go before it measures
// again.
type idleServer struct {
	*loopback
	mu      sync.Mutex
	release chan struct{}
	open    atomic.Int64 // connections the server holds
	active  sync.WaitGroup
}

func newIdleServer(b *testing.B) *idleServer {
	s := &idleServer{release: make(chan struct{})}
	s.loopback = startLoopback(b, "h1", s)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.open.Add(-1)
		}
	}
	return s
}

func (s *idleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Done()
	s.mu.Lock()
	release := s.release
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	// The server closes each connection after its stream, so that TIME_WAIT
	// lands on the server's side and the client's ephemeral ports are free
	// for the next round.
	w.Header().Set("Connection", "close")
	w.Write([]byte("data: " + `{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"delta":{"content":"hi"}}]}` + "\n\n"))
	w.(http.Flusher).Flush()
	select {
	case <-release:
		w.Write([]byte("data: [DONE]\n\n"))
	case <-r.Context().Done():
	}
}

// releaseAll ends every waiting stream and arms a new release for the next
// round.
func (s *idleServer) releaseAll() {
	s.mu.Lock()
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
}

// BenchmarkIdleStreams measures the heap one idle stream costs: each op
// opens idleStreams concurrent streams over loopback HTTP/1.1, reads each
// one's first event, and holds them all open while it measures the live heap
// (runtime.MemStats.HeapAlloc after a GC) against the heap before the
// streams were opened; then it releases them, reads them to their end and
// closes everything. The client and the server share the process, so the
// figure holds both ends of each connection; the difference between the
// variants is what the client layers add:
//
//	raw           the response as the transport returns it
//	guard-noidle  sse.Guard with stall detection off (IdleTimeout -1: no timer)
//	guard-idle    sse.Guard with IdleTimeout 30 s (one timer per stream; the
//	              zero Config has one too, of 120 s, on an event stream)
//	stack         middleware.NewClient (budget, retry, no-op tracer, guard)
//
// It reports heap-B/stream and, for goroutine stacks (not heap),
// stack-B/stream; ns/op is the time to open and close the streams and means
// little. Run it with a small fixed -benchtime:
//
//	cd bench && go test -run '^$' -bench IdleStreams -benchmem -benchtime 3x -count 6
func BenchmarkIdleStreams(b *testing.B) {
	need := uint64(2*idleStreams + 512) // both ends of every connection, and slack
	if err := raiseFileLimit(need); err != nil {
		// Under CI a skip would hide the benchmark: .ci/run raises the
		// soft limit to the hard one, and the hard one must allow it.
		if ci := os.Getenv("CI"); ci != "" {
			b.Fatalf("needs %d file descriptors (CI=%s): %v", need, ci, err)
		}
		b.Skipf("needs %d file descriptors: %v", need, err)
	}
	srv := newIdleServer(b)
	for _, v := range []struct {
		name   string
		client func(*http.Transport) *http.Client
		guard  *sse.Config
	}{
		{name: "raw", client: plainClient},
		{name: "guard-noidle", client: plainClient, guard: &sse.Config{IdleTimeout: -1}},
		{name: "guard-idle", client: plainClient, guard: &sse.Config{IdleTimeout: 30 * time.Second}},
		{name: "stack", client: func(t *http.Transport) *http.Client {
			return middleware.NewClient(middleware.Config{Base: t, Tracing: tracing.Config{TracerProvider: noop.NewTracerProvider()}})
		}},
	} {
		b.Run("via="+v.name, func(b *testing.B) {
			goroutines := runtime.NumGoroutine()
			t := srv.rawTransport(b)
			// Every stream holds its own connection; DefaultBase's
			// MaxConnsPerHost (256) would queue the rest behind them.
			t.MaxConnsPerHost = 0
			client := v.client(t)
			url := srv.srv.URL + "/idle"
			resps := make([]*http.Response, idleStreams)
			buf := make([]byte, 4<<10)

			open := func(n int) {
				for i := range n {
					resp, err := client.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					if v.guard != nil {
						sse.Guard(resp, *v.guard)
					}
					// Read the first event: the stream is live and each
					// layer has seen data, as during a long generation.
					got := 0
					for !bytes.Contains(buf[:got], []byte("\n\n")) {
						n, err := resp.Body.Read(buf[got:])
						got += n
						if err != nil {
							b.Fatalf("stream %d: %v after %d bytes", i, err, got)
						}
					}
					resps[i] = resp
				}
			}
			closeAll := func(n int) {
				srv.releaseAll()
				for i := range n {
					if _, err := drain(resps[i].Body, buf); err != nil {
						b.Fatalf("stream %d: %v", i, err)
					}
					resps[i].Body.Close()
					resps[i] = nil
				}
				srv.active.Wait()
				t.CloseIdleConnections()
				if !waitFor(10*time.Second, func() bool { return srv.open.Load() == 0 }) {
					b.Fatalf("%d server connections still open", srv.open.Load())
				}
			}

			// Warm up with a full round: the runtime keeps the goroutines
			// (and their stacks) of the first round for reuse, so only
			// rounds after it measure the steady state.
			open(idleStreams)
			closeAll(idleStreams)

			var heap, stack float64
			ops := 0
			b.ReportAllocs()
			for b.Loop() {
				var before, after runtime.MemStats
				settle()
				runtime.ReadMemStats(&before)
				open(idleStreams)
				settle()
				runtime.ReadMemStats(&after)
				heap += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / idleStreams
				stack += float64(int64(after.StackInuse)-int64(before.StackInuse)) / idleStreams
				ops++
				if testing.Verbose() {
					b.Logf("op %d: heap %+d B, stack %+d B for %d streams", ops,
						int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(after.StackInuse)-int64(before.StackInuse), idleStreams)
				}
				closeAll(idleStreams)
			}
			b.ReportMetric(heap/float64(ops), "heap-B/stream")
			b.ReportMetric(stack/float64(ops), "stack-B/stream")

			if !waitFor(10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines }) {
				b.Errorf("goroutines: %d after, %d before", runtime.NumGoroutine(), goroutines)
			}
		})
	}
}

// settle collects garbage until the heap holds live objects only: the
// second cycle frees what sync.Pool (bufio readers and writers of closed
// connections) had moved to its victim cache in the first.
func settle() {
	runtime.GC()
	runtime.GC()
}

func plainClient(t *http.Transport) *http.Client { return &http.Client{Transport: t} }
