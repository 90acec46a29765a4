package retry_test

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/retry"
)

var raNow = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

func TestRetryAfter(t *testing.T) {
	date := func(d time.Duration) string { return raNow.Add(d).Format(http.TimeFormat) }
	cases := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"none", nil, 0, false},
		{"seconds", map[string]string{"Retry-After": "3"}, 3 * time.Second, true},
		{"zero seconds", map[string]string{"Retry-After": "0"}, 0, true},
		{"seconds with spaces", map[string]string{"Retry-After": " 12 "}, 12 * time.Second, true},
		{"huge seconds saturate", map[string]string{"Retry-After": "99999999999999999999999"}, time.Duration(math.MaxInt64), true},
		{"negative seconds are invalid", map[string]string{"Retry-After": "-5"}, 0, false},
		{"fractional seconds are invalid", map[string]string{"Retry-After": "1.5"}, 0, false},
		{"IMF-fixdate from now", map[string]string{"Retry-After": date(90 * time.Second)}, 90 * time.Second, true},
		{"RFC 850 date", map[string]string{"Retry-After": raNow.Add(time.Minute).Format(time.RFC850)}, time.Minute, true},
		{"asctime date", map[string]string{"Retry-After": raNow.Add(time.Minute).Format(time.ANSIC)}, time.Minute, true},
		{"date in the past is zero", map[string]string{"Retry-After": date(-time.Hour)}, 0, true},
		{"date from the Date header", map[string]string{"Date": date(-time.Hour), "Retry-After": date(-time.Hour + 10*time.Second)}, 10 * time.Second, true},
		{"an invalid Date header falls back to now", map[string]string{"Date": "yesterday", "Retry-After": date(10 * time.Second)}, 10 * time.Second, true},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
		{"retry-after-ms", map[string]string{"Retry-After-Ms": "250"}, 250 * time.Millisecond, true},
		{"retry-after-ms with a fraction", map[string]string{"Retry-After-Ms": "1.5"}, 1500 * time.Microsecond, true},
		{"retry-after-ms beats Retry-After", map[string]string{"Retry-After-Ms": "20", "Retry-After": "5"}, 20 * time.Millisecond, true},
		{"invalid retry-after-ms falls back", map[string]string{"Retry-After-Ms": "NaN", "Retry-After": "5"}, 5 * time.Second, true},
		{"negative retry-after-ms falls back", map[string]string{"Retry-After-Ms": "-1", "Retry-After": "5"}, 5 * time.Second, true},
		{"retry-after-ms without fraction digits is invalid", map[string]string{"Retry-After-Ms": "1."}, 0, false},
		{"huge retry-after-ms saturates", map[string]string{"Retry-After-Ms": "99999999999999999999"}, time.Duration(math.MaxInt64), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.header {
				h.Set(k, v)
			}
			got, ok := retry.RetryAfter(h, raNow)
			if got != c.want || ok != c.ok {
				t.Errorf("RetryAfter = %v, %v; want %v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// FuzzRetryAfter feeds the parser any retry-after-ms, Retry-After and Date
// values. It must not panic, never return a negative wait, return 0 when it
// finds no hint, and agree with strconv on plain seconds.
//
// Run it longer with: go test -run '^$' -fuzz FuzzRetryAfter -fuzztime 60s ./retry/
func FuzzRetryAfter(f *testing.F) {
	f.Add("", "120", "")
	f.Add("", "0", "")
	f.Add("1500", "", "")
	f.Add("0.25", "3", "")
	f.Add("", raNow.Add(time.Minute).Format(http.TimeFormat), "")
	f.Add("", raNow.Add(time.Minute).Format(http.TimeFormat), raNow.Format(http.TimeFormat))
	f.Add("", "Sunday, 06-Nov-94 08:49:37 GMT", "")
	f.Add("", "Sun Nov  6 08:49:37 1994", "")
	f.Add("", "99999999999999999999999", "")
	f.Add("1e309", "-1", "not a date")
	f.Add("12.", " 7 ", "")
	f.Fuzz(func(t *testing.T, ms, ra, date string) {
		h := http.Header{}
		if ms != "" {
			h["Retry-After-Ms"] = []string{ms}
		}
		if ra != "" {
			h["Retry-After"] = []string{ra}
		}
		if date != "" {
			h["Date"] = []string{date}
		}
		d, ok := retry.RetryAfter(h, raNow)
		if d < 0 {
			t.Fatalf("negative wait %v", d)
		}
		if !ok && d != 0 {
			t.Fatalf("no hint, but a wait of %v", d)
		}
		if ms == "" {
			if s, err := strconv.ParseUint(strings.TrimSpace(ra), 10, 32); err == nil && !strings.ContainsAny(ra, "+-_") {
				if !ok || d != time.Duration(s)*time.Second {
					t.Fatalf("Retry-After %q = %v, %v; want %ds", ra, d, ok, s)
				}
			}
		}
	})
}
