/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * bench/kassist/idle.c - CPU used by an idle gmprt process: 10,000
 * goroutines parked on a channel nobody sends on, nothing runnable, main
 * asleep in gmp_sleep.  What is left is sysmon's and the idle Ms' own
 * wake-ups; it should be well under 1% of one CPU.
 *
 * After the goroutines are parked and 500 ms of settling, it reads utime +
 * stime (/proc/self/stat), sleeps SECS seconds (default 10) and reads them
 * again.  Prints the CPU used as a percentage of one CPU, then the same
 * from getrusage (microsecond resolution, same window): "PROC_PCT RU_PCT".
 * Run it with and without GMP_DEBUG=kassist=off.  Peer: go/idle.
 *
 * Usage: idle [SECS] [GOROUTINES]
 */
#include "kbench.h"

#include <sys/resource.h>

#include <gmprt.h>

static gmp_waitgroup started = GMP_WAITGROUP_INIT;
static gmp_chan *never;

static void parker(void *arg)
{
	char c;

	(void)arg;
	gmp_wg_done(&started);
	gmp_chan_recv(never, &c);
}

static double rusage_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	long secs = kb_arg(argc, argv, 1, 10), n = kb_arg(argc, argv, 2, 10000);
	long long t0, t1;
	double r0, r1, hz = (double)sysconf(_SC_CLK_TCK);
	int64_t w0, w1;

	never = gmp_chan_make(1, 0);
	KB_CHECK(never != NULL, "gmp_chan_make");
	gmp_wg_add(&started, n);
	for (long i = 0; i < n; i++)
		KB_CHECK(gmp_go(parker, NULL) > 0, "gmp_go");
	gmp_wg_wait(&started);
	gmp_sleep(500 * KB_MS);
	t0 = kb_cpu_ticks(getpid());
	r0 = rusage_s();
	w0 = kb_now();
	gmp_sleep(secs * 1000 * KB_MS);
	t1 = kb_cpu_ticks(getpid());
	r1 = rusage_s();
	w1 = kb_now();
	KB_CHECK(t0 >= 0 && t1 >= 0, "reading /proc/self/stat");
	fprintf(stderr, "idle: %ld parked, %.2f s: %lld ticks, %.4f s by getrusage\n", n,
		(double)(w1 - w0) / 1e9, t1 - t0, r1 - r0);
	printf("%.3f %.4f\n", (double)(t1 - t0) / hz * 1e11 / (double)(w1 - w0),
	       (r1 - r0) * 1e11 / (double)(w1 - w0));
	return 0;
}
