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

var consumerOrder = []string{"raw", "scanner", "gosse", "openai", "r3labs", "guard", "guard-noidle", "guard+gosse", "stack"}

var consumerDesc = map[string]string{
	"raw":          "body read through a 32 KiB buffer, as io.Copy (the floor)",
	"scanner":      "bufio.Scanner line split",
	"gosse":        "go-sse `Read`",
	"openai":       "openai-go `ssestream.NewDecoder`, Next/Event/Err",
	"r3labs":       "r3labs/sse `EventStreamReader.ReadEvent` (splits only)",
	"guard":        "`sse.Guard`, body read as the floor reads it",
	"guard-noidle": "`sse.Guard` with stall detection off (`IdleTimeout: -1`): the difference is the idle timer's cost",
	"guard+gosse":  "`sse.Guard`, then go-sse `Read`",
	"stack":        "whole `middleware.NewClient` stack, read as the floor",
}

func consumeName(src, load, via string) string {
	return "BenchmarkConsume/src=" + src + "/load=" + load + "/via=" + via
}

var eventsPerLoad = map[string]float64{"A": 100_001, "B": 2_001, "B6": 2_001}

// loads are the streamed workloads, in the order the tables show them.
var loads = []string{"A", "B", "B6"}

// pairedTables shows the paired rounds: each round ran raw and its
// variants one after the other, so the ratio of a round compares figures
// measured under the same load; the median and the range of those ratios
// are less at the mercy of other work on the machine than ratios of medians.
func (p *report) pairedTables() {
	pr := p.pr
	if pr == nil || len(pr.names) == 0 {
		return
	}
	rounds := 0
	for _, n := range pr.names {
		rounds = max(rounds, pr.runs(n))
	}
	p.printf("## Paired rounds: the targets' ratios\n\n")
	p.printf("%d rounds of `-count 1`, each running the raw floor and its variants back to back; a ratio is computed "+
		"within each round and the table gives the median and the range over the rounds. These decide targets 3 and 4.\n\n", rounds)
	p.printf("| source | load | guard ×raw GB/s | stack ×raw GB/s |\n|---|---|---:|---:|\n")
	for _, src := range []string{"mem", "h1", "h2"} {
		for _, load := range loads {
			raw := consumeName(src, load, "raw")
			if !pr.has(raw) {
				continue
			}
			p.printf("| %s | %s |", src, load)
			for _, via := range []string{"guard", "stack"} {
				v := pr.paired(consumeName(src, load, via), raw, "MB/s", div)
				if len(v) == 0 {
					p.printf(" – |")
					continue
				}
				p.printf(" %s (%s–%s) |", ratio(medianOf(v)), ratio(slices.Min(v)), ratio(slices.Max(v)))
			}
			p.printf("\n")
		}
	}
	p.printf("\n| source | stack | overhead ns over raw, median (range) | allocs/op over raw |\n|---|---|---:|---:|\n")
	for _, src := range []string{"stub", "h1"} {
		raw := requestName(src, "raw")
		if !pr.has(raw) {
			continue
		}
		rawAl, _ := pr.median(raw, "allocs/op")
		for _, via := range []string{"stack-noop", "otelretry-noop", "stack-rec", "otelretry-rec"} {
			v := pr.paired(requestName(src, via), raw, "ns/op", sub)
			if len(v) == 0 {
				continue
			}
			al, _ := pr.median(requestName(src, via), "allocs/op")
			p.printf("| %s | %s | %s (%s to %s) | %s |\n", src, via, signed(medianOf(v), 0), signed(slices.Min(v), 0), signed(slices.Max(v), 0), signed(al-rawAl, 0))
		}
	}
	p.printf("\n")
}

