// Package webhook receives the results of async predictions: the POST the
// platform sends to the webhook endpoint of an async request when it
// completes.
//
// An async request fails in two places. The submit (a POST to
// /async_predict or /async_run_remote) fails only when the request cannot be
// queued, and streamguard.AsyncRequestID classifies that answer: a 429
// CAPACITY_EXCEEDED, a 413 over the 256 KiB async limit, and so on. Any
// failure after that (the model crashed, timed out after 3600 s, rejected
// its input) is not reported to the submitter at all: it arrives later, in
// the errors array of the result posted to the webhook, which is empty on
// success:
//
//	{"request_id", "model_id", "deployment_id", "type", "time", "data", "errors": [{"code", "message"}]}
//
// NewHandler turns that POST into a call of your Func with the decoded
// streamguard.AsyncResult and its errors as *streamguard.Error values, with
// the same sources, reasons and hints as the sync path: MODEL_UNAVAILABLE is
// the platform's unreachable container, MODEL_PREDICT_ERROR the model's own
// error, and so on (see streamguard.ClassifyAsync).
//
// # Trust
//
// Anyone can POST to a webhook URL. The platform signs each body with the
// webhook secret, in the X-BASETEN-SIGNATURE header: "v1=" and the hex
// HMAC-SHA256 of the raw body. The handler checks it before it parses the
// body, in constant time, against every secret it was given: while a secret
// is being rotated the old and the new one are both valid (for 24 hours), and
// a header may carry one v1= entry per secret, separated by commas. A
// request without a valid signature gets 401 and never reaches your Func. The
// body is read only up to Config.MaxBody (1 MiB by default; 413 past it), so
// an unauthenticated sender cannot make the receiver hold more. Secrets and
// signatures are never logged or echoed.
//
// # Delivery
//
// The handler answers 200 only after your Func returns nil. When it returns
// an error the answer is 500, and the platform sends the result again (it
// retries 500, 502, 503 and 504); it keeps no copy of a result it could not
// deliver. A result may therefore arrive more than once: make your Func
// idempotent, keyed by the request ID, and keep it short (hand long work to
// a queue and return). The signature covers the body, not when it was sent:
// a captured delivery verifies for ever. Config.MaxAge turns away results
// older than it (set it above the platform's retry window).
//
// Sign and Verify expose the signature scheme for tests of a receiver and for
// receivers built on something other than net/http.
//
// The package needs only the standard library and the root package, and
// everything in it is safe for concurrent use.
package webhook
