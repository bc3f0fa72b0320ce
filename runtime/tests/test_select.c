/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * test_select.c - gmp_select: ready cases and the random choice among them,
 * default (timeout 0), timeouts, nil channels, closed channels, blocking
 * selects woken by senders, receivers, closers and timers, big selects, and
 * producers and consumers selecting across two Ps.  Timing bounds are loose
 * on purpose: the test machine is small and shared.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <gmprt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

static void settle(void)
{
	for (int i = 0; i < 20; i++)
		gmp_yield();
}

TEST(ready_recv_and_send)
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 1), *b = gmp_chan_make(sizeof(int), 1);
	int v = 5, got = 0;
	CHECK_EQ(gmp_chan_send(b, &v), 0);
	struct gmp_case cs[2] = {
		{ .chan = a, .op = GMP_RECV, .elem = &got, .ok = -1 },
		{ .chan = b, .op = GMP_RECV, .elem = &got, .ok = -1 },
	};
	CHECK_EQ(gmp_select(cs, 2, -1), 1);
	CHECK_EQ(cs[1].ok, 1);
	CHECK_EQ(got, 5);

	/* a is empty with room: only the send is ready */
	int out = 8;
	struct gmp_case cs2[2] = {
		{ .chan = b, .op = GMP_RECV, .elem = &got },
		{ .chan = a, .op = GMP_SEND, .elem = &out },
	};
	CHECK_EQ(gmp_select(cs2, 2, 0), 1);
	CHECK_EQ(gmp_chan_len(a), 1);
	CHECK_EQ(gmp_chan_recv(a, &got), 1);
	CHECK_EQ(got, 8);
	gmp_chan_free(a);
	gmp_chan_free(b);
}

TEST(default_when_nothing_ready)
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 0), *b = gmp_chan_make(sizeof(int), 1);
	int full = 1, got = 77;
	CHECK_EQ(gmp_chan_send(b, &full), 0);
	struct gmp_case cs[3] = {
		{ .chan = a, .op = GMP_RECV, .elem = &got, .ok = -1 },
		{ .chan = a, .op = GMP_SEND, .elem = &full },
		{ .chan = b, .op = GMP_SEND, .elem = &full },
	};
	for (int i = 0; i < 100; i++)
		CHECK_EQ(gmp_select(cs, 3, 0), -EAGAIN);
	CHECK_EQ(got, 77);
	CHECK_EQ(cs[0].ok, -1);
	CHECK_EQ(gmp_chan_len(b), 1);
	/* polling left nothing queued: an unbuffered trysend finds no receiver */
	CHECK_EQ(gmp_chan_trysend(a, &full), -EAGAIN);
	CHECK_EQ(gmp_select(NULL, 0, 0), -EAGAIN);
	gmp_chan_free(a);
	gmp_chan_free(b);
}

TEST(timeout)
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 0);
	int got;
	struct gmp_case cs[1] = { { .chan = a, .op = GMP_RECV, .elem = &got } };
	for (int i = 0; i < 3; i++) {
		int64_t t0 = gmp_now();
		CHECK_EQ(gmp_select(cs, 1, 20 * MS), -ETIMEDOUT);
		int64_t took = gmp_now() - t0;
		CHECK(took >= 19 * MS);		/* a timer never fires early */
		CHECK(took < 2000 * MS);	/* loose: a noisy, shared machine */
	}
	/* nothing left behind on a after the timeout */
	CHECK_EQ(gmp_chan_trysend(a, &got), -EAGAIN);
	gmp_chan_free(a);
}

TEST(no_cases_with_timeout_sleeps)
{
	int64_t t0 = gmp_now();
	CHECK_EQ(gmp_select(NULL, 0, 10 * MS), -ETIMEDOUT);
	CHECK(gmp_now() - t0 >= 9 * MS);
	struct gmp_case nil[2] = { { .chan = NULL, .op = GMP_RECV }, { .chan = NULL, .op = GMP_SEND } };
	t0 = gmp_now();
	CHECK_EQ(gmp_select(nil, 2, 10 * MS), -ETIMEDOUT);
	CHECK(gmp_now() - t0 >= 9 * MS);
	CHECK_EQ(gmp_select(nil, 2, 0), -EAGAIN);
}

