package redact

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestShapes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Incorrect API key provided: sk-live-abcdef123456.", "Incorrect API key provided: REDACTED."},
		{"key sk-ant-api03-AbC_dEf-123456 rejected", "key REDACTED rejected"},
		{"sk-proj-0123456789", "REDACTED"},
		{"Authorization: Bearer eyJhbGciOi.JIUzI1.NiJ9 was refused", "Authorization: Bearer REDACTED was refused"},
		{"bearer   abcdefghij", "bearer   REDACTED"},
		{"Api-Key 0123456789abcdef", "Api-Key REDACTED"},
		{"Basic dXNlcjpwYXNzd29yZA==", "Basic REDACTED"},
		// Prose and short tokens stay.
		{"a Bearer token is required", "a Bearer token is required"},
		{"task-sk-live-abcdef123456", "task-sk-live-abcdef123456"}, // not at a word's start
		// After '=' or '/' a key is at a word's start.
		{"rejected api_key=sk-live-abcdef123456", "rejected api_key=REDACTED"},
		{"GET /v1/keys/sk-live-abcdef123456 failed", "GET /v1/keys/REDACTED failed"},
		{"sk-short", "sk-short"},
		{"", ""},
		{"model overloaded", "model overloaded"},
	}
	for _, c := range cases {
		if got := Shapes(c.in); got != c.want {
			t.Errorf("Shapes(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestShapesNoAllocWhenClean(t *testing.T) {
	s := "the model is overloaded: retry later (request abc-123)"
	if n := testing.AllocsPerRun(100, func() { _ = Shapes(s) }); n != 0 {
		t.Errorf("Shapes allocated %v times on a clean string", n)
	}
}

func TestSecrets(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://u:hunter22@h/p?api_key=sk-q-123&stream=true&model=llama-3-70b&tok%2Fen=a%2Fb%2Fc%2Fd&X-Amz-Signature=abcd1234", nil)
	r.Header.Set("Authorization", "Bearer sk-header-456")
	r.Header.Set("X-Baseten-Api-Key", "bt-secret-789")
	r.Header.Set("Cookie", "sid=cookie-000; theme=dark")
	r.Header.Set("X-Custom-Cred", "custom-0001")
	r = r.WithContext(WithHeaders(context.Background(), []string{"x-custom-cred"}))
	msg := "rejected sk-q-123, sk-header-456, bt-secret-789, cookie-000, hunter22, a/b/c/d, abcd1234, custom-0001; stream true; model llama-3-70b; page 1 of Bearer"
	got := Request(msg, r)
	for _, s := range []string{"sk-q-123", "sk-header-456", "bt-secret-789", "cookie-000", "hunter22", "a/b/c/d", "abcd1234", "custom-0001"} {
		if strings.Contains(got, s) {
			t.Errorf("left %q in %q", s, got)
		}
	}
	for _, s := range []string{"stream true", "model llama-3-70b", "page 1 of Bearer"} {
		if !strings.Contains(got, s) {
			t.Errorf("mangled %q: %q", s, got)
		}
	}
}

// TestSecretsMore: a key as the URL's user name, in a header named *-Key,
// as a long query value of any name, and with its '/' JSON-escaped.
func TestSecretsMore(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
	r, _ := http.NewRequest("GET", "https://tok0123456789abcdef@h/p?jwt="+jwt+"&api-version=2024-02-15-preview&model=meta-llama-3-70b-instruct", nil)
	r.Header.Set("Ocp-Apim-Subscription-Key", "0123456789abcdef0123")
	r.Header.Set("X-Functions-Key", "fn/key/0123456789")
	r.Header.Set("Idempotency-Key", "idem-0001")
	msg := "rejected tok0123456789abcdef, " + jwt + ", 0123456789abcdef0123, fn\\/key\\/0123456789; request idem-0001"
	got := Request(msg, r)
	for _, s := range []string{"tok0123456789abcdef", jwt, "0123456789abcdef0123", "0123456789"} {
		if strings.Contains(got, s) {
			t.Errorf("left %q in %q", s, got)
		}
	}
	if !strings.Contains(got, "request idem-0001") {
		t.Errorf("an Idempotency-Key is not a credential: %q", got)
	}
	// The long values of well-known parameters are what messages name.
	msg = "api-version 2024-02-15-preview is not supported for meta-llama-3-70b-instruct"
	if got := Request(msg, r); got != msg {
		t.Errorf("scrubbed a message of no secret: %q", got)
	}
}

func TestIsCredentialHeader(t *testing.T) {
	for _, h := range []string{"Authorization", "proxy-authorization", "Api-Key", "X-Api-Key", "Cookie", "X-Auth-Token", "X-Baseten-Api-Key", "X-Secret", "Openai-Apikey", "Ocp-Apim-Subscription-Key", "x-access_key"} {
		if !IsCredentialHeader(h, nil) {
			t.Errorf("%s is a credential header", h)
		}
	}
	for _, h := range []string{"Content-Type", "Accept", "X-Request-Id", "User-Agent", "Idempotency-Key", "X-Keys"} {
		if IsCredentialHeader(h, nil) {
			t.Errorf("%s is not a credential header", h)
		}
	}
	if !IsCredentialHeader("X-Tenant", []string{"x-tenant"}) {
		t.Error("a user-added name is a credential header")
	}
}

// TestRawURL: a URL given as text loses its whole userinfo (a password
// written without ':' is the user name; a token may be given as one), its
// query values and its fragment, and keeps the rest.
func TestRawURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://h:6379/0":                  "redis://h:6379/0",
		"rediss://alice:hunter2@h:6380/1":   "rediss://REDACTED@h:6380/1",
		"redis://:hunter2@h":                "redis://REDACTED@h",
		"redis://hunter2@h/0":               "redis://REDACTED@h/0",
		"REDIS://hunter2@h/0":               "redis://REDACTED@h/0",
		"rediss://hunter2:@h":               "rediss://REDACTED@h",
		"https://alice:hunter2@h/v1":        "https://REDACTED@h/v1",
		"https://sk-live-token@h/v1":        "https://REDACTED@h/v1",
		"redis://u:hunter2@h\x7f":           "redis://...",
		"redis://default:/hunter2@h:6379/0": "redis://...",
		"redis://default:12#hunter2@h/0":    "redis://...",
		"redis://default:12?hunter2@h/0":    "redis://...",
		"redis:/default:hunter2@h":          "redis://...",
		"redis:default:hunter2@h":           "redis://...",
		"redis://h/0?x=1":                   "redis://h/0?x=REDACTED",
		"http://h/v1?api_key=sk-1&model=m":  "http://h/v1?api_key=REDACTED&model=REDACTED",
		"redis://h/0?password=hunter2":      "redis://h/0?password=REDACTED",
		"http://h/v1#access_token=sk-1":     "http://h/v1",
		"%zz?token=sk-1":                    "%zz?token=REDACTED",
		"memory":                            "memory",
		"s3cret@redis.internal:6379":        "...",
		"TOKEN@api.example.com":             "...",
		"user:s3cret@host:6379/0":           "user://...",
		"%zz":                               "%zz",
	} {
		if got := RawURL(in); got != want {
			t.Errorf("RawURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDropCut: a cut body loses the start of a secret it ends with, bytes
// no token has included, and the token before; nothing else.
func TestDropCut(t *testing.T) {
	secrets := []string{"Xk9$Qz7!longpassword", "s3cr3t;v@lue"}
	for body, want := range map[string]string{
		"bad login Xk9$Qz7!":        "bad login ",
		"bad login Xk9$Qz7!lon":     "bad login ",
		"bad login Xk9$":            "bad login ",
		"cookie s3cr3t;v@":          "cookie ",
		"cookie s3cr3t;v@lue":       "cookie ", // its token cut first
		"no secret here!":           "no secret here!",
		"a token at the end abcdef": "a token at the end ",
		"":                          "",
	} {
		if got := string(DropCut([]byte(body), secrets)); got != want {
			t.Errorf("DropCut(%q) = %q, want %q", body, got, want)
		}
	}
}

// TestSecretsPercentEncoded: a header's key a server echoes in a URL it
// built, percent-encoded as a query value or a path segment, is scrubbed
// whole (only the tail after its '=' was, by chance).
func TestSecretsPercentEncoded(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://h/p", nil)
	r.Header.Set("X-Api-Key", "AbCd+EfGh/IjKl=MnOp0123456789")
	for _, msg := range []string{"see https://h/x?k=AbCd%2BEfGh%2FIjKl%3DMnOp0123456789", "see https://h/keys/AbCd+EfGh%2FIjKl=MnOp0123456789/info"} {
		if got := Request(msg, r); strings.Contains(got, "AbCd") {
			t.Errorf("%q left %q", msg, got)
		}
	}
}

// TestSecretsBasic: a key sent as a Basic credential (curl -u KEY:) is
// removed as the handler reads it, decoded: the user, the password, both.
func TestSecretsBasic(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://h/p", nil)
	r.SetBasicAuth("gw_live_4f9a0c7e21b84d55a3", "")
	user, _, _ := r.BasicAuth()
	if got := Request("no account for key "+user, r); strings.Contains(got, "gw_live") {
		t.Errorf("the key as the user left %q", got)
	}
	r.SetBasicAuth("gw_live_4f9a0c7e21b84d55a3", "X") // a placeholder password
	if got := Request("no account for key "+user, r); strings.Contains(got, "gw_live") {
		t.Errorf("the key as the user, beside a placeholder, left %q", got)
	}
	r.SetBasicAuth("user", "hunter2hunter2")
	for _, msg := range []string{"bad password hunter2hunter2", "creds user:hunter2hunter2"} {
		if got := Request(msg, r); strings.Contains(got, "hunter2") {
			t.Errorf("%q left %q", msg, got)
		}
	}
	if msg := "user quota exceeded"; Request(msg, r) != msg {
		t.Errorf("a user beside a password, a name, was removed: %q", Request(msg, r))
	}
	for _, c := range [][2]string{{"user", "pass-word"}, {"admin", "s3cret-pw"}, {"model", "hunter22"}} {
		r.SetBasicAuth(c[0], c[1])
		if msg := "the " + c[0] + " field is invalid"; Request(msg, r) != msg {
			t.Errorf("Basic %s:%s: %q became %q; a name is not a secret", c[0], c[1], msg, Request(msg, r))
		}
	}
	for _, c := range [][2]string{{"k7Qz9xTp2L", "none"}, {"QxZwVbNmKjHgFd", ""}, {"hfKqWzRtLpXv", "x"}, {"key_AbCdEfGhIj", "hunter22"}, {"tok.QxZwVbNmKj", "hunter22"}} {
		r.SetBasicAuth(c[0], c[1]) // a key as the user, beside a placeholder or nothing
		if got := Request("unknown key "+c[0], r); strings.Contains(got, c[0]) {
			t.Errorf("Basic %s:%s left %q", c[0], c[1], got)
		}
	}
	r.Header.Set("Authorization", "Basic "+base64.RawStdEncoding.EncodeToString([]byte("api:zq5f3a9c1e7b")))
	if got := Request("bad key zq5f3a9c1e7b", r); strings.Contains(got, "5f3a9c1e7b") {
		t.Errorf("an unpadded Basic token's password left %q", got)
	}
	r.Header.Set("Authorization", "Basic !!!not-base64")
	if got := Request("see !!!not-base64", r); strings.Contains(got, "not-base64") {
		t.Errorf("an undecodable Basic token left %q", got)
	}
}
