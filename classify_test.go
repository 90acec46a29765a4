package streamguard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// classifyCase is one error response the classifier must understand: a row of
// the quick reference, a body shape, or a platform case in docs/platform.md.
type classifyCase struct {
	name        string
	status      int
	contentType string
	header      map[string]string
	body        string
	source      streamguard.Source
	reason      streamguard.Reason
	retryable   bool
	message     string // exact Message wanted; "" means not checked
	code        string
}

var classifyCases = []classifyCase{
	// The platform's quick reference (docs/platform.md), row by row, with the platform's JSON body.
	{name: "400 malformed", status: 400, body: `{"error": "Invalid JSON in request body"}`,
		source: "request", reason: "bad_request", message: "Invalid JSON in request body"},
	{name: "401 invalid key", status: 401, body: `{"error": "Invalid API key"}`,
		source: "request", reason: "unauthorized", message: "Invalid API key"},
	{name: "403 forbidden", status: 403, body: `{"error": "Forbidden"}`,
		source: "request", reason: "unauthorized"},
	{name: "404 wrong model", status: 404, body: `{"error": "Model not found"}`,
		source: "request", reason: "not_found"},
	{name: "402 billing", status: 402, body: `{"error": "Payment required"}`,
		source: "request", reason: "billing"},
	{name: "413 async limit", status: 413,
		body:   `{"error": "payload size of 300000 bytes exceeds maximum size of 262144 bytes"}`,
		source: "request", reason: "payload_too_large",
		message: "payload size of 300000 bytes exceeds maximum size of 262144 bytes"},
	{name: "422 unprocessable", status: 422, body: `{"error": "field required"}`,
		source: "request", reason: "bad_request"},
	{name: "429 rate limited", status: 429, header: map[string]string{"Retry-After": "2"},
		body:   `{"error": "Too many requests", "error_code": "CAPACITY_EXCEEDED"}`,
		source: "platform", reason: "rate_limited", retryable: true, code: "CAPACITY_EXCEEDED"},
	{name: "500 model exception", status: 500, body: `{"error": "Internal Server Error (in model/chainlet)."}`,
		source: "model", reason: "model_error", message: "Internal Server Error (in model/chainlet)."},
	{name: "500 internal_baseten_error", status: 500,
		body:   `{"error": "Internal error", "error_code": "internal_baseten_error", "detail": "routing failed"}`,
		source: "platform", reason: "platform_error", retryable: true, code: "internal_baseten_error",
		message: "Internal error: routing failed"},
	{name: "502 Error making prediction", status: 502, body: `{"error": "Error making prediction"}`,
		source: "platform", reason: "unreachable", retryable: true, message: "Error making prediction"},
	{name: "502 client closed connection", status: 502, body: `{"error": "client closed connection"}`,
		source: "client", reason: "canceled"},
	{name: "502 other platform message", status: 502, body: `{"error": "upstream connect error"}`,
		source: "platform", reason: "platform_error", retryable: true},
	{name: "502 nginx html", status: 502, contentType: "text/html",
		body:   "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n",
		source: "platform", reason: "unreachable", retryable: true, message: "502 Bad Gateway"},
	{name: "502 plain text", status: 502, contentType: "text/plain", body: "Bad Gateway\n",
		source: "platform", reason: "unreachable", retryable: true, message: "Bad Gateway"},
	{name: "502 empty", status: 502, body: "",
		source: "platform", reason: "unreachable", retryable: true, message: ""},
	{name: "503 draining", status: 503, header: map[string]string{"Retry-After": "1"},
		body:   `{"error": "Instance is draining; please retry on another instance"}`,
		source: "platform", reason: "unavailable", retryable: true},
	{name: "503 circuit breaker", status: 503, body: `{"error": "circuit breaker open for upstream"}`,
		source: "platform", reason: "unavailable", retryable: true},
	{name: "503 html", status: 503, contentType: "text/html",
		body:   "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
		source: "platform", reason: "unavailable", retryable: true, message: "503 Service Temporarily Unavailable"},
	{name: "503 empty", status: 503, source: "platform", reason: "unavailable", retryable: true},
	{name: "504 gateway timeout", status: 504, body: `{"error": "Prediction timed out"}`,
		source: "platform", reason: "timeout"},
	{name: "529 anthropic overloaded", status: 529,
		body:   `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		source: "platform", reason: "unavailable", retryable: true, message: "Overloaded", code: "overloaded_error"},
	{name: "500 gemini internal", status: 500,
		body:   `{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}`,
		source: "platform", reason: "platform_error", retryable: true, message: "An internal error has occurred.", code: "INTERNAL"},
	{name: "400 gemini failed precondition", status: 400,
		body:   `{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}`,
		source: "request", reason: "bad_request", message: "User location is not supported for the API use.", code: "FAILED_PRECONDITION"},
	{name: "418 other 4xx", status: 418, body: `{"error": "teapot"}`,
		source: "request", reason: "bad_request"},
	{name: "501 other 5xx", status: 501, body: `{"error": "not implemented"}`,
		source: "model", reason: "model_error"},
	{name: "507 other 5xx plain", status: 507, body: "disk full",
		source: "model", reason: "model_error", message: "disk full"},

	// Baseten error_code refinements.
	{name: "code model_unavailable", status: 502, body: `{"error":"x","error_code":"model_unavailable"}`,
		source: "platform", reason: "unreachable", retryable: true, code: "model_unavailable"},
	{name: "code model_not_ready", status: 503, body: `{"error":"x","error_code":"model_not_ready"}`,
		source: "platform", reason: "unavailable", retryable: true, code: "model_not_ready"},
	{name: "code rate_limited", status: 429, body: `{"error":"x","error_code":"rate_limited"}`,
		source: "platform", reason: "rate_limited", retryable: true, code: "rate_limited"},
	{name: "code payload_too_large", status: 413, body: `{"error":"x","error_code":"payload_too_large"}`,
		source: "request", reason: "payload_too_large", code: "payload_too_large"},
	{name: "code unauthorized", status: 401, body: `{"error":"x","error_code":"unauthorized"}`,
		source: "request", reason: "unauthorized", code: "unauthorized"},
	{name: "code client_error", status: 400, body: `{"error":"x","error_code":"client_error"}`,
		source: "request", reason: "bad_request", code: "client_error"},
	{name: "code model_does_not_exist", status: 404, body: `{"error":"x","error_code":"model_does_not_exist"}`,
		source: "request", reason: "not_found", code: "model_does_not_exist"},
	{name: "code timeout", status: 504, body: `{"error":"x","error_code":"timeout"}`,
		source: "platform", reason: "timeout", code: "timeout"},
	{name: "code application_error", status: 500, body: `{"error":"boom","error_code":"application_error","detail":"ValueError"}`,
		source: "model", reason: "model_error", code: "application_error", message: "boom: ValueError"},
	{name: "code internal_baseten_error on 502", status: 502, body: `{"error":"x","error_code":"internal_baseten_error"}`,
		source: "platform", reason: "platform_error", retryable: true, code: "internal_baseten_error"},

	// Other shapes.
	{name: "openai error object", status: 400,
		body:   `{"error":{"message":"Invalid model","type":"invalid_request_error","param":null,"code":"model_not_found"}}`,
		source: "request", reason: "not_found", message: "Invalid model", code: "model_not_found"},
	{name: "openai error object no code", status: 500,
		body:   `{"error":{"message":"The server had an error","type":"server_error","code":null}}`,
		source: "model", reason: "model_error", message: "The server had an error", code: "server_error"},
	{name: "anthropic invalid request", status: 400,
		body:   `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: required"}}`,
		source: "request", reason: "bad_request", message: "max_tokens: required", code: "invalid_request_error"},
	{name: "a generic code keeps a specific status", status: 401,
		body:   `{"error":{"message":"You didn't provide an API key.","type":"invalid_request_error","param":null,"code":null}}`,
		source: "request", reason: "unauthorized", message: "You didn't provide an API key.", code: "invalid_request_error"},
	{name: "fastapi detail", status: 422, body: `{"detail":"Field required"}`,
		source: "request", reason: "bad_request", message: "Field required"},
	{name: "invalid json", status: 500, body: `{"error": "unterminated`,
		source: "model", reason: "model_error", message: `{"error": "unterminated`},
	{name: "json array", status: 503, body: `[1,2,3]`,
		source: "platform", reason: "unavailable", retryable: true, message: "[1,2,3]"},
	{name: "error of unknown type", status: 500, body: `{"error": 42}`,
		source: "model", reason: "model_error", message: "42"},
	{name: "control characters stripped", status: 500, body: "{\"error\": \"line1\\nline2\\u001b[31m\"}",
		source: "model", reason: "model_error", message: "line1 line2 [31m"},

	// Headers.
	{name: "truss error headers", status: 500,
		header: map[string]string{"X-BASETEN-ERROR-SOURCE": "04", "X-BASETEN-ERROR-CODE": "600"},
		body:   `{"error": "Internal Server Error (in model/chainlet)."}`,
		source: "model", reason: "model_error"},
	{name: "truss error headers on 503", status: 503,
		header: map[string]string{"x-baseten-error-source": "04"},
		body:   `{"error": "model not ready"}`,
		source: "model", reason: "model_error"},
}

