package sse_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/sse"
)

// fastResume resumes after 1 ms, so that tests do not wait for the default
// backoff.
func fastResume() sse.Config {
	return sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}}
}

// idStream is the whole of IDStream(n), uncut.
func idStream(n int) string {
	var b strings.Builder
	for i := 1; i <= n+1; i++ {
		b.WriteString(gatewaytest.IDStreamEvent(i, n))
	}
	return b.String()
}

// servers runs f over HTTP/1.1 and HTTP/2 loopback gateways in front of
// model.
func servers(t *testing.T, model func() http.Handler, f func(t *testing.T, srv *gatewaytest.Server)) {
	for _, h2 := range []bool{false, true} {
		name, start := "HTTP/1.1", gatewaytest.NewServer
		if h2 {
			name, start = "HTTP/2", gatewaytest.NewTLSServer
		}
		t.Run(name, func(t *testing.T) {
			srv := start(model())
			defer srv.Close()
			f(t, srv)
		})
	}
}

// readAll reads a response body to its end and returns the stream's error
// as a *streamguard.Error (nil at io.EOF).
func readAll(t *testing.T, resp *http.Response) ([]byte, *streamguard.Error) {
	t.Helper()
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		return got, nil
	}
	var se *streamguard.Error
	if !errors.As(err, &se) {
		t.Fatalf("Read error %v (%T) is not a *streamguard.Error", err, err)
	}
	return got, se
}

func TestResumeSSEIDs(t *testing.T) {
	const n = 30
	servers(t, func() http.Handler { return gatewaytest.IDStream(n) }, func(t *testing.T, srv *gatewaytest.Server) {
		client := guardedClient(srv, fastResume())
		// Cut mid-event, reset, end early and stall: each is resumed.
		srv.Script(gatewaytest.Cut(3), gatewaytest.Reset(4), gatewaytest.EndEarly(2), gatewaytest.Pass())
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer sk-test-0123456789")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, se := readAll(t, resp)
		if se != nil || string(got) != idStream(n) {
			t.Fatalf("error %v; got %d bytes, want the uncut stream's %d", se, len(got), len(idStream(n)))
		}
		recs := srv.Gateway.Records()
		wantIDs := []string{"", "3", "7", "9"}
		if len(recs) != len(wantIDs) {
			t.Fatalf("%d requests, want %d", len(recs), len(wantIDs))
		}
		for i, rec := range recs {
			if id := rec.Header.Get("Last-Event-ID"); id != wantIDs[i] || rec.Method != http.MethodGet {
				t.Errorf("request %d: %s Last-Event-ID %q, want GET %q", i, rec.Method, id, wantIDs[i])
			}
			if rec.Header.Get("Authorization") != "Bearer sk-test-0123456789" {
				t.Errorf("request %d lost the credentials", i)
			}
		}
	})
}

func TestResumeStalled(t *testing.T) {
	const n = 10
	servers(t, func() http.Handler { return gatewaytest.IDStream(n) }, func(t *testing.T, srv *gatewaytest.Server) {
		cfg := fastResume()
		cfg.IdleTimeout = 100 * time.Millisecond
		client := guardedClient(srv, cfg)
		srv.Script(gatewaytest.Stall(4), gatewaytest.Pass())
		resp, err := client.Get(srv.URL + "/v1/stream")
		if err != nil {
			t.Fatal(err)
		}
		got, se := readAll(t, resp)
		if se != nil || string(got) != idStream(n) {
			t.Fatalf("error %v; got %q", se, got)
		}
		st := resp.Body.(streamstat.Reporter).StreamStats()
		if len(st.Resumes) != 1 || st.Resumes[0].Cause != "stalled" || st.Resumes[0].Protocol != "sse-id" ||
			st.Resumes[0].LastEventID != "4" || st.Resumes[0].StatusCode != 200 || st.Resumes[0].Err != "" {
			t.Fatalf("resumes %+v", st.Resumes)
		}
	})
}

// resumableStream is the whole of ResumableStream(n) named name, uncut.
func resumableStream(name string, n int) string {
	var b strings.Builder
	for i := 1; i <= n+1; i++ {
		ev := gatewaytest.IDStreamEvent(i, n)
		b.WriteString("id: " + name + "." + ev[len("id: "):])
	}
	return b.String()
}

