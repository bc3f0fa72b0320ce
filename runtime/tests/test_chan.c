/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * test_chan.c - channel semantics: hand-off, buffering and order, close,
 * the non-blocking forms, bad arguments, and races between many goroutines
 * on two Ps (values neither lost nor duplicated, nothing left hanging), plus
 * the contract of gmp_chan_free (run under SAN=address to see it checked).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <gmprt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

/* Lets every other runnable goroutine run until it blocks (with one P). */
static void settle(void)
{
	for (int i = 0; i < 20; i++)
		gmp_yield();
}

/* ---- unbuffered ---------------------------------------------------------- */

struct counter_arg {
	gmp_chan *c;
	int n;
	_Atomic int sent;
};

static void send_n(void *p)
{
	struct counter_arg *a = p;
	for (int i = 0; i < a->n; i++) {
		CHECK_EQ(gmp_chan_send(a->c, &i), 0);
		atomic_fetch_add(&a->sent, 1);
	}
}

TEST_OPTS(unbuffered_handoff, .env = "GMP_MAXPROCS=1")
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	CHECK(c != NULL);
	CHECK_EQ(gmp_chan_cap(c), 0);
	struct counter_arg a = { .c = c, .n = 1000 };
	go(send_n, &a);
	settle();
	/* The sender is parked in its first send: nobody has received yet. */
	CHECK_EQ(atomic_load(&a.sent), 0);
	CHECK_EQ(gmp_chan_len(c), 0);
	for (int i = 0; i < a.n; i++) {
		int v = -1;
		CHECK_EQ(gmp_chan_recv(c, &v), 1);
		CHECK_EQ(v, i);
	}
	settle();
	CHECK_EQ(atomic_load(&a.sent), a.n);
	gmp_chan_free(c);
}

struct recv_arg {
	gmp_chan *c;
	gmp_chan *out;
};

static void recv_forward(void *p)
{
	struct recv_arg *a = p;
	long v = -1;
	int r = gmp_chan_recv(a->c, &v);
	long res[2] = { r, v };
	CHECK_EQ(gmp_chan_send(a->out, res), 0);
}

TEST_OPTS(unbuffered_receiver_first, .env = "GMP_MAXPROCS=1")
{
	gmp_chan *c = gmp_chan_make(sizeof(long), 0);
	gmp_chan *out = gmp_chan_make(2 * sizeof(long), 1);
	struct recv_arg a = { c, out };
	go(recv_forward, &a);
	settle();
	long v = 42;
	/* Hands off to the parked receiver.  Its thread may still be on its way
	 * there (under a sanitizer, blocked in the kernel long enough to lose
	 * the P), so give it a few seconds rather than a count of yields. */
	int r;
	int64_t give_up = gmp_now() + 5000 * MS;
	while ((r = gmp_chan_trysend(c, &v)) == -EAGAIN && gmp_now() < give_up)
		gmp_sleep(MS);
	CHECK_EQ(r, 0);
	CHECK_EQ(gmp_chan_trysend(c, &v), -EAGAIN);
	long res[2];
	CHECK_EQ(gmp_chan_recv(out, res), 1);
	CHECK_EQ(res[0], 1);
	CHECK_EQ(res[1], 42);
	gmp_chan_free(c);
	gmp_chan_free(out);
}

/* ---- buffered ------------------------------------------------------------ */

TEST(buffered_fifo)
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 4);
	CHECK_EQ(gmp_chan_cap(c), 4);
	for (int round = 0; round < 3; round++) { /* wraps the ring */
		for (int i = 0; i < 4; i++) {
			int v = round * 10 + i;
			CHECK_EQ(gmp_chan_trysend(c, &v), 0);
			CHECK_EQ(gmp_chan_len(c), i + 1);
		}
		int v = 99;
		CHECK_EQ(gmp_chan_trysend(c, &v), -EAGAIN);
		for (int i = 0; i < 2; i++) {
			CHECK_EQ(gmp_chan_recv(c, &v), 1);
			CHECK_EQ(v, round * 10 + i);
		}
		CHECK_EQ(gmp_chan_len(c), 2);
		CHECK_EQ(gmp_chan_tryrecv(c, &v), 1);
		CHECK_EQ(v, round * 10 + 2);
		CHECK_EQ(gmp_chan_tryrecv(c, &v), 1);
		CHECK_EQ(v, round * 10 + 3);
		CHECK_EQ(gmp_chan_tryrecv(c, &v), -EAGAIN);
		CHECK_EQ(gmp_chan_len(c), 0);
	}
	gmp_chan_free(c);
}