func (p *report) consumeTables() {
	r := p.r
	p.printf("## Streams: consumers against the raw floor\n\n")
	p.printf("`BenchmarkConsume`. Workload A: 100,000 OpenAI chat chunks of 116 bytes and `data: [DONE]` (11.6 MB); " +
		"B: 2,000 events of 16 KiB and `data: [DONE]` (32.8 MB), which fill the 32 KiB read buffer exactly; " +
		"B6: 2,000 events of 16 KiB + 6 bytes, so that the guard holds an incomplete event back at almost every read. Sources: in memory; a loopback server flushing every " +
		"64 events over HTTP/1.1 (chunked) and over HTTP/2 (TLS). GB/s is 10⁹ bytes/s (benchmark MB/s ÷ 1000); " +
		"×raw is the throughput as a ratio to the raw floor of the same source and workload in the same run " +
		"(above 1.00× is measurement noise or a cheaper read pattern); allocs/event is allocations per op ÷ events; " +
		"+allocs/event is that minus the floor's, i.e. what the consumer adds (over loopback the floor's figure holds " +
		"the in-process server's and the transport's own allocations).\n\n")
	for _, src := range []string{"mem", "h1", "h2"} {
		title := map[string]string{"mem": "In memory", "h1": "Loopback HTTP/1.1", "h2": "Loopback HTTP/2 (TLS)"}[src]
		p.printf("### %s\n\n", title)
		p.printf("| consumer |")
		for _, load := range loads {
			p.printf(" %[1]s GB/s | %[1]s ×raw | %[1]s allocs/event | %[1]s +allocs/event |", load)
		}
		p.printf("\n|---|%s\n", strings.Repeat("---:|", 4*len(loads)))
		for _, via := range consumerOrder {
			if !slices.ContainsFunc(loads, func(l string) bool { return r.has(consumeName(src, l, via)) }) {
				continue
			}
			p.printf("| %s |", via)
			for _, load := range loads {
				name := consumeName(src, load, via)
				raw := consumeName(src, load, "raw")
				mb, ok := r.median(name, "MB/s")
				rawMB, okRaw := r.median(raw, "MB/s")
				if !ok {
					p.printf(" – | – | – | – |")
					continue
				}
				x := "–"
				if okRaw {
					x = ratio(mb / rawMB)
				}
				ape, _ := r.median(name, "allocs/event")
				rawApe, _ := r.median(raw, "allocs/event")
				extra := "–"
				if via != "raw" {
					extra = signed(ape-rawApe, 4)
				}
				p.printf(" %s | %s | %s | %s |", gbps(mb), x, allocsPerEvent(ape), extra)
			}
			p.printf("\n")
		}
		p.printf("\n")
	}
	p.printf("Consumers:\n\n")
	for _, via := range consumerOrder {
		p.printf("- **%s**: %s\n", via, consumerDesc[via])
	}
	p.printf("\n")
}

var stackOrder = []string{"raw", "stack-noop", "stack-rec", "otelretry-noop", "otelretry-rec", "openai-raw", "openai-stack"}

var stackDesc = map[string]string{
	"raw":            "`http.Client` over the base transport",
	"stack-noop":     "`middleware.NewClient`, no-op tracer provider",
	"stack-rec":      "`middleware.NewClient`, SDK tracer sampling every span into a no-op exporter, W3C propagation",
	"otelretry-noop": "go-retryablehttp `StandardClient()` over `otelhttp.NewTransport`, no-op tracer provider",
	"otelretry-rec":  "go-retryablehttp over otelhttp, the same recording SDK tracer and propagation",
	"openai-raw":     "openai-go `Chat.Completions.New` (its own retry loop, JSON in and out) over the raw `http.Client`",
	"openai-stack":   "the same openai-go call over `middleware.NewClient` (no-op tracer)",
}

func requestName(src, via string) string { return "BenchmarkRequest/src=" + src + "/via=" + via }

func (p *report) requestTables() {
	r := p.r
	p.printf("## Requests: workload C through each stack\n\n")
	p.printf("`BenchmarkRequest`. Workload C: a small JSON chat-completion request (73 bytes) and answer (242 bytes), " +
		"not streamed. `stub`: the base transport answers from memory, so the figures are each stack's own cost per " +
		"request; `h1`: a loopback HTTP/1.1 server. Every stack sits on the same kind of base (a clone of " +
		"`http.DefaultTransport`, or the stub). overhead is ns/op minus raw's; +allocs is allocs/op minus raw's.\n\n")
	for _, src := range []string{"stub", "h1"} {
		p.printf("### %s\n\n", map[string]string{"stub": "Stub base transport (per-request overhead)", "h1": "Loopback HTTP/1.1"}[src])
		p.printf("| stack | ns/op | ×raw | overhead ns | allocs/op | +allocs | B/op |\n|---|---:|---:|---:|---:|---:|---:|\n")
		rawNs, _ := r.median(requestName(src, "raw"), "ns/op")
		rawAl, _ := r.median(requestName(src, "raw"), "allocs/op")
		for _, via := range stackOrder {
			name := requestName(src, via)
			ns, ok := r.median(name, "ns/op")
			if !ok {
				continue
			}
			al, _ := r.median(name, "allocs/op")
			by, _ := r.median(name, "B/op")
			p.printf("| %s | %.0f | %s | %s | %.0f | %s | %.0f |\n", via, ns, ratio(ns/rawNs), signed(ns-rawNs, 0), al, signed(al-rawAl, 0), by)
		}
		p.printf("\n")
	}
	for _, via := range stackOrder {
		p.printf("- **%s**: %s\n", via, stackDesc[via])
	}
	p.printf("\nThe openai rows include the SDK's JSON encoding and decoding: compare them with each other, not with raw.\n\n")
}