func TestResumeResumableStream(t *testing.T) {
	const n = 20
	servers(t, func() http.Handler { return gatewaytest.ResumableStream(n) }, func(t *testing.T, srv *gatewaytest.Server) {
		client := guardedClient(srv, fastResume())
		srv.Script(gatewaytest.Cut(2), gatewaytest.Reset(5), gatewaytest.Pass())
		body := `{"model":"m","stream":true}`
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-test-0123456789")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		name := resp.Header.Get(sse.ResumableStreamHeader)
		got, se := readAll(t, resp)
		if se != nil || string(got) != resumableStream(name, n) {
			t.Fatalf("error %v; got %q", se, got)
		}
		recs := srv.Gateway.Records()
		want := []string{"", name + ".2", name + ".7"}
		if len(recs) != len(want) {
			t.Fatalf("%d requests, want %d", len(recs), len(want))
		}
		for i, rec := range recs {
			if rec.Header.Get("Last-Event-ID") != want[i] || rec.Method != http.MethodPost || string(rec.Body) != body {
				t.Errorf("request %d: %s %q Last-Event-ID %q, want POST %q %q", i, rec.Method, rec.Body, rec.Header.Get("Last-Event-ID"), body, want[i])
			}
		}
	})
}

// responsesStream is the whole of a BackgroundResponses(n) stream, uncut.
func responsesStream(id string, background bool, n int) string {
	var b strings.Builder
	for i := 0; i <= n+1; i++ {
		b.WriteString(gatewaytest.ResponsesEvent(id, background, i, n))
	}
	return b.String()
}

// responseID finds the response id in a Responses stream.
func responseID(stream []byte) string {
	_, rest, _ := strings.Cut(string(stream), `"response":{"id":"`)
	id, _, _ := strings.Cut(rest, `"`)
	return id
}

func postResponses(t *testing.T, client *http.Client, url string, background bool) *http.Response {
	t.Helper()
	body := `{"model":"m","input":"hi","stream":true}`
	if background {
		body = `{"model":"m","input":"hi","stream":true,"background":true}`
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/responses", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-test-0123456789")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestResumeResponsesBackground(t *testing.T) {
	const n = 20
	servers(t, func() http.Handler { return gatewaytest.BackgroundResponses(n) }, func(t *testing.T, srv *gatewaytest.Server) {
		client := guardedClient(srv, fastResume())
		t.Run("background", func(t *testing.T) {
			srv.Script(gatewaytest.Cut(3), gatewaytest.EndEarly(2), gatewaytest.Pass())
			got, se := readAll(t, postResponses(t, client, srv.URL, true))
			id := responseID(got)
			if se != nil || string(got) != responsesStream(id, true, n) {
				t.Fatalf("error %v; got %q", se, got)
			}
			recs := srv.Gateway.Records()
			recs = recs[len(recs)-3:]
			for i, rec := range recs[1:] {
				if rec.Method != http.MethodGet || rec.Path != "/v1/responses/"+id || rec.Header.Get("Authorization") != "Bearer sk-test-0123456789" ||
					rec.Header.Get("Content-Type") != "" {
					t.Errorf("resume %d: %s %s %v", i+1, rec.Method, rec.Path, rec.Header)
				}
			}
		})
		t.Run("not background", func(t *testing.T) {
			before := srv.Gateway.Requests()
			srv.Script(gatewaytest.Cut(3))
			got, se := readAll(t, postResponses(t, client, srv.URL, false))
			if se == nil || se.Reason != streamguard.ReasonTruncated || se.Resumes != 0 || srv.Gateway.Requests() != before+1 {
				t.Fatalf("error %v after %d requests; got %q", se, srv.Gateway.Requests()-before, got)
			}
		})
	})
}

// lastEventID rewrites the Last-Event-ID of the requests to h: a server
// that ignores it (restarts) or skips ahead.
func lastEventID(h http.Handler, rewrite func(string) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			if id = rewrite(id); id == "" {
				r.Header.Del("Last-Event-ID")
			} else {
				r.Header.Set("Last-Event-ID", id)
			}
		}
		h.ServeHTTP(w, r)
	})
}