// serveCase answers every request with the case given by the "case" query
// parameter, so that each case is classified from a real response.
func serveCases(t *testing.T, cases []classifyCase) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Query().Get("case"))
		c := cases[i]
		for k, v := range c.header {
			w.Header()[k] = []string{v} // as sent, casing kept
		}
		ct := c.contentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Baseten-Request-Id", "req-"+strconv.Itoa(i))
		w.WriteHeader(c.status)
		io.WriteString(w, c.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCheckClassifiesRealResponses(t *testing.T) {
	srv := serveCases(t, classifyCases)
	for i, c := range classifyCases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := srv.Client().Get(fmt.Sprintf("%s/?case=%d", srv.URL, i))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			err = streamguard.Check(resp)
			var se *streamguard.Error
			if !errors.As(err, &se) {
				t.Fatalf("Check = %v, want *streamguard.Error", err)
			}
			if se.StatusCode != c.status || se.Source != c.source || se.Reason != c.reason || se.Retryable != c.retryable {
				t.Errorf("got %d %s %s retryable=%v, want %d %s %s retryable=%v",
					se.StatusCode, se.Source, se.Reason, se.Retryable, c.status, c.source, c.reason, c.retryable)
			}
			if c.message != "" && se.Message != c.message {
				t.Errorf("Message = %q, want %q", se.Message, c.message)
			}
			if c.body == "" && se.Message != "" {
				t.Errorf("Message = %q, want empty for an empty body", se.Message)
			}
			if se.Code != c.code {
				t.Errorf("Code = %q, want %q", se.Code, c.code)
			}
			if want := "req-" + strconv.Itoa(i); se.RequestID != want {
				t.Errorf("RequestID = %q, want %q", se.RequestID, want)
			}
			line := se.Error()
			if strings.ContainsAny(line, "\r\n") || !strings.HasPrefix(line, "streamguard: "+strconv.Itoa(c.status)+" ") {
				t.Errorf("Error() = %q: not one line with the status", line)
			}
			if se.Hint() == "" || !strings.Contains(line, se.Hint()) {
				t.Errorf("Error() = %q lacks hint %q", line, se.Hint())
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != c.body {
				t.Errorf("body after Check = %q, %v; want %q", got, err, c.body)
			}
		})
	}
}

