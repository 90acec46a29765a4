// Package resp is a small Redis client (RESP2 over TCP, or over TLS), enough
// for the resume package's Redis store in the relay command without a
// dependency: a command in, its reply out, on a connection of its own
// (kept for the next call, up to maxIdle idle ones; one its peer has
// closed is not used again), with the context's deadline and cancellation
// on every call, and at most callTimeout. Calls in flight are not
// bounded in number: a blocking read (XREAD BLOCK) must not make a
// stream's appends wait.
package resp

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamguard/streamguard/internal/redact"
)

// Bounds on what a reply may hold.
const (
	maxBulk  = 64 << 20
	maxLine  = 64 << 10 // a status or error line
	maxArray = 1 << 20
	maxDepth = 8
	maxIdle  = 16
)

// maxReply bounds a whole reply: its bytes, and valueCost for each value
// in it (what a value costs the client beyond its bytes). A reply over it
// fails the call and drops the connection, at once rather than by the
// call's timeout. The largest a store asks for is a read of about 1 MiB
// of events, or one event of up to maxBulk.
var maxReply = 2 * maxBulk

const valueCost = 32

// callTimeout bounds a call (Do) whose context has no earlier deadline: a
// Redis that stops answering (or a connection dropped on the way, which no
// FIN reports) fails the call instead of blocking it for ever. A blocking
// command (BLOCK, BLPOP) must ask to block for less.
const callTimeout = 10 * time.Second

// ErrClosed is the error of a call (Do) on a closed client. It wraps
// net.ErrClosed.
var ErrClosed = fmt.Errorf("redis: the client is closed: %w", net.ErrClosed)

// Error is an error reply of the server; its text is the server's, as
// other Go clients give it ("NOSCRIPT ...", "ERR ...").
type Error string

func (e Error) Error() string { return string(e) }

// Client sends commands to one Redis server. It is safe for concurrent use.
type Client struct {
	addr     string
	tls      *tls.Config // nil: plain TCP
	user     string      // an ACL user (Redis 6); empty: the default user
	password string
	db       int
	timeout  time.Duration // callTimeout; shorter in tests
	idle     chan *conn
	mu       sync.Mutex // orders Close and the return of connections
	closed   bool
}

type conn struct {
	broken bool // see roundTrip
	nc     net.Conn
	probe  *probe // is an idle nc alive?
	r      *bufio.Reader
	w      *bufio.Writer
	left   int      // of maxReply, for the reply being read
	num    [64]byte // scratch: a header in [:32], a number in [32:]
}

// New returns a client for a redis://[[user]:password@]host[:port][/db]
// URL, or a rediss:// one for Redis over TLS (1.2 at least; the server's
// certificate checked against the system's roots, which $SSL_CERT_FILE and
// $SSL_CERT_DIR can name, for its host name). With a user (an ACL user,
// Redis 6 on) it authenticates as "AUTH user password", else with a
// password as "AUTH password". The port is 6379 unless given. It dials on
// the first command.
func New(rawURL string) (*Client, error) {
	const escape = "escape '/', '?', '#' and '@' in the password (%2F, %3F, %23, %40)"
	u, err := url.Parse(rawURL)
	switch {
	case err == nil && u.User == nil && strings.Contains(rawURL, "@"), strings.Contains(rawURL, "@") && badPort(err):
		// A '/', '?' or '#' in a password ends the host: what follows
		// would be taken as the path, and the password sent nowhere.
		return nil, fmt.Errorf("%q: an '@' after the host: %s", redact.RawURL(rawURL), escape)
	case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%q is not a redis://HOST:PORT/DB or rediss://HOST:PORT/DB URL", redact.RawURL(rawURL))
	case u.Fragment != "" || strings.Contains(rawURL, "#"):
		return nil, fmt.Errorf("%q: a '#' ends the URL: a fragment means nothing to Redis; %s", redact.RawURL(rawURL), escape)
	}
	if u.RawQuery != "" || u.ForceQuery {
		// Other clients' options (?db=, ?password=) would be dropped
		// without a word: the relay on database 0, or without AUTH.
		return nil, fmt.Errorf("%q: options in a query are not supported: give the database as the path (/DB) and the password before the host (redis://:PASSWORD@HOST:PORT/DB)", redact.RawURL(rawURL))
	}
	c := &Client{addr: u.Host, timeout: callTimeout, idle: make(chan *conn, maxIdle)}
	if u.Port() == "" {
		c.addr = net.JoinHostPort(u.Hostname(), "6379")
	}
	if u.Scheme == "rediss" {
		c.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	if u.User != nil {
		c.user = u.User.Username()
		c.password, _ = u.User.Password()
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if c.db, err = strconv.Atoi(db); err != nil || c.db < 0 {
			return nil, fmt.Errorf("%q: the database is not a number", redact.RawURL(rawURL))
		}
	}
	return c, nil
}

// badPort reports whether err is url.Parse's "invalid port", as a URL
// whose password's '/' ended the host makes it (the password read as the
// port).
func badPort(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) && strings.HasPrefix(ue.Err.Error(), "invalid port")
}

