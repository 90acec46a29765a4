package main

import (
	"fmt"
	"slices"
	"strings"
)

// verdict is one target of issue 8.
type verdict struct {
	target string
	met    string // "met", "not met", "not measured"
	detail string
}

// targets decides each target of issue 8 from the runs.
func (p *report) targets() []verdict {
	return []verdict{p.targetGuardA(), p.targetGuardB(), p.targetLoopback(), p.targetRequests(), p.targetIdle()}
}

// targetGuardA is target 1: guard on A in memory: >= 4 GB/s, 0 allocs/event.
func (p *report) targetGuardA() verdict {
	r := p.r
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
	return v
}

// targetGuardB is target 2: guard on B in memory: >= 10 GB/s.
func (p *report) targetGuardB() verdict {
	r := p.r
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
	return v
}

// targetLoopback is target 3: whole stack over loopback >= 0.95x raw
// io.Copy. The paired rounds decide when there are any: on a shared
// machine the main run's ratios compare medians taken minutes apart.
func (p *report) targetLoopback() verdict {
	r := p.r
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
	return v
}

// targetRequests is target 4: per-request overhead below otelhttp +
// go-retryablehttp, with each tracer setting, from the stub (the layers'
// own cost) and over loopback. Paired rounds decide the time when there
// are any.
func (p *report) targetRequests() verdict {
	r := p.r
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
	return v
}

// targetIdle is target 5: idle guarded stream < 8 KiB beyond unguarded.
func (p *report) targetIdle() verdict {
	r := p.r
	v := verdict{target: "idle guarded stream < 8 KiB beyond an unguarded one"}
	// The guard as it runs by default on an event stream: with an idle
	// timer (guard-idle), and without one (guard-noidle) beside it.
	raw, ok1 := r.median("BenchmarkIdleStreams/via=raw", "heap-B/stream")
	g, ok2 := r.median("BenchmarkIdleStreams/via=guard-idle", "heap-B/stream")
	if !ok1 || !ok2 {
		v.met = "not measured"
	} else {
		v.met = metIf(g-raw < 8192)
		v.detail = fmt.Sprintf("%s B per stream with an idle timer (%s of the 8,192 B allowance)", signed(g-raw, 0), fmt.Sprintf("%.1f %%", 100*(g-raw)/8192))
		if gn, ok := r.median("BenchmarkIdleStreams/via=guard-noidle", "heap-B/stream"); ok {
			v.detail += fmt.Sprintf("; without one %s B", signed(gn-raw, 0))
		}
		if s, ok := r.median("BenchmarkIdleStreams/via=stack", "heap-B/stream"); ok {
			v.detail += fmt.Sprintf("; the whole stack %s B", signed(s-raw, 0))
		}
	}
	return v
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
