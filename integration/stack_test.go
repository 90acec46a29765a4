package integration

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
)

// stackClosesIdle reports whether client's transport has a
// CloseIdleConnections method, without which http.Client's does nothing.
func stackClosesIdle(client *http.Client) bool {
	_, ok := client.Transport.(interface{ CloseIdleConnections() })
	return ok
}

// TestCloseIdleConnections: http.Client.CloseIdleConnections on the stack
// must reach the base transport and close its pooled connections, as it
// does on a bare *http.Transport: a test or a service that shuts down
// relies on it to leave no connection behind.
func TestCloseIdleConnections(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(3))
	defer srv.Close()
	client := middleware.NewClient(middleware.Config{})
	if !stackClosesIdle(client) {
		t.Fatal("middleware.NewClient(cfg).CloseIdleConnections does not reach the base transport")
	}
	for range 2 {
		resp, err := client.Get(srv.URL + "/v1/chat/completions")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := srv.OpenConns(); n != 1 {
		t.Fatalf("%d connections open before CloseIdleConnections, want the 1 pooled", n)
	}
	client.CloseIdleConnections()
	if !waitFor(5*time.Second, func() bool { return srv.OpenConns() == 0 }) {
		t.Fatalf("%d connections still open after CloseIdleConnections", srv.OpenConns())
	}
}

// TestTransportTimeouts: a timeout of the transport itself, not of the
// caller's context, is not the caller's own deadline: it must not be
// attributed to the client.
func TestTransportTimeouts(t *testing.T) {
	base := middleware.DefaultBase(0)
	// A dial that cannot finish in time, without any network: the
	// Dialer's own timeout gives net's "i/o timeout".
	base.DialContext = (&net.Dialer{Timeout: time.Nanosecond}).DialContext
	client := middleware.NewClient(middleware.Config{Base: base,
		Retry: retry.Policy{MaxAttempts: 2, Backoff: fastBackoff}})
	defer client.CloseIdleConnections()
	_, err := client.Get("http://127.0.0.1:1/")
	se := asStreamError(t, err)
	var ne net.Error
	if !errors.As(se.Err, &ne) || !ne.Timeout() || se.Attempts != 2 {
		t.Fatalf("not a dial timeout retried once: %v", err)
	}
	wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonConnection)
	if !se.Retryable {
		t.Errorf("a dial timeout is not retryable: %v", se)
	}
}
