package streamguard_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
)

// keyRequest returns a request that carries key as its Api-Key.
func keyRequest(key string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Api-Key "+key)
	return req
}

const reviewKey = "Zq8x7Lm2Np4Rt6Vw9Yb1Qs3Ue5Hk"

// TestHTMLPageNotUTF8: an HTML error page in another encoding, or with
// characters whose lower case is of another length, is read without a
// panic (bytes.ToLower's offsets differed from the page's), its title
// found.
func TestHTMLPageNotUTF8(t *testing.T) {
	for _, page := range []string{
		"<title>\xd1\xe5\xf0\xe2\xe8\xf1 \xed\xe5\xe4\xee\xf1\xf2\xf3\xef\xe5\xed</title>", // windows-1251
		"<title>" + strings.Repeat("\xff", 3000) + "</title>",
		"<TITLE>\u212a\u212a\u212a down</TITLE><h1>x</h1>", // the Kelvin sign: 3 bytes, k in lower case
		"<title>\u023a\u023a\u023a down</title>",           // 2 bytes, 3 in lower case
	} {
		resp := &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"text/html"}}}
		e := streamguard.Classify(resp, []byte(page))
		if e == nil || e.Reason != streamguard.ReasonUnavailable {
			t.Errorf("%.30q: %v, want the platform's unavailability", page, e)
		}
	}
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"text/html"}}}
	if e := streamguard.Classify(resp, []byte("<TITLE>\u212a down</TITLE>")); e.Message != "\u212a down" {
		t.Errorf("title %q, want %q", e.Message, "\u212a down")
	}
}

// TestHTMLKeyAtTheCut: a page's text is scrubbed before the message is
// cut, so that a key the cut would have split leaves nothing of itself.
func TestHTMLKeyAtTheCut(t *testing.T) {
	body := "<html><body><p>" + strings.Repeat("a ", 245) + "invalid key " + reviewKey + "</p></body></html>"
	resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"text/html"}}, Request: keyRequest(reviewKey)}
	e := streamguard.Classify(resp, []byte(body))
	if strings.Contains(e.Message, reviewKey[:6]) || len(e.Message) > streamguard.MaxMessage {
		t.Errorf("message %q (%d bytes): a part of the key, or over MaxMessage", e.Message, len(e.Message))
	}
}

// conformed returns resp's body once Conform ran, and its error.message.
func conformed(t *testing.T, resp *http.Response) (string, string) {
	t.Helper()
	streamguard.Conform(resp)
	b, _ := io.ReadAll(resp.Body)
	var doc struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the conformed body %s is not JSON: %v", b, err)
	}
	return string(b), doc.Error.Message
}

// TestConformEscapedKey: a key a server echoed JSON-escaped (\u002B for
// '+', as .NET writes it; a key right after a "\n") is scrubbed from the
// strings the SDK decodes, not only from the encoded text.
func TestConformEscapedKey(t *testing.T) {
	const key = "Xb3+Tq9Lm2/Np4Rt6Vw9Yb1Qs3Ue5Hk="
	body := `{"error":{"message":"invalid key Xb3\u002BTq9Lm2\/Np4Rt6Vw9Yb1Qs3Ue5Hk=\nupstream said:\nsk-proj-abcdefghijklmnop and ` + reviewKey[:27] + `\u006b","type":"authentication_error"}}`
	req := keyRequest(key)
	req.Header.Set("X-Api-Key", reviewKey)
	resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(strings.NewReader(body))}
	_, msg := conformed(t, resp)
	for _, s := range []string{"Xb3+Tq9", "sk-proj-abcdef", reviewKey} {
		if strings.Contains(msg, s) {
			t.Errorf("the SDK reads %q: %q in it", msg, s)
		}
	}
	if !strings.Contains(msg, "invalid key") {
		t.Errorf("message %q, want the server's words", msg)
	}
}