struct one_send {
	gmp_chan *c;
	int v;
	_Atomic int done;
};

static void send_one(void *p)
{
	struct one_send *a = p;
	CHECK_EQ(gmp_chan_send(a->c, &a->v), 0);
	atomic_store(&a->done, 1);
}

/* A receiver taking from a full buffer pulls the first waiting sender's value
 * into the ring, so values come out in the order they were sent. */
TEST_OPTS(buffered_order_with_waiting_senders, .env = "GMP_MAXPROCS=1")
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 2);
	int v0 = 0, v1 = 1;
	CHECK_EQ(gmp_chan_send(c, &v0), 0);
	CHECK_EQ(gmp_chan_send(c, &v1), 0);
	struct one_send s[3];
	for (int i = 0; i < 3; i++) {
		s[i] = (struct one_send){ .c = c, .v = 100 + i };
		go(send_one, &s[i]);
		settle(); /* parks in order */
		CHECK_EQ(atomic_load(&s[i].done), 0);
	}
	int want[] = { 0, 1, 100, 101, 102 };
	for (int i = 0; i < 5; i++) {
		int v = -1;
		CHECK_EQ(gmp_chan_recv(c, &v), 1);
		CHECK_EQ(v, want[i]);
		if (i < 3)
			CHECK_EQ(gmp_chan_len(c), 2); /* refilled by a waiting sender */
	}
	settle();
	for (int i = 0; i < 3; i++)
		CHECK_EQ(atomic_load(&s[i].done), 1);
	CHECK_EQ(gmp_chan_len(c), 0);
	gmp_chan_free(c);
}

/* ---- close --------------------------------------------------------------- */

struct closer_arg {
	gmp_chan *c;
	gmp_chan *out;
};

static void recv_report(void *p)
{
	struct closer_arg *a = p;
	long v = 0x5a5a5a5a;
	int r = gmp_chan_recv(a->c, &v);
	long res[2] = { r, v };
	CHECK_EQ(gmp_chan_send(a->out, res), 0);
}

static void send_report(void *p)
{
	struct closer_arg *a = p;
	long v = 7;
	long res[2] = { gmp_chan_send(a->c, &v), 0 };
	CHECK_EQ(gmp_chan_send(a->out, res), 0);
}

static void close_wakes(bool senders, size_t cap, int maxprocs)
{
	enum { N = 20 };
	gmp_maxprocs(maxprocs);
	gmp_chan *c = gmp_chan_make(sizeof(long), cap);
	gmp_chan *out = gmp_chan_make(2 * sizeof(long), N);
	struct closer_arg a = { c, out };
	long fill = 1;
	for (size_t i = 0; senders && i < cap; i++)
		CHECK_EQ(gmp_chan_send(c, &fill), 0);
	for (int i = 0; i < N; i++)
		go(senders ? send_report : recv_report, &a);
	gmp_sleep(20 * 1000 * 1000); /* let them all park */
	CHECK_EQ(gmp_chan_len(out), 0);
	gmp_chan_close(c);
	for (int i = 0; i < N; i++) {
		long res[2];
		CHECK_EQ(gmp_chan_recv(out, res), 1);
		if (senders) {
			CHECK_EQ(res[0], -EPIPE);
		} else {
			CHECK_EQ(res[0], 0);
			CHECK_EQ(res[1], 0); /* zero value */
		}
	}
	if (senders) { /* the buffered values survive the close */
		for (size_t i = 0; i < cap; i++) {
			long v = 0;
			CHECK_EQ(gmp_chan_recv(c, &v), 1);
			CHECK_EQ(v, 1);
		}
		long v = 9;
		CHECK_EQ(gmp_chan_recv(c, &v), 0);
		CHECK_EQ(v, 0);
	}
	gmp_chan_free(c);
	gmp_chan_free(out);
}

