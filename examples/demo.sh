# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# demo.sh - `make demo`: the seed's HTTP server under load.
#
# Starts $B/examples/httpd on a free loopback port, drives it with wrk over
# thousands of concurrent keep-alive connections (each request sleeps 100 ms
# in the server, so throughput is about connections / 0.1 s when the
# scheduler keeps up), and prints requests/s, latency percentiles, and the
# server's RSS and thread count sampled from /proc during the run.  Then it
# stops the server with SIGTERM and checks that it exited cleanly.
#
# Exits non-zero if the server fails to start, dies during the run, serves
# nothing, or does not stop cleanly within 10 s (a stop slower than 2 s is
# reported with where the server's threads were).  Plain POSIX sh; bounded
# in time.
#
# Knobs: DEMO_CONNS (10000), DEMO_SECONDS (10), DEMO_THREADS (2).

set -u

B=${B:-build}
HTTPD=$B/examples/httpd
CONNS=${DEMO_CONNS:-10000}
SECONDS_RUN=${DEMO_SECONDS:-10}
THREADS=${DEMO_THREADS:-2}

fail() {
	echo "demo: $*" >&2
	exit 1
}

[ -x "$HTTPD" ] || fail "$HTTPD not found: run make first"
command -v wrk >/dev/null 2>&1 || fail "wrk not found: run make deps"

# Each connection costs wrk one fd and the server one fd, under the same limit.
ulimit -S -n "$(ulimit -H -n)" 2>/dev/null || true
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=1048576
if [ "$CONNS" -gt $((nofile - 200)) ]; then
	CONNS=$((nofile - 200))
	[ "$CONNS" -ge 100 ] || fail "fd limit $nofile is too low for a load test"
	echo "demo: note: fd limit is $nofile, so using $CONNS connections"
fi
[ "$THREADS" -le "$CONNS" ] || THREADS=$CONNS

tmp=$(mktemp -d)
server_pid=
sampler_pid=
cleanup() {
	[ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
	[ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# Running, as opposed to gone or a zombie that kill -0 would still find.
running() {
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
trap 'exit 130' INT TERM

# Port 0: the kernel picks a free one and httpd prints it.
"$HTTPD" 0 >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

port=
for _ in $(seq 50); do
	port=$(sed -n 's/^httpd: listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$tmp/server.out")
	[ -n "$port" ] && break
	running "$server_pid" || break
	sleep 0.1
done
if [ -z "$port" ]; then
	cat "$tmp/server.err" >&2
	fail "httpd did not start listening"
fi
cat "$tmp/server.out"

# The server's memory and threads, twice a second, from /proc.
sample() {
	while running "$server_pid"; do
		awk '/^VmRSS:/ { rss = $2 } /^Threads:/ { thr = $2 }
		     END { if (rss != "") print rss, thr }' "/proc/$server_pid/status" 2>/dev/null
		sleep 0.5
	done
}
sample >"$tmp/samples" &
sampler_pid=$!

echo "demo: wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s against http://127.0.0.1:$port/"
wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" --timeout 5s --latency \
	"http://127.0.0.1:$port/" >"$tmp/wrk.out" 2>&1
wrk_status=$?

kill "$sampler_pid" 2>/dev/null
wait "$sampler_pid" 2>/dev/null
sampler_pid=

alive=yes
running "$server_pid" || alive=no

echo
cat "$tmp/wrk.out"
echo

rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
echo "requests/s:        ${rps:-none}"
printf 'latency:          '
awk '/Latency Distribution/ { on = 1; next }
     on && /%/ { printf " p%s %s", $1, $2; n++ } on && n == 4 { exit }' "$tmp/wrk.out" | sed 's/%//g'
echo
awk 'NR == 1 { first = $1 }
     { if ($1 > rss) rss = $1; if ($2 > thr) thr = $2; n++ }
     END {
	if (!n) { print "server RSS:        no samples"; exit }
	printf "server RSS:        %d KiB at start, %d KiB peak (%.1f KiB per connection)\n",
	       first, rss, (rss - first) / conns
	printf "server threads:    %d at most (%d samples)\n", thr, n
     }' conns="$CONNS" "$tmp/samples"

status=0
if [ "$alive" = no ]; then
	cat "$tmp/server.err" >&2
	echo "demo: httpd died during the run" >&2
	status=1
fi
if [ "$wrk_status" -ne 0 ] || [ -z "$rps" ]; then
	echo "demo: wrk failed (status $wrk_status)" >&2
	status=1
elif awk -v r="$rps" 'BEGIN { exit !(r + 0 <= 0) }'; then
	echo "demo: no requests were served" >&2
	status=1
fi

# Where each of the server's threads is, from /proc: for a stop that is slow.
thread_states() {
	for t in /proc/"$1"/task/*; do
		printf '  thread %s: %s, in %s\n' "${t##*/}" \
			"$(sed -n 's/^State:[[:space:]]*//p' "$t/status" 2>/dev/null)" \
			"$(cat "$t/wchan" 2>/dev/null || echo '?')"
		sed 's/^/      /' "$t/stack" 2>/dev/null | head -n 8
	done
}

# Stop the server as a user would.  Stopping takes well under a second; one
# that takes over STOP_SLOW tenths is reported with where its threads were,
# and one that takes over STOP_LIMIT tenths fails the demo.
STOP_SLOW=20 STOP_LIMIT=100
if [ "$alive" = yes ]; then
	kill -TERM "$server_pid"
	tenths=0
	while running "$server_pid" && [ "$tenths" -lt "$STOP_LIMIT" ]; do
		[ "$tenths" -eq "$STOP_SLOW" ] && thread_states "$server_pid" >"$tmp/slow" 2>&1
		sleep 0.1
		tenths=$((tenths + 1))
	done
	if [ "$tenths" -gt "$STOP_SLOW" ]; then
		echo "demo: httpd was slow to stop (over $((tenths / 10)) s after SIGTERM); what it had printed:" >&2
		sed 's/^/  /' "$tmp/server.out" >&2
		echo "demo: its threads $((STOP_SLOW / 10)) s after SIGTERM:" >&2
		cat "$tmp/slow" >&2
	fi
	if running "$server_pid"; then
		echo "demo: httpd did not stop within $((STOP_LIMIT / 10)) s of SIGTERM" >&2
		status=1
	else
		wait "$server_pid"
		server_status=$?
		server_pid=
		tail -n 2 "$tmp/server.out"
		if [ "$server_status" -ne 0 ]; then
			cat "$tmp/server.err" >&2
			echo "demo: httpd exited with status $server_status" >&2
			status=1
		fi
	fi
fi
[ "$status" -eq 0 ] && echo "demo: ok"
exit "$status"
