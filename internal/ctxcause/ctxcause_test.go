package ctxcause

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
)

func TestCallers(t *testing.T) {
	for _, tc := range []struct {
		cause error
		want  bool
	}{
		{nil, false},
		{streamguard.ErrBudgetExceeded, false},
		{&ctxkey.Cause{Err: errors.New("header timeout")}, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("batch: %w", streamguard.ErrBudgetExceeded), true},
		{&streamguard.Error{Reason: streamguard.ReasonRateLimited}, true},
		{errors.New("the user pressed stop"), true},
	} {
		if got := Callers(tc.cause); got != tc.want {
			t.Errorf("Callers(%v) = %v, want %v", tc.cause, got, tc.want)
		}
	}
}
