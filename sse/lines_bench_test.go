package sse_test

import (
	"io"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/sse"
)

// benchJSONFraming reads 2,000 Ollama records of about 480 bytes (and
// the last), each after sep, through the guard.
func benchJSONFraming(b *testing.B, ct, sep string) {
	rec := `{"model":"m","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"` + strings.Repeat("lorem ipsum dolor sit amet ", 14) + `"},"done":false}` + "\n"
	var sb strings.Builder
	for range 2000 {
		sb.WriteString(sep + rec)
	}
	sb.WriteString(sep + `{"model":"m","created_at":"2024-01-01T00:00:00Z","done":true}` + "\n")
	body := sb.String()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp := guarded(ct, nil, sse.Config{}, body)
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONFraming: JSON lines are framed at their LFs; a JSON text
// sequence's records by following their values (a record may span lines),
// its strings skipped to their next quote, backslash or RS.
func BenchmarkJSONFraming(b *testing.B) {
	b.Run("ct=ndjson", func(b *testing.B) { benchJSONFraming(b, ndjson, "") })
	b.Run("ct=json-seq", func(b *testing.B) { benchJSONFraming(b, "application/json-seq", "\x1e") })
}
