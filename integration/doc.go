// Package integration proves streamguard under the conditions its users
// meet: a real nginx in front of a model server, real clients that nobody
// here wrote (openai-go, go-sse), hundreds of concurrent streams with faults,
// and hostile servers. It is a module of its own, so that its dependencies
// never enter the library's go.mod; it holds tests only.
//
// Run it from this directory:
//
//	go test -race -count=1 ./...          # what CI runs; the load tests at 200 streams of 1,000 events
//	go test -race -short -count=1 ./...   # quicker: 40 streams of 200 events
//
// The nginx tests skip when nginx is not installed, unless $CI is set (to
// anything but ""), where they fail, as the tests that need redis do:
// .ci/run installs nginx from Debian's packages.
package integration
