package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// errFaulted is what a model's Write returns once the fault has taken over
// the response.
var errFaulted = errors.New("gatewaytest: the response was taken over by a fault")

// serveStreamFault runs the model into a writer that applies fault after
// fault.after complete events, then ends the response as the fault says.
// What the model wrote before the fault's point is flushed before the
// response is cut or reset, never dropped with net/http's buffer.
func (g *Gateway) serveStreamFault(w http.ResponseWriter, r *http.Request, fault Fault) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	fw := &faultWriter{w: w, fault: fault, ctx: ctx, cancel: cancel, closing: g.closing}
	g.Model.ServeHTTP(fw, r.WithContext(ctx))
	if fw.cutTimer != nil {
		fw.cutTimer.Stop()
	}
	switch fault.kind {
	case KindEndEarly:
		return // the handler returns normally: a clean end
	case KindCut:
		if !fw.wroteHeader {
			fw.WriteHeader(http.StatusOK)
		}
		cut(w, r, fw.half)
	case KindStall:
		if !fw.faulted {
			// The model finished before the fault's point: stall at its end.
			fw.stall()
		}
		panic(http.ErrAbortHandler)
	case KindReset:
		if fw.wroteHeader {
			fw.flush() // the model's events first, then the reset
		}
		panic(http.ErrAbortHandler)
	}
}

// cut sends what the model wrote, then half, and breaks the response off.
// Over HTTP/1.1 the response is chunked (the faultWriter dropped any
// Content-Length): cut declares a chunk longer than what follows and hangs
// up, so that the client's chunked reader fails mid-chunk. An HTTP/1.0
// response is delimited by the connection's close: half is sent as it is,
// and the client sees a clean end. Over HTTP/2 the stream is reset.
func cut(w http.ResponseWriter, r *http.Request, half []byte) {
	ctl := http.NewResponseController(w)
	ctl.Flush() // Hijack would drop what net/http still buffers
	if r.ProtoMajor == 1 {
		chunked := r.ProtoAtLeast(1, 1) && r.Method != http.MethodHead && w.Header().Get("Content-Length") == ""
		if conn, buf, err := ctl.Hijack(); err == nil {
			if chunked {
				fmt.Fprintf(buf, "%x\r\n", len(half)+64)
			}
			buf.Write(half)
			buf.Flush()
			conn.Close()
			return
		}
	}
	if len(half) > 0 {
		w.Write(half)
		ctl.Flush()
	}
	panic(http.ErrAbortHandler)
}