// TestConformLiteralSecret: a credential whose value is a JSON literal (a
// cookie "remember_me=true") is scrubbed from strings only: the body stays
// a document the SDK decodes.
func TestConformLiteralSecret(t *testing.T) {
	req := keyRequest(reviewKey)
	req.Header.Set("Cookie", "remember_me=true; sid=abcdef123456")
	body := `{"error":{"message":"rate limited, sid abcdef123456","type":"rate_limit_error","code":null,"retryable":true}}`
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(strings.NewReader(body))}
	b, msg := conformed(t, resp)
	if !strings.Contains(b, `"retryable":true`) || strings.Contains(msg, "abcdef123456") {
		t.Errorf("body %s", b)
	}
}

// errAfter reads r, then fails with err.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func (e *errAfter) Close() error { return nil }

// TestBodyCutByReadError: an error body whose read failed in the middle
// of an echoed key is cut short as one over MaxErrorBody is: the start of
// the key is dropped, from Check's error and from Conform's body.
func TestBodyCutByReadError(t *testing.T) {
	partial := `{"error":{"message":"invalid api key ` + reviewKey[:len(reviewKey)-2]
	for _, conform := range []bool{false, true} {
		resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}}, Request: keyRequest(reviewKey),
			Body: &errAfter{strings.NewReader(partial), errors.New("connection reset by peer")}}
		var text string
		if conform {
			b, _ := conformed(t, resp)
			text = b
		} else {
			text = streamguard.Check(resp).Error()
		}
		if strings.Contains(text, reviewKey[:8]) {
			t.Errorf("conform %v: %q holds the key's start", conform, text)
		}
	}
}

// TestClassifyEventLarge: a huge in-stream error event (8 MiB, the guard's
// cap) costs a few times its size to classify, not fifty (it allocated
// 446 MB: its "error" array was decoded whole to be encoded again), and a
// large one is classified by its fields as a small one is.
func TestClassifyEventLarge(t *testing.T) {
	data := []byte(`{"error":[` + strings.Repeat(`{},`, (8<<20)/3-10) + `{}]}`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e := streamguard.ClassifyEvent(data)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 4*uint64(len(data)) || e.Reason != streamguard.ReasonModelError {
		t.Errorf("%d KiB allocated for %d KiB, %v; want at most 4 times and the model's error", n>>10, len(data)>>10, e)
	}
	big := `{"error":{"message":"overloaded","type":"overloaded_error","detail":"` + strings.Repeat("x", streamguard.MaxErrorBody) + `"}}`
	if e := streamguard.ClassifyEvent([]byte(big)); e.Code != "overloaded_error" || e.Message != "overloaded" || !e.Retryable {
		t.Errorf("a large overloaded event: %+v", e)
	}
}

// TestRequestIDScrubbedBeforeCut: a request id holding the request's key
// past its 128-byte cut leaves no part of the key (it was cut, then
// scrubbed); an async result's request id is scrubbed of key shapes.
func TestRequestIDScrubbedBeforeCut(t *testing.T) {
	resp := &http.Response{StatusCode: 500, Header: http.Header{"X-Request-Id": {strings.Repeat("a", 110) + " " + reviewKey}},
		Request: keyRequest(reviewKey)}
	if e := streamguard.Classify(resp, nil); strings.Contains(e.RequestID, reviewKey[:8]) {
		t.Errorf("request id %q holds the key's start", e.RequestID)
	}
	r := &streamguard.AsyncResult{RequestID: "sk-live-abcdefghijklmnop", Errors: []streamguard.AsyncError{{Code: "MODEL_PREDICT_ERROR", Message: "x"}}}
	for _, e := range streamguard.ClassifyAsync(r) {
		if strings.Contains(e.RequestID, "abcdefghijklmnop") {
			t.Errorf("async request id %q", e.RequestID)
		}
	}
}

// TestHint408: a 408 is the server's timeout reading the request, not the
// prediction running past the platform's budget.
func TestHint408(t *testing.T) {
	e := streamguard.Classify(&http.Response{StatusCode: http.StatusRequestTimeout, Header: http.Header{}}, nil)
	if h := e.Hint(); strings.Contains(h, "1200") || !strings.Contains(h, "408") {
		t.Errorf("hint %q", h)
	}
}

// TestConformSecretsInOddPlaces: a quoted cookie value (the decoded string
// has no quotes), a secret in a duplicate key's value (the decoding keeps
// the last), and a key named as the marker already is: none reaches the
// SDK, and no field is lost to a renamed key.
func TestConformSecretsInOddPlaces(t *testing.T) {
	req := keyRequest("abcdefghijklmnop")
	req.Header.Set("Cookie", `sid="Zq9vT3xLm2"`)
	for _, body := range []string{
		`{"error":{"message":"bad session","sid":"Zq9vT3xLm2"}}`,
		`{"error":{"message":"Incorrect API key provided: abcdefghijklmnop","message":"invalid key"}}`,
		`{"error":{"message":"x","REDACTED":1,"abcdefghijklmnop":2}}`,
	} {
		resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
			Body: io.NopCloser(strings.NewReader(body))}
		b, _ := conformed(t, resp)
		if strings.Contains(b, "Zq9vT3xLm2") || strings.Contains(b, "abcdefghijklmnop") {
			t.Errorf("%s became %s", body, b)
		}
		if strings.Contains(body, `"REDACTED":1`) && (!strings.Contains(b, `":1`) || !strings.Contains(b, `":2`)) {
			t.Errorf("%s lost a field: %s", body, b)
		}
	}
}