TEST(null_chan_case_never_ready)
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 4);
	int v = 3, got = 0;
	struct gmp_case cs[3] = {
		{ .chan = NULL, .op = GMP_RECV, .elem = &got },
		{ .chan = a, .op = GMP_RECV, .elem = &got },
		{ .chan = NULL, .op = GMP_SEND, .elem = &v },
	};
	CHECK_EQ(gmp_select(cs, 3, 0), -EAGAIN);
	for (int i = 0; i < 200; i++) {
		CHECK_EQ(gmp_chan_send(a, &v), 0);
		CHECK_EQ(gmp_select(cs, 3, -1), 1);
		CHECK_EQ(cs[1].ok, 1);
	}
	gmp_chan_free(a);
}

TEST_OPTS(no_cases_blocks_forever, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "all goroutines are asleep - deadlock!")
{
	gmp_select(NULL, 0, -1);
	CHECK(!"select {} returned");
}

TEST_OPTS(only_nil_cases_block_forever, NEEDS_DEADLOCK_CHECK, .expect_status = 2, .expect_stderr = "select (no cases)")
{
	struct gmp_case nil[1] = { { .chan = NULL, .op = GMP_RECV } };
	gmp_select(nil, 1, -1);
	CHECK(!"select on nil channels returned");
}

TEST_OPTS(deadlock_in_select, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "all goroutines are asleep - deadlock!")
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 0);
	int v;
	struct gmp_case cs[2] = { { .chan = a, .op = GMP_RECV, .elem = &v },
				  { .chan = a, .op = GMP_SEND, .elem = &v } };
	gmp_select(cs, 2, -1);
	CHECK(!"select returned");
}

TEST(bad_arguments)
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 1);
	struct gmp_case cs[1] = { { .chan = a, .op = GMP_RECV } };
	CHECK_EQ(gmp_select(cs, -1, 0), -EINVAL);
	CHECK_EQ(gmp_select(NULL, 1, 0), -EINVAL);
	cs[0].op = 0;
	CHECK_EQ(gmp_select(cs, 1, 0), -EINVAL);
	cs[0].op = GMP_SEND; /* a send needs a value unless elements are empty */
	cs[0].elem = NULL;
	CHECK_EQ(gmp_select(cs, 1, 0), -EINVAL);
	CHECK_EQ(gmp_chan_len(a), 0);
	gmp_chan_free(a);
}

TEST(closed_channels)
{
	gmp_chan *a = gmp_chan_make(sizeof(long), 2);
	long v = 9, got = 1234;
	CHECK_EQ(gmp_chan_send(a, &v), 0);
	gmp_chan_close(a);
	struct gmp_case r[1] = { { .chan = a, .op = GMP_RECV, .elem = &got } };
	CHECK_EQ(gmp_select(r, 1, 0), 0); /* buffered value first */
	CHECK_EQ(r[0].ok, 1);
	CHECK_EQ(got, 9);
	for (int i = 0; i < 3; i++) {
		got = 1234;
		r[0].ok = -1;
		CHECK_EQ(gmp_select(r, 1, -1), 0);
		CHECK_EQ(r[0].ok, 0);
		CHECK_EQ(got, 0);
	}
	/* Go panics on a send to a closed channel; gmprt returns -EPIPE */
	struct gmp_case s[2] = { { .chan = a, .op = GMP_SEND, .elem = &v },
				 { .chan = NULL, .op = GMP_RECV } };
	CHECK_EQ(gmp_select(s, 2, 0), -EPIPE);
	CHECK_EQ(gmp_select(s, 2, -1), -EPIPE);
	gmp_chan_free(a);
}

