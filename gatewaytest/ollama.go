package gatewaytest

import (
	"fmt"
	"io"
	"net/http"
)

// OllamaStream streams n Ollama /api/chat records and then the record with
// "done": true, one JSON object per line as application/x-ndjson, as
// Ollama's /api/chat does. The gateway's stream faults count its records as
// events: Cut(k) sends k records and half of the next, EndEarly(k) ends
// cleanly after k records, without the done record.
func OllamaStream(n int) http.Handler {
	return ndjsonStream(func(w io.Writer, i int) {
		if i < n {
			fmt.Fprintf(w, "%s\n", OllamaChunk(i))
			return
		}
		fmt.Fprintf(w, `{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":%d,"prompt_eval_count":8,"eval_count":%d}`+"\n", 1000*n, n)
	}, n+1)
}

// OllamaChunk returns the JSON of the i-th record OllamaStream sends.
func OllamaChunk(i int) string {
	return fmt.Sprintf(`{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"tok%d "},"done":false}`, i)
}

// OllamaError streams n Ollama records and then an error line
// {"error": message}, as Ollama does when its runner dies after the 200.
func OllamaError(n int, message string) http.Handler {
	return ndjsonStream(func(w io.Writer, i int) {
		if i < n {
			fmt.Fprintf(w, "%s\n", OllamaChunk(i))
			return
		}
		fmt.Fprintf(w, "{\"error\":%q}\n", message)
	}, n+1)
}

// JSONArrayStream streams n Gemini generateContent responses as a JSON
// array, each element on a line of its own ([{...}\n,{...}\n]), as
// application/json of unknown length, as streamGenerateContent does
// without alt=sse. Call it on a path that names streamGenerateContent for
// the guard to judge it.
func JSONArrayStream(n int) http.Handler {
	return ndjsonStreamOf("application/json; charset=UTF-8", func(w io.Writer, i int) {
		switch {
		case i == 0 && n == 0:
			io.WriteString(w, "[")
		case i == 0:
			fmt.Fprintf(w, "[%s\n", GeminiChunk(0))
		case i < n:
			fmt.Fprintf(w, ",%s\n", GeminiChunk(i))
		default:
			io.WriteString(w, "]\n")
		}
	}, max(n, 1)+1)
}

// GeminiChunk returns the JSON of the i-th element JSONArrayStream sends.
func GeminiChunk(i int) string {
	return fmt.Sprintf(`{"candidates":[{"content":{"parts":[{"text":"tok%d "}],"role":"model"},"index":0}],"modelVersion":"gemini"}`, i)
}

// ndjsonStream writes records 0..count-1 of a JSON-lines stream, flushing
// each.
func ndjsonStream(record func(w io.Writer, i int), count int) http.Handler {
	return ndjsonStreamOf("application/x-ndjson", record, count)
}

func ndjsonStreamOf(ct string, record func(w io.Writer, i int), count int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := 0; i < count; i++ {
			if r.Context().Err() != nil {
				return
			}
			record(w, i)
			if rc.Flush() != nil {
				return
			}
		}
	})
}
