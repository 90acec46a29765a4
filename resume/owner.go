package resume

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"slices"
	"strings"

	"github.com/streamguard/streamguard/internal/redact"
)

// OwnerHash returns the keyed hash (HMAC-SHA-256 under key) of the
// credentials r presents: the values of its credential headers
// (Authorization, Api-Key, X-Api-Key, Cookie, any header whose name says
// token, secret, password or auth, and the names in extra) and of its
// credential query parameters, by name; an Authorization's scheme in any
// case, a Cookie header whole. A store keeps this hash, never the
// credentials; a resume must present credentials with the same hash. A
// request without credentials hashes too: its streams can be resumed by any
// request without credentials, as the stream itself could be read.
func OwnerHash(key []byte, r *http.Request, extra []string) []byte {
	var parts []string
	for name, vals := range r.Header {
		if redact.IsCredentialHeader(name, extra) {
			if name == "Authorization" || name == "Proxy-Authorization" {
				vals = authSchemeFolded(vals)
			}
			parts = append(parts, "h:"+strings.ToLower(name)+"="+strings.Join(vals, "\x00"))
		}
	}
	for name, vals := range r.URL.Query() {
		if redact.IsCredentialParam(name) {
			parts = append(parts, "q:"+strings.ToLower(name)+"="+strings.Join(vals, "\x00"))
		}
	}
	slices.Sort(parts)
	mac := hmac.New(sha256.New, key)
	for _, p := range parts {
		mac.Write([]byte(p))
		mac.Write([]byte{0xff})
	}
	return mac.Sum(nil)
}

// authSchemeFolded returns an Authorization header's values with their
// auth scheme in lower case and one space after it: the scheme is read in
// any case (RFC 9110, 11.1), so "bearer KEY" is the credential "Bearer KEY"
// is.
func authSchemeFolded(vals []string) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		if scheme, rest, ok := strings.Cut(v, " "); ok {
			v = strings.ToLower(scheme) + " " + strings.TrimLeft(rest, " ")
		}
		out[i] = v
	}
	return out
}

// SameOwner compares two owner hashes in constant time.
func SameOwner(a, b []byte) bool { return len(a) > 0 && hmac.Equal(a, b) }
