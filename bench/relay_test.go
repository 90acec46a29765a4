package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/streamguard/streamguard/internal/resp"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
	"github.com/streamguard/streamguard/sse"
)

// BenchmarkRelay relays workload A over loopback HTTP/1.1 through a front
// server, and reads it raw: through httputil.ReverseProxy (the floor); the
// same inside NewHandler with resumable streams on (the in-memory store:
// every event gets an id and is stored before it is sent), the cost of
// resume alone; the library's relay, middleware.Relay through the client
// stack inside NewHandler, without resume and with it (the default memory
// store, a small one, and the Redis store the relay command opens for
// redis://, which stores each flush with one XADD script call before it
// sends it). A last row, relay-resume-discard, runs the relay with resume
// on and a store that keeps no event: what the protocol costs without its
// store (the framing, and the ids' bytes through the kernel and the
// reader), the ceiling any store could reach. Another, reverseproxy-ids,
// is the floor's ReverseProxy giving each event an id line and nothing
// else (no store, guard or framing: addIDs), the protocol's bytes alone,
// what any relay that sends them pays in the kernel and the reader: the
// fair floor for the rows with resume on. It reports allocs/event for the
// whole process (the upstream, the front and the reader), the same for all rows apart from
// the front's own. Each response is checked: the workload's events, all
// of them once, in order, unaltered, and with resume their ids (relayRow).
//
//	cd bench && go test -run '^$' -bench Relay -benchmem -count 6
func BenchmarkRelay(b *testing.B) {
	w := streamWorkloads()[0] // A
	upstream := startLoopback(b, "h1", streamHandler([]workload{w}))
	upURL, _ := url.Parse(upstream.srv.URL)
	relay := func(store resume.Store) http.Handler {
		client := middleware.NewClient(middleware.Config{Base: upstream.rawTransport(b)})
		var cfg middleware.ServerConfig
		if store != nil {
			cfg.Resume = &middleware.ResumeConfig{Store: store}
		}
		return middleware.NewHandler(middleware.Relay(upURL, client), cfg)
	}
	proxy := func() *httputil.ReverseProxy {
		rp := httputil.NewSingleHostReverseProxy(upURL)
		rp.FlushInterval = -1
		rp.Transport = upstream.rawTransport(b)
		return rp
	}
	mem := func(max int64) func(*testing.B) (resume.Store, func() bool) {
		return func(*testing.B) (resume.Store, func() bool) {
			s := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: max})
			return s, func() bool { _, n := s.Len(); return n >= max/10*9 }
		}
	}
	discard := func(*testing.B) (resume.Store, func() bool) {
		return discardStore{resume.NewMemoryStore(resume.MemoryConfig{})}, func() bool { return true }
	}
	fronts := []struct {
		name  string
		store func(*testing.B) (resume.Store, func() bool) // and whether it is full
		h     func(resume.Store) http.Handler
	}{
		{"reverseproxy", nil, func(resume.Store) http.Handler { return proxy() }},
		{"reverseproxy-ids", discard, func(resume.Store) http.Handler {
			rp := proxy()
			rp.ModifyResponse = addIDs
			return rp
		}},
		{"reverseproxy-resume-memory", mem(resume.DefaultMaxBytes), func(store resume.Store) http.Handler {
			return middleware.NewHandler(proxy(), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}})
		}},
		{"relay", nil, relay},
		{"relay-resume-memory", mem(resume.DefaultMaxBytes), relay},
		{"relay-resume-memory32", mem(32 << 20), relay},
		{"relay-resume-redis", redisStore, relay},
		{"relay-resume-discard", discard, relay},
	}
	for _, f := range fronts {
		b.Run("via="+f.name, func(b *testing.B) {
			var store resume.Store
			full := func() bool { return true }
			if f.store != nil {
				store, full = f.store(b)
			}
			relayRow(b, w, f.h(store), store, full)
		})
	}
}

