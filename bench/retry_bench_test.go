package bench

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/streamguard/streamguard/retry"
)

// retryReply is a small inference answer.
var retryReply = []byte(`{"id":"cmpl-1","choices":[{"index":0,"text":"hello"}]}`)

// retryPrompt is a small inference request.
var retryPrompt = []byte(`{"model":"m","prompt":"hi","max_tokens":16}`)

// BenchmarkRetry measures a successful small request through
// retry.NewTransport against the raw transport it wraps, in the same run,
// on a loopback HTTP/1.1 server: the cost of the retry layer when nothing
// fails. Quote the retry/raw ratios of ns/op and allocs/op.
//
//	cd bench && go test -run '^$' -bench Retry -benchmem -count 3
func BenchmarkRetry(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(retryReply)
	}))
	defer srv.Close()

	for _, method := range []string{"GET", "POST"} {
		for _, layer := range []struct {
			name string
			wrap func(http.RoundTripper) http.RoundTripper
		}{
			{"raw", func(rt http.RoundTripper) http.RoundTripper { return rt }},
			{"retry", func(rt http.RoundTripper) http.RoundTripper { return retry.NewTransport(rt, retry.Policy{}) }},
		} {
			b.Run(method+"/"+layer.name, func(b *testing.B) {
				tr := http.DefaultTransport.(*http.Transport).Clone()
				defer tr.CloseIdleConnections()
				rt := layer.wrap(tr)
				buf := make([]byte, 512)
				b.SetBytes(int64(len(retryReply)))
				b.ReportAllocs()
				for b.Loop() {
					var body io.Reader
					if method == "POST" {
						body = bytes.NewReader(retryPrompt)
					}
					req, err := http.NewRequest(method, srv.URL, body)
					if err != nil {
						b.Fatal(err)
					}
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					n, err := drain(resp.Body, buf) // to io.EOF: any other error is returned
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
					if err != nil || n != int64(len(retryReply)) {
						b.Fatalf("read %d bytes of the %d-byte reply: %v", n, len(retryReply), err)
					}
				}
			})
		}
	}
}

// BenchmarkRetryOverhead isolates the retry layer's own cost on a success:
// the base is a stub that answers 200 at once, so the difference between
// raw and retry is what NewTransport adds per request, free of the
// loopback's noise.
func BenchmarkRetryOverhead(b *testing.B) {
	ok := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}
	stub := stubTransport(func(*http.Request) (*http.Response, error) { return ok, nil })
	for _, layer := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"raw", stub},
		{"retry", retry.NewTransport(stub, retry.Policy{})},
	} {
		b.Run(layer.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, err := http.NewRequest("POST", "http://gw.invalid/predict", bytes.NewReader(retryPrompt))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := layer.rt.RoundTrip(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type stubTransport func(*http.Request) (*http.Response, error)

func (f stubTransport) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
