package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/resp"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"
)

// loadCutter is a TCP proxy that cuts some connections after a random
// number of bytes from the server.
type loadCutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	rng    *rand.Rand
	max    int64
	cuts   atomic.Int64
	wg     sync.WaitGroup
}

func (c *loadCutter) limit() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rng.IntN(2) == 0 {
		return 0
	}
	return 1000 + c.rng.Int64N(c.max)
}

func (c *loadCutter) accept() {
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", c.target)
		if err != nil {
			down.Close()
			continue
		}
		limit := c.limit()
		c.wg.Go(func() { io.Copy(up, down); up.Close() })
		c.wg.Go(func() {
			if limit > 0 {
				if n, _ := io.CopyN(down, up, limit); n == limit {
					c.cuts.Add(1)
				}
			} else {
				io.Copy(down, up)
			}
			down.Close()
			up.Close()
		})
	}
}

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
	addr := os.Getenv("STREAMGUARD_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("redis is required in CI: set STREAMGUARD_REDIS_ADDR to a redis-server's host:port")
		}
		t.Skip("STREAMGUARD_REDIS_ADDR is unset: no redis-server to test against")
	}
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cut := &loadCutter{ln: ln, target: front.Listener.Addr().String(), rng: rand.New(rand.NewPCG(loadSeed, 3)), max: int64(events) * 190}
	cut.wg.Go(cut.accept)
	defer func() { ln.Close(); cut.wg.Wait() }()

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
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ln.Addr().String()+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
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
		streams, events, elapsed.Round(time.Millisecond), cut.cuts.Load(), failed.Load(), lost.Load(), dup.Load(), reordered.Load())
	if lost.Load()+dup.Load()+reordered.Load() != 0 || cut.cuts.Load() == 0 {
		t.Errorf("%d lost, %d duplicated, %d reordered, %d cuts", lost.Load(), dup.Load(), reordered.Load(), cut.cuts.Load())
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
