// Package redact is the one home of what the library treats as a credential
// and how it keeps credentials out of what it records: error messages and
// codes, span statuses and attributes, relayed error bodies and failure
// frames, and the headers a redirect may carry. Servers echo rejected keys
// back ("Incorrect API key provided: sk-..."), so every text taken from the
// wire is scrubbed before it is kept.
//
// Scrubbing runs on error paths, once per relayed response's headers and
// once per stream's GenAI facts; never per event or per read.
package redact

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Marker replaces a credential wherever one is removed.
const Marker = "REDACTED"

// minSecret is the shortest value removed from a message: shorter values
// ("1", "abc") are not credentials, and replacing them would mangle the
// text.
const minSecret = 4

// minOpaque is the length from which any query value is taken for a
// secret, whatever its parameter's name (?jwt=..., ?x-sig=...): no list of
// names is complete, and values that long are rarely words of a message.
const minOpaque = 16

// plainParam reports whether a query parameter is one of the well-known
// ones whose long values are no secrets, and name what a message is about
// ("api-version 2024-02-15-preview is not supported").
func plainParam(name string) bool {
	switch strings.ToLower(name) {
	case "api-version", "apiversion", "version", "model", "deployment", "stream", "alt", "format", "starting_after", "after", "before":
		return true
	}
	return false
}

// minShape is the shortest token after a key prefix ("sk-") or an auth scheme
// ("Bearer ") that is taken for a key: "Bearer token" in prose stays.
const minShape = 8

// headers are the credential headers by name; IsCredentialHeader adds any
// header named like a token, secret, password or API key.
var headers = []string{"Authorization", "Proxy-Authorization", "Api-Key", "X-Api-Key", "Cookie", "Set-Cookie"}

