package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/webhook"
)

// waitFor bounds every wait on the gateway's background work.
const waitFor = 10 * time.Second

// e2e is an async round trip on loopback: the client stack submits to a
// gatewaytest async route, which runs the model and posts the signed result
// to a receiver served by webhook.NewHandler.
type e2e struct {
	gw        *gatewaytest.Server
	client    *http.Client
	results   chan call
	delivered chan gatewaytest.Delivery
	calls     atomic.Int64
}

// newE2E starts the pair. fail, if set, is the Func's answer to its n-th
// call (from 1). gatewaySecrets sign the webhooks; receiverSecrets verify
// them.
func newE2E(t *testing.T, model http.Handler, gatewaySecrets, receiverSecrets []string, fail func(n int64) error) *e2e {
	t.Helper()
	e := &e2e{results: make(chan call, 16), delivered: make(chan gatewaytest.Delivery, 16)}
	fn := func(ctx context.Context, r *streamguard.AsyncResult, errs []*streamguard.Error) error {
		e.results <- call{r, errs}
		if n := e.calls.Add(1); fail != nil {
			return fail(n)
		}
		return nil
	}
	receiver := httptest.NewServer(webhook.NewHandler(receiverSecrets, fn, webhook.Config{}))
	t.Cleanup(receiver.Close)

	e.gw = gatewaytest.NewServer(model)
	t.Cleanup(e.gw.Close) // runs first: the background work ends before the receiver closes
	e.gw.EnableAsync(gatewaytest.AsyncConfig{
		WebhookURL:  receiver.URL + "/hooks/baseten",
		Secrets:     gatewaySecrets,
		MaxAttempts: 3,
		RetryDelay:  time.Millisecond,
		OnDelivery:  func(d gatewaytest.Delivery) { e.delivered <- d },
	})
	e.client = middleware.NewClient(middleware.Config{Base: e.gw.Client().Transport})
	return e
}

// submit posts body to the async route through the client stack and returns
// the request ID, or the submit's error.
func (e *e2e) submit(t *testing.T, body string) (string, error) {
	t.Helper()
	resp, err := e.client.Post(e.gw.URL+"/production/async_predict", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	return streamguard.AsyncRequestID(resp)
}

func (e *e2e) result(t *testing.T) call {
	t.Helper()
	select {
	case c := <-e.results:
		return c
	case <-time.After(waitFor):
		t.Fatal("the Func was not called")
	}
	return call{}
}

func (e *e2e) delivery(t *testing.T) gatewaytest.Delivery {
	t.Helper()
	select {
	case d := <-e.delivered:
		return d
	case <-time.After(waitFor):
		t.Fatal("no delivery")
	}
	return gatewaytest.Delivery{}
}

func TestEndToEndSuccess(t *testing.T) {
	e := newE2E(t, gatewaytest.JSON(200, `{"text": "a long answer"}`), []string{secret}, []string{secret}, nil)
	id, err := e.submit(t, `{"model_input": {"prompt": "hi"}}`)
	if err != nil || id == "" {
		t.Fatalf("submit: %q, %v", id, err)
	}
	c := e.result(t)
	if c.result.RequestID != id || string(c.result.Data) != `{"text":"a long answer"}` || c.errs != nil {
		t.Fatalf("Func got %+v, %v", c.result, c.errs)
	}
	if d := e.delivery(t); d.StatusCode != http.StatusOK || d.Attempts != 1 || d.RequestID != id {
		t.Fatalf("delivery %+v", d)
	}
}

func TestEndToEndErrors(t *testing.T) {
	cases := []struct {
		name    string
		model   http.Handler
		fault   gatewaytest.Fault
		code    string
		source  streamguard.Source
		reason  streamguard.Reason
		message string
	}{
		{"model error", gatewaytest.JSON(500, `{"error": "CUDA out of memory"}`), gatewaytest.Pass(),
			"MODEL_PREDICT_ERROR", "model", "model_error", "CUDA out of memory"},
		{"model rejects input", gatewaytest.JSON(422, `{"detail": "prompt: field required"}`), gatewaytest.Pass(),
			"MODEL_INVALID_INPUT", "request", "bad_request", "prompt: field required"},
		{"container crashed", gatewaytest.Echo(), gatewaytest.Unreachable(),
			"MODEL_UNAVAILABLE", "platform", "unreachable", gatewaytest.MessageUnreachable},
		{"prediction timed out", gatewaytest.Echo(), gatewaytest.GatewayTimeout(time.Millisecond),
			"MODEL_PREDICT_TIMEOUT", "platform", "timeout", gatewaytest.MessageTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newE2E(t, c.model, []string{secret}, []string{secret}, nil)
			e.gw.Script(c.fault)
			id, err := e.submit(t, `{"prompt": "hi"}`)
			if err != nil {
				t.Fatalf("submit: %v (a failed prediction is not reported on the submit)", err)
			}
			got := e.result(t)
			if len(got.errs) != 1 {
				t.Fatalf("Func got %d errors, want 1: %+v", len(got.errs), got.result)
			}
			se := got.errs[0]
			if se.Code != c.code || se.Source != c.source || se.Reason != c.reason || se.Message != c.message || se.RequestID != id {
				t.Fatalf("Func got %+v", se)
			}
			var target *streamguard.Error
			if !errors.As(fmt.Errorf("wrapped: %w", se), &target) || target.Hint() == "" {
				t.Errorf("the error is not a usable *streamguard.Error: %v", se)
			}
			if d := e.delivery(t); d.StatusCode != http.StatusOK {
				t.Fatalf("delivery %+v", d)
			}
		})
	}
}

