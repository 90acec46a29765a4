// Package redistest starts a redis-server of a test's own: Redis over TLS,
// with a certificate from a CA made for the test and an ACL user, on a
// loopback port. It needs the redis-server binary (Debian's is built with
// TLS): without one the test skips, and fails when $CI is set.
package redistest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TLSServer is a redis-server that takes only TLS connections, and only
// from User: its default user is off.
type TLSServer struct {
	Addr           string         // 127.0.0.1:port
	CAFile         string         // the PEM of the CA that signed its certificate (for $SSL_CERT_FILE)
	Roots          *x509.CertPool // the same CA
	User, Password string
}

// StartTLS starts a TLS redis-server that lives until the test ends.
func StartTLS(tb testing.TB) *TLSServer {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-server is required in CI")
		}
		tb.Skip("no redis-server on $PATH")
	}
	dir := tb.TempDir()
	roots := writeCerts(tb, dir)
	secret := make([]byte, 16)
	rand.Read(secret)
	s := &TLSServer{CAFile: filepath.Join(dir, "ca.pem"), Roots: roots, User: "streamguard-test", Password: hex.EncodeToString(secret)}
	for range 3 { // a port picked free may be taken before the server binds it
		if s.Addr = start(tb, bin, dir, s); s.Addr != "" {
			return s
		}
	}
	tb.Fatal("redis-server with TLS did not start")
	return nil
}

// start runs the server on a free port and returns its address once it
// answers, or "" when it exited first.
func start(tb testing.TB, bin, dir string, s *TLSServer) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	cmd := exec.Command(bin, "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "cert.pem"), "--tls-key-file", filepath.Join(dir, "key.pem"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis-"+port+".log"),
		"--user", "default", "off",
		"--user", s.User, "on", ">"+s.Password, "~*", "&*", "+@all")
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	cfg := &tls.Config{RootCAs: s.Roots, ServerName: "127.0.0.1"}
	for range 100 {
		select {
		case <-exited:
			return ""
		case <-time.After(50 * time.Millisecond):
		}
		if answers(addr, cfg) {
			return addr
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "redis-"+port+".log"))
	tb.Fatalf("redis-server with TLS never answered on %s:\n%s", addr, log)
	return ""
}

// answers reports whether a TLS server at addr replies to a PING (with
// anything: an unauthenticated client gets an error reply).
func answers(addr string, cfg *tls.Config) bool {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && len(line) > 0 && (line[0] == '+' || line[0] == '-')
}

// writeCerts writes ca.pem, and cert.pem and key.pem for 127.0.0.1 and
// localhost signed by it, into dir, and returns the CA as a pool.
func writeCerts(tb testing.TB, dir string) *x509.CertPool {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamguard test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":   {Type: "CERTIFICATE", Bytes: caDER},
		"cert.pem": {Type: "CERTIFICATE", Bytes: leafDER},
		"key.pem":  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	return roots
}
