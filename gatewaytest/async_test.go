package gatewaytest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/platform"
)

// waitFor bounds every wait on the gateway's background work.
const waitFor = 10 * time.Second

// hook is one webhook the receiver got.
type hook struct {
	header http.Header
	body   []byte
}

// receiver is a loopback webhook endpoint that records what it gets and
// answers with status(n) for the n-th webhook (from 1).
type receiver struct {
	*httptest.Server
	hooks chan hook
	n     atomic.Int64
}

func newReceiver(t *testing.T, status func(n int64) int) *receiver {
	t.Helper()
	rc := &receiver{hooks: make(chan hook, 64)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		n := rc.n.Add(1)
		select {
		case rc.hooks <- hook{header: r.Header.Clone(), body: body}:
		default:
			t.Error("receiver: too many webhooks")
		}
		code := http.StatusOK
		if status != nil {
			code = status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) next(t *testing.T) hook {
	t.Helper()
	select {
	case h := <-rc.hooks:
		return h
	case <-time.After(waitFor):
		t.Fatal("no webhook")
	}
	return hook{}
}

// deliveries returns an OnDelivery func and the channel it reports to.
func deliveries() (func(gatewaytest.Delivery), chan gatewaytest.Delivery) {
	ch := make(chan gatewaytest.Delivery, 64)
	return func(d gatewaytest.Delivery) { ch <- d }, ch
}

func nextDelivery(t *testing.T, ch chan gatewaytest.Delivery) gatewaytest.Delivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(waitFor):
		t.Fatal("no delivery")
	}
	return gatewaytest.Delivery{}
}

func sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

func submitAsync(t *testing.T, srv *gatewaytest.Server, body string) *http.Response {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+"/production/async_predict", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeResult(t *testing.T, body []byte) streamguard.AsyncResult {
	t.Helper()
	var r streamguard.AsyncResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("webhook body %q: %v", body, err)
	}
	return r
}