/* Every ready case is chosen about equally often. */
static void fairness(int ncases)
{
	enum { TRIALS = 6000 };
	gmp_chan *c[4];
	struct gmp_case cs[4];
	int counts[4] = { 0 }, v = 0;
	for (int i = 0; i < ncases; i++) {
		c[i] = gmp_chan_make(sizeof(int), 1);
		cs[i] = (struct gmp_case){ .chan = c[i], .op = GMP_RECV, .elem = &v };
	}
	for (int t = 0; t < TRIALS; t++) {
		for (int i = 0; i < ncases; i++)
			gmp_chan_trysend(c[i], &i); /* refill; -EAGAIN when still full */
		int k = gmp_select(cs, ncases, 0);
		CHECK(k >= 0 && k < ncases);
		CHECK_EQ(v, k);
		counts[k]++;
	}
	for (int i = 0; i < ncases; i++) {
		/* mean TRIALS/ncases; the bounds are dozens of standard deviations wide */
		if (counts[i] < TRIALS / ncases * 6 / 10 || counts[i] > TRIALS / ncases * 14 / 10)
			harness_fail(__FILE__, __LINE__, "%d cases: case %d chosen %d of %d times",
				     ncases, i, counts[i], TRIALS);
		gmp_chan_free(c[i]);
	}
}

TEST(random_choice_among_ready_cases)
{
	fairness(2);
	fairness(3);
	fairness(4);
}

/* ---- blocking selects woken by the other side ---------------------------- */

struct peer {
	gmp_chan *c;
	int what;	/* 0 send v, 1 receive into v, 2 close */
	int v;
	int64_t delay_ns;
};

static void peer_act(void *p)
{
	struct peer *pe = p;
	if (pe->delay_ns)
		gmp_sleep(pe->delay_ns);
	else
		settle();
	if (pe->what == 0)
		CHECK_EQ(gmp_chan_send(pe->c, &pe->v), 0);
	else if (pe->what == 1)
		CHECK_EQ(gmp_chan_recv(pe->c, &pe->v), 1);
	else
		gmp_chan_close(pe->c);
}

static void blocking_wakeups(void)
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 0), *b = gmp_chan_make(sizeof(int), 0);
	int got = -1, out = 55;
	struct gmp_case cs[3] = {
		{ .chan = a, .op = GMP_RECV, .elem = &got, .ok = -1 },
		{ .chan = b, .op = GMP_RECV, .elem = &got, .ok = -1 },
		{ .chan = a, .op = GMP_SEND, .elem = &out },
	};
	/* a sender on b */
	struct peer p1 = { .c = b, .what = 0, .v = 31 };
	go(peer_act, &p1);
	CHECK_EQ(gmp_select(cs, 3, -1), 1);
	CHECK_EQ(cs[1].ok, 1);
	CHECK_EQ(got, 31);

	/* a receiver on a takes our send case */
	struct peer p2 = { .c = a, .what = 1, .delay_ns = 1 * MS };
	go(peer_act, &p2);
	CHECK_EQ(gmp_select(cs, 3, 5000 * MS), 2);
	settle();
	gmp_sleep(2 * MS);
	CHECK_EQ(p2.v, 55);

	/* a close of b, with a timeout armed */
	struct peer p3 = { .c = b, .what = 2, .delay_ns = 1 * MS };
	got = 99;
	go(peer_act, &p3);
	struct gmp_case two[2] = { cs[0], cs[1] };
	CHECK_EQ(gmp_select(two, 2, 5000 * MS), 1);
	CHECK_EQ(two[1].ok, 0);
	CHECK_EQ(got, 0);

	/* a close of a wakes the send case with -EPIPE */
	struct peer p4 = { .c = a, .what = 2 };
	go(peer_act, &p4);
	struct gmp_case snd[1] = { { .chan = a, .op = GMP_SEND, .elem = &out } };
	CHECK_EQ(gmp_select(snd, 1, -1), -EPIPE);
	gmp_sleep(2 * MS);
	gmp_chan_free(a);
	gmp_chan_free(b);
}

