package sse

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// DefaultMaxResumes is how many times the guard resumes one stream when
// ResumeConfig.MaxResumes is zero: 5. A stream that breaks more often than
// that is not suffering a blip, and each resume costs a new request.
const DefaultMaxResumes = 5

// DefaultMaxResumeWait caps the wait before a resume when
// ResumeConfig.MaxWait is zero: 10 s, whatever a stream's retry: field asks
// for, and the backoff's longest wait.
const DefaultMaxResumeWait = 10 * time.Second

// ErrResumeMismatch is the cause of a resume_mismatch failure, beside the
// original failure: the continuation a server sent after a resume did not
// start right after the last event delivered.
var ErrResumeMismatch = errors.New("sse: the resumed stream does not continue after the last event delivered")

// ResumeConfig configures how the guard continues an event stream that
// breaks. The zero value resumes, wherever a Resumer of DefaultResumers
// applies, a stream that was truncated or stalled, up to DefaultMaxResumes
// times, each within the request's own deadline.
//
// A resume is spliced into the same response body: the reader sees one
// stream, every event once and in order, and io.EOF at its end. The guard
// never delivers an event twice and never skips one: when the server's
// continuation does not start right after the last event delivered, the
// stream fails with resume_mismatch, its original failure kept as the
// cause. A resume request that gets no response (the network failed again)
// counts as a resume and is tried again while resumes remain; one answered
// with an error status (404 or 410 for a stream the server no longer holds,
// 401, 5xx) ends the stream with its original failure, the resume's error
// added as context. The error's Resumes says how many resumes were tried.
type ResumeConfig struct {
	// Off turns resuming off: a broken stream fails at once, with its
	// verdict.
	Off bool
	// MaxResumes caps the resumes of one stream. Zero means
	// DefaultMaxResumes (5).
	MaxResumes int
	// MaxWait caps the wait before a resume: the value of a stream's
	// retry: field, and each wait of Backoff. Zero means
	// DefaultMaxResumeWait (10 s). A wait that would end past the request's
	// deadline is not waited: the stream fails instead.
	MaxWait time.Duration
	// Backoff gives the waits before the resumes of one stream that sent
	// no retry: field; it is called once per stream, when the first resume
	// is due. Nil means an exponential backoff from 100 ms, doubling, with
	// ±50 % jitter, each wait capped at MaxWait.
	Backoff func() backoff.BackOff
	// Resumers are the protocols the guard can resume by, tried in order on
	// each event stream: the first whose Begin returns a state follows the
	// stream. Nil means DefaultResumers().
	Resumers []Resumer
	// Transport sends the resume requests. Nil means the transport that
	// NewTransport wraps. Guard, which does not know the transport a
	// response came from, resumes only when Transport is set.
	Transport http.RoundTripper
	// Budget, if set, is a retry budget the resumes draw on: a resume that
	// repeats a failed repair (the resume before it brought nothing: it
	// got no answer, or its continuation broke before a byte of it, a
	// comment included, was delivered) asks it first; a stream's first
	// resume, and one after the stream went on (a new cut), do not. A resume answered with a continuation refunds it. When a server is
	// down, its streams then stop resuming once the budget is spent,
	// instead of each trying MaxResumes times. Nil means none. The
	// middleware package's client stack sets its retry budget here (a
	// *retry.Throttle, shared with its retries).
	Budget ResumeBudget
}

// ResumeBudget is a retry budget shared by many streams (see
// ResumeConfig.Budget); *retry.Throttle is one. Its methods are called
// from the goroutines that read the streams, concurrently.
type ResumeBudget interface {
	// Spend takes one retry from the budget and reports whether it may go
	// ahead.
	Spend() bool
	// Refund reports a retry that succeeded.
	Refund()
}

