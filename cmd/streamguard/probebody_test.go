package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestProbeJSONBody: with --json, a body not read as a stream is one line
// {"type": "body", ...}: every line of the output is one JSON object (the
// body was printed as it came, and a body without its last LF ran into the
// result line).
func TestProbeJSONBody(t *testing.T) {
	for _, body := range []string{"hello", "data: {\"a\":1}\n\ndata: [DONE]\n\n", strings.Repeat("x", maxJSONBody+10)} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
		code, stdout, stderr := probeRun(t, nil, "--json", srv.URL)
		srv.Close()
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if code != 0 || len(lines) != 2 {
			t.Fatalf("exit %d, %d lines\nstdout: %.300s\nstderr: %s", code, len(lines), stdout, stderr)
		}
		var first, last map[string]any
		if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &last) != nil {
			t.Fatalf("not JSON lines: %.300q", stdout)
		}
		data, _ := first["data"].(string)
		if first["type"] != "body" || !strings.HasPrefix(body, data) || (len(body) > maxJSONBody) != (first["truncated"] == true) ||
			last["type"] != "result" || last["bytes"] != float64(len(body)) {
			t.Errorf("body of %d bytes: %.200v / %v", len(body), first, last)
		}
	}
}

// TestProbeBadHeader: a header HTTP does not allow is a usage error (exit
// 2), not a network failure retried.
func TestProbeBadHeader(t *testing.T) {
	for _, h := range []string{"X-Custom: va\x01lue", "X Custom: v", "X-Custom: a\rb"} {
		if code, _, stderr := probeRun(t, nil, "-H", h, "http://127.0.0.1:1/"); code != 2 || !strings.Contains(stderr, "bad header") {
			t.Errorf("%q: exit %d, %q; want 2 and a bad header", h, code, stderr)
		}
	}
}

// TestRedactorEchoForms: a key the server echoes JSON-escaped or
// percent-encoded is cut from the probe's output too.
func TestRedactorEchoForms(t *testing.T) {
	red := &redactor{}
	red.add("Bearer ab+cd/ef<gh>ij")
	for _, echo := range []string{"ab+cd/ef<gh>ij", `ab+cd\/ef\u003cgh\u003eij`, "ab%2Bcd%2Fef%3Cgh%3Eij", "ab+cd%2Fef%3Cgh%3Eij"} {
		if got := string(red.scrub([]byte("key " + echo + " bad"))); got != "key "+redacted+" bad" {
			t.Errorf("%q: %q", echo, got)
		}
	}
}

// TestProbeJSONEchoForms: with --json, a key the server echoed in a form
// the JSON line escapes again (\/ became \\/) is cut before the escaping.
func TestProbeJSONEchoForms(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"echo":"ab+cd\/ef\u003cgh\u003eij"}`))
	}))
	defer srv.Close()
	code, stdout, stderr := probeRun(t, nil, "--json", "-H", "Authorization: Bearer ab+cd/ef<gh>ij", srv.URL)
	if code != 0 || strings.Contains(stdout, "ab+cd") || !strings.Contains(stdout, redacted) {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// TestProbeRedactsAsTheLibrary: a key after a scheme in another case
// ("bearer"), a cookie's long value and a key in the query are cut from
// what the probe prints; a query value or a cookie's value that is no
// secret (?stream=true, consent=true) is not, nor the words of the body
// that happen to equal it.
func TestProbeRedactsAsTheLibrary(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.Fields(r.Header.Get("Authorization"))[1]
		c, _ := r.Cookie("session")
		w.Write([]byte(`{"done":true,"token":"` + tok + `","cookie":"` + c.Value + `","key":"` + r.URL.Query().Get("api_key") + `"}`))
	}))
	defer srv.Close()
	code, stdout, stderr := probeRun(t, nil, "-H", "Authorization: bearer tokABCDEFGH12345", "-H", "Cookie: consent=true; session=COOKIEVAL12345678",
		srv.URL+"/v1?stream=true&api_key=QKEY9876")
	if code != 0 || !strings.Contains(stdout, `"done":true`) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, s := range []string{"tokABCDEFGH12345", "COOKIEVAL12345678", "QKEY9876"} {
		if strings.Contains(stdout+stderr, s) {
			t.Errorf("%s reached the output: %s", s, stdout)
		}
	}
}

// TestProbeCookieValues: a cookie's long value is cut from what the probe
// prints whatever its name or bytes (net/http's parser drops cookies it
// finds malformed); a short one (consent=true) is not.
func TestProbeCookieValues(t *testing.T) {
	for _, c := range []string{`cart[sid]=Zq8x7Lm2Np4Rt6VwXy`, `sid=Zq8x7Lm2Np4Rt6Vw\Xy`, `sid=Zq8x7Lm2Np4Rt6VwÄXy`, `sid="Zq8x7Lm2Np4Rt6VwXy"`} {
		red := &redactor{}
		u, _ := url.Parse("https://h.example/v1")
		o := &probeOptions{headers: []string{"Cookie: " + c + "; consent=true"}}
		if _, err := o.request(context.Background(), u, red, noenv); err != nil {
			t.Fatal(err)
		}
		val := strings.Trim(c[strings.IndexByte(c, '=')+1:], `"`)
		if got := string(red.scrub([]byte(`{"echo":"` + val + `","done":true}`))); strings.Contains(got, "Zq8x7L") || !strings.Contains(got, `"done":true`) {
			t.Errorf("cookie %q: %s", c, got)
		}
	}
}
