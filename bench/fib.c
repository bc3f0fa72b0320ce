/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * fib - fork-join speed-up from 1 P to P Ps (default 2).  pfib(k) runs
 * pfib(k-1) in a new goroutine, computes pfib(k-2) itself and joins on a
 * waitgroup (the child's arguments and result live in the parent's frame);
 * at or below the cutoff it recurses serially.  After a warm-up of
 * pfib(N-4) at P Ps it times pfib(N) under gmp_maxprocs(1) and then under
 * gmp_maxprocs(P), in the same process, and prints the speed-up t(1)/t(P)
 * (the two times go to stderr).  Same N and cutoff as the peer,
 * bench/go/fib.
 */
#include "bench.h"

#include <gmprt.h>

#ifndef N
#define N 40
#endif
#ifndef CUTOFF
#define CUTOFF 18
#endif

static int64_t fib(int k)
{
	return k < 2 ? k : fib(k - 1) + fib(k - 2);
}

static int64_t fib_iter(int k)
{
	int64_t a = 0, b = 1, t;

	for (; k > 0; k--) {
		t = a + b;
		a = b;
		b = t;
	}
	return a;
}

struct job {
	int k;
	int64_t result;
	gmp_waitgroup wg;
};

static int64_t pfib(int k);

static void child(void *arg)
{
	struct job *j = arg;

	j->result = pfib(j->k);
	gmp_wg_done(&j->wg);
}

static int64_t pfib(int k)
{
	struct job j;
	int64_t b;

	if (k <= CUTOFF)
		return fib(k);
	j = (struct job){ .k = k - 1, .result = 0, .wg = GMP_WAITGROUP_INIT };
	gmp_wg_add(&j.wg, 1);
	BENCH_CHECK(gmp_go(child, &j) > 0, "gmp_go");
	b = pfib(k - 2);
	gmp_wg_wait(&j.wg);
	return j.result + b;
}

static double timed(int procs, int k)
{
	int64_t t0, r;
	double el;

	BENCH_CHECK(gmp_maxprocs(procs) > 0, "gmp_maxprocs");
	BENCH_CHECK(gmp_maxprocs(0) == procs, "gmp_maxprocs took effect");
	t0 = bench_now();
	r = pfib(k);
	el = (bench_now() - t0) / 1e9;
	BENCH_CHECK(r == fib_iter(k), "fib result");
	return el;
}

int main(int argc, char **argv)
{
	int p = (int)bench_arg(argc, argv, 1, 2);
	double t1, tp;

	timed(p, N - 4);
	t1 = timed(1, N);
	tp = timed(p, N);
	fprintf(stderr, "fib(%d) cutoff %d: 1 P %.3f s, %d Ps %.3f s\n", N, CUTOFF, t1, p, tp);
	printf("%.2f\n", t1 / tp);
	return 0;
}