// Close closes the idle connections, and each connection in use once its
// call returns. A call after Close fails with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for {
		select {
		case cn := <-c.idle:
			cn.nc.Close()
		default:
			return nil
		}
	}
}

// Do sends one command and returns its reply: a string for a status or a
// bulk string, an int64 for an integer, []any for an array, nil for a nil
// reply, and an Error for an error reply. The whole call (a dial, TLS,
// AUTH and SELECT if it needs a new connection, then the command) ends by
// ctx's deadline or the client's timeout, whichever comes first.
func (c *Client) Do(ctx context.Context, args ...any) (any, error) {
	b := c.bound(ctx)
	cn, err := c.get(ctx, b)
	if err != nil {
		return nil, err
	}
	v, err := cn.roundTrip(ctx, b, args)
	if (err != nil && !isReply(err)) || cn.broken {
		cn.nc.Close() // the connection's state is unknown
		return v, err
	}
	cn.nc.SetDeadline(time.Time{}) // idle: its probe reads it without one
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.nc.Close()
		return v, err
	}
	select {
	case c.idle <- cn:
	default:
		cn.nc.Close()
	}
	return v, err
}

// bound is when a call must end: ctx's deadline, or the client's timeout
// from now when that comes first (own).
type bound struct {
	at      time.Time
	own     bool
	timeout time.Duration
}

