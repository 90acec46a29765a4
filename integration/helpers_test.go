package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	gosse "github.com/tmaxmax/go-sse"
)

// testTimeout bounds every single request or wait of a test that has no
// tighter bound of its own: long enough for -race on 2 busy cores, short
// enough that a hang fails the test long before go test's own timeout.
const testTimeout = 30 * time.Second

// fastBackoff is a retry schedule of 1 ms steps, so that tests of retries do
// not wait for the default 1 s, 2 s, 4 s.
func fastBackoff() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }

// testContext returns a context that ends with the test or after
// testTimeout, whichever comes first.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// asStreamError returns the *streamguard.Error that err wraps, or fails the
// test.
func asStreamError(t *testing.T, err error) *streamguard.Error {
	t.Helper()
	var se *streamguard.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) does not wrap a *streamguard.Error", err, err)
	}
	return se
}

// wantVerdict checks a classified error's source and reason.
func wantVerdict(t *testing.T, se *streamguard.Error, src streamguard.Source, reason streamguard.Reason) {
	t.Helper()
	if se.Source != src || se.Reason != reason {
		t.Fatalf("got %s/%s, want %s/%s: %v", se.Source, se.Reason, src, reason, se)
	}
}

// chatBody returns the bytes gatewaytest.ChatStream(n) sends: n chunks and
// data: [DONE].
func chatBody(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "data: %s\n\n", gatewaytest.ChatChunk(i))
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// chunkIndex returns i for the data of gatewaytest.ChatChunk(i), and -1 for
// anything else.
func chunkIndex(data string) int {
	_, rest, ok := strings.Cut(data, `"content":"tok`)
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, " ")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(num)
	if err != nil {
		return -1
	}
	return i
}

// checkChunks parses delivered, the bytes a guarded body delivered, and
// checks that they are whole events only: chunks 0, 1, ... in order, each
// exactly once, optionally followed by [DONE]. It returns how many chunks
// there were and whether [DONE] ended them.
func checkChunks(delivered []byte) (chunks int, done bool, err error) {
	if len(delivered) > 0 && !bytes.HasSuffix(delivered, []byte("\n\n")) {
		return 0, false, fmt.Errorf("delivered bytes end in a partial event: %q", tail(delivered))
	}
	for ev, err := range gosse.Read(bytes.NewReader(delivered), &gosse.ReadConfig{MaxEventSize: 1 << 20}) {
		if err != nil {
			return chunks, done, err
		}
		if done {
			return chunks, done, fmt.Errorf("event %q after [DONE]", ev.Data)
		}
		if ev.Data == "[DONE]" {
			done = true
			continue
		}
		switch i := chunkIndex(ev.Data); {
		case i < 0:
			return chunks, done, fmt.Errorf("event %d is not a chat chunk: %q", chunks, ev.Data)
		case i < chunks:
			return chunks, done, fmt.Errorf("chunk %d delivered again after chunk %d", i, chunks-1)
		case i > chunks:
			return chunks, done, fmt.Errorf("chunk %d delivered where chunk %d was due", i, chunks)
		}
		chunks++
	}
	return chunks, done, nil
}

func tail(b []byte) []byte { return b[max(0, len(b)-80):] }

// countingTransport counts the response body bytes read through it: what
// the stack above it really read from the wire.
type countingTransport struct {
	base http.RoundTripper
	read atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil && resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.read}
	}
	return resp, err
}

func (c *countingTransport) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// waitFor waits until cond holds, checking every few milliseconds, for at
// most limit. It is for conditions no channel can announce, such as a
// server noticing that a client closed its connection.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// roundTripFunc is a base RoundTripper from a function: a response built by
// hand, with what net/http's own client would refuse.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
