package sse

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
)

// ResumableStreamHeader is the response header by which a server declares
// that it keeps its stream for a resume; its value names the stream, and the
// stream's event ids are "{stream}.{seq}". The server side of this library
// sends it when resume is on.
const ResumableStreamHeader = "Resumable-Stream"

// LastEventIDHeader is the request header that asks for the events after
// the one it names.
const LastEventIDHeader = "Last-Event-ID"

// ResumableStreamResumer resumes the streams a server declares resumable
// with the Resumable-Stream header (see DefaultResumers).
type ResumableStreamResumer struct{}

// Name returns "resumable-stream".
func (ResumableStreamResumer) Name() string { return "resumable-stream" }

// Begin follows a response whose Resumable-Stream header holds a stream
// name (16 to 64 lower-case letters and digits), to a request whose body,
// if any, can be sent again through GetBody. A request that is itself a
// resume (its Last-Event-ID "{stream}.{seq}", an EventSource's reconnect)
// is followed from there, when its answer is that stream.
func (ResumableStreamResumer) Begin(resp *http.Response) ResumeState {
	name := resp.Header.Get(ResumableStreamHeader)
	if !ValidStreamName(name) || !replayable(resp.Request) {
		return nil
	}
	// Before its first event the stream resumes from "{stream}.0": the
	// server has begun the work, and sends the stream from its start.
	st := &streamState{req: resp.Request, name: name, ok: true}
	if lei := resp.Request.Header.Get(LastEventIDHeader); lei != "" {
		stream, seq, ok := ParseEventID(lei)
		if !ok || stream != name {
			return nil // an answer that is not the stream asked for
		}
		st.seq = seq
	}
	return st
}

// ValidStreamName reports whether s is a valid Resumable-Stream name: 16 to
// 64 characters, lower-case ASCII letters and digits (128 random bits in
// hex or base32 fit).
func ValidStreamName(s string) bool {
	if len(s) < 16 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ParseEventID splits an event id "{stream}.{seq}" of a resumable stream,
// as a Last-Event-ID names it: seq 0 asks for the stream from its first
// event. seq is written as the server writes it: decimal, without a sign
// or a leading zero (an id has one spelling), any uint64.
func ParseEventID(id string) (stream string, seq uint64, ok bool) {
	dot := strings.LastIndexByte(id, '.')
	if dot < 0 || !ValidStreamName(id[:dot]) {
		return "", 0, false
	}
	digits := id[dot+1:]
	if digits == "" || digits[0] < '0' || digits[0] > '9' || (digits[0] == '0' && len(digits) > 1) {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return id[:dot], seq, true
}

// streamState follows a Resumable-Stream stream.
type streamState struct {
	req  *http.Request
	name string
	seq  uint64 // the last delivered event's sequence number
	ok   bool   // the last delivered event carried this stream's id
}

func (s *streamState) seqOf(id []byte) (uint64, bool) {
	if len(id) <= len(s.name)+1 || string(id[:len(s.name)]) != s.name || id[len(s.name)] != '.' {
		return 0, false
	}
	return parseSeq(id[len(s.name)+1:])
}

func (s *streamState) Event(typ, id, _ []byte) bool {
	if len(id) == 0 && string(typ) == "error" {
		return true // the server's failure, not one of the stream's events
	}
	s.seq, s.ok = s.seqOf(id)
	return true
}

// Continues takes the event after the last one delivered, or an error
// event without an id: the server's failure of the resume itself (its
// budget), which is not one of the stream's events, as the server side
// sends it.
func (s *streamState) Continues(typ, id, _ []byte) bool {
	if len(id) == 0 && string(typ) == "error" {
		return true
	}
	seq, ok := s.seqOf(id)
	return ok && seq == s.seq+1
}

// later checks a continuation's later events as its first: each id is
// the one after the last (see laterChecker).
func (s *streamState) later(typ, id, data []byte) bool { return s.Continues(typ, id, data) }

func (s *streamState) Request(ctx context.Context) (*http.Request, error) {
	if !s.ok {
		return nil, nil
	}
	r, err := again(ctx, s.req)
	if err != nil {
		return nil, err
	}
	r.Header.Set(LastEventIDHeader, s.name+"."+strconv.FormatUint(s.seq, 10))
	return r, nil
}

// SSEIDResumer resumes a GET whose events carry ids, by the SSE standard's
// Last-Event-ID (see DefaultResumers).
type SSEIDResumer struct{}

// Name returns "sse-id".
func (SSEIDResumer) Name() string { return "sse-id" }

// Begin follows the event stream of a GET without a body.
func (SSEIDResumer) Begin(resp *http.Response) ResumeState {
	r := resp.Request
	if r.Method != http.MethodGet || (r.Body != nil && r.Body != http.NoBody) {
		return nil
	}
	return &idState{req: r, counting: true, rising: true}
}

// idState follows a stream with SSE ids.
type idState struct {
	req      *http.Request
	last     []byte // the last delivered event's id; nil when it had none
	first    []byte // the first id of the stream
	ids      int    // ids seen
	events   int    // events delivered
	num      uint64 // last, as a number, while counting
	counting bool   // every id so far is a decimal integer one above the one before it
	rising   bool   // every id so far is a decimal integer above the one before it
}

// followsIDOnly: a block with an id and no data moves the position (see
// idFollower).
func (*idState) followsIDOnly() {}

func (s *idState) Event(_, id, _ []byte) bool {
	s.events++
	if id == nil {
		// A stream whose first event has no id is not resumed by id:
		// stop following it, so that its events cost nothing more.
		s.last = s.last[:0:0]
		return s.ids > 0
	}
	n, isNum := parseSeq(id)
	s.counting = s.counting && isNum && (s.ids == 0 || n == s.num+1)
	s.rising = s.rising && isNum && (s.ids == 0 || n > s.num)
	s.num = n
	// Whole: a resume sends the id as it came, and a continuation is
	// compared with it (an event's size bounds it).
	if s.ids == 0 {
		s.first = bytes.Clone(id)
	}
	s.ids++
	s.last = append(s.last[:0], id...)
	return true
}

func (s *idState) Continues(_, id, _ []byte) bool {
	switch {
	case s.events == 0:
		return true // nothing delivered: any start follows on
	case id == nil || bytes.Equal(id, s.last) || bytes.Equal(id, s.first):
		return false
	case s.counting && s.ids >= 2:
		n, ok := parseSeq(id)
		return ok && n == s.num+1
	case s.counting:
		n, ok := parseSeq(id)
		return !ok || n > s.num
	}
	return true
}

// later checks a continuation's later events (see laterChecker): while
// the ids are rising numbers, none goes back or repeats; none is the
// stream's first (a restart). A number further ahead than the next passes,
// as it does in a stream not cut (a server may number from a shared
// sequence). An event without an id, or with an empty one, passes: it
// stops the stream's resumes, not its delivery.
func (s *idState) later(_, id, _ []byte) bool {
	if len(id) == 0 {
		return true
	}
	if s.rising && s.ids >= 2 {
		if n, ok := parseSeq(id); ok && n <= s.num {
			return false
		}
	}
	return !bytes.Equal(id, s.first)
}

func (s *idState) Request(ctx context.Context) (*http.Request, error) {
	switch {
	case s.events == 0:
		// Nothing delivered yet: the same GET again, as an EventSource
		// reconnects.
		return s.req.Clone(ctx), nil
	case len(s.last) == 0 || len(s.last) > maxIDBytes || !sendableID(s.last):
		// No id to resume from, or one no server should be sent (past 1
		// KiB), or one no header can carry (a control character).
		return nil, nil
	}
	r := s.req.Clone(ctx)
	r.Header.Set(LastEventIDHeader, string(s.last))
	return r, nil
}

// sendableID reports whether an event id can be a header's value: no
// control character but a tab (the SSE spec allows any but NUL, CR and LF;
// net/http refuses the others in a header).
func sendableID(id []byte) bool {
	for _, c := range id {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// parseSeq parses a decimal sequence number of at most 18 digits.
func parseSeq(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// replayable reports whether r's body can be sent again.
func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// again returns a copy of r with ctx and a fresh body, for a resume that
// sends the same request again.
func again(ctx context.Context, r *http.Request) (*http.Request, error) {
	c := r.Clone(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		body, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		c.Body = body
	}
	return c, nil
}
