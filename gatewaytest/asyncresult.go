package gatewaytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/streamguard/streamguard"
)

// serveModel runs the model, reporting a panic as a crash.
func serveModel(model http.Handler, w http.ResponseWriter, req *http.Request) (crashed bool) {
	defer func() {
		if recover() != nil {
			crashed = true
		}
	}()
	model.ServeHTTP(w, req)
	return false
}

// answered fills res from a model's (or a scripted) status and body.
func answered(res *streamguard.AsyncResult, status int, h http.Header, body []byte) *streamguard.AsyncResult {
	if status < 400 {
		switch {
		case len(bytes.TrimSpace(body)) == 0:
			res.Data = json.RawMessage("null")
		case json.Valid(body):
			res.Data = json.RawMessage(body)
		default:
			res.Data, _ = json.Marshal(string(body))
		}
		return res
	}
	msg := ""
	if e := streamguard.Classify(&http.Response{StatusCode: status, Header: h}, body); e != nil {
		msg = e.Message
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return failed(res, asyncCode(status), msg)
}

// asyncCode is the error code of a prediction that ended in status.
func asyncCode(status int) string {
	switch {
	case status < 500:
		return streamguard.AsyncModelInvalidInput
	case status == http.StatusBadGateway:
		return streamguard.AsyncModelUnavailable
	case status == http.StatusServiceUnavailable:
		return streamguard.AsyncModelNotReady
	case status == http.StatusGatewayTimeout:
		return streamguard.AsyncModelPredictTimeout
	}
	return streamguard.AsyncModelPredictError
}

func failed(res *streamguard.AsyncResult, code, msg string) *streamguard.AsyncResult {
	res.Data = nil
	res.Errors = append(res.Errors, streamguard.AsyncError{Code: code, Message: msg})
	return res
}

// outputWriter keeps a model's answer for the webhook, up to maxAsyncOutput
// bytes.
type outputWriter struct {
	header http.Header
	code   int
	buf    bytes.Buffer
	over   bool
}

func (o *outputWriter) Header() http.Header { return o.header }

func (o *outputWriter) WriteHeader(code int) {
	if o.code == 0 && code >= 200 {
		o.code = code
	}
}

func (o *outputWriter) Write(p []byte) (int, error) {
	if o.code == 0 {
		o.code = http.StatusOK
	}
	if room := maxAsyncOutput - o.buf.Len(); len(p) > room {
		o.buf.Write(p[:room])
		o.over = true
		return room, errors.New("gatewaytest: async output over its limit")
	}
	return o.buf.Write(p)
}

// Flush lets a streaming model run: async output is kept whole.
func (o *outputWriter) Flush() {}

func (o *outputWriter) status() int {
	if o.code == 0 {
		return http.StatusOK
	}
	return o.code
}
