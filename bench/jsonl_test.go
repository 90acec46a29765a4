package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/streamguard/streamguard/sse"
)

// Workload J: 100,000 Ollama /api/chat records of about 120 bytes, one
// JSON object per line (application/x-ndjson), ending in the "done": true
// record: workload A's size, in Ollama's framing.
const recordsJ = 100_000

var (
	onceJ   sync.Once
	streamJ []byte
)

// workloadJ returns the bytes of workload J, generated once.
func workloadJ() []byte {
	onceJ.Do(func() {
		var b bytes.Buffer
		for i := range recordsJ {
			fmt.Fprintf(&b, "{\"model\":\"llama3.2\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"t%06d\"},\"done\":false}\n", i)
		}
		b.WriteString(`{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":100000}` + "\n")
		streamJ = b.Bytes()
	})
	return streamJ
}

// ndjsonResponse returns a 200 application/x-ndjson response over data in
// memory.
func ndjsonResponse(data []byte) *http.Response {
	return &http.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {"application/x-ndjson"}},
		Body:       io.NopCloser(bytes.NewReader(data)),
	}
}

// BenchmarkJSONLines reads workload J from memory: raw (the floor), with a
// bare bufio.Scanner (the least a JSON-lines consumer does: Ollama's client
// is one), through the guard, and through the guard and a Scanner, the way
// Ollama's client reads a guarded body. Run:
//
//	go test -run '^$' -bench JSONLines -benchmem -count 6
func BenchmarkJSONLines(b *testing.B) {
	data := workloadJ()
	buf := make([]byte, 32<<10)
	b.Run("J/raw", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := drain(ndjsonResponse(data).Body, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("J/scanner", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if n, err := scanLines(ndjsonResponse(data).Body); err != nil || n != recordsJ+1 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("J/guard", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			resp := ndjsonResponse(data)
			sse.Guard(resp, sse.Config{})
			if n, err := drain(resp.Body, buf); err != nil || n != int64(len(data)) {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(testing.AllocsPerRun(1, func() {
			resp := ndjsonResponse(data)
			sse.Guard(resp, sse.Config{})
			drain(resp.Body, buf)
		}))/float64(recordsJ+1), "allocs/record")
	})
	b.Run("J/guard+scanner", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			resp := ndjsonResponse(data)
			sse.Guard(resp, sse.Config{})
			if n, err := scanLines(resp.Body); err != nil || n != recordsJ+1 {
				b.Fatal(n, err)
			}
		}
	})
}

// scanLines counts the lines of r as Ollama's client splits them.
func scanLines(r io.Reader) (int, error) {
	s := bufio.NewScanner(r)
	n := 0
	for s.Scan() {
		n++
	}
	return n, s.Err()
}