func TestErrorLine(t *testing.T) {
	e := &streamguard.Error{StatusCode: 502, Source: streamguard.SourcePlatform,
		Reason: streamguard.ReasonUnreachable, Message: "Error making prediction"}
	want := "streamguard: 502 platform unreachable: Error making prediction (check the model logs for a crash or OOMKilled; if they are clean, retry)"
	if got := e.Error(); got != want {
		t.Errorf("Error() =\n%q, want\n%q", got, want)
	}
	stream := &streamguard.Error{StatusCode: 200, Source: streamguard.SourceNetwork,
		Reason: streamguard.ReasonTruncated, Events: 12, Err: io.ErrUnexpectedEOF}
	if got := stream.Error(); !strings.HasPrefix(got, "streamguard: 200 network truncated after 12 events: unexpected EOF (") {
		t.Errorf("stream Error() = %q", got)
	}
	if !errors.Is(stream, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not see the cause through Unwrap")
	}
	empty := &streamguard.Error{}
	if got := empty.Error(); got != "streamguard: unknown" {
		t.Errorf("zero Error() = %q", got)
	}
}

func TestEveryReasonHasAHint(t *testing.T) {
	for _, r := range []streamguard.Reason{
		streamguard.ReasonBadRequest, streamguard.ReasonUnauthorized, streamguard.ReasonNotFound,
		streamguard.ReasonBilling, streamguard.ReasonPayloadTooLarge, streamguard.ReasonRateLimited,
		streamguard.ReasonModelError, streamguard.ReasonUnreachable, streamguard.ReasonUnavailable,
		streamguard.ReasonPlatformError, streamguard.ReasonTimeout, streamguard.ReasonCanceled,
		streamguard.ReasonConnection, streamguard.ReasonTruncated, streamguard.ReasonStalled,
		streamguard.ReasonEventTooLarge,
	} {
		if (&streamguard.Error{Reason: r}).Hint() == "" {
			t.Errorf("reason %s has no hint", r)
		}
	}
	client := &streamguard.Error{Source: streamguard.SourceClient, Reason: streamguard.ReasonTimeout}
	platform := &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout}
	if client.Hint() == platform.Hint() {
		t.Error("a client's own timeout and the gateway's 504 share a hint")
	}
}

