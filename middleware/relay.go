package middleware

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/sse"
)

// hopHeaders are the hop-by-hop headers a relay never forwards (RFC 9110,
// 7.6.1), and the ones it sets itself.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Relay returns a handler that forwards each request to upstream through
// client (the client stack: budget, retry, stream guard, tracing) and
// relays the answer as it arrives, flushing after every read: the status,
// the headers but the hop-by-hop ones, and the body. The request's path is
// joined to upstream's path and its query added to upstream's. Its headers
// go along, credentials included, so an upstream's 401 is the caller's own
// and is relayed as it is (unless the caller sent no Authorization and
// upstream holds a userinfo: the relay's own credentials then, whose
// refusal is answered 502, see WriteError); the caller's address is
// appended to X-Forwarded-For; Accept-Encoding is dropped, as client's
// transport negotiates compression itself and decompresses. A stream that
// fails after its header is ended with WriteError: a failure event on an
// event stream. The upstream's Resumable-Stream header is not relayed:
// inside NewHandler with Resume set, the relay's streams are its own to
// resume.
//
// An upstream's redirect is relayed, never followed (client is copied with
// a CheckRedirect that says so): following it would send the caller's
// request, turned into a GET, to wherever the upstream points. A Location
// into upstream (its origin and path) is rewritten to the same place
// through the relay, as nginx's proxy_redirect does by default; any other
// keeps its address; none keeps the query values upstream's URL holds (a
// key); Content-Location, a Link's references and a Refresh's URL are
// rewritten so too. No header relayed keeps the relay's own credentials
// (upstream's userinfo and query values), wherever an upstream echoes
// them: they are replaced by REDACTED. A redirect's body, which
// quotes the Location as upstream wrote it, is dropped. A request path
// with a "." or ".." segment (raw or escaped) is answered 400: joined to
// upstream's path it could climb out of it. An
// upstream it cannot reach is answered without the transport's words,
// which name the upstream's address, and any other failure to get an
// answer without upstream's URL (a client without the stack quotes it,
// keys and all) or the request's credentials; a caller's body that could not be
// read is the caller's failure (413 over a server's cap such as
// MaxBodyBytes, 400 otherwise), whatever the client made of it.
func Relay(upstream *url.URL, client *http.Client) http.Handler {
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client = &c
	own := ownSecrets(upstream)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dotSegment(r.URL.EscapedPath()) {
			WriteError(w, r, &streamguard.Error{Source: streamguard.SourceRequest, Reason: streamguard.ReasonBadRequest,
				StatusCode: http.StatusBadRequest, Message: "the request path has a . or .. segment"})
			return
		}
		body := &callerBody{ReadCloser: r.Body}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target(upstream, r.URL).String(), body)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		out.ContentLength = r.ContentLength
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			out.Body = http.NoBody
		}
		copyHeader(out.Header, r.Header)
		forwardedFor(out.Header, r.RemoteAddr)
		out.Header.Del(sse.LastEventIDHeader)
		// The client's transport asks for gzip itself and decompresses:
		// the guard and resume frame events, which they cannot in gzip.
		out.Header.Del("Accept-Encoding")
		resp, err := client.Do(out)
		if err != nil {
			if berr := body.failure(); berr != nil {
				WriteError(w, r, berr) // the caller's body, not the upstream
				return
			}
			WriteError(w, r, noAnswer(err, out))
			return
		}
		defer resp.Body.Close()
		if upstream.User != nil && r.Header.Get("Authorization") == "" && refusedCredentials(resp.StatusCode) {
			// The relay's own credentials (upstream's userinfo, which
			// net/http sends when the caller sent no Authorization)
			// refused: not the caller's to fix (WriteError answers 502).
			WriteError(w, r, streamguard.Check(resp))
			return
		}
		answer(w, r, resp, upstream, own)
	})
}

// answer relays resp, upstream's answer to r, to w; own are the relay's
// own credentials (ownSecrets).
func answer(w http.ResponseWriter, r *http.Request, resp *http.Response, upstream *url.URL, own []string) {
	copyHeader(w.Header(), resp.Header)
	relocate(w.Header(), "Location", upstream)
	relocate(w.Header(), "Content-Location", upstream)
	relocateLinks(w.Header(), upstream)
	scrubHeader(w.Header(), own)
	w.Header().Del(sse.ResumableStreamHeader)
	w.Header().Del("Content-Length")
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// A redirect's body (net/http's, nginx's) quotes its Location as
		// upstream wrote it, upstream's address and query values (a key)
		// included: the caller has the rewritten header, and no body.
		w.Header().Del("Content-Type")
		w.Header().Del("Content-Encoding")
		w.WriteHeader(resp.StatusCode)
		markWhole(w)
		return
	}
	w.WriteHeader(resp.StatusCode)
	switch whole, err := pump(w, resp.Body); {
	case err != nil:
		WriteError(w, r, err)
	case whole:
		markWhole(w) // a server's stop now has nothing to cut
	}
}

