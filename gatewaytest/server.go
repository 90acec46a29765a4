package gatewaytest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Server is a Gateway listening on a loopback address, in the manner of
// httptest.Server: start it with NewServer (HTTP/1.1) or NewTLSServer (TLS
// with HTTP/2), call its URL with Client(), and Close it when done. The
// Gateway's methods (Script, Records, ...) are the Server's; the listener
// behind it is not part of its surface.
type Server struct {
	*Gateway
	// URL is the base URL of the server, http://127.0.0.1:port or
	// https://... for NewTLSServer.
	URL string

	srv   *httptest.Server
	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

// Client returns an HTTP client for the server: for NewTLSServer, one that
// trusts its certificate and speaks HTTP/2.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// NewServer starts a Gateway in front of model on a loopback HTTP/1.1
// server.
func NewServer(model http.Handler) *Server {
	s := newServer(model)
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// NewTLSServer starts a Gateway in front of model on a loopback TLS server
// that speaks HTTP/2; its Client() negotiates HTTP/2.
func NewTLSServer(model http.Handler) *Server {
	s := newServer(model)
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

func newServer(model http.Handler) *Server {
	s := &Server{Gateway: New(model), conns: make(map[net.Conn]http.ConnState)}
	s.srv = httptest.NewUnstartedServer(s.Gateway)
	s.srv.Config.ConnState = s.track
	return s
}

func (s *Server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	default:
		s.conns[c] = st
	}
}

// OpenConns returns how many client connections the server holds open, idle
// or active: after a test's clients are done and have closed their idle
// connections, a leak shows here.
func (s *Server) OpenConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close ends every stall and pending 504, then shuts the server down and
// blocks until every request on it has completed.
func (s *Server) Close() {
	s.Gateway.Close()
	s.srv.Close()
}