func TestCheckBelow400(t *testing.T) {
	for _, status := range []int{200, 201, 204, 302, 399} {
		if err := streamguard.Check(&http.Response{StatusCode: status, Body: http.NoBody}); err != nil {
			t.Errorf("Check(%d) = %v, want nil", status, err)
		}
		if e := streamguard.Classify(&http.Response{StatusCode: status}, []byte(`{"error":"x"}`)); e != nil {
			t.Errorf("Classify(%d) = %v, want nil", status, e)
		}
	}
	if streamguard.Check(nil) != nil || streamguard.Classify(nil, nil) != nil {
		t.Error("nil response classified")
	}
}

// A body larger than MaxErrorBody: Check reads only its first 64 KiB, and the
// caller still reads every byte.
func TestCheckLargeBodyRestored(t *testing.T) {
	big := bytes.Repeat([]byte("<p>oops</p>"), 3*streamguard.MaxErrorBody/11)
	big = append([]byte("<html><title>502 Bad Gateway</title>"), big...)
	var served int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		n, _ := w.Write(big)
		served = int64(n)
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || se.Reason != streamguard.ReasonUnreachable || se.Message != "502 Bad Gateway" {
		t.Fatalf("Check = %v", se)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(big))
	}
	if served != int64(len(big)) {
		t.Fatalf("server wrote %d", served)
	}
}

// A body that can never end (1 GB of HTML, generated) is read only to 64 KiB.
func TestCheckReadsAtMost64KiB(t *testing.T) {
	src := &countingReader{r: io.LimitReader(repeatReader('x'), 1<<30)}
	resp := &http.Response{StatusCode: 502, Header: http.Header{"Content-Type": {"text/html"}}, Body: io.NopCloser(src)}
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) {
		t.Fatal("no error")
	}
	// One byte more than the prefix tells a body of exactly MaxErrorBody
	// bytes from a longer one.
	if src.n != streamguard.MaxErrorBody+1 {
		t.Errorf("Check read %d bytes, want %d", src.n, streamguard.MaxErrorBody+1)
	}
	// A second Check, by another layer or the caller, reads nothing more.
	if !errors.As(streamguard.Check(resp), &se) || src.n != streamguard.MaxErrorBody+1 {
		t.Errorf("the second Check read to %d", src.n)
	}
	if len(se.Message) > streamguard.MaxMessage {
		t.Errorf("Message is %d bytes, over the %d cap", len(se.Message), streamguard.MaxMessage)
	}
}

// A read error while classifying is kept for the caller's own read.
func TestCheckKeepsReadError(t *testing.T) {
	boom := errors.New("boom")
	resp := &http.Response{StatusCode: 500, Header: http.Header{},
		Body: io.NopCloser(io.MultiReader(strings.NewReader(`{"error":"x"}`), errReader{boom}))}
	if streamguard.Check(resp) == nil {
		t.Fatal("no error")
	}
	got, err := io.ReadAll(resp.Body)
	if string(got) != `{"error":"x"}` || !errors.Is(err, boom) {
		t.Errorf("read back %q, %v", got, err)
	}
}

