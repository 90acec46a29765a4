package sse_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

const ndjson = "application/x-ndjson"

func ollamaLine(i int) string {
	return fmt.Sprintf(`{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"tok%d "},"done":false}`+"\n", i)
}

const ollamaDone = `{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":1,"eval_count":3}` + "\n"

func geminiElem(i int) string {
	return fmt.Sprintf(`{"candidates":[{"content":{"parts":[{"text":"tok%d ]}\"["}],"role":"model"}}]}`, i)
}

// arrayResp is a 200 streamed JSON array answer to streamGenerateContent.
func arrayResp(end error, cfg sse.Config, chunks ...string) *http.Response {
	u, _ := url.Parse("https://generativelanguage.example/v1beta/models/m:streamGenerateContent")
	resp := &http.Response{
		StatusCode:    200,
		ContentLength: -1,
		Header:        http.Header{"Content-Type": {"application/json; charset=UTF-8"}, "X-Baseten-Request-Id": {"req-1"}},
		Body:          &chunkBody{chunks: chunks, end: end},
		Request:       &http.Request{Method: "POST", URL: u},
	}
	sse.Guard(resp, cfg)
	return resp
}

var lineCases = []verdictCase{
	{name: "ollama complete", ct: ndjson, chunks: []string{ollamaLine(0), ollamaLine(1), ollamaDone}, events: 3},
	{name: "ollama done without a final LF", ct: ndjson, chunks: []string{ollamaLine(0), strings.TrimSuffix(ollamaDone, "\n")}, events: 2},
	{name: "ollama cut at a line boundary before done", ct: ndjson, chunks: []string{ollamaLine(0), ollamaLine(1)},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2},
	{name: "ollama clean EOF mid-line", ct: ndjson, chunks: []string{ollamaLine(0), ollamaLine(1)[:30]},
		reason: "truncated", source: "platform", cause: sse.ErrPartialEvent, events: 1, deliver: ollamaLine(0)},
	{name: "ollama unexpected EOF mid-line", ct: ndjson, chunks: []string{ollamaLine(0), ollamaLine(1)[:30]}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", cause: io.ErrUnexpectedEOF, events: 1, deliver: ollamaLine(0)},
	{name: "ollama valid last line at a transport error is held back", ct: ndjson, chunks: []string{ollamaLine(0), `{"a":1}`}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", events: 1, deliver: ollamaLine(0)},
	{name: "ollama in-band error", ct: ndjson, chunks: []string{ollamaLine(0), `{"error":"llama runner process has terminated: signal: killed"}` + "\n"},
		reason: "model_error", source: "model", cause: sse.ErrInBand, events: 2},
	{name: "ollama reset after done is success", ct: ndjson, chunks: []string{ollamaLine(0), ollamaDone}, end: io.ErrUnexpectedEOF, events: 2},
	{name: "ollama done inside tool arguments is not the end", ct: ndjson, chunks: []string{ollamaLine(0),
		`{"model":"m","created_at":"t","message":{"tool_calls":[{"function":{"name":"f","arguments":{"done":true}}}]},"done":false}` + "\n"},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2},
	{name: "ollama done in a string is not the end", ct: ndjson, chunks: []string{ollamaLine(0),
		`{"model":"m","created_at":"t","message":{"content":"\"done\": true"},"done":false}` + "\n"},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2},
	{name: "ollama pretty done", ct: ndjson, chunks: []string{ollamaLine(0), `{"model": "m", "created_at": "t", "done" : true}` + "\r\n"}, events: 2},
	{name: "ollama one byte at a time", ct: ndjson, chunks: strings.Split(ollamaLine(0)+ollamaDone, ""), events: 2},
	{name: "generic lines clean end", ct: "application/jsonl", chunks: []string{`{"token":1}` + "\n", "\n", `{"token":2}` + "\n"}, events: 2},
	{name: "generic lines cut", ct: "application/jsonl", chunks: []string{`{"token":1}` + "\n"}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", events: 1},
	{name: "generic lines error", ct: "application/jsonl", chunks: []string{`{"token":1}` + "\n", `{"error":{"message":"boom","code":"rate_limit_exceeded"}}` + "\n"},
		reason: "rate_limited", source: "platform", events: 2},
	{name: "an error record after a BOM", ct: ndjson, chunks: []string{"\ufeff" + `{"error":"model not found"}` + "\n"},
		reason: "model_error", source: "model", events: 1},
	{name: "ollama after a BOM", ct: ndjson, chunks: []string{"\ufeff" + ollamaLine(0), ollamaLine(1)},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2},
	{name: "error null, false or empty is no error", ct: "application/jsonl", chunks: []string{`{"error":null,"token":"a"}` + "\n", `{"error" : false}` + "\n", `{"error":"","token":"b"}` + "\n"},
		events: 3},
	{name: "error after an error null", ct: "application/jsonl", chunks: []string{`{"error":null,"token":"a"}` + "\n", `{"error":"nullified"}` + "\n"},
		reason: "model_error", source: "model", events: 2},
	{name: "json-seq", ct: "application/json-seq", chunks: []string{"\x1e{\"a\":1}\n", "\x1e{\"error\":\"x\"}\n"},
		reason: "model_error", source: "model", events: 2},
	{name: "json-seq pretty-printed error", ct: "application/json-seq", chunks: []string{"\x1e{\"a\":1}\n", "\x1e{\n  \"error\": \"boom\"\n}\n"},
		reason: "model_error", source: "model", events: 2},
	{name: "json-seq pretty-printed error a byte at a time", ct: "application/json-seq", chunks: strings.Split("\x1e{\"a\":1}\n\x1e{\n  \"error\": \"boom\"\n}\n", ""),
		reason: "model_error", source: "model", events: 2},
	{name: "json-seq pretty-printed records", ct: "application/json-seq", chunks: []string{"\x1e{\n \"a\": \"x\\\"}\n\"\n}\n", "\x1e[1,\n2]\n", "\x1e7\n"}, events: 3},
	{name: "json-seq cut mid-record", ct: "application/json-seq", chunks: []string{"\x1e{\"a\":1}\n", "\x1e{\n \"b\":"}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", events: 1, deliver: "\x1e{\"a\":1}\n"},
	{name: "line over MaxEventBytes", ct: ndjson, chunks: []string{ollamaLine(0), strings.Repeat("x", 200)}, cfg: sse.Config{MaxEventBytes: 150},
		reason: "event_too_large", source: "model", cause: sse.ErrEventTooLarge, events: 1},
	{name: "user dialect on lines", ct: "application/jsonl", chunks: []string{"{\"t\":1}\n", "{\"end\":true}\n"},
		cfg: sse.Config{Dialects: []sse.Dialect{jsonEnd}}, events: 2},
	{name: "user dialect on lines, no end", ct: "application/jsonl", chunks: []string{"{\"t\":1}\n"},
		cfg: sse.Config{Dialects: []sse.Dialect{jsonEnd}}, reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 1},
	{name: "Ollama by predicate, error null", ct: ndjson, chunks: []string{`{"error":null,"model":"m"}` + "\n", ollamaDone},
		cfg: sse.Config{Dialects: []sse.Dialect{sse.Ollama}}, events: 2},
	{name: "Ollama by predicate", ct: ndjson, chunks: []string{ollamaLine(0)},
		cfg: sse.Config{Dialects: []sse.Dialect{sse.Ollama}}, reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 1},
}

var jsonEnd = sse.Dialect{
	Name:     "json-end",
	Detect:   func(_, data []byte) bool { return bytes.HasPrefix(data, []byte(`{"t"`)) },
	Terminal: func(_, data []byte) bool { return bytes.Equal(data, []byte(`{"end":true}`)) },
}

var arrayCases = []verdictCase{
	{name: "array complete", chunks: []string{"[", geminiElem(0), "\n,", geminiElem(1), "\n]"}, events: 2},
	{name: "array empty", chunks: []string{"[]"}},
	{name: "array quota error element", chunks: []string{"[", geminiElem(0), ",\n", `{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}`, "]"},
		reason: "rate_limited", source: "platform", events: 2},
	{name: "array missing ] after a BOM", chunks: []string{"\xef", "\xbb\xbf[", geminiElem(0), "\n,"},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 1},
	{name: "array missing ]", chunks: []string{"[", geminiElem(0), "\n,", geminiElem(1), "\n"},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2, deliver: "[" + geminiElem(0) + "\n," + geminiElem(1) + "\n"},
	{name: "array cut mid-element", chunks: []string{"[", geminiElem(0), "\n,", geminiElem(1)[:40]}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", events: 1, deliver: "[" + geminiElem(0) + "\n,"},
	{name: "array clean EOF mid-element", chunks: []string{"[", geminiElem(0), "\n,", geminiElem(1)[:40]},
		reason: "truncated", source: "platform", cause: sse.ErrPartialEvent, events: 1, deliver: "[" + geminiElem(0) + "\n,"},
	{name: "array error element", chunks: []string{"[", geminiElem(0), ",\n", `{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`, "]"},
		reason: "unavailable", source: "platform", cause: sse.ErrInBand, events: 2},
	{name: "array of scalars", chunks: []string{"[1, \"a\", true", ",null]"}, events: 4},
	{name: "array one byte at a time", chunks: strings.Split("["+geminiElem(0)+",\r\n"+geminiElem(1)+"]", ""), events: 2},
	{name: "not an array passes through", chunks: []string{`{"candidates":[]`}},
}

func TestLineVerdicts(t *testing.T) {
	run := func(t *testing.T, c verdictCase, resp *http.Response) {
		got, err := io.ReadAll(resp.Body)
		if c.reason == "" {
			want := c.deliver
			if want == "" {
				want = strings.Join(c.chunks, "")
			}
			if err != nil || string(got) != want {
				t.Fatalf("got %q, %v; want %q, success", got, err, want)
			}
			return
		}
		var se *streamguard.Error
		if !errors.As(err, &se) {
			t.Fatalf("err = %v (%T), want *streamguard.Error", err, err)
		}
		if se.Reason != c.reason || se.Source != c.source || se.Events != c.events {
			t.Errorf("verdict %s/%s after %d, want %s/%s after %d (%v)", se.Source, se.Reason, se.Events, c.source, c.reason, c.events, se)
		}
		if c.cause != nil && !errors.Is(err, c.cause) {
			t.Errorf("cause %v, want %v", se.Err, c.cause)
		}
		if se.Bytes != int64(len(got)) || se.StatusCode != 200 || se.RequestID != "req-1" {
			t.Errorf("Bytes %d (read %d), status %d, request ID %q", se.Bytes, len(got), se.StatusCode, se.RequestID)
		}
		if c.deliver != "" && string(got) != c.deliver {
			t.Errorf("delivered %q, want %q", got, c.deliver)
		}
	}
	for _, c := range lineCases {
		t.Run(c.name, func(t *testing.T) { run(t, c, guarded(c.ct, c.end, c.cfg, append([]string(nil), c.chunks...)...)) })
	}
	for _, c := range arrayCases {
		t.Run(c.name, func(t *testing.T) { run(t, c, arrayResp(c.end, c.cfg, append([]string(nil), c.chunks...)...)) })
	}
}

// Whole records only, however the reads split the stream.
func TestLinesDeliverWholeRecordsOnly(t *testing.T) {
	stream := ollamaLine(0) + ollamaLine(1) + ollamaLine(2) + ollamaDone
	for split := 1; split < len(stream); split += 5 {
		var chunks []string
		for i := 0; i < len(stream); i += split {
			chunks = append(chunks, stream[i:min(i+split, len(stream))])
		}
		resp := guarded(ndjson, nil, sse.Config{}, chunks...)
		buf := make([]byte, 64)
		var got []byte
		for {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if n > 0 && !bytes.HasSuffix(got, []byte("\n")) && len(got) < len(stream) {
				// A read may end inside a record only when the
				// caller's buffer is smaller than that record.
				if !strings.HasPrefix(stream, string(got)) {
					t.Fatalf("split %d: delivered %q", split, got)
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("split %d: %v", split, err)
			}
		}
		if string(got) != stream {
			t.Fatalf("split %d: got %q", split, got)
		}
	}
}

// The failure record: one JSON line that Ollama's client reads as an error
// (a string "error") and ClassifyEvent reads back as the same failure.
func TestFailureRecord(t *testing.T) {
	resp := guarded(ndjson, io.ErrUnexpectedEOF, sse.Config{FailureEvent: true}, ollamaLine(0), ollamaLine(1)[:20])
	got, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonTruncated {
		t.Fatalf("err = %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 2 || lines[0]+"\n" != ollamaLine(0) {
		t.Fatalf("delivered %q", got)
	}
	var rec struct {
		Error  string `json:"error"`
		Source string `json:"source"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.Error != se.Error() || rec.Reason != "truncated" || rec.Source != "network" {
		t.Fatalf("record %s: %+v, %v", lines[1], rec, err)
	}
	back := streamguard.ClassifyEvent([]byte(lines[1]))
	if back.Source != se.Source || back.Reason != se.Reason || !back.Retryable {
		t.Fatalf("ClassifyEvent read back %+v", back)
	}
	// A relayed failure record is the in-band error of the next guard.
	resp = guarded(ndjson, nil, sse.Config{}, string(got))
	_, err = io.ReadAll(resp.Body)
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonTruncated || se.Source != streamguard.SourceNetwork || !errors.Is(err, sse.ErrInBand) {
		t.Fatalf("relayed: %v", err)
	}
}

func TestFailureRecordFramings(t *testing.T) {
	cases := []struct {
		name   string
		resp   *http.Response
		prefix string // what comes before the record's JSON object
		suffix string
	}{
		{"unterminated last line", guarded(ndjson, nil, sse.Config{FailureEvent: true}, ollamaLine(0), `{"model":"m","created_at":"t","done":false}`), "\n", "\n"},
		{"json-seq", guarded("application/json-seq", io.ErrUnexpectedEOF, sse.Config{FailureEvent: true}, "\x1e{}\n"), "\x1e", "\n"},
		{"array after an element", arrayResp(io.ErrUnexpectedEOF, sse.Config{FailureEvent: true}, "[", geminiElem(0), "\n,{"), ",", "]\n"},
		{"array after a comma", arrayResp(io.ErrUnexpectedEOF, sse.Config{FailureEvent: true}, "[", geminiElem(0), ","), "", "]\n"},
		{"array before its [", arrayResp(io.ErrUnexpectedEOF, sse.Config{FailureEvent: true}, " "), "[", "]\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := io.ReadAll(c.resp.Body)
			var se *streamguard.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v", err)
			}
			rec := sse.AppendFailureRecord(nil, ndjson, se)
			want := c.prefix + strings.TrimSuffix(string(rec), "\n") + c.suffix
			if !strings.HasSuffix(string(got), want) {
				t.Fatalf("got %q, want it to end %q", got, want)
			}
			if c.resp.Header.Get("Content-Type") != ndjson && c.prefix != "\x1e" && c.name != "array before its [" {
				// The array stays parseable, the record its last element.
				var elems []json.RawMessage
				if err := json.Unmarshal(got, &elems); err != nil {
					t.Fatalf("array %q: %v", got, err)
				}
			}
		})
	}
	// An array already closed takes no record: its error element says it.
	resp := arrayResp(nil, sse.Config{FailureEvent: true}, "[", `{"error":{"code":500,"message":"x"}}`, "]")
	got, err := io.ReadAll(resp.Body)
	if err == nil || string(got) != `[{"error":{"code":500,"message":"x"}}]` {
		t.Fatalf("got %q, %v", got, err)
	}
}

// Whatever an error holds, its failure record is one line of JSON whose
// "error" is a string.
func TestFailureRecordInjection(t *testing.T) {
	for _, msg := range []string{"a\nb", "\n{\"done\":true}\n", "x\u2028y\r\n\x1e", strings.Repeat("é", 3000)} {
		rec := sse.AppendFailureRecord(nil, ndjson, &streamguard.Error{Source: "model", Reason: streamguard.Reason(msg), Message: msg, Code: msg, RequestID: msg})
		assertOneRecord(t, rec)
		assertOneRecord(t, sse.AppendFailureRecord(nil, ndjson, errors.New(msg)))
	}
}

func assertOneRecord(t *testing.T, rec []byte) {
	t.Helper()
	if bytes.Count(rec, []byte("\n")) != 1 || rec[len(rec)-1] != '\n' || bytes.ContainsAny(rec, "\r\x1e") {
		t.Fatalf("record %q is not one line", rec)
	}
	var v struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(rec, &v); err != nil || v.Error == nil {
		t.Fatalf("record %q: %v", rec, err)
	}
}

func TestIsJSONLines(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/x-ndjson": true, "Application/X-NDJSON; charset=utf-8": true, " application/jsonl": true,
		"application/json-seq": true, "application/jsonlines": true,
		"application/json": false, "text/event-stream": false, "": false, "application/x-ndjsonx": false, "text/x-ndjson": false,
	} {
		if got := sse.IsJSONLines(ct); got != want {
			t.Errorf("IsJSONLines(%q) = %v", ct, got)
		}
	}
	// application/json is a streamed array only for streamGenerateContent
	// of unknown length.
	u, _ := url.Parse("http://x/v1/models/m:generateContent")
	resp := &http.Response{StatusCode: 200, ContentLength: -1, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader("[{}")), Request: &http.Request{URL: u}}
	sse.Guard(resp, sse.Config{})
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "[{}" {
		t.Fatalf("a JSON answer was judged: %q %v", b, err)
	}
}

// The built-in Ollama judge says what the Ollama dialect value says.
func TestOllamaDialectMatchesBuiltin(t *testing.T) {
	recs := []string{ollamaLine(0), ollamaDone, `{"error":"x"}`, `{"model":"m","created_at":"t","message":{"content":"{\"done\":true}"},"done":false}`,
		`{"done":true}`, `{"model":"m","created_at":"t","done" :  true}`, `{"model":"m","x":{"done":true},"created_at":"t","done":false}`}
	for _, r := range recs {
		r = strings.TrimSpace(r)
		for _, withPredicates := range []bool{false, true} {
			cfg := sse.Config{}
			if withPredicates {
				cfg.Dialects = []sse.Dialect{sse.Ollama}
			}
			resp := guarded(ndjson, nil, cfg, ollamaLine(0), r+"\n")
			_, err := io.ReadAll(resp.Body)
			t.Logf("%v %s: %v", withPredicates, r, err)
			if withPredicates {
				continue
			}
			resp2 := guarded(ndjson, nil, sse.Config{Dialects: []sse.Dialect{sse.Ollama}}, ollamaLine(0), r+"\n")
			_, err2 := io.ReadAll(resp2.Body)
			if fmt.Sprint(err) != fmt.Sprint(err2) {
				t.Errorf("%s: built-in %v, predicates %v", r, err, err2)
			}
		}
	}
}

func TestLinesAllocations(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		b.WriteString(ollamaLine(i))
	}
	b.WriteString(ollamaDone)
	data := []byte(b.String())
	buf := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(5, func() {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ndjson}}, Body: io.NopCloser(bytes.NewReader(data))}
		sse.Guard(resp, sse.Config{})
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Fatalf("%v allocations for 2001 records", allocs)
	}
}

// scanRecords is the reference framing: bufio.Scanner's lines, those that
// hold more than spaces.
func scanRecords(data []byte) (records int, whole int) {
	s := bufio.NewScanner(bytes.NewReader(data))
	s.Buffer(nil, len(data)+1)
	for s.Scan() {
		if len(bytes.Trim(s.Bytes(), " \t\r\x1e")) > 0 {
			records++
		}
	}
	return records, len(data)
}

// TestLinesNoRecords: a 2xx JSON-lines body that ends cleanly without a
// record, empty or announced without a body, is no_events, as an event
// stream without an event is.
func TestLinesNoRecords(t *testing.T) {
	for _, body := range []io.ReadCloser{io.NopCloser(strings.NewReader("")), io.NopCloser(strings.NewReader("\n\n")), http.NoBody} {
		req, _ := http.NewRequest(http.MethodPost, "http://x/api/chat", nil)
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-ndjson"}}, Body: body, Request: req}
		sse.Guard(resp, sse.Config{})
		_, err := io.ReadAll(resp.Body)
		var se *streamguard.Error
		if !errors.As(err, &se) || se.Reason != streamguard.ReasonNoEvents || !strings.Contains(se.Message, "JSON stream ended without any JSON line") {
			t.Fatalf("%v", err)
		}
	}
}

// A stream cut inside its unit names it, with its article.
func TestTruncatedUnitNamed(t *testing.T) {
	for ct, want := range map[string]string{
		ndjson:                 "in the middle of a JSON line",
		"application/json-seq": "in the middle of a JSON text",
		"text/event-stream":    "in the middle of an event",
	} {
		_, err := io.ReadAll(guarded(ct, nil, sse.Config{}, "data: 1\n\n", "\x1e{\"a\":").Body)
		var se *streamguard.Error
		if !errors.As(err, &se) || se.Reason != streamguard.ReasonTruncated || !strings.Contains(se.Message, want) {
			t.Errorf("%s: %v; want a truncation %q", ct, err, want)
		}
	}
}

// A JSON text sequence may end with an RS with no text after it (an empty
// record, which RFC 7464 parsers skip): a clean end, every byte delivered.
func TestSeqEndsWithEmptyRecord(t *testing.T) {
	for _, body := range []string{"\x1e{\"a\":1}\n\x1e", "\x1e{\"a\":1}\n\x1e\n", "\x1e{\"a\":1}\n\x1e\x1e \n", "\x1e\x1e{\"a\":1}\n"} {
		got, err := io.ReadAll(guarded("application/json-seq", nil, sse.Config{}, body).Body)
		if err != nil || string(got) != body {
			t.Errorf("%q: delivered %q, %v; want all of it and a clean end", body, got, err)
		}
	}
}