// A Resumer teaches the guard one way to continue a broken event stream:
// how to tell that a stream can be continued, how to ask for the
// continuation, and how to check that the continuation starts where the
// stream broke. DefaultResumers lists the built-in ones; a Resumer of your
// own teaches the guard another vendor's protocol without a fork.
type Resumer interface {
	// Name names the protocol in spans, metrics and errors: a short
	// lower-case word such as "sse-id".
	Name() string
	// Begin is called once for each guarded 2xx event stream, with the
	// response (its Request set). It returns the state that follows the
	// stream, or nil when the protocol does not apply to it. It must not
	// read the body.
	Begin(resp *http.Response) ResumeState
}

// ResumeState follows one stream for its Resumer. The guard calls it from
// the goroutine that reads the body, never concurrently. The slices it is
// given are valid only during the call.
type ResumeState interface {
	// Event is called with each event the guard delivers, in order: its
	// type (nil when it has no event field), its id field (nil when it has
	// none; an id does not carry over to the events after it here), and
	// its data (lines joined by "\n"). It returns false when the stream
	// turns out not to be resumable by this protocol after all; the guard
	// then stops following it, and its events cost nothing more.
	Event(typ, id, data []byte) bool
	// Request returns the request that asks for the continuation of the
	// stream, right after the last event given to Event, with ctx as its
	// context. It returns nil and no error when the stream cannot be
	// continued from there (its last event carried no id). An error ends
	// the stream with its original failure.
	Request(ctx context.Context) (*http.Request, error)
	// Continues is called with the first event of a continuation, before
	// Event (the built-in resumable-stream state's, with every event of a
	// continuation): it reports whether the event is the one right after
	// the last event delivered. False ends the stream with resume_mismatch,
	// and the event is not delivered.
	Continues(typ, id, data []byte) bool
}

// DefaultResumers returns the built-in resumers, in the order the guard
// tries them:
//
//   - "resumable-stream": a response with the Resumable-Stream header,
//     whose events carry ids "{stream}.{seq}", as this library's server
//     side sends them: the same request (method, URL, headers, and the body
//     again through Request.GetBody) with Last-Event-ID ("{stream}.0"
//     before the first event). The continuation must start at seq+1, or
//     with an error event without an id (the server's failure of the
//     resume, such as its budget), which then ends the stream.
//   - "responses": an OpenAI Responses stream of a background response
//     (POST .../responses whose response.created says "background": true):
//     GET .../responses/{id}?stream=true&starting_after={n} with the
//     original request's headers (and its query's other pairs, as sent). The continuation must start at
//     sequence_number n+1.
//   - "sse-id": a GET whose events carry id fields, as the SSE standard
//     has it: the same GET with Last-Event-ID (without it when no event
//     was delivered yet, as an EventSource reconnects). The
//     continuation's first event must carry an id other than the last one
//     delivered and the stream's first; while the ids have been
//     consecutive integers, it must be the next one.
//
// A stream is resumed from its last event only when that event carried
// an id (or a sequence number): otherwise a continuation from an earlier id
// would deliver an event twice.
func DefaultResumers() []Resumer {
	return []Resumer{ResumableStreamResumer{}, ResponsesResumer{}, SSEIDResumer{}}
}

// defaultResumers is DefaultResumers, built once.
var defaultResumers = DefaultResumers()

func (c ResumeConfig) maxResumes() int {
	if c.MaxResumes > 0 {
		return c.MaxResumes
	}
	return DefaultMaxResumes
}

func (c ResumeConfig) maxWait() time.Duration {
	if c.MaxWait > 0 {
		return c.MaxWait
	}
	return DefaultMaxResumeWait
}

func (c ResumeConfig) backoff() backoff.BackOff {
	if c.Backoff != nil {
		return c.Backoff()
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.Multiplier = 2
	b.RandomizationFactor = 0.5
	b.MaxInterval = c.maxWait()
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// begin finds the resumer that follows the stream of resp, when resuming
// is on and rt can send its resumes.
func (c ResumeConfig) begin(resp *http.Response, rt http.RoundTripper) (ResumeState, string) {
	if c.Off || rt == nil || resp.Request == nil {
		return nil, ""
	}
	rs := c.Resumers
	if rs == nil {
		rs = defaultResumers
	}
	for _, r := range rs {
		if st := r.Begin(resp); st != nil {
			return st, r.Name()
		}
	}
	return nil, ""
}