func TestRequestIDHeaders(t *testing.T) {
	for _, h := range []http.Header{
		{"X-Baseten-Request-Id": {"abc"}},
		{"X-Request-Id": {"abc"}},
		{"Request-Id": {"abc"}},
		{"x-baseten-request-id": {"abc"}}, // built by hand, not canonical
		{"REQUEST-ID": {"abc"}},
	} {
		if got := streamguard.RequestID(h); got != "abc" {
			t.Errorf("RequestID(%v) = %q", h, got)
		}
	}
	if got := streamguard.RequestID(http.Header{"X-Request-Id": {"a\r\nSet-Cookie: x"}}); strings.ContainsAny(got, "\r\n") {
		t.Errorf("RequestID kept CR/LF: %q", got)
	}
}

func TestCheckReportsAttempts(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(ctxkey.WithAttempt(req.Context(), 3))
	resp := &http.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody, Request: req}
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || se.Attempts != 3 {
		t.Fatalf("Attempts = %v", se)
	}
	if !strings.Contains(se.Error(), "after 3 attempts") {
		t.Errorf("Error() = %q", se.Error())
	}
}

func TestFromError(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name   string
		err    error
		source streamguard.Source
		reason streamguard.Reason
		retry  bool
	}{
		{"dial", dial, "network", "connection", true},
		{"reset", io.ErrUnexpectedEOF, "network", "connection", true},
		{"canceled", context.Canceled, "client", "canceled", false},
		{"deadline", context.DeadlineExceeded, "client", "timeout", false},
		{"budget", fmt.Errorf("ctx: %w", streamguard.ErrBudgetExceeded), "platform", "timeout", false},
		{"url wrapped", &url.Error{Op: "Get", URL: "https://h/?api_key=SECRET", Err: dial}, "network", "connection", true},
		{"already classified", fmt.Errorf("wrapped: %w", &streamguard.Error{Source: "model", Reason: "truncated"}), "model", "truncated", false},
		// net's timeout claims to be context.DeadlineExceeded through its Is
		// method; no caller's deadline expired.
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, "network", "connection", true},
		{"caller's deadline joined", errors.Join(errors.New("x"), context.DeadlineExceeded), "client", "timeout", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := streamguard.FromError(c.err)
			if e.Source != c.source || e.Reason != c.reason || e.Retryable != c.retry {
				t.Errorf("got %s %s %v", e.Source, e.Reason, e.Retryable)
			}
			if strings.Contains(e.Error(), "SECRET") {
				t.Errorf("URL secret in %q", e.Error())
			}
			if e.StatusCode != 0 {
				t.Errorf("StatusCode = %d", e.StatusCode)
			}
		})
	}
	if streamguard.FromError(nil) != nil {
		t.Error("FromError(nil) != nil")
	}
}

