package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalEnds: a relay draining after a first SIGINT (a request
// holds it for its -drain of a minute) ends at once on a second one, as a
// process without a handler does; it ignored every signal after the first.
func TestSecondSignalEnds(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "relay", "-listen", "127.0.0.1:0", "-upstream", up.URL, "-drain", "1m")
	cmd.Env = append(os.Environ(), "STREAMGUARD_TEST_MAIN=1")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var addr string
	for addr == "" && sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if addr == "" {
		t.Fatal("the relay never said where it listens")
	}
	go http.Get("http://" + addr + "/v1/models") // held by the upstream
	time.Sleep(300 * time.Millisecond)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay was still draining 10 s after a second SIGINT")
	}
}
