/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * spawn - spawn+exit cost.  main() starts N goroutines (default 1,000,000)
 * with gmp_go; each does nothing but gmp_wg_done and returns.  The clock
 * runs, once the runtime has started (bench_start_runtime), from the first
 * gmp_go until gmp_wg_wait returns in main; it prints nanoseconds per
 * goroutine.  Peer: bench/go/spawn.
 */
#include <gmprt.h>

#include "bench.h"

static gmp_waitgroup wg = GMP_WAITGROUP_INIT;

static void worker(void *arg)
{
	(void)arg;
	gmp_wg_done(&wg);
}

int main(int argc, char **argv)
{
	long n = bench_arg(argc, argv, 1, 1000000);
	int64_t t0, el;

	BENCH_CHECK(gmp_maxprocs(0) > 0, "gmp_maxprocs");
	bench_start_runtime();
	gmp_wg_add(&wg, n);
	t0 = bench_now();
	for (long i = 0; i < n; i++)
		BENCH_CHECK(gmp_go(worker, NULL) > 0, "gmp_go");
	gmp_wg_wait(&wg);
	el = bench_now() - t0;
	printf("%.1f\n", (double)el / n);
	return 0;
}
