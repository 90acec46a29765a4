package gatewaytest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// The model handlers below serve streams that can be resumed, one for each
// protocol the sse package's guard resumes by. Like the other models they
// are deterministic: event i of a stream is always the same bytes, so a
// continuation can be compared with the uncut stream byte for byte. Behind
// a Gateway, each resume is a request of its own and gets its own fault.

// IDStream streams n chat-completion chunks and then data: [DONE], each
// event with an SSE id, "1" to "n+1", and honours Last-Event-ID: a request
// that carries k gets the events after k. A Last-Event-ID that is not a
// number from 0 to n+1 gets 404 with a JSON error.
func IDStream(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from := 1
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			k, err := strconv.Atoi(last)
			if err != nil || k < 0 || k > n+1 {
				writeJSONError(w, http.StatusNotFound, "no such event: "+strconv.Quote(last))
				return
			}
			from = k + 1
		}
		serveFrames(w, r, nil, from, n+1, func(w io.Writer, i int) {
			fmt.Fprintf(w, "id: %d\ndata: %s\n\n", i, idEvent(i, n))
		})
	})
}

// IDStreamEvent returns the i-th event (from 1) of IDStream(n), as sent.
func IDStreamEvent(i, n int) string {
	return fmt.Sprintf("id: %d\ndata: %s\n\n", i, idEvent(i, n))
}

func idEvent(i, n int) string {
	if i > n {
		return "[DONE]"
	}
	return ChatChunk(i - 1)
}

// ResumableStream streams n chat-completion chunks and data: [DONE] as a
// server with resumable streams does: the response carries the
// Resumable-Stream header naming the stream (128 random bits, in hex), and
// event i carries the id "{stream}.{i}", i from 1 to n+1. A request with
// Last-Event-ID "{stream}.{k}" is answered with the same header and the
// events after k, when it presents the credentials (the Authorization
// header) of the request that started the stream; an unknown stream, other
// credentials or a k past the end get 404 with a JSON error. Any method
// works; the request body is read and ignored. The handler remembers the
// last 65,536 streams.
func ResumableStream(n int) http.Handler {
	return &resumableStream{n: n, streams: newRegistry()}
}

type resumableStream struct {
	n       int
	streams *registry
}

func (h *resumableStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	name, from := "", 1
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		dot := strings.LastIndexByte(last, '.')
		k, err := strconv.Atoi(last[dot+1:])
		if dot < 0 || err != nil || k < 0 || k > h.n+1 || !h.streams.owns(last[:dot], r) {
			writeJSONError(w, http.StatusNotFound, "no such stream")
			return
		}
		name, from = last[:dot], k+1
	} else {
		name = h.streams.add(r, "")
	}
	serveFrames(w, r, http.Header{"Resumable-Stream": {name}}, from, h.n+1, func(w io.Writer, i int) {
		fmt.Fprintf(w, "id: %s.%d\ndata: %s\n\n", name, i, idEvent(i, h.n))
	})
}

// BackgroundResponses serves OpenAI Responses streams with n text deltas,
// resumable as OpenAI's background mode is. A POST to a path ending in
// /responses streams response.created (sequence_number 0, with the body's
// "background" flag), n response.output_text.delta events (1 to n) and
// response.completed (n+1). When the body says "background": true, a GET of
// that path plus "/{id}?stream=true&starting_after={k}" with the same
// Authorization header streams the events after k; an unknown response,
// other credentials or a k past the end get 404 with a JSON error.
func BackgroundResponses(n int) http.Handler {
	return &background{n: n, responses: newRegistry()}
}

type background struct {
	n         int
	responses *registry
}

func (h *background) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/responses") {
		var req struct {
			Background bool `json:"background"`
		}
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req)
		id := "resp_" + newName()
		if req.Background {
			h.responses.add(r, id)
		}
		h.stream(w, r, id, req.Background, 0)
		return
	}
	slash := strings.LastIndexByte(r.URL.Path, '/')
	id := r.URL.Path[slash+1:]
	k, err := strconv.Atoi(r.URL.Query().Get("starting_after"))
	if r.Method != http.MethodGet || r.URL.Query().Get("stream") != "true" || err != nil || k < 0 || k > h.n+1 || !h.responses.owns(id, r) {
		writeJSONError(w, http.StatusNotFound, "no such response")
		return
	}
	h.stream(w, r, id, true, k+1)
}

func (h *background) stream(w http.ResponseWriter, r *http.Request, id string, bg bool, from int) {
	serveFrames(w, r, nil, from, h.n+1, func(w io.Writer, i int) {
		io.WriteString(w, ResponsesEvent(id, bg, i, h.n))
	})
}

// ResponsesEvent returns the event with sequence number i of a
// BackgroundResponses stream of response id with n deltas, as sent.
func ResponsesEvent(id string, background bool, i, n int) string {
	resp := func(status string) string {
		return fmt.Sprintf(`{"id":%q,"object":"response","created_at":1,"status":%q,"background":%t,"model":"m","output":[]}`, id, status, background)
	}
	switch {
	case i == 0:
		return fmt.Sprintf("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":%s}\n\n", resp("in_progress"))
	case i <= n:
		return fmt.Sprintf("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"tok%d \"}\n\n", i, i-1)
	}
	return fmt.Sprintf("event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":%d,\"response\":%s}\n\n", i, resp("completed"))
}

// serveFrames writes frames from..to of an event stream, flushing each,
// with the extra headers h.
func serveFrames(w http.ResponseWriter, r *http.Request, h http.Header, from, to int, frame func(w io.Writer, i int)) {
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i := from; i <= to; i++ {
		if r.Context().Err() != nil {
			return
		}
		frame(w, i)
		if rc.Flush() != nil {
			return
		}
	}
}

// registry remembers the streams a model started and whose credentials
// started them (a hash of the Authorization header), up to 65,536 of them.
type registry struct {
	mu    sync.Mutex
	owner map[string][32]byte
	order []string
}

const maxStreams = 1 << 16

func newRegistry() *registry { return &registry{owner: make(map[string][32]byte)} }

func newName() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// add registers a stream started by r, under name, or a new random name
// when name is empty, and returns its name.
func (g *registry) add(r *http.Request, name string) string {
	if name == "" {
		name = newName()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.order) == maxStreams {
		delete(g.owner, g.order[0])
		g.order = g.order[1:]
	}
	g.owner[name] = sha256.Sum256([]byte(r.Header.Get("Authorization")))
	g.order = append(g.order, name)
	return name
}

// owns reports whether name is a stream r's credentials started.
func (g *registry) owns(name string, r *http.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	h, ok := g.owner[name]
	return ok && h == sha256.Sum256([]byte(r.Header.Get("Authorization")))
}
