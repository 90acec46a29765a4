package sse_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/streamguard/streamguard/sse"
)

// countedBody counts the bodies GetBody made and the ones closed.
type countedBody struct {
	made, closed atomic.Int32
}

func (c *countedBody) get() (io.ReadCloser, error) {
	c.made.Add(1)
	return &closeCounter{Reader: strings.NewReader(`{"stream":true}`), n: &c.closed}, nil
}

type closeCounter struct {
	io.Reader
	n    *atomic.Int32
	done atomic.Bool
}

func (c *closeCounter) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.n.Add(1)
	}
	return nil
}

// TestResumeRefusedWaitClosesBody: a resume request whose wait is refused
// (the backoff gives up, the deadline is too near, or the caller leaves)
// closes the body GetBody made for it.
func TestResumeRefusedWaitClosesBody(t *testing.T) {
	const name = "abcdefghijklmnopqrstuvwxyz"
	h := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(sse.ResumableStreamHeader, name)
		io.WriteString(w, "id: "+name+".1\ndata: e1\n\n")
		return true // cut: the resume is due
	}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	stop := func() backoff.BackOff { return &backoff.StopBackOff{} }
	long := func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }
	for _, tc := range []struct {
		name    string
		backoff func() backoff.BackOff
		timeout time.Duration
		cancel  bool
	}{
		{name: "backoff stops", backoff: stop},
		{name: "deadline too near", backoff: long, timeout: 10 * time.Second},
		{name: "caller leaves", backoff: long, cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bodies := &countedBody{}
			cfg := sse.Config{Resume: sse.ResumeConfig{Backoff: tc.backoff, MaxWait: time.Hour}}
			c := &http.Client{Transport: sse.NewTransport(http.DefaultTransport, cfg)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Body, _ = bodies.get()
			req.GetBody = bodies.get
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			made, closed := bodies.made.Load(), bodies.closed.Load()
			if made < 2 {
				t.Fatalf("GetBody made %d bodies: no resume was prepared", made)
			}
			if closed != made {
				t.Errorf("%d bodies made, %d closed", made, closed)
			}
		})
	}
}

// registering is a context that counts the cancellations registered on it
// and the registrations removed (context.WithCancel uses a parent's
// AfterFunc when the parent is not one of the context package's own).
type registering struct {
	context.Context // Background: no deadline, no values
	done            chan struct{}
	added, removed  atomic.Int32
}

func (c *registering) Done() <-chan struct{} { return c.done }

func (c *registering) AfterFunc(f func()) func() bool {
	c.added.Add(1)
	stopped := false
	return func() bool {
		c.removed.Add(1)
		was := !stopped
		stopped = true
		return was
	}
}

// TestResumeReleasesContextAtEnd: a resumed stream read to its end, whose
// body is never closed, leaves nothing registered on the request's
// context (a long-lived parent, such as a server's, would keep every
// stream's resumer otherwise).
func TestResumeReleasesContextAtEnd(t *testing.T) {
	const name = "abcdefghijklmnopqrstuvwxyz"
	h := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(sse.ResumableStreamHeader, name)
		if i == 0 {
			io.WriteString(w, "id: "+name+".1\ndata: e1\n\n")
			return true // cut: the resume is due
		}
		io.WriteString(w, "id: "+name+".2\ndata: e2\n\n")
		return false
	}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := &registering{Context: context.Background(), done: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := edgeClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body) // to the end: the checks come before Close
	if err != nil || len(dataLines(b)) != 2 {
		t.Fatalf("got %q, %v; want e1 and e2 and no failure", b, err)
	}
	if n := h.n; n != 2 {
		t.Fatalf("%d attempts; want the first and one resume", n)
	}
	if added, removed := ctx.added.Load(), ctx.removed.Load(); added == 0 || removed != added {
		t.Errorf("%d registered on the request's context, %d removed at the stream's end", added, removed)
	}
}
