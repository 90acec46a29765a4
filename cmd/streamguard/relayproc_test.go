package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// startRelayProcess runs "streamguard relay args..." as a process of its
// own (this test binary, through TestMain), and returns its address. When
// the test ends, it is sent SIGTERM and must exit 0 within ten seconds
// (a race found in it fails it with another code).
func startRelayProcess(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--", "relay", "-listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "STREAMGUARD_TEST_MAIN=1")
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
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
				break
			}
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("relay process %d: %v\n%s", cmd.Process.Pid, err, errb.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("relay process %d did not exit on SIGTERM\n%s", cmd.Process.Pid, errb.String())
			<-exited
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-exited:
		exited <- err
		t.Fatalf("relay process exited: %v\n%s", err, errb.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the relay process never said where it listens\n%s", errb.String())
	}
	return ""
}

// TestRelayRedisTwoProcesses runs two relay processes sharing one Redis:
// the client's connection to relay A is cut mid-stream, and it finishes
// the stream at relay B, which has nothing of it but what A wrote to
// Redis. The upstream is called once.
func TestRelayRedisTwoProcesses(t *testing.T) {
	addr := resumetest.RedisAddr(t)
	const n = 300
	up := gatewaytest.NewServer(gatewaytest.ChatStream(n))
	defer up.Close()
	a := startRelayProcess(t, "-upstream", up.URL, "-store", "redis://"+addr+"/0", "-linger", "5s")
	b := startRelayProcess(t, "-upstream", up.URL, "-store", "redis://"+addr+"/0", "-linger", "5s")
	lb := balancer(t, a, b, 12000)
	wantChat(t, readThrough(t, lb.Addr()), n)
	if lb.Conns() < 2 {
		t.Fatalf("%d connections: the stream never moved to relay B", lb.Conns())
	}
	if got := up.Gateway.Requests(); got != 1 {
		t.Fatalf("the upstream saw %d requests: the resume at B must come from Redis, not a new call", got)
	}
}
