#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# bench/kassist/run.sh - the kernel-assist benchmarks of issue 3, each beside
# its peer in the same run, printed as rows of bench/run.sh's table:
#
#   handoff   hand-off latency (p50/p99/max) when the goroutine holding the
#             only P blocks in read(): BPF path, userspace path
#             (GMP_DEBUG=kassist=off); peer: Go doing syscall.Read
#             (bench/kassist/go/handoff), GOMAXPROCS=1.
#   switch    the sched_switch program's cost: a context-switch-heavy pipe
#             ping-pong between two plain threads of a gmprt process, ns per
#             switch with kernel assist live vs kassist=off; and ns per
#             program run (bpftool's run_time_ns / run_cnt, with
#             kernel.bpf_stats_enabled=1 for the run and restored after)
#             for other processes' threads, our plain threads and our Ms.
#   idle      CPU used over 10 s by a process with 10,000 parked goroutines,
#             both paths; peer: Go (bench/kassist/go/idle).
#
# Called from the top of the tree as `B=build sh bench/kassist/run.sh` once
# libgmprt.so is built (bench/run.sh calls it the same way).  It builds into
# $B/bench/kassist/ (the Go peer offline, caches under it), runs the sides
# alternately so they share the machine's noise, takes medians, and writes:
#   $B/bench/kassist/rows.md      the table rows only (for bench/run.sh)
#   $B/bench/kassist/results.md   header + rows, with the date and machine
#   $B/bench/kassist/samples.txt  every sample; log.txt every program's stderr
#
# Knobs: KASSIST_ONLY="handoff switch idle", KASSIST_RUNS=5 (handoff BPF and
# switch runs), KASSIST_US_RUNS=3 (userspace hand-off runs), KASSIST_IDLE_RUNS=3,
# KASSIST_TRIALS=2000 (hand-off trials per run, 1000 on the userspace path),
# KASSIST_IDLE_SECS=10, BENCH_TIMEOUT=120 (seconds per program run).
#
# Exit status: 0 when everything built and ran (targets met or not), 1 when
# something failed to build, crashed or timed out.

set -u