TEST(close_wakes_all_receivers)
{
	close_wakes(false, 0, 1);
	close_wakes(false, 3, 2);
}

TEST(close_wakes_all_senders)
{
	close_wakes(true, 0, 1);
	close_wakes(true, 3, 2);
}

TEST(recv_closed_after_drain)
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 3);
	int v = 5;
	CHECK_EQ(gmp_chan_send(c, &v), 0);
	v = 6;
	CHECK_EQ(gmp_chan_send(c, &v), 0);
	gmp_chan_close(c);
	CHECK_EQ(gmp_chan_send(c, &v), -EPIPE);
	CHECK_EQ(gmp_chan_trysend(c, &v), -EPIPE);
	CHECK_EQ(gmp_chan_len(c), 2);
	CHECK_EQ(gmp_chan_recv(c, &v), 1);
	CHECK_EQ(v, 5);
	CHECK_EQ(gmp_chan_tryrecv(c, &v), 1);
	CHECK_EQ(v, 6);
	for (int i = 0; i < 3; i++) {
		v = 77;
		CHECK_EQ(gmp_chan_recv(c, &v), 0);
		CHECK_EQ(v, 0);
		v = 77;
		CHECK_EQ(gmp_chan_tryrecv(c, &v), 0);
		CHECK_EQ(v, 0);
	}
	CHECK_EQ(gmp_chan_recv(c, NULL), 0);
	gmp_chan_free(c);

	gmp_chan *u = gmp_chan_make(sizeof(int), 0);
	gmp_chan_close(u);
	CHECK_EQ(gmp_chan_send(u, &v), -EPIPE);
	CHECK_EQ(gmp_chan_recv(u, &v), 0);
	gmp_chan_free(u);
}

TEST_OPTS(double_close_is_fatal, .expect_status = 2, .expect_stderr = "close of closed channel")
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 1);
	gmp_chan_close(c);
	gmp_chan_close(c);
}

/* ---- non-blocking forms and arguments ------------------------------------ */

static void recv_one_discard(void *p)
{
	struct closer_arg *a = p;
	long res[2] = { gmp_chan_recv(a->c, NULL), 0 };
	gmp_chan_send(a->out, res);
}

TEST_OPTS(try_ops, .env = "GMP_MAXPROCS=1")
{
	gmp_chan *c = gmp_chan_make(sizeof(long), 0);
	gmp_chan *out = gmp_chan_make(2 * sizeof(long), 4);
	long v = 3;
	CHECK_EQ(gmp_chan_trysend(c, &v), -EAGAIN);
	CHECK_EQ(gmp_chan_tryrecv(c, &v), -EAGAIN);
	CHECK_EQ(v, 3);

	/* a parked sender can be received from without blocking */
	gmp_chan *ci = gmp_chan_make(sizeof(int), 0);
	struct one_send s = { .c = ci, .v = 11 };
	go(send_one, &s);
	settle();
	int iv = 0;
	CHECK_EQ(gmp_chan_tryrecv(ci, &iv), 1);
	CHECK_EQ(iv, 11);
	CHECK_EQ(gmp_chan_tryrecv(ci, &iv), -EAGAIN);
	settle();
	CHECK_EQ(atomic_load(&s.done), 1);

	/* a receiver that discards the value (elem NULL) */
	struct closer_arg a = { c, out };
	go(recv_one_discard, &a);
	settle();
	CHECK_EQ(gmp_chan_trysend(c, &v), 0);
	long res[2];
	CHECK_EQ(gmp_chan_recv(out, res), 1);
	CHECK_EQ(res[0], 1);

	/* buffered: tryrecv with NULL elem drops the value */
	gmp_chan *b = gmp_chan_make(sizeof(long), 1);
	CHECK_EQ(gmp_chan_trysend(b, &v), 0);
	CHECK_EQ(gmp_chan_tryrecv(b, NULL), 1);
	CHECK_EQ(gmp_chan_len(b), 0);
	gmp_chan_free(b);
	gmp_chan_free(c);
	gmp_chan_free(ci);
	gmp_chan_free(out);
}

