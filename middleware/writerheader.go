package middleware

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/streamguard/streamguard/internal/coding"
)

// The handler's header map, and how it reaches net/http's. The handler has
// a map of its own, from the start to the end, which begins as a copy of
// net/http's (the fields a middleware outside set are the handler's to see
// and delete), so that the budget's 504, written from another goroutine,
// never races with the handler's changes. net/http's map is made equal to
// it when a header is written (a 1xx or the final one), and gets the
// trailers from it when the handler returns.

// newHandlerHeader returns the handler's map for a writer over rw.
func newHandlerHeader(rw http.ResponseWriter) http.Header {
	if h := rw.Header().Clone(); h != nil {
		return h
	}
	return make(http.Header)
}

// commitHeader makes dst, net/http's map, equal to src, the handler's:
// fields the handler deleted (an outer middleware's, or one a 1xx carried)
// are deleted.
func commitHeader(dst, src http.Header) {
	for k := range dst {
		if _, ok := src[k]; !ok {
			delete(dst, k)
		}
	}
	for k, v := range src {
		dst[k] = v // a 1xx goes with the fields set so far too, as net/http sends it
	}
}

// keepTrailers gives dst, net/http's map, the trailers the handler set in
// src, its own, once the handler returned: the fields its header declared
// in Trailer, and those named with http.TrailerPrefix, as net/http takes
// them from its own map.
func keepTrailers(dst, src http.Header) {
	declared := src["Trailer"]
	for k, v := range src {
		if strings.HasPrefix(k, http.TrailerPrefix) || isDeclared(declared, k) {
			dst[k] = v
		}
	}
}

// isDeclared reports whether the Trailer values declared name field k.
func isDeclared(declared []string, k string) bool {
	for _, v := range declared {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(name), k) {
				return true
			}
		}
	}
	return false
}

// errorHeader makes net/http's map that of a JSON error the handler wrote
// (WriteError): the handler's fields (Retry-After, a request id, cookies),
// as http.Error keeps them, but those that describe the body the error
// replaces, and its caching: a Cache-Control the handler set becomes
// no-store, so that a cache in front never keeps the error for the answer
// it replaces.
// writeJSON sets Content-Type and Content-Length.
func errorHeader(dst, src http.Header) {
	commitHeader(dst, src)
	for k := range dst {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Encoding", "Content-Type", "Content-Range", "Transfer-Encoding",
			"Trailer", "Etag", "Last-Modified", "Expires", "Content-Disposition", "Content-Language", "Content-Location":
			delete(dst, k)
		default:
			if strings.HasPrefix(k, http.TrailerPrefix) {
				delete(dst, k)
			}
		}
	}
	if _, ok := dst["Cache-Control"]; ok {
		dst.Set("Cache-Control", "no-store")
	}
}

// ownBytesFit reports whether the body of a response with header h and
// status code can take the writer's own bytes (heartbeats, failure events
// and records) among the handler's: it has a body (not a 204 or 304, not
// the answer to a HEAD), not a declared length (the writer's bytes would
// take the place of the handler's), and no content coding (they would land
// as plain text among compressed bytes).
func ownBytesFit(h http.Header, code int, head bool) bool {
	if head || code == http.StatusNoContent || code == http.StatusNotModified || len(h["Content-Length"]) > 0 {
		return false
	}
	return !coding.Encoded(h)
}

// declaredLength returns the Content-Length h declares, or -1.
func declaredLength(h http.Header) int64 {
	if v := h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(strings.TrimSpace(v[0]), 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}