// When the Func fails the receiver answers 500, and the gateway delivers the
// result again, as the platform does.
func TestEndToEndFuncErrorRetried(t *testing.T) {
	e := newE2E(t, gatewaytest.Echo(), []string{secret}, []string{secret}, func(n int64) error {
		if n == 1 {
			return errors.New("queue full")
		}
		return nil
	})
	id, err := e.submit(t, `{"n": 1}`)
	if err != nil {
		t.Fatal(err)
	}
	first, second := e.result(t), e.result(t)
	if first.result.RequestID != id || second.result.RequestID != id {
		t.Fatalf("calls for %q and %q, want %q twice", first.result.RequestID, second.result.RequestID, id)
	}
	if d := e.delivery(t); d.Attempts != 2 || d.StatusCode != http.StatusOK {
		t.Fatalf("delivery %+v, want 500 then 200", d)
	}
}

func TestEndToEndFuncErrorEveryTime(t *testing.T) {
	e := newE2E(t, gatewaytest.Echo(), []string{secret}, []string{secret}, func(int64) error {
		return errors.New("database is down")
	})
	if _, err := e.submit(t, `{}`); err != nil {
		t.Fatal(err)
	}
	if d := e.delivery(t); d.Attempts != 3 || d.StatusCode != http.StatusInternalServerError {
		t.Fatalf("delivery %+v, want three 500s", d)
	}
	if n := e.calls.Load(); n != 3 {
		t.Fatalf("the Func ran %d times, want 3", n)
	}
}

// During a rotation the receiver holds both secrets and accepts a webhook
// signed with either; one signed with neither gets 401, which the platform
// does not retry, and never reaches the Func.
func TestEndToEndRotation(t *testing.T) {
	for _, c := range []struct {
		name    string
		gateway []string
		status  int
	}{
		{"old secret", []string{oldSecret}, http.StatusOK},
		{"new secret", []string{secret}, http.StatusOK},
		{"both", []string{oldSecret, secret}, http.StatusOK},
		{"unknown secret", []string{"leaked"}, http.StatusUnauthorized},
		{"unsigned", nil, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newE2E(t, gatewaytest.Echo(), c.gateway, []string{oldSecret, secret}, nil)
			if _, err := e.submit(t, `{}`); err != nil {
				t.Fatal(err)
			}
			d := e.delivery(t)
			if d.StatusCode != c.status || d.Attempts != 1 {
				t.Fatalf("delivery %+v, want one attempt answered %d", d, c.status)
			}
			if want := int64(0); c.status != http.StatusOK && e.calls.Load() != want {
				t.Fatal("the Func ran for a webhook without a valid signature")
			}
		})
	}
}

// The submit's own failures come back from the submit, classified.
func TestEndToEndSubmitErrors(t *testing.T) {
	e := newE2E(t, gatewaytest.Echo(), []string{secret}, []string{secret}, nil)

	// Without a Retry-After the 429 is not retried and comes back at once.
	e.gw.Script(gatewaytest.RateLimited(0))
	_, err := e.submit(t, `{}`)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.StatusCode != 429 || se.Source != streamguard.SourcePlatform ||
		se.Reason != streamguard.ReasonRateLimited || !se.Retryable || se.Code != "CAPACITY_EXCEEDED" {
		t.Fatalf("429 submit: %v", err)
	}

	// The client stack refuses an async body over 262,144 bytes before
	// sending it.
	before := e.gw.Requests()
	_, err = e.submit(t, `"`+strings.Repeat("x", streamguard.AsyncMaxBody)+`"`)
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonPayloadTooLarge || se.Source != streamguard.SourceRequest {
		t.Fatalf("oversized submit: %v", err)
	}
	if e.gw.Requests() != before {
		t.Fatal("the oversized body reached the gateway")
	}
	if n := e.calls.Load(); n != 0 {
		t.Fatalf("the Func ran %d times", n)
	}
}
