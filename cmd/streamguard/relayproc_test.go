package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/redistest"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// startRelayProcess runs "streamguard relay args..." as a process of its
// own (this test binary, through TestMain), with env added to its
// environment, and returns its address. When the test ends, it is sent
// SIGTERM and must exit 0 within ten seconds (a race found in it fails it
// with another code), and what it wrote must not hold secret (unless "").
func startRelayProcess(t *testing.T, env []string, secret string, args ...string) string {
	t.Helper()
	addr, _ := startRelayProcessKill(t, env, secret, args...)
	return addr
}

// startRelayProcessKill is startRelayProcess, and returns a func that
// kills the process (SIGKILL: it dies mid-work, as in a crash, which its
// cleanup then takes as its end).
func startRelayProcessKill(t *testing.T, env []string, secret string, args ...string) (string, func()) {
	t.Helper()
	var killed atomic.Bool
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--", "relay", "-listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), env...), "STREAMGUARD_TEST_MAIN=1")
	var errb gatewaytest.SyncBuffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	var out gatewaytest.SyncBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
				break
			}
		}
		io.Copy(&out, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil && !killed.Load() {
				t.Errorf("relay process %d: %v\n%s", cmd.Process.Pid, err, errb.String())
			}
			if all := out.String() + errb.String(); secret != "" && strings.Contains(all, secret) {
				t.Errorf("relay process %d wrote the secret:\n%s", cmd.Process.Pid, all)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("relay process %d did not exit on SIGTERM\n%s", cmd.Process.Pid, errb.String())
			<-exited
		}
	})
	kill := func() {
		killed.Store(true)
		cmd.Process.Kill()
	}
	select {
	case a := <-addr:
		return a, kill
	case err := <-exited:
		exited <- err
		t.Fatalf("relay process exited: %v\n%s", err, errb.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the relay process never said where it listens\n%s", errb.String())
	}
	return "", nil
}

// TestRelayRedisTwoProcesses runs two relay processes sharing one Redis:
// the client's connection to relay A is cut mid-stream, and it finishes
// the stream at relay B, which has nothing of it but what A wrote to
// Redis. The upstream is called once.
func TestRelayRedisTwoProcesses(t *testing.T) {
	store := "redis://" + resumetest.RedisAddr(t) + "/0"
	twoRelays(t, func(up string) (a, b string) {
		return startRelayProcess(t, nil, "", "-upstream", up, "-store", store, "-linger", "5s"),
			startRelayProcess(t, nil, "", "-upstream", up, "-store", store, "-linger", "5s")
	})
}

// TestRelayRedisTLS is TestRelayRedisTwoProcesses on a Redis of the test's
// own that takes only TLS and one ACL user, the way managed Redis services
// run: the relays trust its CA through $SSL_CERT_FILE, relay A is given
// the store's URL with -store and relay B through $STREAMGUARD_RELAY_STORE,
// and neither ever writes the password.
func TestRelayRedisTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	store := "rediss://" + srv.User + ":" + srv.Password + "@" + srv.Addr + "/0"
	env := []string{"SSL_CERT_FILE=" + srv.CAFile}
	twoRelays(t, func(up string) (a, b string) {
		return startRelayProcess(t, env, srv.Password, "-upstream", up, "-store", store, "-linger", "5s"),
			startRelayProcess(t, append(env, storeEnv+"="+store), srv.Password, "-upstream", up, "-linger", "5s")
	})
}

// twoRelays streams a chat completion of 300 events from an upstream of its
// own through two relays (start starts them on it): the client's
// connection to A is cut mid-stream, and it must finish the stream at B
// from the shared store, with the upstream called once.
func twoRelays(t *testing.T, start func(upstream string) (a, b string)) {
	const n = 300
	up := gatewaytest.NewServer(gatewaytest.ChatStream(n))
	defer up.Close()
	a, b := start(up.URL)
	lb := balancer(t, a, b, 12000)
	wantChat(t, readThrough(t, lb.Addr()), n)
	if lb.Conns() < 2 {
		t.Fatalf("%d connections: the stream never moved to relay B", lb.Conns())
	}
	if got := up.Gateway.Requests(); got != 1 {
		t.Fatalf("the upstream saw %d requests: the resume at B must come from the store, not a new call", got)
	}
}

// TestRelayRefusesCluster: the relay's Redis client talks to one node, so
// the relay refuses a Redis Cluster's node at once, saying why, instead of
// failing most of its streams' store calls with MOVED.
func TestRelayRefusesCluster(t *testing.T) {
	nodes := resumetest.Server(t, "STREAMGUARD_REDIS_CLUSTER", "a redis cluster's nodes' host:port, comma-separated")
	node, _, _ := strings.Cut(nodes, ",")
	var out, errb gatewaytest.SyncBuffer
	canceled, cancel := context.WithCancel(context.Background())
	cancel() // a relay that took the store would stop at once, exit 0
	code := relay(canceled, []string{"-listen", "127.0.0.1:0", "-upstream", "http://127.0.0.1:1", "-store", "redis://" + node}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "Redis Cluster") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