TEST_OPTS(blocking_woken_by_peers_one_proc, .env = "GMP_MAXPROCS=1")
{
	blocking_wakeups();
}

TEST_OPTS(blocking_woken_by_peers_two_procs, .env = "GMP_MAXPROCS=2")
{
	blocking_wakeups();
}

/* Two cases on one channel: after one fires, the other sudog must be gone
 * from the queue (else a later sender would "hand off" to a dead select). */
TEST_OPTS(same_channel_twice, .env = "GMP_MAXPROCS=1")
{
	gmp_chan *a = gmp_chan_make(sizeof(int), 0);
	int x = -1, y = -1;
	struct gmp_case cs[2] = {
		{ .chan = a, .op = GMP_RECV, .elem = &x },
		{ .chan = a, .op = GMP_RECV, .elem = &y },
	};
	for (int i = 0; i < 50; i++) {
		struct peer p = { .c = a, .what = 0, .v = i };
		go(peer_act, &p);
		x = y = -1;
		int k = gmp_select(cs, 2, -1);
		CHECK(k == 0 || k == 1);
		CHECK_EQ(k == 0 ? x : y, i);
		CHECK_EQ(k == 0 ? y : x, -1);
		settle();
		CHECK_EQ(gmp_chan_trysend(a, &i), -EAGAIN);
	}
	/* and closing wakes such a select once */
	struct peer pc = { .c = a, .what = 2 };
	go(peer_act, &pc);
	int k = gmp_select(cs, 2, -1);
	CHECK(k == 0 || k == 1);
	CHECK_EQ(cs[k].ok, 0);
	gmp_chan_free(a);
}

/* More cases than the on-stack scratch holds. */
TEST(many_cases)
{
	enum { N = 100 };
	static gmp_chan *c[N];
	static struct gmp_case cs[N];
	static int vals[N];
	for (int i = 0; i < N; i++) {
		c[i] = gmp_chan_make(sizeof(int), 0);
		cs[i] = (struct gmp_case){ .chan = c[i], .op = GMP_RECV, .elem = &vals[i] };
	}
	CHECK_EQ(gmp_select(cs, N, 0), -EAGAIN);
	struct peer p = { .c = c[77], .what = 0, .v = 7777 };
	go(peer_act, &p);
	CHECK_EQ(gmp_select(cs, N, -1), 77);
	CHECK_EQ(vals[77], 7777);
	CHECK_EQ(gmp_select(cs, N, 2 * MS), -ETIMEDOUT);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(gmp_chan_trysend(c[i], &i), -EAGAIN); /* nothing left queued */
		gmp_chan_free(c[i]);
	}
}

/* ---- races: timers against senders, frees right after a fire -------------- */

struct ticker {
	gmp_chan *c;
	int n;
	gmp_chan *done;
};

static void tick_sender(void *p)
{
	struct ticker *t = p;
	for (int i = 0; i < t->n; i++) {
		CHECK_EQ(gmp_chan_send(t->c, &i), 0);
		if (i % 3 == 0)
			gmp_sleep(20 * 1000);
	}
	CHECK_EQ(gmp_chan_send(t->done, NULL), 0);
}

/* Short timeouts racing with a sender: each value arrives exactly once and
 * in order, whether the select that was waiting for it timed out or not. */
TEST_OPTS(timeout_races_sender, .env = "GMP_MAXPROCS=2")
{
	enum { N = 3000 };
	gmp_chan *c = gmp_chan_make(sizeof(int), 0), *done = gmp_chan_make(0, 1);
	struct ticker t = { c, N, done };
	go(tick_sender, &t);
	int next = 0, v, timeouts = 0;
	struct gmp_case cs[1] = { { .chan = c, .op = GMP_RECV, .elem = &v } };
	while (next < N) {
		int64_t to = 1000 + (int64_t)(next % 7) * 7000; /* 1..43 us */
		int r = gmp_select(cs, 1, to);
		if (r == -ETIMEDOUT) {
			timeouts++;
			continue;
		}
		CHECK_EQ(r, 0);
		CHECK_EQ(v, next);
		next++;
	}
	CHECK_EQ(gmp_chan_recv(done, NULL), 1);
	CHECK_EQ(gmp_chan_tryrecv(c, &v), -EAGAIN);
	fprintf(stderr, "%d timeouts\n", timeouts);
	gmp_chan_free(c);
	gmp_chan_free(done);
}

