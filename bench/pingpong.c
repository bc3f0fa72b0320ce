/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * pingpong - unbuffered channel round trip.  A driver sends an int on an
 * unbuffered channel, a player goroutine receives it and sends it back (+1)
 * on a second unbuffered channel; N times (default 1,000,000) after 10,000
 * warm-up round trips.  Mode "go" (default) runs the driver in a spawned
 * goroutine while main waits; mode "main" runs it in main() itself
 * (goroutine 1, on the main thread's stack), which must be as fast.  Only
 * the driver's timed loop is on the clock; it prints nanoseconds per round
 * trip.  Peer: bench/go/pingpong with the same mode.
 */
#include "bench.h"

#include <gmprt.h>

#define WARMUP 10000

static gmp_chan *ping, *pong;
static long n;

static void player(void *arg)
{
	long v;

	(void)arg;
	for (long i = 0; i < WARMUP + n; i++) {
		BENCH_CHECK(gmp_chan_recv(ping, &v) == 1, "gmp_chan_recv");
		v++;
		BENCH_CHECK(gmp_chan_send(pong, &v) == 0, "gmp_chan_send");
	}
}

static int64_t drive(void)
{
	int64_t t0;
	long v;

	for (long i = 0; i < WARMUP; i++) {
		BENCH_CHECK(gmp_chan_send(ping, &i) == 0, "gmp_chan_send");
		BENCH_CHECK(gmp_chan_recv(pong, &v) == 1, "gmp_chan_recv");
	}
	t0 = bench_now();
	for (long i = 0; i < n; i++) {
		BENCH_CHECK(gmp_chan_send(ping, &i) == 0, "gmp_chan_send");
		BENCH_CHECK(gmp_chan_recv(pong, &v) == 1 && v == i + 1, "gmp_chan_recv");
	}
	return bench_now() - t0;
}

static gmp_chan *done;

static void driver(void *arg)
{
	int64_t el = drive();

	(void)arg;
	BENCH_CHECK(gmp_chan_send(done, &el) == 0, "gmp_chan_send");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "go";
	int64_t el;

	n = bench_arg(argc, argv, 2, 1000000);
	ping = gmp_chan_make(sizeof(long), 0);
	pong = gmp_chan_make(sizeof(long), 0);
	done = gmp_chan_make(sizeof(int64_t), 0);
	BENCH_CHECK(ping && pong && done, "gmp_chan_make");
	BENCH_CHECK(gmp_go(player, NULL) > 0, "gmp_go");
	if (strcmp(mode, "main") == 0) {
		el = drive();
	} else if (strcmp(mode, "go") == 0) {
		BENCH_CHECK(gmp_go(driver, NULL) > 0, "gmp_go");
		BENCH_CHECK(gmp_chan_recv(done, &el) == 1, "gmp_chan_recv");
	} else {
		fprintf(stderr, "usage: pingpong [go|main] [N]\n");
		return 2;
	}
	printf("%.1f\n", (double)el / n);
	return 0;
}
