package bench

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
)

// flushEvery is how many events the loopback servers write between flushes:
// a model server flushes per token or per small batch; 64 keeps the
// server's share of the CPU small on a 2-core machine while every read still
// sees a chunk boundary.
const flushEvery = 64

// chunked splits a workload into the writes a server makes between
// flushes: flushEvery events each (the last write holds the rest).
func chunked(data []byte) [][]byte {
	var chunks [][]byte
	start, events := 0, 0
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte("\n\n"))
		if i < 0 {
			break
		}
		off += i + 2
		events++
		if events%flushEvery == 0 {
			chunks = append(chunks, data[start:off])
			start = off
		}
	}
	if start < len(data) {
		chunks = append(chunks, data[start:])
	}
	return chunks
}

// streamHandler serves each workload at /<name> as text/event-stream
// (HTTP/1.1 chunked, or HTTP/2 DATA frames), flushing every flushEvery events.
func streamHandler(loads []workload) http.Handler {
	mux := http.NewServeMux()
	for _, w := range loads {
		chunks := chunked(w.data)
		mux.HandleFunc("/"+w.name, func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "text/event-stream")
			rw.Header().Set("Cache-Control", "no-cache")
			f := rw.(http.Flusher)
			for _, c := range chunks {
				if _, err := rw.Write(c); err != nil {
					return
				}
				f.Flush()
			}
		})
	}
	return mux
}

// loopback is a server on 127.0.0.1 and what a client needs to reach it.
type loopback struct {
	srv   *httptest.Server
	proto string // "h1" or "h2"
}

// startLoopback starts h on a loopback server: HTTP/1.1 in clear ("h1") or
// HTTP/2 over TLS ("h2"). The server is closed when b ends.
func startLoopback(b testing.TB, proto string, h http.Handler) *loopback {
	srv := httptest.NewUnstartedServer(h)
	switch proto {
	case "h1":
		srv.Start()
	case "h2":
		srv.EnableHTTP2 = true
		srv.StartTLS()
	default:
		b.Fatalf("unknown protocol %q", proto)
	}
	b.Cleanup(srv.Close)
	return &loopback{srv: srv, proto: proto}
}

// rawTransport returns a clone of http.DefaultTransport that reaches the
// server (trusting its certificate for h2): what a caller has without
// streamguard. It is closed when b ends.
func (l *loopback) rawTransport(b testing.TB) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	l.trust(t)
	b.Cleanup(t.CloseIdleConnections)
	return t
}

// stackBase returns middleware.DefaultBase as NewTransport builds it when
// Config.Base is nil, trusting the server's certificate. It is passed as
// Config.Base only so that the benchmark can close its idle connections:
// CloseIdleConnections on the client NewClient returns does not reach the
// base, because the stack's outermost layer (the budget) and the guard's
// transport do not forward it.
func (l *loopback) stackBase(b testing.TB) *http.Transport {
	t := middleware.DefaultBase(streamguard.SyncBudget + middleware.DefaultGrace)
	l.trust(t)
	b.Cleanup(t.CloseIdleConnections)
	return t
}

func (l *loopback) trust(t *http.Transport) {
	if l.proto == "h2" {
		t.TLSClientConfig = l.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		t.ForceAttemptHTTP2 = true
	}
}

// checkProto fails b when resp did not come over the protocol the source
// names: an h2 source that silently fell back to HTTP/1.1 would make the
// comparison meaningless.
func (l *loopback) checkProto(b testing.TB, resp *http.Response) {
	if want := map[string]int{"h1": 1, "h2": 2}[l.proto]; resp.ProtoMajor != want {
		b.Fatalf("%s source answered over %s", l.proto, resp.Proto)
	}
}

// memResponder is a base transport that answers every request with a
// workload from memory, as sseResponse does: the whole client stack can then
// be measured without a network.
func memResponder(data []byte) http.RoundTripper {
	return stubTransport(func(req *http.Request) (*http.Response, error) {
		resp := sseResponse(data)
		resp.Request = req
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
		resp.ContentLength = -1
		return resp, nil
	})
}

// waitFor polls cond every few milliseconds until it holds or d passes, and
// reports whether it held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