func TestResumeMismatch(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name    string
		rewrite func(string) string
	}{
		{"restarted", func(string) string { return "" }},
		{"skipped ahead", func(id string) string { return id + "1" }}, // 3 -> 31: past the end, so use a smaller jump below
		{"repeated", func(id string) string { return string(rune(id[0] - 1)) }},
	} {
		if tc.name == "skipped ahead" {
			tc.rewrite = func(id string) string { return string(rune(id[0] + 1)) }
		}
		t.Run(tc.name, func(t *testing.T) {
			model := func() http.Handler { return lastEventID(gatewaytest.IDStream(n), tc.rewrite) }
			servers(t, model, func(t *testing.T, srv *gatewaytest.Server) {
				client := guardedClient(srv, fastResume())
				srv.Script(gatewaytest.Cut(3), gatewaytest.Pass())
				resp, err := client.Get(srv.URL + "/v1/stream")
				if err != nil {
					t.Fatal(err)
				}
				got, se := readAll(t, resp)
				if want := idStream(n)[:len(gatewaytest.IDStreamEvent(1, n))*3]; string(got) != want {
					t.Errorf("delivered %q, want exactly the first 3 events %q", got, want)
				}
				if se == nil || se.Reason != streamguard.ReasonResumeMismatch || se.Resumes != 1 || se.Events != 3 || se.LastEventID != "3" {
					t.Fatalf("verdict %v (%+v)", se, se)
				}
				var orig *streamguard.Error
				if !errors.Is(se, sse.ErrResumeMismatch) || !errors.As(se.Unwrap(), &orig) || orig.Reason != streamguard.ReasonTruncated {
					t.Fatalf("the cause %v does not keep the original truncation", se.Err)
				}
			})
		})
	}
}

func TestResumeRequestFails(t *testing.T) {
	const n = 10
	servers(t, func() http.Handler { return gatewaytest.IDStream(n) }, func(t *testing.T, srv *gatewaytest.Server) {
		client := guardedClient(srv, fastResume())
		srv.Script(gatewaytest.Cut(3), gatewaytest.Status(http.StatusGone, `{"error":"stream sk-test-0123456789 expired"}`))
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer sk-test-0123456789")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, se := readAll(t, resp)
		if want := idStream(n)[:len(gatewaytest.IDStreamEvent(1, n))*3]; string(got) != want {
			t.Errorf("delivered %q, want the first 3 events", got)
		}
		if se == nil || se.Reason != streamguard.ReasonTruncated || se.Resumes != 1 || !strings.Contains(se.Message, "resume 1 (sse-id) failed: 410") {
			t.Fatalf("verdict %v", se)
		}
		if strings.Contains(se.Error(), "sk-test-0123456789") {
			t.Fatalf("the error echoes the key: %v", se)
		}
		var resumeErr *streamguard.Error
		if errs, ok := se.Err.(interface{ Unwrap() []error }); !ok || len(errs.Unwrap()) != 2 || !errors.As(errs.Unwrap()[1], &resumeErr) || resumeErr.StatusCode != http.StatusGone {
			t.Fatalf("the resume's error is not reachable in %v", se.Err)
		}
		if !strings.Contains(se.Hint(), "1 resume did not complete the stream") {
			t.Fatalf("hint %q", se.Hint())
		}
	})
}

func TestResumeLimit(t *testing.T) {
	const n = 20
	servers(t, func() http.Handler { return gatewaytest.IDStream(n) }, func(t *testing.T, srv *gatewaytest.Server) {
		client := guardedClient(srv, fastResume())
		srv.Gateway.Choose = func(int64, *http.Request) gatewaytest.Fault { return gatewaytest.Cut(1) }
		resp, err := client.Get(srv.URL + "/v1/stream")
		if err != nil {
			t.Fatal(err)
		}
		got, se := readAll(t, resp)
		max := sse.DefaultMaxResumes
		if want := idStream(n)[:len(gatewaytest.IDStreamEvent(1, n))*(max+1)]; string(got) != want {
			t.Errorf("delivered %q, want the first %d events once each", got, max+1)
		}
		if se == nil || se.Reason != streamguard.ReasonTruncated || se.Resumes != max || srv.Gateway.Requests() != int64(max+1) {
			t.Fatalf("verdict %v, resumes %d, %d requests", se, se.Resumes, srv.Gateway.Requests())
		}
		st := resp.Body.(streamstat.Reporter).StreamStats()
		if len(st.Resumes) != max {
			t.Fatalf("%d resume records", len(st.Resumes))
		}
	})
}

