/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * runq.c - run queues: each P's local ring and runnext, the global queue.
 *
 * Local queue (Go's runq): a 256-slot ring.  Only the owning P's M writes
 * runqtail (plain store-release); any M may advance runqhead with a CAS, which
 * is how thieves take work without a lock.  With GMP_MAXPROCS=1 there are no
 * thieves, and the owner takes from its ring and swaps runnext with plain stores
 * (no_thieves).  runnext holds the G that the owner readied last (a woken
 * channel partner, a new goroutine): it runs next and inherits the current
 * time slice, so a producer/consumer pair stays on one P.
 *
 * A full ring spills half of itself, plus the new G, to the global queue in
 * one batch (runqputslow).  A thief takes half of a victim's ring
 * (runqgrab), and the victim's runnext only when told to.
 *
 * runnext with thieves about: the owner takes or swaps it on nearly every
 * switch, a thief takes it rarely (last, after yielding the CPU to the
 * victim), so the fence that arbitrates between them is the thief's alone,
 * an asymmetric Dekker:
 *   owner: runnext_owner = 1; if runnext_thieves == 0, plain load and
 *          store of runnext, else a CAS / exchange; runnext_owner = 0
 *   thief: runnext_thieves++; process_fence (lock.c); wait while
 *          runnext_owner; CAS runnext; runnext_thieves--
 * The owner's CPU passes the fence before its flag store is visible (then
 * its count load comes after the fence and sees the thief, and it takes the
 * CAS path), or after (then the thief sees the flag and waits for the
 * window to close; the plain store in it is visible by then).  Either way
 * exactly one of them gets a given G.  Without process_fence_ok every P
 * counts one thief for good, and owners always CAS.
 *
 * Global queue: a gring (below) guarded by sched.lock; sched.runqsize
 * mirrors its length so that a P can see it is empty without taking the
 * lock.
 */
#include "runtime.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void runq_p_init(struct p *pp)
{
	atomic_store(&pp->runnext_owner, 0);
	atomic_store(&pp->runnext_thieves, process_fence_ok ? 0 : 1);
}

/* A thief's half of the runnext protocol (above): once it returns, victim's
 * owner takes the CAS path or has closed its window. */
static void runnext_thief_enter(struct p *victim)
{
	atomic_fetch_add(&victim->runnext_thieves, 1);
	if (process_fence_ok)
		process_fence();
	while (atomic_load(&victim->runnext_owner))
		sched_yield();
}

static void runnext_thief_exit(struct p *victim)
{
	atomic_fetch_sub(&victim->runnext_thieves, 1);
}

/* ---- gring: a growable ring of G pointers ---------------------------------- */

static void gring_grow(struct gring *r, uint32_t need)
{
	uint32_t cap = r->cap ? r->cap : 64;
	while (cap < need) {
		if (cap > UINT32_MAX / 2)
			fatal_nodump("run queue of %u goroutines overflows", need);
		cap *= 2;
	}
	struct g **buf = malloc((size_t)cap * sizeof(*buf));
	if (!buf)
		fatal_nodump("out of memory growing a queue to %u goroutines", cap);
	for (uint32_t i = 0; i < r->len; i++)
		buf[i] = r->buf[(r->head + i) & (r->cap - 1)];
	free(r->buf);
	r->buf = buf;
	r->cap = cap;
	r->head = 0;
}

void gring_push_n(struct gring *r, struct g *const *gs, uint32_t n)
{
	if (r->len + n > r->cap)
		gring_grow(r, r->len + n);
	uint32_t tail = r->head + r->len;
	for (uint32_t i = 0; i < n; i++)
		r->buf[(tail + i) & (r->cap - 1)] = gs[i];
	r->len += n;
}

uint32_t gring_take_front(struct gring *r, struct g **out, uint32_t max)
{
	uint32_t n = r->len < max ? r->len : max;
	for (uint32_t i = 0; i < n; i++)
		out[i] = r->buf[(r->head + i) & (r->cap - 1)];
	r->head = (r->head + n) & (r->cap ? r->cap - 1 : 0);
	r->len -= n;
	return n;
}

uint32_t gring_take_back(struct gring *r, struct g **out, uint32_t max)
{
	uint32_t n = r->len < max ? r->len : max;
	r->len -= n;
	uint32_t from = r->head + r->len;
	for (uint32_t i = 0; i < n; i++)
		out[i] = r->buf[(from + i) & (r->cap - 1)];
	return n;
}

/* ---- local run queues -------------------------------------------------------- */