TEST(null_channel)
{
	int v = 1;
	CHECK_EQ(gmp_chan_send(NULL, &v), -EINVAL);
	CHECK_EQ(gmp_chan_recv(NULL, &v), -EINVAL);
	CHECK_EQ(gmp_chan_trysend(NULL, &v), -EINVAL);
	CHECK_EQ(gmp_chan_tryrecv(NULL, &v), -EINVAL);
	CHECK_EQ(gmp_chan_len(NULL), 0);
	CHECK_EQ(gmp_chan_cap(NULL), 0);
	gmp_chan_close(NULL);
	gmp_chan_free(NULL);
	/* a value to send is required unless elements are empty */
	gmp_chan *c = gmp_chan_make(sizeof(int), 1);
	CHECK_EQ(gmp_chan_send(c, NULL), -EINVAL);
	CHECK_EQ(gmp_chan_trysend(c, NULL), -EINVAL);
	gmp_chan_free(c);
}

static void close_after_sleep(void *p)
{
	gmp_sleep(5 * 1000 * 1000);
	gmp_chan_close(p);
}

/* chan struct{}: a counter of events, and a done channel broadcast by close. */
TEST(elem_size_zero)
{
	gmp_chan *c = gmp_chan_make(0, 3);
	CHECK(c != NULL);
	CHECK_EQ(gmp_chan_send(c, NULL), 0);
	CHECK_EQ(gmp_chan_send(c, "ignored"), 0);
	CHECK_EQ(gmp_chan_trysend(c, NULL), 0);
	CHECK_EQ(gmp_chan_trysend(c, NULL), -EAGAIN);
	CHECK_EQ(gmp_chan_len(c), 3);
	char byte = 'x';
	CHECK_EQ(gmp_chan_recv(c, &byte), 1);
	CHECK_EQ(byte, 'x'); /* nothing is written */
	CHECK_EQ(gmp_chan_recv(c, NULL), 1);
	CHECK_EQ(gmp_chan_tryrecv(c, NULL), 1);
	CHECK_EQ(gmp_chan_tryrecv(c, NULL), -EAGAIN);
	gmp_chan_free(c);

	gmp_chan *done = gmp_chan_make(0, 0);
	CHECK(done != NULL);
	CHECK_EQ(gmp_chan_tryrecv(done, NULL), -EAGAIN);
	go(close_after_sleep, done);
	CHECK_EQ(gmp_chan_recv(done, NULL), 0);
	CHECK_EQ(gmp_chan_recv(done, NULL), 0);
	gmp_chan_free(done);

	gmp_chan *big = gmp_chan_make(0, SIZE_MAX); /* no ring to allocate */
	CHECK(big != NULL);
	CHECK_EQ(gmp_chan_cap(big), SIZE_MAX);
	gmp_chan_free(big);
}

TEST(bad_sizes)
{
	errno = 0;
	CHECK(gmp_chan_make((64 << 10) + 1, 1) == NULL);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(gmp_chan_make((64 << 10) + 1, 0) == NULL);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(gmp_chan_make(8, SIZE_MAX / 4) == NULL); /* elem_size * cap overflows */
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(gmp_chan_make(64 << 10, SIZE_MAX / (64 << 10)) == NULL);
	CHECK_EQ(errno, EINVAL);

	gmp_chan *c = gmp_chan_make(64 << 10, 2); /* the largest element */
	CHECK(c != NULL);
	static char big[64 << 10], back[64 << 10];
	memset(big, 0xab, sizeof(big));
	CHECK_EQ(gmp_chan_send(c, big), 0);
	CHECK_EQ(gmp_chan_recv(c, back), 1);
	CHECK(memcmp(big, back, sizeof(big)) == 0);
	gmp_chan_free(c);

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* 2^62 bytes: representable, but no machine has it. (Sanitizer
	 * allocators abort on such requests instead of returning NULL.) */
	errno = 0;
	CHECK(gmp_chan_make(1 << 16, (size_t)1 << 46) == NULL);
	CHECK_EQ(errno, ENOMEM);
#endif
}

TEST_OPTS(deadlock_recv_nobody_sends, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "all goroutines are asleep - deadlock!")
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	int v;
	gmp_chan_recv(c, &v);
	CHECK(!"recv returned");
}

