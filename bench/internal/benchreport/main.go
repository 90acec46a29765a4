// Command benchreport turns the output of bench/run.sh's go test runs into
// bench/RESULTS.md: the medians of every benchmark as ratios to the raw
// floor of the same run, allocations per event, the targets (met,
// or the gap), the machine, the date and the command, and benchstat's own
// summary.
//
//	go run ./internal/benchreport -in results.txt -paired paired.txt -benchstat benchstat.txt \
//	    -out RESULTS.md -machine "AMD EPYC" -cores 2 -date 2026-01-02 -library "commit abc123" \
//	    -cmd "bench/run.sh" -note "..."
//
// It reads benchmark names the way the bench package writes them
// (BenchmarkConsume/src=h1/load=A/via=guard, ...); a benchmark it does not
// know is listed under "Other benchmarks", next to its sibling named raw
// when it has one.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// results maps a benchmark's name (without the -GOMAXPROCS suffix) to its
// values by unit, one per run, in the order the runs came.
type results struct {
	names []string
	vals  map[string]map[string][]float64
	cpu   string
}

var procSuffix = regexp.MustCompile(`-\d+$`)

func parse(r io.Reader) (*results, error) {
	res := &results{vals: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			res.cpu = strings.TrimSpace(cpu)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's name line without results, or a log line
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		m := res.vals[name]
		if m == nil {
			m = map[string][]float64{}
			res.vals[name] = m
			res.names = append(res.names, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			m[f[i+1]] = append(m[f[i+1]], v)
		}
	}
	return res, sc.Err()
}

// median returns the median of name's values in unit, and whether there is
// one.
func (r *results) median(name, unit string) (float64, bool) {
	v := slices.Clone(r.vals[name][unit])
	if len(v) == 0 {
		return 0, false
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// paired returns f(x_i, raw_i) for every round i in which both name and raw
// ran: the runs of the paired rounds come one benchmark after another, so
// the i-th value of each was measured within the same minute.
func (r *results) paired(name, raw, unit string, f func(x, raw float64) float64) []float64 {
	xs, rs := r.vals[name][unit], r.vals[raw][unit]
	out := make([]float64, 0, min(len(xs), len(rs)))
	for i := range min(len(xs), len(rs)) {
		out = append(out, f(xs[i], rs[i]))
	}
	return out
}

func medianOf(v []float64) float64 {
	v = slices.Clone(v)
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func div(x, raw float64) float64 { return x / raw }
func sub(x, raw float64) float64 { return x - raw }

func (r *results) runs(name string) int {
	return len(r.vals[name]["ns/op"])
}

func (r *results) has(name string) bool { _, ok := r.vals[name]; return ok }

// report writes RESULTS.md.
type report struct {
	r  *results
	pr *results // the paired rounds, or nil
	w  *strings.Builder
}

func (p *report) printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

func gbps(mbps float64) string { return fmt.Sprintf("%.2f", mbps/1000) }

func ratio(x float64) string { return fmt.Sprintf("%.2f×", x) }

// signed formats an extra amount with its sign.
func signed(x float64, prec int) string {
	s := strconv.FormatFloat(x, 'f', prec, 64)
	if x >= 0 {
		s = "+" + s
	}
	return s
}

// allocsPerEvent formats a small per-event figure so that 0.00003 does not
// round to a misleading 0.00.
func allocsPerEvent(x float64) string {
	switch {
	case x == 0:
		return "0"
	case x < 0.001:
		return fmt.Sprintf("%.1e", x)
	case x < 1:
		return fmt.Sprintf("%.4f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

func main() {
	in := flag.String("in", "results.txt", "go test output of the runs")
	bs := flag.String("benchstat", "", "benchstat's summary of the same runs, included verbatim")
	pairedIn := flag.String("paired", "", "go test output of the paired rounds (optional)")
	out := flag.String("out", "RESULTS.md", "the report to write")
	machine := flag.String("machine", "", "CPU model (lscpu's model name)")
	cores := flag.String("cores", "", "cores the runs had")
	date := flag.String("date", "", "when the runs started")
	library := flag.String("library", "", "the library version measured (commit, and any uncommitted change)")
	var cmds multi
	flag.Var(&cmds, "cmd", "a command that produced the runs (repeatable)")
	var notes multi
	flag.Var(&notes, "note", "a note for the report's head (repeatable)")
	flag.Parse()

	f, err := os.Open(*in)
	if err != nil {
		log.Fatal(err)
	}
	res, err := parse(f)
	f.Close()
	if err != nil {
		log.Fatal(err)
	}
	if len(res.names) == 0 {
		log.Fatalf("%s: no benchmark results", *in)
	}

	p := &report{r: res, w: &strings.Builder{}}
	if *pairedIn != "" {
		f, err := os.Open(*pairedIn)
		if err != nil {
			log.Fatal(err)
		}
		p.pr, err = parse(f)
		f.Close()
		if err != nil {
			log.Fatal(err)
		}
	}
	p.head(*machine, *cores, *date, *library, cmds, notes)

	p.printf("## Targets of issue 8\n\n| target | verdict | measured |\n|---|---|---|\n")
	for _, v := range p.targets() {
		p.printf("| %s | %s | %s |\n", v.target, v.met, v.detail)
	}
	p.printf("\n")

	p.pairedTables()
	p.consumeTables()
	p.requestTables()
	p.idleTable()
	p.otherTable()

	if *bs != "" {
		b, err := os.ReadFile(*bs)
		if err != nil {
			log.Fatal(err)
		}
		p.printf("## benchstat\n\nThe same runs as benchstat summarises them (median ± 95 %% confidence interval; in the "+
			"per-consumer and per-stack tables, each column against the raw column, with its p-value).\n\n```\n%s```\n",
			strings.TrimLeft(string(b), "\n"))
	}
	if err := os.WriteFile(*out, []byte(p.w.String()), 0o644); err != nil {
		log.Fatal(err)
	}
}

// head writes the report's title, the machine, the date, the library
// measured, the commands and the notes.
func (p *report) head(machine, cores, date, library string, cmds, notes []string) {
	res := p.r
	p.printf("# streamguard benchmark results\n\n")
	p.printf("Written by `bench/run.sh`; do not edit by hand. Every figure is the median of its runs; ratios are to the " +
		"raw floor measured in the same run.\n\n")
	p.printf("- Machine: %s, %s cores (go test reports `cpu: %s`); a shared, noisy machine: other work ran beside these runs.\n", machine, cores, res.cpu)
	p.printf("- Date: %s\n", date)
	if library != "" {
		p.printf("- Library measured: %s\n", library)
	}
	runs := 0
	for _, n := range res.names {
		runs = max(runs, res.runs(n))
	}
	p.printf("- Runs per benchmark: %d\n", runs)
	p.printf("- Commands (from `bench/`):\n\n```sh\n")
	for _, c := range cmds {
		p.printf("%s\n", c)
	}
	p.printf("```\n\n")
	for _, n := range notes {
		p.printf("%s\n\n", n)
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, "\n") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }
