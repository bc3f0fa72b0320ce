/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * bench/kassist/handoff.c - hand-off latency: how long a runnable goroutine
 * waits when the goroutine holding the only P blocks in plain read().
 *
 * Run under GMP_MAXPROCS=1 (bench/kassist/run.sh sets it; GMP_DEBUG=
 * kassist=off selects the userspace path).  Each trial: G1 (main) sends on a
 * buffered channel that G2 waits on, so G2 becomes runnable on the same P
 * without running; G1 stamps the clock and calls read() on an empty pipe.
 * G2 runs only once the P is handed away from G1's blocked M; it stamps the
 * clock (the sample is the difference) and writes the byte that releases
 * G1.  The first WARMUP trials are dropped.
 *
 * Usage: handoff [TRIALS [GAP_US]]   (default 2000 trials, after 100 warm-up
 * trials; GAP_US, if given (> 0), is a gmp_sleep of G1 before each trial, so
 * that every block comes after the runtime has gone quiet: no M spinning,
 * the watcher asleep on the ring buffer)
 * Prints "p50 p99 max" in ns; stderr gets the mean and the minimum.
 * Peer: bench/kassist/go/handoff (syscall.Read under GOMAXPROCS=1).
 */
#include "kbench.h"

#include <gmprt.h>

enum { WARMUP = 100 };

static int pfd[2];
static gmp_chan *wake;
static _Atomic int64_t t_read;	/* kb_now() just before G1's read() */
static int64_t *samples;
static long total;
static gmp_waitgroup done = GMP_WAITGROUP_INIT;

static void g2_main(void *arg)
{
	long k;

	(void)arg;
	for (long i = 0; i < total; i++) {
		KB_CHECK(gmp_chan_recv(wake, &k) == 1, "gmp_chan_recv");
		samples[i] = kb_now() - t_read;
		KB_CHECK(write(pfd[1], "x", 1) == 1, "write");
	}
	gmp_wg_done(&done);
}

static void g1_trials(int64_t gap_ns)
{
	char c;

	for (long i = 0; i < total; i++) {
		ssize_t n;

		if (gap_ns > 0)
			gmp_sleep(gap_ns);
		KB_CHECK(gmp_chan_send(wake, &i) == 0, "gmp_chan_send");
		t_read = kb_now();
		do
			n = read(pfd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		KB_CHECK(n == 1, "read");
	}
}

static void report(const int64_t *v, long n)
{
	double sum = 0;

	for (long i = 0; i < n; i++)
		sum += (double)v[i];
	fprintf(stderr, "handoff: %ld trials, mean %.1f us, min %.1f us (GMP_MAXPROCS=%d)\n", n,
		sum / (double)n / 1000, (double)v[0] / 1000, gmp_maxprocs(0));
	printf("%lld %lld %lld\n", (long long)kb_pct(v, n, 50), (long long)kb_pct(v, n, 99),
	       (long long)v[n - 1]);
}

int main(int argc, char **argv)
{
	long trials = kb_arg(argc, argv, 1, 2000);
	long gap_us = argc > 2 ? kb_arg(argc, argv, 2, 0) : 0;

	total = trials + WARMUP;
	samples = calloc((size_t)total, sizeof(*samples));
	wake = gmp_chan_make(sizeof(long), 1);
	KB_CHECK(samples && wake && pipe(pfd) == 0, "setup");
	gmp_wg_add(&done, 1);
	KB_CHECK(gmp_go(g2_main, NULL) > 0, "gmp_go");
	g1_trials(gap_us * 1000);
	gmp_wg_wait(&done);
	qsort(samples + WARMUP, (size_t)trials, sizeof(*samples), kb_cmp_i64);
	report(samples + WARMUP, trials);
	return 0;
}
