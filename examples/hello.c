/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * hello.c - the seed's first program: two goroutines taking turns on one
 * processor.
 *
 * With one P, only one goroutine runs at a time, and gmp_yield (Go's
 * runtime.Gosched) hands the P to the other, so the output alternates:
 * "Main: 0", "Worker: 0", "Main: 1", ... "Worker: 4".  main() is goroutine
 * 1; the worker tells it that it has finished over a channel.
 */
#include <gmprt.h>

#include <stdbool.h>
#include <stdio.h>

static void worker(void *arg)
{
	gmp_chan *done = arg;
	for (int i = 0; i < 5; i++) {
		printf("Worker: %d\n", i);
		gmp_yield();	/* let the main goroutine run on the single P */
	}
	bool finished = true;
	gmp_chan_send(done, &finished);
}

int main(void)
{
	gmp_maxprocs(1);	/* one processor: cooperative turns become visible */

	gmp_chan *done = gmp_chan_make(sizeof(bool), 0);
	if (!done) {
		perror("gmp_chan_make");
		return 1;
	}
	gmp_go(worker, done);

	for (int i = 0; i < 5; i++) {
		printf("Main: %d\n", i);
		gmp_yield();	/* let the worker run */
	}

	bool finished;
	gmp_chan_recv(done, &finished);	/* wait for the worker */
	gmp_chan_free(done);
	return 0;
}
