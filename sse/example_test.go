package sse_test

import (
	"errors"
	"fmt"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// A stream cut after three events: go-sse's Read, alone, would end it as a
// success. Through the guard it yields the three whole events and then the
// verdict.
func ExampleNewTransport() {
	gw := gatewaytest.NewServer(gatewaytest.ChatStream(10))
	defer gw.Close()
	gw.Script(gatewaytest.Cut(3)) // the model crashes after three events

	client := gw.Client()
	client.Transport = sse.NewTransport(client.Transport, sse.Config{})
	resp, err := client.Get(gw.URL + "/v1/chat/completions")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()

	events := 0
	for _, err := range gosse.Read(resp.Body, nil) {
		var se *streamguard.Error
		if errors.As(err, &se) {
			fmt.Println(events, "events, then:", se.Source, se.Reason)
			break
		}
		events++
	}
	// Output:
	// 3 events, then: network truncated
}