func TestAsyncSubmitAndWebhook(t *testing.T) {
	rc := newReceiver(t, nil)
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL + "/hook", Secrets: []string{"s3cret"},
		ModelID: "abc123", DeploymentID: "def456"})

	resp := submitAsync(t, srv, `{"prompt": "hello"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit: %d", resp.StatusCode)
	}
	id, err := streamguard.AsyncRequestID(resp)
	if err != nil || id == "" || id != resp.Header.Get(gatewaytest.RequestIDHeader) {
		t.Fatalf("request ID %q, %v; header %q", id, err, resp.Header.Get(gatewaytest.RequestIDHeader))
	}

	h := rc.next(t)
	if got, want := h.header.Get("X-BASETEN-SIGNATURE"), sign(h.body, "s3cret"); got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	if ct := h.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	r := decodeResult(t, h.body)
	if r.RequestID != id || r.ModelID != "abc123" || r.DeploymentID != "def456" || r.Type != gatewaytest.AsyncResultType {
		t.Errorf("result %+v", r)
	}
	if string(r.Data) != `{"prompt":"hello"}` { // compacted, as json.Marshal does
		t.Errorf("data %s, want the model's output", r.Data)
	}
	if r.Errors == nil || len(r.Errors) != 0 || !strings.Contains(string(h.body), `"errors":[]`) {
		t.Errorf("errors %v in %s, want an empty array", r.Errors, h.body)
	}
	if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
		t.Errorf("time %q: %v", r.Time, err)
	}
	recs := srv.Records()
	if len(recs) != 1 || string(recs[0].Body) != `{"prompt": "hello"}` {
		t.Errorf("records %+v", recs)
	}
}

func TestAsyncFaults(t *testing.T) {
	cases := []struct {
		name    string
		fault   gatewaytest.Fault
		model   http.Handler // nil: Echo
		status  int          // the submit's answer
		code    string       // the webhook's error code; "" means success (when status is 201)
		message string
		data    string
	}{
		{name: "pass", fault: gatewaytest.Pass(), status: 201, data: `{"in":1}`},
		{name: "end early", fault: gatewaytest.EndEarly(1), status: 201, data: `{"in":1}`},
		{name: "unreachable", fault: gatewaytest.Unreachable(), status: 201,
			code: "MODEL_UNAVAILABLE", message: gatewaytest.MessageUnreachable},
		{name: "cut", fault: gatewaytest.Cut(1), status: 201, code: "MODEL_UNAVAILABLE"},
		{name: "reset", fault: gatewaytest.Reset(1), status: 201, code: "MODEL_UNAVAILABLE"},
		{name: "gateway timeout", fault: gatewaytest.GatewayTimeout(time.Millisecond), status: 201,
			code: "MODEL_PREDICT_TIMEOUT", message: gatewaytest.MessageTimeout},
		{name: "stall", fault: gatewaytest.Stall(0), status: 201, code: "MODEL_PREDICT_TIMEOUT"},
		{name: "status 500", fault: gatewaytest.Status(500, `{"error": "boom"}`), status: 201,
			code: "MODEL_PREDICT_ERROR", message: "boom"},
		{name: "status 502 html", fault: gatewaytest.Status(502, "<html><title>502 Bad Gateway</title></html>"), status: 201,
			code: "MODEL_UNAVAILABLE", message: "502 Bad Gateway"},
		{name: "status 503", fault: gatewaytest.Status(503, `{"error": "not ready"}`), status: 201,
			code: "MODEL_NOT_READY", message: "not ready"},
		{name: "status 504", fault: gatewaytest.Status(504, ``), status: 201,
			code: "MODEL_PREDICT_TIMEOUT", message: "Gateway Timeout"},
		{name: "model 500", model: gatewaytest.JSON(500, `{"error": "CUDA out of memory"}`), status: 201,
			code: "MODEL_PREDICT_ERROR", message: "CUDA out of memory"},
		{name: "model 422", model: gatewaytest.JSON(422, `{"detail": "prompt: field required"}`), status: 201,
			code: "MODEL_INVALID_INPUT", message: "prompt: field required"},
		{name: "model panics", model: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("oom") }),
			status: 201, code: "MODEL_UNAVAILABLE"},
		{name: "model text", model: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain\n") }),
			status: 201, data: `"plain\n"`},
		{name: "model empty", model: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }),
			status: 201, data: `null`},
		{name: "model streams", model: gatewaytest.ChatStream(1), status: 201,
			data: fmt.Sprintf("%q", "data: "+gatewaytest.ChatChunk(0)+"\n\ndata: [DONE]\n\n")},
		// Faults that answer the submit itself: nothing runs.
		{name: "rate limited", fault: gatewaytest.RateLimited(2 * time.Second), status: 429},
		{name: "payload too large", fault: gatewaytest.PayloadTooLarge(), status: 413},
		{name: "draining", fault: gatewaytest.Draining(0), status: 503},
		{name: "client closed", fault: gatewaytest.ClientClosed(), status: 502},
		{name: "status 401", fault: gatewaytest.Status(401, `{"error": "Invalid API key"}`), status: 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			model := c.model
			if model == nil {
				model = gatewaytest.Echo()
			}
			rc := newReceiver(t, nil)
			onDelivery, delivered := deliveries()
			srv := gatewaytest.NewServer(model)
			srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL, Secrets: []string{"k"}, OnDelivery: onDelivery})
			srv.Script(c.fault)
			resp := submitAsync(t, srv, `{"in":1}`)
			if resp.StatusCode != c.status {
				srv.Close()
				t.Fatalf("submit: %d, want %d", resp.StatusCode, c.status)
			}
			if c.status != http.StatusCreated {
				srv.Close() // waits for any background work
				if len(delivered) != 0 || len(rc.hooks) != 0 {
					t.Fatalf("a submit answered %d ran in the background", c.status)
				}
				return
			}
			defer srv.Close()
			d := nextDelivery(t, delivered)
			if d.Attempts != 1 || d.StatusCode != 200 || d.Err != nil {
				t.Errorf("delivery %+v", d)
			}
			r := decodeResult(t, rc.next(t).body)
			if c.code == "" {
				if len(r.Errors) != 0 || string(r.Data) != c.data {
					t.Fatalf("data %s errors %v, want data %s", r.Data, r.Errors, c.data)
				}
				return
			}
			if len(r.Errors) != 1 || r.Errors[0].Code != c.code || (c.message != "" && r.Errors[0].Message != c.message) {
				t.Fatalf("errors %+v, want %s %q", r.Errors, c.code, c.message)
			}
			if string(r.Data) != "null" && r.Data != nil {
				t.Errorf("data %s on failure, want null", r.Data)
			}
		})
	}
}

func TestAsyncCapacityExceeded(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{})
	srv.Script(gatewaytest.RateLimited(3 * time.Second))
	resp := submitAsync(t, srv, `{}`)
	_, err := streamguard.AsyncRequestID(resp)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.StatusCode != 429 || se.Source != streamguard.SourcePlatform ||
		se.Reason != streamguard.ReasonRateLimited || !se.Retryable || se.Code != "CAPACITY_EXCEEDED" ||
		se.Message != gatewaytest.MessageCapacity {
		t.Fatalf("AsyncRequestID error %+v", se)
	}
	if resp.Header.Get("Retry-After") != "3" {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
}

func TestAsyncMaxPending(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"done":true}`)
	})
	onDelivery, delivered := deliveries()
	srv := gatewaytest.NewServer(model)
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{MaxPending: 1, OnDelivery: onDelivery})

	if resp := submitAsync(t, srv, `{}`); resp.StatusCode != 201 {
		t.Fatalf("first submit: %d", resp.StatusCode)
	}
	<-started
	resp := submitAsync(t, srv, `{}`)
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || se.StatusCode != 429 || se.Code != "CAPACITY_EXCEEDED" {
		t.Fatalf("second submit: %d %v", resp.StatusCode, se)
	}
	close(release)
	if d := nextDelivery(t, delivered); d.Attempts != 0 || !strings.Contains(string(d.Body), `"data":{"done":true}`) {
		t.Fatalf("delivery without a webhook URL: %+v", d)
	}
	// The slot is free again.
	if resp := submitAsync(t, srv, `{}`); resp.StatusCode != 201 {
		t.Fatalf("third submit: %d", resp.StatusCode)
	}
	<-started
	nextDelivery(t, delivered)
}

