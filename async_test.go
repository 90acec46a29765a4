package streamguard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
)

// A result as the platform posts it to the webhook.
const asyncSuccess = `{
  "request_id": "9876543210abcdef1234567890fedcba",
  "model_id": "abc123",
  "deployment_id": "def456",
  "type": "async_request_completed",
  "time": "2024-04-30T01:01:08.883423Z",
  "data": {"output": [1, 2, 3], "text": "hello"},
  "errors": []
}`

func TestAsyncResultDecodes(t *testing.T) {
	var r streamguard.AsyncResult
	if err := json.Unmarshal([]byte(asyncSuccess), &r); err != nil {
		t.Fatal(err)
	}
	if r.RequestID != "9876543210abcdef1234567890fedcba" || r.ModelID != "abc123" || r.DeploymentID != "def456" ||
		r.Type != "async_request_completed" || r.Time != "2024-04-30T01:01:08.883423Z" {
		t.Errorf("decoded %+v", r)
	}
	if string(r.Data) != `{"output": [1, 2, 3], "text": "hello"}` {
		t.Errorf("Data = %s, want the raw output", r.Data)
	}
	if r.Errors == nil || len(r.Errors) != 0 {
		t.Errorf("Errors = %#v, want an empty array", r.Errors)
	}
	if errs := streamguard.ClassifyAsync(&r); errs != nil {
		t.Errorf("ClassifyAsync of a success = %v, want nil", errs)
	}
}

func TestClassifyAsyncSuccess(t *testing.T) {
	for name, r := range map[string]*streamguard.AsyncResult{
		"nil result":   nil,
		"empty errors": {RequestID: "r", Errors: []streamguard.AsyncError{}},
		"no errors":    {RequestID: "r", Data: json.RawMessage(`{"ok":true}`)},
	} {
		t.Run(name, func(t *testing.T) {
			if errs := streamguard.ClassifyAsync(r); errs != nil {
				t.Errorf("ClassifyAsync = %v, want nil", errs)
			}
		})
	}
}

func TestClassifyAsyncCodes(t *testing.T) {
	cases := []struct {
		code      string
		source    streamguard.Source
		reason    streamguard.Reason
		retryable bool
	}{
		{"MODEL_NOT_READY", "platform", "unavailable", true},
		{"MODEL_DOES_NOT_EXIST", "request", "not_found", false},
		{"MODEL_INVALID_INPUT", "request", "bad_request", false},
		{"MODEL_PREDICT_ERROR", "model", "model_error", false},
		{"MODEL_UNAVAILABLE", "platform", "unreachable", true},
		{"MODEL_PREDICT_TIMEOUT", "platform", "timeout", false},
		{"ASYNC_REQUEST_NOT_SUPPORTED", "request", "bad_request", false},
		{"INTERNAL_SERVER_ERROR", "platform", "platform_error", true},
		{"model_predict_error", "model", "model_error", false}, // case-insensitive
		{"SOMETHING_NEW", "unknown", "", false},
		{"", "unknown", "", false},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			r := &streamguard.AsyncResult{
				RequestID: "req-1",
				Errors:    []streamguard.AsyncError{{Code: c.code, Message: "it failed: " + c.code}},
			}
			errs := streamguard.ClassifyAsync(r)
			if len(errs) != 1 {
				t.Fatalf("ClassifyAsync returned %d errors, want 1", len(errs))
			}
			e := errs[0]
			if e.Source != c.source || e.Reason != c.reason || e.Retryable != c.retryable {
				t.Errorf("got %s %s retryable=%v, want %s %s retryable=%v",
					e.Source, e.Reason, e.Retryable, c.source, c.reason, c.retryable)
			}
			if e.Code != c.code || e.Message != strings.TrimSpace("it failed: "+c.code) || e.RequestID != "req-1" || e.StatusCode != 0 {
				t.Errorf("got Code %q Message %q RequestID %q StatusCode %d", e.Code, e.Message, e.RequestID, e.StatusCode)
			}
			line := e.Error()
			if strings.ContainsAny(line, "\r\n") || !strings.HasPrefix(line, "streamguard: "+string(c.source)) {
				t.Errorf("Error() = %q", line)
			}
			if c.reason != "" && !strings.Contains(line, e.Hint()) {
				t.Errorf("Error() = %q lacks the hint", line)
			}
			var target *streamguard.Error
			if !errors.As(error(e), &target) {
				t.Error("errors.As does not find the *Error")
			}
		})
	}
}

// Every code named by the exported constants is classified (none falls to
// SourceUnknown).
func TestClassifyAsyncConstants(t *testing.T) {
	for _, code := range []string{
		streamguard.AsyncModelNotReady, streamguard.AsyncModelDoesNotExist, streamguard.AsyncModelInvalidInput,
		streamguard.AsyncModelPredictError, streamguard.AsyncModelUnavailable, streamguard.AsyncModelPredictTimeout,
		streamguard.AsyncRequestNotSupported, streamguard.AsyncInternalServerError,
	} {
		errs := streamguard.ClassifyAsync(&streamguard.AsyncResult{Errors: []streamguard.AsyncError{{Code: code}}})
		if errs[0].Source == streamguard.SourceUnknown || errs[0].Reason == "" {
			t.Errorf("%s: %s %s, want a known class", code, errs[0].Source, errs[0].Reason)
		}
	}
}

