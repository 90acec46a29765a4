// Package gatewaytest provides an inference gateway for tests, in the manner
// of net/http/httptest: a Server on a loopback address, in front of a model
// handler, that injects the platform's faults by a per-request script.
//
//	srv := gatewaytest.NewServer(gatewaytest.ChatStream(10))
//	defer srv.Close()
//	srv.Script(gatewaytest.Draining(0), gatewaytest.Draining(0)) // 503, 503, then pass through
//	resp, err := client.Get(srv.URL + "/v1/chat/completions")
//
// The faults are the ones the platform's inference-error guide and its
// gateway produce:
//
//   - 502 {"error": "Error making prediction"}: the model's container crashed
//     or restarted (Unreachable);
//   - 502 {"error": "client closed connection"} (ClientClosed);
//   - 503 draining, with Retry-After and Retry-After-Ms for a positive wait
//     (Draining);
//   - 504 after a delay (GatewayTimeout);
//   - 413 with "payload size of X bytes exceeds maximum size of Y bytes", for
//     bodies over Gateway.MaxBody or on demand (PayloadTooLarge): a declared
//     Content-Length over the cap is refused before upload, the body unread;
//     a body of unknown length is counted past the cap for at most 4 MiB and
//     2 s, and when it has not ended by then the message reads "payload size
//     of at least X bytes";
//   - 429, with Retry-After and Retry-After-Ms for a positive wait
//     (RateLimited);
//   - any status and body, such as a proxy's HTML page (Status);
//   - a stream cut in the middle of an event and of an HTTP/1.1 chunk, the
//     connection hijacked and closed with no terminating chunk (Cut; an
//     HTTP/1.0 client sees a clean end);
//   - a stream that ends cleanly without its terminal event (EndEarly);
//   - a stream that stalls with the connection open (Stall);
//   - an HTTP/2 RST_STREAM mid-stream, on a NewTLSServer (Reset).
//
// Requests past the script are passed through, or get the fault
// Gateway.Choose picks (for a random fault mix under load). The gateway
// counts requests and request body bytes and keeps a Record of each request
// (method, path, headers, body) for assertions; Server.OpenConns counts the
// connections the server holds, to find leaks.
//
// Gateway.EnableAsync adds the platform's async route: a POST to a path ending
// in /async_predict is answered 201 {"request_id"} at once, the model runs in
// the background, and its result (or the fault's error code) is posted to a
// webhook URL, signed as the platform signs it.
//
// The stream faults count events as an SSE client sees them: in a
// text/event-stream only the blocks with a data field (see Kind).
//
// The model handlers stand in for a model server: ChatStream,
// AnthropicStream, ResponsesStream and ErrorStream (SSE);
// ChatStreamWithUsage, AnthropicStreamWithUsage and ResponsesStreamWithUsage
// (the same, reporting token usage); OllamaStream and OllamaError (JSON
// lines); JSONArrayStream (a Gemini JSON array); IDStream, ResumableStream
// and BackgroundResponses (streams a client can resume); JSON and Echo.
//
// Everything here is safe for concurrent use.
package gatewaytest
