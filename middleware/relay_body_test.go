package middleware_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
)

// TestRelayRedirectBodyDropped: a redirect's body, which quotes the
// Location as the upstream wrote it (net/http's does), does not reach the
// caller: neither the upstream's address nor the key the relay adds; the
// Content-Location into the upstream is rewritten as the Location is.
func TestRelayRedirectBodyDropped(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", "http://"+r.Host+"/v1/base/doc?"+r.URL.RawQuery)
		http.Redirect(w, r, "http://"+r.Host+"/v1/base/next?"+r.URL.RawQuery, http.StatusFound)
	}))
	defer up.Close()
	const key = "QKEYQKEYQKEY1234"
	u, _ := url.Parse(up.URL + "/v1/base?key=" + key)
	relay := relayFront(t, u, middleware.NewClient(middleware.Config{}))
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(relay + "/r?y=2")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("%d, %v", resp.StatusCode, err)
	}
	if got := resp.Header.Get("Location"); got != "/next?y=2" {
		t.Errorf("Location %q", got)
	}
	if got := resp.Header.Get("Content-Location"); got != "/doc?y=2" {
		t.Errorf("Content-Location %q", got)
	}
	host := strings.TrimPrefix(up.URL, "http://")
	if s := string(b); strings.Contains(s, key) || strings.Contains(s, host) {
		t.Errorf("the redirect's body reached the caller: %q", s)
	}
}

// TestRelayErrorEventMasked: the upstream echoes the relay's own credential
// (its URL's password, sent as Basic) in an error record or event of a 200
// stream: the caller gets the error with the credential masked.
func TestRelayErrorEventMasked(t *testing.T) {
	const key = "relaysecret0123456789"
	for _, ct := range []string{"application/x-ndjson", "text/event-stream"} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, pass, _ := r.BasicAuth()
			w.Header().Set("Content-Type", ct)
			if ct == "text/event-stream" {
				io.WriteString(w, "data: {\"text\":\"tok\"}\n\nevent: error\ndata: {\"error\":{\"message\":\"key "+pass+" is over quota\"}}\n\n")
				return
			}
			io.WriteString(w, `{"model":"m","response":"tok","done":false}`+"\n"+`{"error":"key `+pass+` is over quota"}`+"\n")
		}))
		u, _ := url.Parse(up.URL)
		u.User = url.UserPassword("svc", key)
		front := relayFront(t, u, middleware.NewClient(middleware.Config{Retry: retry.Policy{MaxAttempts: 1}}))
		resp, err := http.Post(front+"/api/chat", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		up.Close()
		if s := string(b); strings.Contains(s, key[:10]) || !strings.Contains(s, "is over quota") {
			t.Errorf("%s: the caller got %q", ct, s)
		}
	}
}

// TestRelayLastLineWithoutLF: an Ollama stream whose last line, whole JSON,
// comes without its LF and which then fails (no "done": true record, or an
// error record) ends with a failure record on a line of its own, not with
// an aborted response.
func TestRelayLastLineWithoutLF(t *testing.T) {
	const line = `{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"tok"},"done":false}`
	for _, last := range []string{line, `{"error":"the model crashed"}`} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, line+"\n"+last)
		}))
		u, _ := url.Parse(up.URL)
		front := relayFront(t, u, middleware.NewClient(middleware.Config{Retry: retry.Policy{MaxAttempts: 1}}))
		resp, err := http.Post(front+"/api/chat", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		up.Close()
		got := string(b)
		rest, ok := strings.CutPrefix(got, line+"\n"+last+"\n")
		if err != nil || !ok || !strings.HasPrefix(rest, `{"error":`) || strings.Count(rest, "\n") != 1 || !strings.HasSuffix(rest, "}\n") {
			t.Errorf("last line %.20q: the caller got %q, %v", last, got, err)
		}
	}
}

// TestRelayLinkRelocated: a Link and a Refresh into the upstream, with the
// key the relay adds in their query, reach the caller as paths under the
// relay, without the upstream's address or the key.
func TestRelayLinkRelocated(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<http://"+r.Host+"/v1/base/models?page=2&"+r.URL.RawQuery+`>; rel="next"`)
		w.Header().Set("Refresh", "5; url=http://"+r.Host+"/v1/base/again?"+r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":[]}`)
	}))
	defer up.Close()
	const key = "QKEYQKEYQKEY1234"
	u, _ := url.Parse(up.URL + "/v1/base?key=" + key)
	relay := relayFront(t, u, middleware.NewClient(middleware.Config{}))
	resp, err := http.Get(relay + "/models")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("Link"); got != `</models?page=2>; rel="next"` {
		t.Errorf("Link %q", got)
	}
	if got := resp.Header.Get("Refresh"); got != "5; url=/again" {
		t.Errorf("Refresh %q", got)
	}
}

