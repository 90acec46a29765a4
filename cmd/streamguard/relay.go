package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/internal/resp"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
)

// relayUsage documents the relay's flags.
const relayUsage = `usage: streamguard relay -listen ADDR -upstream URL [flags]

Relays every request to the upstream through the client stack (budget,
retry, stream guard, tracing) and serves it through the server stack with
resumable streams: each event gets an id, the upstream work outlives a
broken client connection for the linger, and a client that comes back with
Last-Event-ID (this library's client does so by itself) gets the rest.
It logs to stderr (log/slog text): the upstream calls' retries and
failures, panics, budgets exceeded, and streams the store refused events
of; never a credential.

On SIGTERM or SIGINT it stops accepting and lets the requests in flight
run on for the drain (-drain), streams whose client left included. Then
it ends the streams still running: their upstream calls are canceled, and
each ends with a truncated failure event, stored (a resume at any relay
sharing the store gets it at once) and sent to its client if still
connected. It exits within about 10 s more, the store closed last.

Flags:
`

// relayConfig is the relay's command line.
type relayConfig struct {
	listen, upstream, store string
	budget, idle, linger    time.Duration
	drain                   time.Duration
	attempts                int
}

// parseRelay reads the relay's command line; the code is the exit code
// when the relay must not run (0 for -h, 2 for a usage error), -1 when it
// may.
func parseRelay(args []string, stdout, stderr io.Writer) (relayConfig, int) {
	var c relayConfig
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), relayUsage); fs.PrintDefaults() }
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.StringVar(&c.upstream, "upstream", "", "the upstream's base URL (required)")
	fs.StringVar(&c.store, "store", "memory", `where streams are kept: "memory", or Redis to share them between relays: redis://[[USER]:PASSWORD@]HOST:PORT/DB, rediss://... over TLS; unset, $`+storeEnv+` if set (it keeps a password out of the process list)`)
	fs.DurationVar(&c.budget, "budget", streamguard.SyncBudget, "each request's time budget, upstream and downstream")
	fs.DurationVar(&c.idle, "idle", sse.DefaultIdleTimeout, "an upstream stream silent this long after its first byte is stalled (before it: 10m0s, or longer if this is; negative: off)")
	fs.DurationVar(&c.linger, "linger", middleware.DefaultLinger, "how long a stream's upstream work outlives its client, waiting for a resume")
	fs.IntVar(&c.attempts, "attempts", retry.DefaultMaxAttempts, "attempts at the upstream in all for a request, the first included (1: no retry)")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "on SIGTERM, how long the requests in flight may run on before the streams still running end as cut (0: at once)")
	if code := parseFlags(fs, args, stdout, stderr); code >= 0 {
		return c, code
	}
	if env := os.Getenv(storeEnv); env != "" && !isSet(fs, "store") {
		c.store = env
	}
	switch {
	case c.upstream == "":
		fmt.Fprintln(stderr, "streamguard relay: -upstream is required")
	case fs.NArg() > 0:
		// Not quoted: it may be a key typed out of place.
		fmt.Fprintln(stderr, "streamguard relay: it takes flags only, and an argument follows them")
	}
	if c.upstream == "" || fs.NArg() > 0 {
		fs.Usage()
		return c, 2
	}
	// The layers would take these for their defaults, or raise them, while
	// the relay said it runs with what was typed.
	for _, bad := range []struct {
		bad bool
		msg string
	}{
		{c.budget <= 0, "-budget must be positive"},
		{c.idle == 0, "-idle must not be 0 (negative: off)"},
		{c.linger < middleware.MinLinger, "-linger must be at least " + middleware.MinLinger.String()},
		{c.drain < 0, "-drain must not be negative"},
		{c.attempts < 1, "-attempts must be at least 1"},
	} {
		if bad.bad {
			fmt.Fprintf(stderr, "streamguard relay: %s\n", bad.msg)
			return c, 2
		}
	}
	return c, -1
}

// storeEnv names the environment variable that gives -store when the
// command line does not.
const storeEnv = "STREAMGUARD_RELAY_STORE"

// isSet reports whether the command line set the flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// relay runs the relay until ctx ends; it returns the exit code.
func relay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, code := parseRelay(args, stdout, stderr)
	if code >= 0 {
		return code
	}
	up, err := url.Parse(c.upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		fmt.Fprintf(stderr, "streamguard relay: -upstream %q is not an http(s) URL\n", redact.RawURL(c.upstream))
		return 2
	}
	store, closeStore, err := openStore(c.store)
	if err != nil {
		fmt.Fprintf(stderr, "streamguard relay: -store: %v\n", err)
		if errors.Is(err, errStoreDown) {
			return 1 // not a usage error: the store did not answer
		}
		return 2
	}
	defer closeStore()
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		fmt.Fprintf(stderr, "streamguard relay: %v\n", err)
		return 1
	}
	stop := make(chan struct{})
	srv := relayServer(up, store, c, slog.New(slog.NewTextHandler(stderr, nil)), stop)
	fmt.Fprintf(stdout, "streamguard relay: http://%s -> %s (store %s, linger %v)\n", ln.Addr(), redact.RawURL(c.upstream), redact.RawURL(c.store), c.linger)
	return serveUntil(ctx, srv, ln, c.drain, stop, stderr) // before the deferred closeStore
}

