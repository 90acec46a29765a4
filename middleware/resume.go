package middleware

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/trace"
)

// DefaultLinger is how long a resumable stream's work goes on after its
// client went away, waiting for a resume, when ResumeConfig.Linger is zero:
// 30 s, time for a client to notice the cut, back off and reconnect.
const DefaultLinger = 30 * time.Second

// MinLinger is the shortest linger a resumable stream gets: a
// ResumeConfig.Linger below it is raised to it, so that the writer's beats
// (every Linger/4) come often enough, through a store's latency, for a
// resume never to take a live writer for gone.
const MinLinger = 100 * time.Millisecond

// maxLastEventID bounds the Last-Event-ID a resume may present.
const maxLastEventID = 256

// errLinger is the cause a resumable stream's work is canceled with when
// no client came back within the linger.
var errLinger = errors.New("middleware: no client resumed the stream within its linger")

// errLingered ends a stream whose work the linger canceled, whatever
// failure the handler saw of it (a Relay's upstream read canceled): for
// resumes that come after, it was cut short on the server.
var errLingered = &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTruncated,
	StatusCode: http.StatusBadGateway, Retryable: true,
	Message: "no client resumed the stream within its linger: its work was canceled before the stream's end"}

// ResumeConfig turns on resumable streams on the server side (see the
// resume package for the protocol). The zero value keeps streams in an
// in-memory store of the handler's own (resume.NewMemoryStore with its
// defaults), with DefaultLinger.
type ResumeConfig struct {
	// Store keeps the events of the streams. Nil means an in-memory store
	// for the handler; replicas behind one load balancer share a Redis
	// store (module github.com/streamguard/streamguard/redisstore).
	Store resume.Store
	// Linger is how long the handler's work goes on, bounded by its
	// budget, after its client went away (and after the last client that
	// resumed it went away) before it is canceled. Zero means
	// DefaultLinger; below MinLinger means MinLinger.
	//
	// It bounds the other side too: a resume waiting for the next event of
	// a stream whose writer has shown no sign of life for Linger (no event
	// stored, and none of the writer's beats, which it sends every
	// Linger/4, at most 5 s, while the stream is quiet) ends with a
	// truncated failure event from the platform: the process writing the
	// stream went down. Replicas that share a store use the same Linger.
	//
	// And a client that reads nothing for a linger (one send blocked that
	// long: a half-open connection) counts as gone: its connection fails,
	// and the stream goes on being stored for a resume.
	Linger time.Duration
	// Stop, when closed, ends the work of every resumable stream whose
	// handler is still running, as a server shutting down does at the end
	// of its drain (after http.Server.Shutdown timed out): the handler's
	// context is canceled, and the stream ends, after the events stored,
	// with a truncated failure event from the platform, stored (so that
	// resumes at any replica sharing the store get it at once, not after
	// a linger without the writer's beats) and sent to its client if it
	// is still there; a request whose response had not begun gets 503
	// with Retry-After: 1 (inside NewHandler, whose writer knows whether
	// it began). The handlers return once their work stops; wait for
	// them (Shutdown again) before closing the store. Resumes being
	// served end with their request's context (cancel the server's
	// BaseContext). Nil means never.
	Stop <-chan struct{}
	// CredentialHeaders names request headers that carry credentials, in
	// addition to those the library knows (see Config.CredentialHeaders):
	// a resume must present the same values, compared by keyed hash.
	CredentialHeaders []string
}

func (c ResumeConfig) linger() time.Duration {
	if c.Linger > 0 {
		return max(c.Linger, MinLinger)
	}
	return DefaultLinger
}

// beat is how often a stream's readers and its writer show the store
// that they are there: a quarter of the linger, at most 5 s.
func (c ResumeConfig) beat() time.Duration {
	return min(c.linger()/4, 5*time.Second)
}