func TestAsyncBodyLimit(t *testing.T) {
	onDelivery, delivered := deliveries()
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	srv.EnableAsync(gatewaytest.AsyncConfig{OnDelivery: onDelivery})
	resp := submitAsync(t, srv, strings.Repeat("x", streamguard.AsyncMaxBody+1))
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || se.StatusCode != 413 ||
		se.Message != platform.TooLargeMessage(streamguard.AsyncMaxBody+1, streamguard.AsyncMaxBody) {
		t.Fatalf("over the limit: %d %v", resp.StatusCode, se)
	}
	if resp := submitAsync(t, srv, `"`+strings.Repeat("x", streamguard.AsyncMaxBody-2)+`"`); resp.StatusCode != 201 {
		t.Fatalf("at the limit: %d", resp.StatusCode)
	}
	nextDelivery(t, delivered)
	srv.Close()
	if len(delivered) != 0 {
		t.Fatal("the body over the limit ran")
	}
}

func TestAsyncRotationSignsWithEverySecret(t *testing.T) {
	rc := newReceiver(t, nil)
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL, Secrets: []string{"old", "new"}})
	submitAsync(t, srv, `{}`)
	h := rc.next(t)
	if got, want := h.header.Get("X-Baseten-Signature"), sign(h.body, "old")+","+sign(h.body, "new"); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

func TestAsyncUnsigned(t *testing.T) {
	rc := newReceiver(t, nil)
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL})
	submitAsync(t, srv, `{}`)
	if h := rc.next(t); h.header.Get("X-Baseten-Signature") != "" {
		t.Fatalf("signature %q without a secret", h.header.Get("X-Baseten-Signature"))
	}
}