// relayRow times workload w through front, read raw over loopback.
// Steady state first, as in a long-running relay: a memory store full (it
// then forgets the oldest streams and reuses their memory), the heap
// grown; 20 streams at least (3 for Redis, whose streams stay in its
// memory), 400 at most.
//
// Every response is checked, the same way in every row: the warm-up ones
// and the first timed one byte by byte (relayCheck: the workload's bytes
// exactly once the id lines are out, and with resume one id per event, in
// order), the others by their exact length (the workload's, and with
// resume its id lines'), read into io.Discard, so that the timed loop's
// cost is the relay's and the same in every row.
func relayRow(b *testing.B, w workload, h http.Handler, store resume.Store, full func() bool) {
	front := startLoopback(b, "h1", h)
	client := &http.Client{Transport: front.rawTransport(b)}
	buf := make([]byte, 32<<10)
	check := &relayCheck{want: w.data, idLine: make([]byte, 0, 256), prefix: make([]byte, 0, 128)}
	get := func(whole bool) {
		resp, err := client.Get(front.srv.URL + "/" + w.name)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		stream := resp.Header.Get(sse.ResumableStreamHeader)
		if resumable := store != nil; resumable != (stream != "") {
			b.Fatalf("resume on: %v, but the response's %s is %q", resumable, sse.ResumableStreamHeader, stream)
		}
		var dst io.Writer = io.Discard
		if whole {
			check.reset(stream)
			dst = check
		}
		n, err := io.CopyBuffer(dst, resp.Body, buf)
		if err == nil && whole {
			err = check.end(w.events)
		}
		if want := relayedLen(w, stream); err == nil && n != want {
			err = fmt.Errorf("want %d bytes, its events and their ids", want)
		}
		if err != nil {
			b.Fatalf("read %d bytes (the workload is %d): %v", n, len(w.data), err)
		}
	}
	warm := 20
	if _, ok := store.(*resume.RedisStore); ok {
		warm = 3
	}
	for i := 0; i < 400 && (i < warm || !full()); i++ {
		get(true)
	}
	b.SetBytes(int64(len(w.data)))
	b.ReportAllocs()
	first := true
	loopPerEvent(b, w.events, func() { get(first); first = false })
}

// relayedLen is how many bytes a relay sends for workload w: its own,
// and with resume (a stream named stream) an id line "id: {stream}.{seq}"
// per event, seq 1 to w.events.
func relayedLen(w workload, stream string) int64 {
	n := int64(len(w.data))
	if stream == "" {
		return n
	}
	n += int64(w.events) * int64(len("id: ")+len(stream)+len(".\n"))
	for lo, digits := 1, 1; lo <= w.events; lo, digits = lo*10, digits+1 {
		n += int64(min(w.events, lo*10-1)-lo+1) * int64(digits)
	}
	return n
}

// redisStore is the relay command's Redis store (its own client, the
// resp package) on the redis-server $STREAMGUARD_REDIS_ADDR names: the
// benchmark skips without one (and fails under CI). Each stream's events
// all fit (MaxLen) and its keys live a minute, under a prefix of the
// run's own.
func redisStore(b *testing.B) (resume.Store, func() bool) {
	c, err := resp.New("redis://" + resumetest.RedisAddr(b) + "/0")
	if err != nil {
		b.Fatal(err)
	}
	s := resume.NewRedisStore(c, resume.RedisConfig{
		Prefix: "streamguard-bench:" + resumetest.Name() + ":",
		MaxLen: 2 * int64(streamWorkloads()[0].events),
		TTL:    time.Minute,
	})
	b.Cleanup(func() { s.Close(); c.Close() })
	return s, func() bool { return true }
}

// discardStore is a memory store that keeps no event: Append accepts and
// drops them. The relay-resume-discard row uses it (a resume of its
// streams would find nothing), and the reverseproxy-ids row, which stores
// nothing, to say that its streams have ids.
type discardStore struct{ *resume.MemoryStore }

func (discardStore) Append(context.Context, string, []resume.Event) error { return nil }

