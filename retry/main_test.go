package retry_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/retry"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tiny is a schedule of 1 ms waits, so that retries cost no test time.
func tiny() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }

// fast returns p with the tiny schedule unless p has one.
func fast(p retry.Policy) retry.Policy {
	if p.Backoff == nil {
		p.Backoff = tiny
	}
	return p
}

// testTimeout bounds every request a test makes, so that a bug hangs no
// test for long.
const testTimeout = 10 * time.Second

// plainTransport returns a fresh HTTP/1.1 transport whose idle connections
// are closed when the test ends.
func plainTransport(t *testing.T) *http.Transport {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// h2Server starts a TLS server speaking HTTP/2 and returns it with a
// fresh client transport that trusts it and negotiates HTTP/2.
func h2Server(t *testing.T, h http.Handler) (*httptest.Server, *http.Transport) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are the point of some tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	t.Cleanup(tr.CloseIdleConnections)
	return srv, tr
}

// do sends a request through rt with a bounded context; body may be nil.
func do(t *testing.T, rt http.RoundTripper, method, url string, body io.Reader, hdr ...string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if resp != nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

// readAll reads and closes resp's body.
func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return b
}

// asError returns err's *streamguard.Error or fails the test.
func asError(t *testing.T, err error) *streamguard.Error {
	t.Helper()
	var se *streamguard.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *streamguard.Error", err, err)
	}
	return se
}

// checkAttempts classifies resp with streamguard.Check and compares its
// Attempts with want.
func checkAttempts(t *testing.T, resp *http.Response, want int) *streamguard.Error {
	t.Helper()
	se := asError(t, streamguard.Check(resp))
	if se.Attempts != want {
		t.Errorf("Check: Attempts = %d, want %d", se.Attempts, want)
	}
	return se
}

// recorder is an OnRetry that keeps what it was called with.
type recorder struct {
	mu       sync.Mutex
	attempts []retry.Attempt
}

func (r *recorder) OnRetry(a retry.Attempt) {
	r.mu.Lock()
	r.attempts = append(r.attempts, a)
	r.mu.Unlock()
}

func (r *recorder) all() []retry.Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]retry.Attempt(nil), r.attempts...)
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// closingListener accepts connections and closes each at once, before any
// TLS handshake or request: the server of a failed handshake.
type closingListener struct {
	net.Listener
	accepted atomic.Int32
	done     chan struct{}
}

func newClosingListener(t *testing.T) *closingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &closingListener{Listener: l, done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cl.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-cl.done })
	return cl
}

// goAwayServer speaks just enough HTTP/2 over TLS to answer the first
// request on each connection with a GOAWAY whose last stream is 0, error
// ENHANCE_YOUR_CALM, and close: a server that refused the request before
// reading it. The Go transport does not retry this itself (it would for a
// graceful GOAWAY).
type goAwayServer struct {
	URL      string
	accepted atomic.Int32
	wg       sync.WaitGroup
}

func newGoAwayServer(t *testing.T) (*goAwayServer, *http.Transport) {
	t.Helper()
	// Borrow httptest's certificate and a client that trusts it.
	cert := httptest.NewUnstartedServer(http.NotFoundHandler())
	cert.EnableHTTP2 = true
	cert.StartTLS()
	t.Cleanup(cert.Close)
	cfg := cert.TLS.Clone()
	cfg.NextProtos = []string{"h2"}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &goAwayServer{URL: "https://" + l.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	tr := cert.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	t.Cleanup(tr.CloseIdleConnections)
	return s, tr
}

func (s *goAwayServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	preface := make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	frame := func(typ, flags byte, stream uint32, payload []byte) {
		h := make([]byte, 9, 9+len(payload))
		h[0], h[1], h[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
		h[3], h[4] = typ, flags
		binary.BigEndian.PutUint32(h[5:], stream)
		c.Write(append(h, payload...))
	}
	const (
		typeHeaders  = 0x1
		typeSettings = 0x4
		typeGoAway   = 0x7
		flagAck      = 0x1
		calm         = 0xb // ENHANCE_YOUR_CALM
	)
	frame(typeSettings, 0, 0, nil)
	hdr := make([]byte, 9)
	for i := 0; i < 64; i++ {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return
		}
		switch {
		case hdr[3] == typeSettings && hdr[4]&flagAck == 0:
			frame(typeSettings, flagAck, 0, nil)
		case hdr[3] == typeHeaders:
			payload := make([]byte, 8)
			binary.BigEndian.PutUint32(payload[4:], calm) // last stream 0
			frame(typeGoAway, 0, 0, payload)
			return
		}
	}
}
