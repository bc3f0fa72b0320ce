/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * yield - gmp_yield round trip under one P.  With GMP_MAXPROCS=1 (run.sh
 * sets it; the program also asks for 1 P if it got more), main starts two
 * goroutines that each call gmp_yield N times (default 10,000,000) and
 * waits for both on a waitgroup.  With one P and main parked, every yield
 * switches to the other goroutine, so one round trip is A -> B -> A, two
 * switches, as in the fcontext peer.  The clock runs, once the runtime has
 * started (bench_start_runtime: the peer's warm-up), from the first gmp_go
 * until gmp_wg_wait returns; it prints nanoseconds per round trip.
 * Peer: bench/fcontext/yield.cpp (Boost.Context jump_fcontext).
 */
#include <gmprt.h>

#include "bench.h"

static gmp_waitgroup wg = GMP_WAITGROUP_INIT;
static long n;

static void yielder(void *arg)
{
	(void)arg;
	for (long i = 0; i < n; i++)
		gmp_yield();
	gmp_wg_done(&wg);
}

int main(int argc, char **argv)
{
	int64_t t0, el;
	int procs;

	n = bench_arg(argc, argv, 1, 10000000);
	procs = gmp_maxprocs(0);
	BENCH_CHECK(procs > 0, "gmp_maxprocs");
	if (procs != 1)
		BENCH_CHECK(gmp_maxprocs(1) > 0, "gmp_maxprocs(1)");
	bench_start_runtime();
	gmp_wg_add(&wg, 2);
	t0 = bench_now();
	BENCH_CHECK(gmp_go(yielder, NULL) > 0, "gmp_go");
	BENCH_CHECK(gmp_go(yielder, NULL) > 0, "gmp_go");
	gmp_wg_wait(&wg);
	el = bench_now() - t0;
	printf("%.1f\n", (double)el / n);
	return 0;
}
