/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * sync.c - gmp_mutex, gmp_rwmutex, gmp_cond, gmp_waitgroup and gmp_once: Go's
 * package sync for goroutines.
 *
 * Everything here waits by parking the goroutine (gopark_unlock), never the
 * thread.  The building block is a counting semaphore (struct sema) that
 * lives inside the object: a token count, a wait queue of sudogs that sit on
 * the waiters' stacks, and an rt_lock guarding the queue.  The public types
 * are opaque arrays; each one is cast to the layout defined here, and the
 * _Static_asserts below keep every layout within its public size.  All-zero
 * bytes are a valid, ready state of every layout.
 *
 * Invariants:
 *   - sema: under its lock, count > 0 implies the queue is empty.  A release
 *     that finds a waiter hands its token straight to that waiter (sets
 *     sudog.ticket before goready), so a woken waiter never has to retry.
 *   - A waker never touches a sudog after goready(): it lives on the stack of
 *     a goroutine that may already be running again.
 *   - mutex: the fast paths are one CAS (lock) and one atomic add (unlock)
 *     on the state word and take no lock.  The state word and its algorithm
 *     follow Go's sync.Mutex: bit 0 locked, bit 1 a waiter is awake and
 *     competing, bit 2 starvation mode, bits 3.. the number of waiters.  In
 *     starvation mode (entered when a waiter has waited more than 1 ms) an
 *     unlock hands ownership directly to the waiter at the queue's head and
 *     newcomers queue behind it instead of barging.
 *   - rwmutex: writer preference, as Go: a writer subtracts RW_MAX_READERS
 *     from the reader count, so new readers see a negative count and queue.
 *   - cond: tickets, as Go's notifyList: a waiter takes a ticket before it
 *     releases the mutex, so a signal that comes before it parks is never
 *     lost; it sees its ticket already notified and returns.
 */
#include "runtime.h"

#include <stdint.h>

/* ---- the semaphore every waiting path uses ------------------------------ */

struct sema {
	_Atomic uint32_t count;	/* tokens not yet taken */
	struct rt_lock lock;	/* guards q; count grows only under it */
	struct waitq q;
};

/* Puts s at the head of q, for waiters that should be served first. */
static void waitq_push_front(struct waitq *q, struct sudog *s)
{
	dlist_push_front(&q->l, &s->link);
}

