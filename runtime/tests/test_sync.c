/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * test_sync.c - unit tests for gmp_mutex, gmp_rwmutex, gmp_cond,
 * gmp_waitgroup and gmp_once (runtime/src/sync.c).
 *
 * Each test runs in its own process; main() is goroutine 1.  The tests check
 * behaviour (exclusion, wake-ups, fatal errors, deadlock reports), never
 * speed: waits that depend on timing are bounded generously and only ever
 * assert an order of events, not a duration.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <gmprt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

/* Spins for about ns without yielding: holds the P, like real work. */
static void busy_for(int64_t ns)
{
	int64_t until = gmp_now() + ns;
	while (gmp_now() < until)
		;
}

/* Yields until *flag reaches want, or fails the test after 10 s. */
static void wait_until_eq(_Atomic int *flag, int want)
{
	int64_t deadline = gmp_now() + 10000 * MS;
	while (atomic_load(flag) != want) {
		CHECK(gmp_now() < deadline);
		gmp_sleep(MS / 10);
	}
}

/* ---- mutex -------------------------------------------------------------- */

struct counter_job {
	gmp_mutex *mu;
	long *counter;		/* plain memory: only the mutex protects it */
	_Atomic int *inside;	/* goroutines inside the critical section */
	int iters;
	gmp_waitgroup *wg;
};

static void increment_loop(void *arg)
{
	struct counter_job *job = arg;
	for (int i = 0; i < job->iters; i++) {
		gmp_mutex_lock(job->mu);
		CHECK_EQ(atomic_fetch_add(job->inside, 1), 0);
		long v = *job->counter;
		if (i % 64 == 0)
			gmp_yield();	/* get preempted while holding it */
		*job->counter = v + 1;
		atomic_fetch_sub(job->inside, 1);
		gmp_mutex_unlock(job->mu);
	}
	gmp_wg_done(job->wg);
}

TEST(mutex_exclusion_two_procs)
{
	gmp_maxprocs(2);
	static gmp_mutex mu = GMP_MUTEX_INIT;
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	long counter = 0;
	_Atomic int inside = 0;
	enum { NG = 16, ITERS = 20000 };
	struct counter_job job = { &mu, &counter, &inside, ITERS, &wg };
	gmp_wg_add(&wg, NG);
	for (int i = 0; i < NG; i++)
		CHECK(gmp_go(increment_loop, &job) > 0);
	gmp_wg_wait(&wg);
	CHECK_EQ(counter, (long)NG * ITERS);
}

TEST(mutex_zero_value_on_stack)
{
	gmp_mutex mu;
	memset(&mu, 0, sizeof(mu));
	gmp_mutex_lock(&mu);
	gmp_mutex_unlock(&mu);
	gmp_mutex_lock(&mu);
	gmp_mutex_unlock(&mu);
}

struct trylock_probe {
	gmp_mutex *mu;
	_Atomic int result;
};

static void trylock_from_other_g(void *arg)
{
	struct trylock_probe *pr = arg;
	atomic_store(&pr->result, gmp_mutex_trylock(pr->mu) ? 1 : 2);
}

TEST(mutex_trylock)
{
	gmp_mutex mu = GMP_MUTEX_INIT;
	CHECK_EQ(gmp_mutex_trylock(&mu), 1);
	CHECK_EQ(gmp_mutex_trylock(&mu), 0);
	struct trylock_probe pr = { &mu, 0 };
	CHECK(gmp_go(trylock_from_other_g, &pr) > 0);
	wait_until_eq(&pr.result, 2);		/* busy for another goroutine too */
	gmp_mutex_unlock(&mu);
	CHECK_EQ(gmp_mutex_trylock(&mu), 1);
	gmp_mutex_unlock(&mu);
	gmp_mutex_lock(&mu);
	CHECK_EQ(gmp_mutex_trylock(&mu), 0);
	gmp_mutex_unlock(&mu);
}

TEST_OPTS(mutex_unlock_of_unlocked_is_fatal, .expect_status = 2,
	  .expect_stderr = "fatal error: sync: unlock of unlocked mutex")
{
	gmp_mutex mu = GMP_MUTEX_INIT;
	gmp_mutex_lock(&mu);
	gmp_mutex_unlock(&mu);
	gmp_mutex_unlock(&mu);
	fprintf(stderr, "second unlock returned\n");
}

struct fairness {
	gmp_mutex mu;
	_Atomic int stop;
	_Atomic int acquired;
};

