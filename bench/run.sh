#!/usr/bin/env bash
# Runs every benchmark of the bench module with -count 6 -benchmem, summarises
# the runs with benchstat and writes RESULTS.md (ratios to the raw floor of
# the same run, allocations per event, the issue's targets, the machine, the
# date, the library's commit and the commands).
#
#	cd bench && ./run.sh
#
# The benchmarks are compiled once (go test -c) and every part runs that one
# binary: the library keeps changing under a shared checkout, and a report
# must describe one version of it. The binary's flags are go test's:
# -test.count 6 -test.benchmem is go test's -count 6 -benchmem.
#
# COUNT=n overrides the count and the number of paired rounds (RESULTS.md
# says so); QUIET_WAIT=s bounds the wait for a quiet machine before each part
# (default 900). The raw output is kept in results.txt (paired rounds:
# paired.txt) and benchstat's summary in benchstat.txt, so that a later run
# can be compared with `benchstat old.txt results.txt`.
set -euo pipefail
cd "$(dirname "$0")"

count="${COUNT:-6}"
benchstat=(go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da)
bin=./streamguard-bench.test
trap 'rm -f "$bin" cputime.tmp' EXIT

# The streams and request benchmarks run for the default 1 s each. The idle
# memory benchmark opens and closes 1,000 streams per op (about 0.3 s), so it
# runs a fixed 3 ops per count instead.
cmd_main=("$bin" -test.run '^$' -test.bench . -test.skip 'IdleStreams' -test.benchmem -test.count "$count" -test.timeout 3h)
cmd_idle=("$bin" -test.run '^$' -test.bench 'IdleStreams' -test.benchtime 3x -test.benchmem -test.count "$count" -test.timeout 1h)
# Paired rounds for the targets whose margins are within the machine's noise
# (the whole stack against raw over loopback, the per-request overhead
# against otelhttp + go-retryablehttp): $count rounds of count 1, each
# running raw and its variants back to back, so that a ratio can be taken
# within a round. benchreport decides targets 3 and 4 from them.
cmd_pair_stream=("$bin" -test.run '^$' -test.bench '^BenchmarkConsume$/src=/load=/via=(raw|guard|stack)$' -test.benchmem -test.count 1)
cmd_pair_request=("$bin" -test.run '^$' -test.bench '^BenchmarkRequest$/src=/via=(raw|stack-noop|stack-rec|otelretry-noop|otelretry-rec)$' -test.benchmem -test.count 1)

machine=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
cores=$(nproc)
date=$(date -u '+%Y-%m-%d %H:%M UTC')

# The library version measured: HEAD, and whether the library's files
# (everything outside bench/) differ from it.
commit=$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)
changed=$(git -C .. status --porcelain -- . ':(exclude)bench' 2>/dev/null | wc -l | tr -d ' ')
library="commit $commit"
if [ "$changed" != 0 ]; then
	library="$library with $changed uncommitted file(s) outside bench/ (diff sha256 $(git -C .. diff HEAD -- . ':(exclude)bench' | sha256sum | cut -c1-12))"
fi

go vet ./...
go test -c -o "$bin" .