func TestClassifyAsyncKeepsOrderAndSanitizes(t *testing.T) {
	long := strings.Repeat("x", 2*streamguard.MaxMessage)
	r := &streamguard.AsyncResult{
		RequestID: "id\r\nInjected: 1",
		Errors: []streamguard.AsyncError{
			{Code: "MODEL_PREDICT_ERROR", Message: "Traceback:\n  line 1\x1b[31m"},
			{Code: "MODEL_\nUNAVAILABLE", Message: long},
			{Code: "INTERNAL_SERVER_ERROR", Message: ""},
		},
	}
	errs := streamguard.ClassifyAsync(r)
	if len(errs) != 3 {
		t.Fatalf("got %d errors, want 3", len(errs))
	}
	if errs[0].Message != "Traceback:   line 1 [31m" || errs[0].Reason != streamguard.ReasonModelError {
		t.Errorf("errs[0] = %q %s", errs[0].Message, errs[0].Reason)
	}
	if errs[1].Code != "MODEL_ UNAVAILABLE" || errs[1].Source != streamguard.SourceUnknown {
		t.Errorf("errs[1]: Code %q Source %s; a code with a control character is kept sanitized, unknown", errs[1].Code, errs[1].Source)
	}
	if len(errs[1].Message) != streamguard.MaxMessage {
		t.Errorf("errs[1].Message is %d bytes, want %d", len(errs[1].Message), streamguard.MaxMessage)
	}
	if errs[2].Reason != streamguard.ReasonPlatformError || errs[2].Message != "" {
		t.Errorf("errs[2] = %s %q", errs[2].Reason, errs[2].Message)
	}
	for i, e := range errs {
		if e.RequestID != "id  Injected: 1" {
			t.Errorf("errs[%d].RequestID = %q, want it sanitized", i, e.RequestID)
		}
	}
}

// submitServer answers every request with status, header and body.
func submitServer(t *testing.T, status int, header map[string]string, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Baseten-Request-Id", "gw-7")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func submit(t *testing.T, srv *httptest.Server) *http.Response {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+"/production/async_predict", "application/json",
		strings.NewReader(`{"model_input": {"prompt": "hi"}}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestAsyncRequestID(t *testing.T) {
	for _, status := range []int{201, 202} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			resp := submit(t, submitServer(t, status, nil, `{"request_id": "9876543210abcdef"}`))
			id, err := streamguard.AsyncRequestID(resp)
			if err != nil || id != "9876543210abcdef" {
				t.Fatalf("AsyncRequestID = %q, %v", id, err)
			}
		})
	}
}

func TestAsyncRequestIDWithout(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"201 no request_id", 201, `{"ok": true}`},
		{"201 empty request_id", 201, `{"request_id": ""}`},
		{"201 not json", 201, `queued`},
		{"200 model output", 200, `{"output": "hello"}`},
		{"204 no body", 204, ``},
		{"304 not modified", 304, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := submit(t, submitServer(t, c.status, nil, c.body))
			id, err := streamguard.AsyncRequestID(resp)
			var se *streamguard.Error
			if id != "" || !errors.As(err, &se) {
				t.Fatalf("AsyncRequestID = %q, %v; want a *streamguard.Error", id, err)
			}
			if se.StatusCode != c.status || se.Source != streamguard.SourceUnknown || se.RequestID != "gw-7" {
				t.Errorf("got %d %s request %q", se.StatusCode, se.Source, se.RequestID)
			}
			if !strings.Contains(se.Error(), "without a request_id") {
				t.Errorf("Error() = %q", se.Error())
			}
		})
	}
}

// TestAsyncRequestIDNotAnID: a request_id that could not be returned as it
// came (over 128 bytes, a control character, spaces at its ends) is an
// error, not an altered ID that would poll nothing and match no webhook.
func TestAsyncRequestIDNotAnID(t *testing.T) {
	for _, id := range []string{strings.Repeat("a", 200), `abc\u0000def`, " abc "} {
		resp := submit(t, submitServer(t, 201, nil, `{"request_id": "`+id+`"}`))
		got, err := streamguard.AsyncRequestID(resp)
		var se *streamguard.Error
		if got != "" || !errors.As(err, &se) || se.StatusCode != 201 || !strings.Contains(se.Error(), "not an ID") {
			t.Errorf("request_id %.20q: %q, %v", id, got, err)
		}
	}
	if got, err := streamguard.AsyncRequestID(submit(t, submitServer(t, 201, nil, `{"request_id": "réq-1"}`))); got != "réq-1" || err != nil {
		t.Errorf("a request_id of letters not ASCII: %q, %v", got, err)
	}
}

// TestAsyncRequestIDEchoedKey: a submit answer that echoes the request's
// key, as its request ID header or as its request_id, never puts it in
// the error, nor returns it as an ID.
func TestAsyncRequestIDEchoedKey(t *testing.T) {
	const key = "AbCdEf12.ghIJklmnopqrstuvwxyz0123456789AB" // no known shape: only the request has it
	for _, c := range []struct{ name, header, body string }{
		{"in the header", key, `{"ok": true}`},
		{"as the request_id", "gw-7", `{"request_id": "` + key + `"}`},
		{"within the request_id", "gw-7", `{"request_id": "id-` + key + `"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", c.header)
				w.WriteHeader(201)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/production/async_predict", strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Api-Key "+key)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			id, err := streamguard.AsyncRequestID(resp)
			var se *streamguard.Error
			if id != "" || !errors.As(err, &se) {
				t.Fatalf("AsyncRequestID = %q, %v; want an error", id, err)
			}
			j, _ := json.Marshal(se)
			if strings.Contains(se.RequestID+se.Error()+string(j), key[:12]) {
				t.Errorf("the key is in the error: RequestID %q, %s", se.RequestID, j)
			}
		})
	}
}

