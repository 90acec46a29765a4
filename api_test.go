package streamguard_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestFixedSurface pins the public surface that code outside this repository
// compiles against, so a change here must fail a test before it fails a user.
func TestFixedSurface(t *testing.T) {
	_ = []streamguard.Source{streamguard.SourceRequest, streamguard.SourcePlatform, streamguard.SourceModel,
		streamguard.SourceNetwork, streamguard.SourceClient, streamguard.SourceUnknown}
	_ = []streamguard.Reason{streamguard.ReasonBadRequest, streamguard.ReasonUnauthorized, streamguard.ReasonNotFound,
		streamguard.ReasonBilling, streamguard.ReasonPayloadTooLarge, streamguard.ReasonRateLimited,
		streamguard.ReasonModelError, streamguard.ReasonUnreachable, streamguard.ReasonUnavailable,
		streamguard.ReasonPlatformError, streamguard.ReasonTimeout, streamguard.ReasonCanceled,
		streamguard.ReasonConnection, streamguard.ReasonTruncated, streamguard.ReasonStalled,
		streamguard.ReasonEventTooLarge}
	e := streamguard.Error{StatusCode: 0, Source: "", Reason: "", Message: "", Code: "", RequestID: "",
		Retryable: false, Attempts: 0, Events: int64(0), Bytes: int64(0), LastEventID: "", Err: nil}
	var _ error = &e
	var _ func() string = e.Error
	var _ func() error = e.Unwrap
	var _ func() string = e.Hint
	var _ func(*http.Response, []byte) *streamguard.Error = streamguard.Classify
	var _ func(*http.Response) error = streamguard.Check
	var _ time.Duration = streamguard.SyncBudget
	var _ time.Duration = streamguard.AsyncBudget
	if streamguard.SyncBudget != 1200*time.Second || streamguard.AsyncBudget != 3600*time.Second || streamguard.AsyncMaxBody != 262144 {
		t.Error("the platform's budgets changed")
	}

	_ = retry.Policy{Statuses: []int{}, MaxAttempts: 0, Backoff: func() backoff.BackOff { return nil },
		MaxRetryAfter: time.Duration(0), Throttle: (*retry.Throttle)(nil), OnRetry: func(retry.Attempt) {}}
	_ = retry.Attempt{N: 0, StatusCode: 0, Err: nil, Delay: time.Duration(0)}
	var _ func(float64, float64) *retry.Throttle = retry.NewThrottle
	var _ func(http.RoundTripper, retry.Policy) http.RoundTripper = retry.NewTransport

	_ = sse.Config{IdleTimeout: time.Duration(0), MaxEventBytes: 0, FailureEvent: false}
	var _ func(http.RoundTripper, sse.Config) http.RoundTripper = sse.NewTransport
	var _ func(*http.Response, sse.Config) = sse.Guard

	_ = tracing.Config{TracerProvider: trace.TracerProvider(nil), Propagators: propagation.TextMapPropagator(nil)}
	if tracing.AttrErrorSource != "streamguard.error.source" || tracing.AttrErrorReason != "streamguard.error.reason" {
		t.Error("the span attribute names changed")
	}
	var _ func(http.RoundTripper, tracing.Config) http.RoundTripper = tracing.NewTransport
	var _ func(http.Handler, tracing.Config) http.Handler = tracing.NewHandler

	_ = middleware.Config{Base: http.RoundTripper(nil), Budget: time.Duration(0), Retry: retry.Policy{},
		Stream: sse.Config{}, Tracing: tracing.Config{}}
	var _ func(middleware.Config) http.RoundTripper = middleware.NewTransport
	var _ func(middleware.Config) *http.Client = middleware.NewClient
	var _ func(http.RoundTripper, ...func(http.RoundTripper) http.RoundTripper) http.RoundTripper = middleware.Chain
	_ = middleware.ServerConfig{Budget: time.Duration(0), MaxBodyBytes: int64(0), Heartbeat: time.Duration(0), Tracing: tracing.Config{}}
	var _ func(http.Handler, middleware.ServerConfig) http.Handler = middleware.NewHandler
	var _ func(http.ResponseWriter, *http.Request, error) = middleware.WriteError
}