// relayServer builds the relay's http.Server. Its log gets the upstream
// calls' retries and final failures, and the server's panics, budgets
// exceeded and streams the store refused. Closing stop ends the streams
// still running (ResumeConfig.Stop).
func relayServer(up *url.URL, store resume.Store, c relayConfig, log *slog.Logger, stop <-chan struct{}) *http.Server {
	client := middleware.NewClient(middleware.Config{Budget: c.budget, Stream: sse.Config{IdleTimeout: c.idle},
		Retry: retry.Policy{MaxAttempts: c.attempts}, Logger: log})
	h := middleware.NewHandler(middleware.Relay(up, client), middleware.ServerConfig{
		Budget:    c.budget,
		Heartbeat: 15 * time.Second,
		Logger:    log,
		Resume:    &middleware.ResumeConfig{Store: store, Linger: c.linger, Stop: stop},
	})
	srv := &http.Server{Handler: &inflight{h: h}, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

// endGrace bounds each step of the end of a shutdown whose drain ran
// out: the handlers ending their streams, then, their connections closed,
// returning.
const endGrace = 5 * time.Second

// serveUntil serves on ln until ctx ends, then shuts down: it stops
// accepting and lets the requests in flight run on for the drain; then it
// closes stop, which ends the streams still running as cut, cancels the
// other requests' contexts, and closes the connections of those still
// running endGrace later. It returns once every handler has returned (or
// after another endGrace, saying so), so that the store can be closed.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, drain time.Duration, stop chan struct{}, stderr io.Writer) int {
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "streamguard relay: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	// Shutdown returning nil is not enough: an HTTP/2 handler outlives its
	// connection (a stream whose client left lingers), and Shutdown counts
	// connections. The handlers are counted instead.
	srv.Shutdown(sctx)
	hs := srv.Handler.(*inflight)
	dl, _ := sctx.Deadline()
	if !hs.wait(time.Until(dl)) {
		close(stop)
		cancelBase()
		ended := hs.wait(endGrace)
		srv.Close()
		if !ended && !hs.wait(endGrace) {
			fmt.Fprintf(stderr, "streamguard relay: requests still running %v after the drain of %v\n", 2*endGrace, drain)
		}
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "streamguard relay: %v\n", err)
		return 1
	}
	return 0
}

// inflight counts the requests its handler is serving, so that the relay
// closes its store only once none is left.
type inflight struct {
	h    http.Handler
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n is back to 0, once wait asked
}

func (f *inflight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.n--; f.n == 0 && f.idle != nil {
			close(f.idle)
			f.idle = nil
		}
	}()
	f.h.ServeHTTP(w, r)
}

// wait waits up to d for no request to be left, and reports whether none
// is.
func (f *inflight) wait(d time.Duration) bool {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return true
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// errStoreDown wraps the failure of a store that did not answer (a Redis
// down, or refusing the password): the relay exits 1, not 2.
var errStoreDown = errors.New("the store did not answer")

// openStore opens the store a -store flag names.
func openStore(spec string) (resume.Store, func(), error) {
	lower := strings.ToLower(spec) // a URL's scheme is case-insensitive
	switch {
	case lower == "memory":
		return resume.NewMemoryStore(resume.MemoryConfig{}), func() {}, nil
	case strings.HasPrefix(lower, "redis://"), strings.HasPrefix(lower, "rediss://"):
		return openRedis(spec)
	}
	return nil, nil, fmt.Errorf("%q is neither memory nor redis://HOST:PORT/DB nor rediss://HOST:PORT/DB", redact.RawURL(spec))
}

// openRedis opens a Redis store for a redis:// or rediss:// URL (see
// resp.New), with the command's own small Redis client: the library never
// requires one.
func openRedis(spec string) (resume.Store, func(), error) {
	c, err := resp.New(spec)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Do(ctx, "PING"); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("%s: %w: %v", redact.RawURL(spec), errStoreDown, err)
	}
	// The client talks to one node: on a Cluster, most of the store's calls
	// would get MOVED. (A server that refuses INFO is taken as one node.)
	if info, err := c.Do(ctx, "INFO", "cluster"); err == nil && strings.Contains(fmt.Sprint(info), "cluster_enabled:1") {
		c.Close()
		return nil, nil, fmt.Errorf("%s is a node of a Redis Cluster, and the relay's Redis client talks to one node: give it one Redis (or a proxy that hides the cluster); in Go, the redisstore module takes go-redis's cluster client", redact.RawURL(spec))
	}
	s := resume.NewRedisStore(c, resume.RedisConfig{})
	return s, func() { s.Close(); c.Close() }, nil
}
