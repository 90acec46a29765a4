package gatewaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/platform"
)

// The platform's messages, as the gateway sends them.
const (
	MessageUnreachable  = "Error making prediction"
	MessageClientClosed = "client closed connection"
	MessageDraining     = "Instance is draining: please retry on another instance"
	MessageTimeout      = "Prediction timed out: the request exceeded the request timeout"
	MessageRateLimited  = "Too many requests: capacity exceeded"
)

// RequestIDHeader is the header the gateway sets on every response, as the
// platform does.
const RequestIDHeader = "X-Baseten-Request-Id"

// maxRecords and maxRecordBody bound what a Gateway keeps for assertions.
const (
	maxRecords    = 4096
	maxRecordBody = 1 << 20
)

// Gateway is an http.Handler that stands in front of a model handler and
// injects the platform's faults, one scripted Fault per request. It buffers
// each request body (as the platform's edge does), answers 413 for bodies over
// its limit, records what it saw, and otherwise forwards to Model.
//
// A Gateway is safe for concurrent use. Its zero value is not usable: call New.
type Gateway struct {
	// Model is the model server behind the gateway.
	Model http.Handler

	// MaxBody caps a request body; larger bodies get 413 with the platform's
	// message before the model sees them. Zero means
	// streamguard.EdgeMaxBody (100 MiB), and streamguard.AsyncMaxBody on
	// async routes (paths ending in /async_predict or /async_run_remote).
	MaxBody int64

	// Choose, if set, picks the fault for a request when the script is
	// empty; n counts requests from 1. Nil means Pass. It may be called
	// concurrently.
	Choose func(n int64, r *http.Request) Fault

	mu      sync.Mutex
	script  []Fault
	records []Record

	requests  atomic.Int64
	bodyBytes atomic.Int64
	nextID    atomic.Int64
	closing   chan struct{}
	closeOnce sync.Once
	async     atomic.Pointer[asyncRoute] // set by EnableAsync (async.go)
}

// Record is what the gateway saw of one request.
type Record struct {
	N      int64       // 1 for the first request the gateway saw
	Method string      // request method
	Path   string      // request path
	Header http.Header // request headers, as received
	Body   []byte      // the request body (at most 1 MiB of it)
	Fault  Fault       // what the gateway did
}

// New returns a Gateway in front of model.
func New(model http.Handler) *Gateway {
	return &Gateway{Model: model, closing: make(chan struct{})}
}

// Script appends faults for the next requests, in order: Script(Draining(0),
// Draining(0), Pass()) answers the next two requests 503 and forwards the
// third. Requests past the script get Choose's fault, or Pass.
func (g *Gateway) Script(faults ...Fault) {
	g.mu.Lock()
	g.script = append(g.script, faults...)
	g.mu.Unlock()
}

// Requests returns how many requests the gateway has seen.
func (g *Gateway) Requests() int64 { return g.requests.Load() }

// BodyBytes returns how many request body bytes the gateway has received.
func (g *Gateway) BodyBytes() int64 { return g.bodyBytes.Load() }

// Records returns a copy of what the gateway saw of its most recent requests
// (up to 4096).
func (g *Gateway) Records() []Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Record(nil), g.records...)
}

// Close ends every stall and pending 504 at once, so that a server in front
// of the gateway can shut down, and cancels and waits for the background work
// of the async route. It is idempotent.
func (g *Gateway) Close() {
	g.closeOnce.Do(func() { close(g.closing) })
	if a := g.async.Load(); a != nil {
		a.close() // async.go: end the background work
	}
}

func (g *Gateway) next(n int64, r *http.Request) Fault {
	g.mu.Lock()
	if len(g.script) > 0 {
		f := g.script[0]
		g.script = g.script[1:]
		g.mu.Unlock()
		return f
	}
	g.mu.Unlock()
	if g.Choose != nil {
		return g.Choose(n, r)
	}
	return Pass()
}

func (g *Gateway) record(rec Record) {
	g.mu.Lock()
	if len(g.records) == maxRecords {
		g.records = append(g.records[:0], g.records[1:]...)
	}
	g.records = append(g.records, rec)
	g.mu.Unlock()
}

// limit returns the body cap for r.
func (g *Gateway) limit(r *http.Request) int64 {
	if g.MaxBody > 0 {
		return g.MaxBody
	}
	if platform.IsAsyncPath(r.URL.Path) {
		return streamguard.AsyncMaxBody
	}
	return streamguard.EdgeMaxBody
}

