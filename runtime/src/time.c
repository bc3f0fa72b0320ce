/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * time.c - per-P timer heaps, gmp_now and gmp_sleep.
 *
 * Each P keeps a 4-ary min-heap of timers ordered by when, guarded by its
 * timerlock, and publishes the top's when in timer0_when so that anyone can
 * see without the lock whether a P has timers and when the next is due.
 * A timer is added to the current M's P (an M without a P uses P 0).  Timers
 * are run by the P's own M when it schedules, by thieves in stealwork, and
 * by an M that wakes from netpoll at the earliest when of all Ps.
 *
 * A popped timer is recorded in its P's timer_running while its fn runs, so
 * that timer_del can wait for it: after timer_del returns, the timer's
 * memory is the caller's again.  Hence one runner per P at a time.
 */
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* The heap is 4-ary, and each entry carries its timer's when: sifting
 * compares entries in the array, whose four children share a cache line,
 * without touching the timers (they live on their goroutines' stacks, cold
 * in a server with thousands of sleepers).  Only the moved timers' pos is
 * written. */
enum { HEAP_ARITY = 4 };

static void heap_set(struct p *pp, int32_t i, struct timer_ent e)
{
	pp->timers[i] = e;
	e.t->pos = i + 1;
}

static void sift_up(struct p *pp, int32_t i)
{
	struct timer_ent e = pp->timers[i];
	while (i > 0) {
		int32_t parent = (i - 1) / HEAP_ARITY;
		if (pp->timers[parent].when <= e.when)
			break;
		heap_set(pp, i, pp->timers[parent]);
		i = parent;
	}
	heap_set(pp, i, e);
}

static void sift_down(struct p *pp, int32_t i)
{
	struct timer_ent e = pp->timers[i];
	int32_t n = pp->ntimers;
	for (;;) {
		int32_t first = HEAP_ARITY * i + 1;
		if (first >= n)
			break;
		int32_t c = first;
		int32_t end = first + HEAP_ARITY < n ? first + HEAP_ARITY : n;
		for (int32_t k = first + 1; k < end; k++)
			if (pp->timers[k].when < pp->timers[c].when)
				c = k;
		if (e.when <= pp->timers[c].when)
			break;
		heap_set(pp, i, pp->timers[c]);
		i = c;
	}
	heap_set(pp, i, e);
}

/* After a push the top may be earlier, and timer_add's look at a polling
 * M that may need waking must come after the store: sequentially
 * consistent.  After a removal it is only later (or gone), which an M
 * that read the old value learns by waking early: a release store, which
 * does not wait, as a locked store does, for the timers' cold lines that
 * the sift just wrote (in an httpd profile, 29% of heap_remove's samples
 * sat on that store). */
static void publish_top(struct p *pp, memory_order order)
{
	atomic_store_explicit(&pp->timer0_when, pp->ntimers ? pp->timers[0].when : 0, order);
}

/* timerlock held */
static void heap_push(struct p *pp, struct timer *t)
{
	if (pp->ntimers == pp->captimers) {
		int32_t cap = pp->captimers ? pp->captimers * 2 : 64;
		struct timer_ent *nt = realloc(pp->timers, (size_t)cap * sizeof(*nt));
		if (!nt)
			fatal("out of memory for timers");
		pp->timers = nt;
		pp->captimers = cap;
	}
	int32_t i = pp->ntimers++;
	heap_set(pp, i, (struct timer_ent){ t->when, t });
	sift_up(pp, i);
	publish_top(pp, memory_order_seq_cst);
}

/* timerlock held; t is in pp's heap */
static void heap_remove(struct p *pp, struct timer *t)
{
	int32_t i = t->pos - 1;
	int32_t last = --pp->ntimers;
	t->pos = 0;
	if (i != last) {
		heap_set(pp, i, pp->timers[last]);
		sift_down(pp, i);
		sift_up(pp, pp->timers[i].t->pos - 1);
	}
	publish_top(pp, memory_order_release);
}

