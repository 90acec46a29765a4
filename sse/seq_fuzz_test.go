package sse_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// guardSeq reads data as a guarded json-seq body, split across reads as
// splits says (nil: one read), ended by end.
func guardSeq(t *testing.T, data, splits []byte, end error) ([]byte, *streamguard.Error) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json-seq"}},
		Body: &endReader{splitReader{data: data, splits: splits}, end}}
	sse.Guard(resp, sse.Config{})
	got, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if err != nil && !errors.As(err, &se) {
		t.Fatalf("verdict %v (%T) is not a *streamguard.Error", err, err)
	}
	return got, se
}

// FuzzSeq checks the json-seq framing: for any bytes, split across reads in
// any way, the guard delivers a prefix of them and the same bytes, events
// and verdict as when they come in one read; and for a well-formed
// sequence (each RS followed by a JSON text and an LF, any text
// pretty-printed), it counts each text as a record and finds an error
// object among them (first key "error", its value neither null, false nor
// "").
//
// Run it longer with: go test -run '^$' -fuzz FuzzSeq -fuzztime 5m ./sse/
func FuzzSeq(f *testing.F) {
	f.Add([]byte("\x1e{\"a\":1}\n\x1e{\n  \"error\": \"boom\"\n}\n"), []byte{3, 9, 1}, false)
	f.Add([]byte("\x1e[1,\n2]\n\x1e\"x\\\"\\n\"\n\x1e{\"b\":{\"c\":\"}\"}}\n"), []byte{0, 0, 5}, false)
	f.Add([]byte("\x1e{\"a\":\n\x1e{\"b\":2}\n"), []byte{1}, true)
	f.Add([]byte("{\"a\":1}\n\x1e3\n\x1e{\"error\":null}\n"), []byte{}, false)
	f.Fuzz(func(t *testing.T, data, splits []byte, cut bool) {
		var end error = io.EOF
		if cut {
			end = io.ErrUnexpectedEOF
		}
		whole, wse := guardSeq(t, data, nil, end)
		got, se := guardSeq(t, data, splits, end)
		if !bytes.HasPrefix(data, got) {
			t.Fatalf("delivered %q, not a prefix of %q", got, data)
		}
		if !bytes.Equal(got, whole) || (se == nil) != (wse == nil) || se != nil && (se.Reason != wse.Reason || se.Events != wse.Events) {
			t.Fatalf("split reads: %q, %v; one read: %q, %v", got, se, whole, wse)
		}
		texts, ok := wellFormedSeq(data)
		if !ok || cut {
			return
		}
		var inBand bool
		for _, text := range texts {
			inBand = inBand || errorObject(text)
		}
		switch {
		case inBand:
			if se == nil || se.Reason == streamguard.ReasonTruncated || se.Events > int64(len(texts)) {
				t.Fatalf("an error record among %d: verdict %v", len(texts), se)
			}
		case len(texts) == 0:
			if se == nil || se.Reason != streamguard.ReasonNoEvents {
				t.Fatalf("no record: verdict %v", se)
			}
		case se != nil && se.Reason != streamguard.ReasonModelError:
			// A text of a known dialect's shape may be judged (Ollama's
			// "done"); nothing else fails a whole sequence.
			t.Fatalf("%d whole records: verdict %v", len(texts), se)
		case se == nil && !bytes.Equal(got, data):
			t.Fatalf("a whole sequence delivered %q of %q", got, data)
		}
	})
}

// wellFormedSeq splits data into its JSON texts if it is a well-formed
// sequence: RS, a JSON text, LF, and nothing else.
func wellFormedSeq(data []byte) ([][]byte, bool) {
	if len(data) == 0 {
		return nil, true
	}
	if data[0] != 0x1e {
		return nil, false
	}
	var texts [][]byte
	for _, chunk := range bytes.Split(data[1:], []byte{0x1e}) {
		if len(chunk) == 0 || chunk[len(chunk)-1] != '\n' || !json.Valid(chunk) {
			return nil, false
		}
		texts = append(texts, chunk)
	}
	return texts, true
}

// errorObject reports whether text is an object whose first key is "error"
// with a value other than null, false or "".
func errorObject(text []byte) bool {
	d := json.NewDecoder(bytes.NewReader(text))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	if tok, err := d.Token(); err != nil || tok != "error" {
		return false
	}
	v, err := d.Token()
	return err != nil || (v != nil && v != false && v != "")
}