func TestAsyncDeliveryRetries(t *testing.T) {
	cases := []struct {
		name     string
		status   func(n int64) int
		attempts int
		last     int
	}{
		{"503 then 200", func(n int64) int { return map[bool]int{true: 503, false: 200}[n < 3] }, 3, 200},
		{"500 every time", func(int64) int { return 500 }, 4, 500},
		{"502 504 200", func(n int64) int { return []int{0, 502, 504, 200}[n] }, 3, 200},
		{"401 not retried", func(int64) int { return 401 }, 1, 401},
		{"400 not retried", func(int64) int { return 400 }, 1, 400},
		{"202 accepted", func(int64) int { return 202 }, 1, 202},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := newReceiver(t, c.status)
			onDelivery, delivered := deliveries()
			srv := gatewaytest.NewServer(gatewaytest.Echo())
			defer srv.Close()
			srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL, MaxAttempts: 4,
				RetryDelay: time.Millisecond, OnDelivery: onDelivery})
			submitAsync(t, srv, `{}`)
			d := nextDelivery(t, delivered)
			if d.Attempts != c.attempts || d.StatusCode != c.last || d.Err != nil || rc.n.Load() != int64(c.attempts) {
				t.Fatalf("delivery %d attempts, last %d, err %v; receiver saw %d; want %d attempts, last %d",
					d.Attempts, d.StatusCode, d.Err, rc.n.Load(), c.attempts, c.last)
			}
			first := rc.next(t).body
			for i := 1; i < c.attempts; i++ {
				if again := rc.next(t).body; string(again) != string(first) {
					t.Fatalf("attempt %d sent %s, want the same body %s", i+1, again, first)
				}
			}
		})
	}
}

func TestAsyncDeliveryNoReceiver(t *testing.T) {
	rc := newReceiver(t, nil)
	url := rc.URL
	rc.Close() // nothing listens there any more
	onDelivery, delivered := deliveries()
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: url, MaxAttempts: 2, RetryDelay: time.Millisecond, OnDelivery: onDelivery})
	submitAsync(t, srv, `{}`)
	if d := nextDelivery(t, delivered); d.Attempts != 2 || d.StatusCode != 0 || d.Err == nil {
		t.Fatalf("delivery %+v, want 2 failed attempts", d)
	}
}

// Close during the wait before a delivery's next attempt reports the
// delivery canceled, as OnDelivery's doc says, not as its last answer.
func TestAsyncCloseDuringRetryWait(t *testing.T) {
	rc := newReceiver(t, func(int64) int { return http.StatusServiceUnavailable })
	onDelivery, delivered := deliveries()
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL, MaxAttempts: 3, RetryDelay: time.Minute, OnDelivery: onDelivery})
	submitAsync(t, srv, `{}`)
	rc.next(t)
	// The first attempt was answered 503; let the gateway start its minute's
	// wait (were Close to come sooner, the attempt itself is canceled: the
	// delivery must say so just the same).
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	if d := nextDelivery(t, delivered); !errors.Is(d.Err, context.Canceled) {
		t.Fatalf("closed before delivery: Err %v, status %d, %d attempts", d.Err, d.StatusCode, d.Attempts)
	}
}

// Close cancels a prediction in progress, reports it, and returns only when
// the background work has ended; goleak in TestMain checks the rest.
func TestAsyncCloseCancels(t *testing.T) {
	rc := newReceiver(t, nil)
	started := make(chan struct{})
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	onDelivery, delivered := deliveries()
	srv := gatewaytest.NewServer(model)
	srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL, OnDelivery: onDelivery})
	if resp := submitAsync(t, srv, `{}`); resp.StatusCode != 201 {
		t.Fatalf("submit: %d", resp.StatusCode)
	}
	<-started
	srv.Close()
	select {
	case d := <-delivered:
		if !errors.Is(d.Err, context.Canceled) || d.Attempts != 0 {
			t.Fatalf("delivery %+v, want canceled without an attempt", d)
		}
	default:
		t.Fatal("Close returned before the canceled request was reported")
	}
	if len(rc.hooks) != 0 {
		t.Fatal("a canceled prediction was delivered")
	}
}