TEST_OPTS(deadlock_dump_names_chan_send, NEEDS_DEADLOCK_CHECK, .expect_status = 2, .expect_stderr = "chan send")
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	int v = 0;
	gmp_chan_send(c, &v);
	CHECK(!"send returned");
}

/* ---- many goroutines on two Ps ------------------------------------------- */

enum { MP_PRODUCERS = 8, MP_CONSUMERS = 8, MP_PER_PRODUCER = 5000 };

struct mpmc {
	gmp_chan *c;
	gmp_chan *results;	/* each consumer sends {count, sum} */
	_Atomic int producers_left;
};

struct producer_arg {
	struct mpmc *m;
	int id;
};

static void mp_producer(void *p)
{
	struct producer_arg *a = p;
	for (int i = 0; i < MP_PER_PRODUCER; i++) {
		uint64_t v = ((uint64_t)a->id << 32) | (uint64_t)i;
		CHECK_EQ(gmp_chan_send(a->m->c, &v), 0);
		if (i % 97 == 0)
			gmp_yield();
	}
	if (atomic_fetch_sub(&a->m->producers_left, 1) == 1)
		gmp_chan_close(a->m->c);
}

static void mp_consumer(void *p)
{
	struct mpmc *m = p;
	uint64_t v, res[2] = { 0, 0 };
	int r;
	while ((r = gmp_chan_recv(m->c, &v)) == 1) {
		res[0]++;
		res[1] += v * 2654435761u;
	}
	CHECK_EQ(r, 0);
	CHECK_EQ(gmp_chan_send(m->results, res), 0);
}

static void mpmc_round(size_t cap)
{
	struct mpmc m = { .producers_left = MP_PRODUCERS };
	m.c = gmp_chan_make(sizeof(uint64_t), cap);
	m.results = gmp_chan_make(2 * sizeof(uint64_t), MP_CONSUMERS);
	struct producer_arg pa[MP_PRODUCERS];
	for (int i = 0; i < MP_CONSUMERS; i++)
		go(mp_consumer, &m);
	for (int i = 0; i < MP_PRODUCERS; i++) {
		pa[i] = (struct producer_arg){ &m, i };
		go(mp_producer, &pa[i]);
	}
	uint64_t want = 0, count = 0, sum = 0;
	for (uint64_t id = 0; id < MP_PRODUCERS; id++)
		for (uint64_t i = 0; i < MP_PER_PRODUCER; i++)
			want += ((id << 32) | i) * 2654435761u;
	for (int i = 0; i < MP_CONSUMERS; i++) {
		uint64_t res[2];
		CHECK_EQ(gmp_chan_recv(m.results, res), 1);
		count += res[0];
		sum += res[1];
	}
	CHECK_EQ(count, (uint64_t)MP_PRODUCERS * MP_PER_PRODUCER);
	CHECK(sum == want);
	gmp_chan_free(m.c);
	gmp_chan_free(m.results);
}

TEST(stress_mpmc_two_procs)
{
	gmp_maxprocs(2);
	mpmc_round(0);
	mpmc_round(1);
	mpmc_round(64);
}

/* Senders send numbered values until the channel closes; receivers mark
 * each value seen; someone closes in the middle.  Every value whose send
 * returned 0 must be seen exactly once, and no other. */
enum { CR_SENDERS = 6, CR_RECEIVERS = 6, CR_MAXSEQ = 1 << 14 };

struct close_race {
	gmp_chan *c;
	gmp_chan *done;			/* one token per finished goroutine */
	_Atomic uint8_t seen[CR_SENDERS][CR_MAXSEQ];
	int sent[CR_SENDERS];
	_Atomic int next_id;
};

static void cr_sender(void *p)
{
	struct close_race *cr = p;
	int id = atomic_fetch_add(&cr->next_id, 1);
	int n = 0;
	for (; n < CR_MAXSEQ; n++) {
		uint32_t v = ((uint32_t)id << 16) | (uint32_t)n;
		int r = (n & 3) == 3 ? gmp_chan_trysend(cr->c, &v) : gmp_chan_send(cr->c, &v);
		if (r == -EAGAIN) {
			n--;
			gmp_yield();
			continue;
		}
		if (r == -EPIPE)
			break;
		CHECK_EQ(r, 0);
	}
	cr->sent[id] = n;
	CHECK_EQ(gmp_chan_send(cr->done, NULL), 0);
}

