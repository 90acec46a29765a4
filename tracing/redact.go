package tracing

import (
	"net/http"

	"github.com/streamguard/streamguard/internal/redact"
)

// fullURL returns the url.full of a client request with its userinfo
// replaced by REDACTED:REDACTED and every query value by REDACTED
// (redact.URL); the fragment is dropped.
func fullURL(r *http.Request) string { return redact.URL(r) }

// redactQuery keeps the keys of a raw query and replaces every value with
// REDACTED (redact.Query).
func redactQuery(q string) string { return redact.Query(q) }

// scrub returns msg with every secret of r (redact.Secrets: its credential
// headers and query values, its userinfo) and every well-known key shape
// replaced by REDACTED.
func scrub(msg string, r *http.Request) string {
	return redact.Request(msg, r)
}
