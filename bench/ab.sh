#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# bench/ab.sh - is build B of libgmprt faster than build A?  For changes of
# a few per cent, which a table of medians taken minutes apart cannot show
# on this shared machine (its speed drifts over tens of milliseconds to
# seconds).
#
#   sh bench/ab.sh LIBDIR_A LIBDIR_B [PAIRS] [PROGRAM ARGS...]
#
# LIBDIR_A and LIBDIR_B hold a libgmprt.so.0 each (for instance
# `make B=/tmp/a lib` on one tree and `make B=/tmp/b lib` on another).
# PROGRAM defaults to build/bench/yield with 1,000,000 round trips; it must
# print one number, smaller is better, and find libgmprt through its
# runpath, which LD_LIBRARY_PATH overrides.  Each of PAIRS (default 400)
# runs A and B back to back, in alternating order, so that both sides of a
# pair see the same machine; it prints the median of the per-pair ratios
# B/A with its quartiles, and each side's median.  An A/A run gives 1.00
# within about 2% here.  GMP_MAXPROCS=1 and GMP_DEBUG=kassist=off are set
# (quiet start-up, no BPF load per run); override them in the environment.

set -u
. "$(dirname "$0")/lib.sh"	# median

if [ $# -lt 2 ]; then
	echo "usage: sh bench/ab.sh LIBDIR_A LIBDIR_B [PAIRS] [PROGRAM ARGS...]" >&2
	exit 2
fi
A=$1 B=$2
PAIRS=${3:-400}
if [ $# -ge 3 ]; then shift 3; else shift $#; fi
[ $# -eq 0 ] && set -- "$(dirname "$0")/../build/bench/yield" 1000000
for d in "$A" "$B"; do
	if [ ! -e "$d/libgmprt.so.0" ]; then
		echo "bench/ab.sh: no libgmprt.so.0 in $d" >&2
		exit 2
	fi
done
: "${GMP_MAXPROCS:=1}" "${GMP_DEBUG:=kassist=off}"
export GMP_MAXPROCS GMP_DEBUG

out=$(mktemp) && rel=$(mktemp) || exit 1
trap 'rm -f "$out" "$rel"' EXIT
run() { d=$1; shift; LD_LIBRARY_PATH=$d "$@" 2>/dev/null | tail -n 1; }
i=1
while [ "$i" -le "$PAIRS" ]; do
	if [ $((i % 2)) -eq 0 ]; then
		a=$(run "$A" "$@"); b=$(run "$B" "$@")
	else
		b=$(run "$B" "$@"); a=$(run "$A" "$@")
	fi
	case "$a$b" in
	*[!0-9.]* | "") echo "bench/ab.sh: pair $i: no number (A: '$a', B: '$b')" >&2; exit 1 ;;
	esac
	echo "$a $b" >> "$out"
	i=$((i + 1))
done
awk '{ print $2 / $1 }' "$out" > "$rel"
quartiles=$(sort -g "$rel" | awk '{ v[NR] = $1 } END { printf "%.3f-%.3f", v[int(NR / 4) + 1], v[int(3 * NR / 4) + 1] }')
printf 'B/A: %.3f (quartiles %s) over %s pairs; A median %s, B median %s\n' \
	"$(median "$rel")" "$quartiles" "$PAIRS" "$(median "$out" 1)" "$(median "$out" 2)"