func TestResumeOff(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.IDStream(10))
	defer srv.Close()
	cfg := fastResume()
	cfg.Resume.Off = true
	srv.Script(gatewaytest.Cut(3))
	resp, err := guardedClient(srv, cfg).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, se := readAll(t, resp); se == nil || se.Reason != streamguard.ReasonTruncated || srv.Gateway.Requests() != 1 {
		t.Fatalf("verdict %v after %d requests", se, srv.Gateway.Requests())
	}
}

func TestResumeNoBudget(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.IDStream(10))
	defer srv.Close()
	cfg := sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }}}
	srv.Script(gatewaytest.Cut(3))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := guardedClient(srv, cfg).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, se := readAll(t, resp)
	if se == nil || se.Reason != streamguard.ReasonTruncated || se.Resumes != 0 || !strings.Contains(se.Message, "no resume was possible") || ctx.Err() != nil {
		t.Fatalf("verdict %v", se)
	}
}

func TestResumeCloseDuringWait(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.IDStream(10))
	defer srv.Close()
	// The wait before the resume is 10 s (MaxWait caps the hour); Close
	// ends it.
	cfg := sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }}}
	srv.Script(gatewaytest.Cut(3))
	resp, err := guardedClient(srv, cfg).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := len(gatewaytest.IDStreamEvent(1, 10)) * 3
	if _, err := io.ReadFull(resp.Body, make([]byte, want)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 64))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the Read reach the wait (it is canceled either way)
	resp.Body.Close()
	select {
	case err := <-done:
		var se *streamguard.Error
		if !errors.As(err, &se) || se.Reason != streamguard.ReasonCanceled {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the wait before the resume")
	}
	if srv.Gateway.Requests() != 1 {
		t.Fatalf("%d requests: a resume was sent after Close", srv.Gateway.Requests())
	}
}

func TestResumeNeedsReplayableBody(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ResumableStream(10))
	defer srv.Close()
	srv.Script(gatewaytest.Cut(3))
	body := io.NopCloser(strings.NewReader(`{"stream":true}`)) // no GetBody
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	resp, err := guardedClient(srv, fastResume()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, se := readAll(t, resp); se == nil || se.Reason != streamguard.ReasonTruncated || srv.Gateway.Requests() != 1 {
		t.Fatalf("verdict %v after %d requests", se, srv.Gateway.Requests())
	}
}

func TestResumeRetryField(t *testing.T) {
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "retry: 5\n\n")
		gatewaytest.IDStream(10).ServeHTTP(w, r)
	})
	srv := gatewaytest.NewServer(model)
	defer srv.Close()
	backoffs := 0
	cfg := sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff { backoffs++; return backoff.NewConstantBackOff(time.Hour) }}}
	srv.Script(gatewaytest.Cut(3), gatewaytest.Pass())
	resp, err := guardedClient(srv, cfg).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, se := readAll(t, resp)
	if se != nil || !strings.HasSuffix(string(got), "data: [DONE]\n\n") || backoffs != 0 {
		t.Fatalf("error %v, backoff made %d times; got %q", se, backoffs, got)
	}
}

func TestGuardResumesOnlyWithTransport(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.IDStream(10))
	defer srv.Close()
	for _, withTransport := range []bool{false, true} {
		srv.Script(gatewaytest.Cut(3), gatewaytest.Pass())
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		cfg := fastResume()
		if withTransport {
			cfg.Resume.Transport = srv.Client().Transport
		}
		sse.Guard(resp, cfg)
		got, se := readAll(t, resp)
		if withTransport != (se == nil) || (se == nil && string(got) != idStream(10)) {
			t.Fatalf("transport %v: verdict %v", withTransport, se)
		}
		srv.Script() // drop what is left
	}
}

