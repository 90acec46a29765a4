package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/webhook"
)

// TestFuncPanicAnswers500: a Func that panics is a failure answered 500,
// which the platform retries, not a connection dropped without an answer;
// a Func's failure or panic is logged scrubbed of key shapes, on one line.
func TestFuncPanicAnswers500(t *testing.T) {
	for _, fn := range []webhook.Func{
		func(context.Context, *streamguard.AsyncResult, []*streamguard.Error) error {
			panic("upsert failed: Authorization: Bearer sk-ant-api03-AAAABBBBCCCCDDDD")
		},
		func(context.Context, *streamguard.AsyncResult, []*streamguard.Error) error {
			return errors.New("upsert failed\nlevel=ERROR msg=forged Authorization: Bearer sk-ant-api03-AAAABBBBCCCCDDDD")
		},
		func(context.Context, *streamguard.AsyncResult, []*streamguard.Error) error {
			return errors.New("upsert failed: Authorization: Bearer\tAAAABBBBCCCCDDDDxyz")
		},
		func(context.Context, *streamguard.AsyncResult, []*streamguard.Error) error {
			panic(errors.New("upsert failed: Bearer\nAAAABBBBCCCCDDDDxyz"))
		},
	} {
		var logs gatewaytest.SyncBuffer
		srv := httptest.NewServer(webhook.NewHandler([]string{secret}, fn,
			webhook.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}))
		body := payload(t, success)
		resp, got := post(t, srv, bytes.NewReader(body), webhook.Sign(body, secret))
		srv.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("%d %s, want 500", resp.StatusCode, got)
		}
		var rec struct{ Error string }
		if err := json.Unmarshal([]byte(logs.String()), &rec); err != nil {
			t.Fatalf("%v: %q", err, logs.String())
		}
		if strings.Contains(logs.String(), "AAAABBBB") || strings.Contains(rec.Error, "\n") || !strings.HasPrefix(rec.Error, "upsert failed") &&
			!strings.HasPrefix(rec.Error, "panic: upsert failed") {
			t.Errorf("logged %q", logs.String())
		}
	}
}
