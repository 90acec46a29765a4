package tracing_test

import (
	"context"
	"fmt"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/codes"
)

// TestAnnotate tags any span with the source and reason of an error, and
// leaves the caller's own cancellation without an error status.
func TestAnnotate(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		source    string
		reason    string
		code      string
		errorType string
		status    codes.Code
	}{
		{"nil", nil, "", "", "", "", codes.Unset},
		{"error status", &streamguard.Error{StatusCode: 502, Source: "platform", Reason: "unreachable", Retryable: true}, "platform", "unreachable", "", "unreachable", codes.Error},
		{"wrapped stream failure", fmt.Errorf("reading: %w", &streamguard.Error{StatusCode: 200, Source: "model", Reason: "model_error", Code: "server_error"}), "model", "model_error", "server_error", "model_error", codes.Error},
		{"caller canceled", context.Canceled, "client", "canceled", "", "", codes.Unset},
		{"caller deadline", context.DeadlineExceeded, "client", "timeout", "", "timeout", codes.Error},
		{"budget", fmt.Errorf("wait: %w", streamguard.ErrBudgetExceeded), "platform", "timeout", "", "timeout", codes.Error},
		{"499 is an error status", &streamguard.Error{StatusCode: 499, Source: "client", Reason: "canceled"}, "client", "canceled", "", "canceled", codes.Error},
		{"unclassified", fmt.Errorf("dial: refused"), "network", "connection", "", "connection", codes.Error},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			_, span := f.tp.Tracer("test").Start(context.Background(), "op")
			tracing.Annotate(span, c.err)
			span.End()
			s := f.onlySpan(t)
			want(t, s, map[string]string{
				tracing.AttrErrorSource:      c.source,
				tracing.AttrErrorReason:      c.reason,
				tracing.AttrErrorCode:        c.code,
				string(semconv.ErrorTypeKey): c.errorType,
			})
			wantStatus(t, s, c.status)
		})
	}
	tracing.Annotate(nil, context.Canceled) // a nil span does nothing
}
