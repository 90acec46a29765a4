package middleware

import (
	"strconv"
	"testing"
	"time"
)

// TestNextID counts the id line up from zero, past every new digit up to
// 100,000.
func TestNextID(t *testing.T) {
	prefix := idPrefix("abc")
	line := append(append([]byte(nil), prefix...), '\n')
	for seq := 1; seq <= 100_000; seq++ {
		line = nextID(line, len(prefix))
		if want := string(prefix) + strconv.Itoa(seq) + "\n"; string(line) != want {
			t.Fatalf("id line %d: %q, want %q", seq, line, want)
		}
	}
}

// TestLingerBounds: a linger below MinLinger is raised to it, and the
// beat is a quarter of the linger, at most 5 s.
func TestLingerBounds(t *testing.T) {
	for _, c := range []struct{ set, linger, beat time.Duration }{
		{0, DefaultLinger, 5 * time.Second},
		{time.Millisecond, MinLinger, MinLinger / 4},
		{MinLinger, MinLinger, MinLinger / 4},
		{2 * time.Second, 2 * time.Second, 500 * time.Millisecond},
		{time.Hour, time.Hour, 5 * time.Second},
	} {
		rc := ResumeConfig{Linger: c.set}
		if rc.linger() != c.linger || rc.beat() != c.beat {
			t.Errorf("Linger %v: linger %v, beat %v; want %v, %v", c.set, rc.linger(), rc.beat(), c.linger, c.beat)
		}
	}
}
