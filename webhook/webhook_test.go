package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/webhook"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	secret    = "whsec-current"
	oldSecret = "whsec-previous"
)

// call is one call of the user's Func.
type call struct {
	result *streamguard.AsyncResult
	errs   []*streamguard.Error
}

// recorder is a Func that records its calls and returns err.
type recorder struct {
	mu    sync.Mutex
	calls []call
	err   error
}

func (rec *recorder) fn(_ context.Context, r *streamguard.AsyncResult, errs []*streamguard.Error) error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.calls = append(rec.calls, call{r, errs})
	return rec.err
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.calls)
}

// newReceiver serves webhook.NewHandler on a loopback server.
func newReceiver(t *testing.T, secrets []string, rec *recorder, cfg webhook.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(webhook.NewHandler(secrets, rec.fn, cfg))
	t.Cleanup(srv.Close)
	return srv
}

// post sends body with the given signature header values (none when nil).
func post(t *testing.T, srv *httptest.Server, body io.Reader, sigs ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/async", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, s := range sigs {
		req.Header.Add("X-BASETEN-SIGNATURE", s)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(got)
}

func payload(t *testing.T, r streamguard.AsyncResult) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var success = streamguard.AsyncResult{
	RequestID: "req-1", ModelID: "abc123", DeploymentID: "def456", Type: "async_request_completed",
	Time: "2024-04-30T01:01:08.883423Z", Data: json.RawMessage(`{"text":"hello"}`), Errors: []streamguard.AsyncError{},
}

// wantJSONError checks an error answer: status, JSON {"error": ...}, and no
// secret or signature echoed.
func wantJSONError(t *testing.T, resp *http.Response, body string, status int, sigs ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Errorf("body %q is not {\"error\": \"...\"}", body)
	}
	for _, s := range append(sigs, secret, oldSecret) {
		if s != "" && strings.Contains(body, strings.TrimPrefix(s, "v1=")) {
			t.Errorf("body %q echoes a secret or signature", body)
		}
	}
}

func TestSignatures(t *testing.T) {
	body := payload(t, success)
	tampered := bytes.Replace(body, []byte("hello"), []byte("HELLO"), 1)
	cases := []struct {
		name    string
		secrets []string
		body    []byte
		sigs    []string
		ok      bool
	}{
		{"valid", []string{secret}, body, []string{webhook.Sign(body, secret)}, true},
		{"invalid", []string{secret}, body, []string{webhook.Sign(body, "guess")}, false},
		{"missing", []string{secret}, body, nil, false},
		{"empty header", []string{secret}, body, []string{""}, false},
		{"garbage header", []string{secret}, body, []string{"v1=not-a-signature"}, false},
		{"tampered body", []string{secret}, tampered, []string{webhook.Sign(body, secret)}, false},
		{"rotated: signed with the old secret", []string{oldSecret, secret}, body, []string{webhook.Sign(body, oldSecret)}, true},
		{"rotated: signed with the new secret", []string{oldSecret, secret}, body, []string{webhook.Sign(body, secret)}, true},
		{"rotated: old secret retired", []string{secret}, body, []string{webhook.Sign(body, oldSecret)}, false},
		{"several v1 entries in one header", []string{secret}, body,
			[]string{webhook.Sign(body, oldSecret) + "," + webhook.Sign(body, secret)}, true},
		{"several v1 entries, none valid", []string{secret}, body,
			[]string{webhook.Sign(body, oldSecret) + "," + webhook.Sign(body, "guess")}, false},
		{"several header lines", []string{secret}, body,
			[]string{webhook.Sign(body, "guess"), webhook.Sign(body, secret)}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			srv := newReceiver(t, c.secrets, rec, webhook.Config{})
			resp, got := post(t, srv, bytes.NewReader(c.body), c.sigs...)
			if !c.ok {
				wantJSONError(t, resp, got, http.StatusUnauthorized, c.sigs...)
				if rec.count() != 0 {
					t.Fatal("the Func was called for a request without a valid signature")
				}
				return
			}
			if resp.StatusCode != http.StatusOK || rec.count() != 1 {
				t.Fatalf("status %d (%s), %d calls; want 200 and one call", resp.StatusCode, got, rec.count())
			}
			r := rec.calls[0]
			if r.result.RequestID != "req-1" || string(r.result.Data) != `{"text":"hello"}` || r.errs != nil {
				t.Errorf("Func got %+v, %v", r.result, r.errs)
			}
		})
	}
}