struct free_peer {
	gmp_chan *ack;
	int iters;
};

static void send_then_free(void *p)
{
	struct free_peer *fp = p;
	for (int i = 0; i < fp->iters; i++) {
		gmp_chan *c;
		CHECK_EQ(gmp_chan_recv(fp->ack, &c), 1);
		if (i & 1)
			gmp_yield();
		CHECK_EQ(gmp_chan_send(c, &i), 0);
		gmp_chan_free(c); /* the select that received may still be waking */
	}
}

/* The select relocks only the channels that did not fire: the sender may
 * free its channel as soon as its send returned. */
TEST_OPTS(sender_frees_after_select_received, .env = "GMP_MAXPROCS=2")
{
	enum { ITERS = 3000 };
	gmp_chan *ack = gmp_chan_make(sizeof(gmp_chan *), 0);
	gmp_chan *never = gmp_chan_make(sizeof(int), 0);
	struct free_peer fp = { ack, ITERS };
	go(send_then_free, &fp);
	for (int i = 0; i < ITERS; i++) {
		gmp_chan *c = gmp_chan_make(sizeof(int), 0);
		CHECK_EQ(gmp_chan_send(ack, &c), 0);
		int v = -1;
		struct gmp_case cs[3] = {
			{ .chan = never, .op = GMP_RECV, .elem = &v },
			{ .chan = c, .op = GMP_RECV, .elem = &v },
			{ .chan = c, .op = GMP_RECV, .elem = &v },
		};
		int k = gmp_select(cs, 3, (i % 3) ? -1 : 5000 * MS);
		CHECK(k == 1 || k == 2);
		CHECK_EQ(v, i);
	}
	gmp_chan_free(ack);
	gmp_chan_free(never);
}

/* ---- producers and consumers selecting on two Ps -------------------------- */

enum { SP_PRODUCERS = 6, SP_CONSUMERS = 6, SP_PER_PRODUCER = 4000 };

struct sel_stress {
	gmp_chan *data[2];
	gmp_chan *quit;		/* closed once every producer is done */
	gmp_chan *results;
	_Atomic int producers_left;
	_Atomic int next_id;
};

static void sp_producer(void *p)
{
	struct sel_stress *s = p;
	uint64_t id = (uint64_t)atomic_fetch_add(&s->next_id, 1);
	for (uint64_t i = 0; i < SP_PER_PRODUCER; i++) {
		uint64_t v = (id << 32) | i;
		struct gmp_case cs[2] = {
			{ .chan = s->data[0], .op = GMP_SEND, .elem = &v },
			{ .chan = s->data[1], .op = GMP_SEND, .elem = &v },
		};
		int k = gmp_select(cs, 2, -1);
		CHECK(k == 0 || k == 1);
	}
	if (atomic_fetch_sub(&s->producers_left, 1) == 1)
		gmp_chan_close(s->quit);
}

/* Receives until quit is closed and both data channels are drained; idles
 * in short timeouts now and then to mix timers into the races. */
