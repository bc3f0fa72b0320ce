/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * skynet - a tree of goroutines with fan-out 10 and 1,000,000 leaves
 * (1,111,111 goroutines in all).  A leaf sends its index on its parent's
 * unbuffered channel; an inner node makes one unbuffered channel, starts its
 * 10 children on it (their arguments live in the node's own frame, which
 * outlives them because the node waits for all 10 values), adds up what it
 * receives, frees the channel and sends the sum up.  The clock runs, once
 * the runtime has started (bench_start_runtime), from starting the root
 * until main receives the total (checked against 499999500000); it prints
 * seconds.  Peer: bench/go/skynet.
 */
#include <gmprt.h>

#include "bench.h"

#define FANOUT 10
#ifndef LEAVES
#define LEAVES 1000000L
#endif

struct node {
	gmp_chan *up;
	int64_t first, count;
};

static void node(void *arg)
{
	struct node *me = arg;
	struct node kids[FANOUT];
	int64_t sum = 0, v;
	gmp_chan *down;

	if (me->count == 1) {
		v = me->first;
		BENCH_CHECK(gmp_chan_send(me->up, &v) == 0, "gmp_chan_send");
		return;
	}
	down = gmp_chan_make(sizeof(int64_t), 0);
	BENCH_CHECK(down, "gmp_chan_make");
	for (int i = 0; i < FANOUT; i++) {
		kids[i].up = down;
		kids[i].count = me->count / FANOUT;
		kids[i].first = me->first + i * kids[i].count;
		BENCH_CHECK(gmp_go(node, &kids[i]) > 0, "gmp_go");
	}
	for (int i = 0; i < FANOUT; i++) {
		BENCH_CHECK(gmp_chan_recv(down, &v) == 1, "gmp_chan_recv");
		sum += v;
	}
	gmp_chan_free(down);
	BENCH_CHECK(gmp_chan_send(me->up, &sum) == 0, "gmp_chan_send");
}

int main(void)
{
	struct node root;
	int64_t t0, el, sum = 0;

	root.up = gmp_chan_make(sizeof(int64_t), 0);
	BENCH_CHECK(root.up, "gmp_chan_make");
	root.first = 0;
	root.count = LEAVES;
	bench_start_runtime();
	t0 = bench_now();
	BENCH_CHECK(gmp_go(node, &root) > 0, "gmp_go");
	BENCH_CHECK(gmp_chan_recv(root.up, &sum) == 1, "gmp_chan_recv");
	el = bench_now() - t0;
	if (sum != LEAVES * (LEAVES - 1) / 2) {
		fprintf(stderr, "skynet: wrong sum %lld\n", (long long)sum);
		return 1;
	}
	printf("%.3f\n", el / 1e9);
	return 0;
}
