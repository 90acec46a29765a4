package redact

import (
	"net/http"
	"net/url"
	"strings"
)

// RawURL returns a URL given as text (a flag, a setting) for a message:
// with its whole userinfo replaced (REDACTED@: a user name may be the
// credential, as in "https://TOKEN@host", or a password written without
// its ':', as in "redis://s3cret@host"), every query value
// replaced (Query: a key may be in any of them) and its fragment dropped,
// or only its scheme when it holds an '@' that url.Parse did not take as
// the end of a userinfo (it does not parse, or a '/', '?' or '#' in the
// password moved the '@' into the path, the query or the fragment): the
// password could be anywhere in it.
func RawURL(s string) string {
	u, err := url.Parse(s)
	if err == nil && (u.User != nil || !strings.Contains(s, "@")) {
		if u.RawQuery != "" {
			u.RawQuery = Query(u.RawQuery)
		}
		u.Fragment, u.RawFragment = "", ""
		if u.User != nil {
			u.User = url.User(Marker)
		}
		return u.Redacted()
	}
	if strings.Contains(s, "@") {
		if scheme, _, ok := strings.Cut(s, ":"); ok && isScheme(scheme) {
			return scheme + "://..."
		}
		return "..." // no scheme ("TOKEN@host:port"): the credential may be anywhere
	}
	if head, q, ok := strings.Cut(s, "?"); ok {
		return head + "?" + Query(q)
	}
	return s
}

// URL returns r's URL for a record (a span's url.full, a log line) with its
// userinfo replaced by REDACTED:REDACTED and every query value by REDACTED.
// Keys are kept, so that "?stream=REDACTED&api_key=REDACTED" still says what
// was sent; values go, all of them, because no list of secret names (key,
// api_key, token, access_token, signature, sig, X-Amz-Credential, ...) is
// ever complete. The fragment is dropped: it is never sent. A URL with no
// host whose path holds an '@' (a mistyped "//") is only its scheme.
func URL(r *http.Request) string {
	u := r.URL
	if u.Host == "" && strings.Contains(u.Opaque+u.Path, "@") {
		// "https:user:pw@host" or "https:/user:pw@host": no host was
		// parsed, and a userinfo may be anywhere in what was.
		return u.Scheme + "://..."
	}
	var b strings.Builder
	b.Grow(len(u.Scheme) + len(u.Host) + len(u.Path) + len(u.RawQuery) + 32)
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.User != nil {
		b.WriteString(Marker + ":" + Marker + "@")
	}
	host := u.Host
	if host == "" {
		host = r.Host
	}
	b.WriteString(host)
	if u.Opaque != "" {
		b.WriteString(u.Opaque)
	} else {
		b.WriteString(u.EscapedPath())
	}
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteByte('?')
		b.WriteString(Query(u.RawQuery))
	}
	return b.String()
}

// Query keeps the keys of a raw query and replaces every value with
// REDACTED; a part without '=' (which may be a bare token) is replaced whole.
func Query(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	first := true
	for part := range strings.SplitSeq(q, "&") {
		if !first {
			b.WriteByte('&')
		}
		first = false
		switch key, _, ok := strings.Cut(part, "="); {
		case ok:
			b.WriteString(key)
			b.WriteString("=" + Marker)
		case part != "":
			b.WriteString(Marker)
		}
	}
	return b.String()
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}
