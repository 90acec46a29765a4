package middleware

import (
	"strconv"
	"testing"
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
