package gatewaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/platform"
	"github.com/streamguard/streamguard/webhook"
)

// AsyncResultType is the type field of the results the gateway posts.
const AsyncResultType = "async_request_completed"

// AsyncSignatureHeader carries a webhook's signatures: one
// "v1=<hex HMAC-SHA256 of the body>" per secret, comma-separated.
const AsyncSignatureHeader = webhook.SignatureHeader

// MessageCapacity is the message of the 429 an async submit gets when the
// gateway's async capacity is full or RateLimited is scripted; its
// error_code is CAPACITY_EXCEEDED.
const MessageCapacity = "Async request capacity exceeded"

// Bounds of the async route.
const (
	defaultAsyncPending  = 64
	defaultAsyncAttempts = 3
	defaultAsyncDelay    = 10 * time.Millisecond
	webhookTimeout       = 30 * time.Second // one delivery attempt
	maxAsyncOutput       = 16 << 20         // a model's output kept for the webhook
	maxWebhookAnswer     = 64 << 10         // a receiver's answer read (and dropped) to reuse the connection
)

// AsyncConfig configures the gateway's async routes; see
// Gateway.EnableAsync. Only WebhookURL and Secrets are usually set.
type AsyncConfig struct {
	// WebhookURL receives the result of every async request, as the
	// webhook_endpoint of a platform async request does. Empty means no
	// webhook: predictions run, and OnDelivery reports them with no
	// attempt.
	WebhookURL string

	// Secrets sign each webhook body. The signature header carries one
	// "v1=<hex HMAC-SHA256 of the body>" entry per secret, comma-separated,
	// as during a rotation. Empty means an unsigned webhook.
	Secrets []string

	// Client posts the webhooks. Nil means a plain HTTP client of the
	// gateway's own, whose connections are closed when the gateway closes;
	// set it to an httptest TLS server's Client() for a TLS receiver.
	Client *http.Client

	// ModelID and DeploymentID fill the result's model_id and
	// deployment_id. Zero means "model" and "deployment".
	ModelID, DeploymentID string

	// MaxPending bounds the async requests running or being delivered at
	// once; a submit past it gets 429 CAPACITY_EXCEEDED, as the platform's
	// async capacity does. Zero means 64.
	MaxPending int

	// MaxAttempts bounds the delivery attempts of one result. A delivery
	// that gets 500, 502, 503 or 504, or no response, is tried again after
	// RetryDelay, as the platform's own webhook delivery does. Zero means 3.
	MaxAttempts int

	// RetryDelay is the wait between delivery attempts. Zero means 10 ms.
	RetryDelay time.Duration

	// OnDelivery, if set, is called once per accepted async request, from
	// the gateway's background goroutine, after its last delivery attempt,
	// or when the gateway closed before the result was delivered (Err is
	// then context.Canceled). It must not block for long: Close waits for
	// it.
	OnDelivery func(Delivery)
}

// Delivery is what became of one async request's result.
type Delivery struct {
	RequestID  string // the request ID the submit answered with
	Body       []byte // the webhook body, as signed and sent
	Attempts   int    // delivery attempts made
	StatusCode int    // the receiver's answer to the last attempt; 0 when there was none
	Err        error  // the last attempt's error, when no answer was obtained
}

