package middleware_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// relay proxies the upstream stream to its own client, as a service that
// fronts a model does: both stacks at once.
func relay(upstream *http.Client, url string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "POST", url, r.Body)
		up, err := upstream.Do(req)
		if err != nil {
			middleware.WriteError(w, r, err)
			return
		}
		defer up.Body.Close()
		if err := streamguard.Check(up); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", up.Header.Get("Content-Type"))
		w.WriteHeader(up.StatusCode)
		rc := http.NewResponseController(w)
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return // our client went away
				}
				rc.Flush()
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				middleware.WriteError(w, r, err)
				return
			}
		}
	})
}

func TestRelayCarriesUpstreamFailures(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		start := gatewaytest.NewServer
		if h2 {
			start = gatewaytest.NewTLSServer
		}
		gw := start(gatewaytest.ChatStream(8))
		defer gw.Close()
		upstream := clientFor(t, gw, middleware.Config{})
		front := serve(t, h2, middleware.ServerConfig{}, relay(upstream, gw.URL+"/v1/chat/completions"))
		// One attempt downstream: the relay already retried upstream.
		downstream := clientFor(t, front, middleware.Config{Retry: retry.Policy{MaxAttempts: 1}})

		read := func() (int, error) {
			resp, err := downstream.Post(front.URL, "application/json", nil)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			if err := streamguard.Check(resp); err != nil {
				return 0, err
			}
			n := 0
			for ev, err := range gosse.Read(resp.Body, nil) {
				if err != nil {
					return n, err
				}
				if ev.Type == "" {
					n++
				}
			}
			return n, nil
		}

		t.Run("complete", func(t *testing.T) {
			if n, err := read(); err != nil || n != 9 {
				t.Fatalf("%d events, %v", n, err)
			}
		})
		t.Run("upstream cut reaches the client as a failure event", func(t *testing.T) {
			gw.Script(gatewaytest.Cut(5))
			n, err := read()
			var se *streamguard.Error
			if !errors.As(err, &se) || se.Reason != streamguard.ReasonTruncated || se.Source != streamguard.SourceNetwork || n != 5 {
				t.Fatalf("%d events, then %v", n, err)
			}
		})
		t.Run("upstream 503s retried, then its status relayed", func(t *testing.T) {
			for range 5 {
				gw.Script(gatewaytest.Draining(0))
			}
			_, err := read()
			var se *streamguard.Error
			if !errors.As(err, &se) || se.StatusCode != 503 || se.Reason != streamguard.ReasonUnavailable {
				t.Fatalf("err = %v", err)
			}
		})
	})
}

// TestRelayGzipUpstream: an upstream that gzips its event stream for a
// client that accepts it (Go's default client asks by itself) is relayed
// decompressed, its events framed and resumable, not as gzip bytes cut
// into garbage events.
func TestRelayGzipUpstream(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		var out io.Writer = w
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gz
		}
		for i := 1; i <= 5; i++ {
			fmt.Fprintf(out, "data: %d\n\n", i)
		}
	}))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	front := httptest.NewServer(middleware.NewHandler(middleware.Relay(upURL, middleware.NewClient(middleware.Config{})),
		middleware.ServerConfig{Resume: &middleware.ResumeConfig{}}))
	defer front.Close()
	resp, err := http.Get(front.URL) // asks for gzip
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	name := resp.Header.Get(sse.ResumableStreamHeader)
	var want string
	for i := 1; i <= 5; i++ {
		want += fmt.Sprintf("data: %d\nid: %s.%d\n\n", i, name, i)
	}
	if name == "" || string(body) != want {
		t.Fatalf("relayed %q (Resumable-Stream %q), want %q", body, name, want)
	}
}

// TestResumableNotEncoded: a handler's event stream with a
// Content-Encoding is passed on as it is, not framed into events.
func TestResumableNotEncoded(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "data: 1\n\n")
	zw.Close()
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !bytes.Equal(rec.Body.Bytes(), gz.Bytes()) || rec.Header().Get(sse.ResumableStreamHeader) != "" {
		t.Fatalf("a gzipped stream came out as %q (Resumable-Stream %q)", rec.Body.Bytes(), rec.Header().Get(sse.ResumableStreamHeader))
	}
}

// TestRelayKeepsPathEscapes: the relay sends the request's path on as it
// came, escapes kept: "org%2Fmodel" is one segment upstream too.
func TestRelayKeepsPathEscapes(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.EscapedPath() + "?" + r.URL.RawQuery
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL + "/v1%20x/")
	relay := httptest.NewServer(middleware.Relay(u, middleware.NewClient(middleware.Config{})))
	defer relay.Close()
	resp, err := http.Get(relay.URL + "/models/org%2Fmodel:predict?a=%2F")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p := <-got; p != "/v1%20x/models/org%2Fmodel:predict?a=%2F" {
		t.Fatalf("upstream got %q", p)
	}
}