// forwardedFor appends the caller's address to h's X-Forwarded-For, as
// httputil.ReverseProxy does: an upstream that reads it gets the caller,
// not a list the caller wrote alone.
func forwardedFor(h http.Header, remoteAddr string) {
	ip, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return
	}
	if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	h.Set("X-Forwarded-For", ip)
}

// callerBody is the caller's request body as the relay sends it on; it
// keeps the first failure of its reads (not their end), which the client
// may report as its own.
type callerBody struct {
	io.ReadCloser
	mu  sync.Mutex
	err error
}

func (b *callerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// failure is the error the relay answers for a read of the caller's body
// that failed: a server's cap (http.MaxBytesReader, NewHandler's
// MaxBodyBytes) as it is, for its 413; any other as the caller's request
// that could not be read. Nil when every read went well.
func (b *callerBody) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var mbe *http.MaxBytesError
	switch {
	case b.err == nil:
		return nil
	case errors.As(b.err, &mbe):
		return mbe
	}
	return &streamguard.Error{Source: streamguard.SourceRequest, Reason: streamguard.ReasonBadRequest,
		StatusCode: http.StatusBadRequest, Message: "the request body could not be read", Err: b.err}
}

// noAnswer is the error the relay answers for err, the client's failure
// to get an answer to out from the upstream: the transport's text (a dial
// error naming the upstream's internal address) is not the caller's to
// see, nor the URL a client without the stack quotes (*url.Error), nor
// out's credentials (the client stack's errors hold none already).
func noAnswer(err error, out *http.Request) error {
	se := streamguard.FromError(err) // a client without the stack returns the transport's error as it is
	if se != nil && se.StatusCode == 0 && se.Source == streamguard.SourceNetwork {
		e := *se
		e.Message, e.Err = "the upstream could not be reached ("+string(se.Reason)+")", nil
		return &e
	}
	var own *streamguard.Error
	if errors.As(err, &own) {
		return own // the stack's, inside http.Client's *url.Error: its text holds neither
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	if text := redact.Request(err.Error(), out); text != err.Error() {
		return redact.Error(err, text)
	}
	return err
}

// dotSegment reports whether an escaped path has a "." or ".." segment,
// its dots raw or escaped (%2e), or a segment an upstream may read as one:
// once a "%2f" in it is unescaped, at a backslash (raw or %5c, which some
// servers take for a slash), or before a ";" (a path parameter, which
// some servers drop: "..;").
func dotSegment(p string) bool {
	p = slashes.Replace(p)
	for seg := range strings.SplitSeq(p, "/") {
		seg, _, _ = strings.Cut(strings.ToLower(seg), ";")
		seg, _, _ = strings.Cut(seg, "%3b")
		if d := strings.ReplaceAll(seg, "%2e", "."); d == "." || d == ".." {
			return true
		}
	}
	return false
}

// slashes turns what some servers read as a path's slash into one.
var slashes = strings.NewReplacer("%2f", "/", "%2F", "/", "%5c", "/", "%5C", "/", `\`, "/")

// target joins the request's path and query to upstream's. The paths are
// joined as they were sent, escapes kept: "org%2Fmodel" is one segment,
// not two.
func target(upstream, in *url.URL) *url.URL {
	u := *upstream
	u.Path = strings.TrimSuffix(upstream.Path, "/") + "/" + strings.TrimPrefix(in.Path, "/")
	u.RawPath = strings.TrimSuffix(upstream.EscapedPath(), "/") + "/" + strings.TrimPrefix(in.EscapedPath(), "/")
	switch {
	case upstream.RawQuery == "":
		u.RawQuery = in.RawQuery
	case in.RawQuery != "":
		u.RawQuery = upstream.RawQuery + "&" + in.RawQuery
	}
	return &u
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
	if c := src.Get("Connection"); c != "" {
		for _, f := range strings.Split(c, ",") {
			dst.Del(strings.TrimSpace(f))
		}
	}
}

// pump copies body to w, flushing after each read. It returns the body's
// failure, or whether it copied the body to its clean end (whole); a write
// that fails (the client left) ends it quietly.
func pump(w http.ResponseWriter, body io.Reader) (whole bool, err error) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	lf := true // the last byte written was an LF
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false, nil
			}
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return false, nil
			}
			lf = buf[n-1] == '\n'
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			if !lf && lineEnded(w, err) {
				w.Write([]byte{'\n'}) // the failure record goes on a line of its own
			}
			return false, err
		}
	}
}

// lineEnded reports whether err, a JSON-lines stream's failure after its
// last line came whole without its line end (the guard delivers such a
// line at a clean end only when it is whole JSON), ends at a record: it
// does when it is the guard's verdict of a clean end (no terminal record,
// an error record), so an LF may end that line for the failure record.
func lineEnded(w http.ResponseWriter, err error) bool {
	return sse.IsJSONLines(w.Header().Get("Content-Type")) && (errors.Is(err, sse.ErrNoTerminal) || errors.Is(err, sse.ErrInBand))
}