// EnableAsync makes the gateway answer the platform's async routes (POST to
// a path ending in /async_predict or /async_run_remote) as the platform
// does. After the body-limit check (streamguard.AsyncMaxBody unless
// Gateway.MaxBody is set), a submit is answered 201 {"request_id": "..."} at
// once, with the same ID in the X-Baseten-Request-Id header; the model
// handler then runs in the background with the request body as sent (the
// gateway does not unwrap model_input), and the result is posted, signed,
// to cfg.WebhookURL:
//
//	{"request_id", "model_id", "deployment_id", "type": "async_request_completed", "time", "data", "errors": [{"code", "message"}]}
//
// data is the model's output when it answered below 400 (its JSON,
// compacted; other bytes as a JSON string; null for none), and errors is
// then an empty array. A model that
// answered 400 or more gives MODEL_INVALID_INPUT for a 4xx, and for a 5xx
// MODEL_UNAVAILABLE (502), MODEL_NOT_READY (503), MODEL_PREDICT_TIMEOUT (504)
// or MODEL_PREDICT_ERROR (any other), with the message of its body. A panic
// in the model is a crashed container: MODEL_UNAVAILABLE. Output over 16 MiB
// gives INTERNAL_SERVER_ERROR.
//
// A scripted fault applies to the submit when it concerns the submit, and to
// the prediction otherwise:
//
//   - at the submit: PayloadTooLarge (413), RateLimited (429 with
//     error_code CAPACITY_EXCEEDED and Retry-After), Draining (503),
//     ClientClosed (502) and Status below 500 answer the submit, and nothing
//     runs;
//   - in the webhook's errors, after a 201: Unreachable, Cut and Reset give
//     MODEL_UNAVAILABLE ("Error making prediction"); GatewayTimeout (after
//     its Delay) and Stall give MODEL_PREDICT_TIMEOUT; Status from 500 is
//     reported as a model that answered it (a Status(500, ...) is
//     MODEL_PREDICT_ERROR). The model is not called for these;
//   - Pass and EndEarly run the model.
//
// At most cfg.MaxPending requests run at once; past it a submit gets 429
// CAPACITY_EXCEEDED. Close cancels what is still running or waiting to be
// retried and waits for the background work to end. Requests to other paths
// are served as before. EnableAsync may be called once per gateway, before or
// while it serves; it panics when called again.
func (g *Gateway) EnableAsync(cfg AsyncConfig) {
	a := newAsyncRoute(g, cfg)
	if !g.async.CompareAndSwap(nil, a) {
		a.cancel()
		panic("gatewaytest: EnableAsync called twice")
	}
	select {
	case <-g.closing:
		a.close() // enabled on a closed gateway: refuse every submit
	default:
	}
}

// asyncRoute is the state of a gateway's async routes.
type asyncRoute struct {
	g      *Gateway
	cfg    AsyncConfig
	client *http.Client
	own    *http.Transport // the client's transport when cfg.Client is nil
	slots  chan struct{}   // one per running request: MaxPending

	ctx    context.Context // canceled by close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newAsyncRoute(g *Gateway, cfg AsyncConfig) *asyncRoute {
	if cfg.ModelID == "" {
		cfg.ModelID = "model"
	}
	if cfg.DeploymentID == "" {
		cfg.DeploymentID = "deployment"
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = defaultAsyncPending
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = defaultAsyncAttempts
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = defaultAsyncDelay
	}
	cfg.Secrets = append([]string(nil), cfg.Secrets...)
	a := &asyncRoute{g: g, cfg: cfg, client: cfg.Client, slots: make(chan struct{}, cfg.MaxPending)}
	if a.client == nil {
		a.own = &http.Transport{IdleConnTimeout: 30 * time.Second, MaxIdleConnsPerHost: cfg.MaxPending}
		a.client = &http.Client{Transport: a.own}
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// serve answers an async submit whose body the gateway has read and checked.
func (a *asyncRoute) serve(w http.ResponseWriter, r *http.Request, body []byte, fault Fault) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "async requests are POST")
		return
	}
	switch fault.kind {
	case KindPayloadTooLarge:
		writeJSONError(w, http.StatusRequestEntityTooLarge, platform.TooLargeMessage(int64(len(body)), a.g.limit(r)))
		return
	case KindRateLimited:
		setRetryAfter(w.Header(), fault.retryAfter)
		writeCapacity(w)
		return
	case KindDraining:
		setRetryAfter(w.Header(), fault.retryAfter)
		writeJSONError(w, http.StatusServiceUnavailable, MessageDraining)
		return
	case KindClientClosed:
		writeJSONError(w, http.StatusBadGateway, MessageClientClosed)
		return
	case KindStatus:
		if fault.status < 500 {
			writeBody(w, fault.status, fault.body)
			return
		}
	}
	switch a.acquire() {
	case errAsyncClosed:
		writeJSONError(w, http.StatusServiceUnavailable, "the gateway is closing")
		return
	case errAsyncFull:
		writeCapacity(w)
		return
	}
	id := w.Header().Get(RequestIDHeader)
	req := r.Clone(a.ctx)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = nil
	go a.run(req, id, fault)

	b, _ := json.Marshal(map[string]string{"request_id": id})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(b)
}

