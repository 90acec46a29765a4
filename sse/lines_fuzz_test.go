package sse_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// endReader is a splitReader whose end is end instead of io.EOF.
type endReader struct {
	splitReader
	end error
}

func (r *endReader) Read(p []byte) (int, error) {
	n, err := r.splitReader.Read(p)
	if err == io.EOF {
		err = r.end
	}
	return n, err
}

// FuzzLines is a differential test of the JSON-lines framing against
// bufio.Scanner and encoding/json: for any bytes, split across reads in any
// way, ended cleanly or by a transport error, the guard delivers exactly the
// whole lines (and, at a clean end, a last line without its LF that is whole
// JSON), counts as records the lines the Scanner finds that are not blank,
// and returns the verdict the framing implies; with FailureEvent, one more
// line that encoding/json reads as {"error": "<string>", ...}.
//
// Run it longer with: go test -run '^$' -fuzz FuzzLines -fuzztime 5m ./sse/
func FuzzLines(f *testing.F) {
	for _, c := range lineCases {
		var all, splits []byte
		for _, ch := range c.chunks {
			all = append(all, ch...)
			splits = append(splits, byte(max(0, min(len(ch)-1, 255))))
		}
		f.Add(all, splits, false, c.end != nil, c.ct == "application/json-seq")
	}
	f.Add([]byte("{\"a\":1}\r\n\n  \n{\"b\":2}"), []byte{0, 3, 1}, true, false, false)
	f.Add([]byte("\x1e{\"a\":1}\n\x1e[1,2"), []byte{2}, true, true, true)
	f.Add([]byte("\n\n\n{\"error\":\"x\"}\n"), []byte{}, true, false, false)
	// The last argument said json-seq, which frames records by RS, not by
	// line (FuzzSeq's): it stays in the signature, for the corpus.
	f.Fuzz(func(t *testing.T, data, splits []byte, failureEvent, cut, _ bool) {
		ct := ndjson
		var end error = io.EOF
		if cut {
			end = io.ErrUnexpectedEOF
		}
		// The reference: whole lines, and a valid unterminated last line at
		// a clean end.
		whole := data[:bytes.LastIndexByte(data, '\n')+1]
		tail := bytes.Trim(data[len(whole):], " \t\r\n\x1e")
		partial := false
		if len(data) > len(whole) {
			if !cut && (len(tail) == 0 || json.Valid(tail)) {
				whole = data
			} else {
				partial = true
			}
		}
		records, inBand, judged := scanJSONLines(whole)

		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}},
			Body: &endReader{splitReader{data: data, splits: splits}, end}}
		sse.Guard(resp, sse.Config{FailureEvent: failureEvent})
		got, err := io.ReadAll(resp.Body)
		var se *streamguard.Error
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("verdict %v (%T) is not a *streamguard.Error", err, err)
		}
		if !bytes.HasPrefix(got, whole) {
			t.Fatalf("delivered %q, want %q first", got, whole)
		}
		extra := got[len(whole):]
		if se != nil && failureEvent {
			if se.Events != int64(records) {
				t.Fatalf("Events = %d, want %d", se.Events, records)
			}
			rec := bytes.TrimPrefix(extra, []byte("\n"))
			var v struct {
				Error *string `json:"error"`
			}
			if bytes.Count(rec, []byte("\n")) != 1 || rec[len(rec)-1] != '\n' || json.Unmarshal(rec, &v) != nil || v.Error == nil {
				t.Fatalf("failure record %q after %q", extra, whole)
			}
			extra = nil
		}
		if len(extra) > 0 {
			t.Fatalf("delivered %q after the whole lines %q", extra, whole)
		}
		if se != nil && se.Events != int64(records) {
			t.Fatalf("Events = %d, want %d", se.Events, records)
		}
		switch {
		case inBand:
			if se == nil || !errors.Is(err, sse.ErrInBand) {
				t.Fatalf("a record starts with an error key; verdict %v", err)
			}
		case judged:
			// A record a dialect may judge ("done", "model"): any verdict.
		case cut:
			if se == nil || se.Reason != streamguard.ReasonTruncated || se.Source != streamguard.SourceNetwork {
				t.Fatalf("cut: verdict %v", err)
			}
		case records == 0 && !(partial && startsJSON(tail)):
			// A 200 JSON stream without a record is the platform's
			// no_events (an empty body, blank lines only, or text that
			// is not JSON before its first line end); the first record
			// cut short is truncated (the partial case below).
			if se == nil || se.Reason != streamguard.ReasonNoEvents {
				t.Fatalf("no record: verdict %v", err)
			}
		case partial:
			if se == nil || !errors.Is(err, sse.ErrPartialEvent) {
				t.Fatalf("partial last line: verdict %v", err)
			}
		default:
			if err != nil {
				t.Fatalf("whole lines: verdict %v", err)
			}
		}
	})
}

// startsJSON reports whether tail starts as a JSON text does.
func startsJSON(tail []byte) bool {
	t := bytes.TrimLeft(tail, "\ufeff \t\r\n\x1e")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// scanJSONLines frames data as bufio.Scanner does and reads each record with
// encoding/json: how many records (lines that are not blank), whether one is
// an object whose first key is "error" (the in-band error), and whether one
// may be judged by the Ollama dialect.
func scanJSONLines(data []byte) (records int, inBand, judged bool) {
	n, _ := scanRecords(data)
	for _, line := range bytes.Split(data, []byte("\n")) {
		rec := bytes.Trim(line, " \t\r\x1e")
		if len(rec) == 0 {
			continue
		}
		if strings.Contains(string(rec), "done") || strings.Contains(string(rec), "model") || bytes.Contains(rec, []byte(`\`)) {
			judged = true
		}
		switch valid := json.Valid(rec); {
		case valid && firstKeyIsError(rec):
			inBand = true
		case !valid && bytes.Contains(rec, []byte("error")):
			// The guard reads the first key without validating the
			// record (as it does an SSE event's data): a record that
			// is not JSON may be taken for an error.
			judged = true
		}
	}
	return n, inBand, judged
}

func firstKeyIsError(rec []byte) bool {
	d := json.NewDecoder(bytes.NewReader(rec))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	tok, err := d.Token()
	if err != nil || tok != "error" {
		return false
	}
	v, err := d.Token() // null, false and "" are no error
	return err != nil || (v != nil && v != false && v != "")
}
