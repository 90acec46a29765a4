package middleware

import (
	"net/http"
	"net/url"
	"slices"
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

// TestRelocateLinks: each reference of a Link value, its anchor
// parameters, and the URL of a Refresh value are rewritten as a Location
// is, other quoted parameters and the rest of the value left as they are (a
// '"' that begins no value hides nothing); every value of a header is.
func TestRelocateLinks(t *testing.T) {
	u, _ := url.Parse("https://api.example.com/v1?key=QSECRET123")
	for _, tc := range []struct{ name, v, want string }{
		{"Link", `<https://api.example.com/v1/models?page=2&key=QSECRET123>; rel="next"`, `</models?page=2>; rel="next"`},
		{"Link", `<https://api.example.com/v1/a?key=QSECRET123>; rel=prev, <https://other.example/x?key=QSECRET123>; rel=help`, `</a>; rel=prev, <https://other.example/x>; rel=help`},
		{"Link", `</v1/a>; title="x <https://api.example.com/v1/b?key=QSECRET123> \" <c>"; rel=x`, `</a>; title="x <https://api.example.com/v1/b?key=QSECRET123> \" <c>"; rel=x`},
		{"Link", `<https://api.example.com/v1/a?key=QSECRET123`, `<https://api.example.com/v1/a?key=QSECRET123`},
		{"Link", `<>; rel=self`, `<>; rel=self`},
		{"Link", `</v1/a>; rel=a"b, <https://api.example.com/v1/c?key=QSECRET123>; rel=next`, `</a>; rel=a"b, </c>; rel=next`},
		{"Link", `</v1/a>; anchor="https://api.example.com/v1/b?key=QSECRET123"; rel=x; title="https://api.example.com/v1/t"`, `</a>; anchor="/b"; rel=x; title="https://api.example.com/v1/t"`},
		{"Link", `</v1/a>; ANCHOR = "/v1/b?key=QSECRET123", </v1/c>; xanchor="/v1/d"`, `</a>; ANCHOR = "/b", </c>; xanchor="/v1/d"`},
		{"Link", `</v1/a>; title="open`, `</a>; title="open`},
		{"Link", `</v1/a>; title="x\`, `</a>; title="x\`},
		{"Refresh", `5; url=https://api.example.com/v1/x?key=QSECRET123`, `5; url=/x`},
		{"Refresh", `0;URL='https://api.example.com/v1/x?key=QSECRET123'`, `0;URL='/x'`},
		{"Refresh", `0, "next?key=QSECRET123&a=b"`, `0, "next?a=b"`},
		{"Refresh", `3;url = /v1/y?key=QSECRET123`, `3;url = /y`},
		{"Refresh", `0 https://api.example.com/v1/x?key=QSECRET123`, `0 /x`},
		{"Refresh", `1.5  URL=/v1/y?key=QSECRET123`, `1.5  URL=/y`},
		{"Refresh", `3`, `3`},
		{"Refresh", `3;`, `3;`},
		{"Location", `https://api.example.com/v1/x?key=QSECRET123`, `/x`},
	} {
		h := http.Header{tc.name: {tc.v, tc.v}}
		relocate(h, "Location", u)
		relocateLinks(h, u)
		if got := h[tc.name]; len(got) != 2 || got[0] != tc.want || got[1] != tc.want {
			t.Errorf("%s %s: %q, want %q twice", tc.name, tc.v, got, tc.want)
		}
	}
}

// TestOwnSecretsPassword: the password of the upstream's userinfo is one
// of the relay's secrets whole, even when the user name holds a colon
// (which Basic's split would move into the password).
func TestOwnSecretsPassword(t *testing.T) {
	for _, raw := range []string{"https://acct%3Aid:SECRETPASSWORD@h/", "https://user:SECRETPASSWORD@h/", "https://:SECRETPASSWORD@h/"} {
		u, _ := url.Parse(raw)
		if !slices.Contains(ownSecrets(u), "SECRETPASSWORD") {
			t.Errorf("%s: %q", raw, ownSecrets(u))
		}
	}
}
