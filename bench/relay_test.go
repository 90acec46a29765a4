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
// server, and reads it raw: through httputil.ReverseProxy (the floor), and
// through the library's relay, middleware.Relay inside NewHandler with
// resumable streams on (the in-memory store: every event gets an id and is
// stored before it is sent). It reports allocs/event for the whole process
// (the upstream, the front and the reader), the same for both rows apart
// from the relay's own.
//
//	cd bench && go test -run '^$' -bench Relay -benchmem -count 6
func BenchmarkRelay(b *testing.B) {
	w := streamWorkloads()[0] // A
	upstream := startLoopback(b, "h1", streamHandler([]workload{w}))
	upURL, _ := url.Parse(upstream.srv.URL)
	fronts := []struct {
		name string
		h    func() http.Handler
	}{
		{"reverseproxy", func() http.Handler {
			rp := httputil.NewSingleHostReverseProxy(upURL)
			rp.FlushInterval = -1
			rp.Transport = upstream.rawTransport(b)
			return rp
		}},
		{"relay", func() http.Handler {
			client := middleware.NewClient(middleware.Config{Base: upstream.rawTransport(b)})
			return middleware.NewHandler(middleware.Relay(upURL, client), middleware.ServerConfig{})
		}},
		{"relay-resume-memory", func() http.Handler {
			client := middleware.NewClient(middleware.Config{Base: upstream.rawTransport(b)})
			return middleware.NewHandler(middleware.Relay(upURL, client), middleware.ServerConfig{Resume: &middleware.ResumeConfig{}})
		}},
		{"relay-resume-memory32", func() http.Handler {
			client := middleware.NewClient(middleware.Config{Base: upstream.rawTransport(b)})
			store := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 32 << 20})
			return middleware.NewHandler(middleware.Relay(upURL, client), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}})
		}},
	}
	for _, f := range fronts {
		b.Run("via="+f.name, func(b *testing.B) {
			front := startLoopback(b, "h1", f.h())
			client := &http.Client{Transport: front.rawTransport(b)}
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(w.data)))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			// Steady state first: 20 streams (240 MB) fill the default
			// store, which from then on forgets the oldest and reuses
			// their memory, as a long-running relay's store does.
			for range 20 {
				resp, err := client.Get(front.srv.URL + "/" + w.name)
				if err != nil {
					b.Fatal(err)
				}
				io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
			}
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