B=${B:-build}
ONLY=${KASSIST_ONLY:-"handoff switch idle"}
RUNS=${KASSIST_RUNS:-5}
US_RUNS=${KASSIST_US_RUNS:-3}
IDLE_RUNS=${KASSIST_IDLE_RUNS:-3}
TRIALS=${KASSIST_TRIALS:-2000}
US_TRIALS=$((TRIALS / 2))
IDLE_SECS=${KASSIST_IDLE_SECS:-10}
TMO=${BENCH_TIMEOUT:-120}
CC=${CC:-cc}

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
case $B in /*) ABS_B=$B ;; *) ABS_B=$ROOT/$B ;; esac
OUT=$ABS_B/bench/kassist
S=$OUT/samples
LOG=$OUT/log.txt
mkdir -p "$OUT" "$S" || exit 1
rm -f "$S"/* "$OUT"/*.row "$OUT"/*.broken
: > "$LOG"
FAILED=0
T_START=$(date +%s)

. bench/lib.sh

# ---- build -----------------------------------------------------------------

say "kassist bench: building into $OUT"
if [ ! -e "$ABS_B/libgmprt.so" ]; then
	say "kassist bench: $ABS_B/libgmprt.so is missing (run make first)"
	exit 1
fi
for x in handoff switch idle; do
	$CC -O2 -std=gnu11 -Wall -Iruntime/include -o "$OUT/$x" "bench/kassist/$x.c" \
		-L"$ABS_B" -lgmprt -Wl,-rpath,"$ABS_B" -pthread >> "$LOG" 2>&1 ||
		{ say "kassist bench: building bench/kassist/$x.c failed (see $LOG)"; broken "$x"; }
done
# Not a gmprt process: the "other processes" load of the switch benchmark.
$CC -O2 -std=gnu11 -Wall -o "$OUT/pingpong_plain" bench/kassist/pingpong_plain.c -pthread >> "$LOG" 2>&1 ||
	{ say "kassist bench: building bench/kassist/pingpong_plain.c failed"; broken switch; }
GO_DIR=$OUT/go
mkdir -p "$GO_DIR/cache" "$GO_DIR/path"
for x in handoff idle; do
	(cd bench/kassist/go && env GOCACHE="$GO_DIR/cache" GOPATH="$GO_DIR/path" \
		GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on GOTOOLCHAIN=local \
		go build -o "$OUT/go-$x" "./$x") >> "$LOG" 2>&1 ||
		{ say "kassist bench: building bench/kassist/go/$x failed (see $LOG)"; broken "go-$x"; }
done

# ---- running and statistics -------------------------------------------------

# sample NAME CMD...: one run of CMD into $S/NAME (bench/lib.sh); its stderr
# is kept in $S/NAME.err for fell_back.
sample() {
	name=$1
	shift
	sample_into "$S/$name" "$name" "$@"
}

# scaled FILE COLUMN DIVISOR: the median divided (ns -> us, ...), or "fail".
scaled() {
	m=$(median "$1" "$2")
	[ "$m" = fail ] && { echo fail; return; }
	awk -v m="$m" -v d="$3" 'BEGIN { printf "%.6g\n", m / d }'
}

# spread FILE COLUMN DIVISOR: "min–max" of that column over the runs.
spread() {
	[ -s "$1" ] || { echo "-"; return; }
	awk -v c="$2" -v d="$3" 'NR == 1 || $c < lo { lo = $c } NR == 1 || $c > hi { hi = $c }
		END { printf "%.1f–%.1f", lo / d, hi / d }' "$1"
}

# The kernel-assist warning's reason if a run of NAME fell back, else "".
fell_back() {
	[ -e "$S/$1.err" ] || return 0
	sed -n 's/^gmprt: warning: kernel assist unavailable (\(.*\)); using the userspace path$/\1/p' \
		"$S/$1.err" | head -n 1
}

# row FILE LABEL C_VALUE P_VALUE UNIT FORMAT PEER TARGET KIND LIMIT NOTE
#   KIND abs_le (gmprt <= LIMIT), ratio_le, none.  Same columns as
#   bench/run.sh: | benchmark | gmprt | peer | ratio | target | met | peer is | notes
row() {
	r_file=$1 r_label=$2 r_c=$3 r_p=$4 r_unit=$5 r_fmt=$6 r_peer=$7 r_target=$8 r_kind=$9
	shift 9
	r_limit=$1 r_note=${2:-}
	show_num() {
		if [ "$1" = fail ] || [ "$1" = "—" ]; then echo "$1"; return; fi
		# shellcheck disable=SC2059 # the format is the caller's
		printf "$r_fmt${r_unit:+ $r_unit}" "$1"
	}
	r_cs=$(show_num "$r_c") r_ps=$(show_num "$r_p")
	r_ratio="—"
	if [ "$r_c" != fail ] && [ "$r_p" != fail ] && [ "$r_p" != "—" ]; then
		r_ratio=$(awk -v c="$r_c" -v p="$r_p" 'BEGIN { if (p == 0) print "—"; else printf "%.2f×", c / p }')
	fi
	r_note=$(printf '%s' "$r_note" | sed 's/^ *//')
	r_met="—"
	case $r_kind in
	abs_le) [ "$r_c" != fail ] && r_met=$(awk -v v="$r_c" -v l="$r_limit" 'BEGIN { print (v <= l) ? "yes" : "NO" }') ;;
	ratio_le) [ "$r_ratio" != "—" ] && r_met=$(awk -v c="$r_c" -v p="$r_p" -v l="$r_limit" \
		'BEGIN { print (p > 0 && c / p <= l) ? "yes" : "NO" }') ;;
	esac
	printf '| %s | %s | %s | %s | %s | %s | %s |%s\n' "$r_label" "$r_cs" "$r_ps" "$r_ratio" \
		"$r_target" "$r_met" "$r_peer" "${r_note:+ $r_note}" >> "$OUT/$r_file.row"
}

failnote() {
	n=""
	for f in "$@"; do
		k=$(nfail "$S/$f")
		[ "$k" != 0 ] && n="$n $f: $k run(s) failed;"
	done
	printf '%s' "$n"
}

# ---- hand-off latency ---------------------------------------------------------