// Resumable makes the text/event-stream responses of the handler it wraps
// resumable, when cfg.Resume is set (otherwise it returns the handler as it
// is). Each stream gets a name (128 random bits, lower-case base32), sent in the
// Resumable-Stream header; each of its events gets the id
// "{name}.{seq}", seq from 1, and is appended to the store before it is
// sent. When the client goes away, the handler's work goes on (its context
// keeps the budget's deadline, not the client's cancellation) until it ends,
// or until no client has resumed it for the linger.
//
// A request with Last-Event-ID "{name}.{seq}" is a resume: it is answered
// from the store, without calling the handler, with the events after seq,
// the live tail and the end, when it presents the credentials of the request
// that began the stream. An unknown stream, another's credentials, or a seq
// past the stream's last event get 404; an expired stream 410 (to its
// owner, where the store says whose it was: resume.ExpiredError); a
// Last-Event-ID that is not one of this protocol's (or longer than 256
// bytes) 400, all as JSON errors. When the store is full a new request gets
// 503 with Retry-After, and the streams it holds are unharmed. When the
// store fails otherwise (Redis down), a new request is served without resume
// (no Resumable-Stream header, no ids; logged to ServerConfig.Logger), as a
// stream goes on unstored when the store fails in its middle; a resume gets
// 503 with Retry-After.
//
// A HEAD request without Last-Event-ID is passed to the handler as it is:
// its answer has no body to resume. (With one, it gets the header the GET
// would.)
func Resumable(cfg ServerConfig) func(http.Handler) http.Handler {
	if cfg.Resume == nil {
		return func(h http.Handler) http.Handler { return h }
	}
	rc := *cfg.Resume
	if rc.Store == nil {
		rc.Store = resume.NewMemoryStore(resume.MemoryConfig{})
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id := r.Header.Get(sse.LastEventIDHeader); id != "" {
				serveResume(w, r, rc, id)
				return
			}
			if r.Method == http.MethodHead {
				next.ServeHTTP(w, r)
				return
			}
			serveResumable(w, r, next, cfg, rc)
		})
	}
}

// b32 encodes stream names: lower-case base32 without padding, 26
// characters for 128 bits.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// serveResumable runs next for a new stream, through a resumeWriter. A
// full store answers 503; one that fails otherwise lets next serve the
// request without resume.
func serveResumable(w http.ResponseWriter, r *http.Request, next http.Handler, cfg ServerConfig, rc ResumeConfig) {
	var b [16]byte
	rand.Read(b[:])
	name := b32.EncodeToString(b[:])
	key, err := rc.Store.Key(r.Context())
	if err == nil {
		err = rc.Store.Create(r.Context(), name, resume.OwnerHash(key, r, rc.CredentialHeaders))
	}
	switch {
	case err == nil:
	case errors.Is(err, resume.ErrFull) || r.Context().Err() != nil:
		refuse(w, r, err)
		return
	default:
		// A store that fails (Redis down) costs new streams their resume,
		// not their service, as it does a stream it fails in the middle:
		// no Resumable-Stream header, no ids.
		cfg.log(r, "resume store failed: the request is served without resume", err)
		next.ServeHTTP(w, r)
		return
	}
	// The work outlives its client, not its budget.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	if dl, ok := r.Context().Deadline(); ok {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadlineCause(ctx, dl, streamguard.ErrBudgetExceeded)
		defer stop()
	}
	defer cancel(nil)
	rw := newResumeWriter(w, rc, name, ctx, cancel)
	rw.startBeats()
	defer func() { // after finish
		if last, err := rw.storeFailure(); err != nil {
			cfg.log(r, "resume store failed: stream "+name+" is stored up to event "+strconv.FormatUint(last, 10)+" at least (a store may keep part of the batch it refused)", err)
		}
	}()
	defer rw.finish()
	rw.watchStop(rc.Stop)
	stop := context.AfterFunc(r.Context(), rw.gone)
	defer stop()
	returned := false
	defer func() {
		if returned {
			return
		}
		// The handler panicked: its failure event is stored before the
		// deferred finish ends the stream (Recoverer, further out, comes
		// too late for that). The panic goes on, its stack intact.
		rw.endShort() // unless a failure event is stored below
		p := recover()
		if p == nil {
			return // runtime.Goexit: no panic to go on with (panic(nil) recovers non-nil)
		}
		if ow := findWriter(w); ow != nil && p != http.ErrAbortHandler {
			endPanic(ow, r)
		}
		panic(p)
	}()
	next.ServeHTTP(rw, r.WithContext(ctx))
	returned = true
	if errors.Is(context.Cause(ctx), errLinger) {
		rw.endShort() // its work canceled: whatever it sent last is not the end
	}
	if rw.stoppedShort() {
		// Unless the handler's own failure (errShutDown then) ended it.
		if ow := findWriter(w); ow != nil {
			ow.endStopped()
		} else {
			rw.fail(errShutDown)
		}
	}
	if ow := findWriter(w); ow != nil && errors.Is(context.Cause(ctx), streamguard.ErrBudgetExceeded) {
		// The budget's failure event ends the stream, stored with it, if
		// the Timeout layer has not written it yet: the handler may see
		// the deadline before that layer does.
		endBudget(cfg, ow, r, cfg.budget(r))
		ow.settle() // the budget's own callback may be writing it: not finished under it
	}
	rw.returned()
}

