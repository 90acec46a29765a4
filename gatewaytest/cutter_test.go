package gatewaytest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
)

// TestCutter: connection 1 goes to the first server and is cut after 300
// bytes; connection 2 goes to the second, whole.
func TestCutter(t *testing.T) {
	a := gatewaytest.NewServer(gatewaytest.ChatStream(50))
	defer a.Close()
	b := gatewaytest.NewServer(gatewaytest.ChatStream(3))
	defer b.Close()
	c, err := gatewaytest.NewCutter(
		func(n int) string {
			if n == 1 {
				return a.URL[len("http://"):]
			}
			return b.URL[len("http://"):]
		},
		func(n int) int64 {
			if n == 1 {
				return 300
			}
			return 0
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() ([]byte, error) {
		resp, err := client.Get("http://" + c.Addr())
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	if _, err := get(); err == nil {
		t.Fatal("the first connection was not cut")
	}
	body, err := get()
	if err != nil || len(body) == 0 {
		t.Fatalf("the second connection: %d bytes, %v", len(body), err)
	}
	if c.Conns() != 2 || c.Cuts() != 1 {
		t.Fatalf("%d connections, %d cut", c.Conns(), c.Cuts())
	}
}
