package streamguard

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/internal/errprefix"
	"github.com/streamguard/streamguard/internal/redact"
)

// The platform's own error messages. A message that is none of these is the
// model's own response, passed through unchanged.
const (
	msgUnreachable  = "error making prediction"  // 502: the container crashed, restarted or was killed
	msgClientClosed = "client closed connection" // 502: the caller disconnected first
)

// requestIDHeaders are the response headers that carry a request ID, in the
// order they are preferred. Matching is case-insensitive.
var requestIDHeaders = []string{"X-Baseten-Request-Id", "X-Request-Id", "Request-Id"}

// Headers a Truss model server sets on errors raised in the model's own code.
const (
	headerErrorSource = "X-Baseten-Error-Source"
	headerErrorCode   = "X-Baseten-Error-Code"
)

// Classify maps an error response to an *Error: its status code, its body (as
// much of it as the caller read; [Check] reads [MaxErrorBody]) and its
// headers. It returns nil when resp is nil or its status is below 400.
//
// The status code gives the broad class, as in the platform's quick reference:
// 400, 401, 402, 403, 404, 413 and 422 are the caller's request; 429, 502,
// 503, 504 and 529 are the platform; 500 and every other 5xx is the model's
// own error, passed through. The body then refines it: the platform's own
// messages ("Error making prediction", "client closed connection"), Baseten's
// error_code, OpenAI's {"error":{...}} and Anthropic's {"type":"error",...}
// shapes; a proxy's HTML or plain-text page is kept as the platform's. The
// X-Baseten-Error-Source and X-Baseten-Error-Code headers mark the model as the
// source. Classify is pure, reads nothing from resp.Body, and never panics.
func Classify(resp *http.Response, body []byte) *Error {
	return classify(resp, body, len(body) >= MaxErrorBody)
}

// classify is Classify of a body that was cut short (over MaxErrorBody,
// or its read failed) when cut: a key at its end may have been split.
func classify(resp *http.Response, body []byte, cut bool) *Error {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	secrets := redact.Secrets(resp.Request) // a server may echo the key it rejected
	if cut {
		body = redact.DropCut(body[:min(len(body), MaxErrorBody)], secrets)
	}
	b := parseBody(body, resp.Header.Get("Content-Type"))
	e := &Error{
		StatusCode: resp.StatusCode,
		Message:    clean(b.message, MaxMessage, secrets),
		Code:       clean(b.code, 128, secrets),
		RequestID:  clean(rawRequestID(resp.Header), 128, secrets), // scrubbed before its cut
	}
	if resp.Request != nil {
		e.Attempts = ctxkey.Attempt(resp.Request.Context())
		e.Elapsed = ctxkey.Elapsed(resp.Request.Context())
	}
	e.Source, e.Reason, e.Retryable = byStatus(resp.StatusCode, b)
	// A code refines the status, except a generic one (bad_request, as
	// OpenAI types even a 401) against a status that says more.
	if c, ok := codes[strings.ToLower(b.code)]; ok && (c.reason != ReasonBadRequest || e.Reason == ReasonBadRequest || resp.StatusCode >= 500) {
		e.Source, e.Reason, e.Retryable = c.source, c.reason, c.retryable
	}
	if modelHeaders(resp.Header) {
		e.Source = SourceModel
		if resp.StatusCode >= 500 {
			e.Reason, e.Retryable = ReasonModelError, false
		}
	}
	if b.attributed {
		e.Source, e.Reason, e.Retryable = b.source, b.reason, b.retryable
	}
	if e.Reason == ReasonPayloadTooLarge {
		e.Limit = limitIn(e.Message)
	}
	return e
}

// limitIn returns the cap the platform's 413 message names ("... exceeds
// maximum size of N bytes"), or 0.
func limitIn(msg string) int64 {
	_, rest, ok := strings.Cut(msg, "maximum size of ")
	if !ok {
		return 0
	}
	n, _, _ := strings.Cut(rest, " bytes")
	limit, err := strconv.ParseInt(n, 10, 64)
	if err != nil || limit < 0 {
		return 0
	}
	return limit
}

// byStatus classifies by the status code and the body's shape and message.
func byStatus(status int, b body) (Source, Reason, bool) {
	msg := strings.ToLower(strings.TrimSpace(b.message))
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return SourceRequest, ReasonBadRequest, false
	case http.StatusUnauthorized, http.StatusForbidden:
		return SourceRequest, ReasonUnauthorized, false
	case http.StatusPaymentRequired:
		return SourceRequest, ReasonBilling, false
	case http.StatusNotFound:
		return SourceRequest, ReasonNotFound, false
	case http.StatusRequestTimeout:
		return SourceRequest, ReasonTimeout, true
	case http.StatusRequestEntityTooLarge:
		return SourceRequest, ReasonPayloadTooLarge, false
	case http.StatusTooManyRequests:
		return SourcePlatform, ReasonRateLimited, true
	case 499: // nginx's "client closed request", as the gateway logs it
		return SourceClient, ReasonCanceled, false
	case http.StatusBadGateway:
		switch {
		case strings.Contains(msg, msgClientClosed):
			return SourceClient, ReasonCanceled, false
		case b.shape == shapeJSON && msg != "" && !strings.Contains(msg, msgUnreachable):
			// A Baseten-side error other than the unreachable container.
			return SourcePlatform, ReasonPlatformError, true
		}
		// "Error making prediction", or a proxy's own page: the upstream
		// could not be reached.
		return SourcePlatform, ReasonUnreachable, true
	case http.StatusServiceUnavailable, 529: // 529: Anthropic's "overloaded"
		return SourcePlatform, ReasonUnavailable, true
	case http.StatusGatewayTimeout:
		// The platform's whole 1200 s budget is spent: sending the same
		// request again spends another.
		return SourcePlatform, ReasonTimeout, false
	}
	if status < 500 {
		return SourceRequest, ReasonBadRequest, false
	}
	return SourceModel, ReasonModelError, false
}