static void cr_receiver(void *p)
{
	struct close_race *cr = p;
	uint32_t v;
	int r;
	while ((r = gmp_chan_recv(cr->c, &v)) == 1) {
		uint32_t id = v >> 16, seq = v & 0xffff;
		CHECK(id < CR_SENDERS && seq < CR_MAXSEQ);
		CHECK_EQ(atomic_fetch_add(&cr->seen[id][seq], 1), 0);
	}
	CHECK_EQ(r, 0);
	CHECK_EQ(gmp_chan_send(cr->done, NULL), 0);
}

static void close_race_round(size_t cap, int64_t close_after_ns)
{
	static struct close_race cr;
	memset(&cr, 0, sizeof(cr));
	cr.c = gmp_chan_make(sizeof(uint32_t), cap);
	cr.done = gmp_chan_make(0, CR_SENDERS + CR_RECEIVERS);
	for (int i = 0; i < CR_RECEIVERS; i++)
		go(cr_receiver, &cr);
	for (int i = 0; i < CR_SENDERS; i++)
		go(cr_sender, &cr);
	gmp_sleep(close_after_ns);
	gmp_chan_close(cr.c);
	for (int i = 0; i < CR_SENDERS + CR_RECEIVERS; i++)
		CHECK_EQ(gmp_chan_recv(cr.done, NULL), 1);
	for (int id = 0; id < CR_SENDERS; id++)
		for (int seq = 0; seq < CR_MAXSEQ; seq++)
			if (atomic_load(&cr.seen[id][seq]) != (seq < cr.sent[id]))
				harness_fail(__FILE__, __LINE__,
					     "cap %zu: sender %d value %d seen %d times, sent %d", cap,
					     id, seq, atomic_load(&cr.seen[id][seq]), cr.sent[id]);
	gmp_chan_free(cr.c);
	gmp_chan_free(cr.done);
}

TEST(close_race_nothing_lost_or_duplicated)
{
	gmp_maxprocs(2);
	for (int round = 0; round < 12; round++) {
		size_t caps[] = { 0, 1, 32 };
		close_race_round(caps[round % 3], (round % 4) * 1000 * 1000);
	}
}

/* ---- gmp_chan_free's contract -------------------------------------------- */

struct free_arg {
	gmp_chan *c;
	gmp_chan *ack;
	int iters;
	int mode;
};

/* The main goroutine frees each channel as soon as its own operation is done,
 * while the peer may still be waking up or returning.  mode 0: main receives,
 * the peer sends; mode 1: main sends, the peer receives; mode 2: the peer
 * closes, main receives the close. */
static void free_peer(void *p)
{
	struct free_arg a = *(struct free_arg *)p; /* the caller's copy is reused */
	for (int i = 0; i < a.iters; i++) {
		gmp_chan *c;
		CHECK_EQ(gmp_chan_recv(a.ack, &c), 1);
		int v = i;
		if (a.mode == 0) {
			CHECK_EQ(gmp_chan_send(c, &v), 0);
		} else if (a.mode == 1) {
			CHECK_EQ(gmp_chan_recv(c, &v), 1);
			CHECK_EQ(v, i);
		} else {
			gmp_chan_close(c);
		}
	}
}

static void free_round(int mode)
{
	enum { ITERS = 3000 };
	gmp_chan *ack = gmp_chan_make(sizeof(gmp_chan *), 0);
	struct free_arg a = { .ack = ack, .iters = ITERS, .mode = mode };
	go(free_peer, &a);
	for (int i = 0; i < ITERS; i++) {
		gmp_chan *c = gmp_chan_make(sizeof(int), 0);
		CHECK_EQ(gmp_chan_send(ack, &c), 0);
		if (i & 1)
			gmp_yield(); /* vary who parks first */
		int v = -1;
		if (mode == 0) {
			CHECK_EQ(gmp_chan_recv(c, &v), 1);
			CHECK_EQ(v, i);
		} else if (mode == 1) {
			v = i;
			CHECK_EQ(gmp_chan_send(c, &v), 0);
		} else {
			CHECK_EQ(gmp_chan_recv(c, &v), 0);
		}
		gmp_chan_free(c); /* the peer may still be waking up */
	}
	gmp_chan_free(ack);
}

