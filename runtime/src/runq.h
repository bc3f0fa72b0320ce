/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * runq.h - a P's local run queue: the operations on every switch, inline
 * (included by runtime.h; the slow paths, stealing and the global queue are
 * in runq.c, whose header comment describes the protocol).
 *
 * Only pp's owner calls runqput, runqget and runqempty_own; thieves use
 * runqsteal, and anyone may ask runqempty.
 */
#ifndef GMPRT_RUNQ_H
#define GMPRT_RUNQ_H

/* runqput's tail end for a ring that looked full: spills half of it and gp
 * to the global queue (or, if a thief made room meanwhile, puts gp at the
 * tail). */
void runqput_full(struct p *pp, struct g *gp);

/* Ring slot i, as a byte offset from the ring: GCC folds that into one
 * addressing mode, where &pp->runq[i % RUNQ_SIZE] costs an add more. */
static inline struct g **slot_addr(struct p *pp, uint32_t i)
{
	return (struct g **)((char *)pp->runq + (size_t)(i % RUNQ_SIZE) * sizeof(struct g *));
}

/* Ring slots are read racily by thieves, who then validate with a CAS on
 * runqhead: relaxed atomics say so (and keep TSan informed). */
static inline struct g *slot_load(struct p *pp, uint32_t i)
{
	return __atomic_load_n(slot_addr(pp, i), __ATOMIC_RELAXED);
}

static inline void slot_store(struct p *pp, uint32_t i, struct g *gp)
{
	__atomic_store_n(slot_addr(pp, i), gp, __ATOMIC_RELAXED);
}

/* The ring's ends in one load, for the owner (who alone moves the tail);
 * RUNQ_HEAD and RUNQ_TAIL take them apart. */
static inline uint64_t runqends_own(struct p *pp)
{
	return atomic_load_explicit(&pp->runqends, memory_order_relaxed);
}
#define RUNQ_HEAD(ends) ((uint32_t)(ends))
#define RUNQ_TAIL(ends) ((uint32_t)((ends) >> 32))

/* With one P there is nobody to steal from it: stealing runs only on an M
 * that owns another P.  gomaxprocs changes only while the world is stopped,
 * when no owner is inside these functions, so the owner may then take from
 * its own queue, and replace runnext, without the locked instructions that
 * arbitrate with thieves. */
static inline bool no_thieves(void)
{
	return atomic_load_explicit(&sched.gomaxprocs, memory_order_relaxed) == 1;
}

/* The owner's side of runnext with thieves about (runq.c has the protocol):
 * a window in which the owner reads and writes runnext with plain loads and
 * stores, open only while no thief is after it.  The flag is stored before
 * the thieves are counted; the store-load order that this needs is the
 * thief's membarrier's to supply, so the owner pays no fence. */
static inline bool runnext_window_open(struct p *pp)
{
	atomic_store_explicit(&pp->runnext_owner, 1, memory_order_relaxed);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return likely(atomic_load_explicit(&pp->runnext_thieves, memory_order_acquire) == 0);
}

static inline void runnext_window_close(struct p *pp)
{
	atomic_store_explicit(&pp->runnext_owner, 0, memory_order_release);
}

/* Puts gp (NULL: takes it) in runnext and returns what was there.  Only the
 * owner fills runnext, so what a thief leaves there is NULL. */
static inline struct g *runnext_swap(struct p *pp, struct g *gp)
{
	if (runnext_window_open(pp)) {
		struct g *old = atomic_load_explicit(&pp->runnext, memory_order_relaxed);
		atomic_store_explicit(&pp->runnext, gp, memory_order_release);
		runnext_window_close(pp);
		return old;
	}
	runnext_window_close(pp);
	return atomic_exchange_explicit(&pp->runnext, gp, memory_order_acq_rel);
}

/* Puts gp on pp's local queue; with next, in runnext (kicking the old one out
 * to the tail).  Only pp's owner calls this. */
