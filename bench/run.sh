#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# bench/run.sh - gmprt's benchmarks, each beside a peer doing the same work.
#
# `make bench` calls this from the top of the tree as `B=build sh bench/run.sh`
# after building libgmprt.so and the examples.  It builds the C benchmarks
# (bench/*.c against the public header only), the Go peers (bench/go/*, with
# Debian's golang-go, offline, caches under $B/bench/go) and the Boost.Context
# fcontext peer (bench/fcontext/yield.cpp), then runs every benchmark and its
# peer alternately (gmprt, peer, gmprt, peer, ...) so that both see the same
# noise on this shared machine, takes the median of each side, and prints one
# table row per benchmark: gmprt's number, the peer's, the ratio gmprt/peer
# and the target from issue 2.  The table also goes to $B/bench/results.md
# with the date and the machine; every sample goes to $B/bench/samples.txt and
# every program's stderr to $B/bench/log.txt.
#
# Each benchmark program prints exactly one number on stdout.  Both sides get
# the same number of Ps: GMP_MAXPROCS and GOMAXPROCS are set to $BENCH_PROCS
# (default: nproc), except the yield round trip, which runs under one P.
#
# Knobs (environment):
#   BENCH_RUNS=7         runs per side for the in-process benchmarks
#   BENCH_YIELD_RUNS=21  runs per side for the yield round trip, 3,000,000
#                        round trips each: the machine's speed drifts over
#                        seconds, and more, shorter runs pair the two sides
#                        more closely
#   BENCH_PINGPONG_RUNS=15  runs per side for the ping-pong rows (a gmprt run
#                        takes about 0.1 s, and the from-main row is checked
#                        against the other to 15%)
#   BENCH_HTTPD_RUNS=3   runs per side for httpd (10 s of wrk each)
#   BENCH_ONLY="..."     subset of: spawn skynet pingpong pingpong_main yield kassist
#                        parked fib httpd
#   BENCH_PROCS=N        Ps on both sides (default nproc)
#   BENCH_TIMEOUT=120    seconds before one run is killed and counted failed
#   BENCH_CONNS=10000 BENCH_WRK_THREADS=2 BENCH_WRK_SECS=10   httpd load
#
# Exit status: 0 when every benchmark built and ran (whether or not it meets
# its target), 1 when something failed to build, crashed or timed out.
#
# ulimit -n and -H are not POSIX, but dash, bash and busybox sh all have them.
# shellcheck disable=SC3045

set -u