/* Holds the lock almost all the time, re-locking at once after each unlock. */
static void lock_hog(void *arg)
{
	struct fairness *f = arg;
	while (!atomic_load(&f->stop)) {
		gmp_mutex_lock(&f->mu);
		busy_for(MS / 10);
		gmp_mutex_unlock(&f->mu);
	}
	atomic_fetch_add(&f->acquired, 1000);
}

static void lock_occasionally(void *arg)
{
	struct fairness *f = arg;
	for (int i = 0; i < 10; i++) {
		gmp_sleep(MS / 10);
		gmp_mutex_lock(&f->mu);
		gmp_mutex_unlock(&f->mu);
		atomic_fetch_add(&f->acquired, 1);
	}
	atomic_store(&f->stop, 1);
}

/* Go's TestMutexFairness: starvation mode must let the occasional locker in. */
TEST_OPTS(mutex_starvation_mode_hands_off, .timeout_s = 30)
{
	gmp_maxprocs(2);
	static struct fairness f;
	CHECK(gmp_go(lock_hog, &f) > 0);
	CHECK(gmp_go(lock_occasionally, &f) > 0);
	wait_until_eq(&f.acquired, 1010);
}

struct thread_job {
	gmp_mutex *mu;
	long *counter;
	int iters;
};

static void *increment_from_thread(void *arg)
{
	struct thread_job *job = arg;
	for (int i = 0; i < job->iters; i++) {
		gmp_mutex_lock(job->mu);
		(*job->counter)++;
		gmp_mutex_unlock(job->mu);
	}
	return NULL;
}

/* A foreign pthread (adopted as a bound G) contends with goroutines. */
TEST(mutex_shared_with_foreign_thread)
{
	gmp_maxprocs(2);
	static gmp_mutex mu;
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	long counter = 0;
	_Atomic int inside = 0;
	struct counter_job job = { &mu, &counter, &inside, 20000, &wg };
	struct thread_job tj = { &mu, &counter, 20000 };
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, increment_from_thread, &tj), 0);
	gmp_wg_add(&wg, 4);
	for (int i = 0; i < 4; i++)
		CHECK(gmp_go(increment_loop, &job) > 0);
	gmp_wg_wait(&wg);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(counter, 5 * 20000L);
}

/* ---- rwmutex ------------------------------------------------------------ */

struct rw_state {
	gmp_rwmutex rw;
	_Atomic int readers;	/* inside under rlock */
	_Atomic int writers;	/* inside under lock */
	_Atomic int stop;
	_Atomic int done;
	_Atomic int writes;
	long shared;		/* written only under lock */
	int nreaders;
};

/* Holds the read lock until every reader is inside at the same time. */
static void reader_waits_for_all(void *arg)
{
	struct rw_state *s = arg;
	gmp_rwmutex_rlock(&s->rw);
	atomic_fetch_add(&s->readers, 1);
	int64_t deadline = gmp_now() + 10000 * MS;
	while (atomic_load(&s->readers) < s->nreaders && gmp_now() < deadline)
		gmp_yield();
	atomic_fetch_add(&s->done, atomic_load(&s->readers) >= s->nreaders);
	gmp_rwmutex_runlock(&s->rw);
}

TEST(rwmutex_readers_share)
{
	static struct rw_state s;
	s.nreaders = 8;
	for (int i = 0; i < s.nreaders; i++)
		CHECK(gmp_go(reader_waits_for_all, &s) > 0);
	wait_until_eq(&s.done, s.nreaders);
	/* and a writer gets in once they are gone */
	gmp_rwmutex_lock(&s.rw);
	gmp_rwmutex_unlock(&s.rw);
}

static void exclusive_reader(void *arg)
{
	struct rw_state *s = arg;
	for (int i = 0; i < 20000; i++) {
		gmp_rwmutex_rlock(&s->rw);
		atomic_fetch_add(&s->readers, 1);
		CHECK_EQ(atomic_load(&s->writers), 0);
		if (i % 128 == 0)
			gmp_yield();
		CHECK_EQ(atomic_load(&s->writers), 0);
		atomic_fetch_sub(&s->readers, 1);
		gmp_rwmutex_runlock(&s->rw);
	}
	atomic_fetch_add(&s->done, 1);
}

