# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# bench/lib.sh - the helpers bench/run.sh and bench/kassist/run.sh share.
# Sourced, not run.  The caller sets LOG (the log file), OUT (where
# programs and *.broken markers live), ONLY (the selected benchmarks), TMO
# (seconds per program run) and FAILED=0; the helpers set FAILED=1 on any
# failure.

say() { printf '%s\n' "$*"; printf '%s\n' "$*" >> "$LOG"; }

# want NAME: is NAME among the benchmarks selected in $ONLY?
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# broken NAME: remember that program NAME could not be built (or is missing).
broken() { : > "$OUT/$1.broken"; FAILED=1; }
is_broken() { [ -e "$OUT/$1.broken" ]; }

# sample_into FILE LABEL CMD...: run CMD once under the timeout.  Its last
# stdout line (one or more numbers) is appended to FILE, or a failure is
# counted in FILE.fail.  Its stderr goes to the log and to FILE.err.
sample_into() {
	file_=$1 label_=$2
	shift 2
	echo "== $label_: $*" >> "$LOG"
	out_=$(timeout -k 5 "$TMO" "$@" 2> "$file_.err.last")
	rc_=$?
	cat "$file_.err.last" >> "$LOG"
	cat "$file_.err.last" >> "$file_.err"
	rm -f "$file_.err.last"
	v_=$(printf '%s\n' "$out_" | tail -n 1)
	if [ $rc_ -eq 0 ] && printf '%s\n' "$v_" | grep -Eq '^-?[0-9.]+( -?[0-9.]+)*$'; then
		echo "$v_" >> "$file_"
		echo "-> $v_" >> "$LOG"
	else
		[ $rc_ -eq 124 ] && why_="timed out after ${TMO}s" || why_="exit status $rc_"
		say "  $label_ run failed: $why_; stdout '$v_' (see $LOG)"
		echo x >> "$file_.fail"
		FAILED=1
	fi
}

# median FILE [COLUMN]: the median of that column (default 1) of FILE, or "fail".
median() {
	if [ ! -s "$1" ]; then echo fail; return; fi
	awk -v c="${2:-1}" '{ print $c }' "$1" | sort -g | awk '{ a[NR] = $1 }
		END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# nfail FILE: how many runs failed for the samples in FILE.
nfail() { [ -e "$1.fail" ] && wc -l < "$1.fail" | tr -d ' ' || echo 0; }