// TestResumableHeaderKinds: an event stream with a declared length is
// passed on as it is (id lines would overrun its Content-Length), and one
// whose Content-Encoding is identity is resumable like one without.
func TestResumableHeaderKinds(t *testing.T) {
	const stream = "data: 1\n\ndata: 2\n\n"
	for _, tc := range []struct {
		field, value string
		resumable    bool
	}{
		{"Content-Length", fmt.Sprint(len(stream)), false},
		{"Content-Encoding", "identity", true},
	} {
		h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set(tc.field, tc.value)
			io.WriteString(w, stream)
		}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{}})
		srv := httptest.NewServer(h)
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		name := resp.Header.Get(sse.ResumableStreamHeader)
		want := stream
		if tc.resumable {
			want = "data: 1\nid: " + name + ".1\n\ndata: 2\nid: " + name + ".2\n\n"
		}
		if err != nil || (name != "") != tc.resumable || string(body) != want {
			t.Errorf("%s: %s: %q, %v (Resumable-Stream %q), want %q", tc.field, tc.value, body, err, name, want)
		}
	}
}

// TestRelayRedirectRelayed: an upstream's redirect reaches the caller as
// it is; the relay does not follow it (it sent the caller's POST, turned
// into a GET, to wherever the upstream pointed, with the relay's query).
func TestRelayRedirectRelayed(t *testing.T) {
	hits := make(chan string, 4)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits <- r.Method }))
	defer other.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL + "/base?api_key=QSECRET123")
	relay := httptest.NewServer(middleware.Relay(u, middleware.NewClient(middleware.Config{})))
	defer relay.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Post(relay.URL+"/redir", "application/json", strings.NewReader(`{"prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != other.URL+"/landing" {
		t.Errorf("%d Location %q; want the upstream's 302", resp.StatusCode, resp.Header.Get("Location"))
	}
	select {
	case m := <-hits:
		t.Errorf("the relay followed the redirect: a %s reached its target", m)
	default:
	}
}

// TestRelayRedirectIntoUpstream: a Location into the upstream (absolute,
// or a path from the root under its base path) comes back as the same
// place under the relay, without the upstream's address or the query the
// relay adds; any other Location is relayed as it is.
func TestRelayRedirectIntoUpstream(t *testing.T) {
	var upURL string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc := strings.NewReplacer("UP", upURL).Replace(r.URL.Query().Get("to"))
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	}))
	defer up.Close()
	upURL = up.URL
	u, _ := url.Parse(up.URL + "/v1/base?api_key=QSECRET123")
	relay := httptest.NewServer(middleware.Relay(u, middleware.NewClient(middleware.Config{})))
	defer relay.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for to, want := range map[string]string{
		"UP/v1/base/models/x?api_key=QSECRET123&page=2": "/models/x?page=2",
		"UP/v1/base":                      "/",
		"/v1/base/next#frag":              "/next#frag",
		"UP/v1/basement":                  "UP/v1/basement",
		"/elsewhere":                      "/elsewhere",
		"https://example.com/v1/base/x":   "https://example.com/v1/base/x",
		"//evil.example/v1/base/x":        "//evil.example/v1/base/x",
		"relative/path":                   "relative/path",
		"UP/v1/base/a?api_key=OTHERKEY42": "/a?api_key=OTHERKEY42",
	} {
		resp, err := c.Get(relay.URL + "/r?to=" + url.QueryEscape(to))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, w := resp.Header.Get("Location"), strings.ReplaceAll(want, "UP", upURL); got != w {
			t.Errorf("upstream's Location %q: relayed %q, want %q", to, got, w)
		}
	}
}

// TestRelayRefusesDotSegments: a request path with a "." or ".." segment,
// raw or escaped, or one some servers read so (before a backslash or a
// ";"), is answered 400 and never reaches the upstream: joined
// to the upstream's base path it climbed out of it.
func TestRelayRefusesDotSegments(t *testing.T) {
	got := make(chan string, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.URL.EscapedPath() }))
	defer up.Close()
	u, _ := url.Parse(up.URL + "/v1/tenant-a")
	relay := httptest.NewServer(middleware.NewHandler(middleware.Relay(u, middleware.NewClient(middleware.Config{})), middleware.ServerConfig{}))
	defer relay.Close()
	for path, bad := range map[string]bool{
		"/../../admin": true, "/a/%2e%2e/b": true, "/a/.%2E/b": true, "/a%2f..%2fb": true, "/./x": true, "/a/..": true,
		"/a/..%5cadmin": true, "/a/..%5Cadmin": true, "/a/..;/admin": true, "/a/..%3B/b": true, "/a/.;x=1/b": true,
		"/a..b/c": false, "/.../x": false, "/models/org%2Fmodel": false, "/a;v=1/b": false, "/x%5cy": false,
	} {
		conn, err := net.Dial("tcp", relay.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if bad != (resp.StatusCode == http.StatusBadRequest) {
			t.Errorf("%s: %d; want 400: %v", path, resp.StatusCode, bad)
		}
		select {
		case p := <-got:
			if bad {
				t.Errorf("%s reached the upstream as %s", path, p)
			}
		default:
			if !bad {
				t.Errorf("%s did not reach the upstream", path)
			}
		}
	}
}

// TestRelayUpstreamFailureWords: a relay that cannot reach its upstream
// does not tell its caller the upstream's internal address (the dial
// error's text); an upstream that refuses the relay's own credentials (its
// URL's userinfo) is answered 502 unauthorized, not passed on as the
// caller's 401.
func TestRelayUpstreamFailureWords(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	u, _ := url.Parse("http://" + deadAddr + "/v1")
	for _, client := range []*http.Client{middleware.NewClient(middleware.Config{Retry: retry.Policy{MaxAttempts: 1}}), {}} {
		relay := httptest.NewServer(middleware.NewHandler(middleware.Relay(u, client), middleware.ServerConfig{}))
		resp, err := http.Get(relay.URL + "/models")
		relay.Close()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || strings.Contains(string(b), deadAddr) || !strings.Contains(string(b), "could not be reached") {
			t.Errorf("unreachable upstream: %d %s", resp.StatusCode, b)
		}
	}

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"bad key","type":"invalid_request_error"}}`)
	}))
	defer up.Close()
	for _, c := range []struct {
		withUser, callerAuth bool
		want                 int
	}{{false, false, 401}, {false, true, 401}, {true, false, 502}, {true, true, 401}} {
		u, _ := url.Parse(up.URL + "/v1")
		if c.withUser {
			u.User = url.UserPassword("relay", "s3cret-relay-key")
		}
		relay := httptest.NewServer(middleware.NewHandler(middleware.Relay(u, middleware.NewClient(middleware.Config{})), middleware.ServerConfig{}))
		req, _ := http.NewRequest(http.MethodGet, relay.URL+"/models", nil)
		if c.callerAuth {
			req.Header.Set("Authorization", "Bearer caller-own-key") // net/http sends it, not the userinfo
		}
		resp, err := http.DefaultClient.Do(req)
		relay.Close()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || (c.want == 502 && strings.Contains(string(b), "bad key")) {
			t.Errorf("userinfo %v, the caller's Authorization %v: %d %s; want %d", c.withUser, c.callerAuth, resp.StatusCode, b, c.want)
		}
	}
}

