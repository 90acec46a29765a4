package middleware_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
)

const ollamaRecord = `{"model":"m","created_at":"t","message":{"role":"assistant","content":"x"},"done":false}` + "\n"

// ollamaRead reads a JSON-lines body as Ollama's client does (a Scanner;
// each line's "error", a string, is the error; a read error ends the loop
// silently): the records before the error, and the error.
func ollamaRead(body io.Reader) (records int, err error) {
	s := bufio.NewScanner(body)
	for s.Scan() {
		var v struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(s.Bytes(), &v) != nil {
			return records, errors.New(s.Text())
		}
		if v.Error != "" {
			return records, errors.New(v.Error)
		}
		records++
	}
	return records, nil
}

// After a JSON-lines header, WriteError ends the stream with one failure
// record at a line boundary, and the stream ends cleanly.
func TestWriteErrorJSONLines(t *testing.T) {
	for _, ct := range []string{"application/x-ndjson", "application/json-seq"} {
		protocols(t, func(t *testing.T, h2 bool) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ct)
				writeFlush(w, ollamaRecord)
				writeFlush(w, ollamaRecord)
				middleware.WriteError(w, r, &streamguard.Error{Source: streamguard.SourceNetwork, Reason: streamguard.ReasonTruncated,
					StatusCode: 200, Message: "upstream cut\n{\"done\":true}", Retryable: true})
				if _, err := io.WriteString(w, ollamaRecord); err == nil {
					t.Error("a write after WriteError succeeded")
				}
			})
			srv := serve(t, h2, middleware.ServerConfig{}, h)
			_, body, err := rawGet(t, srv, "/")
			if err != nil {
				t.Fatalf("the stream did not end cleanly: %v", err)
			}
			lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
			if len(lines) != 3 {
				t.Fatalf("body %q", body)
			}
			rec := lines[2]
			if ct == "application/json-seq" {
				if rec[0] != 0x1e {
					t.Fatalf("json-seq record without its RS: %q", rec)
				}
				return
			}
			back := streamguard.ClassifyEvent([]byte(rec))
			if back.Source != streamguard.SourceNetwork || back.Reason != streamguard.ReasonTruncated {
				t.Fatalf("record %s read back as %v", rec, back)
			}
			n, oerr := ollamaRead(bytes.NewReader(body))
			if n != 2 || oerr == nil || !strings.Contains(oerr.Error(), "network truncated") {
				t.Fatalf("Ollama's reading: %d records, %v", n, oerr)
			}
		})
	}
}

// Inside a line, WriteError aborts: a record there would merge into the
// handler's half line.
func TestWriteErrorJSONLinesMidLine(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			writeFlush(w, ollamaRecord)
			writeFlush(w, ollamaRecord[:10])
			middleware.WriteError(w, r, errors.New("boom"))
		})
		srv := serve(t, h2, middleware.ServerConfig{}, h)
		_, body, err := rawGet(t, srv, "/")
		if err == nil {
			t.Fatalf("an aborted stream ended cleanly: %q", body)
		}
		if strings.Contains(string(body), `"error"`) {
			t.Fatalf("a record inside a line: %q", body)
		}
	})
}

// The budget's failure after the 200 of a JSON-lines stream is a record.
func TestBudgetJSONLines(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		writeFlush(w, ollamaRecord)
		<-r.Context().Done()
	})
	srv := serve(t, false, middleware.ServerConfig{Budget: 50 * time.Millisecond}, h)
	_, body, err := rawGet(t, srv, "/")
	if err != nil {
		t.Fatalf("err %v", err)
	}
	n, oerr := ollamaRead(bytes.NewReader(body))
	if n != 1 || oerr == nil || !strings.Contains(oerr.Error(), "platform timeout") {
		t.Fatalf("Ollama's reading of %q: %d records, %v", body, n, oerr)
	}
}

// In a JSON text sequence, WriteError writes its record even inside the
// handler's record, inside a line or not: its RS begins a record of its
// own, and an RFC 7464 parser drops the one it cut short. The stream ends
// cleanly with the failure as its last record.
func TestWriteErrorJSONSeqInsideRecord(t *testing.T) {
	for _, cut := range []string{"\x1e{\n \"b\": ", "\x1e{\n \"b\": 1,\n", "\x1e{\"b\":\"x\\"} {
		protocols(t, func(t *testing.T, h2 bool) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json-seq")
				writeFlush(w, "\x1e{\n \"a\": 1\n}\n")
				writeFlush(w, cut)
				middleware.WriteError(w, r, &streamguard.Error{Source: streamguard.SourceNetwork, Reason: streamguard.ReasonTruncated,
					StatusCode: 200, Message: "upstream cut", Retryable: true})
			})
			srv := serve(t, h2, middleware.ServerConfig{}, h)
			_, body, err := rawGet(t, srv, "/")
			if err != nil {
				t.Fatalf("cut %q: the stream did not end cleanly: %v (%q)", cut, err, body)
			}
			// RFC 7464 section 2.4: split at RS; a text not ending in LF,
			// or not valid JSON, is dropped.
			var texts []string
			for _, p := range strings.Split(string(body), "\x1e")[1:] {
				if strings.HasSuffix(p, "\n") && json.Valid([]byte(p)) {
					texts = append(texts, p)
				}
			}
			if len(texts) != 2 || texts[0] != "{\n \"a\": 1\n}\n" {
				t.Fatalf("cut %q: texts %q of %q", cut, texts, body)
			}
			back := streamguard.ClassifyEvent([]byte(texts[1]))
			if back.Source != streamguard.SourceNetwork || back.Reason != streamguard.ReasonTruncated {
				t.Fatalf("cut %q: record %s read back as %v", cut, texts[1], back)
			}
		})
	}
}