hz=$(getconf CLK_TCK)
# show prints a command as one would type it.
show() {
	local out=() a
	for a; do
		if [[ $a =~ ^[A-Za-z0-9_./=:@-]+$ ]]; then out+=("$a"); else out+=("'$a'"); fi
	done
	echo "${out[*]}"
}
# What else ran on the machine: busy CPU time from /proc/stat over a part,
# less the part's own user+system time, as a share of wall time × cores.
# Benchmarks on a shared machine are only as good as this figure is small.
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# run NAME OUT CMD...: runs a command, appends its output to OUT, and sets
# NAME_s (wall seconds) and NAME_others (% of CPU taken by others).
run() {
	local name=$1 out=$2 b0 b1 t0 t1 own=""
	shift 2
	echo "== $(show "$@")" >&2
	b0=$(busy) t0=$(date +%s.%N)
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S' -o cputime.tmp "$@" | tee -a "$out"
		own=$(awk '{print $1+$2}' cputime.tmp)
	else
		"$@" | tee -a "$out"
	fi
	b1=$(busy) t1=$(date +%s.%N)
	printf -v "${name}_s" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", b-a}')"
	printf -v "${name}_others" '%s' "$(awk -v b="$((b1 - b0))" -v hz="$hz" -v own="$own" -v a="$t0" -v t="$t1" -v c="$cores" \
		'BEGIN{if(own==""){print "?"; exit} x=(b/hz-own)/((t-a)*c)*100; if(x<0)x=0; printf "%.0f", x}')"
}
# quiet NAME waits, up to QUIET_WAIT seconds, until other processes use under
# a quarter of the CPU over 10 s, and sets NAME_waited and NAME_before
# (their share in the last 10 s).
quiet() {
	local name=$1 b0 b1 share waited=0
	while :; do
		b0=$(busy)
		sleep 10
		b1=$(busy)
		share=$(awk -v b="$((b1 - b0))" -v hz="$hz" -v c="$cores" 'BEGIN{printf "%.0f", b/hz/(10*c)*100}')
		if [ "$share" -lt 25 ] || [ "$waited" -ge "${QUIET_WAIT:-900}" ]; then
			break
		fi
		waited=$((waited + 10))
		echo "== others use ${share} % of the CPU; waiting (${waited} s)" >&2
	done
	printf -v "${name}_waited" '%s' "$waited"
	printf -v "${name}_before" '%s' "$share"
}

: >results.txt
: >paired.txt
quiet main
run main results.txt "${cmd_main[@]}"
quiet idle
run idle results.txt "${cmd_idle[@]}"
quiet pair
rounds="for i in \$(seq $count); do ${cmd_pair_stream[*]@Q} && ${cmd_pair_request[*]@Q} || exit 1; done"
run pair paired.txt bash -c "$rounds"

{
	echo "# all benchmarks"
	"${benchstat[@]}" results.txt
	echo
	echo "# BenchmarkConsume: each consumer against raw, per source and workload"
	"${benchstat[@]}" -filter '.name:Consume' -table '/src,/load' -col '/via' results.txt
	echo
	echo "# BenchmarkRequest: each stack against raw, per source"
	"${benchstat[@]}" -filter '.name:Request' -table '/src' -col '/via' results.txt
	echo
	echo "# BenchmarkIdleStreams: each variant against raw"
	"${benchstat[@]}" -filter '.name:IdleStreams' -col '/via' results.txt
} >benchstat.txt

go run ./internal/benchreport -in results.txt -paired paired.txt -benchstat benchstat.txt -out RESULTS.md \
	-machine "$machine" -cores "$cores" -date "$date" -library "$library" \
	-cmd "cd bench && ./run.sh   # COUNT=$count; it runs:" \
	-cmd "go vet ./... && go test -c -o $bin ." \
	-cmd "$(show "${cmd_main[@]}")" \
	-cmd "$(show "${cmd_idle[@]}")" \
	-cmd "for i in \$(seq $count); do $(show "${cmd_pair_stream[@]}"); $(show "${cmd_pair_request[@]}"); done   # paired rounds" \
	-cmd "$(show "${benchstat[@]}") results.txt   # and with -col /via per group, see below" \
	-note "Wall time: ${main_s} s for the main run, ${idle_s} s for the idle-stream run, ${pair_s} s for the paired rounds. Other processes took ${main_others} %, ${idle_others} % and ${pair_others} % of the machine's CPU time during them (busy time in /proc/stat less the runs' own); before each, run.sh waited ${main_waited} s, ${idle_waited} s and ${pair_waited} s for them to use under 25 % (their share in the 10 s before: ${main_before} %, ${idle_before} % and ${pair_before} %). The in-memory figures are CPU-bound and fall with that share. In the main run each benchmark's counts run back to back, so its ratios compare medians taken up to minutes apart; the paired rounds take each ratio within a round.$([ "$count" != 6 ] && echo " The count was $count, not 6.")" \
	${NOTE:+-note "$NOTE"}

echo "wrote RESULTS.md (raw output: results.txt and paired.txt, benchstat: benchstat.txt)" >&2