var idleOrder = []string{"raw", "guard", "guard-idle", "stack"}

var idleDesc = map[string]string{
	"raw":        "the response as the transport returns it",
	"guard":      "`sse.Guard`, zero Config",
	"guard-idle": "`sse.Guard`, IdleTimeout 30 s (one timer per stream)",
	"stack":      "`middleware.NewClient` (budget, retry, no-op tracer, guard)",
}

func (p *report) idleTable() {
	r := p.r
	p.printf("## Memory: idle streams\n\n")
	p.printf("`BenchmarkIdleStreams`. 1,000 concurrent streams over loopback HTTP/1.1, each after its headers and first " +
		"event, held open while the live heap is measured (`runtime.MemStats.HeapAlloc` after two GCs, before and after " +
		"opening them). The client and the server share the process, so a stream's figure holds both ends of its " +
		"connection; +heap is the difference from the raw streams, what the client layers add. Goroutine stacks are " +
		"not heap and are shown apart.\n\n")
	p.printf("| streams | heap B/stream | +heap B/stream | stack B/stream |\n|---|---:|---:|---:|\n")
	raw, _ := r.median("BenchmarkIdleStreams/via=raw", "heap-B/stream")
	for _, via := range idleOrder {
		name := "BenchmarkIdleStreams/via=" + via
		h, ok := r.median(name, "heap-B/stream")
		if !ok {
			continue
		}
		st, _ := r.median(name, "stack-B/stream")
		extra := "–"
		if via != "raw" {
			extra = signed(h-raw, 0)
		}
		p.printf("| %s | %.0f | %s | %.0f |\n", via, h, extra, st)
	}
	p.printf("\n")
	for _, via := range idleOrder {
		p.printf("- **%s**: %s\n", via, idleDesc[via])
	}
	p.printf("\n")
}

// otherTable lists every benchmark the tables above do not cover, as a
// ratio to its sibling whose last name element is raw (or ends in =raw).
func (p *report) otherTable() {
	r := p.r
	var rows []string
	for _, n := range r.names {
		if strings.HasPrefix(n, "BenchmarkConsume/") || strings.HasPrefix(n, "BenchmarkRequest/") || strings.HasPrefix(n, "BenchmarkIdleStreams/") {
			continue
		}
		rows = append(rows, n)
	}
	if len(rows) == 0 {
		return
	}
	p.printf("## Other benchmarks\n\n")
	p.printf("The other benchmarks of the module (the layers' own, from their issues), each as a ratio to its sibling named raw " +
		"in the same run, where it has one: ×raw time is ns/op ÷ raw's ns/op (lower is better), ×raw GB/s is throughput ÷ raw's.\n\n")
	p.printf("| benchmark | ns/op | ×raw time | GB/s | ×raw GB/s | allocs/op | +allocs | allocs/event |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range rows {
		ns, _ := r.median(n, "ns/op")
		al, _ := r.median(n, "allocs/op")
		raw := siblingRaw(n)
		xt, mb, xmb, extra, ape := "–", "–", "–", "–", "–"
		rawNs, okRaw := r.median(raw, "ns/op")
		if okRaw && raw != n {
			xt = ratio(ns / rawNs)
			rawAl, _ := r.median(raw, "allocs/op")
			extra = signed(al-rawAl, 0)
		}
		if v, ok := r.median(n, "MB/s"); ok {
			mb = gbps(v)
			if rv, ok := r.median(raw, "MB/s"); ok && raw != n {
				xmb = ratio(v / rv)
			}
		}
		if v, ok := r.median(n, "allocs/event"); ok {
			ape = allocsPerEvent(v)
		}
		p.printf("| %s | %.0f | %s | %s | %s | %.0f | %s | %s |\n", strings.TrimPrefix(n, "Benchmark"), ns, xt, mb, xmb, al, extra, ape)
	}
	p.printf("\n")
}

func siblingRaw(name string) string {
	i := strings.LastIndex(name, "/")
	if i < 0 {
		return ""
	}
	last := name[i+1:]
	if j := strings.LastIndex(last, "="); j >= 0 {
		return name[:i+1] + last[:j+1] + "raw"
	}
	return name[:i+1] + "raw"
}

// verdict is one target of issue 8.
type verdict struct {
	target string
	met    string // "met", "not met", "not measured"
	detail string
}