/* A new earliest timer: make sure an M will look at it in time (Go's
 * wakeNetPoller). */
static void wake_for_timer(int64_t when)
{
	if (atomic_load(&sched.lastpoll) == 0) {
		int64_t until = atomic_load(&sched.polluntil);
		if (until == 0 || until > when)
			netpoll_break();
	} else {
		wakep();
	}
}

void timer_add(struct timer *t)
{
	struct m *mp = getm();
	struct p *pp = mp && mp->p ? mp->p : allp[0];
	int64_t when = t->when; /* t may be gone once the lock is dropped */
	rt_lock(&pp->timerlock);
	atomic_store(&t->p, pp);
	heap_push(pp, t);
	bool first = pp->timers[0].t == t;
	rt_unlock(&pp->timerlock);
	if (first && !(mp && mp->p == pp && !mp->curg))
		wake_for_timer(when);
}

bool timer_del(struct timer *t)
{
	for (;;) {
		struct p *pp = atomic_load(&t->p);
		if (!pp)
			return false;
		rt_lock(&pp->timerlock);
		if (atomic_load(&t->p) != pp) { /* moved by a resize meanwhile */
			rt_unlock(&pp->timerlock);
			continue;
		}
		if (t->pos && pp->timers[t->pos - 1].t == t) {
			heap_remove(pp, t);
			rt_unlock(&pp->timerlock);
			return true;
		}
		bool running = atomic_load(&pp->timer_running) == t;
		rt_unlock(&pp->timerlock);
		if (!running)
			return false;
		sched_yield(); /* its fn is running on another M: wait for it */
	}
}

/* One M at a time runs a P's timers (its owner, or a thief): timer_running
 * is the record timer_del waits on, so a second runner leaves them to the
 * first, which keeps going while any are due. */
int64_t checktimers(struct p *pp, int64_t now)
{
	rt_lock(&pp->timerlock);
	while (pp->ntimers && pp->timers[0].when <= now && !atomic_load(&pp->timer_running)) {
		struct timer *t = pp->timers[0].t;
		void (*fn)(void *) = t->fn;
		void *arg = t->arg;
		heap_remove(pp, t);
		atomic_store(&pp->timer_running, t);
		rt_unlock(&pp->timerlock);
		fn(arg);
		rt_lock(&pp->timerlock);
		atomic_store(&pp->timer_running, NULL);
	}
	int64_t next = pp->ntimers ? pp->timers[0].when : 0;
	rt_unlock(&pp->timerlock);
	return next;
}

void timers_move(struct p *from, struct p *to)
{
	rt_lock(&from->timerlock);
	rt_lock(&to->timerlock);
	while (from->ntimers) {
		struct timer *t = from->timers[from->ntimers - 1].t;
		heap_remove(from, t);
		atomic_store(&t->p, to);
		heap_push(to, t);
	}
	rt_unlock(&to->timerlock);
	rt_unlock(&from->timerlock);
}

GMP_API int64_t gmp_now(void)
{
	return nanotime();
}

/* Sleepers woken by one checktimers run in the order of their deadlines. */
static void sleep_wake(void *arg)
{
	goready_fifo(arg);
}

static bool sleep_arm(struct g *gp, void *arg)
{
	timer_add(arg);
	return true;
}

GMP_API int gmp_sleep(int64_t ns)
{
	if (ns <= 0)
		return 0;
	struct g *gp = getg();
	if (gp->adopted) {
		struct timespec ts = { ns / 1000000000, ns % 1000000000 };
		while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
			;
		return 0;
	}
	int64_t now = nanotime();
	int64_t when = ns > INT64_MAX - now ? INT64_MAX : now + ns;
	struct timer t = { .when = when, .fn = sleep_wake, .arg = gp };
	gopark(sleep_arm, &t, "sleep");
	return 0;
}