// TestBadRequestOnlyNetHTTPs: a request net/http refuses to send is the
// request's bad_request; a transport error that quotes a server's words
// (a GOAWAY's debug data saying "invalid method") stays a retryable
// connection failure.
func TestBadRequestOnlyNetHTTPs(t *testing.T) {
	for msg, want := range map[string]streamguard.Source{
		`unsupported protocol scheme "ftp"`: streamguard.SourceRequest,
		`net/http: invalid method "A B"`:    streamguard.SourceRequest,
		`http2: server sent GOAWAY and closed the connection; LastStreamID=1, ErrCode=NO_ERROR, debug="invalid method"`: streamguard.SourceNetwork,
		`read: connection reset; unsupported protocol scheme "x"`:                                                       streamguard.SourceNetwork,
	} {
		e := streamguard.FromError(&url.Error{Op: "Post", URL: "https://api.example/v1", Err: errors.New(msg)})
		if e.Source != want || e.Retryable != (want == streamguard.SourceNetwork) {
			t.Errorf("%q: %s %s retryable %v; want %s", msg, e.Source, e.Reason, e.Retryable, want)
		}
	}
}

// TestConformIdentityCoding: an error body that names the identity coding
// (not encoded) is scrubbed and capped as one that names none; one in a
// real coding is left as it is.
func TestConformIdentityCoding(t *testing.T) {
	body := `{"error":{"message":"Incorrect API key provided: ` + reviewKey + `"}}`
	for _, ce := range []string{"identity", "Identity, identity"} {
		resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {ce}},
			Request: keyRequest(reviewKey), Body: io.NopCloser(strings.NewReader(body))}
		if b, _ := conformed(t, resp); strings.Contains(b, reviewKey) {
			t.Errorf("Content-Encoding %q: the SDK reads %s", ce, b)
		}
	}
	resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}},
		Request: keyRequest(reviewKey), Body: io.NopCloser(strings.NewReader("\x1f\x8b" + body))}
	if err := streamguard.Conform(resp); err == nil {
		t.Fatal("no error")
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "\x1f\x8b"+body {
		t.Errorf("a gzip body was altered: %q", b)
	}
}

// TestSecretsHTMLSafe: a key with '=' padding (base64), which an
// HTML-safe JSON encoder (Gson) writes "\u003d", is found so too.
func TestSecretsHTMLSafe(t *testing.T) {
	const key = "A1b2C3d4E5f6G7h8I9j0KLmn=="
	body := `{"error":{"message":"invalid key A1b2C3d4E5f6G7h8I9j0KLmn\u003d\u003d"}}`
	resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}},
		Request: keyRequest(key), Body: io.NopCloser(strings.NewReader(body))}
	if _, msg := conformed(t, resp); strings.Contains(msg, key[:20]) {
		t.Errorf("the SDK reads %q", msg)
	}
}