# handoff_rows PATH SAMPLES PEER_SAMPLES TARGET_P50 TARGET_P99 [LABEL]
handoff_rows() {
	path=$1 f=$2 peer=$3 target50=$4 target99=$5 label=${6:-}
	why=$(fell_back "$f")
	note=$(failnote "$f" "$peer")
	[ -n "$why" ] && [ "$path" = BPF ] && note="$note ran on the userspace path: $why;" \
		&& target50="" target99=""
	for q in "1 p50 $target50" "2 p99 $target99" "3 max "; do
		# shellcheck disable=SC2086
		set -- $q
		col=$1 name=$2 lim=${3:-}
		kind=none tgt="—"
		[ -n "$lim" ] && kind=abs_le && tgt="≤ $(awk -v l="$lim" 'BEGIN { print (l >= 1000) ? l / 1000 " ms" : l " µs" }')"
		runs="runs: gmprt $(spread "$S/$f" "$col" 1000), Go $(spread "$S/$peer" "$col" 1000) µs;"
		row handoff "hand-off latency $name, $path path$label" "$(scaled "$S/$f" "$col" 1000)" \
			"$(scaled "$S/$peer" "$col" 1000)" µs %.1f "Go syscall.Read" "$tgt" \
			"$kind" "${lim:-0}" "$note $runs"
	done
}

if want handoff; then
	say "kassist bench: hand-off latency, GMP_MAXPROCS=1, $TRIALS trials x $RUNS runs (userspace path: $US_TRIALS x $US_RUNS)"
	i=1
	while [ $i -le "$RUNS" ]; do
		is_broken handoff || sample handoff_bpf env GMP_MAXPROCS=1 "$OUT/handoff" "$TRIALS"
		is_broken go-handoff || sample go_handoff env GOMAXPROCS=1 "$OUT/go-handoff" "$TRIALS"
		[ $i -le "$US_RUNS" ] && ! is_broken handoff &&
			sample handoff_user env GMP_MAXPROCS=1 GMP_DEBUG=kassist=off "$OUT/handoff" "$US_TRIALS"
		# Blocks 1 ms apart: every one finds the runtime quiet (the
		# watcher asleep), so it pays the ring buffer's wake-up.
		if [ $i -le "$US_RUNS" ]; then
			is_broken handoff || sample handoff_gap env GMP_MAXPROCS=1 "$OUT/handoff" "$US_TRIALS" 1000
			is_broken go-handoff || sample go_handoff_gap env GOMAXPROCS=1 "$OUT/go-handoff" "$US_TRIALS" 1000
		fi
		i=$((i + 1))
	done
	for f in handoff_bpf handoff_user handoff_gap go_handoff go_handoff_gap; do
		say "  $f (p50 p99 max ns): $(tr '\n' ';' < "$S/$f" 2>/dev/null)"
	done
	handoff_rows BPF handoff_bpf go_handoff 12 50
	handoff_rows BPF handoff_gap go_handoff_gap "" "" ", blocks 1 ms apart"
	handoff_rows userspace handoff_user go_handoff "" 25000
fi

# ---- the sched_switch program --------------------------------------------------

STATS_OLD=""
restore_stats() {
	[ -n "$STATS_OLD" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS_OLD" 2>/dev/null
	STATS_OLD=""
}
trap restore_stats EXIT
trap 'exit 130' INT TERM

# Turn BPF run-time statistics on for the stats runs; "" when we cannot.
enable_stats() {
	old=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null) || return 1
	[ "$old" = 1 ] && return 0
	sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null || return 1
	STATS_OLD=$old
}

switch_rows() {
	live=$(median "$S/switch_live" 1) off=$(median "$S/switch_off" 1)
	note=$(failnote switch_live switch_off)
	is_broken switch && note="$note not built (see $LOG);"
	why=$(fell_back switch_live)
	[ -n "$why" ] && note="$note kernel assist was not live: $why;"
	if [ "$live" != fail ] && [ "$off" != fail ]; then
		note="$note overhead $(awk -v a="$live" -v b="$off" 'BEGIN { printf "%+.0f", a - b }') ns per switch;"
	fi
	row switch "pipe ping-pong, 2 plain threads on 1 CPU (per switch)" "$live" "$off" ns %.0f \
		"same, GMP_DEBUG=kassist=off" "—" none 0 "$note"
	note=$(failnote switch_stats)
	[ -n "${STATS_WHY:-}" ] && note="$note $STATS_WHY;"
	idle=$(median "$S/switch_stats" 4)
	[ "$idle" != fail ] && idle="a quiet machine's runs (cold caches): $idle ns each;"
	row switch "sched_switch program per run, other processes' threads" \
		"$(median "$S/switch_stats" 1)" — ns %.0f "—" "≤ 100 ns" abs_le 100 "$note ${idle#fail}"
	row switch "sched_switch program per run, our plain threads" \
		"$(median "$S/switch_stats" 2)" — ns %.0f "—" "≤ 200 ns" abs_le 200 "$note"
	row switch "sched_switch program per run, our Ms (armed, blocking in read/write)" \
		"$(median "$S/switch_stats" 3)" — ns %.0f "—" "≤ 200 ns" abs_le 200 "$note"
}

