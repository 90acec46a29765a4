package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"net/http/httptest"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume/resumetest"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// TestRelayRedisWriterCrash: relay A, writing a stream to the shared
// Redis, is killed mid-stream (SIGKILL, as in a crash); the client's
// resume goes to relay B, which serves what A stored and then, a linger
// after A's last sign of life, ends the stream with a truncated failure
// event from the platform: the client gets the events A relayed once each
// and a clear failure within seconds, not a wait until its budget.
func TestRelayRedisWriterCrash(t *testing.T) {
	const sent, linger = 10, time.Second
	release := make(chan struct{})
	defer close(release)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range sent {
			fmt.Fprintf(w, "data: %s\n\n", gatewaytest.ChatChunk(i))
		}
		w.(http.Flusher).Flush()
		select { // the model thinks until its caller goes
		case <-r.Context().Done():
		case <-release:
		case <-time.After(time.Minute):
		}
	}))
	defer up.Close()
	store := "redis://" + resumetest.RedisAddr(t) + "/0"
	a, killA := startRelayProcessKill(t, nil, "", "-upstream", up.URL, "-store", store, "-linger", linger.String())
	b := startRelayProcess(t, nil, "", "-upstream", up.URL, "-store", store, "-linger", linger.String())
	lb := balancer(t, a, b, 0)

	base := middleware.DefaultBase(0)
	base.DisableKeepAlives = true
	defer base.CloseIdleConnections()
	client := middleware.NewClient(middleware.Config{Base: base,
		Stream: sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a regression fails, not hangs
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+lb.Addr()+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-test-crash")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []string
	var killedAt time.Time
	var failure string // the failure event's data
	var end error
	for ev, err := range gosse.Read(resp.Body, nil) {
		if err != nil {
			end = err
			break
		}
		if ev.Type == "error" {
			failure = ev.Data
			continue
		}
		got = append(got, ev.Data)
		if len(got) == sent {
			killA()
			killedAt = time.Now()
		}
	}
	waited := time.Since(killedAt)
	if len(got) != sent {
		t.Fatalf("%d events before the end, want the %d relay A relayed", len(got), sent)
	}
	for i := range sent {
		if got[i] != gatewaytest.ChatChunk(i) {
			t.Fatalf("event %d: %q", i, got[i])
		}
	}
	var se *streamguard.Error
	if !errors.As(end, &se) || se.Source != streamguard.SourcePlatform || se.Reason != streamguard.ReasonTruncated {
		t.Fatalf("the stream ended with %v (%T), want a truncated failure from the platform", end, end)
	}
	if !strings.Contains(failure, "no sign of life") {
		t.Fatalf("the failure event's data is %q", failure)
	}
	if lb.Conns() < 2 {
		t.Fatalf("%d connections: the client never resumed at relay B", lb.Conns())
	}
	// A's last sign of life came before the kill; B looks every beat.
	if waited < linger/2 || waited > 4*linger {
		t.Fatalf("the failure came %v after the kill, want about the linger, %v", waited, linger)
	}
	t.Logf("relay A killed after %d events; the client's stream failed %v later: %v", sent, waited.Round(time.Millisecond), end)
}
