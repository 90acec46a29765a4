package middleware_test

// Regression tests for the breaks an attacker found, each over real loopback
// servers: credentials echoed into errors and spans, a relay that passed its
// own upstream key on, credential headers carried across origins by a
// redirect, a body of unknown length past MaxBody, and a 2xx event stream
// without events that ended as a clean io.EOF.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const marker = redact.Marker

// echo is what an attacker's server answers on a path: status, type and
// body.
type echo struct {
	path   string
	status int
	ctype  string
	body   string
}

// echoServer answers each echo's path with it, over HTTP/1.1 or HTTP/2 with
// TLS.
func echoServer(t *testing.T, h2 bool, echoes []echo) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for _, e := range echoes {
		mux.HandleFunc(e.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", e.ctype)
			w.WriteHeader(e.status)
			io.WriteString(w, e.body)
		})
	}
	return serve(t, h2, middleware.ServerConfig{}, mux)
}

// failure sends req through c and returns the *streamguard.Error the call
// ends with: Check's for an error status, else the guarded body's read
// error. The body is read to its end and closed, so its span has ended.
func failure(t *testing.T, c *http.Client, req *http.Request) *streamguard.Error {
	t.Helper()
	resp, err := c.Do(req)
	if err == nil {
		err = streamguard.Check(resp)
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && rerr == nil {
			t.Fatalf("%d %q ended cleanly; want a *streamguard.Error", resp.StatusCode, b)
		}
		if err == nil {
			err = rerr
		}
	}
	var se *streamguard.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %v; want a *streamguard.Error", err)
	}
	return se
}