// ServeHTTP applies the next fault to r.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := g.requests.Add(1)
	w.Header().Set(RequestIDHeader, "gw-"+strconv.FormatInt(g.nextID.Add(1), 10))
	fault := g.next(n, r)
	rec := Record{N: n, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Fault: fault}

	limit := g.limit(r)
	body, size, err := readBody(r.Body, limit)
	g.bodyBytes.Add(size)
	if len(body) <= maxRecordBody {
		rec.Body = body
	} else {
		rec.Body = body[:maxRecordBody]
	}
	if err != nil {
		g.record(rec)
		writeJSONError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	if size > limit {
		rec.Fault = PayloadTooLarge()
		g.record(rec)
		writeJSONError(w, http.StatusRequestEntityTooLarge, platform.TooLargeMessage(size, limit))
		return
	}
	g.record(rec)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if a := g.async.Load(); a != nil && platform.IsAsyncPath(r.URL.Path) {
		a.serve(w, r, body, fault) // async.go
		return
	}

	switch fault.kind {
	case KindStatus:
		writeBody(w, fault.status, fault.body)
	case KindUnreachable:
		writeJSONError(w, http.StatusBadGateway, MessageUnreachable)
	case KindClientClosed:
		writeJSONError(w, http.StatusBadGateway, MessageClientClosed)
	case KindDraining:
		setRetryAfter(w.Header(), fault.retryAfter)
		writeJSONError(w, http.StatusServiceUnavailable, MessageDraining)
	case KindRateLimited:
		setRetryAfter(w.Header(), fault.retryAfter)
		writeJSONError(w, http.StatusTooManyRequests, MessageRateLimited)
	case KindPayloadTooLarge:
		writeJSONError(w, http.StatusRequestEntityTooLarge, platform.TooLargeMessage(size, limit))
	case KindGatewayTimeout:
		t := time.NewTimer(fault.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-g.closing:
		}
		writeJSONError(w, http.StatusGatewayTimeout, MessageTimeout)
	default:
		if !fault.streamFault() {
			g.Model.ServeHTTP(w, r)
			return
		}
		g.serveStreamFault(w, r, fault)
	}
}

// readBody reads a request body whole when it fits limit; past the limit it
// counts the rest without keeping it.
func readBody(rc io.ReadCloser, limit int64) ([]byte, int64, error) {
	if rc == nil || rc == http.NoBody {
		return nil, 0, nil
	}
	body, err := io.ReadAll(io.LimitReader(rc, limit+1))
	size := int64(len(body))
	if err == nil && size > limit {
		var rest int64
		rest, err = io.Copy(io.Discard, rc)
		size += rest
	}
	return body, size, err
}

// errFaulted is what a model's Write returns once the fault has taken over
// the response.
var errFaulted = errors.New("gatewaytest: the response was taken over by a fault")

// serveStreamFault runs the model into a writer that applies fault after
// fault.after complete events, then ends the response as the fault says.
func (g *Gateway) serveStreamFault(w http.ResponseWriter, r *http.Request, fault Fault) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	fw := &faultWriter{w: w, fault: fault, ctx: ctx, cancel: cancel, closing: g.closing}
	g.Model.ServeHTTP(fw, r.WithContext(ctx))
	switch fault.kind {
	case KindEndEarly:
		return // the handler returns normally: a clean end
	case KindCut:
		if !fw.wroteHeader {
			fw.WriteHeader(http.StatusOK)
		}
		if r.ProtoMajor == 1 {
			if conn, buf, err := http.NewResponseController(w).Hijack(); err == nil {
				// Declare a chunk longer than what follows and hang up: the
				// client's chunked reader fails mid-chunk.
				fmt.Fprintf(buf, "%x\r\n", len(fw.half)+64)
				buf.Write(fw.half)
				buf.Flush()
				conn.Close()
				return
			}
		}
		if len(fw.half) > 0 {
			w.Write(fw.half)
			http.NewResponseController(w).Flush()
		}
		panic(http.ErrAbortHandler)
	case KindStall:
		if !fw.faulted {
			// The model finished before the fault's point: stall at its end.
			fw.stall()
		}
		panic(http.ErrAbortHandler)
	case KindReset:
		panic(http.ErrAbortHandler)
	}
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(b)
}

func writeBody(w http.ResponseWriter, status int, body string) {
	ct := "text/plain; charset=utf-8"
	switch {
	case strings.HasPrefix(body, "{"):
		ct = "application/json"
	case strings.HasPrefix(body, "<"):
		ct = "text/html"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func setRetryAfter(h http.Header, d time.Duration) {
	if d <= 0 {
		return
	}
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	h.Set("Retry-After-Ms", strconv.FormatInt(d.Milliseconds(), 10))
}