static void exclusive_writer(void *arg)
{
	struct rw_state *s = arg;
	for (int i = 0; i < 5000; i++) {
		gmp_rwmutex_lock(&s->rw);
		CHECK_EQ(atomic_fetch_add(&s->writers, 1), 0);
		CHECK_EQ(atomic_load(&s->readers), 0);
		long v = s->shared;
		if (i % 64 == 0)
			gmp_yield();
		s->shared = v + 1;
		atomic_fetch_sub(&s->writers, 1);
		gmp_rwmutex_unlock(&s->rw);
	}
	atomic_fetch_add(&s->done, 1);
}

TEST(rwmutex_writer_exclusive)
{
	gmp_maxprocs(2);
	static struct rw_state s;
	for (int i = 0; i < 4; i++) {
		CHECK(gmp_go(exclusive_reader, &s) > 0);
		CHECK(gmp_go(exclusive_writer, &s) > 0);
	}
	wait_until_eq(&s.done, 8);
	CHECK_EQ(s.shared, 4 * 5000L);
}

/* Readers that overlap so the read lock is never free. */
static void overlapping_reader(void *arg)
{
	struct rw_state *s = arg;
	while (!atomic_load(&s->stop)) {
		gmp_rwmutex_rlock(&s->rw);
		busy_for(MS / 20);
		gmp_yield();
		gmp_rwmutex_runlock(&s->rw);
	}
	atomic_fetch_add(&s->done, 1);
}

TEST_OPTS(rwmutex_writer_not_starved, .timeout_s = 30)
{
	gmp_maxprocs(2);
	static struct rw_state s;
	for (int i = 0; i < 4; i++)
		CHECK(gmp_go(overlapping_reader, &s) > 0);
	gmp_sleep(5 * MS);
	for (int i = 0; i < 20; i++) {
		gmp_rwmutex_lock(&s.rw);
		s.shared++;
		gmp_rwmutex_unlock(&s.rw);
	}
	atomic_store(&s.stop, 1);
	wait_until_eq(&s.done, 4);
	CHECK_EQ(s.shared, 20);
}

struct order_log {
	gmp_rwmutex rw;
	_Atomic int seq;
	_Atomic int writer_started;
	_Atomic int writer_at, reader_at;	/* seq value when each got in */
};

static void pending_writer(void *arg)
{
	struct order_log *o = arg;
	atomic_store(&o->writer_started, 1);
	gmp_rwmutex_lock(&o->rw);
	atomic_store(&o->writer_at, atomic_fetch_add(&o->seq, 1) + 1);
	gmp_rwmutex_unlock(&o->rw);
}

static void late_reader(void *arg)
{
	struct order_log *o = arg;
	gmp_rwmutex_rlock(&o->rw);
	atomic_store(&o->reader_at, atomic_fetch_add(&o->seq, 1) + 1);
	gmp_rwmutex_runlock(&o->rw);
}

/* A pending writer blocks readers that come after it (Go's writer
 * preference): the late reader gets in only after the writer. */
TEST(rwmutex_pending_writer_blocks_new_readers)
{
	gmp_maxprocs(1);	/* main sees writer_started only once the writer stops */
	static struct order_log o;
	gmp_rwmutex_rlock(&o.rw);
	CHECK(gmp_go(pending_writer, &o) > 0);
	wait_until_eq(&o.writer_started, 1);
	gmp_sleep(100 * MS);	/* let it park in lock: only an order is checked */
	CHECK(gmp_go(late_reader, &o) > 0);
	gmp_sleep(20 * MS);
	CHECK_EQ(atomic_load(&o.reader_at), 0);
	CHECK_EQ(atomic_load(&o.writer_at), 0);
	gmp_rwmutex_runlock(&o.rw);
	int64_t deadline = gmp_now() + 10000 * MS;
	while (atomic_load(&o.reader_at) == 0 && gmp_now() < deadline)
		gmp_sleep(MS);
	CHECK_EQ(atomic_load(&o.writer_at), 1);
	CHECK_EQ(atomic_load(&o.reader_at), 2);
}

TEST_OPTS(rwmutex_runlock_of_unlocked_is_fatal, .expect_status = 2,
	  .expect_stderr = "sync: RUnlock of unlocked RWMutex")
{
	gmp_rwmutex rw = GMP_RWMUTEX_INIT;
	gmp_rwmutex_runlock(&rw);
}

TEST_OPTS(rwmutex_unlock_of_unlocked_is_fatal, .expect_status = 2,
	  .expect_stderr = "sync: Unlock of unlocked RWMutex")
{
	gmp_rwmutex rw = GMP_RWMUTEX_INIT;
	gmp_rwmutex_unlock(&rw);
}

/* ---- cond --------------------------------------------------------------- */

