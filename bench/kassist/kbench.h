/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * bench/kassist/kbench.h - helpers shared by the kernel-assist benchmark
 * programs (handoff.c, switch.c, pingpong_plain.c, idle.c): a monotonic
 * clock of their own, argument parsing, percentiles, pinning, a pipe
 * ping-pong between two plain threads, and a process's CPU time from
 * /proc.  No gmprt calls here: pingpong_plain.c is built without gmprt.
 * Each program prints one line of numbers on stdout; diagnostics go to
 * stderr.
 */
#ifndef GMPRT_KBENCH_H
#define GMPRT_KBENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* sched_setaffinity, CPU_SET */
#endif

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench.h"

#define KB_MS (1000 * 1000LL)

/* The clock and argument parsing are bench.h's (no gmprt calls there). */
#define kb_now bench_now
#define kb_arg bench_arg

#define KB_CHECK(cond, what)                                                    \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "kbench: %s failed at %s:%d: %s\n", (what), \
				__FILE__, __LINE__, strerror(errno));           \
			exit(1);                                                \
		}                                                               \
	} while (0)

static inline int kb_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0..100) of sorted v[0..n): v[(n - 1) * p / 100]. */
static inline int64_t kb_pct(const int64_t *v, long n, int p)
{
	return v[(n - 1) * p / 100];
}

/* Pin the calling thread to the first CPU it may use; that CPU, or -1. */
static inline int kb_pin_first_cpu(void)
{
	cpu_set_t set, one;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set)) {
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			return sched_setaffinity(0, sizeof(one), &one) == 0 ? c : -1;
		}
	return -1;
}

/* ---- pipe ping-pong between two plain threads on one CPU ------------------ */

struct kb_pingpong {
	int ab[2], ba[2];	/* a writes ab, b writes ba */
	long rounds;
};

static inline void kb_xfer(int wfd, int rfd, char *c)
{
	ssize_t n;

	do
		n = write(wfd, c, 1);
	while (n < 0 && errno == EINTR);
	KB_CHECK(n == 1, "write");
	do
		n = read(rfd, c, 1);
	while (n < 0 && errno == EINTR);
	KB_CHECK(n == 1, "read");
}

static inline void *kb_pong_main(void *arg)
{
	struct kb_pingpong *pp = arg;
	char c;

	kb_pin_first_cpu();
	for (long i = 0; i < pp->rounds; i++) {
		ssize_t n;

		do
			n = read(pp->ab[0], &c, 1);
		while (n < 0 && errno == EINTR);
		KB_CHECK(n == 1, "read");
		do
			n = write(pp->ba[1], &c, 1);
		while (n < 0 && errno == EINTR);
		KB_CHECK(n == 1, "write");
	}
	return NULL;
}

static inline void *kb_ping_main(void *arg)
{
	struct kb_pingpong *pp = arg;
	char c = 'p';

	kb_pin_first_cpu();
	for (long i = 0; i < pp->rounds; i++)
		kb_xfer(pp->ab[1], pp->ba[0], &c);
	return NULL;
}

/* rounds round trips between two new plain threads pinned to one CPU, so
 * each round trip is two context switches; returns ns per switch. */
static inline double kb_pingpong_threads(long rounds)
{
	struct kb_pingpong pp = { .rounds = rounds };
	pthread_t a, b;
	int64_t t0;

	KB_CHECK(pipe(pp.ab) == 0 && pipe(pp.ba) == 0, "pipe");
	t0 = kb_now();
	KB_CHECK(pthread_create(&b, NULL, kb_pong_main, &pp) == 0, "pthread_create");
	KB_CHECK(pthread_create(&a, NULL, kb_ping_main, &pp) == 0, "pthread_create");
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	t0 = kb_now() - t0;
	close(pp.ab[0]);
	close(pp.ab[1]);
	close(pp.ba[0]);
	close(pp.ba[1]);
	return (double)t0 / (2.0 * (double)rounds);
}

/* ---- CPU time ----------------------------------------------------------------- */

/* utime + stime of a process, in clock ticks (fields 14 and 15 of
 * /proc/PID/stat), or -1. */
static inline long long kb_cpu_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

#endif /* GMPRT_KBENCH_H */