func TestClassifyEvent(t *testing.T) {
	cases := []struct {
		name, data string
		source     streamguard.Source
		reason     streamguard.Reason
		message    string
	}{
		{"openai", `{"error":{"message":"CUDA out of memory","type":"server_error","code":null}}`, "model", "model_error", "CUDA out of memory"},
		{"tgi string", `{"error":"Request failed during generation: Server error: CUDA OOM","error_type":"generation"}`, "model", "model_error", "Request failed during generation: Server error: CUDA OOM"},
		{"anthropic overloaded", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, "platform", "unavailable", "Overloaded"},
		{"responses error", `{"type":"error","code":"server_error","message":"The model failed"}`, "model", "model_error", "The model failed"},
		{"responses failed", `{"type":"response.failed","response":{"id":"r","status":"failed","error":{"code":"rate_limit_exceeded","message":"slow down"}}}`, "platform", "rate_limited", "slow down"},
		{"baseten code", `{"error":"gone","error_code":"model_unavailable"}`, "platform", "unreachable", "gone"},
		{"gemini quota", `{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}`, "platform", "rate_limited", "Resource has been exhausted (e.g. check quota)."},
		{"gemini overloaded", `{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}`, "platform", "unavailable", "The model is overloaded. Please try again later."},
		{"not json", "the model broke\x1b", "model", "model_error", "the model broke"},
		{"relayed failure frame", `{"error":"streamguard: 200 network truncated: unexpected EOF","source":"network","reason":"truncated","status":200,"retryable":true}`, "network", "truncated", "streamguard: 200 network truncated: unexpected EOF"},
		{"forged source is ignored", `{"error":"x","source":"nonsense","reason":"truncated"}`, "model", "model_error", "x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := streamguard.ClassifyEvent([]byte(c.data))
			if e.Source != c.source || e.Reason != c.reason || e.Message != c.message {
				t.Errorf("got %s %s %q", e.Source, e.Reason, e.Message)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 0, "plain"},
		{"  a\r\nb\tc  ", 0, "a  b c"},
		{"x\u2028y\u0085z", 0, "x y z"},
		{"héllo", 2, "h"},
		{"héllo", 3, "hé"},
		{"abcdef", 3, "abc"},
		{"\xff\xfe", 0, "\ufffd\ufffd"},
		{"café\n", math.MaxInt, "café"},                       // max+4 used to overflow: a panic
		{"ok \u202egnp.exe\u2066x\u200f", 0, "ok  gnp.exe x"}, // bidi controls
	}
	for _, c := range cases {
		if got := streamguard.Sanitize(c.in, c.max); got != c.want {
			t.Errorf("Sanitize(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Timeouts from real transports: the response-header timeout is the
// gateway's silence (platform), http.Client.Timeout is the caller's own.
func TestFromErrorTransportTimeouts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	tr := srv.Client().Transport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	tr.ResponseHeaderTimeout = 20 * time.Millisecond
	_, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if e := streamguard.FromError(err); e.Source != streamguard.SourcePlatform || e.Reason != streamguard.ReasonTimeout {
		t.Errorf("header timeout %v: got %s %s", err, e.Source, e.Reason)
	}

	c := srv.Client()
	c.Timeout = 20 * time.Millisecond
	_, err = c.Get(srv.URL)
	if e := streamguard.FromError(err); e.Source != streamguard.SourceClient || e.Reason != streamguard.ReasonTimeout {
		t.Errorf("client timeout %v: got %s %s", err, e.Source, e.Reason)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err = srv.Client().Do(req)
	if e := streamguard.FromError(err); e.Source != streamguard.SourceClient || e.Reason != streamguard.ReasonTimeout {
		t.Errorf("context deadline %v: got %s %s", err, e.Source, e.Reason)
	}
}

// TestClassifyKeyCutOrEscaped: no part of the request's key survives in an
// error, when the 64 KiB cut of a body splits it or when a JSON encoder
// escaped its '/'.
func TestClassifyKeyCutOrEscaped(t *testing.T) {
	const key = "AbCdEf12.ghIJ/klmnopqrstuvwxyz0123456789AB" // no known shape: only the request has it
	escaped := strings.ReplaceAll(key, "/", `\/`)
	pad := "<!--" + strings.Repeat("x", streamguard.MaxErrorBody-20-4-1) + ">"
	cases := []struct{ name, ct, body string }{
		{"split by the cut", "text/html", pad + "key " + key + " rejected"},
		{"split by the cut, a longer body read", "text/plain", pad + "key " + key + strings.Repeat(" rejected", 1000)},
		{"escaped in an error of unknown shape", "application/json", `{"error": ["Incorrect API key provided: ` + escaped + `"]}`},
		{"escaped in an error object without a message", "application/json", `{"error": {"detail": "key ` + escaped + `"}}`},
		{"escaped in a JSON array", "application/json", `["Incorrect API key provided: ` + escaped + `"]`},
		{"escaped as \\u002f", "application/json", `{"error": ["key ` + strings.ReplaceAll(key, "/", `\u002f`) + `"]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, "https://model.example/predict", nil)
			req.Header.Set("Authorization", "Api-Key "+key)
			resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {c.ct}}, Request: req}
			e := streamguard.Classify(resp, []byte(c.body))
			j, _ := json.Marshal(e)
			for _, frag := range []string{key[:8], key[len(key)-8:], "ghIJ"} {
				if strings.Contains(e.Error()+string(j), frag) {
					t.Fatalf("%q of the key survived: Message %q", frag, e.Message)
				}
			}
		})
	}
}