struct pingpong {
	gmp_mutex mu;
	gmp_cond cv;
	int turn;		/* 0 or 1: whose move it is */
	int rounds;
	int moves[2];
	gmp_waitgroup wg;
};

static void player(int me, struct pingpong *pp)
{
	gmp_mutex_lock(&pp->mu);
	for (int i = 0; i < pp->rounds; i++) {
		while (pp->turn != me)
			gmp_cond_wait(&pp->cv, &pp->mu);
		pp->moves[me]++;
		pp->turn = !me;
		gmp_cond_signal(&pp->cv);
	}
	gmp_mutex_unlock(&pp->mu);
	gmp_wg_done(&pp->wg);
}

static void player0(void *arg) { player(0, arg); }
static void player1(void *arg) { player(1, arg); }

static void run_pingpong(int procs)
{
	gmp_maxprocs(procs);
	static struct pingpong pp;
	memset(&pp, 0, sizeof(pp));
	pp.rounds = 20000;
	gmp_wg_add(&pp.wg, 2);
	CHECK(gmp_go(player0, &pp) > 0);
	CHECK(gmp_go(player1, &pp) > 0);
	gmp_wg_wait(&pp.wg);
	CHECK_EQ(pp.moves[0], pp.rounds);
	CHECK_EQ(pp.moves[1], pp.rounds);
}

TEST(cond_signal_pingpong_one_proc) { run_pingpong(1); }
TEST(cond_signal_pingpong_two_procs) { run_pingpong(2); }

struct gate {
	gmp_mutex mu;
	gmp_cond cv;
	int open;
	int generation;
	_Atomic int waiting;
	_Atomic int passed;
};

/* Waits for each of three generations of the gate opening. */
static void gate_waiter(void *arg)
{
	struct gate *gt = arg;
	for (int gen = 1; gen <= 3; gen++) {
		gmp_mutex_lock(&gt->mu);
		atomic_fetch_add(&gt->waiting, 1);
		while (gt->generation < gen)
			gmp_cond_wait(&gt->cv, &gt->mu);
		gmp_mutex_unlock(&gt->mu);
		atomic_fetch_add(&gt->passed, 1);
	}
}

TEST(cond_broadcast_wakes_all)
{
	gmp_maxprocs(2);
	static struct gate gt;
	enum { N = 100 };
	for (int i = 0; i < N; i++)
		CHECK(gmp_go(gate_waiter, &gt) > 0);
	for (int gen = 1; gen <= 3; gen++) {
		wait_until_eq(&gt.waiting, gen * N);
		gmp_mutex_lock(&gt.mu);
		gt.generation = gen;
		gmp_cond_broadcast(&gt.cv);
		gmp_mutex_unlock(&gt.mu);
		wait_until_eq(&gt.passed, gen * N);
	}
}

TEST(cond_signal_without_waiters_is_harmless)
{
	gmp_cond cv = GMP_COND_INIT;
	gmp_cond_signal(&cv);
	gmp_cond_broadcast(&cv);
}

/* Producer/consumer over a bounded buffer: no signal may be lost. */
struct bounded_queue {
	gmp_mutex mu;
	gmp_cond not_empty, not_full;
	int buf[4];
	int head, len;
	long sum;
	gmp_waitgroup wg;
};

static void producer(void *arg)
{
	struct bounded_queue *q = arg;
	for (int i = 1; i <= 10000; i++) {
		gmp_mutex_lock(&q->mu);
		while (q->len == 4)
			gmp_cond_wait(&q->not_full, &q->mu);
		q->buf[(q->head + q->len++) % 4] = i;
		gmp_cond_signal(&q->not_empty);
		gmp_mutex_unlock(&q->mu);
	}
	gmp_wg_done(&q->wg);
}

static void consumer(void *arg)
{
	struct bounded_queue *q = arg;
	for (int i = 0; i < 10000; i++) {
		gmp_mutex_lock(&q->mu);
		while (q->len == 0)
			gmp_cond_wait(&q->not_empty, &q->mu);
		q->sum += q->buf[q->head];
		q->head = (q->head + 1) % 4;
		q->len--;
		gmp_cond_signal(&q->not_full);
		gmp_mutex_unlock(&q->mu);
	}
	gmp_wg_done(&q->wg);
}