static void sp_consumer(void *p)
{
	struct sel_stress *s = p;
	uint64_t v, res[2] = { 0, 0 };
	bool quitting = false;
	for (int round = 0;; round++) {
		struct gmp_case cs[3] = {
			{ .chan = s->data[0], .op = GMP_RECV, .elem = &v },
			{ .chan = s->data[1], .op = GMP_RECV, .elem = &v },
			{ .chan = quitting ? NULL : s->quit, .op = GMP_RECV },
		};
		int k = gmp_select(cs, 3, quitting ? 0 : (round % 5 == 0 ? 50 * 1000 : -1));
		if (k == -ETIMEDOUT)
			continue;
		if (k == -EAGAIN)
			break; /* quit closed and nothing left */
		CHECK(k >= 0 && k <= 2);
		if (k == 2) {
			CHECK_EQ(cs[2].ok, 0);
			quitting = true;
			continue;
		}
		CHECK_EQ(cs[k].ok, 1);
		res[0]++;
		res[1] += v * 0x9e3779b97f4a7c15ull;
	}
	CHECK_EQ(gmp_chan_send(s->results, res), 0);
}

static void select_stress_round(size_t cap)
{
	struct sel_stress s = { .producers_left = SP_PRODUCERS };
	s.data[0] = gmp_chan_make(sizeof(uint64_t), cap);
	s.data[1] = gmp_chan_make(sizeof(uint64_t), cap);
	s.quit = gmp_chan_make(0, 0);
	s.results = gmp_chan_make(2 * sizeof(uint64_t), SP_CONSUMERS);
	for (int i = 0; i < SP_CONSUMERS; i++)
		go(sp_consumer, &s);
	for (int i = 0; i < SP_PRODUCERS; i++)
		go(sp_producer, &s);
	uint64_t want = 0, count = 0, sum = 0;
	for (uint64_t id = 0; id < SP_PRODUCERS; id++)
		for (uint64_t i = 0; i < SP_PER_PRODUCER; i++)
			want += ((id << 32) | i) * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < SP_CONSUMERS; i++) {
		uint64_t res[2];
		CHECK_EQ(gmp_chan_recv(s.results, res), 1);
		count += res[0];
		sum += res[1];
	}
	/* quit closes only after every producer's last select returned, so each
	 * value is with a consumer or in a buffer by then, and a consumer stops
	 * only once a poll finds both buffers empty. */
	CHECK_EQ(count, (uint64_t)SP_PRODUCERS * SP_PER_PRODUCER);
	CHECK(sum == want);
	for (int i = 0; i < 2; i++)
		gmp_chan_free(s.data[i]);
	gmp_chan_free(s.quit);
	gmp_chan_free(s.results);
}

TEST(stress_select_two_procs)
{
	gmp_maxprocs(2);
	select_stress_round(0);
	select_stress_round(8);
}

/* ---- threads gmprt did not start ----------------------------------------- */

struct foreign {
	gmp_chan *c;
	_Atomic int adopted;
	int timeouts, got;
};

static void *foreign_selecter(void *p)
{
	struct foreign *f = p;
	int v = 0;
	struct gmp_case cs[2] = { { .chan = f->c, .op = GMP_RECV, .elem = &v },
				  { .chan = NULL, .op = GMP_RECV } };
	int64_t t0 = gmp_now();
	CHECK_EQ(gmp_select(cs, 2, 5 * MS), -ETIMEDOUT); /* a timer from a thread with no P */
	CHECK(gmp_now() - t0 >= 4 * MS);
	atomic_store(&f->adopted, 1); /* adopted (and done timing out) before main parks */
	for (;;) {
		int k = gmp_select(cs, 2, 200 * MS);
		if (k == -ETIMEDOUT) {
			f->timeouts++;
			continue;
		}
		CHECK_EQ(k, 0);
		if (!cs[0].ok)
			break;
		f->got += v;
	}
	return NULL;
}

TEST(foreign_thread_selects)
{
	struct foreign f = { .c = gmp_chan_make(sizeof(int), 0) };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, foreign_selecter, &f), 0);
	while (!atomic_load(&f.adopted))
		gmp_yield();
	for (int i = 1; i <= 100; i++)
		CHECK_EQ(gmp_chan_send(f.c, &i), 0);
	gmp_chan_close(f.c);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(f.got, 5050);
	gmp_chan_free(f.c);
}
