/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * parked - resident memory per parked goroutine.  main() reads VmRSS from
 * /proc/self/status, starts N goroutines (default 1,000,000) that each call
 * gmp_wg_done and then block in gmp_chan_recv on one shared unbuffered
 * channel that nobody sends on, waits for all of them to start (plus a
 * 50 ms sleep so the last ones are parked), and reads VmRSS again.  It
 * prints the RSS growth in bytes per parked goroutine and returns with them
 * all still parked.  Must work at the default vm.max_map_count (65530).
 * Peer: bench/go/parked.
 */
#include "bench.h"

#include <gmprt.h>

static gmp_waitgroup wg = GMP_WAITGROUP_INIT;
static gmp_chan *block;

static void parker(void *arg)
{
	char c;

	(void)arg;
	gmp_wg_done(&wg);
	gmp_chan_recv(block, &c);
}

int main(int argc, char **argv)
{
	long n = bench_arg(argc, argv, 1, 1000000);
	long before, after;
	int64_t id;

	block = gmp_chan_make(1, 0);
	BENCH_CHECK(block, "gmp_chan_make");
	gmp_wg_add(&wg, n);
	before = bench_rss_kib();
	for (long i = 0; i < n; i++) {
		id = gmp_go(parker, NULL);
		if (id <= 0) {
			fprintf(stderr, "parked: gmp_go failed at goroutine %ld: %s\n", i,
				strerror((int)-id));
			return 1;
		}
	}
	gmp_wg_wait(&wg);
	gmp_sleep(50 * 1000000);
	after = bench_rss_kib();
	BENCH_CHECK(before > 0 && after > 0, "reading VmRSS");
	printf("%.0f\n", (double)(after - before) * 1024 / n);
	return 0;
}
