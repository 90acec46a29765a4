package bench

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
)

// pageBase answers every request 503 with an HTML page of 100 KiB, in
// memory: the cost of an error response's classification, without a network.
type pageBase struct{ page []byte }

func (p pageBase) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 503, Request: req, Header: http.Header{"Content-Type": {"text/html"}},
		Body: io.NopCloser(bytes.NewReader(p.page))}, nil
}

// BenchmarkErrorStatus: one request answered 503, classified by the caller
// with streamguard.Check and its body read to the end, raw and through the
// client stack (one attempt; the span, the retry layer and the final error
// layer classify it too, and the final error layer rewrites its body).
//
//	cd bench && go test -run '^$' -bench ErrorStatus -benchmem -count 6
func BenchmarkErrorStatus(b *testing.B) {
	base := pageBase{[]byte("<html><title>503 Service Temporarily Unavailable</title>" + strings.Repeat("x", 100<<10) + "</html>")}
	for _, via := range []string{"raw", "stack"} {
		c := &http.Client{Transport: base}
		if via == "stack" {
			c = middleware.NewClient(middleware.Config{Base: base, Retry: retry.Policy{MaxAttempts: -1}})
		}
		b.Run("via="+via, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get("http://stub.invalid/predict")
				if err != nil {
					b.Fatal(err)
				}
				if streamguard.Check(resp) == nil {
					b.Fatal("no error")
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
