package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/webhook"
)

// A receiver for async results: the handler verifies the signature, decodes
// the result, and hands it over with its typed errors. Here a test gateway
// stands in for the platform: the model crashes, the submit still succeeds,
// and the failure arrives at the webhook.
func ExampleNewHandler() {
	report := make(chan string, 1)
	handle := func(ctx context.Context, r *streamguard.AsyncResult, errs []*streamguard.Error) error {
		if errs == nil {
			report <- r.RequestID + " succeeded: " + string(r.Data)
			return nil // acknowledged: 200
		}
		e := errs[0]
		report <- fmt.Sprintln(r.RequestID, "failed:", e.Code, e.Source, e.Reason) + e.Hint()
		return nil // return an error to answer 500: the platform sends the result again
	}
	// Both secrets stay valid while the webhook secret is rotated.
	receiver := httptest.NewServer(webhook.NewHandler([]string{"old-secret", "new-secret"}, handle, webhook.Config{}))
	defer receiver.Close()

	gw := gatewaytest.NewServer(gatewaytest.Echo())
	defer gw.Close()
	gw.EnableAsync(gatewaytest.AsyncConfig{WebhookURL: receiver.URL, Secrets: []string{"new-secret"}})
	gw.Script(gatewaytest.Unreachable()) // the model's container crashes

	client := middleware.NewClient(middleware.Config{Base: gw.Client().Transport})
	resp, err := client.Post(gw.URL+"/production/async_predict", "application/json",
		strings.NewReader(`{"model_input": {"prompt": "hi"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := streamguard.AsyncRequestID(resp) // a 429 CAPACITY_EXCEEDED would come back here
	resp.Body.Close()
	fmt.Println("queued", id, err)
	fmt.Println(<-report) // the result arrives later, at the webhook
	// Output:
	// queued gw-1 <nil>
	// gw-1 failed: MODEL_UNAVAILABLE platform unreachable
	// check the model logs for a crash or OOMKilled; if they are clean, retry
}

// Sign makes the header a test sends to a receiver; Verify checks one in a
// receiver that is not an http.Handler.
func ExampleVerify() {
	body := []byte(`{"request_id": "r1", "data": {"text": "hi"}, "errors": []}`)
	header := webhook.Sign(body, "old-secret") + "," + webhook.Sign(body, "new-secret")
	fmt.Println(webhook.Verify(header, body, "new-secret"))
	fmt.Println(webhook.Verify(header, []byte(`{"request_id": "r1", "errors": []}`), "new-secret"))
	fmt.Println(http.CanonicalHeaderKey(webhook.SignatureHeader))
	// Output:
	// true
	// false
	// X-Baseten-Signature
}
