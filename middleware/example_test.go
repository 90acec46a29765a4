package middleware_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	gosse "github.com/tmaxmax/go-sse"
)

// The client stack retries the gateway's 503s, then reads a stream that the
// model crashes out of: the cut comes back from the body as an error, not as
// the end of a complete answer.
func ExampleNewClient() {
	gw := gatewaytest.NewServer(gatewaytest.ChatStream(10))
	defer gw.Close()
	gw.Script(gatewaytest.Draining(10*time.Millisecond), gatewaytest.Cut(4)) // a 503, then a stream cut after 4 events

	client := middleware.NewClient(middleware.Config{Base: gw.Client().Transport})
	resp, err := client.Post(gw.URL+"/v1/chat/completions", "application/json", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()

	events := 0
	for _, err := range gosse.Read(resp.Body, nil) { // any SSE consumer works the same way
		var se *streamguard.Error
		if errors.As(err, &se) {
			fmt.Printf("after %d events: %s %s (attempt %d)\n", events, se.Source, se.Reason, gw.Requests())
			return
		}
		events++
	}
	// Output:
	// after 4 events: network truncated (attempt 2)
}

// A model server streams tokens behind NewHandler: a heartbeat keeps proxies
// from closing the stream while the model thinks, the budget ends a request
// that runs too long, and a failure after the 200 reaches the client as an
// "event: error" frame.
func ExampleNewHandler() {
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"chatcmpl-1\",\"choices\":[]}\n\n")
		http.NewResponseController(w).Flush()
		middleware.WriteError(w, r, errors.New("CUDA out of memory"))
	})
	handler := middleware.NewHandler(model, middleware.ServerConfig{
		Budget:    10 * time.Minute,
		Heartbeat: 15 * time.Second,
	})
	srv := httptest.NewServer(handler) // or &http.Server{Handler: handler}
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output:
	// data: {"id":"chatcmpl-1","choices":[]}
	//
	// data: {"error":{"message":"streamguard: model model_error: CUDA out of memory (the model's own error: read the error body and the model logs)","type":"model_error","code":"model_error","source":"model","reason":"model_error"},"type":"error","source":"model","reason":"model_error","message":"CUDA out of memory","retryable":false,"hint":"the model's own error: read the error body and the model logs"}
	// event: error
}

// A relay streams a model's answer to its own client. When the upstream
// stream is cut, WriteError ends the downstream stream with one failure
// frame that keeps the source and reason, so the relay's client knows what
// happened upstream.
func ExampleWriteError() {
	gw := gatewaytest.NewServer(gatewaytest.ChatStream(5))
	defer gw.Close()
	gw.Script(gatewaytest.Cut(2))
	upstream := middleware.NewClient(middleware.Config{Base: gw.Client().Transport})

	relay := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up, err := upstream.Get(gw.URL + "/v1/chat/completions")
		if err == nil {
			err = streamguard.Check(up)
		}
		if err != nil {
			middleware.WriteError(w, r, err) // before the header: the platform's JSON error
			return
		}
		defer up.Body.Close()
		w.Header().Set("Content-Type", "text/event-stream")
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Body.Read(buf) // whole events only, then the verdict
			w.Write(buf[:n])
			http.NewResponseController(w).Flush()
			if err == io.EOF {
				return
			}
			if err != nil {
				middleware.WriteError(w, r, err) // after the header: one failure frame
				return
			}
		}
	}), middleware.ServerConfig{})
	front := httptest.NewServer(relay)
	defer front.Close()

	resp, err := http.Get(front.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	for ev, err := range gosse.Read(resp.Body, nil) {
		if err != nil {
			break
		}
		if ev.Type == "error" {
			se := streamguard.ClassifyEvent([]byte(ev.Data))
			fmt.Println("failure frame:", se.Source, se.Reason, se.Message)
		}
	}
	// Output:
	// failure frame: network truncated unexpected EOF
}
