package sse_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// dripRT answers every request with a 503 whose body sends each of parts
// after gap, then nothing until it is closed.
type dripRT struct {
	parts []string
	gap   time.Duration
}

func (d dripRT) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	go func() {
		for _, p := range d.parts {
			time.Sleep(d.gap)
			if _, err := pw.Write([]byte(p)); err != nil {
				return
			}
		}
	}()
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Request: req, Body: pr,
		Header: http.Header{"Content-Type": {"application/json"}}}, nil
}

// TestErrorBodyStall: the body of an error status that stops sending is
// cut after the idle timeout, so that classifying the error (which reads
// the body) returns; one that keeps sending is read whole, however slowly.
func TestErrorBodyStall(t *testing.T) {
	const msg = `{"error":{"message":"model overloaded","type":"overloaded"}}`
	cases := []struct {
		name string
		cfg  sse.Config
		rt   dripRT
		took time.Duration
	}{
		{"stalls after its start", sse.Config{}, dripRT{parts: []string{msg}}, sse.DefaultIdleTimeout},
		{"stalls, idle timeout set", sse.Config{IdleTimeout: 5 * time.Second}, dripRT{parts: []string{msg}}, 5 * time.Second},
		{"slow but sending", sse.Config{}, dripRT{parts: []string{msg[:10], msg[10:20], msg[20:]}, gap: sse.DefaultIdleTimeout - time.Second},
			3*(sse.DefaultIdleTimeout-time.Second) + sse.DefaultIdleTimeout}, // every part, then the stall
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				req, _ := http.NewRequest(http.MethodPost, "http://model.test/v1/chat/completions", nil)
				resp, err := sse.NewTransport(c.rt, c.cfg).RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				se, _ := streamguard.Check(resp).(*streamguard.Error)
				if se == nil || se.StatusCode != 503 || se.Message != "model overloaded" {
					t.Fatalf("Check = %+v, want the 503 with its message", se)
				}
				if took := time.Since(start); took != c.took {
					t.Errorf("classified after %v, want %v", took, c.took)
				}
				b, err := io.ReadAll(resp.Body)
				if string(b) != msg || !errors.Is(err, sse.ErrIdleTimeout) || !strings.Contains(err.Error(), "error response's body") {
					t.Errorf("body %q, %v; want the bytes sent, then the idle timeout", b, err)
				}
			})
		})
	}
}
