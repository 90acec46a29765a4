package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	gosse "github.com/tmaxmax/go-sse"
)

// nginxBinary returns the path of Debian's nginx. When it is missing the
// test is skipped with a message saying how to install it, except when $CI
// is set (to anything but ""), as for the tests that need redis
// (resumetest.Server): there a skipped real-gateway test would hide a
// broken .ci/run, and it fails.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if ci := os.Getenv("CI"); ci != "" {
		t.Fatalf("nginx is not installed and CI=%s: .ci/run must install it (apt-get install -y nginx); the real-gateway tests may not be skipped in CI", ci)
	}
	t.Skip("nginx is not installed: skipping the real-gateway tests (apt-get install -y nginx runs them; with $CI set they fail instead of skipping)")
	return ""
}

// nginxConf is the whole configuration of a test nginx. Every path is in
// its temporary prefix; nothing under /etc, /var or /run is touched.
//
// master_process off runs nginx as one process: no worker is forked, so the
// worker user (nobody, which could not read the root-owned temp dir) does
// not matter, and the one process dies with the test binary (Pdeathsig):
// an nginx worker outlives a killed master, this process cannot. (Passing
// the listening socket in through the NGINX environment variable, which
// would spare the port probe below, crashes nginx 1.22 with SIGSEGV in
// this mode.)
const nginxConf = `master_process off;
daemon off;
error_log {{.Dir}}/error.log info;
pid {{.Dir}}/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
    client_max_body_size {{.MaxBody}};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_connect_timeout 5s;
    server {
        listen {{.Listen}};
        location / {
            proxy_pass http://{{.Model}};
            proxy_read_timeout 60s;
        }
        location /slow/ {
            proxy_pass http://{{.Model}};
            proxy_read_timeout {{.ReadTimeout}};
        }
        location /crash/ {
            proxy_pass http://{{.Crash}};
        }
        location /down/ {
            proxy_pass http://{{.Down}};
        }
    }
}
`

// nginxMaxBody and nginxReadTimeout are the limits the tests exceed:
// client_max_body_size (nginx's 413) and proxy_read_timeout on /slow/
// (nginx's 504).
const (
	nginxMaxBody     = 1024
	nginxReadTimeout = 300 * time.Millisecond
)

// nginxProxy is a running nginx in front of the test's model servers.
type nginxProxy struct {
	URL    string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	output bytes.Buffer  // stdout and stderr, read only after exited
}

// errorLog returns nginx's error log, for failure messages.
func (n *nginxProxy) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	return string(b)
}

// startNginx starts nginx as a reverse proxy: / and /slow/ to model, /crash/
// to crash, /down/ to an address nothing listens on. It is stopped and its
// files removed when the test ends.
func startNginx(t *testing.T, model, crash string) *nginxProxy {
	t.Helper()
	bin := nginxBinary(t)
	// A port freed by the kernel can be taken by another process before
	// nginx binds it: then nginx exits at once, and another port is tried.
	for try := 1; ; try++ {
		n, err := tryNginx(t, bin, model, crash)
		if err == nil {
			return n
		}
		if try == 3 {
			t.Fatalf("nginx did not start: %v", err)
		}
		t.Logf("nginx did not start (%v); trying another port", err)
	}
}

