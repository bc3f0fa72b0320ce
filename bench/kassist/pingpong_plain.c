/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * bench/kassist/pingpong_plain.c - the same pipe ping-pong as switch.c's
 * "threads" mode, in a process that is NOT a gmprt process (it is built
 * without libgmprt).  switch.c's "stats" mode runs it beside a live
 * sched_switch program to measure what that program costs for other
 * processes' threads, which it must drop at its first check.
 *
 * Usage: pingpong_plain [ROUNDS]   (default 200000 round trips)
 * Prints ns per context switch.
 */
#include "kbench.h"

int main(int argc, char **argv)
{
	long rounds = kb_arg(argc, argv, 1, 200000);

	printf("%.1f\n", kb_pingpong_threads(rounds));
	return 0;
}