static hot_inline void runqput(struct p *pp, struct g *gp, bool next)
{
	if (next) {
		/* Only the owner makes runnext non-NULL (thieves only empty it),
		 * so an empty runnext stays empty until our store. */
		struct g *old = atomic_load_explicit(&pp->runnext, memory_order_relaxed);
		if (!old || no_thieves()) {
			atomic_store_explicit(&pp->runnext, gp, memory_order_release);
			if (!old)
				return;
			gp = old;
		} else {
			gp = runnext_swap(pp, gp);
			if (!gp)
				return;
		}
	}
	uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
	if (likely(tail - head < RUNQ_SIZE)) {
		slot_store(pp, tail, gp);
		atomic_store_explicit(&pp->runqtail, tail + 1, memory_order_release);
		return;
	}
	runqput_full(pp, gp);
}

/* runqget when there are no thieves: plain loads and stores. */
static inline struct g *runqget_alone(struct p *pp, bool *inherit)
{
	struct g *next = atomic_load_explicit(&pp->runnext, memory_order_relaxed);
	*inherit = next != NULL;
	if (next) {
		atomic_store_explicit(&pp->runnext, NULL, memory_order_relaxed);
		return next;
	}
	uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_relaxed);
	if (atomic_load_explicit(&pp->runqtail, memory_order_relaxed) == head)
		return NULL;
	atomic_store_explicit(&pp->runqhead, head + 1, memory_order_relaxed);
	return slot_load(pp, head);
}

/* With no thieves, gp to the ring's tail and the ring's head out, in one
 * step: a yield's whole run-queue work.  The ring's length is unchanged, so
 * it cannot overflow (full, head and tail share a slot: read before it is
 * written).  NULL, having done nothing, when runnext holds a G or the ring
 * is empty: runqget_alone's other cases. */
static inline struct g *runqrotate_alone(struct p *pp, struct g *gp)
{
	if (atomic_load_explicit(&pp->runnext, memory_order_relaxed))
		return NULL;
	uint64_t ends = runqends_own(pp);
	uint32_t head = RUNQ_HEAD(ends), tail = RUNQ_TAIL(ends);
	if (tail == head)
		return NULL;
	struct g *next = slot_load(pp, head);
	if (!next)
		__builtin_unreachable(); /* a slot between head and tail holds a G */
	slot_store(pp, tail, gp);
	/* both ends in one store, each wrapping on its own */
	atomic_store_explicit(&pp->runqends, (uint64_t)(tail + 1) << 32 | (uint32_t)(head + 1),
			      memory_order_release);
	return next;
}

/* Takes the next G from pp's local queue; *inherit says it came from runnext
 * and should keep the current time slice.  Only pp's owner calls this. */
static hot_inline struct g *runqget(struct p *pp, bool *inherit)
{
	if (no_thieves())
		return runqget_alone(pp, inherit);
	struct g *next = atomic_load_explicit(&pp->runnext, memory_order_relaxed);
	if (next && (next = runnext_swap(pp, NULL))) {
		*inherit = true;
		return next;
	}
	*inherit = false;
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
		if (tail == head)
			return NULL;
		struct g *gp = slot_load(pp, head);
		if (atomic_compare_exchange_weak_explicit(&pp->runqhead, &head, head + 1,
							  memory_order_release, memory_order_relaxed))
			return gp;
	}
}

/* Nothing in pp's ring or runnext (a snapshot, for any thread). */
static inline bool runqempty(struct p *pp)
{
	/* Read tail, runnext, then tail again, so a G moving from runnext to
	 * the ring is not missed. */
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_acquire);
		struct g *next = atomic_load_explicit(&pp->runnext, memory_order_acquire);
		if (tail == atomic_load_explicit(&pp->runqtail, memory_order_acquire))
			return head == tail && next == NULL;
	}
}

/* runqempty for pp's owner: only the owner fills runnext or moves the
 * tail, so one look at each suffices. */
static inline bool runqempty_own(struct p *pp)
{
	uint64_t ends = runqends_own(pp);
	return RUNQ_HEAD(ends) == RUNQ_TAIL(ends) &&
	       atomic_load_explicit(&pp->runnext, memory_order_relaxed) == NULL;
}

#endif /* GMPRT_RUNQ_H */