if want switch && is_broken switch; then
	STATS_WHY="not built (see $LOG)"
	switch_rows
elif want switch; then
	say "kassist bench: sched_switch cost, pipe ping-pong of two plain threads, $RUNS runs each side"
	i=1
	while [ $i -le "$RUNS" ]; do
		sample switch_live "$OUT/switch" threads 200000
		sample switch_off env GMP_DEBUG=kassist=off "$OUT/switch" threads 200000
		i=$((i + 1))
	done
	STATS_WHY=""
	if [ -n "$(fell_back switch_live)" ]; then
		STATS_WHY="no program to measure (kernel assist not live)"
	elif ! command -v bpftool > /dev/null; then
		STATS_WHY="bpftool not installed"
	elif ! enable_stats; then
		STATS_WHY="cannot set kernel.bpf_stats_enabled (not root?)"
	else
		say "kassist bench: per-run cost with kernel.bpf_stats_enabled=1 (was ${STATS_OLD:-1}), 3 runs"
		for i in 1 2 3; do
			sample switch_stats "$OUT/switch" stats 200000 "$OUT/pingpong_plain"
		done
		restore_stats
		say "  bpf_stats_enabled restored to $(sysctl -n kernel.bpf_stats_enabled)"
	fi
	[ -n "$STATS_WHY" ] && say "  per-run cost skipped: $STATS_WHY"
	switch_rows
fi

# ---- idle CPU ---------------------------------------------------------------------

if want idle; then
	say "kassist bench: idle CPU, 10,000 parked goroutines, ${IDLE_SECS} s, $IDLE_RUNS runs each"
	i=1
	while [ $i -le "$IDLE_RUNS" ]; do
		is_broken idle || sample idle_bpf "$OUT/idle" "$IDLE_SECS"
		is_broken go-idle || sample go_idle "$OUT/go-idle" "$IDLE_SECS"
		is_broken idle || sample idle_user env GMP_DEBUG=kassist=off "$OUT/idle" "$IDLE_SECS"
		i=$((i + 1))
	done
	gi=$(median "$S/go_idle" 1)
	for v in "BPF idle_bpf" "userspace idle_user"; do
		# shellcheck disable=SC2086
		set -- $v
		note=$(failnote "$2" go_idle)
		why=$(fell_back "$2")
		[ "$1" = BPF ] && [ -n "$why" ] && note="$note ran on the userspace path: $why;"
		ru=$(median "$S/$2" 2) gru=$(median "$S/go_idle" 2)
		[ "$ru" != fail ] && note="$note getrusage: $ru% (Go $gru%);"
		row idle "idle process CPU, 10k parked goroutines, ${IDLE_SECS} s, $1 path" \
			"$(median "$S/$2" 1)" "$gi" %% %.2f "Go" "≤ 1% of a CPU" abs_le 1 "$note"
	done
fi

# ---- the table ----------------------------------------------------------------------

: > "$OUT/rows.md"
for r in handoff switch idle; do
	[ -e "$OUT/$r.row" ] && cat "$OUT/$r.row" >> "$OUT/rows.md"
done
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
	echo "# gmprt kernel-assist benchmarks"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($cpu), Linux $(uname -r);"
	echo "gmprt $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- runtime bpf 2>/dev/null || echo '+dirty'), $(go version 2>/dev/null | awk '{ print $3 }')."
	echo "Medians of per-run figures (hand-off: $RUNS runs of $TRIALS trials, userspace $US_RUNS of $US_TRIALS;"
	echo "switch: $RUNS runs per side; idle: $IDLE_RUNS); sides run alternately; took $(($(date +%s) - T_START)) s;"
	echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	echo "| benchmark | gmprt | peer | ratio | target | met | peer is | notes"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	cat "$OUT/rows.md"
} > "$OUT/results.md"

for f in "$S"/*; do
	case $f in *.err) continue ;; esac
	[ -e "$f" ] && printf '%s: %s\n' "$(basename "$f")" "$(tr '\n' ';' < "$f")"
done > "$OUT/samples.txt"

echo
cat "$OUT/results.md"
echo
echo "(written to $OUT/results.md; rows alone in $OUT/rows.md; samples in $OUT/samples.txt)"
exit $FAILED
