package retry

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// maxDuration is the longest time.Duration; a hint past it saturates.
const maxDuration = time.Duration(math.MaxInt64)

// RetryAfter returns the wait a response's headers ask for before the next
// request, and whether they ask for one.
//
// retry-after-ms, in milliseconds with an optional fraction (as OpenAI- and
// Anthropic-compatible servers send it), is preferred when it is valid, for
// its precision. Otherwise Retry-After is read as delay-seconds or as an
// HTTP-date (RFC 9110, section 10.2.3). A date is measured from the
// response's Date header when it has a valid one, so that a skewed client
// clock neither stretches nor shrinks it, and from now otherwise; a date in
// the past is a wait of zero. A hint too large for a time.Duration saturates
// at the largest one. Invalid values are ignored; the wait is never negative.
// RetryAfter does not cap the hint: [Policy.MaxRetryAfter] does.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if d, ok := parseMillis(h.Get("Retry-After-Ms")); ok {
		return d, true
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, ok := parseDigits(v); ok {
		if s > uint64(maxDuration/time.Second) {
			return maxDuration, true
		}
		return time.Duration(s) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return max(at.Sub(now), 0), true // Sub saturates
}

// parseDigits parses 1*DIGIT, saturating at math.MaxUint64.
func parseDigits(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxUint64-9)/10 {
			n = math.MaxUint64
			continue
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseMillis parses a retry-after-ms value: 1*DIGIT [ "." 1*DIGIT ].
func parseMillis(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	whole, frac, hasFrac := strings.Cut(v, ".")
	ms, ok := parseDigits(whole)
	if !ok {
		return 0, false
	}
	var ns uint64 // the fraction of a millisecond, in nanoseconds
	if hasFrac {
		if frac == "" {
			return 0, false
		}
		scale := uint64(100000)
		for i := 0; i < len(frac); i++ {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			ns += uint64(c-'0') * scale
			scale /= 10
		}
	}
	if ms > uint64(maxDuration/time.Millisecond)-1 {
		return maxDuration, true
	}
	return time.Duration(ms)*time.Millisecond + time.Duration(ns), true
}
