package streamguard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
)

func errorResponse(status int, ct, body string) *http.Response {
	req, _ := http.NewRequest("POST", "http://gateway.test/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer sk-live-conform1234567890")
	return &http.Response{StatusCode: status, Request: req, Body: io.NopCloser(strings.NewReader(body)),
		Header: http.Header{"Content-Type": {ct}, "X-Baseten-Request-Id": {"req-9"}}}
}

// Conform rewrites every body the SDKs cannot parse into the error's JSON
// document, leaves those they parse alone, and Check reads the same
// classification from either.
func TestConform(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		ct      string
		body    string
		rewrite bool
	}{
		{"platform string", 503, "application/json", `{"error":"Service Unavailable"}`, true},
		{"baseten error_code", 429, "application/json", `{"error":"Too many requests","error_code":"RATE_LIMITED"}`, true},
		{"unreachable", 502, "application/json", `{"error":"Error making prediction"}`, true},
		{"nginx html", 504, "text/html", "<html><head><title>504 Gateway Time-out</title></head><body></body></html>", true},
		{"plain text echoing the key", 500, "text/plain", "upstream said: bad key sk-live-conform1234567890", true},
		{"empty", 413, "", "", true},
		{"fastapi detail", 422, "application/json", `{"detail":"Field required"}`, true},
		{"openai object", 401, "application/json", `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, false},
		{"openai object echoing the key", 401, "application/json", `{"error":{"message":"Incorrect API key provided: sk-live-conform1234567890","type":"invalid_request_error","code":"invalid_api_key"}}`, false},
		{"anthropic object", 529, "application/json", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := streamguard.Check(errorResponse(c.status, c.ct, c.body)).(*streamguard.Error)
			resp := errorResponse(c.status, c.ct, c.body)
			got := streamguard.Conform(resp).(*streamguard.Error)
			if *got != *want {
				t.Errorf("Conform returned %+v, Check %+v", got, want)
			}
			b, _ := io.ReadAll(resp.Body)
			if strings.Contains(string(b), "conform1234567890") {
				t.Errorf("the key reached the body: %s", b)
			}
			if !c.rewrite {
				// The same document (a scrubbed one is encoded again: its
				// keys may come in another order).
				want := strings.ReplaceAll(c.body, "sk-live-conform1234567890", "REDACTED")
				var gotDoc, wantDoc any
				if json.Unmarshal(b, &gotDoc) != nil || json.Unmarshal([]byte(want), &wantDoc) != nil || !reflect.DeepEqual(gotDoc, wantDoc) {
					t.Fatalf("an SDK-shaped body became %s, want %s", b, want)
				}
				if !strings.Contains(c.body, "sk-live") && string(b) != c.body {
					t.Fatalf("a body with nothing to scrub became %s, want it as it was", b)
				}
				return
			}
			var doc struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Source  string `json:"source"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &doc); err != nil || doc.Error.Message != want.Error() || doc.Error.Type != string(want.Reason) ||
				doc.Error.Source != string(want.Source) {
				t.Fatalf("body %s (%v)", b, err)
			}
			if resp.Header.Get("Content-Type") != "application/json" || resp.ContentLength != int64(len(b)) ||
				resp.Header.Get("Content-Length") != itoa(len(b)) {
				t.Errorf("headers %v, ContentLength %d", resp.Header, resp.ContentLength)
			}
			// Check on the conformed response: the same classification.
			again := errorResponse(c.status, "application/json", string(b))
			if e := streamguard.Check(again).(*streamguard.Error); *e != *want {
				t.Errorf("Check of the conformed body %+v, want %+v", e, want)
			}
		})
	}
	head := errorResponse(404, "", "")
	head.Request.Method = http.MethodHead
	head.Body = http.NoBody
	if streamguard.Conform(head) == nil || head.Body != http.NoBody {
		t.Error("the answer to a HEAD was given a body")
	}
	if streamguard.Conform(nil) != nil || streamguard.Conform(errorResponse(200, "", "ok")) != nil {
		t.Error("Conform of a success")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