/* Spills half of a full ring and gp to the global queue; false if a thief
 * moved runqhead meanwhile. */
static bool runqputslow(struct p *pp, struct g *gp, uint32_t head, uint32_t tail)
{
	struct g *batch[RUNQ_SIZE / 2 + 1];
	uint32_t n = (tail - head) / 2;
	for (uint32_t i = 0; i < n; i++)
		batch[i] = slot_load(pp, head + i);
	if (!atomic_compare_exchange_strong_explicit(&pp->runqhead, &head, head + n,
						     memory_order_release, memory_order_relaxed))
		return false;
	batch[n] = gp;
	rt_lock(&sched.lock);
	globrunqputbatch(batch, n + 1);
	rt_unlock(&sched.lock);
	return true;
}

void runqput_full(struct p *pp, struct g *gp)
{
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
		if (tail - head < RUNQ_SIZE) {
			/* A thief made room, which only we can fill. */
			runqput(pp, gp, false);
			return;
		}
		if (runqputslow(pp, gp, head, tail))
			return;
	}
}

/* Copies half of victim's queue into batch[]; returns how many. */
static uint32_t runqgrab(struct p *victim, struct g **batch, bool steal_runnext)
{
	for (;;) {
		uint32_t head = atomic_load_explicit(&victim->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&victim->runqtail, memory_order_acquire);
		uint32_t n = tail - head;
		n -= n / 2;
		if (n == 0) {
			if (!steal_runnext)
				return 0;
			struct g *next = atomic_load_explicit(&victim->runnext, memory_order_acquire);
			if (!next)
				return 0;
			/* The victim is likely about to run it (a channel hand-off
			 * takes well under a microsecond): give it that chance. */
			if (P_OWNER(atomic_load_explicit(&victim->status, memory_order_relaxed)))
				sched_yield();
			runnext_thief_enter(victim);
			bool taken = atomic_compare_exchange_strong(&victim->runnext, &next, NULL);
			runnext_thief_exit(victim);
			if (!taken)
				continue;
			batch[0] = next;
			return 1;
		}
		if (n > RUNQ_SIZE / 2)
			continue; /* inconsistent read of head and tail */
		for (uint32_t i = 0; i < n; i++)
			batch[i] = slot_load(victim, head + i);
		if (atomic_compare_exchange_strong_explicit(&victim->runqhead, &head, head + n,
							    memory_order_acq_rel,
							    memory_order_relaxed))
			return n;
	}
}

/* Steals half of victim's work into pp's queue and returns one G to run. */
struct g *runqsteal(struct p *pp, struct p *victim, bool steal_runnext)
{
	struct g *batch[RUNQ_SIZE / 2];
	uint32_t n = runqgrab(victim, batch, steal_runnext);
	if (n == 0)
		return NULL;
	uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
	for (uint32_t i = 1; i < n; i++)
		slot_store(pp, tail + i - 1, batch[i]);
	atomic_store_explicit(&pp->runqtail, tail + n - 1, memory_order_release);
	owner_count(pp->nsteal, 1);
	atomic_fetch_add_explicit(&victim->nstolen, n, memory_order_relaxed);
	return batch[0];
}

/* ---- the global run queue ----------------------------------------------------- */

void globrunqput(struct g *gp)
{
	globrunqputbatch(&gp, 1);
}

void globrunqputbatch(struct g *const *gs, uint32_t n)
{
	gring_push_n(&sched.runq, gs, n);
	atomic_fetch_add_explicit(&sched.runqsize, n, memory_order_relaxed);
}

/* Takes a fair share of the global queue: one G to run now, and up to half
 * of the local ring's room worth more onto pp's queue. */
struct g *globrunqget(struct p *pp, int32_t max)
{
	int64_t size = atomic_load_explicit(&sched.runqsize, memory_order_relaxed);
	if (size == 0)
		return NULL;
	int32_t gmp = atomic_load_explicit(&sched.gomaxprocs, memory_order_relaxed);
	int64_t n = size / gmp + 1;
	if (n > size)
		n = size;
	if (max > 0 && n > max)
		n = max;
	if (n > RUNQ_SIZE / 2)
		n = RUNQ_SIZE / 2;
	struct g *batch[RUNQ_SIZE / 2];
	n = gring_take_front(&sched.runq, batch, (uint32_t)n);
	atomic_fetch_sub_explicit(&sched.runqsize, n, memory_order_relaxed);
	for (int64_t i = 1; i < n; i++)
		runqput(pp, batch[i], false);
	return batch[0];
}
