package tracing

import (
	"net/http"
	"strings"
	"testing"
)

func TestFullURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://model.example.com/v1/chat/completions", "https://model.example.com/v1/chat/completions"},
		{"https://user:pass@model.example.com/predict", "https://REDACTED:REDACTED@model.example.com/predict"},
		{"https://h/p?api_key=sk-1&stream=true", "https://h/p?api_key=REDACTED&stream=REDACTED"},
		{"https://h/p?X-Amz-Signature=abc&X-Amz-Credential=AKIA%2F1", "https://h/p?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED"},
		{"https://h/p?sk-bare-token", "https://h/p?REDACTED"},
		{"https://h/p?a=1&&b=", "https://h/p?a=REDACTED&&b=REDACTED"},
		{"https://h/p?", "https://h/p?"},
		{"https://h/p#frag", "https://h/p"},
		{"http://[::1]:8080/a%20b?token=x", "http://[::1]:8080/a%20b?token=REDACTED"},
		// A mistyped "//": no host, and the userinfo in the opaque part or
		// the path.
		{"https:user:hunter2pw@example.com/v1", "https://..."},
		{"https:/user:hunter2pw@example.com/v1", "https://..."},
		{"https://h/v1/models/claude@20241022:rawPredict", "https://h/v1/models/claude@20241022:rawPredict"},
	}
	for _, c := range cases {
		r, err := http.NewRequest("GET", c.in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := fullURL(r); got != c.want {
			t.Errorf("fullURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestScrub(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://u:hunter22@h/p?key=sk-live-123&n=1&tok%2Fen=a%2Fb%2Fc%2Fd", nil)
	r.Header.Set("Authorization", "Bearer sk-header-456")
	r.Header.Set("X-Baseten-Api-Key", "bt-secret-789")
	r.Header.Set("Cookie", "sid=cookie-000; theme=dark")
	msg := "rejected sk-live-123 and sk-header-456 and bt-secret-789 and cookie-000 and hunter22 and a/b/c/d; page 1 of Bearer"
	got := scrub(msg, r)
	for _, s := range []string{"sk-live-123", "sk-header-456", "bt-secret-789", "cookie-000", "hunter22", "a/b/c/d"} {
		if strings.Contains(got, s) {
			t.Errorf("scrub left %q in %q", s, got)
		}
	}
	if !strings.Contains(got, "page 1 of Bearer") {
		t.Errorf("scrub mangled short values or the auth scheme: %q", got)
	}
}

func TestHostPort(t *testing.T) {
	cases := []struct {
		hostport, scheme, host string
		port                   int
	}{
		{"example.com", "https", "example.com", 443},
		{"example.com", "http", "example.com", 80},
		{"example.com:8443", "https", "example.com", 8443},
		{"[::1]:9000", "http", "::1", 9000},
		{"[::1]", "https", "::1", 443},
		{"example.com:bad", "https", "example.com", 0},
	}
	for _, c := range cases {
		if h, p := hostPort(c.hostport, c.scheme); h != c.host || p != c.port {
			t.Errorf("hostPort(%q, %q) = %q, %d; want %q, %d", c.hostport, c.scheme, h, p, c.host, c.port)
		}
	}
}

func TestRouteOf(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "",
		"/v1/chat/completions":            "/v1/chat/completions",
		"POST /v1/models/{model}/predict": "/v1/models/{model}/predict",
		"GET example.com/{$}":             "/{$}",
		"example.com/static/":             "/static/",
	} {
		if got := routeOf(in); got != want {
			t.Errorf("routeOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeMethod(t *testing.T) {
	for in, want := range map[string][2]string{
		"":      {"GET", ""},
		"POST":  {"POST", ""},
		"QUERY": {"QUERY", ""},
		"post":  {"_OTHER", "post"},
		"PURGE": {"_OTHER", "PURGE"},
	} {
		m, o := normalizeMethod(in)
		if m != want[0] || o != want[1] {
			t.Errorf("normalizeMethod(%q) = %q, %q; want %q", in, m, o, want)
		}
	}
	if spanName("_OTHER") != "HTTP" {
		t.Error(`an unknown method's span must be named "HTTP"`)
	}
}
