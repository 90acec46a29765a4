package middleware

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	"github.com/streamguard/streamguard/tracing"
)

// DefaultGrace is added to the platform's default budgets (Config.Budget and
// Config.AsyncBudget left zero) when the stack gives a request its deadline:
// the gateway's own 504 is sent when the platform's budget is spent, and it
// needs a moment to cross the network. 10 s covers a slow path. A budget the
// caller sets is the deadline, with no grace, as http.Client.Timeout means
// exactly what it says; the caller's own shorter deadline always wins.
const DefaultGrace = 10 * time.Second

// TimeoutHeader carries the request's remaining budget, in milliseconds, from
// the client stack to the server; NewHandler honours the smaller of it and
// its own budget.
const TimeoutHeader = "Request-Timeout-Ms"

// Config configures the client stack. The zero value is ready to use: the
// platform's 1200 s budget, retries of 502, 503 and hinted 429 with the
// retry package's defaults under a retry budget of the client's own, event
// streams ended as stalled after 120 s without a byte (600 s before the
// first), the global OpenTelemetry providers, and a base transport tuned for
// the gateway.
type Config struct {
	// Base is the transport under the stack. Nil means DefaultBase(budget):
	// a clone of http.DefaultTransport tuned for the gateway.
	Base http.RoundTripper
	// Budget bounds a request that comes without an earlier deadline of
	// its own, from its first attempt to the end of its body: a budget set
	// here is the deadline, exactly. Zero means streamguard.SyncBudget
	// (1200 s), the platform's own timeout, plus Grace.
	Budget time.Duration
	// AsyncBudget replaces Budget on the platform's async routes (paths
	// ending in /async_predict or /async_run_remote). Zero means
	// streamguard.AsyncBudget (3600 s) plus Grace.
	AsyncBudget time.Duration
	// Grace is added to the platform's default budgets only (Budget or
	// AsyncBudget left zero), so that the gateway's own 504 arrives before
	// the client gives up. Zero means DefaultGrace (10 s); a negative value
	// means none.
	Grace time.Duration
	// Retry is the retry policy. Its zero value retries 502 and 503, and
	// 429 when the response says when to come back (Retry-After or
	// retry-after-ms), up to 5 attempts within the budget, with no
	// per-attempt header timeout (Retry.HeaderTimeout bounds each attempt's
	// wait for its headers, and retries the slow ones) and no hooks
	// (Retry.CheckRetry, Retry.BeforeRetry). Each client
	// (each NewTransport or NewClient) gets its own retry budget,
	// retry.NewDefaultThrottle, shared by all its requests and by their
	// streams' resumes that repeat a failed one (sse.ResumeConfig.Budget,
	// unless Stream.Resume.Budget is set), unless Retry.Throttle is set or
	// NoRetryBudget is true.
	Retry retry.Policy
	// Logger, if set, logs each retry (Warn) and each final failure
	// (Error): the method, the URL with its query values and userinfo
	// redacted, the attempt, the wait, the status, the source, the reason
	// and the error's one line scrubbed of credentials; never a header. It
	// is the retry layer's Retry.Logger unless that is set. Nil means
	// silent.
	Logger *slog.Logger
	// NoRetryBudget turns off the retry budget each client otherwise gets
	// when Retry.Throttle is nil: every request then retries to its limit
	// whatever the others see, so a full outage costs 4 retries per request
	// instead of 9 in all.
	NoRetryBudget bool
	// Stream configures the guard on 2xx response bodies. Its zero value
	// ends an event stream that sends nothing for sse.DefaultIdleTimeout
	// (120 s; sse.DefaultFirstByteTimeout, 600 s, before its first byte) as
	// stalled; set Stream.IdleTimeout to change it, negative to turn it off.
	Stream sse.Config
	// Tracing configures the span of each attempt.
	Tracing tracing.Config
	// MaxBody caps a request body; a larger one fails before it is sent
	// with payload_too_large, instead of uploading it to get the edge's
	// 413. Zero means streamguard.EdgeMaxBody (100 MiB); negative means no
	// cap.
	MaxBody int64
	// AsyncMaxBody caps a request body on the async routes. Zero means
	// streamguard.AsyncMaxBody (262,144 bytes); negative means no cap.
	AsyncMaxBody int64
	// CredentialHeaders names request headers that carry credentials, in
	// addition to those the library knows: Authorization,
	// Proxy-Authorization, Api-Key, X-Api-Key, Cookie, and any header
	// whose name contains token, secret, password, api-key, apikey or
	// auth or ends in -key or _key (not Idempotency-Key). The values of all of them (and of credential query parameters,
	// and well-known key shapes such as sk-... and Bearer tokens) are
	// scrubbed from errors and spans, where a server's echo could put them,
	// and all of them are dropped on a redirect to another origin.
	CredentialHeaders []string
	// ErrorStatus makes a final error status (400 or more, after retries)
	// come back from RoundTrip as a *streamguard.Error, with the response
	// body closed after classification, instead of a response with a nil
	// error. This breaks the http.RoundTripper contract on purpose, for
	// callers that want errors.As to reach the *streamguard.Error through
	// an SDK. The error's Message holds the body's message; the rest of the
	// body is discarded. Off by default.
	ErrorStatus bool
	// RawErrorBodies leaves a final error response's body as the server
	// sent it. By default (and unless ErrorStatus is set), a body that is
	// not already the {"error": {"message": ...}} object OpenAI's and
	// Anthropic's SDKs parse (the platform's {"error": "<string>"}, a
	// proxy's HTML page, a plain-text 502) is replaced by the error's JSON
	// document (streamguard.Conform), so that openai-go, go-openai and
	// anthropic-sdk-go keep the status and report the source and reason
	// instead of a JSON decoding error; streamguard.Check still returns the
	// same classification.
	RawErrorBodies bool
}