B=${B:-build}
RUNS=${BENCH_RUNS:-7}
YIELD_RUNS=${BENCH_YIELD_RUNS:-21}
PINGPONG_RUNS=${BENCH_PINGPONG_RUNS:-15}
HTTPD_RUNS=${BENCH_HTTPD_RUNS:-3}
ONLY=${BENCH_ONLY:-"spawn skynet pingpong pingpong_main yield parked fib httpd"}
PROCS=${BENCH_PROCS:-$(nproc)}
TMO=${BENCH_TIMEOUT:-120}
CONNS=${BENCH_CONNS:-10000}
WRK_T=${BENCH_WRK_THREADS:-2}
WRK_SECS=${BENCH_WRK_SECS:-10}
CC=${CC:-cc}
CXX=${CXX:-g++}

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
case $B in /*) ABS_B=$B ;; *) ABS_B=$ROOT/$B ;; esac
OUT=$ABS_B/bench
S=$OUT/samples
LOG=$OUT/log.txt
RESULTS=$OUT/results.md
mkdir -p "$OUT" "$S" || exit 1
rm -f "$S"/* "$OUT"/*.row
: > "$LOG"
FAILED=0
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

. bench/lib.sh

# ---- build ---------------------------------------------------------------

rm -f "$OUT"/*.broken

say "bench: building into $OUT"
if [ ! -e "$ABS_B/libgmprt.so" ]; then
	say "bench: $ABS_B/libgmprt.so is missing (run make first)"
	exit 1
fi
for x in spawn skynet pingpong yield parked fib; do
	if ! $CC -O2 -std=gnu11 -Wall -Iruntime/include -o "$OUT/$x" "bench/$x.c" \
		-L"$ABS_B" -lgmprt -Wl,-rpath,"$ABS_B" -pthread >> "$LOG" 2>&1; then
		say "bench: building bench/$x.c failed (see $LOG)"
		broken "$x"
	fi
done

GO_DIR=$OUT/go
mkdir -p "$GO_DIR/cache" "$GO_DIR/path"
for x in spawn skynet pingpong parked fib httpd; do
	if ! (cd bench/go && env GOCACHE="$GO_DIR/cache" GOPATH="$GO_DIR/path" \
		GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on GOTOOLCHAIN=local GOENV=off \
		go build -o "$OUT/go-$x" "./$x") >> "$LOG" 2>&1; then
		say "bench: building bench/go/$x failed (see $LOG)"
		broken "go-$x"
	fi
done

if ! $CXX -O2 -Wall -o "$OUT/fcontext-yield" bench/fcontext/yield.cpp -lboost_context >> "$LOG" 2>&1; then
	say "bench: building bench/fcontext/yield.cpp failed (see $LOG)"
	broken fcontext-yield
fi

# ---- running and statistics ------------------------------------------------

# sample NAME SIDE CMD...: one run of CMD into $S/NAME.SIDE (bench/lib.sh).
sample() {
	name=$1 side=$2
	shift 2
	sample_into "$S/$name.$side" "$name ($side)" "$@"
}

samples_line() { [ -s "$1" ] && tr '\n' ' ' < "$1" || echo "-"; }

# rounds "NAME SIDE KEY CMD ARGS..." ...: RUNS rounds; each round runs every
# spec once, in order, so a benchmark's gmprt and peer runs (and the two
# ping-pong variants) alternate and share the machine's noise.  SIDE is c or
# peer; a spec whose program KEY did not build is left out.
rounds() {
	specs="" nl='
'
	for spec in "$@"; do specs="$specs$spec$nl"; done
	for spec in "$@"; do
		# shellcheck disable=SC2086 # word splitting is the point
		set -- $spec
		is_broken "$3" && say "  $1 ($2): $3 did not build; left out"
	done
	i=1
	while [ $i -le "$RUNS" ]; do
		IFS=$nl
		for spec in $specs; do
			IFS=' 	'
			# shellcheck disable=SC2086
			set -- $spec
			n_=$1 s_=$2 k_=$3
			shift 3
			is_broken "$k_" || sample "$n_" "$s_" "$@"
		done
		IFS=' 	
'
		i=$((i + 1))
	done
}

# with_runs N CMD...: CMD, taking N runs a side instead of RUNS.
with_runs() {
	runs_=$RUNS RUNS=$1
	shift
	"$@"
	RUNS=$runs_
}

# pair NAME C_KEY PEER_KEY "C_CMD" "PEER_CMD": rounds of one benchmark.
pair() {
	rounds "$1 c $2 $4" "$1 peer $3 $5"
	show "$1"
}

show() { say "  $1: gmprt [ $(samples_line "$S/$1.c")] peer [ $(samples_line "$S/$1.peer")]"; }

# row NAME LABEL UNIT FORMAT PEERNAME TARGET_TEXT KIND LIMIT [C_VALUE P_VALUE]
#   KIND: ratio_le (ratio <= LIMIT), ratio_ge, abs_le (gmprt <= LIMIT),
#   abs_ge, none.  Writes one markdown row to $OUT/NAME.row.
row() {
	name=$1 label=$2 unit=$3 fmt=$4 peer=$5 target=$6 kind=$7 limit=$8
	c=${9:-$(median "$S/$name.c")}
	p=${10:-$(median "$S/$name.peer")}
	note=""
	fc=$(nfail "$S/$name.c") fp=$(nfail "$S/$name.peer")
	[ "$fc" != 0 ] && note="$note gmprt: $fc run(s) failed;"
	[ "$fp" != 0 ] && note="$note peer: $fp run(s) failed;"
	# shellcheck disable=SC2059 # the format is the caller's
	if [ "$c" = fail ]; then cs="fail"; else cs="$(printf "$fmt" "$c")${unit:+ $unit}"; fi
	# shellcheck disable=SC2059
	if [ "$p" = fail ]; then ps="fail"; else ps="$(printf "$fmt" "$p")${unit:+ $unit}"; fi
	if [ "$c" = fail ] || [ "$p" = fail ]; then
		ratio="—"
		r=""
	else
		r=$(awk -v c="$c" -v p="$p" 'BEGIN { if (p == 0) print "inf"; else printf "%.3f", c / p }')
		ratio="$(printf '%.2f' "$r")×"
	fi
	met="—"
	case $kind in
	ratio_le | ratio_ge) v=$r ;;
	*) v=$c ;;
	esac
	if [ "$kind" != none ] && [ -n "$v" ] && [ "$v" != fail ]; then
		case $kind in
		*_le) ok=$(awk -v v="$v" -v l="$limit" 'BEGIN { print (v <= l) ? "yes" : "NO" }') ;;
		*_ge) ok=$(awk -v v="$v" -v l="$limit" 'BEGIN { print (v >= l) ? "yes" : "NO" }') ;;
		esac
		met=$ok
	fi
	[ -n "${EXTRA_NOTE:-}" ] && note="$note $EXTRA_NOTE"
	[ -n "${EXTRA_MET:-}" ] && [ "$met" != "—" ] && met=$EXTRA_MET
	printf '| %s | %s | %s | %s | %s | %s | %s |%s\n' "$label" "$cs" "$ps" "$ratio" \
		"$target" "$met" "$peer" "${note:+ $note}" > "$OUT/$name.row"
	EXTRA_NOTE="" EXTRA_MET=""
}

# ---- the in-process benchmarks ---------------------------------------------

GMP="env GMP_MAXPROCS=$PROCS"
GOP="env GOMAXPROCS=$PROCS"
EXTRA_NOTE="" EXTRA_MET=""

if want spawn; then
	say "bench: spawn+exit 1M goroutines, $RUNS runs each"
	pair spawn spawn go-spawn "$GMP $OUT/spawn" "$GOP $OUT/go-spawn"
	row spawn "spawn+exit 1M (per goroutine)" ns %.0f "Go" "≤ 0.3× Go" ratio_le 0.3
fi

if want skynet; then
	say "bench: skynet 1M, fan-out 10, $RUNS runs each"
	pair skynet skynet go-skynet "$GMP $OUT/skynet" "$GOP $OUT/go-skynet"
	row skynet "skynet 1M, fan-out 10 (total)" s %.3f "Go" "≤ 0.5× Go" ratio_le 0.5
fi

# The two ping-pong variants share rounds, gmprt's two back to back, so that
# "from main() is as fast as between two goroutines" compares runs that saw
# the same noise: the check is the median of the rounds' ratios (of the
# medians when a run failed and the rounds no longer line up).
PP_C="$GMP $OUT/pingpong" PP_GO="$GOP $OUT/go-pingpong"
if want pingpong && want pingpong_main; then
	say "bench: unbuffered ping-pong, between two goroutines and from main(), $PINGPONG_RUNS runs each"
	with_runs "$PINGPONG_RUNS" rounds "pingpong c pingpong $PP_C go" "pingpong_main c pingpong $PP_C main" \
		"pingpong peer go-pingpong $PP_GO go" "pingpong_main peer go-pingpong $PP_GO main"
	show pingpong
	show pingpong_main
elif want pingpong; then
	say "bench: unbuffered ping-pong between two goroutines, $PINGPONG_RUNS runs each"
	with_runs "$PINGPONG_RUNS" pair pingpong pingpong go-pingpong "$PP_C go" "$PP_GO go"
elif want pingpong_main; then
	say "bench: unbuffered ping-pong driven from main(), $PINGPONG_RUNS runs each"
	with_runs "$PINGPONG_RUNS" pair pingpong_main pingpong go-pingpong "$PP_C main" "$PP_GO main"
fi
if want pingpong; then
	row pingpong "ping-pong, 2 goroutines (round trip)" ns %.0f "Go" "≤ 0.3× Go" ratio_le 0.3
fi
if want pingpong_main; then
	pm=$(median "$S/pingpong_main.c") pg=$(median "$S/pingpong.c")
	if [ "$pm" != fail ] && [ "$pg" != fail ]; then
		if [ "$(nfail "$S/pingpong_main.c")$(nfail "$S/pingpong.c")" = 00 ]; then
			rel=$(paste -d ' ' "$S/pingpong_main.c" "$S/pingpong.c" |
				awk '{ print $1 / $2 }' > "$S/pingpong_rel" && median "$S/pingpong_rel")
			rel=$(printf '%.2f' "$rel") how="median of rounds"
		else
			rel=$(awk -v m="$pm" -v g="$pg" 'BEGIN { printf "%.2f", m / g }') how="of medians"
		fi
		EXTRA_NOTE="main/goroutines = ${rel}× ($how, must be ≈ 1);"
		if awk -v r="$rel" 'BEGIN { exit !(r > 1.15) }'; then
			EXTRA_NOTE="$EXTRA_NOTE NOT as fast as from a goroutine;"
			EXTRA_MET=NO
		fi
	fi
	row pingpong_main "ping-pong, from main() (round trip)" ns %.0f "Go (from main)" \
		"≤ 0.3× Go, as fast as the row above" ratio_le 0.3
fi

if want yield; then
	say "bench: yield round trip under one P, $YIELD_RUNS runs each"
	with_runs "$YIELD_RUNS" pair yield yield fcontext-yield \
		"env GMP_MAXPROCS=1 $OUT/yield 3000000" "$OUT/fcontext-yield 3000000"
	row yield "yield round trip, 1 P" ns %.1f "Boost fcontext" "≤ 2× fcontext" ratio_le 2
fi

if want parked; then
	say "bench: RSS per parked goroutine at 1M, $RUNS runs each"
	pair parked parked go-parked "$GMP $OUT/parked" "$GOP $OUT/go-parked"
	row parked "RSS per parked goroutine at 1M" B %.0f "Go" "≤ 4,608 B" abs_le 4608
fi

if want fib; then
	say "bench: fork-join fib speed-up from 1 to $PROCS Ps, $RUNS runs each"
	pair fib fib go-fib "$GMP $OUT/fib $PROCS" "$GOP $OUT/go-fib $PROCS"
	row fib "fib(40) fork-join speed-up 1→$PROCS Ps" "" %.2f× "Go's speed-up" "≥ 1.8× speed-up" abs_ge 1.8
fi

# ---- httpd under wrk ---------------------------------------------------------

# listening PORT: is something listening on 127.0.0.1:PORT (or any address)?
listening() {
	hex=$(printf '%04X' "$1")
	awk -v h=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# to_ms VALUE: wrk's "679.00ms", "1.20s", "850.00us", "2.00m" as milliseconds.
to_ms() {
	printf '%s\n' "$1" | awk '{
		v = $1; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
		if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
		print v }'
}

# free_port BASE: the first port from BASE up that nothing listens on.
free_port() {
	fp=$1
	while listening "$fp"; do fp=$((fp + 1)); done
	echo "$fp"
}

SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null' EXIT
trap 'exit 130' INT TERM

# httpd_once SIDE PORT PROGRAM [ARGS...]: start the server, drive it with wrk,
# record requests/s, p99 (ms), peak RSS (MiB) and threads, stop it.
httpd_once() {
	side=$1 port=$2
	shift 2
	echo "== httpd $side: $* (port $port)" >> "$LOG"
	"$@" >> "$LOG" 2>&1 &
	SRV=$!
	n=0
	while ! listening "$port"; do
		n=$((n + 1))
		if [ $n -gt 100 ] || ! kill -0 "$SRV" 2>/dev/null; then
			say "  httpd ($side) did not start listening on port $port (see $LOG)"
			kill "$SRV" 2>/dev/null
			wait "$SRV" 2>/dev/null
			SRV=""
			for m in rps p99 rss thr; do echo x >> "$S/httpd_$m.$side.fail"; done
			FAILED=1
			return
		fi
		sleep 0.1
	done
	w=$(timeout -k 5 $((WRK_SECS + 60)) wrk -t"$WRK_T" -c"$CONNS" -d"${WRK_SECS}s" \
		--timeout 10s --latency "http://127.0.0.1:$port/" 2>&1)
	echo "$w" >> "$LOG"
	alive=1
	kill -0 "$SRV" 2>/dev/null || alive=0
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SRV/status" 2>/dev/null)
	thr=$(awk '/^Threads:/ { print $2 }' "/proc/$SRV/status" 2>/dev/null)
	kill "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null
	SRV=""
	rps=$(printf '%s\n' "$w" | awk '/^Requests\/sec:/ { print $2 }')
	p99=$(printf '%s\n' "$w" | awk '$1 == "99%" { print $2 }')
	errs=$(printf '%s\n' "$w" | grep -E 'Socket errors|Non-2xx' | tr -s ' ' | tr '\n' ';')
	if [ $alive = 0 ] || [ -z "$rps" ] || [ -z "$p99" ] || [ -z "$hwm" ]; then
		say "  httpd ($side) run failed (server alive: $alive; see $LOG)"
		for m in rps p99 rss thr; do echo x >> "$S/httpd_$m.$side.fail"; done
		FAILED=1
		return
	fi
	echo "$rps" >> "$S/httpd_rps.$side"
	to_ms "$p99" >> "$S/httpd_p99.$side"
	awk -v k="$hwm" 'BEGIN { printf "%.1f\n", k / 1024 }' >> "$S/httpd_rss.$side"
	echo "$thr" >> "$S/httpd_thr.$side"
	[ -n "$errs" ] && echo "$side: $errs" >> "$S/httpd_errs"
	say "  httpd ($side): $rps req/s, p99 $p99, peak RSS $((hwm / 1024)) MiB, $thr threads ${errs:+($errs)}"
	sleep 1
}

if want httpd; then
	HTTPD=$ABS_B/examples/httpd
	if [ ! -x "$HTTPD" ]; then
		say "bench: $HTTPD is missing"
		broken httpd
	fi
	if ! command -v wrk > /dev/null; then
		say "bench: wrk is missing (make deps installs it)"
		broken httpd
		broken go-httpd
	fi
	# Both wrk and the servers need more than CONNS descriptors.
	hard=$(ulimit -Hn)
	need=$((CONNS + 1000))
	if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
		ulimit -n "$hard"
		CONNS=$((hard - 1000))
		say "bench: the fd hard limit is $hard; httpd runs with $CONNS connections"
	else
		ulimit -n "$need" 2>/dev/null || ulimit -n "$hard"
	fi
	say "bench: httpd at $CONNS connections, wrk -t$WRK_T -d${WRK_SECS}s, $HTTPD_RUNS runs each (fd limit $(ulimit -n))"
	i=1
	while [ $i -le "$HTTPD_RUNS" ]; do
		port=$(free_port 18080)
		is_broken httpd || httpd_once c "$port" env GMP_MAXPROCS="$PROCS" "$HTTPD" "$port" 127.0.0.1
		port=$(free_port 18090)
		is_broken go-httpd || httpd_once peer "$port" env GOMAXPROCS="$PROCS" "$OUT/go-httpd" "127.0.0.1:$port"
		i=$((i + 1))
	done
	RUNS=$HTTPD_RUNS
	for m in rps p99 rss thr; do
		say "  httpd $m: gmprt [ $(samples_line "$S/httpd_$m.c")] peer [ $(samples_line "$S/httpd_$m.peer")]"
	done
	row httpd_rps "httpd $CONNS conns: requests/s" "req/s" %.0f "Go net/http" "≥ 1.3× Go" ratio_ge 1.3
	row httpd_p99 "httpd $CONNS conns: p99 latency" ms %.0f "Go net/http" "—" none 0
	row httpd_rss "httpd $CONNS conns: peak server RSS" MiB %.0f "Go net/http" "≤ 0.5× Go" ratio_le 0.5
	row httpd_thr "httpd $CONNS conns: server threads at end" "" %.0f "Go net/http" "—" none 0
fi

# ---- kernel assist (issue 3): its own script, its rows appended below ----------

KASSIST_ROWS=$ABS_B/bench/kassist/rows.md
rm -f "$KASSIST_ROWS"
if [ -z "${BENCH_ONLY:-}" ] || echo "$ONLY" | grep -qw kassist; then
	B=$B sh bench/kassist/run.sh >>"$LOG" 2>&1 || FAILED=1
fi

# ---- the table ------------------------------------------------------------------

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
gov=$(go version 2>/dev/null | awk '{ print $3 }')
ccv=$($CC --version 2>/dev/null | head -n 1)
elapsed=$(($(date +%s) - T_START))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "# gmprt benchmarks"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($cpu), Linux $(uname -r);"
	echo "gmprt $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- runtime 2>/dev/null || echo '+dirty'), $gov, $ccv."
	echo "Median of ${BENCH_RUNS:-7} runs per side (ping-pong: $PINGPONG_RUNS, yield: $YIELD_RUNS, httpd: $HTTPD_RUNS), run alternately;"
	echo "$PROCS Ps on both sides (yield: 1). Ratio is gmprt / peer. bench/run.sh took ${elapsed} s;"
	echo "load average $LOAD_START at the start, $LOAD_END at the end (the machine is shared:"
	echo "a load near or above $(nproc) means other work competed, above all for the speed-up row)."
	echo
	echo "| benchmark | gmprt | peer | ratio | target | met | peer is | notes"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	for r in spawn skynet pingpong pingpong_main yield parked fib httpd_rps httpd_p99 httpd_rss httpd_thr; do
		[ -e "$OUT/$r.row" ] && cat "$OUT/$r.row"
	done
	[ -s "$KASSIST_ROWS" ] && cat "$KASSIST_ROWS"
	if [ -s "$S/httpd_errs" ]; then
		echo
		echo "wrk reported errors:"
		sed 's/^/    /' "$S/httpd_errs"
	fi
} > "$RESULTS"

for f in "$S"/*; do
	case $f in *.err) continue ;; esac
	[ -e "$f" ] && printf '%s: %s\n' "$(basename "$f")" "$(tr '\n' ' ' < "$f")"
done > "$OUT/samples.txt"

echo
cat "$RESULTS"
echo
echo "(written to $RESULTS; samples in $OUT/samples.txt, program output in $LOG)"
exit $FAILED
