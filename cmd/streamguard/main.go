// Command streamguard shows what the streamguard library makes of the
// failures of calls to model-inference endpoints, and probes real ones.
//
// Usage:
//
//	streamguard [demo]            run every platform fault against an embedded gateway
//	streamguard probe [flags] URL call a real endpoint through the client stack
//	streamguard relay -listen ADDR -upstream URL [-store memory|redis://HOST:PORT/DB] [-budget D] [-idle D] [-linger D] [-drain D] [-attempts N]
//	                              relay to an upstream with resumable streams
//
// The demo starts a fault-injecting gateway on loopback and calls it through
// the full client stack once per fault of the platform's inference-error
// guide (503 then success, 502 unreachable, 502 client closed, 504, 413
// refused before upload, 429 with Retry-After, a truncated stream, a stalled
// stream, an in-band error event, an HTTP/2 reset, a complete stream). It
// prints a row per scenario and exits 0 when every one was classified as
// expected, 1 otherwise, and 130 when it was interrupted (SIGINT, SIGTERM).
//
// Exit codes: 0 success; 1 a classified failure (or a demo scenario that was
// not classified as expected); 2 a usage error; 130 the demo interrupted.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

type atomicHandler = atomic.Pointer[http.Handler]

const usage = `usage:
  streamguard [demo]             run every platform fault against an embedded gateway
  streamguard probe [flags] URL  call a real endpoint through the client stack
  streamguard relay -listen ADDR -upstream URL [-store memory|redis://HOST:PORT/DB]
                    [-budget D] [-idle D] [-linger D] [-drain D] [-attempts N]
                                 relay to an upstream, with resumable streams

Run "streamguard probe -h" or "streamguard relay -h" for the flags.
Exit codes: 0 success, 1 classified failure, 2 usage error, 130 demo interrupted.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful end (the relay's drain); a second
	// one ends the process at once, as without the handler.
	context.AfterFunc(ctx, stop)
	code := run1(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run1 runs the command line args and returns the exit code.
func run1(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "demo" {
		if len(args) == 2 && isHelp(args[1]) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		if len(args) > 1 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		switch ok := runDemo(ctx, stdout); {
		case ok:
			return 0
		case ctx.Err() != nil:
			return 130 // interrupted, as a shell reports SIGINT
		}
		return 1
	}
	switch args[0] {
	case "probe":
		return probe(ctx, args[1:], stdout, stderr, getenv)
	case "relay":
		return relay(ctx, args[1:], stdout, stderr)
	}
	if isHelp(args[0]) || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

// isHelp reports whether arg asks for help, as the flag package reads it.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "--h"
}

// parseFlags parses a subcommand's flags. The usage asked for (-h) goes to
// stdout, exit 0, as the top-level command's does; a usage error and the
// usage after it to stderr, exit 2. It returns -1 when the command may run,
// fs's output then stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(out.Bytes())
		return 0
	case err != nil:
		stderr.Write(out.Bytes())
		return 2
	}
	return -1
}
