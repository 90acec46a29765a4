package retry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxcause"
)

// sendKind says what a round trip's error tells about whether the request
// reached a server.
type sendKind int

const (
	// unknown: not a failure this package knows to be transient (a
	// malformed request, an unsupported scheme, a custom transport's own
	// error). Returned at once.
	unknown sendKind = iota
	// permanent: a connection failure that will fail the same way again:
	// a certificate that does not verify, a server that does not speak
	// TLS, a name that does not exist. Returned at once, not retryable.
	permanent
	// notSent: the request certainly never reached a server. Retried for
	// every method.
	notSent
	// maybeSent: the connection failed after the request may have reached
	// a server and before any response. Retried only for idempotent
	// requests, unless the policy opts in.
	maybeSent
)

// h2ErrCodeRefusedStream is HTTP/2's REFUSED_STREAM (RFC 9113, section 7):
// the server did no processing of the stream.
const h2ErrCodeRefusedStream = 0x7

// h2StreamError has the shape of net/http's (and x/net/http2's)
// StreamError; net/http's bundled HTTP/2 error converts into any struct of
// this shape with errors.As (net/http/h2_error.go).
type h2StreamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e h2StreamError) Error() string {
	return fmt.Sprintf("http2 stream %d error %d", e.StreamID, e.Code)
}

// Texts of net/http errors whose types are not exported.
const (
	// The server's GOAWAY named a last stream below ours: it never saw our
	// request (http2errClientConnGotGoAway and the GOAWAY-on-a-new-
	// connection error).
	textGoAwayGraceful = "http2: Transport received Server's graceful shutdown GOAWAY"
	textGoAwayNew      = "http2: Transport received GOAWAY from server"
	textNotEstablished = "http2: client conn could not be established"
	textTLSTimeout     = "net/http: TLS handshake timeout"
	// The server closed the connection after a GOAWAY that may cover our
	// stream, or a reused connection before answering.
	textGoAwayClosed     = "http2: server sent GOAWAY and closed the connection"
	textConnLost         = "http2: client connection lost"
	textServerClosedIdle = "http: server closed idle connection"
)

// classifySend sorts a round trip's error (one that obtained no response
// and was not caused by the request's context) by whether the request may
// have reached a server.
func classifySend(err error) sendKind {
	var (
		certErr   *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		dnsErr    *net.DNSError
		opErr     *net.OpError
		stream    h2StreamError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid):
		return permanent
	case errors.As(err, &record):
		return permanent // the server does not speak TLS on this port
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return permanent
		}
		return notSent
	case errors.As(err, &opErr) && (opErr.Op == "dial" || opErr.Op == "proxyconnect" || opErr.Op == "remote error"):
		// Dial errors, and a TLS alert from the server during the
		// handshake: the request was never written.
		return notSent
	case errors.As(err, &stream):
		if stream.Code == h2ErrCodeRefusedStream {
			return notSent
		}
		return maybeSent
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, textGoAwayGraceful), strings.Contains(msg, textGoAwayNew),
		strings.Contains(msg, textNotEstablished), strings.Contains(msg, textTLSTimeout):
		return notSent
	case strings.Contains(msg, textGoAwayClosed), strings.Contains(msg, textConnLost),
		strings.Contains(msg, textServerClosedIdle):
		return maybeSent
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT):
		return maybeSent
	case errors.As(err, &opErr):
		return maybeSent // a read or write on the connection failed
	case errors.As(err, &netErr) && netErr.Timeout():
		return maybeSent // e.g. Transport.ResponseHeaderTimeout
	}
	return unknown
}

// idempotent reports whether req may be sent twice without harm: its
// method is idempotent (RFC 9110, section 9.2.2) or it carries an
// Idempotency-Key or X-Idempotency-Key header, as net/http also treats it.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := req.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := req.Header["X-Idempotency-Key"]
	return ok
}

// canceled is err, the failure of an attempt that ended with ctx, made to
// wrap ctx's error and cause (contextError). When err is the cause itself,
// or ctx's error, which net/http returns, and the cause is the caller's own (a sibling's
// failure, through errgroup; a budget of its own), it is the caller's
// cancellation, not this request's failure; a failure of the attempt's
// own (its header timeout) that came as the caller canceled stays what it
// is.
func canceled(ctx context.Context, err error) error {
	werr := contextError(ctx, err)
	// net/http's HTTP/1 transport returns the cause, its HTTP/2 one the
	// context's bare error.
	if cause := context.Cause(ctx); ctxcause.Callers(cause) && (errors.Is(err, cause) || errors.Is(err, ctx.Err())) {
		se := streamguard.FromError(ctx.Err())
		se.Err = werr
		return se
	}
	return werr
}

// contextError is err, the error of a round trip that failed because ctx
// ended, made to wrap ctx's error and its cause as well, so that
// streamguard.FromError tells the caller's cancellation, its deadline and an
// expired request budget (streamguard.ErrBudgetExceeded) apart.
func contextError(ctx context.Context, err error) error {
	ce, cause := ctx.Err(), context.Cause(ctx)
	hasErr, hasCause := errors.Is(err, ce), errors.Is(err, cause)
	switch {
	case hasErr && hasCause:
		return err
	case hasCause || cause == ce:
		return fmt.Errorf("%w: %w", err, ce)
	case hasErr:
		return fmt.Errorf("%w: %w", err, cause)
	}
	return fmt.Errorf("%w: %w: %w", err, ce, cause)
}