// leaks returns where in spans (names, attribute values, status
// descriptions, events and their attributes) any of secrets appears.
func leaks(spans []sdktrace.ReadOnlySpan, secrets ...string) []string {
	var out []string
	check := func(where, s string) {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				out = append(out, fmt.Sprintf("%s = %q", where, s))
			}
		}
	}
	for _, s := range spans {
		check("span name", s.Name())
		check("status description", s.Status().Description)
		for _, kv := range s.Attributes() {
			check(string(kv.Key), kv.Value.String())
		}
		for _, ev := range s.Events() {
			check("event name", ev.Name)
			for _, kv := range ev.Attributes {
				check("event "+ev.Name+" "+string(kv.Key), kv.Value.String())
			}
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// Break 1: a key (header or query) a server echoes back, or any key-shaped
// token in its body, must not reach the error's text.
func TestAttackEchoedCredentials(t *testing.T) {
	keyRand, param := rand.Text(), rand.Text()
	key := "sk-live-" + keyRand
	foreignRand, bearer := rand.Text(), strings.ToLower(rand.Text())
	foreign := "sk-ant-api03-" + foreignRand
	secrets := []string{keyRand, param, foreignRand, bearer} // each key's random part
	const sse, js, text = "text/event-stream", "application/json", "text/plain"
	routes := []echo{
		{"/401-openai-object", 401, js, `{"error":{"message":"Incorrect API key provided: ` + key + `","type":"invalid_request_error"}}`},
		{"/502-json-string", 502, js, `{"error":"upstream refused Authorization Bearer ` + key + `"}`},
		{"/500-text", 500, text, "bad credentials " + key + " with api_key=" + param + "\n"},
		{"/200-inband-error", 200, sse, `data: {"error":{"message":"bad key ` + key + `","code":"` + key + `"}}` + "\n\n"},
		{"/500-foreign-keys", 500, text, "keys on file: " + foreign + ", Bearer " + bearer + "\n"},
		{"/200-inband-foreign", 200, sse, `data: {"error":{"message":"try ` + foreign + ` or Bearer ` + bearer +
			`","code":"` + foreign + `"}}` + "\n\n"},
	}
	protocols(t, func(t *testing.T, h2 bool) {
		srv := echoServer(t, h2, routes)
		c := clientFor(t, srv, middleware.Config{})
		for _, e := range routes {
			t.Run(e.path[1:], func(t *testing.T) {
				req, _ := http.NewRequest("POST", srv.URL+e.path+"?api_key="+param, strings.NewReader("{}"))
				req.Header.Set("Authorization", "Bearer "+key)
				se := failure(t, c, req)
				for _, f := range []struct{ name, text string }{
					{"Error()", se.Error()}, {"Message", se.Message}, {"Code", se.Code}, {"Hint()", se.Hint()}, {"RequestID", se.RequestID},
				} {
					for _, sec := range secrets {
						if strings.Contains(f.text, sec) {
							t.Errorf("%s holds the secret %q: %q", f.name, sec, f.text)
						}
					}
				}
				if !strings.Contains(se.Error(), marker) {
					t.Errorf("Error() = %q; want the %s marker where the key was", se.Error(), marker)
				}
			})
		}
	})
}

// Break 2: a key in an error's code must not reach streamguard.error.code,
// nor any other attribute, status or event of the client span.
func TestAttackSpanCredentials(t *testing.T) {
	keyRand := rand.Text()
	key := "sk-live-" + keyRand
	routes := []echo{
		{"/401", 401, "application/json", `{"error":{"message":"Incorrect API key provided: ` + key + `","code":"` + key + `"}}`},
		{"/inband", 200, "text/event-stream", `data: {"error":{"message":"bad key ` + key + `","code":"` + key + `"}}` + "\n\n"},
	}
	protocols(t, func(t *testing.T, h2 bool) {
		srv := echoServer(t, h2, routes)
		for _, e := range routes {
			t.Run(e.path[1:], func(t *testing.T) {
				rec := tracetest.NewSpanRecorder()
				tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
				defer tp.Shutdown(context.Background())
				c := clientFor(t, srv, middleware.Config{Tracing: tracingConfig(tp)})
				req, _ := http.NewRequest("POST", srv.URL+e.path, strings.NewReader("{}"))
				req.Header.Set("Authorization", "Bearer "+key)
				failure(t, c, req)
				spans := rec.Ended()
				if len(spans) != 1 {
					t.Fatalf("%d client spans ended, want 1", len(spans))
				}
				if code := attr(spans[0], tracing.AttrErrorCode); !strings.Contains(code, marker) {
					t.Errorf("%s = %q; want the key replaced by %s", tracing.AttrErrorCode, code, marker)
				}
				for _, l := range leaks(spans, keyRand) {
					t.Errorf("the span holds the key: %s", l)
				}
			})
		}
	})
}

// Break 3: a relay whose upstream refuses the relay's own key answers its
// caller 502, source platform, reason unauthorized, and never the key.
func TestAttackRelayOwnCredentials(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		for _, status := range []int{401, 403} {
			t.Run(strconv.Itoa(status), func(t *testing.T) {
				keyRand := rand.Text()
				key := "sk-live-" + keyRand
				var seen atomic.Value
				up := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
					seen.Store(got)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s","code":"%s"}}`, got, got)
				}))
				upstream := clientFor(t, up, middleware.Config{ErrorStatus: true})
				rec := tracetest.NewSpanRecorder()
				tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
				defer tp.Shutdown(context.Background())
				front := serve(t, h2, middleware.ServerConfig{Tracing: tracingConfig(tp)}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					req, _ := http.NewRequestWithContext(r.Context(), "POST", up.URL+"/v1/chat/completions", strings.NewReader("{}"))
					req.Header.Set("Authorization", "Bearer "+key)
					resp, err := upstream.Do(req)
					if err == nil {
						resp.Body.Close()
						err = fmt.Errorf("ErrorStatus returned the upstream's %d as a response", resp.StatusCode)
					}
					middleware.WriteError(w, r, err)
				}))

				resp, b, err := rawGet(t, front, "/")
				if seen.Load() != key {
					t.Fatalf("the upstream saw %q, not the relay's key", seen.Load())
				}
				if err != nil || resp.StatusCode != 502 {
					t.Errorf("the relay answered %d %q (%v); want 502", resp.StatusCode, b, err)
				}
				if msg := jsonError(t, b); msg == "" || strings.Contains(string(b), keyRand) {
					t.Errorf("the relay's body %q: want a message without the key", b)
				}
				front.Close() // the server span ends when the handler returns
				spans := rec.Ended()
				if len(spans) != 1 {
					t.Fatalf("%d server spans, want 1", len(spans))
				}
				if src, reason := attr(spans[0], tracing.AttrErrorSource), attr(spans[0], tracing.AttrErrorReason); src != "platform" || reason != "unauthorized" {
					t.Errorf("the relay's failure: source %q reason %q; want platform unauthorized", src, reason)
				}
				for _, l := range leaks(spans, keyRand) {
					t.Errorf("the relay's span holds its key: %s", l)
				}
			})
		}
	})
}

