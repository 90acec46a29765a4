package middleware_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// TestResumableEventSizeWhole: an event larger than 8 MiB as the client's
// guard counts it (with the id line the writer adds) ends a resumable
// stream with event_too_large after the events before it, and one of
// exactly 8 MiB is stored and sent, and passes the client's guard, however
// the handler's writes split it: an oversized event written whole in one
// write used to be stored and sent, the same bytes in pieces failed. So
// does a comment block, which the client's guard counts the same way.
func TestResumableEventSizeWhole(t *testing.T) {
	const max = sse.DefaultMaxEventBytes
	const idLen = len("id: ") + 26 + len(".2\n") // a stream's name is 26 characters
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		for _, kind := range []string{"data", "comment"} {
			for _, size := range []int{max, max + 1} {
				head := "data: "
				if kind == "comment" {
					head = ": "
				}
				// size bytes as the client's guard counts them: the blank
				// line as one byte, with the id line the writer adds.
				before := size - 1
				if kind == "data" {
					before -= idLen
				}
				big := head + strings.Repeat("x", before-len(head)-len(eol)) + eol + eol
				stream := "data: 1" + eol + eol + big + "data: 3" + eol + eol
				at := len("data: 1"+eol+eol) + before
				for _, splits := range [][]int{nil, {at - 100}, {at + 1}, {len(stream) - 1}} {
					checkEventSize(t, eol, kind, size, stream, splits)
				}
			}
		}
	}
}

// checkEventSize runs one case of TestResumableEventSizeWhole: stream
// written in pieces cut at splits.
func checkEventSize(t *testing.T, eol, kind string, size int, stream string, splits []int) {
	t.Helper()
	var werr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		from := 0
		for _, to := range append(splits, len(stream)) {
			if _, werr = io.WriteString(w, stream[from:to]); werr != nil {
				middleware.WriteError(w, r, werr)
				return
			}
			from = to
		}
	})
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	rec := httptest.NewRecorder()
	middleware.NewHandler(h, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	name := rec.Header().Get(sse.ResumableStreamHeader)
	if len(name) != 26 {
		t.Fatalf("the stream's name %q is not 26 characters", name)
	}
	body := rec.Body.String()
	info, err := store.Info(context.Background(), name)
	what := func() string { return fmt.Sprintf("%q %s of %d bytes, writes cut at %v", eol, kind, size, splits) }
	first := "data: 1" + eol + "id: " + name + ".1\n" + eol
	stored := uint64(3) // event 1, the big one (a comment is not stored) and event 3
	if kind == "comment" {
		stored = 2
	}
	if size > sse.DefaultMaxEventBytes {
		if werr == nil || !strings.HasPrefix(body, first) || len(body) > 4096 || !strings.Contains(body, `"reason":"event_too_large"`) || strings.Count(body, "event: error") != 1 ||
			strings.Contains(body, "data: 3") || err != nil || info.Last != 2 || !info.Ended {
			t.Errorf("%s: write error %v, stored %d events (ended %v, %v), the stream is %d bytes: %q", what(), werr, info.Last, info.Ended, err, len(body), body)
		}
		return
	}
	if werr != nil || !strings.HasPrefix(body, first) || !strings.Contains(body, "data: 3") || strings.Contains(body, "event_too_large") ||
		err != nil || info.Last != stored || !info.Ended {
		t.Errorf("%s: write error %v, stored %d events (ended %v, %v), the stream is %d bytes, ends %q", what(), werr, info.Last, info.Ended, err, len(body), body[max(0, len(body)-100):])
	}
	// The client's guard takes the event the writer passed.
	resp := &http.Response{StatusCode: 200, Header: rec.Header().Clone(), Body: io.NopCloser(strings.NewReader(body))}
	sse.Guard(resp, sse.Config{})
	if got, err := io.ReadAll(resp.Body); err != nil || string(got) != body {
		t.Errorf("%s: the client's guard read %d of %d bytes: %v", what(), len(got), len(body), err)
	}
}