// relayCheck is a writer a relayed response is copied into: it checks the
// bytes as they stream past, without allocating. Once the id
// lines are taken out, the response must be the workload's bytes exactly
// (no event lost, duplicated, reordered or altered). With resume on (the
// response names its stream in sse.ResumableStreamHeader) every event must
// carry one id line "id: {stream}.{seq}", seq 1, 2, 3… in order, one per
// event of the workload; with it off, no id line may appear.
type relayCheck struct {
	want      []byte // the workload
	pos       int    // how many bytes of want the response matched
	lineStart bool   // the next byte begins a line
	inID      bool   // within an id line, gathered in idLine
	idLine    []byte // the id line so far (a fixed capacity: no growth)
	prefix    []byte // "id: {stream}.", empty when resume is off
	seq       uint64 // the last id's seq
}

// reset readies c for a response whose resumable stream is named stream
// ("" without resume).
func (c *relayCheck) reset(stream string) {
	c.pos, c.lineStart, c.inID, c.seq = 0, true, false, 0
	c.idLine = c.idLine[:0]
	c.prefix = c.prefix[:0]
	if stream != "" {
		c.prefix = append(append(append(c.prefix, "id: "...), stream...), '.')
	}
}

func (c *relayCheck) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.inID {
			i := bytes.IndexByte(p, '\n')
			seg := p
			if i >= 0 {
				seg = p[:i]
			}
			if len(c.idLine)+len(seg) > cap(c.idLine) {
				return 0, fmt.Errorf("after %d bytes of the workload: an id line longer than %d bytes", c.pos, cap(c.idLine))
			}
			c.idLine = append(c.idLine, seg...)
			if i < 0 {
				return n, nil
			}
			if err := c.endID(); err != nil {
				return 0, err
			}
			c.inID, c.lineStart, c.idLine = false, true, c.idLine[:0]
			p = p[i+1:]
			continue
		}
		// The workload's lines all begin with "data:" or are blank: a line
		// that begins with 'i' is the relay's. The bytes up to it (all of
		// p without resume) must be the workload's next ones.
		if c.lineStart && p[0] == 'i' && len(c.prefix) > 0 {
			c.inID = true
			continue
		}
		seg := p
		if len(c.prefix) > 0 {
			if i := bytes.Index(p, []byte("\ni")); i >= 0 {
				seg = p[:i+1]
			}
		}
		if !bytes.HasPrefix(c.want[c.pos:], seg) {
			return 0, c.differs(seg)
		}
		c.pos += len(seg)
		c.lineStart = seg[len(seg)-1] == '\n'
		p = p[len(seg):]
	}
	return n, nil
}

// differs describes where seg, the response's next bytes, leaves the
// workload.
func (c *relayCheck) differs(seg []byte) error {
	want := c.want[c.pos:]
	i := 0
	for i < len(seg) && i < len(want) && seg[i] == want[i] {
		i++
	}
	from := max(0, i-40)
	return fmt.Errorf("the response leaves the workload at its byte %d (after %d ids): got %q, want %q",
		c.pos+i, c.seq, seg[from:min(len(seg), i+40)], want[from:min(len(want), i+40)])
}

// endID checks the id line gathered: the stream's prefix, then the next seq.
func (c *relayCheck) endID() error {
	if !bytes.HasPrefix(c.idLine, c.prefix) || len(c.idLine) == len(c.prefix) {
		return fmt.Errorf("after %d bytes of the workload: id line %q, want the prefix %q and a seq", c.pos, c.idLine, c.prefix)
	}
	var seq uint64
	for _, d := range c.idLine[len(c.prefix):] {
		if d < '0' || d > '9' {
			return fmt.Errorf("after %d bytes of the workload: id line %q", c.pos, c.idLine)
		}
		seq = seq*10 + uint64(d-'0')
	}
	if seq != c.seq+1 {
		return fmt.Errorf("after %d bytes of the workload: id %d follows id %d", c.pos, seq, c.seq)
	}
	c.seq = seq
	return nil
}

// end checks that the response was the whole workload, and with resume on
// that its events, events of them, had ids 1 to events.
func (c *relayCheck) end(events int) error {
	switch {
	case c.inID || !c.lineStart:
		return errors.New("the response ends within a line")
	case c.pos != len(c.want):
		return fmt.Errorf("the response holds %d bytes of the workload's %d", c.pos, len(c.want))
	case len(c.prefix) > 0 && c.seq != uint64(events):
		return fmt.Errorf("the response's last id is %d, for %d events", c.seq, events)
	}
	return nil
}
