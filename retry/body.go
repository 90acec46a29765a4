package retry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/streamguard/streamguard"
)

// bodySource hands out the body of each attempt of one request.
type bodySource struct {
	first   io.ReadCloser                 // the first attempt's body; nil when the request has none
	getBody func() (io.ReadCloser, error) // a fresh copy of the body for a retry
	replay  bool                          // the request can be sent again
	// buffered is set when the body was read into memory; then getBody
	// replays it and is set as each attempt's GetBody.
	buffered bool
}

// newBodySource prepares req's body for replay: through GetBody when the
// request has one, by reading it into memory when its length is known and at
// most limit, not at all otherwise (the request is sent once). On failure it
// has closed req.Body, as RoundTrip must.
func newBodySource(req *http.Request, limit int64) (bodySource, error) {
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return bodySource{replay: true}, nil
	case req.GetBody != nil:
		return bodySource{first: req.Body, getBody: req.GetBody, replay: true}, nil
	case req.ContentLength <= 0 || req.ContentLength > limit:
		return bodySource{first: req.Body}, nil
	}
	// Read one byte past the declared length so that a body longer than it
	// fails here, as it would in the transport, and not in a later attempt.
	buf := make([]byte, req.ContentLength+1)
	n, err := io.ReadFull(req.Body, buf)
	req.Body.Close()
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		err = nil
	case err == nil:
		err = fmt.Errorf("http: ContentLength=%d with a longer Body", req.ContentLength)
	}
	if err == nil && int64(n) != req.ContentLength {
		err = fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	if err != nil {
		return bodySource{}, &streamguard.Error{
			Source:  streamguard.SourceRequest,
			Reason:  streamguard.ReasonBadRequest,
			Message: streamguard.Sanitize("reading the request body: "+err.Error(), streamguard.MaxMessage),
			Err:     err,
		}
	}
	buf = buf[:n:n]
	get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	first, _ := get()
	return bodySource{first: first, getBody: get, replay: true, buffered: true}, nil
}

// next returns the body of a retry, nil when the request has none.
func (s *bodySource) next() (io.ReadCloser, error) {
	if s.getBody == nil {
		return nil, nil
	}
	return s.getBody()
}

// bodyUnread reports whether the transport certainly did not read any of
// an attempt's body: a failure before the first read cannot have sent it to
// a server. It knows the in-memory readers that http.NewRequest and
// newBodySource give bodies and GetBody (*bytes.Reader, *strings.Reader,
// *bytes.Buffer, bare or in io.NopCloser), and reports false (perhaps read)
// for any other body. Observing the body this way, rather than wrapping it,
// keeps net/http's single write of the headers and a body it knows to be in
// memory. Call it only after the round trip returned: the transport no
// longer reads the body then.
func bodyUnread(body io.Reader, contentLength int64) bool {
	if contentLength <= 0 {
		return false
	}
	if t := reflect.TypeOf(body); t == nopCloserType || t == nopCloserWriterToType {
		body = reflect.ValueOf(body).Field(0).Interface().(io.Reader)
	}
	var unread int
	switch r := body.(type) {
	case *bytes.Reader:
		unread = r.Len()
	case *strings.Reader:
		unread = r.Len()
	case *bytes.Buffer:
		unread = r.Len()
	default:
		return false
	}
	return int64(unread) == contentLength
}

// The types io.NopCloser returns, as net/http finds them.
var (
	nopCloserType         = reflect.TypeOf(io.NopCloser(nil))
	nopCloserWriterToType = reflect.TypeOf(io.NopCloser(struct {
		io.Reader
		io.WriterTo
	}{}))
)

// errDiscarded is what a retained error response's body returns past its
// first streamguard.MaxErrorBody bytes: the rest was not read before the
// connection was given up to retry.
var errDiscarded = errors.New("retry: the rest of this error body was discarded before the retry")