func (c *Client) bound(ctx context.Context) bound {
	at := time.Now().Add(c.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(at) {
		return bound{at: dl, timeout: c.timeout}
	}
	return bound{at: at, own: true, timeout: c.timeout}
}

// err reports a failure of a call within b: ctx's error when ctx caused
// it (the connection's deadline is ctx's, and may fire a moment before
// it), and one that says so when the client's timeout did.
func (b bound) err(ctx context.Context, err error) error {
	timedOut := errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
	switch {
	case err == nil || isReply(err):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	case timedOut && b.own:
		return fmt.Errorf("redis: no answer within %v: %w", b.timeout, os.ErrDeadlineExceeded)
	case timedOut:
		return context.DeadlineExceeded
	}
	return err
}

// get returns an idle connection still alive (its peer has not closed
// it: Redis's timeout, a restart, a proxy), or dials a new one within b.
func (c *Client) get(ctx context.Context, b bound) (*conn, error) {
	for range maxIdle {
		var cn *conn
		select {
		case cn = <-c.idle:
		default:
		}
		if cn == nil {
			break
		}
		if cn.r.Buffered() == 0 && cn.probe.alive() && cn.tlsQuiet() {
			return cn, nil
		}
		cn.nc.Close()
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	d := net.Dialer{Deadline: b.at}
	var nc net.Conn
	var err error
	if c.tls != nil {
		td := tls.Dialer{NetDialer: &d, Config: c.tls}
		nc, err = td.DialContext(ctx, "tcp", c.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, b.err(ctx, err)
	}
	cn := &conn{nc: nc, probe: newProbe(nc), r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
	if auth := c.auth(); auth != nil {
		if _, err := cn.roundTrip(ctx, b, auth); err != nil || cn.broken {
			nc.Close()
			if isReply(err) {
				err = errors.New("redis: AUTH failed") // not the server's words: they could echo the credential
			}
			return nil, cmp.Or(err, ctx.Err())
		}
	}
	if c.db != 0 {
		if _, err := cn.roundTrip(ctx, b, []any{"SELECT", c.db}); err != nil || cn.broken {
			nc.Close()
			return nil, cmp.Or(err, ctx.Err())
		}
	}
	return cn, nil
}

// tlsQuiet tells whether a TLS connection holds no reply data that crypto/tls
// has read from the socket but not handed out: a record read along with the
// last reply, which neither r.Buffered nor the probe (it reads the socket)
// can see, and which the next command would take for its reply. It reads
// with a deadline already past: crypto/tls then returns what it holds (a
// byte: the connection is not used again) or a timeout, which it takes for
// a temporary error, leaving the connection usable, without waiting for the
// network. The deadline is cleared after. A plain TCP connection is quiet.
func (cn *conn) tlsQuiet() bool {
	if _, ok := cn.nc.(*tls.Conn); !ok {
		return true
	}
	if cn.nc.SetReadDeadline(time.Now()) != nil {
		return false
	}
	_, err := cn.r.Peek(1)
	return errors.Is(err, os.ErrDeadlineExceeded) && cn.nc.SetReadDeadline(time.Time{}) == nil
}

// auth is the AUTH command of the client's credentials, if it has any.
func (c *Client) auth() []any {
	switch {
	case c.user != "":
		return []any{"AUTH", c.user, c.password}
	case c.password != "":
		return []any{"AUTH", c.password}
	}
	return nil
}

// roundTrip writes a command and reads its reply, within ctx and b. When
// ctx ends as it returns, the connection is broken: its deadline may have
// been set to the past after the call.
func (cn *conn) roundTrip(ctx context.Context, b bound, args []any) (any, error) {
	cn.nc.SetDeadline(b.at)
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { cn.nc.SetDeadline(time.Unix(1, 0)) })
		defer func() {
			if !stop() {
				cn.broken = true
			}
		}()
	}
	if err := cn.write(args); err != nil {
		return nil, err
	}
	err := cn.w.Flush()
	var v any
	if err == nil {
		cn.left = maxReply
		v, err = cn.reply(0)
	}
	return v, b.err(ctx, err)
}

// write writes a command into the buffer, its arguments' bytes as they
// are: nothing is copied but into the buffer.
func (cn *conn) write(args []any) error {
	cn.w.Write(cn.header('*', len(args)))
	for _, a := range args {
		var s string
		var b []byte
		switch v := a.(type) {
		case string:
			s = v
		case []byte:
			b = v
		case int:
			b = strconv.AppendInt(cn.num[32:32], int64(v), 10)
		case int64:
			b = strconv.AppendInt(cn.num[32:32], v, 10)
		case uint64:
			b = strconv.AppendUint(cn.num[32:32], v, 10)
		default:
			return fmt.Errorf("redis: argument of type %T", a) // Do closes the connection
		}
		cn.w.Write(cn.header('$', len(s)+len(b)))
		cn.w.WriteString(s)
		cn.w.Write(b)
		cn.w.WriteString("\r\n")
	}
	return nil
}

// header returns "{kind}{n}\r\n" in the connection's scratch bytes.
func (cn *conn) header(kind byte, n int) []byte {
	h := append(cn.num[:0], kind)
	h = strconv.AppendInt(h, int64(n), 10)
	return append(h, '\r', '\n')
}
