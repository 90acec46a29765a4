package middleware_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/middleware"
)

// TestBaseWithoutResponseRequest: a Base that answers without setting
// resp.Request (a stub, a custom RoundTripper) still gets the request's
// credentials scrubbed from the error of its answer: a 401 whose body
// echoes the key said it to the caller.
func TestBaseWithoutResponseRequest(t *testing.T) {
	const key = "q7Zk2LmP9xWv4RtY"
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body := `{"error":{"message":"invalid key ` + r.Header.Get("Api-Key") + `","type":"invalid_request_error"}}`
		return &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}, nil
	})
	for _, errorStatus := range []bool{false, true} {
		client := middleware.NewClient(middleware.Config{Base: base, ErrorStatus: errorStatus})
		req, _ := http.NewRequest(http.MethodPost, "http://model.test/v1/chat/completions", strings.NewReader(`{}`))
		req.Header.Set("Api-Key", key)
		resp, err := client.Do(req)
		var got string
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = string(b)
		} else {
			got = err.Error()
		}
		if strings.Contains(got, key) || !strings.Contains(got, "invalid key") {
			t.Errorf("ErrorStatus %v: %q; want the server's message without the key", errorStatus, got)
		}
	}
}
