package streamguard

import (
	"errors"
	"strconv"
	"time"
)

// Hint says where to look next, from the platform's quick reference: the
// model logs for a crashed container, the request for a 4xx, a retry with
// backoff for a draining replica. It depends on the reason and, where the
// same reason has different owners, on the source. It quotes the numbers in
// force where the error carries them: the request's budget (Budget), and,
// when the stack retried and gave up (Attempts > 1 with Elapsed set, as on
// the failure the client stack returns), how many attempts were made over
// how long, in place of advice to retry; and, when the stream guard tried to
// resume a broken stream (Resumes > 0), how many resumes it tried.
func (e *Error) Hint() string {
	h := e.baseHint()
	if e.Resumes > 0 && h != "" {
		h = e.resumesSpent() + h
	}
	if e.Attempts > 1 && e.Elapsed > 0 && h != "" {
		if after := e.retriedHint(); after != "" {
			return e.attemptsSpent() + after
		}
		return e.attemptsSpent() + h
	}
	return h
}

// resumesSpent is "the stream broke again after N resumes: ".
func (e *Error) resumesSpent() string {
	if e.Resumes == 1 {
		return "1 resume did not complete the stream: "
	}
	return strconv.Itoa(e.Resumes) + " resumes did not complete the stream: "
}

// attemptsSpent is "N attempts over T failed: ".
func (e *Error) attemptsSpent() string {
	return strconv.Itoa(e.Attempts) + " attempts over " + seconds(e.Elapsed) + " failed: "
}

// retriedHint replaces the advice to retry, for the reasons whose hint
// gives it, once the stack has already retried; "" keeps the usual hint.
func (e *Error) retriedHint() string {
	switch e.Reason {
	case ReasonUnreachable:
		return "not a blip; check the model logs for a crash or OOMKilled, and the deployment's replicas"
	case ReasonUnavailable:
		return "the deployment is not serving (scaled to zero, draining or not ready); check its status before sending again, later"
	case ReasonPlatformError:
		return "contact support with the request ID"
	case ReasonConnection:
		return "check DNS, TLS and connectivity to the gateway before sending again"
	case ReasonRateLimited:
		return "lower the request rate or raise the deployment's rate limits"
	}
	return ""
}

func (e *Error) baseHint() string {
	if info, ok := reasons[e.Reason]; ok {
		return info.hint(e)
	}
	return ""
}

// timeoutHint tells the caller's own deadline, the stack's budget and the
// gateway's 504 apart, quoting the budget in force when the error has it.
func (e *Error) timeoutHint() string {
	switch {
	case e.Source == SourceRequest:
		// A 408: the server gave up waiting for the request itself.
		return "the server timed out reading the request (408): check that the request body is sent promptly and whole, then retry"
	case e.Source == SourceClient:
		return "your own deadline expired first: set your client's timeout to the model's expected response time (the platform allows 1200 s)"
	case e.Budget > 0 && errors.Is(e, ErrBudgetExceeded):
		if e.Budget == SyncBudget || e.Budget == AsyncBudget {
			return "the request ran past the platform's budget of " + seconds(e.Budget) + " and the gateway did not answer 504 in time: profile the model, or move long work to async"
		}
		return "the request ran past its budget of " + seconds(e.Budget) + ": raise the budget if the model needs longer, or profile the model"
	}
	return "the prediction ran past the platform's timeout (1200 s sync, 3600 s async): profile the model, raise its resources, or move long work to async"
}

// seconds formats d for a hint: whole seconds as "1200 s", shorter or
// fractional durations as time.Duration prints them, to the millisecond.
func seconds(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	}
	return d.Round(time.Millisecond).String()
}

// noEventsHint names what a 2xx event stream without events carried.
func noEventsHint(code string) string {
	switch code {
	case "html":
		return "the server or a proxy answered 200 with an HTML page, not events (an error or login page): check the URL, the proxy and the server logs"
	case "json":
		return "the server answered 200 with a JSON document, not events (often an error object): read the message, and check that the request asked for a stream"
	case "text":
		return "the server answered 200 with text that is not an event stream: check the URL and the server"
	}
	return "the stream ended before its first event: check the model logs, and retry"
}