func TestAsyncSubmitErrors(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		source    streamguard.Source
		reason    streamguard.Reason
		retryable bool
		code      string
	}{
		{"429 CAPACITY_EXCEEDED", 429, map[string]string{"Retry-After": "3"},
			`{"error": "Too many requests", "error_code": "CAPACITY_EXCEEDED"}`,
			"platform", "rate_limited", true, "CAPACITY_EXCEEDED"},
		{"429 capacity message only", 429, nil, `{"error": "async queue capacity exceeded"}`,
			"platform", "rate_limited", true, ""},
		{"413 async limit", 413, nil,
			`{"error": "payload size of 300000 bytes exceeds maximum size of 262144 bytes"}`,
			"request", "payload_too_large", false, ""},
		{"503 async service not set up", 503, nil, `{"error": "async service unavailable"}`,
			"platform", "unavailable", true, ""},
		{"401 bad key", 401, nil, `{"error": "Invalid API key"}`, "request", "unauthorized", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := submit(t, submitServer(t, c.status, c.header, c.body))
			id, err := streamguard.AsyncRequestID(resp)
			var se *streamguard.Error
			if id != "" || !errors.As(err, &se) {
				t.Fatalf("AsyncRequestID = %q, %v; want a *streamguard.Error", id, err)
			}
			if se.StatusCode != c.status || se.Source != c.source || se.Reason != c.reason ||
				se.Retryable != c.retryable || se.Code != c.code {
				t.Errorf("got %d %s %s retryable=%v code %q, want %d %s %s retryable=%v code %q",
					se.StatusCode, se.Source, se.Reason, se.Retryable, se.Code,
					c.status, c.source, c.reason, c.retryable, c.code)
			}
			if se.RequestID != "gw-7" {
				t.Errorf("RequestID = %q", se.RequestID)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != c.body {
				t.Errorf("body after AsyncRequestID = %q, %v; want it readable", body, err)
			}
		})
	}
}

// Classify's codes table knows the async capacity code, whatever the status
// that carries it.
func TestClassifyCapacityExceeded(t *testing.T) {
	for _, status := range []int{429, 503} {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		e := streamguard.Classify(resp, []byte(`{"error": "capacity exceeded", "error_code": "CAPACITY_EXCEEDED"}`))
		if e.Source != streamguard.SourcePlatform || e.Reason != streamguard.ReasonRateLimited || !e.Retryable ||
			e.Code != "CAPACITY_EXCEEDED" {
			t.Errorf("%d: got %s %s retryable=%v code %q", status, e.Source, e.Reason, e.Retryable, e.Code)
		}
	}
}

func TestAsyncRequestIDNil(t *testing.T) {
	id, err := streamguard.AsyncRequestID(nil)
	var se *streamguard.Error
	if id != "" || !errors.As(err, &se) {
		t.Fatalf("AsyncRequestID(nil) = %q, %v", id, err)
	}
}

// ClassifyAsync gives the failures of an async prediction, reported in the
// result posted to the webhook, the same sources, reasons and hints as a
// failed sync call.
func ExampleClassifyAsync() {
	body := `{"request_id": "9876543210abcdef", "model_id": "abc123", "deployment_id": "def456",
	  "type": "async_request_completed", "time": "2024-04-30T01:01:08.883423Z", "data": null,
	  "errors": [{"code": "MODEL_PREDICT_ERROR", "message": "CUDA out of memory"}]}`
	var r streamguard.AsyncResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range streamguard.ClassifyAsync(&r) {
		fmt.Println(e)
	}
	// Output:
	// streamguard: model model_error: CUDA out of memory (the model's own error: read the error body and the model logs)
}
