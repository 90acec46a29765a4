package retry_test

import (
	"bufio"
	"errors"
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
