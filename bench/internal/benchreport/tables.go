package main

import (
	"slices"
	"strings"
)

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

var idleOrder = []string{"raw", "guard-noidle", "guard-idle", "stack"}

var idleDesc = map[string]string{
	"raw":          "the response as the transport returns it",
	"guard-noidle": "`sse.Guard` with stall detection off (`IdleTimeout: -1`: no timer)",
	"guard-idle":   "`sse.Guard`, IdleTimeout 30 s (one timer per stream; the zero Config has one too, of 120 s, on an event stream)",
	"stack":        "`middleware.NewClient` (budget, retry, no-op tracer, guard)",
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
