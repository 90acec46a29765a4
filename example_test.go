package streamguard_test

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
)

// Check turns an error response into a *streamguard.Error that says where
// the failure happened and where to look next; the body stays readable.
func ExampleCheck() {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok": true}`))
	defer gw.Close()
	gw.Script(gatewaytest.Unreachable()) // the model's container crashed

	resp, err := gw.Client().Post(gw.URL+"/production/predict", "application/json", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()

	var se *streamguard.Error
	if errors.As(streamguard.Check(resp), &se) {
		fmt.Println(se.StatusCode, se.Source, se.Reason, se.Retryable)
		fmt.Println(se.Hint())
	}
	// Output:
	// 502 platform unreachable true
	// check the model logs for a crash or OOMKilled; if they are clean, retry
}

// Classify works on a status and a body you already have.
func ExampleClassify() {
	resp := &http.Response{StatusCode: 502, Header: http.Header{}}
	e := streamguard.Classify(resp, []byte(`{"error": "client closed connection"}`))
	fmt.Println(e)
	// Output:
	// streamguard: 502 client canceled: client closed connection (the client disconnected or canceled before the response finished: not a platform or model failure)
}

// A call that obtains no response returns a *streamguard.Error inside
// net/http's *url.Error; errors.As finds it.
func ExampleError() {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
	url := gw.URL
	gw.Close() // nothing listens there any more

	_, err := http.Get(url)
	var se *streamguard.Error
	if errors.As(streamguard.FromError(err), &se) {
		fmt.Println(se.Source, se.Reason, se.Retryable)
		fmt.Println(se.Hint())
	}
	// Output:
	// network connection true
	// no response was obtained: check DNS, TLS and connectivity to the gateway; retry
}