/* Takes a token if one is there, without waiting. */
static bool sema_tryacquire(struct sema *s)
{
	uint32_t v = atomic_load_explicit(&s->count, memory_order_relaxed);
	while (v > 0) {
		if (atomic_compare_exchange_weak_explicit(&s->count, &v, v - 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

/* Waits for a token.  lifo puts the caller at the head of the queue (a
 * mutex waiter that has already waited once). */
static void sema_acquire(struct sema *s, bool lifo, const char *reason)
{
	if (sema_tryacquire(s))
		return;
	struct sudog sd = { .g = getg(), .obj = s };
	rt_lock(&s->lock);
	if (sema_tryacquire(s)) {
		rt_unlock(&s->lock);
		return;
	}
	if (lifo)
		waitq_push_front(&s->q, &sd);
	else
		waitq_enqueue(&s->q, &sd);
	gopark_unlock(&s->lock, reason);
	/* woken by sema_release, which gave us its token (sd.ticket == 1) */
}

/* Yields to the goroutine just woken, as Go's goyield after a handoff, when
 * the caller is a goroutine that may yield. */
static void yield_to_woken(void)
{
	struct m *mp = getm();
	if (mp && mp->curg && !mp->curg->adopted)
		gmp_yield();
}

/* Adds a token, or gives it to the first waiter.  handoff also yields the
 * caller's P to that waiter so it runs at once (mutex starvation mode). */
static void sema_release(struct sema *s, bool handoff)
{
	rt_lock(&s->lock);
	struct sudog *sd = waitq_dequeue(&s->q);
	if (!sd) {
		atomic_fetch_add_explicit(&s->count, 1, memory_order_release);
		rt_unlock(&s->lock);
		return;
	}
	rt_unlock(&s->lock);
	struct g *gp = sd->g;
	sd->ticket = 1;
	goready(gp);
	if (handoff)
		yield_to_woken();
}

/* ---- mutex -------------------------------------------------------------- */

enum {
	MUTEX_LOCKED = 1u,
	MUTEX_WOKEN = 2u,
	MUTEX_STARVING = 4u,
	MUTEX_WAITER_SHIFT = 3,
	MUTEX_WAITER = 1u << MUTEX_WAITER_SHIFT,
	SPIN_ITERS = 4,			/* Go's active_spin */
	SPIN_PAUSES = 30,		/* Go's active_spin_cnt */
};

#define STARVATION_THRESHOLD_NS 1000000	/* 1 ms, as Go */

struct mutex_impl {
	struct sema sema;
	_Atomic uint32_t state;
};
_Static_assert(sizeof(struct mutex_impl) <= sizeof(gmp_mutex), "gmp_mutex too small");
_Static_assert(_Alignof(struct mutex_impl) <= _Alignof(gmp_mutex), "gmp_mutex misaligned");

static inline struct mutex_impl *mutex_of(gmp_mutex *mu)
{
	return (struct mutex_impl *)mu;
}

static int32_t ncpu_cached(void)
{
	static _Atomic int32_t ncpu;
	int32_t n = atomic_load_explicit(&ncpu, memory_order_relaxed);
	if (n == 0) {
		n = ncpu_usable();
		atomic_store_explicit(&ncpu, n, memory_order_relaxed);
	}
	return n;
}

/* Go's sync_runtime_canSpin: spin only a few times, only on a multicore
 * machine with another P running, and only when nothing waits to run here. */
static bool mutex_can_spin(int iter)
{
	if (iter >= SPIN_ITERS || ncpu_cached() <= 1)
		return false;
	int32_t busy = atomic_load_explicit(&sched.gomaxprocs, memory_order_relaxed) -
		       atomic_load_explicit(&sched.npidle, memory_order_relaxed) -
		       atomic_load_explicit(&sched.nmspinning, memory_order_relaxed);
	if (busy <= 1)
		return false;
	struct m *mp = getm();
	return mp && mp->p && runqempty(mp->p);
}

static void mutex_spin(void)
{
	for (int i = 0; i < SPIN_PAUSES; i++)
		cpu_relax();
}

static inline bool mutex_trylock_fast(struct mutex_impl *m)
{
	uint32_t unlocked = 0;
	return atomic_compare_exchange_weak_explicit(&m->state, &unlocked, MUTEX_LOCKED,
						     memory_order_acquire, memory_order_relaxed);
}

/* Called by a handed-off waiter: it owns the lock now; fix up the state word. */
static void mutex_take_handoff(struct mutex_impl *m, uint32_t old, bool starving)
{
	if ((old & (MUTEX_LOCKED | MUTEX_WOKEN)) || (old >> MUTEX_WAITER_SHIFT) == 0)
		fatal("sync: inconsistent mutex state");
	uint32_t delta = MUTEX_LOCKED - MUTEX_WAITER;
	/* the last waiter, or one that did not wait long, leaves starvation mode */
	if (!starving || (old >> MUTEX_WAITER_SHIFT) == 1)
		delta -= MUTEX_STARVING;
	atomic_fetch_add_explicit(&m->state, delta, memory_order_acquire);
}

/* Go's lockSlow, step by step: spin while the owner is likely to let go
 * soon, otherwise register as a waiter and park; after waking, either we
 * were handed the lock (starvation mode) or we compete again. */
static __attribute__((noinline)) void mutex_lock_slow(struct mutex_impl *m, const char *reason)
{
	int64_t wait_start = 0;
	bool starving = false, awoke = false;
	int iter = 0;
	uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
	for (;;) {
		if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED && mutex_can_spin(iter)) {
			/* tell unlock not to wake anyone: we are awake already */
			if (!awoke && !(old & MUTEX_WOKEN) && (old >> MUTEX_WAITER_SHIFT) &&
			    atomic_compare_exchange_strong_explicit(&m->state, &old, old | MUTEX_WOKEN,
								    memory_order_relaxed,
								    memory_order_relaxed))
				awoke = true;
			mutex_spin();
			iter++;
			old = atomic_load_explicit(&m->state, memory_order_relaxed);
			continue;
		}
		uint32_t new = old;
		if (!(old & MUTEX_STARVING))
			new |= MUTEX_LOCKED;	/* in starvation mode newcomers queue */
		if (old & (MUTEX_LOCKED | MUTEX_STARVING))
			new += MUTEX_WAITER;
		if (starving && (old & MUTEX_LOCKED))
			new |= MUTEX_STARVING;
		if (awoke) {
			if (!(new & MUTEX_WOKEN))
				fatal("sync: inconsistent mutex state");
			new &= ~(uint32_t)MUTEX_WOKEN;
		}
		if (!atomic_compare_exchange_weak_explicit(&m->state, &old, new,
							   memory_order_acquire,
							   memory_order_relaxed))
			continue;
		if (!(old & (MUTEX_LOCKED | MUTEX_STARVING)))
			return;		/* we took it with the CAS */
		bool waited_before = wait_start != 0;
		if (!waited_before)
			wait_start = nanotime();
		sema_acquire(&m->sema, waited_before, reason);
		starving = starving || nanotime() - wait_start > STARVATION_THRESHOLD_NS;
		old = atomic_load_explicit(&m->state, memory_order_relaxed);
		if (old & MUTEX_STARVING) {
			mutex_take_handoff(m, old, starving);
			return;
		}
		awoke = true;
		iter = 0;
	}
}

static inline void mutex_lock_reason(struct mutex_impl *m, const char *reason)
{
	if (likely(mutex_trylock_fast(m)))
		return;
	mutex_lock_slow(m, reason);
}

/* Go's unlockSlow: wake one waiter (normal mode) or hand the lock over
 * (starvation mode).  new is the state after clearing the locked bit. */
static __attribute__((noinline)) void mutex_unlock_slow(struct mutex_impl *m, uint32_t new)
{
	if (!((new + MUTEX_LOCKED) & MUTEX_LOCKED))
		fatal("sync: unlock of unlocked mutex");
	if (new & MUTEX_STARVING) {
		sema_release(&m->sema, true);
		return;
	}
	uint32_t old = new;
	for (;;) {
		/* nobody to wake, or someone already holds, is awake, or is handed it */
		if ((old >> MUTEX_WAITER_SHIFT) == 0 ||
		    (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)))
			return;
		new = (old - MUTEX_WAITER) | MUTEX_WOKEN;
		if (atomic_compare_exchange_weak_explicit(&m->state, &old, new,
							  memory_order_relaxed,
							  memory_order_relaxed)) {
			sema_release(&m->sema, false);
			return;
		}
	}
}

static inline void mutex_unlock_impl(struct mutex_impl *m)
{
	uint32_t new = atomic_fetch_sub_explicit(&m->state, MUTEX_LOCKED, memory_order_release) -
		       MUTEX_LOCKED;
	if (unlikely(new != 0))
		mutex_unlock_slow(m, new);
}

GMP_API void gmp_mutex_lock(gmp_mutex *mu)
{
	mutex_lock_reason(mutex_of(mu), "sync.Mutex.Lock");
}

GMP_API int gmp_mutex_trylock(gmp_mutex *mu)
{
	struct mutex_impl *m = mutex_of(mu);
	uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
	if (old & (MUTEX_LOCKED | MUTEX_STARVING))
		return 0;
	return atomic_compare_exchange_strong_explicit(&m->state, &old, old | MUTEX_LOCKED,
						       memory_order_acquire, memory_order_relaxed);
}

GMP_API void gmp_mutex_unlock(gmp_mutex *mu)
{
	mutex_unlock_impl(mutex_of(mu));
}

/* ---- rwmutex ------------------------------------------------------------ */

#define RW_MAX_READERS (1 << 30)

struct rwmutex_impl {
	struct mutex_impl writer_mu;	/* serialises writers */
	struct sema writer_sem;		/* a writer waits here for readers to leave */
	struct sema reader_sem;		/* readers wait here for the writer to leave */
	_Atomic int32_t reader_count;	/* readers in or waiting; negative: a writer is pending */
	_Atomic int32_t reader_wait;	/* readers the pending writer still waits for */
};
_Static_assert(sizeof(struct rwmutex_impl) <= sizeof(gmp_rwmutex), "gmp_rwmutex too small");

static inline struct rwmutex_impl *rwmutex_of(gmp_rwmutex *rw)
{
	return (struct rwmutex_impl *)rw;
}

GMP_API void gmp_rwmutex_rlock(gmp_rwmutex *rwp)
{
	struct rwmutex_impl *rw = rwmutex_of(rwp);
	if (unlikely(atomic_fetch_add_explicit(&rw->reader_count, 1, memory_order_acquire) < 0))
		sema_acquire(&rw->reader_sem, false, "sync.RWMutex.RLock");
}

static __attribute__((noinline)) void rwmutex_runlock_slow(struct rwmutex_impl *rw, int32_t r)
{
	if (r + 1 == 0 || r + 1 == -RW_MAX_READERS)
		fatal("sync: RUnlock of unlocked RWMutex");
	/* the last reader the pending writer waited for lets it in */
	if (atomic_fetch_sub_explicit(&rw->reader_wait, 1, memory_order_acq_rel) - 1 == 0)
		sema_release(&rw->writer_sem, false);
}

GMP_API void gmp_rwmutex_runlock(gmp_rwmutex *rwp)
{
	struct rwmutex_impl *rw = rwmutex_of(rwp);
	int32_t r = atomic_fetch_sub_explicit(&rw->reader_count, 1, memory_order_release) - 1;
	if (unlikely(r < 0))
		rwmutex_runlock_slow(rw, r);
}

GMP_API void gmp_rwmutex_lock(gmp_rwmutex *rwp)
{
	struct rwmutex_impl *rw = rwmutex_of(rwp);
	mutex_lock_reason(&rw->writer_mu, "sync.RWMutex.Lock");
	/* announce the writer; r is how many readers are still inside */
	int32_t r = atomic_fetch_sub_explicit(&rw->reader_count, RW_MAX_READERS,
					      memory_order_acq_rel);
	if (r != 0 &&
	    atomic_fetch_add_explicit(&rw->reader_wait, r, memory_order_acq_rel) + r != 0)
		sema_acquire(&rw->writer_sem, false, "sync.RWMutex.Lock");
}

GMP_API void gmp_rwmutex_unlock(gmp_rwmutex *rwp)
{
	struct rwmutex_impl *rw = rwmutex_of(rwp);
	int32_t r = atomic_fetch_add_explicit(&rw->reader_count, RW_MAX_READERS,
					      memory_order_release) + RW_MAX_READERS;
	if (r >= RW_MAX_READERS)
		fatal("sync: Unlock of unlocked RWMutex");
	/* let in the readers that queued while we held it */
	for (int32_t i = 0; i < r; i++)
		sema_release(&rw->reader_sem, false);
	mutex_unlock_impl(&rw->writer_mu);
}

/* ---- cond --------------------------------------------------------------- */

struct cond_impl {
	_Atomic uint32_t wait;		/* next ticket to hand to a waiter */
	_Atomic uint32_t notify;	/* next ticket to wake; written under lock */
	struct rt_lock lock;		/* guards q and notify */
	struct waitq q;			/* sudog.ticket holds each waiter's ticket */
};
_Static_assert(sizeof(struct cond_impl) <= sizeof(gmp_cond), "gmp_cond too small");

static inline struct cond_impl *cond_of(gmp_cond *cv)
{
	return (struct cond_impl *)cv;
}

/* a < b for tickets that may wrap */
static inline bool ticket_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

/* Parks until ticket t is notified (at once if it already was). */
static void cond_wait_ticket(struct cond_impl *c, uint32_t t)
{
	rt_lock(&c->lock);
	if (ticket_before(t, atomic_load_explicit(&c->notify, memory_order_relaxed))) {
		rt_unlock(&c->lock);
		return;
	}
	struct sudog sd = { .g = getg(), .obj = c, .ticket = t };
	waitq_enqueue(&c->q, &sd);
	gopark_unlock(&c->lock, "sync.Cond.Wait");
}

GMP_API void gmp_cond_wait(gmp_cond *cv, gmp_mutex *mu)
{
	struct cond_impl *c = cond_of(cv);
	uint32_t t = atomic_fetch_add_explicit(&c->wait, 1, memory_order_acq_rel);
	gmp_mutex_unlock(mu);
	cond_wait_ticket(c, t);
	gmp_mutex_lock(mu);
}

/* Unlinks the waiter holding ticket t, if it has queued yet. */
static struct sudog *cond_take_ticket(struct cond_impl *c, uint32_t t)
{
	for (struct sudog *s = waitq_first(&c->q); s; s = waitq_next(s)) {
		if ((uint32_t)s->ticket == t) {
			waitq_remove(&c->q, s);
			return s;
		}
	}
	return NULL;
}

GMP_API void gmp_cond_signal(gmp_cond *cv)
{
	struct cond_impl *c = cond_of(cv);
	/* nobody has taken a ticket since the last wake-up: nothing to do */
	if (atomic_load_explicit(&c->wait, memory_order_acquire) ==
	    atomic_load_explicit(&c->notify, memory_order_relaxed))
		return;
	rt_lock(&c->lock);
	uint32_t t = atomic_load_explicit(&c->notify, memory_order_relaxed);
	if (t == atomic_load_explicit(&c->wait, memory_order_acquire)) {
		rt_unlock(&c->lock);
		return;
	}
	atomic_store_explicit(&c->notify, t + 1, memory_order_relaxed);
	struct sudog *s = cond_take_ticket(c, t);
	rt_unlock(&c->lock);
	if (s)
		goready(s->g);	/* otherwise it will see its ticket notified */
}

GMP_API void gmp_cond_broadcast(gmp_cond *cv)
{
	struct cond_impl *c = cond_of(cv);
	if (atomic_load_explicit(&c->wait, memory_order_acquire) ==
	    atomic_load_explicit(&c->notify, memory_order_relaxed))
		return;
	rt_lock(&c->lock);
	atomic_store_explicit(&c->notify, atomic_load_explicit(&c->wait, memory_order_acquire),
			      memory_order_relaxed);
	struct sudog *s = waitq_first(&c->q);
	c->q.l = (struct dlist){ NULL, NULL };
	rt_unlock(&c->lock);
	while (s) {
		struct sudog *next = waitq_next(s);	/* read before s's owner runs again */
		goready(s->g);
		s = next;
	}
}

/* ---- waitgroup ---------------------------------------------------------- */

struct waitgroup_impl {
	_Atomic uint64_t state;	/* high 32 bits: counter; low 32 bits: waiters */
	struct sema sema;
};
_Static_assert(sizeof(struct waitgroup_impl) <= sizeof(gmp_waitgroup), "gmp_waitgroup too small");

static inline struct waitgroup_impl *wg_of(gmp_waitgroup *wg)
{
	return (struct waitgroup_impl *)wg;
}

/* The counter reached zero with waiters: reset and wake them all. */
static __attribute__((noinline)) void wg_wake_all(struct waitgroup_impl *w, uint64_t state)
{
	/* Nobody may touch the group now: Add and Wait both see counter 0 with
	 * waiters only in a misuse, which Go reports the same way. */
	if (atomic_load_explicit(&w->state, memory_order_relaxed) != state)
		fatal("sync: WaitGroup misuse: Add called concurrently with Wait");
	atomic_store_explicit(&w->state, 0, memory_order_relaxed);
	for (uint32_t n = (uint32_t)state; n > 0; n--)
		sema_release(&w->sema, false);
}

GMP_API void gmp_wg_add(gmp_waitgroup *wg, int64_t delta)
{
	struct waitgroup_impl *w = wg_of(wg);
	if (delta > INT32_MAX || delta < INT32_MIN)
		fatal("sync: WaitGroup delta %lld out of range", (long long)delta);
	uint64_t state = atomic_fetch_add_explicit(&w->state, (uint64_t)delta << 32,
						   memory_order_acq_rel) + ((uint64_t)delta << 32);
	int32_t v = (int32_t)(state >> 32);
	uint32_t waiters = (uint32_t)state;
	if (unlikely(v < 0))
		fatal("sync: negative WaitGroup counter");
	if (waiters != 0 && delta > 0 && v == (int32_t)delta)
		fatal("sync: WaitGroup misuse: Add called concurrently with Wait");
	if (v > 0 || waiters == 0)
		return;
	wg_wake_all(w, state);
}

GMP_API void gmp_wg_done(gmp_waitgroup *wg)
{
	gmp_wg_add(wg, -1);
}

GMP_API void gmp_wg_wait(gmp_waitgroup *wg)
{
	struct waitgroup_impl *w = wg_of(wg);
	uint64_t state = atomic_load_explicit(&w->state, memory_order_acquire);
	for (;;) {
		if ((state >> 32) == 0)
			return;
		if (atomic_compare_exchange_weak_explicit(&w->state, &state, state + 1,
							  memory_order_acq_rel,
							  memory_order_acquire))
			break;
	}
	sema_acquire(&w->sema, false, "sync.WaitGroup.Wait");
	if (atomic_load_explicit(&w->state, memory_order_acquire) != 0)
		fatal("sync: WaitGroup is reused before previous Wait has returned");
}

/* ---- once --------------------------------------------------------------- */

struct once_impl {
	_Atomic uint32_t done;		/* 1 once fn has returned */
	struct mutex_impl mu;		/* held while fn runs */
};
_Static_assert(sizeof(struct once_impl) <= sizeof(gmp_once), "gmp_once too small");

static __attribute__((noinline)) void once_slow(struct once_impl *o, void (*fn)(void))
{
	mutex_lock_reason(&o->mu, "sync.Once");
	if (!atomic_load_explicit(&o->done, memory_order_relaxed)) {
		fn();
		atomic_store_explicit(&o->done, 1, memory_order_release);
	}
	mutex_unlock_impl(&o->mu);
}

GMP_API void gmp_once_do(gmp_once *once, void (*fn)(void))
{
	struct once_impl *o = (struct once_impl *)once;
	if (likely(atomic_load_explicit(&o->done, memory_order_acquire)))
		return;
	once_slow(o, fn);
}
