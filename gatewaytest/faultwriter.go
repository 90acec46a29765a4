package gatewaytest

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/streamguard/streamguard/sse"
)

// faultWriter forwards a model's response up to fault.after complete events
// (an event ends at an empty line; in a JSON-lines response, or a streamed
// JSON array, each line is one) and then applies the fault.
type faultWriter struct {
	w           http.ResponseWriter
	fault       Fault
	ctx         context.Context
	cancel      context.CancelFunc
	closing     <-chan struct{}
	wroteHeader bool
	events      int
	content     bool // the current event has content
	lineStart   bool // the last byte ended a line
	faulted     bool
	lines       bool   // every line with content counts as an event
	half        []byte // KindCut: the half event to send before the cut
}

func (fw *faultWriter) Header() http.Header { return fw.w.Header() }

func (fw *faultWriter) WriteHeader(code int) {
	if fw.wroteHeader {
		return
	}
	fw.wroteHeader = true
	fw.lineStart = true
	fw.lines = sse.IsJSONLines(fw.w.Header().Get("Content-Type")) || strings.HasPrefix(fw.w.Header().Get("Content-Type"), "application/json")
	fw.w.WriteHeader(code)
	if fw.fault.after <= 0 {
		fw.flush()
		fw.trigger()
	}
}

func (fw *faultWriter) Write(p []byte) (int, error) {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.faulted {
		if fw.fault.kind == KindCut && fw.half == nil && len(p) > 0 {
			fw.half = halfEvent(p, fw.lines)
			fw.cancel()
		}
		return 0, errFaulted
	}
	for i, c := range p {
		switch c {
		case '\n':
			if (fw.lineStart || fw.lines) && fw.content {
				fw.events++
				fw.content = false
				if fw.events >= fw.fault.after {
					n, err := fw.w.Write(p[:i+1])
					fw.flush()
					if err != nil {
						return n, err
					}
					if fw.fault.kind == KindCut {
						fw.half = halfEvent(p[i+1:], fw.lines)
					}
					fw.trigger()
					return n, errFaulted
				}
			}
			fw.lineStart = true
		case '\r':
		default:
			fw.lineStart = false
			fw.content = true
		}
	}
	return fw.w.Write(p)
}

// halfEvent returns the first half of the event (with lines, the line) at
// the start of p (at least one byte when p has any), or nil when p is empty.
func halfEvent(p []byte, lines bool) []byte {
	if len(p) == 0 {
		return nil
	}
	sep := []byte("\n\n")
	if lines {
		sep = sep[:1]
	}
	end := bytes.Index(p, sep)
	if end < 0 {
		end = len(p)
	}
	return append([]byte(nil), p[:max(1, end/2)]...)
}

// trigger applies the fault at the current point of the response.
func (fw *faultWriter) trigger() {
	fw.faulted = true
	switch fw.fault.kind {
	case KindStall:
		fw.stall()
	case KindCut:
		if fw.half == nil {
			return // the model's next write gives the half event
		}
	}
	fw.cancel() // the model's work is over
}

// stall holds the response open until the client leaves or the gateway
// closes.
func (fw *faultWriter) stall() {
	fw.faulted = true
	fw.flush()
	select {
	case <-fw.ctx.Done():
	case <-fw.closing:
	}
}

func (fw *faultWriter) flush() { http.NewResponseController(fw.w).Flush() }

// Flush forwards the model's flushes while the response is its own.
func (fw *faultWriter) Flush() {
	if !fw.faulted {
		fw.flush()
	}
}

// Unwrap gives http.ResponseController the real writer.
func (fw *faultWriter) Unwrap() http.ResponseWriter { return fw.w }
