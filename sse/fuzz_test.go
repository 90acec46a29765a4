package sse_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// splitReader returns data in reads whose sizes come from splits.
type splitReader struct {
	data   []byte
	splits []byte
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := len(s.data)
	if len(s.splits) > 0 {
		n = int(s.splits[0]) + 1
		s.splits = s.splits[1:]
	}
	n = min(n, len(p), len(s.data))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *splitReader) Close() error { return nil }

type event struct{ ID, Type, Data string }

func collect(r io.Reader) ([]event, error) {
	var out []event
	for ev, err := range gosse.Read(r, &gosse.ReadConfig{MaxEventSize: 1 << 20}) {
		if err != nil {
			return out, err
		}
		out = append(out, event{ev.LastEventID, ev.Type, ev.Data})
	}
	return out, nil
}

// FuzzGuardMatchesGoSSE is a differential test: for any bytes, split across
// reads in any way, go-sse's parser must see the same complete events through
// the guard as on the bytes themselves. The guard's verdict must be a
// *streamguard.Error or success, and its failure frame must parse as exactly
// one more event.
//
// Run it longer with: go test -run '^$' -fuzz FuzzGuardMatchesGoSSE -fuzztime 5m ./sse/
func FuzzGuardMatchesGoSSE(f *testing.F) {
	for _, c := range verdictCases {
		var all []byte
		var splits []byte
		for _, ch := range c.chunks {
			all = append(all, ch...)
			splits = append(splits, byte(max(0, min(len(ch)-1, 255))))
		}
		f.Add(all, splits, false)
	}
	f.Add([]byte("data: a\r\rdata: b\r\n\r\nid: 1\ndata\n\n:c\n\nevent: e\ndata: x\ndata: y\n\n"), []byte{0, 3, 1, 7}, true)
	f.Add([]byte("\xef\xbb\xbfdata: x\n\n\xef\xbb\xbfdata: y\n\n"), []byte{0, 0, 1}, false)
	f.Add([]byte("id: a\x00b\ndata: x\n\nid\ndata: y\n\n"), []byte{}, false)
	f.Fuzz(func(t *testing.T, data, splits []byte, failureEvent bool) {
		want, wantErr := collect(bytes.NewReader(data))
		if wantErr != nil {
			t.Skip() // go-sse itself refuses the input
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body: &splitReader{data: data, splits: splits}}
		sse.Guard(resp, sse.Config{FailureEvent: failureEvent})
		got, err := collect(resp.Body)
		var se *streamguard.Error
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("verdict %v (%T) is not a *streamguard.Error", err, err)
		}
		if se != nil && failureEvent {
			// The failure frame is one more event, of type error.
			if len(got) != len(want)+1 || got[len(got)-1].Type != "error" {
				t.Fatalf("failure frame: got %d events, want %d + 1: %+v", len(got), len(want), got)
			}
			got = got[:len(got)-1]
			if len(got) > 0 {
				// go-sse carries the last ID into later events.
				want = append(want[:0:0], want...)
			}
		}
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("events through the guard differ\n got %+v\nwant %+v\n(verdict %v)", got, want, err)
		}
	})
}

// FuzzFailureFrame: whatever an error holds, its failure frame is exactly one
// event with only the fields event and data.
func FuzzFailureFrame(f *testing.F) {
	f.Add("boom", "model_error", "code", "req")
	f.Add("\n\nevent: x\ndata: y\n\n", "\r", "\rid: 3", "a\r\nretry: 1")
	f.Fuzz(func(t *testing.T, msg, reason, code, reqID string) {
		frame := sse.AppendFailureFrame(nil, &streamguard.Error{StatusCode: 200, Source: streamguard.Source(reason),
			Reason: streamguard.Reason(reason), Message: msg, Code: code, RequestID: reqID, Err: errors.New(msg)})
		assertOneFailureEvent(t, frame)
		frame = sse.AppendFailureFrame(nil, errors.New(msg))
		assertOneFailureEvent(t, frame)
	})
}
