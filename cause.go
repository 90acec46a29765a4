package streamguard

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// ErrBudgetExceeded is the context cause the middleware sets when a
// request's time budget (SyncBudget, AsyncBudget, or the configured one)
// expires, so that its expiry is told apart from the caller's own deadline
// or cancellation. [FromError] classifies it as the platform's timeout: the
// gateway should have answered 504 within the budget.
var ErrBudgetExceeded = errors.New("request budget exceeded")

// FromError classifies an error from a round trip that obtained no response,
// or from reading a body. It returns nil for a nil err, and err's own *Error
// when err already wraps one.
//
// The request budget's expiry ([ErrBudgetExceeded]) and the transport's
// response-header timeout are SourcePlatform with ReasonTimeout. The caller's
// cancellation (context.Canceled) is SourceClient with
// ReasonCanceled, and the caller's expired deadline (context.DeadlineExceeded)
// SourceClient with ReasonTimeout: neither is an upstream fault, and neither
// is retryable. Anything else (dial, DNS, TLS, a reset, an EOF before the
// response) is SourceNetwork with ReasonConnection, retryable. The cause is
// kept in Err; a *url.Error is unwrapped first so that its URL, which may hold
// a query-string secret, never reaches Message.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		cause = ue.Err
	}
	e := &Error{Message: clean(cause.Error(), MaxMessage, nil), Err: cause}
	msg := cause.Error()
	switch {
	case errors.Is(err, ErrBudgetExceeded):
		e.Source, e.Reason = SourcePlatform, ReasonTimeout
	case inChain(err, context.Canceled):
		e.Source, e.Reason = SourceClient, ReasonCanceled
	case inChain(err, context.DeadlineExceeded), strings.Contains(msg, "Client.Timeout exceeded"):
		// The caller's own deadline, or its http.Client.Timeout.
		e.Source, e.Reason = SourceClient, ReasonTimeout
	case strings.Contains(msg, "timeout awaiting response headers"):
		// The transport's response-header timeout: the gateway did not
		// answer within the budget it was given.
		e.Source, e.Reason = SourcePlatform, ReasonTimeout
	case badRequest(msg):
		// A request net/http refuses to send: no retry will change it.
		e.Source, e.Reason = SourceRequest, ReasonBadRequest
	default:
		// A dial or TLS handshake timeout lands here too: net's and
		// net/http's timeout errors claim to be context.DeadlineExceeded
		// through their Is methods, though no caller's deadline expired.
		e.Source, e.Reason, e.Retryable = SourceNetwork, ReasonConnection, true
	}
	return e
}

// badRequest reports whether a transport error's text is net/http's
// refusal of the request itself: a URL, method or header it cannot send.
// Only at the text's start: an error quoting a server's bytes (a GOAWAY's
// debug data) must not pass for one.
func badRequest(msg string) bool {
	for _, t := range []string{`unsupported protocol scheme "`, "http: no Host in request URL", "net/http: invalid header field ",
		"net/http: invalid method ", "http: nil Request."} {
		if strings.HasPrefix(msg, t) {
			return true
		}
	}
	return false
}

// inChain reports whether target itself stands in err's chain, following
// Unwrap() error and Unwrap() []error but not Is methods, which transport
// timeouts use to pass for context.DeadlineExceeded.
func inChain(err, target error) bool {
	for depth := 0; err != nil && depth < 64; depth++ {
		if err == target {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if inChain(e, target) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// ClassifyEvent classifies the data of an error event inside a stream: an
// OpenAI, vLLM or TGI data line {"error": ...}, an Anthropic event {"type":
// "error", "error": {"type", "message"}}, or an OpenAI Responses event
// {"type": "error", "code", "message"} or {"type": "response.failed",
// "response": {"error": {...}}}. The failure is the model's own
// (SourceModel, ReasonModelError) unless its code names the platform, as
// Anthropic's overloaded_error or Baseten's model_unavailable do; the failure
// frame of a stream relayed through streamguard keeps the source and reason it
// names, so a failure keeps its attribution across a relay. StatusCode
// is left 0 for the caller to fill in; data that is not JSON becomes the
// message as it is. ClassifyEvent never returns nil.
func ClassifyEvent(data []byte) *Error {
	var b body
	var ev struct {
		Response *struct {
			Error json.RawMessage `json:"error"`
		} `json:"response"`
	}
	if json.Unmarshal(data, &ev) == nil && ev.Response != nil && len(ev.Response.Error) > 0 {
		b, _ = parseJSON([]byte(`{"error":` + string(ev.Response.Error) + `}`))
	} else if parsed, ok := parseJSON(data); ok {
		b = parsed
	} else {
		b.message = string(data)
	}
	e := &Error{
		Source:  SourceModel,
		Reason:  ReasonModelError,
		Message: clean(b.message, MaxMessage, nil),
		Code:    clean(b.code, 128, nil),
	}
	if c, ok := codes[strings.ToLower(b.code)]; ok {
		e.Source, e.Reason, e.Retryable = c.source, c.reason, c.retryable
	}
	if b.attributed {
		// The failure frame of a stream relayed through streamguard
		// (sse.AppendFailureFrame) is the Error's own document.
		e.Source, e.Reason, e.Retryable = b.source, b.reason, b.retryable
	}
	return e
}

var knownSources = map[Source]bool{
	SourceRequest: true, SourcePlatform: true, SourceModel: true,
	SourceNetwork: true, SourceClient: true, SourceUnknown: true,
}
