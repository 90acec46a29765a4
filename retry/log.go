package retry

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/internal/errprefix"
	"github.com/streamguard/streamguard/internal/redact"
)

// The messages of the records Policy.Logger receives.
const (
	logRetry  = "streamguard: retrying request"
	logFailed = "streamguard: request failed"
)

// logRetryOf logs attempt at, about to be retried, at level Warn.
func (t *transport) logRetryOf(req *http.Request, at Attempt) {
	if t.log == nil {
		return
	}
	attrs := append(requestAttrs(req), slog.Int("attempt", at.N), slog.Duration("wait", at.Delay))
	attrs = append(attrs, failureAttrs(req, at.StatusCode, streamguard.FromError(at.Err))...)
	t.log.LogAttrs(req.Context(), slog.LevelWarn, logRetry, attrs...)
}

// logFinal logs RoundTrip's answer to req at level Error when it is a
// failure: an error, or a status of 400 or more (classified from the body's
// first bytes, which stay readable). A 2xx or 3xx body is watched instead,
// so that a stream that fails after its headers is logged when it does.
// The caller's own cancellation is not a failure.
func (t *transport) logFinal(req *http.Request, resp *http.Response, err error) {
	if t.log == nil {
		return
	}
	var se *streamguard.Error
	status := 0
	switch {
	case err != nil:
		se = streamguard.FromError(err)
	case resp.StatusCode < 400:
		if resp.Body != nil && resp.Body != http.NoBody && resp.StatusCode != http.StatusSwitchingProtocols {
			b := watched(resp.Body)
			if b == nil {
				b = &endBody{}
				resp.Body = watch(resp.Body, b)
			}
			b.t, b.req = t, req
		}
		return
	default:
		status = resp.StatusCode
		prefix, _ := errprefix.Keep(resp)
		se = streamguard.Classify(resp, prefix)
	}
	t.logFailure(req, status, se, attempts(resp, se))
}

// logStreamFailure logs a body that failed after its 2xx headers.
func (t *transport) logStreamFailure(req *http.Request, err error) {
	se := streamguard.FromError(err)
	t.logFailure(req, se.StatusCode, se, se.Attempts)
}

func (t *transport) logFailure(req *http.Request, status int, se *streamguard.Error, n int) {
	if se.StatusCode < 400 && se.Source == streamguard.SourceClient && se.Reason == streamguard.ReasonCanceled {
		return // the caller went away: nothing failed
	}
	attrs := requestAttrs(req)
	if n > 0 {
		attrs = append(attrs, slog.Int("attempts", n))
	}
	attrs = append(attrs, failureAttrs(req, status, se)...)
	// The request's context may be done; the record is still wanted.
	t.log.LogAttrs(context.WithoutCancel(req.Context()), slog.LevelError, logFailed, attrs...)
}

// requestAttrs are the method and the redacted URL: never a header.
func requestAttrs(req *http.Request) []slog.Attr {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	return []slog.Attr{slog.String("method", method), slog.String("url", redact.URL(req))}
}

// failureAttrs are a failure's status, source, reason and one line, the
// last scrubbed of req's credentials and of key shapes.
func failureAttrs(req *http.Request, status int, se *streamguard.Error) []slog.Attr {
	attrs := make([]slog.Attr, 0, 4)
	if status > 0 {
		attrs = append(attrs, slog.Int("status", status))
	}
	if se == nil {
		return attrs
	}
	return append(attrs,
		slog.String("source", string(se.Source)),
		slog.String("reason", string(se.Reason)),
		slog.String("error", redact.Request(se.Error(), req)))
}

// attempts is how many attempts an answer took: the error's count, or the
// attempt number the response's request carries.
func attempts(resp *http.Response, se *streamguard.Error) int {
	if se != nil && se.Attempts > 0 {
		return se.Attempts
	}
	if resp != nil && resp.Request != nil {
		return ctxkey.Attempt(resp.Request.Context())
	}
	return 0
}
