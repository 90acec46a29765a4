package middleware_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/sse"
)

// resumeBudgetServer serves streams of stream name, events 1 to cuts
// then [DONE], each answer cut after one event: the first, and every
// resume (Last-Event-ID) after the event it asks for. When down is set it
// cuts every resume before its headers instead. It counts the resumes.
func resumeBudgetServer(t *testing.T, down bool, cuts int) (*httptest.Server, *atomic.Int32) {
	const name = "0123456789abcdef0123456789abcdef"
	var resumes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(sse.ResumableStreamHeader, name)
		var after uint64
		if lei := r.Header.Get(sse.LastEventIDHeader); lei != "" {
			resumes.Add(1)
			if down {
				panic(http.ErrAbortHandler)
			}
			_, after, _ = sse.ParseEventID(lei)
		}
		if int(after) >= cuts {
			io.WriteString(w, "id: "+name+"."+strconv.Itoa(int(after)+1)+"\ndata: [DONE]\n\n")
			return
		}
		io.WriteString(w, "id: "+name+"."+strconv.Itoa(int(after)+1)+"\ndata: {\"choices\":[]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(srv.Close)
	return srv, &resumes
}

// resumeBudgetRun reads streams concurrent streams through c and returns
// their verdicts.
func resumeBudgetRun(t *testing.T, c *http.Client, url string, streams int) []*streamguard.Error {
	t.Helper()
	out := make([]*streamguard.Error, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(`{}`))
			resp, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			out[i] = streamguard.FromError(err)
		})
	}
	wg.Wait()
	return out
}

func resumeBudgetClient(t *testing.T) *http.Client {
	c := middleware.NewClient(middleware.Config{Stream: sse.Config{Resume: sse.ResumeConfig{
		Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}}})
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestResumeBudget: 50 streams cut while their server refuses every
// resume: each stream's first resume goes ahead, the later ones (each
// after one that brought nothing) draw on the client's retry budget,
// which stops them after about 9 (and the 0.2 each first request's
// success refunds), instead of 5 per stream.
func TestResumeBudget(t *testing.T) {
	const streams = 50
	srv, resumes := resumeBudgetServer(t, true, 1)
	verdicts := resumeBudgetRun(t, resumeBudgetClient(t), srv.URL, streams)
	if n := resumes.Load(); n < streams || n > streams+9+10 {
		t.Errorf("%d resumes for %d streams", n, streams)
	}
	spent := 0
	for _, v := range verdicts {
		if v == nil || v.Reason != streamguard.ReasonTruncated {
			t.Fatalf("verdict %v", v)
		}
		if strings.Contains(v.Message, "retry budget is spent") {
			spent++
		}
	}
	if spent == 0 {
		t.Error("no stream says the budget stopped its resumes")
	}
}

// TestResumeBudgetFirstFree: 50 streams cut at once (a load balancer's
// restart), then cut again after each event they get, 4 times in all,
// all complete, whatever the budget holds: a resume that follows events
// (a new cut) does not draw on it.
func TestResumeBudgetFirstFree(t *testing.T) {
	const streams, cuts = 50, 4
	srv, resumes := resumeBudgetServer(t, false, cuts)
	for _, v := range resumeBudgetRun(t, resumeBudgetClient(t), srv.URL, streams) {
		if v != nil {
			t.Fatalf("verdict %v", v)
		}
	}
	if n := resumes.Load(); n != streams*cuts {
		t.Errorf("%d resumes for %d streams", n, streams)
	}
}
