package gatewaytest_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
)

// Status panics when it is built with a status net/http cannot answer,
// rather than in the middle of a request.
func TestStatusPanicsOnABadStatus(t *testing.T) {
	for _, code := range []int{0, -1, 99, 100, 103, 199, 1000} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			defer func() {
				p := recover()
				if msg, _ := p.(string); !strings.Contains(msg, fmt.Sprintf("Status(%d,", code)) {
					t.Fatalf("Status(%d, ...) did not panic with a message naming it: %v", code, p)
				}
			}()
			gatewaytest.Status(code, "x")
		})
	}
	for _, code := range []int{200, 418, 502, 999} {
		g := gatewaytest.New(gatewaytest.Echo())
		g.Script(gatewaytest.Status(code, "x"))
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != code {
			t.Errorf("Status(%d, ...) answered %d", code, rec.Code)
		}
	}
}

// Draining and RateLimited send Retry-After in whole seconds rounded up and
// Retry-After-Ms exact, and neither for a wait of zero.
func TestRetryAfterHeaders(t *testing.T) {
	cases := []struct {
		wait      time.Duration
		sec, msec string
	}{
		{0, "", ""},
		{-time.Second, "", ""},
		{500 * time.Microsecond, "1", "0.5"},
		{1500 * time.Microsecond, "1", "1.5"},
		{1 * time.Nanosecond, "1", "0.000001"},
		{300 * time.Millisecond, "1", "300"},
		{time.Second, "1", "1000"},
		{2500 * time.Millisecond, "3", "2500"},
	}
	for _, c := range cases {
		for _, f := range []gatewaytest.Fault{gatewaytest.Draining(c.wait), gatewaytest.RateLimited(c.wait)} {
			g := gatewaytest.New(gatewaytest.Echo())
			g.Script(f)
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			h := rec.Result().Header
			if _, has := h["Retry-After"]; has != (c.sec != "") || h.Get("Retry-After") != c.sec || h.Get("Retry-After-Ms") != c.msec {
				t.Errorf("%v(%v): Retry-After %q, Retry-After-Ms %q; want %q, %q", f, c.wait, h.Get("Retry-After"), h.Get("Retry-After-Ms"), c.sec, c.msec)
			}
		}
	}
}