TEST(free_right_after_the_other_side_completes)
{
	gmp_maxprocs(2);
	free_round(0);
	free_round(1);
	free_round(2);
}

TEST_OPTS(free_with_waiters_is_fatal, .expect_status = 2,
	  .expect_stderr = "free of channel with waiting goroutines", .env = "GMP_MAXPROCS=1")
{
	gmp_chan *c = gmp_chan_make(sizeof(long), 0);
	gmp_chan *out = gmp_chan_make(2 * sizeof(long), 1);
	struct closer_arg a = { c, out };
	go(recv_report, &a);
	settle();
	gmp_chan_free(c);
}

/* ---- threads gmprt did not start ----------------------------------------- */

static _Atomic int foreign_adopted;

static void *foreign_echo(void *p)
{
	gmp_chan **cs = p;
	int v;
	/* Be adopted before main parks: until a thread has called into gmprt,
	 * the deadlock check cannot know it ever will (nor can Go's). */
	CHECK(gmp_self() > 0);
	atomic_store(&foreign_adopted, 1);
	while (gmp_chan_recv(cs[0], &v) == 1) {
		v *= 2;
		CHECK_EQ(gmp_chan_send(cs[1], &v), 0);
	}
	return NULL;
}

TEST(foreign_thread_talks_to_goroutines)
{
	gmp_chan *cs[2] = { gmp_chan_make(sizeof(int), 0), gmp_chan_make(sizeof(int), 0) };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, foreign_echo, cs), 0);
	while (!atomic_load(&foreign_adopted))
		gmp_yield();
	for (int i = 0; i < 200; i++) {
		int v = i;
		CHECK_EQ(gmp_chan_send(cs[0], &v), 0);
		CHECK_EQ(gmp_chan_recv(cs[1], &v), 1);
		CHECK_EQ(v, 2 * i);
	}
	gmp_chan_close(cs[0]);
	CHECK_EQ(pthread_join(t, NULL), 0);
	gmp_chan_free(cs[0]);
	gmp_chan_free(cs[1]);
}

/* ---- one channel lock fought over by more threads than CPUs ---------------- */

enum { TOKENS = 64, FIGHTERS = 8 };

static void *token_fighter(void *arg)
{
	gmp_chan *c = arg;
	const int rounds = TEST_SCALE(200000);
	for (int i = 0; i < rounds; i++) {
		int tok;
		if (gmp_chan_tryrecv(c, &tok) == 1 && gmp_chan_trysend(c, &tok) != 0)
			return (void *)1; /* a token we held found the buffer full */
	}
	return NULL;
}

/* Foreign threads, more than there are CPUs, pass 64 tokens through one
 * buffered channel with trysend/tryrecv: a thread preempted while it holds
 * the channel's lock sends the others past their spin into the futex sleep,
 * so unlock's wake-up path runs.  Every token must survive, none doubled. */
TEST_OPTS(channel_lock_contended_by_threads, .timeout_s = 120)
{
	gmp_chan *c = gmp_chan_make(sizeof(int), TOKENS);
	for (int i = 0; i < TOKENS; i++)
		CHECK_EQ(gmp_chan_trysend(c, &i), 0);
	pthread_t t[FIGHTERS];
	for (int i = 0; i < FIGHTERS; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, token_fighter, c), 0);
	for (int i = 0; i < FIGHTERS; i++) {
		void *bad;
		CHECK_EQ(pthread_join(t[i], &bad), 0);
		CHECK(bad == NULL);
	}
	CHECK_EQ(gmp_chan_len(c), TOKENS);
	bool seen[TOKENS] = { false };
	for (int i = 0; i < TOKENS; i++) {
		int tok = -1;
		CHECK_EQ(gmp_chan_tryrecv(c, &tok), 1);
		CHECK(tok >= 0 && tok < TOKENS && !seen[tok]);
		seen[tok] = true;
	}
	gmp_chan_free(c);
}
