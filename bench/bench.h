/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * bench.h - helpers shared by gmprt's benchmark programs: a monotonic clock
 * that does not depend on the runtime, VmRSS from /proc/self/status,
 * argument parsing, and (for a program that includes gmprt.h first) the
 * runtime's start before the clock runs.  Each benchmark prints exactly one
 * number on stdout; diagnostics go to stderr.  Programs that are not
 * gmprt's (bench/kassist/pingpong_plain.c) use it too, without gmprt.h.
 */
#ifndef GMPRT_BENCH_H
#define GMPRT_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Resident set size of this process in KiB, or -1. */
static inline long bench_rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

/* argv[i] as a positive long, or def when absent; exits on a bad value. */
static inline long bench_arg(int argc, char **argv, int i, long def)
{
	char *end;
	long v;

	if (argc <= i)
		return def;
	v = strtol(argv[i], &end, 10);
	if (*end || v <= 0) {
		fprintf(stderr, "%s: bad argument '%s'\n", argv[0], argv[i]);
		exit(2);
	}
	return v;
}

/* Report a failed runtime call and exit with status 1. */
#define BENCH_CHECK(cond, what)                                                  \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "bench: %s failed at %s:%d\n", (what),   \
				__FILE__, __LINE__);                             \
			exit(1);                                                 \
		}                                                                \
	} while (0)

#ifdef GMPRT_H
static inline void bench_start_noop(void *arg)
{
	gmp_wg_done(arg);
}

/* The runtime starts its background work with the first goroutine: sysmon,
 * and the kernel assist, whose BPF program takes 15-20 ms to load and
 * verify here.  A Go program's runtime has done its start before main()
 * runs, and the peers time from there; so do ours, once this returns. */
static inline void bench_start_runtime(void)
{
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;

	gmp_wg_add(&wg, 1);
	if (gmp_go(bench_start_noop, &wg) <= 0) {
		fprintf(stderr, "bench: gmp_go failed starting the runtime\n");
		exit(1);
	}
	gmp_wg_wait(&wg);
}
#endif /* GMPRT_H */

#endif /* GMPRT_BENCH_H */
