package bench

import (
	"bufio"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/openai/openai-go/v3/packages/ssestream"
	r3sse "github.com/r3labs/sse/v2"
	gosse "github.com/tmaxmax/go-sse"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/sse"
)

// A consumer reads one streamed response to its end and returns what it
// counted, so that the benchmark can check that it saw the whole stream.
type consumer struct {
	name string
	// stack: the response comes from middleware.NewClient (the guard is
	// inside it) and is read as the raw floor reads it.
	stack bool
	// counts says what read returns: "bytes", "lines" or "events".
	counts string
	read   func(resp *http.Response, buf []byte) (int64, error)
}

// consumers are the readers BenchmarkConsume compares, the floor first.
var consumers = []consumer{
	// The floor: the body read through a 32 KiB buffer, as io.Copy does.
	{name: "raw", counts: "bytes", read: func(resp *http.Response, buf []byte) (int64, error) {
		return drain(resp.Body, buf)
	}},
	// A bare line split, the least an SSE parser does.
	{name: "scanner", counts: "lines", read: func(resp *http.Response, _ []byte) (int64, error) {
		s := bufio.NewScanner(resp.Body)
		var n int64
		for s.Scan() {
			n++
		}
		return n, s.Err()
	}},
	{name: "gosse", counts: "events", read: func(resp *http.Response, _ []byte) (int64, error) {
		return gosseEvents(resp.Body)
	}},
	// openai-go's decoder, as its Stream[T] drives it (without the JSON
	// decoding of each chunk into a typed value, which Stream[T] adds).
	{name: "openai", counts: "events", read: func(resp *http.Response, _ []byte) (int64, error) {
		d := ssestream.NewDecoder(resp)
		var n int64
		for d.Next() {
			if ev := d.Event(); len(ev.Data) > 0 {
				n++
			}
		}
		return n, d.Err()
	}},
	// r3labs/sse's exported reader splits the stream into events; its
	// Client parses each into fields (unexported processEvent), which this
	// leaves out, so the figure flatters r3labs.
	{name: "r3labs", counts: "events", read: func(resp *http.Response, _ []byte) (int64, error) {
		r := r3sse.NewEventStreamReader(resp.Body, 1<<20)
		var n int64
		for {
			_, err := r.ReadEvent()
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n++
		}
	}},
	{name: "guard", counts: "bytes", read: func(resp *http.Response, buf []byte) (int64, error) {
		sse.Guard(resp, sse.Config{})
		return drain(resp.Body, buf)
	}},
	// The guard with stall detection off: the difference from guard is
	// the cost of the idle timer, on by default for event streams.
	{name: "guard-noidle", counts: "bytes", read: func(resp *http.Response, buf []byte) (int64, error) {
		sse.Guard(resp, sse.Config{IdleTimeout: -1})
		return drain(resp.Body, buf)
	}},
	{name: "guard+gosse", counts: "events", read: func(resp *http.Response, _ []byte) (int64, error) {
		sse.Guard(resp, sse.Config{})
		return gosseEvents(resp.Body)
	}},
	// The whole middleware.NewClient stack with its defaults (budget,
	// retry, tracing with the global provider, guard).
	{name: "stack", stack: true, counts: "bytes", read: func(resp *http.Response, buf []byte) (int64, error) {
		return drain(resp.Body, buf)
	}},
}

// gosseEvents counts the events go-sse's Read yields from r.
func gosseEvents(r io.Reader) (int64, error) {
	var n int64
	for _, err := range gosse.Read(r, nil) {
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// BenchmarkConsume reads workloads A and B with each consumer, from memory
// and from loopback servers over HTTP/1.1 and HTTP/2, in one run, so that
// each figure can be quoted as a ratio to the raw floor of the same source
// and workload. Besides B/op and allocs/op it reports allocs/event; over
// loopback that counts the in-process server's allocations too, the same
// for every consumer, so compare it with the raw row.
//
//	cd bench && go test -run '^$' -bench Consume -benchmem -count 6
func BenchmarkConsume(b *testing.B) {
	loads := streamWorkloads()
	for _, src := range []string{"mem", "h1", "h2"} {
		var lb *loopback
		if src != "mem" {
			lb = startLoopback(b, src, streamHandler(loads))
		}
		for _, w := range loads {
			for _, c := range consumers {
				b.Run("src="+src+"/load="+w.name+"/via="+c.name, func(b *testing.B) {
					consume(b, responder(b, src, lb, w, c.stack), c, w)
				})
			}
		}
	}
}

// responder returns a function that obtains one response of workload w from
// source src: from memory, or from the loopback server through a raw
// client or through the whole stack.
func responder(b *testing.B, src string, lb *loopback, w workload, stack bool) func() (*http.Response, error) {
	switch {
	case src == "mem" && !stack:
		return func() (*http.Response, error) { return sseResponse(w.data), nil }
	case src == "mem":
		client := middleware.NewClient(middleware.Config{Base: memResponder(w.data)})
		return func() (*http.Response, error) { return client.Get("http://mem.invalid/" + w.name) }
	}
	client := &http.Client{Transport: lb.rawTransport(b)}
	if stack {
		client = middleware.NewClient(middleware.Config{Base: lb.stackBase(b)})
	}
	url := lb.srv.URL + "/" + w.name
	checked := false
	return func() (*http.Response, error) {
		resp, err := client.Get(url)
		if err == nil && !checked {
			lb.checkProto(b, resp)
			checked = true
		}
		return resp, err
	}
}

// consume runs the benchmark loop of consumer c over the responses get
// returns.
func consume(b *testing.B, get func() (*http.Response, error), c consumer, w workload) {
	want := map[string]int64{"bytes": int64(len(w.data)), "lines": 2 * int64(w.events), "events": int64(w.events)}[c.counts]
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(w.data)))
	b.ReportAllocs()
	loopPerEvent(b, w.events, func() {
		resp, err := get()
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		n, err := c.read(resp, buf)
		resp.Body.Close()
		if err != nil || n != want {
			b.Fatalf("%s: read %d %s of %d, err %v", c.name, n, c.counts, want, err)
		}
	})
}

// loopPerEvent runs the benchmark loop of one over a workload of events
// each, and reports the process's allocations per event.
func loopPerEvent(b *testing.B, events int, one func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ops := 0
	for b.Loop() {
		one()
		ops++
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(ops)/float64(events), "allocs/event")
}
