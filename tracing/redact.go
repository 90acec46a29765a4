package tracing

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// redacted replaces a credential in an attribute, as the semantic conventions
// spell it for url.full.
const redacted = "REDACTED"

// minSecret is the shortest string scrub removes from a message: shorter
// query values ("1", "true") are not credentials, and replacing them would
// mangle the text.
const minSecret = 4

// fullURL returns the url.full of a client request with its userinfo replaced
// by REDACTED:REDACTED and every query value by REDACTED. Keys are kept, so
// that "?stream=REDACTED&api_key=REDACTED" still says what was sent; values
// go, all of them, because no list of secret names (key, api_key, token,
// access_token, signature, sig, X-Amz-Credential, ...) is ever complete.
// The fragment is dropped: it is never sent.
func fullURL(r *http.Request) string {
	u := r.URL
	var b strings.Builder
	b.Grow(len(u.Scheme) + len(u.Host) + len(u.Path) + len(u.RawQuery) + 32)
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.User != nil {
		b.WriteString(redacted + ":" + redacted + "@")
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
		b.WriteString(redactQuery(u.RawQuery))
	}
	return b.String()
}

// redactQuery keeps the keys of a raw query and replaces every value with
// REDACTED; a part without '=' (which may be a bare token) is replaced whole.
func redactQuery(q string) string {
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
			b.WriteString("=" + redacted)
		case part != "":
			b.WriteString(redacted)
		}
	}
	return b.String()
}

// secretHeaders are the request headers whose values never appear in an
// attribute; scrub also removes them from messages, since a server may echo
// a rejected key in its error body.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Api-Key", "X-Api-Key", "Cookie", "Set-Cookie"}

// secrets returns the strings a message about r must not contain: its query
// values, its userinfo's password, and the values of its credential headers (whole and
// token by token, so that "Bearer sk-..." removes "sk-..." too), longest
// first.
func secrets(r *http.Request) []string {
	var out []string
	add := func(s string) {
		if len(s) >= minSecret {
			out = append(out, s)
		}
	}
	if u := r.URL; u != nil {
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				add(p)
			}
		}
		add(u.RawQuery)
		for part := range strings.SplitSeq(u.RawQuery, "&") {
			_, v, ok := strings.Cut(part, "=")
			if !ok {
				v = part // a bare token
			}
			add(v)
			if dv, err := url.QueryUnescape(v); err == nil && dv != v {
				add(dv)
			}
		}
	}
	for name, vs := range r.Header {
		if !secretHeader(name) {
			continue
		}
		for _, v := range vs {
			add(v)
			for i, f := range fields(v) {
				if _, val, ok := strings.Cut(f, "="); ok {
					add(val) // a cookie's value
				} else if i == 0 && strings.ContainsRune(v, ' ') {
					continue // an auth scheme: Bearer, Basic, Api-Key
				}
				add(f)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

func secretHeader(name string) bool {
	for _, h := range secretHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	n := strings.ToLower(name)
	return strings.Contains(n, "token") || strings.Contains(n, "secret") || strings.Contains(n, "api-key") || strings.Contains(n, "apikey")
}

// scrub returns msg with every secret of r replaced by REDACTED.
func scrub(msg string, r *http.Request) string {
	if r == nil || msg == "" {
		return msg
	}
	for _, s := range secrets(r) {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	return msg
}

// fields splits a header value at spaces, commas and semicolons.
func fields(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool { return c == ' ' || c == ';' || c == ',' })
}