func writeCapacity(w http.ResponseWriter) {
	b, _ := json.Marshal(map[string]string{"error": MessageCapacity, "error_code": "CAPACITY_EXCEEDED"})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	w.Write(b)
}

var (
	errAsyncClosed = errors.New("gatewaytest: async route closed")
	errAsyncFull   = errors.New("gatewaytest: async capacity exceeded")
)

// acquire takes a slot for one background request.
func (a *asyncRoute) acquire() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errAsyncClosed
	}
	select {
	case a.slots <- struct{}{}:
	default:
		return errAsyncFull
	}
	a.wg.Add(1) // under mu, so that it never races with close's Wait
	return nil
}

// close cancels the background work, waits for it to end, and closes the
// gateway's own webhook connections. It is idempotent.
func (a *asyncRoute) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
	if a.own != nil {
		a.own.CloseIdleConnections()
	}
}

// run predicts, delivers, and reports one async request.
func (a *asyncRoute) run(req *http.Request, id string, fault Fault) {
	defer a.wg.Done()
	result := a.predict(req, id, fault)
	body, err := json.Marshal(result)
	if err != nil { // cannot happen: Data is valid JSON
		body, _ = json.Marshal(failed(result, streamguard.AsyncInternalServerError, err.Error()))
	}
	d := Delivery{RequestID: id, Body: body}
	if a.ctx.Err() != nil {
		d.Err = context.Canceled
	} else if a.cfg.WebhookURL != "" {
		a.deliver(&d)
	}
	<-a.slots // free before OnDelivery: a test may submit again from it
	if a.cfg.OnDelivery != nil {
		a.cfg.OnDelivery(d)
	}
}

// predict returns the result of one async request: the fault's, or the
// model's answer.
func (a *asyncRoute) predict(req *http.Request, id string, fault Fault) *streamguard.AsyncResult {
	res := &streamguard.AsyncResult{
		RequestID:    id,
		ModelID:      a.cfg.ModelID,
		DeploymentID: a.cfg.DeploymentID,
		Type:         AsyncResultType,
		Errors:       []streamguard.AsyncError{},
	}
	defer func() { res.Time = time.Now().UTC().Format(time.RFC3339Nano) }()
	switch fault.kind {
	case KindUnreachable, KindCut, KindReset:
		return failed(res, streamguard.AsyncModelUnavailable, MessageUnreachable)
	case KindGatewayTimeout:
		t := time.NewTimer(fault.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-a.ctx.Done():
		}
		return failed(res, streamguard.AsyncModelPredictTimeout, MessageTimeout)
	case KindStall:
		return failed(res, streamguard.AsyncModelPredictTimeout, MessageTimeout)
	case KindStatus:
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		return answered(res, fault.status, h, []byte(fault.body))
	}

	out := &outputWriter{header: http.Header{}}
	if crashed := serveModel(a.g.Model, out, req); crashed {
		return failed(res, streamguard.AsyncModelUnavailable, MessageUnreachable)
	}
	if out.over {
		return failed(res, streamguard.AsyncInternalServerError,
			"model output exceeds "+strconv.Itoa(maxAsyncOutput)+" bytes")
	}
	return answered(res, out.status(), out.header, out.buf.Bytes())
}
