package gatewaytest

import (
	"bytes"
	"context"
	"net/http"
	"time"
)

// faultWriter forwards a model's response up to fault.after complete events
// (see eventScanner for what an event is) and then applies the fault.
type faultWriter struct {
	w           http.ResponseWriter
	fault       Fault
	ctx         context.Context
	cancel      context.CancelFunc
	closing     <-chan struct{}
	wroteHeader bool // the final (non-1xx) status is written
	events      int
	scan        eventScanner
	faulted     bool
	half        []byte      // KindCut: the half event to send before the cut
	cutTimer    *time.Timer // KindCut: ends a model that does not write again
}

func (fw *faultWriter) Header() http.Header { return fw.w.Header() }

// WriteHeader passes a 1xx on and waits for the final status. With the final
// one it drops any Content-Length, as a proxy that re-chunks the body does:
// the fault changes the body's length.
func (fw *faultWriter) WriteHeader(code int) {
	if fw.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		fw.w.WriteHeader(code) // informational: the final status is to come
		return
	}
	fw.wroteHeader = true
	h := fw.w.Header()
	h.Del("Content-Length")
	fw.scan = eventScanner{framing: framingOf(h.Get("Content-Type"))}
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
			if fw.scan.framing == framingSSE {
				// A heartbeat is no event: the half is the next event's,
				// in this write or a later one.
				n := len(p)
				if p = skipComments(p); len(p) == 0 {
					return n, nil
				}
			}
			fw.half = halfEvent(p, fw.scan.framing)
			fw.cancel()
		}
		return 0, errFaulted
	}
	for i, c := range p {
		before, with := fw.scan.step(c)
		if before && fw.count() {
			return fw.act(p, i)
		}
		if with && fw.count() {
			return fw.act(p, i+1)
		}
	}
	return fw.w.Write(p)
}

// count counts an event and reports whether the fault's point is reached.
func (fw *faultWriter) count() bool {
	fw.events++
	return fw.events >= fw.fault.after
}

// act forwards p[:k], which ends at the fault's point, and applies the
// fault; the rest of p is the next event's, half of which a cut sends.
func (fw *faultWriter) act(p []byte, k int) (int, error) {
	n, err := fw.w.Write(p[:k])
	fw.flush()
	if err != nil {
		return n, err
	}
	if fw.fault.kind == KindCut {
		rest := p[k:]
		if fw.scan.framing == framingSSE {
			rest = skipComments(rest) // a heartbeat is no event
		}
		fw.half = halfEvent(rest, fw.scan.framing)
	}
	fw.trigger()
	return n, errFaulted
}

// trigger applies the fault at the current point of the response.
func (fw *faultWriter) trigger() {
	fw.faulted = true
	switch fw.fault.kind {
	case KindStall:
		fw.stall()
	case KindCut:
		if fw.half == nil {
			// The model's next write gives the half event; a model that
			// writes nothing for cutWait is cut without one.
			fw.cutTimer = time.AfterFunc(cutWait, fw.cancel)
			return
		}
	}
	fw.cancel() // the model's work is over
}

// cutWait is how long a Cut waits for the model's next write, whose first
// half it sends before the cut, when the cut's point came at the end of a
// write: a model thinking longer is cut after its events as they are.
const cutWait = 500 * time.Millisecond

// skipComments returns p, an SSE write, past its leading comment lines (a
// heartbeat) and blank lines, their ends CRLF, LF or CR.
func skipComments(p []byte) []byte {
	for len(p) > 0 {
		end := len(p)
		if i := bytes.IndexAny(p, "\r\n"); i >= 0 {
			end = i + 1
			if p[i] == '\r' && end < len(p) && p[end] == '\n' {
				end++
			}
		}
		if l := bytes.TrimRight(p[:end], "\r\n"); len(l) > 0 && l[0] != ':' {
			return p
		}
		p = p[end:]
	}
	return p
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

// Flush forwards the model's flushes while the response is its own. A flush
// before the final status sends 200, as net/http's does.
func (fw *faultWriter) Flush() {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if !fw.faulted {
		fw.flush()
	}
}

// Unwrap gives http.ResponseController the real writer.
func (fw *faultWriter) Unwrap() http.ResponseWriter { return fw.w }
