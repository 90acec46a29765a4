package gatewaytest

import (
	"bytes"
	"encoding/json"
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
// (up to 4096): each Header and Body is the caller's own.
func (g *Gateway) Records() []Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	recs := make([]Record, len(g.records))
	for i, rec := range g.records {
		rec.Header = rec.Header.Clone()
		rec.Body = bytes.Clone(rec.Body)
		recs[i] = rec
	}
	return recs
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
	body, size, limit, ok := g.admit(w, r, Record{N: n, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Fault: fault})
	if !ok {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if a := g.async.Load(); a != nil && platform.IsAsyncPath(r.URL.Path) {
		a.serve(w, r, body, fault) // async.go
		return
	}
	g.serveFault(w, r, fault, size, limit)
}

// admit reads r's body, records the request and reports whether it may go
// on; if not, it has answered: 400 for a body that could not be read, 413 for
// one over the limit. A declared Content-Length over the limit is refused
// before upload, without reading a byte of the body, as the platform's edge
// does.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, rec Record) (body []byte, size, limit int64, ok bool) {
	limit = g.limit(r)
	if r.ContentLength > limit {
		rec.Fault = PayloadTooLarge()
		g.record(rec)
		refuse(w, r, platform.TooLargeMessage(r.ContentLength, limit))
		return nil, 0, limit, false
	}
	body, size, ended, err := g.readBody(w, r.Body, limit)
	g.bodyBytes.Add(size)
	rec.Body = bytes.Clone(body[:min(len(body), maxRecordBody)]) // a copy: never pin the whole body
	switch {
	case err != nil:
		g.record(rec)
		writeJSONError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return nil, size, limit, false
	case size > limit:
		rec.Fault = PayloadTooLarge()
		g.record(rec)
		msg := platform.TooLargeMessage(size, limit)
		if !ended {
			msg = strings.Replace(msg, "payload size of ", "payload size of at least ", 1)
		}
		refuse(w, r, msg)
		return nil, size, limit, false
	}
	g.record(rec)
	return body, size, limit, true
}

// refuse answers 413 with msg and closes the connection: what is left of the
// body is not read.
func refuse(w http.ResponseWriter, r *http.Request, msg string) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	writeJSONError(w, http.StatusRequestEntityTooLarge, msg)
}

// serveFault answers r as fault says; size and limit are its body's for a
// 413.
func (g *Gateway) serveFault(w http.ResponseWriter, r *http.Request, fault Fault, size, limit int64) {
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
		g.serveStreamFault(w, r, fault) // streamfault.go
	}
}

// How much of a body over the limit, of unknown length, the gateway counts
// before its 413: at most drainBytes more, for at most drainTime.
const (
	drainBytes = 4 << 20
	drainTime  = 2 * time.Second
)

// readBody reads a request body whole when it fits limit. Past the limit it
// counts what follows without keeping it, within drainBytes and drainTime and
// until the gateway closes; ended reports whether it saw the body's end, so
// that size is the body's whole size.
func (g *Gateway) readBody(w http.ResponseWriter, rc io.ReadCloser, limit int64) (body []byte, size int64, ended bool, err error) {
	if rc == nil || rc == http.NoBody {
		return nil, 0, true, nil
	}
	n := limit
	if n < math.MaxInt64 {
		n++ // one byte past the limit tells a body over it
	}
	body, err = io.ReadAll(io.LimitReader(rc, n))
	size = int64(len(body))
	if err != nil || size <= limit {
		return body, size, true, err
	}
	rest, ended := g.drain(w, rc)
	return body, size + rest, ended, nil
}

// drain reads and discards up to drainBytes of rc, for up to drainTime, and
// stops at once when the gateway closes. It returns how much it read and
// whether rc ended.
func (g *Gateway) drain(w http.ResponseWriter, rc io.Reader) (int64, bool) {
	ctl := http.NewResponseController(w)
	deadline := time.Now().Add(drainTime)
	ctl.SetReadDeadline(deadline) // a Read that blocks ends too; not every writer can
	defer ctl.SetReadDeadline(time.Time{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		select {
		case <-g.closing:
			ctl.SetReadDeadline(time.Now())
		case <-stop:
		}
	})
	buf := make([]byte, 32<<10)
	var n int64
	for n < drainBytes && time.Now().Before(deadline) && !g.isClosing() {
		k, err := rc.Read(buf[:min(int64(len(buf)), drainBytes-n)])
		n += int64(k)
		if err == io.EOF {
			return n, true
		}
		if err != nil {
			break
		}
	}
	return n, false
}

func (g *Gateway) isClosing() bool {
	select {
	case <-g.closing:
		return true
	default:
		return false
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

// setRetryAfter asks for a wait of d, when d is positive: Retry-After in
// whole seconds, rounded up (a wait under a second is 1), and Retry-After-Ms
// exact, with a fraction for a part of a millisecond. d <= 0 sends neither.
func setRetryAfter(h http.Header, d time.Duration) {
	if d <= 0 {
		return
	}
	s := d / time.Second
	if d%time.Second != 0 {
		s++
	}
	h.Set("Retry-After", strconv.FormatInt(int64(s), 10))
	ms := strconv.FormatInt(int64(d/time.Millisecond), 10)
	if ns := d % time.Millisecond; ns != 0 {
		ms += strings.TrimRight(fmt.Sprintf(".%06d", int64(ns)), "0")
	}
	h.Set("Retry-After-Ms", ms)
}
