package gatewaytest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A slow dial to one connection's upstream holds up neither the next
// connection nor Close.
func TestCutterSlowDialBlocksNothing(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	var d net.Dialer
	release := make(chan struct{})
	defer close(release)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "slow" { // a dial that hangs until it is cancelled
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-release:
				return nil, context.Canceled
			}
		}
		return d.DialContext(ctx, network, addr)
	}
	c, err := newCutter(func(n int) string {
		if n == 1 {
			return "slow"
		}
		return up.Listener.Addr().String()
	}, func(int) int64 { return 0 }, dial)
	if err != nil {
		t.Fatal(err)
	}
	first, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	for c.Conns() == 0 {
		time.Sleep(time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + c.Addr())
	if err != nil {
		t.Errorf("the second connection, while the first one's dial hangs: %v", err)
	} else {
		resp.Body.Close()
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Error("Close waits for a dial that hangs")
		release <- struct{}{} // let the dial go, so that Close returns
		<-closed
	}
}
