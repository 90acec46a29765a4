package middleware

import (
	"net/http"
	"net/url"
	"testing"
)

// TestRelocate: a Location into the upstream comes back under the relay,
// with the upstream's own query values taken off wherever they are and
// however escaped, a default port written out or not; one elsewhere is
// left as it is; none becomes a path to another origin.
func TestRelocate(t *testing.T) {
	for _, tc := range []struct{ upstream, loc, want string }{
		{"https://api.example.com/v1?key=QSECRET123&api-version=1", "https://api.example.com/v1/x?api-version=1&key=QSECRET123", "/x"},
		{"https://api.example.com/v1?key=QSECRET123", "https://api.example.com/v1/x?page=2&key=QSECRET123", "/x?page=2"},
		{"https://api.example.com/v1?key=a%2Bb", "https://api.example.com/v1/x?key=a+b", "/x?key=a+b"}, // '+' is a space: another value
		{"https://api.example.com/v1?key=a%2Bb", "https://api.example.com/v1/x?key=a%2bb", "/x"},
		{"https://api.example.com/v1?key=QSECRET123", "https://api.example.com:443/v1/x?key=QSECRET123", "/x"},
		{"http://api.example.com/v1", "http://api.example.com:80/v1/x", "/x"},
		{"http://api.example.com:8080/v1", "http://api.example.com/v1/x", "http://api.example.com/v1/x"},
		{"https://API.example.com/v1", "https://api.EXAMPLE.com/v1/y", "/y"},
		{"https://up/v1", "https://up/v1//evil.example/x", "/evil.example/x"},
		{"https://up/v1", "/v1//evil.example/x", "/evil.example/x"},
		{"https://up/v1", "https://up/v2/x", "https://up/v2/x"},
		{"https://up/v1", "http://up/v1/x", "http://up/v1/x"},
		{"https://[::1]:8443/v1", "https://[::1]:8443/v1/x", "/x"},
		{"https://up/v1", "https://up/v1/../admin", "https://up/v1/../admin"}, // out of the base path
		{"https://up/v1", "/v1/%2e%2e/admin", "/v1/%2e%2e/admin"},
		{"https://api.example.com/v1?key=QSECRET123", "https://api.example.com/v1/./x?key=QSECRET123", "/x"},
		{"https://api.example.com/v1?key=QSECRET123", "/v1/a/../x?key=QSECRET123", "/x"},
		{"https://up/v1", "https://up/v1/a/%2E%2e/b/.", "/b/"},
		{"https://up/v1", "https://up/v1/a/..", "/"},
		{"https://api.example.com/v1?key=QSECRET123", "https://api.example.com/v2/x?key=QSECRET123&p=1", "https://api.example.com/v2/x?p=1"},
		{"https://api.example.com/v1?key=QSECRET123", "/v2/x?key=QSECRET123", "/v2/x"},
		{"https://api.example.com/v1?key=QSECRET123", "https://other.example/v1/x?key=QSECRET123", "https://other.example/v1/x"},
		{"https://api.example.com/v1?key=QSECRET123", "next?key=QSECRET123&a=b", "next?a=b"},
		{"https://api.example.com/v1?key=QSECRET123", "?key=QSECRET123", "?"},
		{"https://api.example.com/v1?key=QSECRET123", "?key=QSECRET123#top", "?#top"},
		{"https://api.example.com/v1?key=QSECRET123", "https:?key=QSECRET123", "https:?"},
		{"https://api.example.com/v1", "?a=b", "?a=b"},
	} {
		u, _ := url.Parse(tc.upstream)
		h := http.Header{"Location": {tc.loc}}
		relocate(h, "Location", u)
		if got := h.Get("Location"); got != tc.want {
			t.Errorf("upstream %s, Location %s: %q, want %q", tc.upstream, tc.loc, got, tc.want)
		}
	}
}