// freeAddr returns a loopback address that nothing listened on a moment ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tryNginx(t *testing.T, bin, model, crash string) (*nginxProxy, error) {
	dir := t.TempDir()
	listen := freeAddr(t)
	var conf bytes.Buffer
	err := template.Must(template.New("nginx").Parse(nginxConf)).Execute(&conf, map[string]any{
		"Dir": dir, "Listen": listen, "Model": model, "Crash": crash, "Down": freeAddr(t),
		"MaxBody": nginxMaxBody, "ReadTimeout": fmt.Sprintf("%dms", nginxReadTimeout.Milliseconds()),
	})
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	n := &nginxProxy{URL: "http://" + listen, dir: dir, exited: make(chan struct{})}
	// -e: the error log nginx opens before it reads its configuration,
	// which would otherwise be /var/log/nginx/error.log.
	n.cmd = exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	n.cmd.Stdout, n.cmd.Stderr = &n.output, &n.output
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	go func() {
		n.cmd.Wait()
		close(n.exited)
	}()

	// nginx binds its port before it writes its pid file and serves, and
	// says nothing when it is ready: probe the port, for at most 10 s.
	ready := waitFor(10*time.Second, func() bool {
		select {
		case <-n.exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	select {
	case <-n.exited:
		return nil, fmt.Errorf("nginx exited: %s %s %s", n.cmd.ProcessState, n.output.String(), n.errorLog())
	default:
	}
	if !ready {
		n.kill()
		return nil, fmt.Errorf("nginx did not listen on %s within 10 s: %s", listen, n.errorLog())
	}
	t.Cleanup(func() { n.stop(t) })
	return n, nil
}

// kill ends nginx's process group at once and waits for it.
func (n *nginxProxy) kill() {
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
}

// stop ends nginx: SIGTERM (fast shutdown), then, if it has not exited
// within 10 s, SIGKILL to its process group. It always waits for the
// process, so no nginx outlives the test.
func (n *nginxProxy) stop(t *testing.T) {
	select {
	case <-n.exited:
		t.Errorf("nginx exited before the test ended:\n%s\n%s", n.output.String(), n.errorLog())
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("nginx ignored SIGTERM for 10 s; killing it")
		n.kill()
	}
	// Nothing of its process group may be left.
	if err := syscall.Kill(-n.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("nginx's process group is still alive after nginx exited (%v)", err)
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// nginxModel is the model server behind nginx. Each handler reports what
// it did on its channels; every wait in it is bounded.
type nginxModel struct {
	seen         chan struct{} // one token per chunk the client has received
	buffered     atomic.Bool   // the handler gave up waiting for a token
	hangStarted  chan struct{}
	hangReleased chan struct{} // closed when nginx gave up on /slow/hang
	uploads      atomic.Int64  // requests that reached /v1/upload
}

const incrementalChunks = 5

func newNginxModel() (*nginxModel, http.Handler) {
	m := &nginxModel{seen: make(chan struct{}, incrementalChunks), hangStarted: make(chan struct{}, 1), hangReleased: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	// Lockstep: each chunk is sent only once the client has received the
	// one before, so every event must cross nginx on its own. If nginx held
	// one back, the handler would wait in vain: it gives up after
	// testTimeout, sends the rest at once, and the test reports it.
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range incrementalChunks {
			if i > 0 && !m.buffered.Load() {
				select {
				case <-m.seen:
				case <-r.Context().Done():
					return
				case <-time.After(testTimeout):
					m.buffered.Store(true)
				}
			}
			fmt.Fprintf(w, "data: %s\n\n", gatewaytest.ChatChunk(i))
			rc.Flush()
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
	// Answers nothing until nginx's proxy_read_timeout closes the
	// upstream connection.
	mux.HandleFunc("/slow/hang", func(w http.ResponseWriter, r *http.Request) {
		m.hangStarted <- struct{}{}
		select {
		case <-r.Context().Done():
			m.hangReleased <- struct{}{}
		case <-time.After(testTimeout):
		}
	})
	// Two chunks, then silence past proxy_read_timeout.
	mux.HandleFunc("/slow/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			fmt.Fprintf(w, "data: %s\n\n", gatewaytest.ChatChunk(i))
		}
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(testTimeout):
		}
	})
	mux.HandleFunc("/v1/upload", func(w http.ResponseWriter, r *http.Request) {
		m.uploads.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	return m, mux
}

// crashModel streams chunks and, at the test's signal, dies: its listener
// and every connection closed, as when the model's process exits.
type crashModel struct {
	srv  *httptest.Server
	sent chan struct{} // the handler flushed its chunks and waits
}

const crashAfter = 3

func newCrashModel(t *testing.T) *crashModel {
	c := &crashModel{sent: make(chan struct{}, 1)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range crashAfter {
			fmt.Fprintf(w, "data: %s\n\n", gatewaytest.ChatChunk(i))
		}
		http.NewResponseController(w).Flush()
		c.sent <- struct{}{}
		select {
		case <-r.Context().Done(): // the connection is gone
		case <-time.After(testTimeout):
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// die closes the model's listener and its connections.
func (c *crashModel) die() {
	c.srv.Listener.Close()
	c.srv.CloseClientConnections()
}

// TestNginx runs the client stack through a real nginx (Debian's package)
// as a reverse proxy in front of a Go model server.
func TestNginx(t *testing.T) {
	model, handler := newNginxModel()
	modelSrv := httptest.NewServer(handler)
	t.Cleanup(modelSrv.Close)
	crash := newCrashModel(t)
	ngx := startNginx(t, modelSrv.Listener.Addr().String(), crash.srv.Listener.Addr().String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error log:\n%s", ngx.errorLog())
		}
	})

	var retries atomic.Int64
	client := middleware.NewClient(middleware.Config{
		Retry: retry.Policy{MaxAttempts: 3, Backoff: fastBackoff, OnRetry: func(retry.Attempt) { retries.Add(1) }},
	})
	t.Cleanup(client.CloseIdleConnections)

	get := func(t *testing.T, path string) *http.Response {
		t.Helper()
		retries.Store(0)
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, ngx.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	t.Run("healthy SSE stream arrives incrementally", func(t *testing.T) {
		resp := get(t, "/v1/chat/completions")
		if resp.StatusCode != 200 || resp.Header.Get("Server") == "" {
			t.Fatalf("status %d, Server %q", resp.StatusCode, resp.Header.Get("Server"))
		}
		var raw bytes.Buffer
		events := 0
		for ev, err := range gosse.Read(io.TeeReader(resp.Body, &raw), nil) {
			if err != nil {
				t.Fatalf("after %d events: %v", events, err)
			}
			if chunkIndex(ev.Data) == events {
				model.seen <- struct{}{} // lets the model send the next chunk; never blocks
			}
			events++
		}
		if model.buffered.Load() {
			t.Fatal("an event did not reach the client before the model sent the next one: nginx buffered the stream")
		}
		if events != incrementalChunks+1 || !bytes.Equal(raw.Bytes(), chatBody(incrementalChunks)) {
			t.Fatalf("%d events, body %q", events, raw.Bytes())
		}
	})

	t.Run("model listener closed mid-stream gives truncated", func(t *testing.T) {
		resp := get(t, "/crash/v1/chat/completions")
		<-crash.sent // bounded: the handler sends before it waits
		var delivered bytes.Buffer
		n, err := io.CopyN(&delivered, resp.Body, int64(len(chatBody(crashAfter)))-int64(len("data: [DONE]\n\n")))
		if err != nil {
			t.Fatalf("reading the %d chunks before the crash: %d bytes, %v", crashAfter, n, err)
		}
		crash.die()
		rest, err := io.ReadAll(resp.Body)
		if len(rest) != 0 {
			t.Errorf("%d bytes after the crash: %q", len(rest), rest)
		}
		se := asStreamError(t, err)
		wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonTruncated)
		// nginx cut its chunked response: no terminating chunk.
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cause %v, want io.ErrUnexpectedEOF (nginx cutting its chunked response)", se.Err)
		}
		if se.Events != crashAfter || !se.Retryable {
			t.Errorf("Events %d (want %d), Retryable %v", se.Events, crashAfter, se.Retryable)
		}
		t.Logf("verdict: %v", se)
	})

	t.Run("model down gives nginx's 502, platform, retried", func(t *testing.T) {
		resp := get(t, "/down/v1/chat/completions")
		// nginx's HTML page reaches the caller as the error's JSON
		// document, which the SDKs parse (streamguard.Conform).
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" ||
			!strings.HasPrefix(resp.Header.Get("Server"), "nginx") {
			t.Fatalf("status %d, Content-Type %q, Server %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Server"))
		}
		se := asStreamError(t, streamguard.Check(resp))
		wantVerdict(t, se, streamguard.SourcePlatform, streamguard.ReasonUnreachable)
		if se.Message != "502 Bad Gateway" || !se.Retryable {
			t.Errorf("Message %q, Retryable %v", se.Message, se.Retryable)
		}
		if se.Attempts != 3 || retries.Load() != 2 {
			t.Errorf("Attempts %d, retries %d; want 3 attempts, 2 retries", se.Attempts, retries.Load())
		}
		body, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(body, []byte(`"message":"502 Bad Gateway"`)) || !bytes.Contains(body, []byte(`"reason":"unreachable"`)) {
			t.Errorf("not nginx's page as the error's document: %q", body)
		}
	})

	t.Run("proxy_read_timeout before the headers gives 504 timeout", func(t *testing.T) {
		resp := get(t, "/slow/hang")
		<-model.hangStarted
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("status %d", resp.StatusCode)
		}
		se := asStreamError(t, streamguard.Check(resp))
		wantVerdict(t, se, streamguard.SourcePlatform, streamguard.ReasonTimeout)
		if se.Message != "504 Gateway Time-out" || se.Retryable || retries.Load() != 0 {
			t.Errorf("Message %q, Retryable %v, retries %d: a 504 spent the budget and is not retried", se.Message, se.Retryable, retries.Load())
		}
		select {
		case <-model.hangReleased: // nginx closed the upstream connection
		case <-time.After(testTimeout):
			t.Error("the model's request never ended")
		}
	})

	t.Run("proxy_read_timeout mid-stream gives truncated", func(t *testing.T) {
		resp := get(t, "/slow/stall")
		delivered, err := io.ReadAll(resp.Body)
		se := asStreamError(t, err)
		wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonTruncated)
		if chunks, _, cerr := checkChunks(delivered); cerr != nil || chunks != 2 || se.Events != 2 {
			t.Errorf("delivered %d chunks (%v), Events %d; want 2", chunks, cerr, se.Events)
		}
	})

	t.Run("client_max_body_size gives 413", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
				retries.Store(0)
				var body io.Reader = strings.NewReader(strings.Repeat("x", 4*nginxMaxBody))
				if chunked {
					body = io.MultiReader(body) // unknown length: sent chunked
				}
				req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, ngx.URL+"/v1/upload", body)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge {
					t.Fatalf("status %d", resp.StatusCode)
				}
				se := asStreamError(t, streamguard.Check(resp))
				wantVerdict(t, se, streamguard.SourceRequest, streamguard.ReasonPayloadTooLarge)
				if se.Message != "413 Request Entity Too Large" || se.Retryable || retries.Load() != 0 {
					t.Errorf("Message %q, Retryable %v, retries %d", se.Message, se.Retryable, retries.Load())
				}
				if model.uploads.Load() != 0 {
					t.Errorf("the model saw %d uploads", model.uploads.Load())
				}
			})
		}
	})
}