func TestAsyncAfterClose(t *testing.T) {
	g := gatewaytest.New(gatewaytest.Echo())
	g.EnableAsync(gatewaytest.AsyncConfig{})
	g.Close()
	g.Close() // idempotent
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("POST", "/production/async_predict", strings.NewReader(`{}`)))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("submit after Close: %d", w.Code)
	}

	closed := gatewaytest.New(gatewaytest.Echo())
	closed.Close()
	closed.EnableAsync(gatewaytest.AsyncConfig{})
	w = httptest.NewRecorder()
	closed.ServeHTTP(w, httptest.NewRequest("POST", "/production/async_predict", strings.NewReader(`{}`)))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("submit to a gateway enabled after Close: %d", w.Code)
	}
}

func TestAsyncOtherRoutesUnchanged(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.JSON(200, `{"sync":true}`))
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{})
	resp := get(t, srv, "/production/predict")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != `{"sync":true}` {
		t.Fatalf("sync route: %d %s", resp.StatusCode, body)
	}
	resp = get(t, srv, "/production/async_predict")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET on the async route: %d", resp.StatusCode)
	}
	resp, err := srv.Client().Post(srv.URL+"/chain/production/async_run_remote", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("async_run_remote: %d", resp.StatusCode)
	}
}

func TestAsyncEnableTwicePanics(t *testing.T) {
	g := gatewaytest.New(gatewaytest.Echo())
	defer g.Close()
	g.EnableAsync(gatewaytest.AsyncConfig{})
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	g.EnableAsync(gatewaytest.AsyncConfig{})
}

func TestAsyncConcurrentSubmits(t *testing.T) {
	const n = 32
	rc := newReceiver(t, nil)
	onDelivery, delivered := deliveries()
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: rc.URL, Secrets: []string{"k"}, OnDelivery: onDelivery})
	client := srv.Client()
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			resp, err := client.Post(srv.URL+"/production/async_predict", "application/json",
				strings.NewReader(fmt.Sprintf(`{"i":%d}`, i)))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			id, err := streamguard.AsyncRequestID(resp)
			if err != nil {
				t.Error(err)
				return
			}
			ids <- id
		})
	}
	wg.Wait()
	close(ids)
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	if len(want) != n {
		t.Fatalf("%d distinct request IDs, want %d", len(want), n)
	}
	for range n {
		d := nextDelivery(t, delivered)
		if !want[d.RequestID] || d.StatusCode != 200 {
			t.Errorf("delivery %+v", d)
		}
		delete(want, d.RequestID)
		h := rc.next(t)
		if h.header.Get("X-Baseten-Signature") != sign(h.body, "k") {
			t.Error("bad signature")
		}
	}
}

// EnableAsync answers an async submit at once and posts the model's result to
// a webhook.
func ExampleGateway_EnableAsync() {
	results := make(chan streamguard.AsyncResult, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res streamguard.AsyncResult
		json.NewDecoder(r.Body).Decode(&res) // a real receiver verifies X-Baseten-Signature first
		results <- res
	}))
	defer hook.Close()

	gw := gatewaytest.NewServer(gatewaytest.JSON(500, `{"error": "CUDA out of memory"}`))
	defer gw.Close()
	gw.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: hook.URL, Secrets: []string{"webhook-secret"}})

	resp, err := gw.Client().Post(gw.URL+"/production/async_predict", "application/json", strings.NewReader(`{"prompt": "hi"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	id, _ := streamguard.AsyncRequestID(resp)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, id)

	res := <-results
	for _, e := range streamguard.ClassifyAsync(&res) {
		fmt.Println(e.Code, e.Source, e.Reason, e.Message)
	}
	// Output:
	// 201 gw-1
	// MODEL_PREDICT_ERROR model model_error CUDA out of memory
}