// IsCredentialHeader reports whether a header carries a credential: one of
// Authorization, Proxy-Authorization, Api-Key, X-Api-Key, Cookie and
// Set-Cookie, any header whose name contains "token", "secret", "password",
// "api-key", "apikey" or "auth" or ends in "-key" or "_key" (except
// Idempotency-Key), and any of extra (the names a user adds).
// Names match case-insensitively.
func IsCredentialHeader(name string, extra []string) bool {
	for _, h := range headers {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	for _, h := range extra {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	n := strings.ToLower(name)
	for _, part := range []string{"token", "secret", "password", "api-key", "apikey", "auth"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	// Ocp-Apim-Subscription-Key, X-Functions-Key, X-Access-Key; not
	// Idempotency-Key, which names a request, not a caller.
	return (strings.HasSuffix(n, "-key") || strings.HasSuffix(n, "_key")) && n != "idempotency-key"
}

// IsCredentialParam reports whether a query parameter's name says it carries
// a credential: key, api_key, token, access_token, secret, sig, signature,
// password, auth, credential, session and the like (X-Amz-Credential,
// X-Amz-Signature included). Matching is by substring, case-insensitively.
func IsCredentialParam(name string) bool {
	n := strings.ToLower(name)
	for _, part := range []string{"key", "tok", "secret", "sig", "pass", "pwd", "auth", "credential", "session"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

type extraKey struct{}

// WithHeaders returns ctx carrying the names of more credential headers,
// which Secrets and the redirect rule then treat like Authorization.
func WithHeaders(ctx context.Context, names []string) context.Context {
	if len(names) == 0 {
		return ctx
	}
	return context.WithValue(ctx, extraKey{}, names)
}

// Headers returns the names WithHeaders put in ctx.
func Headers(ctx context.Context) []string {
	names, _ := ctx.Value(extraKey{}).([]string)
	return names
}

// Secrets returns the strings that nothing recorded about r may contain: the
// values of its credential headers (whole, and token by token, so that
// "Bearer sk-..." removes "sk-..." too; a cookie's values one by one; a
// Basic credential decoded, see basic), the
// values of its credential query parameters and every query value of
// minOpaque bytes or more but a few well-known ones' (a JWT, a signature:
// raw and unescaped; not an api-version or a model), and its
// userinfo, longest first; each with '/' also as JSON's "\/", with '=',
// '<', '>', '&' and the apostrophe also as an HTML-safe JSON encoder's
// "\u003d" (Gson's, Go's), and percent-encoded as a query value and as a
// path segment.
// r may be nil.
func Secrets(r *http.Request) []string {
	if r == nil {
		return nil
	}
	var out []string
	add := func(s string) {
		if len(s) >= minSecret {
			out = append(out, s)
			if strings.Contains(s, "/") {
				// As a JSON encoder that escapes '/' (PHP's) echoes it.
				out = append(out, strings.ReplaceAll(s, "/", `\/`))
			}
			if strings.ContainsAny(s, "=<>&'") {
				// As an HTML-safe JSON encoder echoes it (Gson escapes
				// a base64 key's '=' padding, Go's encoder '<', '>' and
				// '&' only): the bytes a consumer decodes to the key.
				out = append(out, htmlSafe.Replace(s))
				if g := goSafe.Replace(s); g != s {
					out = append(out, g)
				}
			}
			// As a server echoes it in a URL it builds (a key with '+',
			// '/' or '=', as base64 has them).
			for _, e := range []string{url.QueryEscape(s), url.PathEscape(s)} {
				if e != s {
					out = append(out, e)
				}
			}
		}
	}
	if u := r.URL; u != nil {
		if u.User != nil {
			add(u.User.Username()) // https://TOKEN@host puts the key there
			if p, ok := u.User.Password(); ok {
				add(p)
			}
		}
		for part := range strings.SplitSeq(u.RawQuery, "&") {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				v = part // a bare token
			} else if dk, err := url.QueryUnescape(k); err == nil && !IsCredentialParam(dk) && (len(v) < minOpaque || plainParam(dk)) {
				continue
			}
			add(v)
			if dv, err := url.QueryUnescape(v); err == nil && dv != v {
				add(dv)
			}
		}
	}
	extra := Headers(r.Context())
	for name, vs := range r.Header {
		if !IsCredentialHeader(name, extra) {
			continue
		}
		for _, v := range vs {
			add(v)
			for i, f := range fields(v) {
				if _, val, ok := strings.Cut(f, "="); ok {
					add(val) // a cookie's value
					if len(val) > 2 && val[0] == '"' && val[len(val)-1] == '"' {
						add(val[1 : len(val)-1]) // and without its quotes, as it is decoded
					}
				} else if i == 0 && strings.ContainsRune(v, ' ') {
					continue // an auth scheme: Bearer, Basic, Api-Key
				}
				add(f)
			}
			basic(v, add)
		}
	}
	slices.SortFunc(out, func(a, b string) int { // longest first; equal ones together for Compact
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// htmlSafe escapes what HTML-safe JSON encoders escape in a string (Gson's
// set), and goSafe what Go's encoding/json does, as they write it
// (lower-case hex).
var (
	htmlSafe = strings.NewReplacer("=", `\u003d`, "<", `\u003c`, ">", `\u003e`, "&", `\u0026`, "'", `\u0027`)
	goSafe   = strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`)
)

// Scrub returns s with every one of secrets (as Secrets returns them) and
// every well-known key shape replaced by Marker. It returns s itself, with
// no allocation, when there is nothing to remove.
func Scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Marker)
		}
	}
	return Shapes(s)
}

// Request scrubs s of r's secrets and of well-known key shapes.
func Request(s string, r *http.Request) string {
	if s == "" {
		return s
	}
	return Scrub(s, Secrets(r))
}

// basic adds what a Basic credential (Authorization: Basic
// base64(user:pass)) holds decoded, which a handler reads so (r.BasicAuth)
// and may quote: the password, both joined, and the user unless it is a
// name beside a real password: the user is a secret when the password is
// too short to be one ("curl -u KEY:" sends a key so, alone or beside a
// placeholder), or when it holds a digit or is as long as an opaque value.
// A user of letters beside a password ("api", "admin") is a name: removing
// it would mangle messages.
func basic(v string, add func(string)) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return
	}
	tok = strings.TrimSpace(tok)
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(tok); err != nil {
			return
		}
	}
	user, pass, _ := strings.Cut(string(b), ":")
	add(string(b))
	add(pass)
	if !(len(pass) >= minSecret && len(user) < minOpaque && letters(user)) {
		add(user)
	}
}

// letters reports whether s holds ASCII letters only.
func letters(s string) bool {
	for i := range len(s) {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// fields splits a header value at spaces, commas and semicolons.
func fields(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool { return c == ' ' || c == ';' || c == ',' })
}

// DropCutToken drops the token the cut of a body may have split: the run of
// characters a key is made of at its end. A scrub matches whole keys only,
// and the start of one the cut split would survive it.
func DropCutToken(body []byte) []byte {
	i := len(body)
	for i > 0 && tokenByte(body[i-1]) {
		i--
	}
	return body[:i]
}

// DropCut drops what the cut of a body may have split: the token at its
// end (DropCutToken), and a start of one of secrets it ends with (a
// password, a cookie may hold bytes no token has): a scrub matches whole
// secrets only, and their start would survive it.
func DropCut(body []byte, secrets []string) []byte {
	body = DropCutToken(body)
	for range len(secrets) { // a drop may bare another secret's start
		cut := false
		for _, sec := range secrets {
			for k := min(len(sec)-1, len(body)); k > 0; k-- {
				if string(body[len(body)-k:]) == sec[:k] {
					body, cut = DropCutToken(body[:len(body)-k]), true
					break
				}
			}
		}
		if !cut {
			break
		}
	}
	return body
}

// tokenByte reports whether c can be part of a key, as written in a body
// (base64 and URL escapes, and JSON's escaped '/', included).
func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~+/=%\\", c) >= 0
}