func TestEveryErrorCode(t *testing.T) {
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
		{"A_CODE_FROM_THE_FUTURE", "unknown", "", false},
	}
	rec := &recorder{}
	srv := newReceiver(t, []string{secret}, rec, webhook.Config{})
	for i, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			r := success
			r.RequestID = "req-" + c.code
			r.Data = nil
			r.Errors = []streamguard.AsyncError{{Code: c.code, Message: "failed with " + c.code}}
			body := payload(t, r)
			resp, got := post(t, srv, bytes.NewReader(body), webhook.Sign(body, secret))
			if resp.StatusCode != http.StatusOK || rec.count() != i+1 {
				t.Fatalf("status %d (%s), %d calls", resp.StatusCode, got, rec.count())
			}
			errs := rec.calls[i].errs
			if len(errs) != 1 {
				t.Fatalf("%d errors, want 1", len(errs))
			}
			e := errs[0]
			if e.Source != c.source || e.Reason != c.reason || e.Retryable != c.retryable ||
				e.Code != c.code || e.Message != "failed with "+c.code || e.RequestID != r.RequestID {
				t.Errorf("got %+v", e)
			}
		})
	}
}

func TestNotAResult(t *testing.T) {
	cases := map[string]string{
		"not json":            `request finished`,
		"truncated json":      `{"request_id": "r1", "errors": [`,
		"json null":           `null`,
		"json array":          `[{"request_id": "r1"}]`,
		"no request_id":       `{"data": {"x": 1}, "errors": []}`,
		"errors not an array": `{"request_id": "r1", "errors": "MODEL_PREDICT_ERROR"}`,
		"empty body":          ``,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			srv := newReceiver(t, []string{secret}, rec, webhook.Config{})
			sig := webhook.Sign([]byte(body), secret)
			resp, got := post(t, srv, strings.NewReader(body), sig)
			wantJSONError(t, resp, got, http.StatusBadRequest, sig)
			if rec.count() != 0 {
				t.Fatal("the Func was called")
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	r := success
	r.Data = json.RawMessage(`"` + strings.Repeat("x", 2000) + `"`)
	body := payload(t, r)
	sig := webhook.Sign(body, secret)
	for _, c := range []struct {
		name    string
		limit   int64
		chunked bool
		status  int
	}{
		{"over, Content-Length", int64(len(body)) - 1, false, http.StatusRequestEntityTooLarge},
		{"over, chunked", int64(len(body)) - 1, true, http.StatusRequestEntityTooLarge},
		{"at the limit", int64(len(body)), true, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			srv := newReceiver(t, []string{secret}, rec, webhook.Config{MaxBody: c.limit})
			var rd io.Reader = bytes.NewReader(body)
			if c.chunked {
				rd = io.MultiReader(rd) // unknown length: sent chunked
			}
			resp, got := post(t, srv, rd, sig)
			if c.status == http.StatusOK {
				if resp.StatusCode != http.StatusOK || rec.count() != 1 {
					t.Fatalf("status %d (%s), %d calls", resp.StatusCode, got, rec.count())
				}
				return
			}
			wantJSONError(t, resp, got, c.status, sig)
			if !strings.Contains(got, "exceeds maximum size of") || rec.count() != 0 {
				t.Fatalf("body %s, %d calls", got, rec.count())
			}
		})
	}
}

// TestServerCapBelowOurs: a server's own cap (http.MaxBytesReader, as
// NewHandler's MaxBodyBytes sets it) smaller than MaxBody refuses a chunked
// body with 413, as ours does, not 400: the platform retries a 400.
func TestServerCapBelowOurs(t *testing.T) {
	r := success
	r.Data = json.RawMessage(`"` + strings.Repeat("x", 2000) + `"`)
	body := payload(t, r)
	rec := &recorder{}
	h := webhook.NewHandler([]string{secret}, rec.fn, webhook.Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 100)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	resp, got := post(t, srv, io.MultiReader(bytes.NewReader(body)), webhook.Sign(body, secret))
	wantJSONError(t, resp, got, http.StatusRequestEntityTooLarge)
	if !strings.Contains(got, "exceeds maximum size of 100 bytes") || rec.count() != 0 {
		t.Fatalf("body %s, %d calls", got, rec.count())
	}
}

// The default cap is 1 MiB.
func TestDefaultBodyLimit(t *testing.T) {
	rec := &recorder{}
	srv := newReceiver(t, []string{secret}, rec, webhook.Config{})
	big := bytes.Repeat([]byte("x"), webhook.DefaultMaxBody+1)
	resp, got := post(t, srv, bytes.NewReader(big), webhook.Sign(big, secret))
	wantJSONError(t, resp, got, http.StatusRequestEntityTooLarge)
	if rec.count() != 0 {
		t.Fatal("the Func was called")
	}
}

// A negative MaxBody is no cap, as in middleware.Config; so is the largest
// int64 (whose reader's limit, one past it, used to overflow: every
// webhook got 401 for an empty body).
func TestNoBodyLimit(t *testing.T) {
	r := success
	r.Data = json.RawMessage(`"` + strings.Repeat("x", webhook.DefaultMaxBody) + `"`)
	body := payload(t, r)
	for _, max := range []int64{-1, math.MaxInt64} {
		rec := &recorder{}
		srv := newReceiver(t, []string{secret}, rec, webhook.Config{MaxBody: max})
		resp, got := post(t, srv, io.MultiReader(bytes.NewReader(body)), webhook.Sign(body, secret))
		if resp.StatusCode != http.StatusOK || rec.count() != 1 {
			t.Fatalf("a %d-byte body, MaxBody %d: status %d (%s), %d calls", len(body), max, resp.StatusCode, got, rec.count())
		}
	}
}

func TestFuncErrorAnswers500(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	rec := &recorder{err: errors.New("database is down")}
	srv := newReceiver(t, []string{secret}, rec, webhook.Config{Logger: logger})
	body := payload(t, success)
	sig := webhook.Sign(body, secret)
	resp, got := post(t, srv, bytes.NewReader(body), sig)
	wantJSONError(t, resp, got, http.StatusInternalServerError, sig)
	if strings.Contains(got, "database") {
		t.Errorf("body %q echoes the Func's error", got)
	}
	if rec.count() != 1 {
		t.Fatalf("%d calls", rec.count())
	}
	if !strings.Contains(logs.String(), "database is down") || !strings.Contains(logs.String(), "req-1") {
		t.Errorf("log %q lacks the error and the request ID", logs.String())
	}
}

// Logs say why a webhook was rejected and never hold a secret, a signature or
// a body.
func TestLogsNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	rec := &recorder{}
	srv := newReceiver(t, []string{oldSecret, secret}, rec, webhook.Config{Logger: logger, MaxBody: 4096})
	body := payload(t, success)
	forged := webhook.Sign(body, "guess")
	post(t, srv, bytes.NewReader(body), forged)
	post(t, srv, bytes.NewReader(body))
	post(t, srv, bytes.NewReader(bytes.Repeat([]byte("y"), 5000)), forged)
	out := logs.String()
	if strings.Count(out, "webhook rejected") != 3 {
		t.Fatalf("log %q: want three rejections", out)
	}
	for _, s := range []string{secret, oldSecret, strings.TrimPrefix(forged, "v1="), "hello", "yyyy"} {
		if strings.Contains(out, s) {
			t.Errorf("log holds %q: %s", s, out)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	rec := &recorder{}
	srv := newReceiver(t, []string{secret}, rec, webhook.Config{})
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	wantJSONError(t, resp, string(body), http.StatusMethodNotAllowed)
	if resp.Header.Get("Allow") != "POST" || rec.count() != 0 {
		t.Fatalf("Allow %q, %d calls", resp.Header.Get("Allow"), rec.count())
	}
}

// The Func gets the request's context: a receiver can tie its work to the
// platform's connection.
func TestFuncGetsRequestContext(t *testing.T) {
	type key struct{}
	var got any
	h := webhook.NewHandler([]string{secret}, func(ctx context.Context, _ *streamguard.AsyncResult, _ []*streamguard.Error) error {
		got = ctx.Value(key{})
		return nil
	}, webhook.Config{})
	body := payload(t, success)
	req := httptest.NewRequestWithContext(context.WithValue(context.Background(), key{}, "v"),
		http.MethodPost, "/hook", bytes.NewReader(body))
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(body, secret))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || got != "v" {
		t.Fatalf("status %d, context value %v", w.Code, got)
	}
}

func TestNewHandlerPanics(t *testing.T) {
	fn := (&recorder{}).fn
	for name, build := range map[string]func(){
		"no secrets":   func() { webhook.NewHandler(nil, fn, webhook.Config{}) },
		"empty secret": func() { webhook.NewHandler([]string{secret, ""}, fn, webhook.Config{}) },
		"nil func":     func() { webhook.NewHandler([]string{secret}, nil, webhook.Config{}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			build()
		})
	}
}

// TestMaxAge: with Config.MaxAge, a signed result whose time is older
// than it (a captured delivery replayed), too far ahead of the clock, or
// missing is refused with 401 and Func is not called; a fresh one is
// taken. Without it, an old result is taken (the platform's late retry).
func TestMaxAge(t *testing.T) {
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	for _, c := range []struct {
		name   string
		maxAge time.Duration
		time   string
		ok     bool
	}{
		{"fresh", time.Hour, at(-time.Minute), true},
		{"older than MaxAge", time.Hour, at(-2 * time.Hour), false},
		{"far ahead", time.Hour, at(10 * time.Minute), false},
		{"a little ahead (skew)", time.Hour, at(10 * time.Second), true},
		{"no time", time.Hour, "", false},
		{"not a time", time.Hour, "yesterday", false},
		{"no MaxAge: an old result", 0, "2024-04-30T01:01:08.883423Z", true},
	} {
		rec := &recorder{}
		srv := newReceiver(t, []string{secret}, rec, webhook.Config{MaxAge: c.maxAge})
		r := success
		r.Time = c.time
		body := payload(t, r)
		resp, got := post(t, srv, bytes.NewReader(body), webhook.Sign(body, secret))
		if ok := resp.StatusCode == http.StatusOK && rec.count() == 1; ok != c.ok {
			t.Errorf("%s: %d %s, %d calls; want accepted %v", c.name, resp.StatusCode, got, rec.count(), c.ok)
		}
		if !c.ok && resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", c.name, resp.StatusCode)
		}
	}
}
