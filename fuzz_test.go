package streamguard_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/streamguard/streamguard"
)

// FuzzClassify feeds Classify and Check any status, content type, header and
// body. Nothing may panic; the error must be one line, its message capped and
// free of control characters; Check must give back every byte of the body.
//
// Run it longer with: go test -run '^$' -fuzz FuzzClassify -fuzztime 60s .
func FuzzClassify(f *testing.F) {
	for _, c := range classifyCases {
		hdr := ""
		for k, v := range c.header {
			hdr = k + ": " + v
		}
		f.Add(c.status, c.contentType, hdr, []byte(c.body))
	}
	f.Add(500, "application/json", "", []byte(`{"error":{"message":{"nested":true},"code":[1]},"detail":{"a":1}}`))
	f.Add(502, "", "", []byte("\xef\xbb\xbf{\"error\":\"client closed connection\"}"))
	f.Add(503, "text/html", "", []byte("<title>"))
	f.Add(503, "text/html", "", []byte("<title>\xd1\xe5\xf0\xe2\xe8\xf1 \xed\xe5\xe4\xee\xf1\xf2\xf3\xef\xe5\xed</title>"))
	f.Add(503, "text/html", "", []byte("<TITLE>\u212a\u023a</TITLE>"))
	f.Add(200, "", "", []byte(`{"error":"x"}`))
	f.Add(-1, "", "X-Request-Id: \x00\x01", []byte(nil))
	f.Fuzz(func(t *testing.T, status int, contentType, header string, body []byte) {
		h := http.Header{"Content-Type": {contentType}}
		if k, v, ok := strings.Cut(header, ":"); ok {
			h[k] = []string{v}
		}
		resp := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
		e := streamguard.Classify(resp, body)
		if status < 400 {
			if e != nil {
				t.Fatalf("Classify(%d) = %v", status, e)
			}
			return
		}
		if e == nil || e.Source == "" || e.Reason == "" {
			t.Fatalf("Classify(%d) = %#v", status, e)
		}
		if len(e.Message) > streamguard.MaxMessage {
			t.Fatalf("Message is %d bytes", len(e.Message))
		}
		for _, r := range e.Message + e.Code + e.RequestID {
			if unicode.IsControl(r) {
				t.Fatalf("control character %U in %q", r, e.Message)
			}
		}
		if line := e.Error(); strings.ContainsAny(line, "\r\n") {
			t.Fatalf("Error() is not one line: %q", line)
		}
		if streamguard.Check(resp) == nil {
			t.Fatal("Check = nil")
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body after Check = %q, %v", got, err)
		}
	})
}

// FuzzClassifyEvent: an in-band error payload of any bytes classifies without
// panic to a one-line error.
func FuzzClassifyEvent(f *testing.F) {
	f.Add([]byte(`{"error":{"message":"x","code":"overloaded_error"}}`))
	f.Add([]byte(`{"type":"response.failed","response":{"error":"x"}}`))
	f.Add([]byte(`{"type":"response.failed","response":null}`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := streamguard.ClassifyEvent(data)
		if e == nil || e.Source == "" || len(e.Message) > streamguard.MaxMessage {
			t.Fatalf("ClassifyEvent = %#v", e)
		}
		if strings.ContainsAny(e.Error(), "\r\n") {
			t.Fatalf("Error() is not one line: %q", e.Error())
		}
	})
}
