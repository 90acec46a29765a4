package ctxkey

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestAttemptAndStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		start := time.Now()
		cases := []struct {
			name    string
			ctx     context.Context
			attempt int
			start   time.Time
		}{
			{"none", bg, 0, time.Time{}},
			{"WithAttempt", WithAttempt(bg, 3), 3, time.Time{}},
			{"the first attempt keeps its number only", WithAttemptStart(bg, 1, start), 1, time.Time{}},
			{"a retry keeps both", WithAttemptStart(bg, 2, start), 2, start},
			{"a zero start keeps the number only", WithAttemptStart(bg, 4, time.Time{}), 4, time.Time{}},
			{"the innermost value wins", WithAttempt(WithAttemptStart(bg, 2, start), 5), 5, time.Time{}},
		}
		time.Sleep(1500 * time.Millisecond)
		for _, c := range cases {
			var want time.Duration
			if !c.start.IsZero() {
				want = 1500 * time.Millisecond
			}
			if got := Attempt(c.ctx); got != c.attempt {
				t.Errorf("%s: Attempt = %d, want %d", c.name, got, c.attempt)
			}
			if got := Start(c.ctx); !got.Equal(c.start) {
				t.Errorf("%s: Start = %v, want %v", c.name, got, c.start)
			}
			if got := Elapsed(c.ctx); got != want {
				t.Errorf("%s: Elapsed = %v, want %v", c.name, got, want)
			}
		}
	})
}

// One context layer per attempt, and for the first attempt nothing more
// than WithAttempt costs.
func TestAllocations(t *testing.T) {
	bg := context.Background()
	start := time.Now()
	first := testing.AllocsPerRun(100, func() { _ = WithAttemptStart(bg, 1, start) })
	plain := testing.AllocsPerRun(100, func() { _ = WithAttempt(bg, 1) })
	retry := testing.AllocsPerRun(100, func() { _ = WithAttemptStart(bg, 2, start) })
	if first != plain || retry > plain+1 {
		t.Errorf("allocations: first attempt %v, WithAttempt %v, retry %v", first, plain, retry)
	}
	ctx := WithAttemptStart(bg, 2, start)
	if n := testing.AllocsPerRun(100, func() { _, _, _ = Attempt(ctx), Start(ctx), Elapsed(ctx) }); n != 0 {
		t.Errorf("reading allocates %v times", n)
	}
}
