package sse

import (
	"net/http"
	"strings"
)

// emptyEventStream reports whether resp, whose body is http.NoBody, is an
// event stream that should have had one: not the answer to a HEAD, not a
// 204 or 205.
func emptyEventStream(resp *http.Response) bool {
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusResetContent {
		return false
	}
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return false
	}
	return IsEventStream(resp.Header.Get("Content-Type")) || framingOf(resp) != 0
}

// IsEventStream reports whether a Content-Type is text/event-stream, with or
// without parameters, in any case, without the allocations of
// mime.ParseMediaType: the bodies the guard frames by event.
func IsEventStream(ct string) bool {
	const mt = "text/event-stream"
	ct = strings.TrimLeft(ct, " \t")
	if len(ct) < len(mt) || !strings.EqualFold(ct[:len(mt)], mt) {
		return false
	}
	rest := strings.TrimLeft(ct[len(mt):], " \t")
	return rest == "" || rest[0] == ';'
}
