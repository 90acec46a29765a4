package middleware

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/streamguard/streamguard/internal/redact"
)

// maxRedirects is how many redirects NewClient follows, as http.Client does.
const maxRedirects = 10

// redirectPolicy returns NewClient's CheckRedirect: at most maxRedirects,
// and on any change of origin from the first request (scheme, host or port;
// net/http alone keeps Authorization and cookies for a subdomain or another
// port of the same host) every credential header is dropped, the user's
// extra names included, and the Referer net/http sets (the URL before,
// with its query). The origin is compared with the first request's,
// whose headers net/http copies afresh for each hop.
func redirectPolicy(extra []string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return errors.New("stopped after 10 redirects")
		}
		if sameOrigin(req.URL, via[0].URL) {
			return nil
		}
		for name := range req.Header {
			if redact.IsCredentialHeader(name, extra) {
				delete(req.Header, name)
			}
		}
		// net/http names the last URL, its query's keys included.
		req.Header.Del("Referer")
		return nil
	}
}

// sameOrigin reports whether a and b share scheme, host and port, the port
// defaulting to the scheme's.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}
