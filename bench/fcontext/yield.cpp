// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
//
// fcontext yield round trip: the peer of bench/yield.c. Two contexts on one
// thread, main and a worker made with Boost.Context's make_fcontext on a
// 64 KiB malloc'd stack, hand control back and forth with jump_fcontext.
// One round trip is main -> worker -> main (two switches, as two goroutines
// each calling gmp_yield once). After 100,000 warm-up round trips it times
// N (default 10,000,000) and prints nanoseconds per round trip on stdout.
// Build: g++ -O2 yield.cpp -lboost_context
#include <boost/context/detail/fcontext.hpp>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace ctx = boost::context::detail;

static void worker(ctx::transfer_t t)
{
	for (;;)
		t = ctx::jump_fcontext(t.fctx, nullptr);
}

static long long now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000000;
	const std::size_t size = 64 * 1024;
	char *stack = static_cast<char *>(std::malloc(size));
	if (!stack || n <= 0)
		return 1;
	ctx::transfer_t t = { ctx::make_fcontext(stack + size, size, worker), nullptr };
	for (long i = 0; i < 100000; i++)
		t = ctx::jump_fcontext(t.fctx, nullptr);
	long long t0 = now_ns();
	for (long i = 0; i < n; i++)
		t = ctx::jump_fcontext(t.fctx, nullptr);
	long long el = now_ns() - t0;
	std::printf("%.1f\n", (double)el / n);
	return 0;
}