// serveResume answers a resume from the store.
func serveResume(w http.ResponseWriter, r *http.Request, rc ResumeConfig, id string) {
	name, seq, ok := sse.ParseEventID(id)
	if !ok || len(id) > maxLastEventID {
		WriteError(w, r, &streamguard.Error{StatusCode: http.StatusBadRequest, Source: streamguard.SourceRequest, Reason: streamguard.ReasonBadRequest,
			Message: "Last-Event-ID is not an event id of a resumable stream ({stream}.{seq})"})
		return
	}
	ctx := r.Context()
	info, err := rc.Store.Info(ctx, name)
	err = ownersOnly(ctx, rc, r, info.Owner, err)
	if err == nil && seq > info.Last {
		err = &streamguard.Error{StatusCode: http.StatusNotFound, Source: streamguard.SourceRequest, Reason: streamguard.ReasonNotFound,
			Message: "event " + strconv.FormatUint(seq, 10) + " is past the stream's last event, " + strconv.FormatUint(info.Last, 10)}
	}
	if err != nil {
		refuse(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set(sse.ResumableStreamHeader, name)
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush() // the header, even when the next event is far off
	if r.Method == http.MethodHead {
		return // the header says the resume would be served: no body to tail
	}
	t := &tailer{w: w, rc: rc, ctx: ctx, name: name, prefix: idPrefix(name), after: seq}
	defer t.finish()
	ow := findWriter(w)
	if ow != nil {
		// A failure event of the resume (its budget's, which may come while
		// it waits, or the store's) comes after the last event written, and
		// nothing after it.
		ow.onFailure(t.fail)
		ow.boundSends(ctx, rc.linger())
	}
	if err := t.run(ctx); err != nil {
		if ow == nil { // Resumable without NewHandler: WriteError would write JSON
			t.fail(storeError(err))
			return
		}
		WriteError(w, r, storeError(err))
	}
}

// ownersOnly turns a store's answer to Info (owner and err) into what r
// may learn of the stream: another's stream, live or expired, is
// ErrNotFound, never said to exist, and so is an expired one whose store
// cannot say whose it was (a plain ErrExpired).
func ownersOnly(ctx context.Context, rc ResumeConfig, r *http.Request, owner []byte, err error) error {
	var ex *resume.ExpiredError
	switch {
	case errors.As(err, &ex):
		owner = ex.Owner
	case errors.Is(err, resume.ErrExpired):
		return resume.ErrNotFound
	case err != nil:
		return err
	}
	key, kerr := rc.Store.Key(ctx)
	if kerr != nil {
		return kerr
	}
	if !resume.SameOwner(resume.OwnerHash(key, r, rc.CredentialHeaders), owner) {
		return resume.ErrNotFound
	}
	return err
}

// idPrefix is the start of the id line of stream name's events: "id:
// {name}." (the seq and an LF follow).
func idPrefix(name string) []byte { return []byte("id: " + name + ".") }

// appendStored appends a stored event as it was sent: its bytes, then its
// id line (prefix: idPrefix) and the blank line the store leaves out.
func appendStored(buf, prefix []byte, e resume.Event) []byte {
	buf = append(buf, e.Data...)
	buf = append(buf, prefix...)
	buf = strconv.AppendUint(buf, e.Seq, 10)
	return append(buf, "\n\n"...)
}

// refuse answers a request the store failed, before its header: a 503 asks
// the client to come back in a second.
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	e := storeError(err)
	var se *streamguard.Error
	if errors.As(e, &se) && se.StatusCode == http.StatusServiceUnavailable {
		tracing.Annotate(trace.SpanFromContext(r.Context()), se)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, se.StatusCode, errorMessage(se))
		return
	}
	WriteError(w, r, e)
}

// storeError is the answer to a store's failure.
func storeError(err error) error {
	e := &streamguard.Error{Source: streamguard.SourceRequest, Reason: streamguard.ReasonNotFound, StatusCode: http.StatusNotFound, Err: err}
	switch {
	case errors.As(err, new(*streamguard.Error)):
		return err
	case errors.Is(err, resume.ErrNotFound):
		e.Message = "no such stream"
	case errors.Is(err, resume.ErrExpired):
		e.StatusCode, e.Message = http.StatusGone, "the stream has expired"
	case errors.Is(err, resume.ErrTruncated):
		e.Source, e.Reason, e.StatusCode = streamguard.SourcePlatform, streamguard.ReasonTruncated, http.StatusBadGateway
		e.Message = "the stream broke off on the server before its end (its store refused events, or its handler aborted or was canceled): a resume gets the events stored only"
	case errors.Is(err, resume.ErrFull):
		e.Source, e.Reason, e.StatusCode = streamguard.SourcePlatform, streamguard.ReasonUnavailable, http.StatusServiceUnavailable
		e.Message = "the store of resumable streams is full"
	default:
		e.Source, e.Reason, e.StatusCode = streamguard.SourcePlatform, streamguard.ReasonUnavailable, http.StatusServiceUnavailable
		e.Message = "the store of resumable streams failed" // its error (Err) names internal hosts: kept for spans, not sent
	}
	return e
}
