package middleware_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
)

// BenchmarkResumable serves a stream like the benchmarks' workload A
// (100,000 chat-chunk events of about 120 bytes, written and flushed 64 at a
// time) from memory into a ResponseWriter that discards it: NewHandler
// without resume (the floor), with resume and a store that keeps nothing
// (the framing: ids, batches), and with the memory store, full before
// timing (the store's copy into memory it last used one store size ago).
//
//	go test -run '^$' -bench Resumable -benchmem ./middleware
func BenchmarkResumable(b *testing.B) {
	chunks, size := chatChunks(100_000, 64)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, c := range chunks {
			w.Write(c)
			f.Flush()
		}
	})
	for _, row := range []struct {
		name  string
		store resume.Store
	}{
		{"plain", nil},
		{"resume-discard", discardStore{resume.NewMemoryStore(resume.MemoryConfig{})}},
		{"resume-memory", resume.NewMemoryStore(resume.MemoryConfig{})},
	} {
		b.Run("via="+row.name, func(b *testing.B) {
			var cfg middleware.ServerConfig
			if row.store != nil {
				cfg.Resume = &middleware.ResumeConfig{Store: row.store}
			}
			h := middleware.NewHandler(handler, cfg)
			serve := func() {
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
				if w.n < size {
					b.Fatalf("wrote %d of %d bytes", w.n, size)
				}
			}
			for range 32 { // a full memory store: 256 MiB of streams of 8.4 MB
				serve()
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}

// chatChunks returns n OpenAI chat-chunk events in writes of per events,
// and their size.
func chatChunks(n, per int) ([][]byte, int) {
	var chunks [][]byte
	var buf bytes.Buffer
	size := 0
	for i := range n {
		fmt.Fprintf(&buf, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%06d\"}}]}\n\n", i)
		if (i+1)%per == 0 || i == n-1 {
			chunks = append(chunks, bytes.Clone(buf.Bytes()))
			size += buf.Len()
			buf.Reset()
		}
	}
	return chunks, size
}

// discardStore is a memory store whose Append keeps nothing.
type discardStore struct{ *resume.MemoryStore }

func (discardStore) Append(context.Context, string, []resume.Event) error { return nil }

// discardWriter is a ResponseWriter that counts what it is given.
type discardWriter struct {
	h    http.Header
	n    int
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) Flush()                      {}
