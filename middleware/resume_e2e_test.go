package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// relayServer starts model inside NewHandler with resume on, over HTTP/1.1
// or HTTP/2 (TLS), behind a cutter.
func relayServer(t *testing.T, h2 bool, model http.Handler, rc *middleware.ResumeConfig, cutAt func(int) int64) (url string, client func() *http.Transport, cut *gatewaytest.Cutter) {
	t.Helper()
	srv := httptest.NewUnstartedServer(middleware.NewHandler(model, middleware.ServerConfig{Resume: rc}))
	scheme := "http"
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
		scheme = "https"
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	target := srv.Listener.Addr().String()
	cut, err := gatewaytest.NewCutter(func(int) string { return target }, cutAt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cut.Close)
	client = func() *http.Transport {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}
	return scheme + "://" + cut.Addr(), client, cut
}

// chatData returns the data of the events of ChatStream(n), in order.
func chatData(n int) []string {
	var d []string
	for i := range n {
		d = append(d, gatewaytest.ChatChunk(i))
	}
	return append(d, "[DONE]")
}

// dataOf reads an event stream and returns its events' data.
func dataOf(t *testing.T, b []byte) []string {
	t.Helper()
	var d []string
	for ev, err := range gosse.Read(bytes.NewReader(b), nil) {
		if err != nil {
			t.Fatalf("reading the delivered events: %v", err)
		}
		d = append(d, ev.Data)
	}
	return d
}

// TestRelayResumesThroughCuts reads streams through a server with resume
// on while a TCP cutter breaks the connections between them at random
// points: this library's client resumes each cut and reads the upstream's
// events exactly once, in order.
func TestRelayResumesThroughCuts(t *testing.T) {
	const n, rounds = 120, 6
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			var mu sync.Mutex
			rng := rand.New(rand.NewPCG(seed, 1))
			conns := 0
			cutAt := func(int) int64 {
				mu.Lock()
				defer mu.Unlock()
				// Every fourth connection is not cut; the others are, past
				// the TLS handshake and the first headers and within the
				// stream's 23 KB (ids included): a round ends on the first
				// one left whole, and no seed can make the cuts too few.
				if conns++; conns%4 == 0 {
					return 0
				}
				return 5000 + rng.Int64N(15000)
			}
			url, tr, cut := relayServer(t, h2, gatewaytest.ChatStream(n), &middleware.ResumeConfig{Linger: 5 * time.Second}, cutAt)
			base := tr()
			base.DisableKeepAlives = true // a connection per request: a cut point per request
			client := middleware.NewClient(middleware.Config{
				Base:   base,
				Stream: sse.Config{Resume: sse.ResumeConfig{MaxResumes: 100, Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}},
			})
			defer client.CloseIdleConnections()
			for i := range rounds {
				req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
				req.Header.Set("Authorization", "Bearer sk-test-tenant-a")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("round %d: %v after %d bytes (%d cuts so far)", i, err, len(got), cut.Cuts())
				}
				if d := dataOf(t, got); strings.Join(d, "\n") != strings.Join(chatData(n), "\n") {
					t.Fatalf("round %d: %d events, not the upstream's %d once each in order", i, len(d), n+1)
				}
			}
			if cut.Cuts() < rounds/2 {
				t.Fatalf("the cutter cut %d times in %d rounds: the test proves little", cut.Cuts(), rounds)
			}
			t.Logf("%d connections, %d cut", cut.Conns(), cut.Cuts())
		})
	}
}

// TestRelayGoSSEReconnects reads through the same cuts with go-sse's
// Client alone, over a plain HTTP client: it reconnects with Last-Event-ID
// by itself, and the server answers from its store.
func TestRelayGoSSEReconnects(t *testing.T) {
	const n = 120
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			cutAt := func(conn int) int64 {
				if conn <= 4 {
					return int64(3000 + 1500*conn)
				}
				return 0
			}
			url, tr, cut := relayServer(t, h2, gatewaytest.ChatStream(n), &middleware.ResumeConfig{}, cutAt)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/stream", nil)
			c := &gosse.Client{HTTPClient: &http.Client{Transport: tr()}, Backoff: gosse.Backoff{InitialInterval: time.Millisecond, MaxRetries: 10}}
			conn := c.NewConnection(req)
			var got []string
			conn.SubscribeToAll(func(ev gosse.Event) {
				got = append(got, ev.Data)
				if ev.Data == "[DONE]" {
					cancel()
				}
			})
			if err := conn.Connect(); !errors.Is(err, context.Canceled) {
				t.Fatalf("Connect: %v after %d events", err, len(got))
			}
			if strings.Join(got, "\n") != strings.Join(chatData(n), "\n") || cut.Cuts() == 0 {
				t.Fatalf("%d events after %d cuts, want the upstream's %d once each in order", len(got), cut.Cuts(), n+1)
			}
		})
	}
}

// slowModel streams numbered events every tick until its context ends, and
// reports how it ended.
type slowModel struct {
	tick     time.Duration
	events   atomic.Int64
	canceled chan error
}

func (m *slowModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	t := time.NewTicker(m.tick)
	defer t.Stop()
	for i := 0; ; i++ {
		fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
		rc.Flush()
		m.events.Add(1)
		select {
		case <-r.Context().Done():
			m.canceled <- context.Cause(r.Context())
			return
		case <-t.C:
		}
	}
}

// TestRelayLinger checks that the upstream work outlives the client's
// cut, is canceled after the linger when no client comes back, and that
// the store ends the stream.
func TestRelayLinger(t *testing.T) {
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	model := &slowModel{tick: 10 * time.Millisecond, canceled: make(chan error, 1)}
	srv := httptest.NewServer(middleware.NewHandler(model, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: 300 * time.Millisecond}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	name := resp.Header.Get(sse.ResumableStreamHeader)
	if !sse.ValidStreamName(name) {
		t.Fatalf("Resumable-Stream %q", name)
	}
	io.ReadFull(resp.Body, make([]byte, 64))
	cutAt := time.Now()
	resp.Body.Close()
	srv.CloseClientConnections()
	select {
	case err := <-model.canceled:
		if d := time.Since(cutAt); d < 300*time.Millisecond {
			t.Fatalf("the work was canceled %v after the cut, before the linger", d)
		}
		if !strings.Contains(fmt.Sprint(err), "linger") {
			t.Fatalf("canceled with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the work was never canceled")
	}
	if model.events.Load() < 20 {
		t.Fatalf("the work stopped with the client: %d events", model.events.Load())
	}
	if !waitUntil(5*time.Second, func() bool { info, err := store.Info(context.Background(), name); return err == nil && info.Ended }) {
		t.Fatal("the stream never ended in the store")
	}
}

func waitUntil(limit time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
