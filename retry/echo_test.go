package retry_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/retry"
)

// TestNoResponseErrorScrubbed: a server that echoes the request's key
// into what makes the transport fail (here a malformed status line, as
// net/http quotes it) does not put the key in the error the caller gets,
// nor in any error it wraps.
func TestNoResponseErrorScrubbed(t *testing.T) {
	const key = "q7Zk2LmP9xWv4RtY"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				tp := textproto.NewReader(bufio.NewReader(c))
				tp.ReadLine()
				h, _ := tp.ReadMIMEHeader()
				c.Write([]byte("HTTP/1.1_invalid_key_" + h.Get("Api-Key") + "\r\n\r\n"))
			}()
		}
	}()
	rt := retry.NewTransport(nil, retry.Policy{})
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/v1/models", nil)
	req.Header.Set("Api-Key", key)
	resp, err := rt.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a malformed response succeeded")
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), key) {
			t.Fatalf("the key in an error of the chain: %T %q", e, e.Error())
		}
	}
	if !strings.Contains(err.Error(), "malformed HTTP") {
		t.Errorf("error %q, want net/http's malformed response, scrubbed", err)
	}
}

// TestUnknownFailureNotRetryable: a request net/http refuses to send
// (here an unsupported scheme) is the request's failure, not marked
// Retryable, for an outer loop that trusts it.
func TestUnknownFailureNotRetryable(t *testing.T) {
	rt := retry.NewTransport(nil, retry.Policy{})
	req, _ := http.NewRequest(http.MethodGet, "ftp://127.0.0.1/x", nil)
	_, err := rt.RoundTrip(req)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Retryable || se.Attempts != 1 || se.Source != streamguard.SourceRequest {
		t.Fatalf("%v (%+v); want one attempt, the request's, not retryable", err, se)
	}
}

// echoTimeout is a transport failure whose text holds what the server
// sent back, and that says it is a timeout.
type echoTimeout struct{ text string }

func (e echoTimeout) Error() string   { return e.text }
func (e echoTimeout) Timeout() bool   { return true }
func (e echoTimeout) Temporary() bool { return true }

// TestScrubbedErrorKeepsCause: when a transport error's text had to be
// scrubbed of the request's key, errors.Is still finds its cause and it is
// still a net.Error timeout, but nothing in the chain holds the key.
func TestScrubbedErrorKeepsCause(t *testing.T) {
	const key = "q7Zk2LmP9xWv4RtY"
	for _, tc := range []struct {
		name string
		err  error
		is   error
	}{
		{"wrapped sentinel", fmt.Errorf("upstream said %q: %w", "bad key "+key, io.ErrUnexpectedEOF), io.ErrUnexpectedEOF},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: echoTimeout{"reset by peer for " + key}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, tc.err })
			rt := retry.NewTransport(base, retry.Policy{MaxAttempts: 1})
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/v1/models", nil)
			req.Header.Set("Api-Key", key)
			_, err := rt.RoundTrip(req)
			if err == nil {
				t.Fatal("no error")
			}
			for e := err; e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), key) {
					t.Fatalf("the key in an error of the chain: %T %q", e, e.Error())
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false after the scrub", err, tc.is)
			}
			var ne net.Error
			if tc.is == nil && (!errors.As(err, &ne) || !ne.Timeout()) {
				t.Errorf("%v: not a net.Error timeout after the scrub", err)
			}
		})
	}
}
