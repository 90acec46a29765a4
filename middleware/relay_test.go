package middleware_test

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
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