func (p *report) targets() []verdict {
	r := p.r
	var out []verdict

	// 1. Guard on A in memory: >= 4 GB/s, 0 allocs/event.
	{
		v := verdict{target: "guard on A in memory ≥ 4 GB/s with 0 allocs/event"}
		mb, ok := r.median(consumeName("mem", "A", "guard"), "MB/s")
		alA, _ := r.median(consumeName("mem", "A", "guard"), "allocs/op")
		alB, _ := r.median(consumeName("mem", "B", "guard"), "allocs/op")
		rawA, _ := r.median(consumeName("mem", "A", "raw"), "allocs/op")
		if !ok {
			v.met = "not measured"
		} else {
			perEvent := (alA - alB) / (eventsPerLoad["A"] - eventsPerLoad["B"])
			fast := mb >= 4000
			// Zero per event: the allocations per stream are the same
			// constant for A's 100,001 events and B's 2,001 (to less than
			// one allocation in a thousand events).
			v.met = metIf(fast && perEvent < 0.001)
			v.detail = fmt.Sprintf("%s GB/s, %s the target; %.0f allocs per stream on A and %.0f on B (the floor: %.0f), "+
				"so the allocations do not grow with the events: %s allocs/event beyond the per-stream constant "+
				"(%s amortised over A's 100,001 events)",
				gbps(mb), ratio(mb/4000), alA, alB, rawA, allocsPerEvent(max(perEvent, 0)), allocsPerEvent(alA/eventsPerLoad["A"]))
			if !fast {
				v.detail += fmt.Sprintf("; gap: %.2f GB/s", (4000-mb)/1000)
			}
		}
		out = append(out, v)
	}
	// 2. Guard on B in memory: >= 10 GB/s.
	{
		v := verdict{target: "guard on B in memory ≥ 10 GB/s"}
		mb, ok := r.median(consumeName("mem", "B", "guard"), "MB/s")
		raw, _ := r.median(consumeName("mem", "B", "raw"), "MB/s")
		if !ok {
			v.met = "not measured"
		} else {
			v.met = metIf(mb >= 10000)
			v.detail = fmt.Sprintf("%s GB/s, %s the target (%s the raw floor, itself %s GB/s)", gbps(mb), ratio(mb/10000), ratio(mb/raw), gbps(raw))
			if mb < 10000 {
				v.detail += fmt.Sprintf("; gap: %.2f GB/s", (10000-mb)/1000)
			}
		}
		if mb2, ok := r.median("BenchmarkStreamMemory/B/guard", "MB/s"); ok {
			v.detail += fmt.Sprintf("; BenchmarkStreamMemory/B/guard in the same run: %s GB/s", gbps(mb2))
		}
		out = append(out, v)
	}
	// 3. Whole stack over loopback >= 0.95x raw io.Copy. The paired
	// rounds decide when there are any: on a shared machine the main run's
	// ratios compare medians taken minutes apart.
	{
		v := verdict{target: "whole stack over loopback ≥ 0.95× raw io.Copy"}
		var parts []string
		all, seen := true, false
		for _, src := range []string{"h1", "h2"} {
			for _, load := range loads {
				name, raw := consumeName(src, load, "stack"), consumeName(src, load, "raw")
				mb, ok := r.median(name, "MB/s")
				rawMB, ok2 := r.median(raw, "MB/s")
				if !ok || !ok2 {
					continue
				}
				seen = true
				x := mb / rawMB
				part := fmt.Sprintf("%s %s: %s", src, load, ratio(x))
				if p.pr != nil {
					if pr := p.pr.paired(name, raw, "MB/s", div); len(pr) > 0 {
						x = medianOf(pr)
						part = fmt.Sprintf("%s %s: %s paired (%s–%s over %d rounds; main run %s)", src, load,
							ratio(x), ratio(slices.Min(pr)), ratio(slices.Max(pr)), len(pr), ratio(mb/rawMB))
					}
				}
				if x < 0.95 {
					all = false
					part += fmt.Sprintf(", gap %.2f", 0.95-x)
				}
				ape, _ := r.median(name, "allocs/event")
				rawApe, _ := r.median(raw, "allocs/event")
				parts = append(parts, part+fmt.Sprintf(", %s allocs/event over raw", signed(ape-rawApe, 4)))
			}
		}
		if !seen {
			v.met = "not measured"
		} else {
			v.met = metIf(all)
			v.detail = strings.Join(parts, "; ")
		}
		out = append(out, v)
	}
	// 4. Per-request overhead below otelhttp + go-retryablehttp, with each
	// tracer setting, from the stub (the layers' own cost) and over
	// loopback. Paired rounds decide the time when there are any.
	{
		v := verdict{target: "per-request overhead of the whole stack below otelhttp + go-retryablehttp"}
		var parts, metIn, missedIn []string
		for _, src := range []string{"stub", "h1"} {
			raw := requestName(src, "raw")
			rawNs, ok := r.median(raw, "ns/op")
			rawAl, _ := r.median(raw, "allocs/op")
			if !ok {
				continue
			}
			for _, t := range []string{"noop", "rec"} {
				ours, theirs := requestName(src, "stack-"+t), requestName(src, "otelretry-"+t)
				ns, ok1 := r.median(ours, "ns/op")
				pns, ok2 := r.median(theirs, "ns/op")
				if !ok1 || !ok2 {
					continue
				}
				al, _ := r.median(ours, "allocs/op")
				pal, _ := r.median(theirs, "allocs/op")
				o, th, how := ns-rawNs, pns-rawNs, "main run"
				if p.pr != nil {
					po, pt := p.pr.paired(ours, raw, "ns/op", sub), p.pr.paired(theirs, raw, "ns/op", sub)
					if len(po) > 0 && len(pt) > 0 {
						o, th, how = medianOf(po), medianOf(pt), fmt.Sprintf("paired, %d rounds", min(len(po), len(pt)))
					}
				}
				key := src + "/" + t
				var why []string
				if o >= th {
					why = append(why, "time")
				}
				if al > pal {
					why = append(why, "allocs")
				}
				if len(why) == 0 {
					metIn = append(metIn, key)
				} else {
					missedIn = append(missedIn, key+" ("+strings.Join(why, ", ")+")")
				}
				parts = append(parts, fmt.Sprintf("%s: ours %s ns and %s allocs over raw, theirs %s ns and %s allocs (%s; %s)",
					key, signed(o, 0), signed(al-rawAl, 0), signed(th, 0), signed(pal-rawAl, 0), overheadRatio(o, th), how))
			}
		}
		switch {
		case len(metIn) == 0 && len(missedIn) == 0:
			v.met = "not measured"
		case len(missedIn) == 0:
			v.met = metIf(true)
		case len(metIn) == 0:
			v.met = metIf(false)
		default:
			v.met = "**partly met**: met in " + strings.Join(metIn, ", ") + "; not in " + strings.Join(missedIn, ", ")
		}
		v.detail = strings.Join(parts, "; ")
		out = append(out, v)
	}
	// 5. Idle guarded stream < 8 KiB beyond unguarded.
	{
		v := verdict{target: "idle guarded stream < 8 KiB beyond an unguarded one"}
		raw, ok1 := r.median("BenchmarkIdleStreams/via=raw", "heap-B/stream")
		g, ok2 := r.median("BenchmarkIdleStreams/via=guard", "heap-B/stream")
		if !ok1 || !ok2 {
			v.met = "not measured"
		} else {
			v.met = metIf(g-raw < 8192)
			v.detail = fmt.Sprintf("%s B per stream (%s of the 8,192 B allowance)", signed(g-raw, 0), fmt.Sprintf("%.1f %%", 100*(g-raw)/8192))
			if gi, ok := r.median("BenchmarkIdleStreams/via=guard-idle", "heap-B/stream"); ok {
				v.detail += fmt.Sprintf("; with an IdleTimeout %s B", signed(gi-raw, 0))
			}
			if s, ok := r.median("BenchmarkIdleStreams/via=stack", "heap-B/stream"); ok {
				v.detail += fmt.Sprintf("; the whole stack %s B", signed(s-raw, 0))
			}
		}
		out = append(out, v)
	}
	return out
}

func overheadRatio(ours, theirs float64) string {
	if theirs <= 0 {
		return "their overhead is within noise"
	}
	return fmt.Sprintf("overhead %s of theirs", ratio(ours/theirs))
}

func metIf(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
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
	p.printf("# streamguard benchmark results\n\n")
	p.printf("Written by `bench/run.sh`; do not edit by hand. Every figure is the median of its runs; ratios are to the " +
		"raw floor measured in the same run.\n\n")
	p.printf("- Machine: %s, %s cores (go test reports `cpu: %s`); a shared, noisy machine: other work ran beside these runs.\n", *machine, *cores, res.cpu)
	p.printf("- Date: %s\n", *date)
	if *library != "" {
		p.printf("- Library measured: %s\n", *library)
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

type multi []string

func (m *multi) String() string     { return strings.Join(*m, "\n") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }
