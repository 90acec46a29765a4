package sse

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ResponsesResumer resumes an OpenAI Responses stream in background mode
// (see DefaultResumers).
type ResponsesResumer struct{}

// Name returns "responses".
func (ResponsesResumer) Name() string { return "responses" }

// Begin follows the stream of a POST to a path ending in /responses; the
// stream's response.created decides whether it is a background response,
// the only kind that can be continued.
func (ResponsesResumer) Begin(resp *http.Response) ResumeState {
	r := resp.Request
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/responses") {
		return nil
	}
	return &responsesState{req: r}
}

// responsesState follows a Responses stream.
type responsesState struct {
	req *http.Request
	id  string // the response's id, from response.created
	seq uint64 // the last delivered event's sequence_number
	ok  bool   // the last delivered event carried one
}

// created is what the guard reads of response.created.
type created struct {
	Type     string  `json:"type"`
	Sequence *uint64 `json:"sequence_number"`
	Response struct {
		ID         string `json:"id"`
		Background bool   `json:"background"`
	} `json:"response"`
}

func (s *responsesState) Event(_, _, data []byte) bool {
	if s.id == "" {
		// The first event: response.created, of a background response,
		// with an id that is safe in a path.
		var c created
		if json.Unmarshal(data, &c) != nil || c.Type != "response.created" || !c.Response.Background ||
			c.Sequence == nil || !ValidResponseID(c.Response.ID) {
			return false
		}
		s.id, s.seq, s.ok = c.Response.ID, *c.Sequence, true
		return true
	}
	if seq, ok := sequenceNumber(data); ok {
		s.seq, s.ok = seq, true
	} // an event without one (a keepalive, an error) leaves the position
	return true
}

// Continues takes the event numbered right after the last delivered. A
// keepalive or an error without a sequence_number passes: it is not one of
// the numbered events, and leaves the position where it was, so the
// numbered event after it is checked (later) as the first would have been.
// Any other event without one is not of this stream.
func (s *responsesState) Continues(typ, id, data []byte) bool {
	if _, ok := sequenceNumber(data); !ok {
		t := string(eventType(typ, data))
		return t == "keepalive" || t == "error"
	}
	return s.later(typ, id, data)
}

// later checks a continuation's later events as its first (see
// laterChecker).
func (s *responsesState) later(_, _, data []byte) bool {
	seq, ok := sequenceNumber(data)
	return !ok || seq == s.seq+1
}

func (s *responsesState) Request(ctx context.Context) (*http.Request, error) {
	if !s.ok {
		return nil, nil
	}
	u := *s.req.URL
	esc := u.EscapedPath() // keeps escapes (%2F) the path was sent with
	u.Path += "/" + s.id   // s.id is of [A-Za-z0-9_-]
	u.RawPath = esc + "/" + s.id
	u.RawQuery = resumeQuery(u.RawQuery, s.seq)
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	r.Host = s.req.Host // the virtual host the request named, as Clone keeps it
	r.Header = s.req.Header.Clone()
	for _, h := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Idempotency-Key", LastEventIDHeader} {
		r.Header.Del(h)
	}
	r.Header.Set("Accept", "text/event-stream")
	return r, nil
}

// resumeQuery is the query of a Responses resume: the request's own pairs
// as they were sent (Go's parser would drop some, such as one holding a
// ';', and re-encode the rest), less any stream and starting_after, then
// stream=true&starting_after=seq.
func resumeQuery(raw string, seq uint64) string {
	var b strings.Builder
	for pair := range strings.SplitSeq(raw, "&") {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); pair == "" || (err == nil && (k == "stream" || k == "starting_after")) {
			continue
		}
		b.WriteString(pair)
		b.WriteByte('&')
	}
	b.WriteString("stream=true&starting_after=")
	b.WriteString(strconv.FormatUint(seq, 10))
	return b.String()
}

// ValidResponseID reports whether id is safe to put in a URL path: 1 to 256
// ASCII letters, digits, '_' and '-'.
func ValidResponseID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// sequenceNumber finds the top-level "sequence_number" of a Responses
// event without decoding it (an item's own, nested, may come first: an MCP
// tool's input schema, in the order openai-python writes the fields).
func sequenceNumber(data []byte) (uint64, bool) {
	const key = `"sequence_number"`
	for off := 0; off < len(data); {
		i := bytes.Index(data[off:], []byte(key))
		if i < 0 {
			return 0, false
		}
		i += off
		off = i + len(key)
		j := skipSpace(data, off)
		if j >= len(data) || data[j] != ':' || !topLevel(data[:i]) {
			continue
		}
		j = skipSpace(data, j+1)
		k := j
		for k < len(data) && data[k] >= '0' && data[k] <= '9' {
			k++
		}
		return parseSeq(data[j:k])
	}
	return 0, false
}