// TestRelayForwardedFor: the relay appends its caller's address to
// X-Forwarded-For, as httputil.ReverseProxy does (it passed the caller's
// own list on as it came, which an upstream could take for the caller).
func TestRelayForwardedFor(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("X-Forwarded-For") }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	relay := httptest.NewServer(middleware.Relay(u, middleware.NewClient(middleware.Config{})))
	defer relay.Close()
	req, _ := http.NewRequest(http.MethodGet, relay.URL+"/x", nil)
	req.Header.Set("X-Forwarded-For", "10.9.8.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if xff := <-got; xff != "10.9.8.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the caller's list and the caller", xff)
	}
}

// TestRelayBodyOverServerCap: inside NewHandler, a caller's body of no
// declared length over MaxBodyBytes is answered 413, as for any handler,
// not 502 "the upstream could not be reached": the failed read of the
// caller's body is the caller's, whatever client the relay uses.
func TestRelayBodyOverServerCap(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "{}")
		}))
		defer up.Close()
		u, _ := url.Parse(up.URL)
		for name, client := range map[string]*http.Client{"stack": middleware.NewClient(middleware.Config{}), "plain": {}} {
			srv := serve(t, h2, middleware.ServerConfig{MaxBodyBytes: 100}, middleware.Relay(u, client))
			body := io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))) // no length: chunked, or DATA frames
			resp, err := srv.Client().Post(srv.URL+"/v1/chat/completions", "application/json", body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%s client: %d %q, want 413", name, resp.StatusCode, b)
			}
		}
	})
}