// TestRelayPlainClientFailure: a Relay given a client without the stack,
// whose failures quote the upstream's URL (*url.Error), answers the
// caller without that URL, the key in its query or its userinfo.
func TestRelayPlainClientFailure(t *testing.T) {
	const key = "RELAYKEYabcdef0123456789"
	stop := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(stop)
	u, _ := url.Parse(strings.Replace(up.URL, "http://", "http://relayuser"+key+":pw"+key+"@", 1) + "/v1?api_key=" + key)
	relay := relayFront(t, u, &http.Client{Timeout: 50 * time.Millisecond})
	resp, err := http.Get(relay + "/chat")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	if s := string(b); resp.StatusCode != http.StatusGatewayTimeout || strings.Contains(s, key) || strings.Contains(s, host) {
		t.Errorf("%d %s", resp.StatusCode, s)
	}
}

// TestRelayHeaderEchoScrubbed: the relay's own key, which an upstream
// echoes in a header (escaped inside a login redirect's return URL, a
// debugging echo of the request), reaches the caller as REDACTED; the
// caller's own credentials echoed back are left as they are.
func TestRelayHeaderEchoScrubbed(t *testing.T) {
	const key, callers = "RELAYKEYabcdef0123456789", "CALLERKEYabcdef0123456789"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Debug-Request", r.URL.RequestURI())
		w.Header().Set("X-Debug-Auth", r.Header.Get("Authorization"))
		w.Header().Set("Location", "https://login.example/start?rd="+url.QueryEscape("http://"+r.Host+r.URL.RequestURI()))
		w.WriteHeader(http.StatusFound)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL + "/v1?api_key=" + key)
	relay := relayFront(t, u, middleware.NewClient(middleware.Config{}))
	req, _ := http.NewRequest(http.MethodGet, relay+"/redir", nil)
	req.Header.Set("Authorization", "Bearer "+callers)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for name, vs := range resp.Header {
		for _, v := range vs {
			if strings.Contains(v, key) {
				t.Errorf("%s: %s", name, v)
			}
		}
	}
	if got := resp.Header.Get("X-Debug-Request"); got != "/v1/redir?api_key=REDACTED" {
		t.Errorf("X-Debug-Request %q", got)
	}
	if got := resp.Header.Get("X-Debug-Auth"); got != "Bearer "+callers {
		t.Errorf("X-Debug-Auth %q", got)
	}
}

// TestRelayStackErrorKeepsStatus: with a key in the upstream's URL, the
// client stack's error (a 429 it returns as an error, ErrorStatus) is
// relayed with its status and message, not as the handler's 500 quoting
// http.Client's *url.Error and the upstream's address.
func TestRelayStackErrorKeepsStatus(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit_error"}}`)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL + "/v1?api_key=RELAYKEYabcdef0123456789")
	client := middleware.NewClient(middleware.Config{ErrorStatus: true, Retry: retry.Policy{MaxAttempts: 1}})
	relay := relayFront(t, u, client)
	resp, err := http.Get(relay + "/chat")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if s := string(b); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(s, "slow down") || strings.Contains(s, strings.TrimPrefix(up.URL, "http://")) {
		t.Errorf("%d %s", resp.StatusCode, s)
	}
}

// TestRelayUserNameNotScrubbed: the user name of the upstream's userinfo,
// a word beside a real password, is not taken for a secret in the headers
// relayed (it would mangle "user-abc123"); the password is.
func TestRelayUserNameNotScrubbed(t *testing.T) {
	const pass = "Sup3rS3cretPassw0rd"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Openai-Organization", "user-abc123")
		w.Header().Set("X-Echo", "pass "+pass)
	}))
	defer up.Close()
	u, _ := url.Parse(strings.Replace(up.URL, "http://", "http://user:"+pass+"@", 1) + "/v1")
	relay := relayFront(t, u, middleware.NewClient(middleware.Config{}))
	resp, err := http.Get(relay + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Openai-Organization"); got != "user-abc123" {
		t.Errorf("Openai-Organization %q", got)
	}
	if got := resp.Header.Get("X-Echo"); got != "pass REDACTED" {
		t.Errorf("X-Echo %q", got)
	}
}

// relayFront serves a Relay to u through client inside NewHandler, on a
// loopback server closed when the test ends, and returns its URL.
func relayFront(t *testing.T, u *url.URL, client *http.Client) string {
	t.Helper()
	front := httptest.NewServer(middleware.NewHandler(middleware.Relay(u, client), middleware.ServerConfig{}))
	t.Cleanup(front.Close)
	return front.URL
}
