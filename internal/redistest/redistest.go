// Package redistest starts redis-servers of a test's own, on loopback
// ports: a plain one with the test's arguments; Redis over TLS, with a certificate from a CA made for the test and
// an ACL user; and a master, its replica and a Sentinel watching them. It
// needs the redis-server binary (Debian's is built with TLS and runs
// Sentinel): without one the test skips, and fails when $CI is set.
package redistest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	bin := binary(tb)
	dir := tb.TempDir()
	roots := writeCerts(tb, dir)
	secret := make([]byte, 16)
	rand.Read(secret)
	s := &TLSServer{CAFile: filepath.Join(dir, "ca.pem"), Roots: roots, User: "streamguard-test", Password: hex.EncodeToString(secret)}
	cfg := &tls.Config{RootCAs: s.Roots, ServerName: "127.0.0.1"}
	s.Addr = serve(tb, bin, dir, func(port string) []string {
		return []string{"--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
			"--tls-cert-file", filepath.Join(dir, "cert.pem"), "--tls-key-file", filepath.Join(dir, "key.pem"),
			"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--user", "default", "off",
			"--user", s.User, "on", ">" + s.Password, "~*", "&*", "+@all"}
	}, func(addr string) (net.Conn, error) {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
		return d.Dial("tcp", addr)
	}, "AUTH "+s.User+" "+s.Password+"\r\n")
	return s
}

// Start starts a plain redis-server with the extra arguments (such as
// "--maxmemory", "4mb") that lives until the test ends, and returns its
// address.
func Start(tb testing.TB, extra ...string) string {
	tb.Helper()
	bin := binary(tb)
	dir := tb.TempDir()
	return serve(tb, bin, dir, func(port string) []string {
		return append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, extra...)
	}, dialTCP, "")
}

// Sentinel is a master, its replica, and a Sentinel that watches them
// (quorum 1) under MasterName.
type Sentinel struct {
	MasterName                    string
	Master, Replica, SentinelAddr string
}

// StartSentinel starts a master, a replica of it and a Sentinel, which
// live until the test ends. The Sentinel may not know the replica yet when
// it returns.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	bin := binary(tb)
	dir := tb.TempDir()
	s := &Sentinel{MasterName: "streamguard-test"}
	plain := func(extra ...string) func(port string) []string {
		return func(port string) []string {
			return append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--dir", dir, "--dbfilename", "dump-" + port + ".rdb"}, extra...)
		}
	}
	s.Master = serve(tb, bin, dir, plain(), dialTCP, "")
	host, port, _ := net.SplitHostPort(s.Master)
	s.Replica = serve(tb, bin, dir, plain("--replicaof", host, port), dialTCP, "")
	s.SentinelAddr = serve(tb, bin, dir, func(sport string) []string {
		conf := filepath.Join(dir, "sentinel-"+sport+".conf") // Sentinel rewrites it
		err := os.WriteFile(conf, fmt.Appendf(nil, "sentinel monitor %s %s %s 1\n"+
			"sentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 10000\n", s.MasterName, host, port), 0o600)
		if err != nil {
			tb.Fatal(err)
		}
		return []string{conf, "--sentinel", "--port", sport, "--bind", "127.0.0.1", "--dir", dir}
	}, dialTCP, "")
	return s
}

// binary returns redis-server's path.
func binary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-server is required in CI")
		}
		tb.Skip("no redis-server on $PATH")
	}
	return bin
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

// serve runs redis-server with args (for a port) on a free loopback port
// until the test ends, and returns its address once it answers on a
// connection from dial, after the commands hello. It tries three ports:
// one picked free may be taken before the server binds it.
func serve(tb testing.TB, bin, dir string, args func(port string) []string, dial func(string) (net.Conn, error), hello string) string {
	tb.Helper()
	for range 3 {
		if addr := serveOn(tb, bin, dir, args, dial, hello); addr != "" {
			return addr
		}
	}
	tb.Fatalf("redis-server %q did not start", args("PORT"))
	return ""
}

// serveOn is one try of serve: "" when the server exited first.
func serveOn(tb testing.TB, bin, dir string, args func(port string) []string, dial func(string) (net.Conn, error), hello string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	logf := filepath.Join(dir, "redis-"+port+".log")
	cmd := exec.Command(bin, append(args(port), "--logfile", logf)...)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for range 100 {
		select {
		case <-exited:
			return ""
		case <-time.After(50 * time.Millisecond):
		}
		if answers(addr, dial, hello, cmd.Process.Pid) {
			return addr
		}
	}
	log, _ := os.ReadFile(logf)
	tb.Fatalf("redis-server never answered on %s:\n%s", addr, log)
	return ""
}

// answers reports whether the server at addr is process pid, from its
// INFO (another server could have taken the port first).
func answers(addr string, dial func(string) (net.Conn, error), hello string, pid int) bool {
	c, err := dial(addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(hello + "INFO server\r\n")); err != nil {
		return false
	}
	var buf []byte
	b := make([]byte, 4096)
	for len(buf) < 1<<20 {
		n, err := c.Read(b)
		buf = append(buf, b[:n]...)
		if i := bytes.Index(buf, []byte("process_id:")); i >= 0 {
			if j := bytes.IndexByte(buf[i:], '\r'); j >= 0 {
				return string(buf[i:i+j]) == "process_id:"+strconv.Itoa(pid)
			}
		}
		if err != nil {
			return false
		}
	}
	return false
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