// TestResumeDifferential cuts each resumable stream at random points, with
// every kind of cut, again and again, and compares what the reader gets
// with the uncut stream, byte for byte.
func TestResumeDifferential(t *testing.T) {
	const n, rounds = 40, 15
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("RESUME_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	protocols := []struct {
		name  string
		model func() http.Handler
		read  func(t *testing.T, c *http.Client, url string) (got []byte, want string, se *streamguard.Error)
	}{
		{"sse-id", func() http.Handler { return gatewaytest.IDStream(n) }, func(t *testing.T, c *http.Client, url string) ([]byte, string, *streamguard.Error) {
			resp, err := c.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			got, se := readAll(t, resp)
			return got, idStream(n), se
		}},
		{"resumable-stream", func() http.Handler { return gatewaytest.ResumableStream(n) }, func(t *testing.T, c *http.Client, url string) ([]byte, string, *streamguard.Error) {
			resp, err := c.Post(url, "application/json", bytes.NewReader([]byte(`{}`)))
			if err != nil {
				t.Fatal(err)
			}
			name := resp.Header.Get(sse.ResumableStreamHeader)
			got, se := readAll(t, resp)
			return got, resumableStream(name, n), se
		}},
		{"responses", func() http.Handler { return gatewaytest.BackgroundResponses(n) }, func(t *testing.T, c *http.Client, url string) ([]byte, string, *streamguard.Error) {
			got, se := readAll(t, postResponses(t, c, url, true))
			return got, responsesStream(responseID(got), true, n), se
		}},
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			servers(t, p.model, func(t *testing.T, srv *gatewaytest.Server) {
				cfg := fastResume()
				cfg.Resume.MaxResumes = 100
				cfg.IdleTimeout, cfg.FirstByteTimeout = 100*time.Millisecond, -1
				client := guardedClient(srv, cfg)
				srv.Gateway.Choose = func(_ int64, r *http.Request) gatewaytest.Fault {
					kind, k := rng.IntN(5), rng.IntN(n/2)
					// No event delivered yet: the first request, or a
					// resume of a Resumable-Stream from {stream}.0.
					lei := r.Header.Get("Last-Event-ID")
					first := (lei == "" || strings.HasSuffix(lei, ".0")) && r.URL.Query().Get("starting_after") == ""
					if k == 0 && first && (p.name == "responses" || kind == 2) {
						// A Responses stream that broke before its
						// first event has no response id to resume by
						// (a GET with ids is sent again, as an
						// EventSource does; a Resumable-Stream from
						// {stream}.0), and one that ended cleanly
						// without any event, first response or resume,
						// is no_events.
						k = 1
					}
					switch kind {
					case 0:
						return gatewaytest.Cut(k)
					case 1:
						return gatewaytest.Reset(k)
					case 2:
						return gatewaytest.EndEarly(k)
					case 3:
						return gatewaytest.Stall(k)
					}
					return gatewaytest.Pass()
				}
				for i := 0; i < rounds; i++ {
					got, want, se := p.read(t, client, srv.URL+"/v1/responses")
					if se != nil || string(got) != want {
						t.Fatalf("round %d: error %v\ngot  %q\nwant %q", i, se, got, want)
					}
				}
			})
		})
	}
}

// failFirst fails the first resume request (one with Last-Event-ID) with a
// connection error, as a network that breaks again would.
type failFirst struct {
	base   http.RoundTripper
	failed bool
}

func (f *failFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Last-Event-ID") != "" && !f.failed {
		f.failed = true
		return nil, errors.New("dial tcp: connection refused")
	}
	return f.base.RoundTrip(r)
}

func TestResumeWithoutResponseIsTriedAgain(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.IDStream(10))
	defer srv.Close()
	cfg := fastResume()
	cfg.Resume.Transport = &failFirst{base: srv.Client().Transport}
	srv.Script(gatewaytest.Cut(3), gatewaytest.Pass())
	resp, err := guardedClient(srv, cfg).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, se := readAll(t, resp)
	if se != nil || string(got) != idStream(10) {
		t.Fatalf("error %v; got %q", se, got)
	}
	st := resp.Body.(streamstat.Reporter).StreamStats()
	if len(st.Resumes) != 2 || st.Resumes[0].Err == "" || st.Resumes[1].Err != "" {
		t.Fatalf("resumes %+v", st.Resumes)
	}
}

// TestResumeHeadersBounded: a resume whose server never answers gives up
// after the stream's idle timeout, and is tried again while resumes remain.
func TestResumeHeadersBounded(t *testing.T) {
	var n atomic.Int64
	hang := make(chan struct{})
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			<-hang // the resumes: never an answer
			return
		}
		gatewaytest.IDStream(10).ServeHTTP(w, r)
	})
	srv := gatewaytest.NewServer(model)
	defer srv.Close()
	defer close(hang) // before Close, which waits for the handlers
	cfg := fastResume()
	cfg.IdleTimeout, cfg.Resume.MaxResumes = 100*time.Millisecond, 2
	srv.Script(gatewaytest.Cut(3))
	resp, err := guardedClient(srv, cfg).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, se := readAll(t, resp)
	if se == nil || se.Reason != streamguard.ReasonTruncated || se.Resumes != 2 || !strings.Contains(se.Message, "no response to the resume") {
		t.Fatalf("verdict %v", se)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the resumes took %v", d)
	}
}