// codeClass is what a machine error code says about a failure.
type codeClass struct {
	source    Source
	reason    Reason
	retryable bool
}

// codes maps error codes found in bodies and stream events to their class:
// Baseten's error_code values, the Anthropic and OpenAI error types that
// name a platform condition rather than the model's own failure, and
// Google's status names. Keys are lower case.
var codes = map[string]codeClass{
	// Baseten ErrorResponse.error_code.
	"timeout":                {SourcePlatform, ReasonTimeout, false},
	"client_error":           {SourceRequest, ReasonBadRequest, false},
	"model_unavailable":      {SourcePlatform, ReasonUnreachable, true},
	"model_not_ready":        {SourcePlatform, ReasonUnavailable, true},
	"model_does_not_exist":   {SourceRequest, ReasonNotFound, false},
	"rate_limited":           {SourcePlatform, ReasonRateLimited, true},
	"payload_too_large":      {SourceRequest, ReasonPayloadTooLarge, false},
	"unauthorized":           {SourceRequest, ReasonUnauthorized, false},
	"application_error":      {SourceModel, ReasonModelError, false},
	"internal_baseten_error": {SourcePlatform, ReasonPlatformError, true},
	"capacity_exceeded":      {SourcePlatform, ReasonRateLimited, true},
	// Anthropic error.type.
	"overloaded_error":      {SourcePlatform, ReasonUnavailable, true},
	"rate_limit_error":      {SourcePlatform, ReasonRateLimited, true},
	"authentication_error":  {SourceRequest, ReasonUnauthorized, false},
	"permission_error":      {SourceRequest, ReasonUnauthorized, false},
	"not_found_error":       {SourceRequest, ReasonNotFound, false},
	"request_too_large":     {SourceRequest, ReasonPayloadTooLarge, false},
	"invalid_request_error": {SourceRequest, ReasonBadRequest, false},
	"billing_error":         {SourceRequest, ReasonBilling, false},
	// OpenAI error.code.
	"rate_limit_exceeded": {SourcePlatform, ReasonRateLimited, true},
	"insufficient_quota":  {SourceRequest, ReasonBilling, false},
	"invalid_api_key":     {SourceRequest, ReasonUnauthorized, false},
	"model_not_found":     {SourceRequest, ReasonNotFound, false},
	// Google's error.status (google.rpc.Code names), as Gemini sends them
	// in an error body or a streamed array's error element.
	"resource_exhausted":  {SourcePlatform, ReasonRateLimited, true},
	"unavailable":         {SourcePlatform, ReasonUnavailable, true},
	"internal":            {SourcePlatform, ReasonPlatformError, true},
	"deadline_exceeded":   {SourcePlatform, ReasonTimeout, false},
	"invalid_argument":    {SourceRequest, ReasonBadRequest, false},
	"failed_precondition": {SourceRequest, ReasonBadRequest, false},
	"unauthenticated":     {SourceRequest, ReasonUnauthorized, false},
	"permission_denied":   {SourceRequest, ReasonUnauthorized, false},
	"not_found":           {SourceRequest, ReasonNotFound, false},
}

// modelHeaders reports whether a Truss model server marked the error as raised
// in the model's own code.
func modelHeaders(h http.Header) bool {
	return headerValue(h, headerErrorSource) != "" || headerValue(h, headerErrorCode) != ""
}

// RequestID returns the request ID a gateway or model server put in the
// response headers (X-Baseten-Request-Id, X-Request-Id or Request-Id, matched
// case-insensitively), sanitized, or "".
func RequestID(h http.Header) string {
	return redact.Shapes(Sanitize(rawRequestID(h), 128))
}

// rawRequestID is RequestID's header value as it came.
func rawRequestID(h http.Header) string {
	for _, k := range requestIDHeaders {
		if v := headerValue(h, k); v != "" {
			return v
		}
	}
	return ""
}

// headerValue is h.Get(k), falling back to a case-insensitive scan for maps
// built by hand with non-canonical keys.
func headerValue(h http.Header, k string) string {
	if v := h.Get(k); v != "" {
		return v
	}
	for name, vs := range h {
		if len(vs) > 0 && strings.EqualFold(name, k) {
			return vs[0]
		}
	}
	return ""
}

// Check classifies resp when its status is 400 or more and returns the
// *Error; it returns nil for any other status (and for a nil resp). It reads at
// most [MaxErrorBody] bytes of the body to classify it, then puts them back:
// the caller still reads every original byte from resp.Body, including those
// past the first 64 KiB, and closing resp.Body closes the original. The
// bytes are read once per response: when a layer of the client stack
// already read them (the tracing span, the retry layer) and nobody has read
// the body since, Check classifies the same bytes without reading again.
//
// When the response came through the retry package, the error's Attempts
// says how many attempts were made.
func Check(resp *http.Response) error {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	prefix, complete := errprefix.Keep(resp)
	return classify(resp, prefix, !complete)
}
