package retry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/streamguard/streamguard"
)

// fakeStreamError stands in for net/http's unexported http2StreamError: the
// same fields, and the same As method (net/http/h2_error.go), which is what
// lets errors.As fill an h2StreamError from the real one.
type fakeStreamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e fakeStreamError) Error() string {
	return fmt.Sprintf("stream error: stream ID %d; code %d", e.StreamID, e.Code)
}

func (e fakeStreamError) As(target any) bool {
	dst := reflect.ValueOf(target).Elem()
	if dst.Kind() != reflect.Struct || dst.NumField() != 3 {
		return false
	}
	src := reflect.ValueOf(e)
	for i := range 3 {
		if src.Type().Field(i).Name != dst.Type().Field(i).Name {
			return false
		}
	}
	for i := range 3 {
		dst.Field(i).Set(src.Field(i).Convert(dst.Field(i).Type()))
	}
	return true
}

func TestClassifySend(t *testing.T) {
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	cases := []struct {
		name string
		err  error
		want sendKind
	}{
		{"connection refused", dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)), notSent},
		{"dial timeout", dial(errors.New("i/o timeout")), notSent},
		{"proxy dial", &net.OpError{Op: "proxyconnect", Err: syscall.ECONNREFUSED}, notSent},
		{"DNS timeout", dial(&net.DNSError{Err: "timeout", Name: "gw", IsTimeout: true}), notSent},
		{"DNS name not found", dial(&net.DNSError{Err: "no such host", Name: "gw", IsNotFound: true}), permanent},
		{"TLS alert from the server", &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}, notSent},
		{"TLS handshake timeout", errors.New("net/http: TLS handshake timeout"), notSent},
		{"certificate not verified", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, permanent},
		{"certificate for another host", x509.HostnameError{Host: "gw"}, permanent},
		{"server does not speak TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, permanent},
		{"HTTP/2 REFUSED_STREAM", fakeStreamError{StreamID: 1, Code: 0x7}, notSent},
		{"HTTP/2 REFUSED_STREAM wrapped", fmt.Errorf("round trip: %w", fakeStreamError{StreamID: 3, Code: 0x7}), notSent},
		{"HTTP/2 INTERNAL_ERROR reset", fakeStreamError{StreamID: 1, Code: 0x2}, maybeSent},
		{"HTTP/2 graceful GOAWAY", errors.New("http2: Transport received Server's graceful shutdown GOAWAY"), notSent},
		{"HTTP/2 GOAWAY on a new connection", errors.New("http2: Transport received GOAWAY from server ErrCode:ENHANCE_YOUR_CALM"), notSent},
		{"HTTP/2 GOAWAY and close", errors.New(`http2: server sent GOAWAY and closed the connection; LastStreamID=1, ErrCode=NO_ERROR, debug=""`), maybeSent},
		{"HTTP/2 connection lost", errors.New("http2: client connection lost"), maybeSent},
		{"server closed idle connection", errors.New("http: server closed idle connection"), maybeSent},
		{"EOF", io.EOF, maybeSent},
		{"unexpected EOF", io.ErrUnexpectedEOF, maybeSent},
		{"connection reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, maybeSent},
		{"broken pipe", fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", syscall.EPIPE), maybeSent},
		{"response header timeout", timeoutError{}, maybeSent},
		{"unsupported scheme", errors.New(`unsupported protocol scheme "ftp"`), unknown},
		{"malformed header", errors.New(`net/http: invalid header field value for "X"`), unknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := classifySend(c.err); got != c.want {
				t.Errorf("classifySend(%v) = %d, want %d", c.err, got, c.want)
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "net/http: timeout awaiting response headers" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestIdempotent(t *testing.T) {
	cases := []struct {
		method string
		header http.Header
		want   bool
	}{
		{"", nil, true},
		{"GET", nil, true},
		{"HEAD", nil, true},
		{"OPTIONS", nil, true},
		{"TRACE", nil, true},
		{"PUT", nil, true},
		{"DELETE", nil, true},
		{"POST", nil, false},
		{"PATCH", nil, false},
		{"POST", http.Header{"Idempotency-Key": {"k"}}, true},
		{"POST", http.Header{"X-Idempotency-Key": {"k"}}, true},
		{"POST", http.Header{"Idempotency-Key": nil}, true}, // net/http: a nil value is not sent but still counts
	}
	for _, c := range cases {
		if got := idempotent(&http.Request{Method: c.method, Header: c.header}); got != c.want {
			t.Errorf("idempotent(%q, %v) = %v, want %v", c.method, c.header, got, c.want)
		}
	}
}

func TestContextError(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()
	budget, cancel3 := context.WithTimeoutCause(context.Background(), 0, streamguard.ErrBudgetExceeded)
	defer cancel3()
	<-expired.Done()
	<-budget.Done()
	cases := []struct {
		name   string
		ctx    context.Context
		err    error
		source streamguard.Source
		reason streamguard.Reason
	}{
		{"canceled, bare", canceled, context.Canceled, streamguard.SourceClient, streamguard.ReasonCanceled},
		{"canceled, other text", canceled, errors.New("net/http: request canceled"), streamguard.SourceClient, streamguard.ReasonCanceled},
		{"deadline", expired, context.DeadlineExceeded, streamguard.SourceClient, streamguard.ReasonTimeout},
		{"budget, deadline error", budget, context.DeadlineExceeded, streamguard.SourcePlatform, streamguard.ReasonTimeout},
		{"budget, cause error", budget, streamguard.ErrBudgetExceeded, streamguard.SourcePlatform, streamguard.ReasonTimeout},
		{"budget, other text", budget, errors.New("net/http: request canceled"), streamguard.SourcePlatform, streamguard.ReasonTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := contextError(c.ctx, c.err)
			e := streamguard.FromError(err)
			if e.Source != c.source || e.Reason != c.reason || !errors.Is(err, c.err) || !errors.Is(err, c.ctx.Err()) {
				t.Errorf("contextError = %v: %s %s", err, e.Source, e.Reason)
			}
		})
	}
}

func TestBodyUnread(t *testing.T) {
	read := func(r io.Reader) io.Reader { r.Read(make([]byte, 1)); return r }
	cases := []struct {
		name string
		body io.Reader
		cl   int64
		want bool
	}{
		{"bytes.Reader unread", bytes.NewReader([]byte("abc")), 3, true},
		{"bytes.Reader read", read(bytes.NewReader([]byte("abc"))), 3, false},
		{"strings.Reader in NopCloser unread", io.NopCloser(strings.NewReader("abc")), 3, true},
		{"strings.Reader in NopCloser read", io.NopCloser(read(strings.NewReader("abc"))), 3, false},
		{"bytes.Buffer unread", io.NopCloser(bytes.NewBufferString("abc")), 3, true},
		{"bytes.Buffer read", read(bytes.NewBufferString("abc")), 3, false},
		{"a reader of another type", io.NopCloser(io.LimitReader(strings.NewReader("abc"), 3)), 3, false},
		{"unknown length", strings.NewReader("abc"), 0, false},
		{"a body longer than its ContentLength", strings.NewReader("abcd"), 3, false},
	}
	for _, c := range cases {
		if got := bodyUnread(c.body, c.cl); got != c.want {
			t.Errorf("%s: bodyUnread = %v, want %v", c.name, got, c.want)
		}
	}
	// What http.NewRequest makes, and what its GetBody returns.
	req, _ := http.NewRequest("POST", "http://gw/", bytes.NewReader([]byte("hello")))
	again, _ := req.GetBody()
	if !bodyUnread(req.Body, req.ContentLength) || !bodyUnread(again, req.ContentLength) {
		t.Error("http.NewRequest's bodies are not recognised")
	}
}