TEST(cond_producers_consumers)
{
	gmp_maxprocs(2);
	static struct bounded_queue q;
	gmp_wg_add(&q.wg, 4);
	CHECK(gmp_go(producer, &q) > 0);
	CHECK(gmp_go(producer, &q) > 0);
	CHECK(gmp_go(consumer, &q) > 0);
	CHECK(gmp_go(consumer, &q) > 0);
	gmp_wg_wait(&q.wg);
	CHECK_EQ(q.sum, 2 * (10000L * 10001 / 2));
}

/* ---- waitgroup ---------------------------------------------------------- */

struct wg_job {
	gmp_waitgroup wg;
	_Atomic long ran;
	gmp_waitgroup waiters_done;
};

static void count_and_done(void *arg)
{
	struct wg_job *j = arg;
	atomic_fetch_add(&j->ran, 1);
	gmp_wg_done(&j->wg);
}

static void wait_then_check(void *arg)
{
	struct wg_job *j = arg;
	gmp_wg_wait(&j->wg);
	CHECK_EQ(atomic_load(&j->ran), 10000);
	gmp_wg_done(&j->waiters_done);
}

TEST(waitgroup_ten_thousand_goroutines)
{
	gmp_maxprocs(2);
	static struct wg_job j;
	gmp_wg_add(&j.wg, 10000);
	gmp_wg_add(&j.waiters_done, 3);
	for (int i = 0; i < 3; i++)
		CHECK(gmp_go(wait_then_check, &j) > 0);
	for (int i = 0; i < 10000; i++)
		CHECK(gmp_go(count_and_done, &j) > 0);
	gmp_wg_wait(&j.wg);
	CHECK_EQ(atomic_load(&j.ran), 10000);
	gmp_wg_wait(&j.waiters_done);
	/* reusable once the previous waits have returned */
	atomic_store(&j.ran, 0);
	gmp_wg_add(&j.wg, 10000);
	for (int i = 0; i < 10000; i++)
		CHECK(gmp_go(count_and_done, &j) > 0);
	gmp_wg_wait(&j.wg);
	CHECK_EQ(atomic_load(&j.ran), 10000);
}

TEST(waitgroup_wait_on_zero_returns)
{
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	gmp_wg_wait(&wg);
	gmp_wg_add(&wg, 2);
	gmp_wg_done(&wg);
	gmp_wg_add(&wg, -1);
	gmp_wg_wait(&wg);
}

TEST_OPTS(waitgroup_negative_counter_is_fatal, .expect_status = 2,
	  .expect_stderr = "fatal error: sync: negative WaitGroup counter")
{
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	gmp_wg_add(&wg, 1);
	gmp_wg_done(&wg);
	gmp_wg_done(&wg);
	fprintf(stderr, "negative counter went unnoticed\n");
}

/* ---- once --------------------------------------------------------------- */

static gmp_once once_guard;
static _Atomic int once_calls;
static _Atomic int once_value;

static void slow_init(void)
{
	atomic_fetch_add(&once_calls, 1);
	gmp_sleep(20 * MS);	/* the others must wait for this to return */
	atomic_store(&once_value, 42);
}

static void call_once(void *arg)
{
	gmp_waitgroup *wg = arg;
	gmp_once_do(&once_guard, slow_init);
	CHECK_EQ(atomic_load(&once_value), 42);
	gmp_wg_done(wg);
}

TEST(once_runs_once_under_concurrency)
{
	gmp_maxprocs(2);
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	gmp_wg_add(&wg, 100);
	for (int i = 0; i < 100; i++)
		CHECK(gmp_go(call_once, &wg) > 0);
	gmp_wg_wait(&wg);
	gmp_once_do(&once_guard, slow_init);
	CHECK_EQ(atomic_load(&once_calls), 1);
	CHECK_EQ(atomic_load(&once_value), 42);
}

/* ---- deadlocks are reported with what each goroutine waits on ----------- */

TEST_OPTS(deadlock_on_waitgroup, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "gmprt: fatal error: all goroutines are asleep - deadlock!")
{
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	gmp_wg_add(&wg, 1);
	gmp_wg_wait(&wg);
	fprintf(stderr, "wait returned\n");
}

TEST_OPTS(deadlock_dump_names_mutex_wait, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "sync.Mutex.Lock")
{
	gmp_mutex mu = GMP_MUTEX_INIT;
	gmp_mutex_lock(&mu);
	gmp_mutex_lock(&mu);
	fprintf(stderr, "relocked a held mutex\n");
}

TEST_OPTS(deadlock_dump_names_waitgroup_wait, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "sync.WaitGroup.Wait")
{
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	gmp_wg_add(&wg, 1);
	gmp_wg_wait(&wg);
}
