package main

import (
	"strings"
	"testing"
)

// runs is go test output in the bench package's names: two runs of the
// in-memory guard and raw floor on workloads A and B, a name line without
// results, a log line, and a benchmark no table knows.
const runs = `goos: linux
cpu: Test CPU 9000
BenchmarkConsume/src=mem/load=A/via=raw-2    100  1000 ns/op  9000.00 MB/s  0 allocs/event  3 allocs/op
BenchmarkConsume/src=mem/load=A/via=guard-2  100  2000 ns/op  5000.00 MB/s  0.00005 allocs/event  5 allocs/op
BenchmarkConsume/src=mem/load=A/via=raw-2    100  1000 ns/op  8000.00 MB/s  0 allocs/event  3 allocs/op
BenchmarkConsume/src=mem/load=A/via=guard-2  100  2000 ns/op  3000.00 MB/s  0.00005 allocs/event  5 allocs/op
BenchmarkConsume/src=mem/load=B/via=raw-2    100  1000 ns/op 20000.00 MB/s  0 allocs/event  3 allocs/op
BenchmarkConsume/src=mem/load=B/via=guard-2  100  2000 ns/op 12000.00 MB/s  0.002 allocs/event  5 allocs/op
BenchmarkRelay/via=relay
    relay_test.go:10: a log line
BenchmarkRelay/via=relay-2  10  30000000 ns/op  400.00 MB/s  0.0258 allocs/event  2572 allocs/op
`

func TestParse(t *testing.T) {
	r, err := parse(strings.NewReader(runs))
	if err != nil {
		t.Fatal(err)
	}
	if r.cpu != "Test CPU 9000" {
		t.Errorf("cpu %q", r.cpu)
	}
	if len(r.names) != 5 {
		t.Errorf("names %q, want the 5 benchmarks with results, without their -2", r.names)
	}
	if got := r.runs(consumeName("mem", "A", "guard")); got != 2 {
		t.Errorf("runs of guard on A: %d, want 2", got)
	}
	if m, ok := r.median(consumeName("mem", "A", "guard"), "MB/s"); !ok || m != 4000 {
		t.Errorf("median of 5000 and 3000: %v %v, want 4000", m, ok)
	}
	if _, ok := r.median("BenchmarkNone", "MB/s"); ok {
		t.Error("a median of a benchmark that did not run")
	}
}

func TestTargets(t *testing.T) {
	r, err := parse(strings.NewReader(runs))
	if err != nil {
		t.Fatal(err)
	}
	p := &report{r: r, w: &strings.Builder{}}
	v := p.targets()
	if len(v) != 5 {
		t.Fatalf("%d verdicts, want 5", len(v))
	}
	// Guard on A: 4.00 GB/s is the target itself, and its allocations per
	// stream are the same on A and B: met.
	if v[0].met != "**met**" || !strings.Contains(v[0].detail, "4.00 GB/s") {
		t.Errorf("target 1: %+v", v[0])
	}
	// Guard on B: 12 GB/s against 10.
	if v[1].met != "**met**" || !strings.Contains(v[1].detail, "12.00 GB/s") {
		t.Errorf("target 2: %+v", v[1])
	}
	for i := 2; i < 5; i++ {
		if v[i].met != "not measured" {
			t.Errorf("target %d, without its runs: %+v", i+1, v[i])
		}
	}

	slow := strings.ReplaceAll(runs, "12000.00 MB/s", "9000.00 MB/s")
	r, _ = parse(strings.NewReader(slow))
	p = &report{r: r, w: &strings.Builder{}}
	if v := p.targets()[1]; v.met != "**not met**" || !strings.Contains(v.detail, "gap: 1.00 GB/s") {
		t.Errorf("target 2 at 9 GB/s: %+v", v)
	}
}

func TestOtherTable(t *testing.T) {
	r, _ := parse(strings.NewReader(runs))
	p := &report{r: r, w: &strings.Builder{}}
	p.otherTable()
	if !strings.Contains(p.w.String(), "| Relay/via=relay | 30000000 |") {
		t.Errorf("the benchmark no table knows is not under other benchmarks:\n%s", p.w.String())
	}
}