// NewTransport returns the client stack as an http.RoundTripper. Outermost
// first: Credentials (the user's credential headers), LimitBody (the body
// caps), Deadline (the budget), FinalErrors (what a final error status
// becomes), retry, tracing (a span per attempt), the stream guard, TimeLeft
// (the Request-Timeout-Ms of a retry or a resume brought up to date), and
// the base transport. Each layer is exported, for a Chain of your own. It
// is safe for concurrent use, as long as Base is.
func NewTransport(cfg Config) http.RoundTripper {
	base := cfg.Base
	if base == nil {
		// One base serves both kinds of routes: its header timeout is
		// the longer deadline, and each request's own (Deadline) holds
		// it to its route's.
		base = DefaultBase(max(cfg.deadline(false), cfg.deadline(true)))
	}
	policy := retryPolicy(cfg)
	if policy.Logger == nil {
		policy.Logger = cfg.Logger
	}
	stream := cfg.Stream
	if stream.Resume.Budget == nil && policy.Throttle != nil {
		stream.Resume.Budget = policy.Throttle // resumes are retries too
	}
	return Chain(base,
		Credentials(cfg),
		LimitBody(cfg),
		Deadline(cfg),
		FinalErrors(cfg),
		func(next http.RoundTripper) http.RoundTripper { return retry.NewTransport(next, policy) },
		func(next http.RoundTripper) http.RoundTripper { return tracing.NewTransport(next, cfg.Tracing) },
		func(next http.RoundTripper) http.RoundTripper { return sse.NewTransport(next, stream) },
		TimeLeft(),
	)
}

// NewClient returns an *http.Client over NewTransport(cfg). Its Timeout is
// zero: a wall-clock client timeout covers reading the body and kills healthy
// long streams; the stack's budget bounds each request instead. It follows
// at most 10 redirects, and on a redirect to another origin (any change of
// scheme, host or port) it drops every credential header (see
// Config.CredentialHeaders).
func NewClient(cfg Config) *http.Client {
	return &http.Client{Transport: NewTransport(cfg), CheckRedirect: redirectPolicy(cfg.CredentialHeaders)}
}

// Chain composes layers over base in reading order: Chain(base, a, b, c) is
// a(b(c(base))), so a is the outermost layer and sees each request first.
func Chain(base http.RoundTripper, layers ...Layer) http.RoundTripper {
	rt := base
	for i := len(layers) - 1; i >= 0; i-- {
		rt = layers[i](rt)
	}
	return rt
}

// DefaultBase returns a clone of http.DefaultTransport tuned for the
// gateway, from the platform's client guidance: idle connections closed
// after 30 s (under the gateway's 60 s keep-alive, so the client never reuses
// a connection the gateway is closing), 256 connections and 128 idle
// connections per host, 10 s to dial and 10 s for the TLS handshake, a
// response-header timeout of headerTimeout (NewTransport passes the longer
// of the sync and async deadlines, a budget and its grace: the gateway
// answers within the budget, even while it holds a request for a model
// scaling from zero), and HTTP/2 attempted. headerTimeout <= 0 means none.
func DefaultBase(headerTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.IdleConnTimeout = 30 * time.Second
	t.MaxIdleConns = 0 // no cap across hosts; the per-host caps bound it
	t.MaxIdleConnsPerHost = 128
	t.MaxConnsPerHost = 256
	t.ResponseHeaderTimeout = max(headerTimeout, 0)
	t.ForceAttemptHTTP2 = true
	return t
}

// deadline returns how long a request without a deadline of its own may
// take, and the budget in force: a budget the caller set is the deadline;
// the platform's default budget gets the grace on top.
func (c Config) deadline(async bool) (total time.Duration) {
	total, _ = c.budgetInForce(async)
	return total
}

// budgetInForce returns the deadline's length (the budget plus any grace)
// and the budget itself, for sync or async routes.
func (c Config) budgetInForce(async bool) (total, budget time.Duration) {
	set, def := c.Budget, streamguard.SyncBudget
	if async {
		set, def = c.AsyncBudget, streamguard.AsyncBudget
	}
	if set > 0 {
		return set, set
	}
	return def + c.grace(), def
}

func (c Config) grace() time.Duration {
	switch {
	case c.Grace > 0:
		return c.Grace
	case c.Grace < 0:
		return 0
	}
	return DefaultGrace
}

func (c Config) maxBody(async bool) int64 {
	limit, def := c.MaxBody, int64(streamguard.EdgeMaxBody)
	if async {
		limit, def = c.AsyncMaxBody, streamguard.AsyncMaxBody
	}
	switch {
	case limit > 0:
		return limit
	case limit < 0:
		return -1
	}
	return def
}
