package bench

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"github.com/streamguard/streamguard/sse"
)

// idStream is the stream name the reverseproxy-ids row gives its
// responses: 26 characters, as long as the library's (128 bits, lower-case
// base32).
const idStream = "abcdefghijklmnopqrstuvwxyz"

// addIDs is a ReverseProxy's ModifyResponse that gives each event of an
// event stream an id line "id: {idStream}.{seq}", seq from 1, as the
// library's resumable streams have them, and nothing else: no store, no
// guard, no framing of its own. It puts the protocol's bytes on the wire
// at the least cost, the floor of any relay that sends them.
func addIDs(resp *http.Response) error {
	resp.Header.Set(sse.ResumableStreamHeader, idStream)
	resp.Body = &idInserter{
		rc:     resp.Body,
		in:     make([]byte, 32<<10),
		prefix: []byte("id: " + idStream + "."),
		start:  true,
		lf:     true,
	}
	return nil
}

// idInserter adds an id line before the first line of each event of rc, an
// event stream whose lines end in LF alone (the workloads').
type idInserter struct {
	rc      io.ReadCloser
	in, out []byte
	pending []byte // of out, not yet read
	prefix  []byte // "id: {stream}."
	seq     uint64
	start   bool // the next line begins an event
	lf      bool // the last byte read was an LF
}

func (r *idInserter) Read(p []byte) (int, error) {
	if len(r.pending) == 0 {
		n, err := r.rc.Read(r.in)
		if n == 0 {
			return 0, err
		}
		r.out = r.frame(r.out[:0], r.in[:n])
		r.pending = r.out
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

func (r *idInserter) Close() error { return r.rc.Close() }

// frame appends in to out, an id line before each event's first line.
func (r *idInserter) frame(out, in []byte) []byte {
	for len(in) > 0 {
		if r.lf && in[0] == '\n' { // a blank line: the event's end
			out = append(out, '\n')
			in, r.start = in[1:], true
			continue
		}
		if r.start {
			r.seq++
			out = strconv.AppendUint(append(out, r.prefix...), r.seq, 10)
			out = append(out, '\n')
			r.start = false
		}
		i := bytes.Index(in, []byte("\n\n"))
		if i < 0 {
			out = append(out, in...)
			r.lf = in[len(in)-1] == '\n'
			return out
		}
		out = append(out, in[:i+2]...)
		in, r.start, r.lf = in[i+2:], true, true
	}
	return out
}