// TestResumeBeforeFirstEvent: a Resumable-Stream stream cut before its
// first event resumes from "{stream}.0", without a new call of the work.
func TestResumeBeforeFirstEvent(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ResumableStream(5))
	defer srv.Close()
	srv.Script(gatewaytest.Cut(0), gatewaytest.Pass())
	resp, err := guardedClient(srv, fastResume()).Post(srv.URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	name := resp.Header.Get(sse.ResumableStreamHeader)
	got, se := readAll(t, resp)
	if se != nil || string(got) != resumableStream(name, 5) {
		t.Fatalf("error %v; got %q", se, got)
	}
	if recs := srv.Gateway.Records(); len(recs) != 2 || recs[1].Header.Get("Last-Event-ID") != name+".0" {
		t.Fatalf("%d requests; the resume's Last-Event-ID %q", len(recs), recs[len(recs)-1].Header.Get("Last-Event-ID"))
	}
}

// TestResumeNotAfterFailureEvent: a stream whose server ended it with a
// failure event (here a truncated one, with the next id, as a resumable
// stream's server writes it) is not resumed: the server gave up on it,
// and the verdict is its failure.
func TestResumeNotAfterFailureEvent(t *testing.T) {
	const name = "abcdefghijklmnopqrstuvwxyz"
	failure := sse.AppendFailureFrame(nil, &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTruncated,
		StatusCode: http.StatusBadGateway, Message: "the stream's writer went down"})
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(sse.ResumableStreamHeader, name)
		io.WriteString(w, "data: "+gatewaytest.ChatChunk(0)+"\nid: "+name+".1\n\n")
		w.Write(failure[:len(failure)-1])
		io.WriteString(w, "id: "+name+".2\n\n")
	})
	servers(t, func() http.Handler { return model }, func(t *testing.T, srv *gatewaytest.Server) {
		resp, err := guardedClient(srv, fastResume()).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, se := readAll(t, resp)
		if se == nil || se.Source != streamguard.SourcePlatform || se.Reason != streamguard.ReasonTruncated || se.Resumes != 0 {
			t.Fatalf("verdict %v, want the failure event's, no resume", se)
		}
		if n := srv.Gateway.Requests(); n != 1 {
			t.Fatalf("%d requests: the stream was resumed after its failure event", n)
		}
	})
}

// TestResumeEndsWithItsFailure: a resume that the server fails before its
// first event (its budget, say) answers with an error event without an id,
// as the server side writes it: the stream ends with that failure, not
// with resume_mismatch, and its last event id stays the last event's.
func TestResumeEndsWithItsFailure(t *testing.T) {
	const name = "abcdefghijklmnopqrstuvwxyz"
	failure := sse.AppendFailureFrame(nil, &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout,
		StatusCode: http.StatusGatewayTimeout, Message: "the resume's budget of 1s ran out"})
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(sse.ResumableStreamHeader, name)
		if r.Header.Get(sse.LastEventIDHeader) != "" {
			w.Write(failure)
			return
		}
		for i := 1; i <= 5; i++ {
			io.WriteString(w, "data: "+gatewaytest.ChatChunk(i-1)+"\nid: "+name+"."+strconv.Itoa(i)+"\n\n")
		}
	})
	servers(t, func() http.Handler { return model }, func(t *testing.T, srv *gatewaytest.Server) {
		srv.Script(gatewaytest.Cut(3), gatewaytest.Pass())
		resp, err := guardedClient(srv, fastResume()).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, se := readAll(t, resp)
		if se == nil || se.Source != streamguard.SourcePlatform || se.Reason != streamguard.ReasonTimeout || se.Resumes != 1 || se.LastEventID != name+".3" {
			t.Fatalf("verdict %v (%+v), want the resume's timeout after event 3", se, se)
		}
		if n := strings.Count(string(got), "\nid: "+name+"."); n != 3 || !bytes.HasSuffix(got, failure) {
			t.Fatalf("delivered %d events with ids, ending %q; want 3, then the failure event", n, got[max(0, len(got)-80):])
		}
		if recs := srv.Gateway.Records(); len(recs) != 2 || recs[1].Header.Get(sse.LastEventIDHeader) != name+".3" {
			t.Fatalf("%d requests", len(recs))
		}
	})
}
