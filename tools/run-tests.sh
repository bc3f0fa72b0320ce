#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# tools/run-tests.sh - runs every unit-test binary ($B/tests/test_*) and every
# selftest ($B/selftests/*/*), all of which print TAP, plus a valgrind run of
# a small program; sums the results and ends with "N passed, N failed".
# Exit status is non-zero when anything failed.
#
# Environment: B (build dir, default build), SAN (the sanitizer, if any),
# TESTS (substring: run only matching test binaries), RUN_WRAP (an emulator
# that runs the binaries, for a cross build: qemu-aarch64-static; the
# harness re-executes itself through it, as GMP_TEST_WRAP).
B=${B:-build}
[ -n "${RUN_WRAP:-}" ] && export GMP_TEST_WRAP="$RUN_WRAP"
pass=0 fail=0 skip=0
log=$B/test-logs
mkdir -p "$log"
: >"$log/failures"

# Reads TAP on stdin, echoes it, adds its counts to the totals file ($1)
# and its failures, named by binary ($2), to $log/failures.
count_tap() {
	awk -v totals="$1" -v name="$2" -v failures="$log/failures" '
		{ print; fflush() }
		/^ok / { if ($0 ~ /# SKIP/) s++; else p++ }
		/^not ok / { f++; print name ": " $0 >> failures }
		END { printf "%d %d %d\n", p, f, s > totals }'
}

add_totals() {
	read p f s < "$1"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

run_tap() {
	name=$1; shift
	echo "# $name"
	"$@" 2>"$log/$name.stderr" | count_tap "$log/$name.totals" "$name"
	add_totals "$log/$name.totals"
	if [ ! -s "$log/$name.totals" ] || [ "$(cat "$log/$name.totals")" = "0 0 0" ]; then
		echo "not ok - $name printed no results" | tee -a "$log/failures"; fail=$((fail + 1))
	fi
}

for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$(basename "$t")" in *"${TESTS:-}"*) ;; *) continue ;; esac
	run_tap "$(basename "$t")" ${RUN_WRAP:+"$RUN_WRAP"} "$t"
done

if [ -d "$B/selftests" ]; then
	for t in "$B"/selftests/*/*; do
		[ -x "$t" ] && [ -f "$t" ] || continue
		case "$(basename "$t")" in *"${TESTS:-}"*) ;; *) continue ;; esac
		run_tap "selftest-$(basename "$t")" "$t"
	done
elif [ -z "${TESTS:-}" ]; then
	echo "# selftests"
	echo "ok 1 selftests # SKIP not built: the kernel-assist selftests need BPF, and $B has none (KASSIST=none)"
	skip=$((skip + 1))
fi

# valgrind: a small goroutine program must run clean (not under a sanitizer;
# kernel assist off: valgrind does not model the bpf system call).
if [ -z "${TESTS:-}" ]; then
	echo "# valgrind"
	if [ -n "${SAN:-}" ]; then
		echo "ok 1 valgrind_hello # SKIP under SAN=$SAN: valgrind cannot run a sanitized binary"; skip=$((skip + 1))
	elif [ -n "${RUN_WRAP:-}" ]; then
		echo "ok 1 valgrind_hello # SKIP under $RUN_WRAP: valgrind does not run a foreign binary"; skip=$((skip + 1))
	elif ! command -v valgrind >/dev/null 2>&1; then
		echo "ok 1 valgrind_hello # SKIP valgrind not installed"; skip=$((skip + 1))
	elif GMP_MAXPROCS=2 GMP_DEBUG=kassist=off valgrind -q --error-exitcode=99 --leak-check=no \
		"$B/examples/hello" >"$log/valgrind.out" 2>"$log/valgrind.err"; then
		echo "ok 1 valgrind_hello"; pass=$((pass + 1))
	else
		echo "not ok 1 valgrind_hello"; echo "valgrind: not ok 1 valgrind_hello" >>"$log/failures"; sed 's/^/# /' "$log/valgrind.err" | head -40
		fail=$((fail + 1))
	fi
fi

if [ -s "$log/failures" ]; then
	echo "# failures:"
	sed 's/^/#   /' "$log/failures"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
