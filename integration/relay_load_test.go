package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/resp"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"
)

// TestRelayLoad runs 200 concurrent streams of 1,000 events (40 of 200
// under -short) through a relay with resumable streams, a TCP cutter
// between the clients and the relay cutting half the connections at random
// points: with the memory store and with the Redis store, every stream
// completes with no event lost, duplicated or reordered.
func TestRelayLoad(t *testing.T) {
	streams, events := 200, 1000
	if testing.Short() {
		streams, events = 40, 200
	}
	stores := map[string]func(t *testing.T) resume.Store{
		"memory": func(*testing.T) resume.Store { return resume.NewMemoryStore(resume.MemoryConfig{}) },
		"redis":  redisLoadStore,
	}
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			leaks := goleak.IgnoreCurrent()
			relayLoad(t, stores[name](t), streams, events)
			goleak.VerifyNone(t, leaks)
		})
	}
}

func redisLoadStore(t *testing.T) resume.Store {
	addr := resumetest.RedisAddr(t)
	c, err := resp.New("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	s := resume.NewRedisStore(c, resume.RedisConfig{Prefix: fmt.Sprintf("sgload-%d:", time.Now().UnixNano()), TTL: time.Minute})
	t.Cleanup(func() { s.Close(); c.Close() })
	return s
}

func relayLoad(t *testing.T, store resume.Store, streams, events int) {
	up := gatewaytest.NewServer(gatewaytest.ChatStream(events))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	relayClient := middleware.NewClient(middleware.Config{Base: up.Client().Transport})
	defer relayClient.CloseIdleConnections()
	front := httptest.NewServer(middleware.NewHandler(middleware.Relay(upURL, relayClient),
		middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: 10 * time.Second}}))
	defer front.Close()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(loadSeed, 3))
	target := front.Listener.Addr().String()
	cut, err := gatewaytest.NewCutter(func(int) string { return target }, func(int) int64 {
		mu.Lock()
		defer mu.Unlock()
		if rng.IntN(2) == 0 {
			return 0 // this connection is not cut
		}
		return 1000 + rng.Int64N(int64(events)*190)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()

	base := middleware.DefaultBase(0)
	base.DisableKeepAlives = true // a connection, and a chance of a cut, per request
	defer base.CloseIdleConnections()
	client := middleware.NewClient(middleware.Config{Base: base,
		Stream: sse.Config{Resume: sse.ResumeConfig{MaxResumes: 100, Backoff: fastBackoff}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*loadBound)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	var lost, dup, reordered, failed atomic.Int64
	for i := range streams {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+cut.Addr()+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
			req.Header.Set("Authorization", fmt.Sprintf("Bearer sk-tenant-%d", i))
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				failed.Add(1)
				return
			}
			defer resp.Body.Close()
			l, d, o, err := auditChat(resp.Body, events)
			lost.Add(int64(l))
			dup.Add(int64(d))
			reordered.Add(int64(o))
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("relay load: %d streams x %d events in %v through %d cut connections: %d failed; %d lost, %d duplicated, %d reordered",
		streams, events, elapsed.Round(time.Millisecond), cut.Cuts(), failed.Load(), lost.Load(), dup.Load(), reordered.Load())
	if lost.Load()+dup.Load()+reordered.Load() != 0 || cut.Cuts() == 0 {
		t.Errorf("%d lost, %d duplicated, %d reordered, %d cuts", lost.Load(), dup.Load(), reordered.Load(), cut.Cuts())
	}
}

// auditChat reads a chat stream and counts the chunks of 0..n-1 missing,
// delivered twice or out of order; it fails without [DONE] at the end.
func auditChat(body io.Reader, n int) (lost, dup, reordered int, err error) {
	seen := make([]int, n)
	last, done := -1, false
	for ev, rerr := range gosse.Read(body, nil) {
		if rerr != nil {
			return 0, 0, 0, rerr
		}
		if ev.Data == "[DONE]" {
			done = true
			continue
		}
		i := chunkIndex(ev.Data)
		if i < 0 || i >= n {
			return 0, 0, 0, fmt.Errorf("an event that is no chunk: %q", ev.Data)
		}
		if seen[i]++; seen[i] > 1 {
			dup++
		}
		if i < last {
			reordered++
		}
		last = i
	}
	for _, s := range seen {
		if s == 0 {
			lost++
		}
	}
	if !done {
		err = fmt.Errorf("no [DONE]")
	}
	return lost, dup, reordered, err
}
