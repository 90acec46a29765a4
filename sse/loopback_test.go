package sse_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// h2StreamError has the shape of net/http's unexported HTTP/2 stream error,
// which supports errors.As into a struct of the same shape.
type h2StreamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e h2StreamError) Error() string { return fmt.Sprintf("stream %d: code %d", e.StreamID, e.Code) }

// guardedClient is the server's client with the guard in front of its
// transport.
func guardedClient(srv *gatewaytest.Server, cfg sse.Config) *http.Client {
	c := *srv.Client()
	c.Transport = sse.NewTransport(c.Transport, cfg)
	return &c
}

func readAllGuarded(t *testing.T, c *http.Client, url string) ([]byte, *streamguard.Error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, resp)
}

func TestLoopbackVerdicts(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name, start := "HTTP/1.1", gatewaytest.NewServer
		if h2 {
			name, start = "HTTP/2", gatewaytest.NewTLSServer
		}
		t.Run(name, func(t *testing.T) {
			srv := start(gatewaytest.ChatStream(20))
			defer srv.Close()
			client := guardedClient(srv, sse.Config{IdleTimeout: 50 * time.Millisecond})
			url := srv.URL + "/v1/chat/completions"

			t.Run("complete", func(t *testing.T) {
				got, se := readAllGuarded(t, client, url)
				if se != nil || !strings.HasSuffix(string(got), "data: [DONE]\n\n") {
					t.Fatalf("%v: %q", se, got)
				}
			})
			t.Run("cut mid-event", func(t *testing.T) {
				srv.Script(gatewaytest.Cut(5))
				got, se := readAllGuarded(t, client, url)
				if se == nil || se.Reason != streamguard.ReasonTruncated || se.Source != streamguard.SourceNetwork {
					t.Fatalf("verdict %v", se)
				}
				if se.Events != 5 || strings.Count(string(got), "\n\n") != 5 || !strings.HasSuffix(string(got), "\n\n") {
					t.Errorf("events %d, delivered %q", se.Events, got)
				}
				if !h2 && !errors.Is(se, io.ErrUnexpectedEOF) {
					t.Errorf("cause %v, want io.ErrUnexpectedEOF", se.Err)
				}
			})
			t.Run("reset", func(t *testing.T) {
				srv.Script(gatewaytest.Reset(3))
				_, se := readAllGuarded(t, client, url)
				if se == nil || se.Reason != streamguard.ReasonTruncated || se.Source != streamguard.SourceNetwork || se.Events != 3 {
					t.Fatalf("verdict %v", se)
				}
				var h2err h2StreamError
				if h2 && (!errors.As(se, &h2err) || h2err.Code != 2) { // 2: INTERNAL_ERROR
					t.Errorf("cause %v, want an HTTP/2 RST_STREAM INTERNAL_ERROR", se.Err)
				}
			})
			t.Run("end without DONE", func(t *testing.T) {
				srv.Script(gatewaytest.EndEarly(4))
				_, se := readAllGuarded(t, client, url)
				if se == nil || se.Reason != streamguard.ReasonTruncated || !errors.Is(se, sse.ErrNoTerminal) || se.Events != 4 {
					t.Fatalf("verdict %v", se)
				}
			})
			t.Run("stall", func(t *testing.T) {
				srv.Script(gatewaytest.Stall(2))
				_, se := readAllGuarded(t, client, url)
				if se == nil || se.Reason != streamguard.ReasonStalled || se.Events != 2 {
					t.Fatalf("verdict %v", se)
				}
			})
			t.Run("in-band error", func(t *testing.T) {
				own := start(gatewaytest.ErrorStream(3, "CUDA out of memory"))
				defer own.Close()
				got, se := readAllGuarded(t, guardedClient(own, sse.Config{}), own.URL)
				if se == nil || se.Reason != streamguard.ReasonModelError || se.Source != streamguard.SourceModel ||
					se.Message != "CUDA out of memory" || se.Events != 5 || !strings.HasSuffix(string(got), "[DONE]\n\n") {
					t.Fatalf("verdict %v, delivered %q", se, got)
				}
			})
			t.Run("caller cancels", func(t *testing.T) {
				srv.Script(gatewaytest.Stall(1))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := guardedClient(srv, sse.Config{}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				if _, err := br.ReadString('\n'); err != nil {
					t.Fatal(err)
				}
				cancel()
				_, err = io.ReadAll(br)
				var se *streamguard.Error
				if !errors.As(err, &se) || se.Reason != streamguard.ReasonCanceled || se.Source != streamguard.SourceClient {
					t.Fatalf("err = %v", err)
				}
			})
			t.Run("go-sse Read sees every event then the error", func(t *testing.T) {
				srv.Script(gatewaytest.Cut(7))
				resp, err := client.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var n int
				var last error
				for ev, err := range gosse.Read(resp.Body, nil) {
					if err != nil {
						last = err
						break
					}
					if want := gatewaytest.ChatChunk(n); ev.Data != want {
						t.Fatalf("event %d = %q, want %q", n, ev.Data, want)
					}
					n++
				}
				var se *streamguard.Error
				if n != 7 || !errors.As(last, &se) || se.Reason != streamguard.ReasonTruncated {
					t.Fatalf("%d events, then %v", n, last)
				}
			})
		})
	}
}

// A raw connection cut in the middle of a line and of a chunk, written by
// hand: the guard holds the half line back and reports the cut.
func TestHijackedCutMidLine(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		ev := "data: {\"n\":1}\n\n"
		fmt.Fprintf(buf, "%x\r\n%s\r\n", len(ev), ev)
		fmt.Fprintf(buf, "%x\r\n%s", 40, "data: {\"n\":2, \"te") // a chunk of 40 bytes, cut after 17
		buf.Flush()
	}))
	defer srv.Close()
	c := srv.Client()
	c.Transport = sse.NewTransport(c.Transport, sse.Config{})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonTruncated || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if string(got) != "data: {\"n\":1}\n\n" || se.Events != 1 {
		t.Fatalf("delivered %q, events %d", got, se.Events)
	}
}

// A raw application/octet-stream (a Truss generator's output), chunked:
// a cut is a transport failure the guard reports; a clean end is success.
func TestRawChunkedStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for i := range 3 {
			fmt.Fprintf(w, "part %d;", i)
			http.NewResponseController(w).Flush()
		}
		if r.URL.Query().Has("cut") {
			panic(http.ErrAbortHandler)
		}
	}))
	defer srv.Close()
	c := srv.Client()
	c.Transport = sse.NewTransport(c.Transport, sse.Config{})
	for _, cut := range []bool{false, true} {
		url := srv.URL
		if cut {
			url += "?cut"
		}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != "part 0;part 1;part 2;" {
			t.Errorf("cut=%v: delivered %q", cut, got)
		}
		var se *streamguard.Error
		if cut != errors.As(err, &se) || (cut && se.Reason != streamguard.ReasonTruncated) {
			t.Errorf("cut=%v: err = %v", cut, err)
		}
	}
}

func TestTransportSkipsHEADAndErrors(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(1))
	defer srv.Close()
	c := guardedClient(srv, sse.Config{})
	resp, err := c.Head(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := resp.Body.(interface{ StreamStats() }); ok {
		t.Error("HEAD response guarded")
	}
	srv.Script(gatewaytest.Draining(0))
	resp, err = c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != 503 || !strings.Contains(string(b), "draining") {
		t.Fatalf("503 body: %q, %v", b, err)
	}
}