// Break 4: a redirect to any other origin (port, host name, scheme) drops
// every credential header, the user's own names included; a same-origin
// redirect keeps them; other headers always survive.
func TestAttackRedirectCrossOrigin(t *testing.T) {
	landed := make(chan http.Header, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			code, _ := strconv.Atoi(r.URL.Query().Get("code"))
			http.Redirect(w, r, to, code)
			return
		}
		landed <- r.Header.Clone()
	})
	plain := serve(t, false, middleware.ServerConfig{}, h)
	other := serve(t, false, middleware.ServerConfig{}, h)
	secure := serve(t, true, middleware.ServerConfig{}, h) // HTTP/2 with TLS
	byName := strings.Replace(plain.URL, "127.0.0.1", "localhost", 1)
	if byName == plain.URL {
		t.Fatalf("server URL %s is not on 127.0.0.1", plain.URL)
	}
	creds := map[string]string{
		"Authorization":       "Bearer sk-live-" + rand.Text(),
		"Cookie":              "session=" + rand.Text(),
		"Proxy-Authorization": "Basic " + rand.Text(),
		"Api-Key":             rand.Text(),
		"X-Api-Key":           rand.Text(),
		"X-Auth-Token":        rand.Text(),
		"X-Tenant-Key":        rand.Text(), // a name only CredentialHeaders makes a credential
	}
	c := clientFor(t, secure, middleware.Config{CredentialHeaders: []string{"X-Tenant-Key"}})
	cases := []struct {
		name     string
		from, to string
		keep     bool
	}{
		{"same origin", plain.URL, plain.URL, true},
		{"same origin over HTTP/2", secure.URL, secure.URL, true},
		{"same host, another port", plain.URL, other.URL, false},
		{"another host name, same port", plain.URL, byName, false},
		{"http to https", plain.URL, secure.URL, false},
		{"https to http", secure.URL, plain.URL, false},
	}
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%d %s", code, tc.name), func(t *testing.T) {
				u := fmt.Sprintf("%s/start?code=%d&to=%s", tc.from, code, url.QueryEscape(tc.to+"/landed"))
				req, _ := http.NewRequest("POST", u, strings.NewReader("{}"))
				for k, v := range creds {
					req.Header.Set(k, v)
				}
				req.Header.Set("X-Request-Tag", "tag-1")
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				var got http.Header
				select {
				case got = <-landed:
				default:
					t.Fatalf("the redirect was not followed: %d at %s", resp.StatusCode, resp.Request.URL)
				}
				if got.Get("X-Request-Tag") != "tag-1" {
					t.Errorf("X-Request-Tag = %q at the target; want it kept", got.Get("X-Request-Tag"))
				}
				if ref := got.Get("Referer"); !tc.keep && ref != "" {
					t.Errorf("Referer %q reached %s: the URL before, its query's keys included", ref, tc.to)
				}
				for k, v := range creds {
					switch at := got.Get(k); {
					case tc.keep && at != v:
						t.Errorf("%s = %q after a same-origin redirect; want %q", k, at, v)
					case !tc.keep && at != "":
						t.Errorf("%s reached %s: %q", k, tc.to, at)
					}
				}
			})
		}
	}
}

// Break 5: a body of unknown length (ContentLength 0 with a body, as
// http.NewRequest gives for a pipe, or -1) is held to MaxBody while it is
// sent: payload_too_large, and the server gets no more than the cap and the
// one byte that shows it is over.
func TestAttackMaxBodyUnknownLength(t *testing.T) {
	const limit = 1 << 20
	protocols(t, func(t *testing.T, h2 bool) {
		for _, length := range []int64{0, -1} {
			t.Run(fmt.Sprintf("ContentLength %d", length), func(t *testing.T) {
				var received atomic.Int64
				srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n, _ := io.Copy(io.Discard, r.Body)
					received.Add(n)
				}))
				c := clientFor(t, srv, middleware.Config{MaxBody: limit})
				pr, pw := io.Pipe()
				wrote := make(chan struct{})
				go func() {
					defer close(wrote)
					pw.Write(make([]byte, 5<<20))
					pw.Close()
				}()
				req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", pr)
				if req.ContentLength != 0 {
					t.Fatalf("NewRequest gave ContentLength %d for a pipe", req.ContentLength)
				}
				req.ContentLength = length
				resp, err := c.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				pr.CloseWithError(errors.New("the test is over")) // frees the writer, whatever happened
				<-wrote
				srv.Close() // waits for the handler's count
				var se *streamguard.Error
				if !errors.As(err, &se) || se.Reason != streamguard.ReasonPayloadTooLarge {
					t.Errorf("err = %v; want payload_too_large", err)
				}
				if n := received.Load(); n > limit+1 {
					t.Errorf("the server received %d bytes; the cap is %d", n, limit)
				}
			})
		}
	})
}

// Break 8: a 2xx event stream that ends without a single event (an HTML
// page, a JSON error, text, comments, nothing) fails with no_events, its
// Code naming what arrived, never with a clean io.EOF.
func TestAttackStreamWithoutEvents(t *testing.T) {
	cases := []struct{ code, body string }{
		{"html", "<html>\n<body>\n\n<h1>Service Unavailable</h1>\n\n</body>\n</html>\n\n"},
		{"json", "{\"error\":\"overloaded\"}\n\n"},
		{"text", "upstream connect error or disconnect/reset before headers\n\n"},
		{"comments", ": ping\n\n: ping\n\n"},
		{"empty", ""},
	}
	protocols(t, func(t *testing.T, h2 bool) {
		mux := http.NewServeMux()
		for _, tc := range cases {
			mux.HandleFunc("/"+tc.code, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(200)
				http.NewResponseController(w).Flush() // a stream's headers go first
				io.WriteString(w, tc.body)
			})
		}
		srv := serve(t, h2, middleware.ServerConfig{}, mux)
		c := clientFor(t, srv, middleware.Config{})
		for _, tc := range cases {
			t.Run(tc.code, func(t *testing.T) {
				resp, err := c.Get(srv.URL + "/" + tc.code)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				var se *streamguard.Error
				if !errors.As(err, &se) || se.Reason != streamguard.ReasonNoEvents || se.Code != tc.code {
					t.Fatalf("%d, read %q, then %v; want no_events with Code %q", resp.StatusCode, b, err, tc.code)
				}
			})
		}
	})
}
