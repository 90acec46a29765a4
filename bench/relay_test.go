package bench

import (
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"testing"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
)

// BenchmarkRelay relays workload A over loopback HTTP/1.1 through a front
// server, and reads it raw: through httputil.ReverseProxy (the floor); the
// same inside NewHandler with resumable streams on (the in-memory store:
// every event gets an id and is stored before it is sent), the cost of
// resume alone; the library's relay, middleware.Relay through the client
// stack inside NewHandler, without resume and with it (the default store
// and a small one). It reports allocs/event for the whole process (the
// upstream, the front and the reader), the same for all rows apart from
// the front's own.
//
//	cd bench && go test -run '^$' -bench Relay -benchmem -count 6
func BenchmarkRelay(b *testing.B) {
	w := streamWorkloads()[0] // A
	upstream := startLoopback(b, "h1", streamHandler([]workload{w}))
	upURL, _ := url.Parse(upstream.srv.URL)
	relay := func(store *resume.MemoryStore) http.Handler {
		client := middleware.NewClient(middleware.Config{Base: upstream.rawTransport(b)})
		var cfg middleware.ServerConfig
		if store != nil {
			cfg.Resume = &middleware.ResumeConfig{Store: store}
		}
		return middleware.NewHandler(middleware.Relay(upURL, client), cfg)
	}
	fronts := []struct {
		name  string
		store *resume.MemoryStore // filled before timing
		max   int64               // its MaxBytes
		h     func(*resume.MemoryStore) http.Handler
	}{
		{"reverseproxy", nil, 0, func(*resume.MemoryStore) http.Handler {
			rp := httputil.NewSingleHostReverseProxy(upURL)
			rp.FlushInterval = -1
			rp.Transport = upstream.rawTransport(b)
			return rp
		}},
		{"reverseproxy-resume-memory", resume.NewMemoryStore(resume.MemoryConfig{}), resume.DefaultMaxBytes, func(store *resume.MemoryStore) http.Handler {
			rp := httputil.NewSingleHostReverseProxy(upURL)
			rp.FlushInterval = -1
			rp.Transport = upstream.rawTransport(b)
			return middleware.NewHandler(rp, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}})
		}},
		{"relay", nil, 0, relay},
		{"relay-resume-memory", resume.NewMemoryStore(resume.MemoryConfig{}), resume.DefaultMaxBytes, relay},
		{"relay-resume-memory32", resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 32 << 20}), 32 << 20, relay},
	}
	for _, f := range fronts {
		b.Run("via="+f.name, func(b *testing.B) {
			front := startLoopback(b, "h1", f.h(f.store))
			client := &http.Client{Transport: front.rawTransport(b)}
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(w.data)))
			b.ReportAllocs()
			// Steady state first, as in a long-running relay: the store
			// full (it then forgets the oldest streams and reuses their
			// memory), the heap grown; 20 streams at least, 400 at most.
			for i := 0; i < 400 && (i < 20 || f.store != nil && !full(f.store, f.max)); i++ {
				resp, err := client.Get(front.srv.URL + "/" + w.name)
				if err != nil {
					b.Fatal(err)
				}
				io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ops := 0
			for b.Loop() {
				resp, err := client.Get(front.srv.URL + "/" + w.name)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if err != nil || n < int64(len(w.data)) {
					b.Fatalf("read %d of %d bytes: %v", n, len(w.data), err)
				}
				ops++
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(ops)/float64(w.events), "allocs/event")
		})
	}
}

// full reports whether a store holds 90 % of max bytes or more.
func full(s *resume.MemoryStore, max int64) bool {
	_, n := s.Len()
	return n >= max/10*9
}
