package bench

import (
	"context"
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
// reader), the ceiling any store could reach. It reports allocs/event for
// the whole process (the
// upstream, the front and the reader), the same for all rows apart from
// the front's own.
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
	fronts := []struct {
		name  string
		store func(*testing.B) (resume.Store, func() bool) // and whether it is full
		h     func(resume.Store) http.Handler
	}{
		{"reverseproxy", nil, func(resume.Store) http.Handler { return proxy() }},
		{"reverseproxy-resume-memory", mem(resume.DefaultMaxBytes), func(store resume.Store) http.Handler {
			return middleware.NewHandler(proxy(), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}})
		}},
		{"relay", nil, relay},
		{"relay-resume-memory", mem(resume.DefaultMaxBytes), relay},
		{"relay-resume-memory32", mem(32 << 20), relay},
		{"relay-resume-redis", redisStore, relay},
		{"relay-resume-discard", func(*testing.B) (resume.Store, func() bool) {
			return discardStore{resume.NewMemoryStore(resume.MemoryConfig{})}, func() bool { return true }
		}, relay},
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
func relayRow(b *testing.B, w workload, h http.Handler, store resume.Store, full func() bool) {
	front := startLoopback(b, "h1", h)
	client := &http.Client{Transport: front.rawTransport(b)}
	buf := make([]byte, 32<<10)
	get := func() int64 {
		resp, err := client.Get(front.srv.URL + "/" + w.name)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		if err != nil || n < int64(len(w.data)) {
			b.Fatalf("read %d of %d bytes: %v", n, len(w.data), err)
		}
		return n
	}
	warm := 20
	if _, ok := store.(*resume.RedisStore); ok {
		warm = 3
	}
	for i := 0; i < 400 && (i < warm || !full()); i++ {
		get()
	}
	b.SetBytes(int64(len(w.data)))
	b.ReportAllocs()
	loopPerEvent(b, w.events, func() { get() })
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
// drops them. Only the relay-resume-discard row uses it: a resume of its
// streams would find nothing.
type discardStore struct{ *resume.MemoryStore }

func (discardStore) Append(context.Context, string, []resume.Event) error { return nil }
