/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * proc.c - the scheduler: goroutines (G) on threads (M) that own processors (P).
 *
 * The mechanics are Go's (src/runtime/proc.go):
 *   - gmp_go puts the new G in its P's runnext and wakes an idle P (wakep).
 *   - An M looks for work in findrunnable: its P's timers, local queue (with
 *     the global queue first on every 61st schedtick, for fairness), the
 *     global queue, the network, then steals half of a random victim's queue.
 *     At most half the busy Ps have a spinning M at a time.
 *   - An M with nothing to do gives its P back (pidleput) and sleeps on its
 *     note; the last one blocks in netpoll until the next timer.
 *   - A bound G (gmp_lock_os_thread) runs only on its M; when it becomes
 *     runnable on another M, that M hands it its P (startlockedm).
 *
 * Where gmprt differs:
 *   - A parking or yielding G switches straight to the next G of its P when
 *     there is one, without passing through g0; the action that must follow
 *     the save of its registers (unlock the channel, requeue the yielder, free
 *     the dead G) travels in m->after and runs in switch_finish().
 *   - goready() of a woken channel partner puts it in runnext and wakes an
 *     idle P only when the local queue already holds other work: a lone
 *     runnext G runs as soon as its waker parks, and sysmon wakes a P for it
 *     if the waker keeps running.  gmp_go always wakes a P.
 *   - A thread that gmprt did not start and that calls the API is adopted:
 *     it gets a G (bound, adopted) that never owns a P; where a goroutine
 *     would park, it sleeps on a futex in that G.
 *   - Kernel assist: p->status is the P's one ownership word (owner M |
 *     P_USER or P_RUNTIME); rt_enter/rt_exit bracket runtime code, and a
 *     retaker (sysmon, the watcher M, a spinner, a stop of the world) takes
 *     the P of an M that the kernel saw block in goroutine code (claim).
 *     The M finds out at its next rt_enter and behaves as Go's exitsyscall.
 *   - Backpressure: a goroutine that spawns a run queue's worth without
 *     waiting while the global queue is long yields behind that backlog.
 *   - Idle Ms beyond max(4, GMP_MAXPROCS) end their threads.
 *
 * Locks: sched.lock guards the idle M and P lists and the global run queue;
 * sched.gflock the global free Gs; each P's timerlock its timers.  Order:
 * stwlock, then sched.lock; a timerlock is never held with sched.lock.
 */
#include "runtime.h"
#include "kassist.h"
#include "san.h"
#if defined(__x86_64__)
#include "switch_x86_64.h"
#elif defined(__aarch64__)
#include "switch_aarch64.h"
#else
#error "gmprt: no context switch for this architecture"
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct sched sched;
struct p *allp[MAXPROCS_LIMIT];
__thread struct m *tls_m __attribute__((tls_model("initial-exec")));

static struct m m0;		/* the main thread */
static struct g g1;		/* main(): goroutine 1 */
static _Atomic int32_t nallp;	/* allp entries ever allocated */
static int32_t stealorder[MAXPROCS_LIMIT]; /* coprimes of gomaxprocs */
static int32_t nstealorder;
static _Atomic bool sysmon_running;

enum {
	GFREE_WARM_MAX = 1024,	/* idle global free Gs kept with committed stacks */
	M_STACK = 512 << 10,	/* thread stack of gmprt's Ms (their g0) */
	G0_STACK = 256 << 10,	/* mapped g0 stack for the main thread */
	FAIRNESS_TICKS = 61,
};

static void schedule(void) __attribute__((noreturn));
static void startm(struct p *pp, bool spinning);
static void stopm(void);
static void sysmon_start(void);
void sysmon_main(void);

/* ---- small helpers ------------------------------------------------------ */

int64_t nanotime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rand_next(uint64_t *state)
{
	/* wyrand */
	*state += 0xa0761d6478bd642fULL;
	__uint128_t t = (__uint128_t)*state * (*state ^ 0xe7037ed1a0b428dbULL);
	return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

uint32_t fastrand(void)
{
	struct m *mp = getm();
	if (!mp) {
		static _Atomic uint64_t shared_state = 0x9e3779b97f4a7c15ULL;
		uint64_t s = atomic_fetch_add(&shared_state, 0x9e3779b97f4a7c15ULL);
		return (uint32_t)rand_next(&s);
	}
	return (uint32_t)rand_next(&mp->rand_state);
}

static int32_t gettid_(void)
{
	return (int32_t)syscall(SYS_gettid);
}

static int32_t maxprocs_now(void)
{
	return atomic_load_explicit(&sched.gomaxprocs, memory_order_relaxed);
}

/* sched.solo, the one-word test of a yield's common case: one P, so no
 * thieves, and no stop of the world for g0.  Recomputed wherever either
 * changes, which is under the stop-the-world lock. */
static void sched_solo_update(void)
{
	atomic_store(&sched.solo, atomic_load(&sched.gomaxprocs) == 1 && !atomic_load(&sched.gcwaiting));
}

/* ---- all Gs, for dumps --------------------------------------------------- */

enum { ALLG_CHUNK = 4096 };
static struct g **allg_chunks[1 << 16];
static _Atomic int64_t allglen;
static struct rt_lock allglock;

static void allg_add_locked(struct g *gp)
{
	int64_t n = atomic_load_explicit(&allglen, memory_order_relaxed);
	int64_t c = n / ALLG_CHUNK;
	if (c >= (int64_t)(sizeof(allg_chunks) / sizeof(allg_chunks[0])))
		fatal_nodump("too many goroutines");
	if (!allg_chunks[c]) {
		allg_chunks[c] = calloc(ALLG_CHUNK, sizeof(struct g *));
		if (!allg_chunks[c])
			fatal_nodump("out of memory for the goroutine table");
	}
	allg_chunks[c][n % ALLG_CHUNK] = gp;
	atomic_store_explicit(&allglen, n + 1, memory_order_release);
}

void allg_add(struct g *gp)
{
	rt_lock(&allglock);
	allg_add_locked(gp);
	rt_unlock(&allglock);
}

void allg_foreach(void (*fn)(struct g *, void *), void *arg)
{
	int64_t n = atomic_load_explicit(&allglen, memory_order_acquire);
	for (int64_t i = 0; i < n; i++)
		fn(allg_chunks[i / ALLG_CHUNK][i % ALLG_CHUNK], arg);
}

/* ---- context switch ------------------------------------------------------ */

static void run_after_slow(struct m *mp)
{
	struct after_switch a = mp->after;
	mp->after.kind = AFTER_NONE;
	switch (a.kind) {
	case AFTER_NONE:
		break; /* run_after looked */
	case AFTER_PARK:
		/* Only now, with its registers saved, may a waker take it. */
		atomic_store_explicit(&a.g->status, G_WAITING, memory_order_release);
		if (a.unlockf && !a.unlockf(a.g, a.arg)) {
			/* The wait was called off: a.g is runnable again. */
			int waiting = G_WAITING;
			if (atomic_compare_exchange_strong(&a.g->status, &waiting, G_RUNNABLE))
				runqput(mp->p, a.g, true);
		}
		break;
	case AFTER_PARK_UNLOCK:
		atomic_store_explicit(&a.g->status, G_WAITING, memory_order_release);
		rt_unlock_in(a.arg);
		rt_exit_m(mp);
		break;
	case AFTER_RUNQPUT:
		runqput(mp->p, a.g, false);
		break;
	case AFTER_GLOBRUNQPUT:
		rt_lock(&sched.lock);
		globrunqput(a.g);
		rt_unlock(&sched.lock);
		wakep(); /* a P that went idle meanwhile must see it */
		break;
	case AFTER_GFREE: {
		void gfput(struct p * pp, struct g * gp);
		gfput(mp->p, a.g);
		break;
	}
	}
}

static inline void run_after(struct m *mp)
{
	if (mp->after.kind != AFTER_NONE)
		run_after_slow(mp);
}

/* Runs on the arriving side of every switch, on mp (the M we are on now),
 * which it returns.  arm is what the switcher passed (switch_to_arming):
 * with one, mp->after is empty. */
static hot_inline struct m *switch_finish(struct m *mp, struct g *self, uint32_t arm)
{
	san_after_switch(self);
	if (!arm)
		run_after(mp);
	return mp;
}

/* Canary-mode overflow check at a switch.  The canary is read only when the
 * G is in the lower half of its stack: reading the bottom page of every G
 * costs a page fault each (the zero page gets mapped).  An overflow that
 * has unwound by then is caught only if it faulted (panic.c checks sp). */
static void check_stack(struct g *gp)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t mid = gp->stack.lo + (gp->stack.hi - gp->stack.lo) / 2;
	if (sp < gp->stack.lo || (sp < mid && !stack_canary_intact(&gp->stack)))
		fatal("stack overflow in goroutine %lld (stack %zu bytes)", (long long)gp->goid,
		      (size_t)(gp->stack.hi - gp->stack.lo));
}

/* Saves from's context and resumes to's, on mp, the current M.  Returns
 * when from is switched back to, possibly on another M: that M.
 *
 * *arm, in, may spare the G resumed the work of its return to goroutine code
 * (rt_exit_armed): 0, or the word to arm mp's slot with, which the switcher
 * may pass only when mp->after is empty and nothing but mp can change its
 * P's queue before the G arms (one P: no thieves).  Out, it is what the
 * switch that resumed from passed. */
static hot_inline struct m *switch_to_arming(struct m *mp, struct g *from, struct g *to,
					     bool from_dead, uint32_t *arm)
{
	if (!from->stack.guarded && from->stack.hi) /* most stacks are guarded */
		check_stack(from);
	san_before_switch(from, to, from_dead);
	mp = gmprt_swap(&from->sp, to->sp, mp, arm);
	if (!mp)
		__builtin_unreachable(); /* so callers' tests of the M we return fold */
	return switch_finish(mp, from, *arm);
}

static hot_inline struct m *switch_to(struct m *mp, struct g *from, struct g *to, bool from_dead)
{
	uint32_t arm = 0;
	return switch_to_arming(mp, from, to, from_dead, &arm);
}

/* First code of every new goroutine, and of the main thread's g0. */
void gostart(void) __attribute__((noreturn, used));
void goexit1(void) __attribute__((noreturn));

void gostart(void)
{
	struct m *mp = getm();
	struct g *gp = mp->curg;
	if (!gp) {
		switch_finish(mp, &mp->g0, 0);
		schedule();
	}
	rt_exit_last(switch_finish(mp, gp, 0));
	gp->fn(gp->arg);
	goexit1();
}

/* ---- P ownership ---------------------------------------------------------- */

/* The status of a P that mp takes in runtime code: P_USER with a slot,
 * which tells the retaker to ask the slot; P_RUNTIME without one, until
 * its rt_exit. */
static uintptr_t p_owned_status(const struct m *mp)
{
	return (uintptr_t)mp | (mp->slot ? P_USER : P_RUNTIME);
}

static void acquirep(struct p *pp)
{
	struct m *mp = getm();
	if (mp->p || pp->m)
		fatal_nodump("acquirep: P %d already owned", pp->id);
	mp->p = pp;
	pp->m = mp;
	atomic_store(&pp->status, p_owned_status(mp));
}

static bool p_still_mine(struct m *mp);

__attribute__((noinline)) static struct p *releasep(void)
{
	struct m *mp = getm();
	struct p *pp = mp->p;
	/* Ours, or stopped by our own stop of the world; a retaker's check
	 * (P_RETAKING) is waited out in p_still_mine. */
	if (atomic_load(&pp->status) != P_STOPPED && !p_still_mine(mp))
		fatal_nodump("releasep: P %d is not ours (status %#lx, M%d, called from %p)", pp->id,
			     (unsigned long)atomic_load(&pp->status), mp->id,
			     __builtin_return_address(0));
	mp->p = NULL;
	pp->m = NULL;
	atomic_store(&pp->status, P_IDLE);
	return pp;
}

/* sched.lock held */
static void pidleput(struct p *pp)
{
	atomic_store(&pp->status, P_IDLE);
	pp->link = sched.pidle;
	sched.pidle = pp;
	atomic_fetch_add(&sched.npidle, 1);
}

/* sched.lock held */
static struct p *pidleget(void)
{
	struct p *pp = sched.pidle;
	if (pp) {
		sched.pidle = pp->link;
		atomic_fetch_sub(&sched.npidle, 1);
		if (sched.sysmonwait) { /* a P gets busy: sysmon watches again */
			sched.sysmonwait = false;
			note_wakeup(&sched.sysmonnote);
		}
	}
	return pp;
}

/* sched.lock held.  Takes pp itself off the idle list; false if not on it. */
static bool pidleremove(struct p *pp)
{
	for (struct p **link = &sched.pidle; *link; link = &(*link)->link) {
		if (*link == pp) {
			*link = pp->link;
			atomic_fetch_sub(&sched.npidle, 1);
			return true;
		}
	}
	return false;
}

/* sched.lock held.  Is an idle P holding work (stranded by a failed startm)? */
static bool idle_p_with_work(void)
{
	for (struct p *pp = sched.pidle; pp; pp = pp->link)
		if (!runqempty(pp))
			return true;
	return false;
}

/* sysmon, with every P idle: sleep until one gets busy.  false if one is. */
bool sysmon_park(void)
{
	rt_lock(&sched.lock);
	if (atomic_load(&sched.npidle) != maxprocs_now() || atomic_load(&sched.gcwaiting) ||
	    idle_p_with_work()) {
		rt_unlock(&sched.lock);
		return false;
	}
	note_clear(&sched.sysmonnote);
	sched.sysmonwait = true;
	rt_unlock(&sched.lock);
	note_sleep(&sched.sysmonnote);
	return true;
}

/* ---- entering and leaving the runtime -------------------------------------- */

static void exitsyscall(struct m *mp);

/* Set once kassist_init has said which path is live (sysmon_start). */
static bool kassist_decided;

/* An M takes its slot once the path is decided: when it starts, or (M0,
 * whose thread predates that) at its first runtime entry after.  A kernel-
 * assist slot if it can get one, else its own uslot if process fences
 * work, else none (the CAS protocol).  Only the M writes kslot and slot;
 * others read them after reading its P's status. */
static void m_kassist_register(struct m *mp)
{
	mp->kslot_tried = true;
	struct kassist_slot *kslot = kassist_register(mp->tid);
	struct kassist_slot *slot = kslot ? kslot : process_fence_ok ? &mp->uslot : NULL;
	/* Even, whatever the slot says: an odd seq ("off CPU") then never
	 * passes rt_enter's inline check. */
	if (slot)
		mp->kseq = __atomic_load_n(&slot->seq, __ATOMIC_RELAXED) & ~(uint64_t)1;
	__atomic_store_n(&mp->kslot, kslot, __ATOMIC_RELEASE);
	__atomic_store_n(&mp->slot, slot, __ATOMIC_RELEASE);
}

/* After a retaker's CAS of pp's status from mp's P_USER to P_RETAKING: was
 * mp in runtime code after all?  Only the userspace path's slot can say
 * so, and only after a process fence (lock.c).  Before the fence we move
 * the slot's seq, as the kernel does for a block it records: the M
 * disarms and then looks at its seq with no fence of its own, so either
 * its disarm shows here, or its look comes after the move, sends it to
 * rt_enter_outer, and it waits us out there (p_still_mine).  An M that was
 * in the runtime across our CAS and has armed since is in goroutine code
 * now: we take its P, which it finds out at its next entry (the seq
 * moved), as after any block; what it wrote to the P before arming is
 * ours through the acquire. */
static bool m_in_runtime_user(struct m *mp)
{
	if (__atomic_load_n(&mp->slot, __ATOMIC_ACQUIRE) != &mp->uslot)
		return false;
	/* By 2: the seq of a userspace slot stays even, "on CPU". */
	__atomic_fetch_add(&mp->uslot.seq, 2, __ATOMIC_SEQ_CST);
	process_fence();
	return __atomic_load_n(&mp->uslot.armed, __ATOMIC_ACQUIRE) == 0;
}

/* Waits out a retaker that is checking whether our P may be taken; true if
 * the P is still ours. */
static bool p_still_mine(struct m *mp)
{
	for (;;) {
		uintptr_t st = atomic_load(&mp->p->status);
		if (P_OWNER(st) == mp)
			return true;
		if (st != P_RETAKING)
			return false;
		sched_yield();
	}
}

/* Goroutine code calls into the runtime: from here on nobody may take our
 * P.  If sysmon took it while we were blocked in the kernel, get a P back
 * first (Go's exitsyscall).  Nests; returns the M we are on afterwards,
 * which is not always the one we started on.  rt_enter (runtime.h) does
 * the common kernel-assist case inline, and calls this for the rest.
 *
 * Kernel-assist path: a retaker only takes the P of an M that the kernel
 * saw go to sleep while armed and that has not come back since (the same
 * odd kslot->seq before and after its CAS, see retake).  So if our seq has
 * not moved since we last looked, nobody can have a claim: disarming (so a
 * sleep inside the runtime is never reported) is all it takes.  If it moved,
 * a fence orders the kernel's "back on CPU" seq before our look at the P;
 * if it is odd, the kernel's "back on CPU" went unrecorded, and we record
 * it ourselves first (kassist_slot_on), so that no retaker still sees the
 * block as going on.
 * Userspace path with its own slot (uslot): the same disarm and seq check,
 * the inline fast path of rt_enter.  Here the retaker moves the seq: its
 * CAS and the move come first, its process fence second (see
 * m_in_runtime_user), so either it sees our disarm or we see the move.
 * Without a slot (no process fences): a CAS from P_USER to P_RUNTIME,
 * which a retaker's CAS from P_USER excludes. */
struct m *rt_enter_outer(struct m *mp)
{
	if (mp->adopted)
		return mp;
	if (mp->slot) /* and no P (rt_enter_can_slot): its seq says how it lost it */
		return rt_enter_seq_moved(mp, rt_slot_disarm(mp));
	mp->rtdepth = 1;
	struct p *pp = mp->p;
	uintptr_t user = (uintptr_t)mp | P_USER;
	if (likely(pp && atomic_compare_exchange_strong(&pp->status, &user,
							(uintptr_t)mp | P_RUNTIME))) {
		if (unlikely(!mp->kslot_tried) && __atomic_load_n(&kassist_decided, __ATOMIC_ACQUIRE)) {
			m_kassist_register(mp);
			atomic_store(&pp->status, p_owned_status(mp));
		}
		return mp;
	}
	exitsyscall(mp);
	return getm();
}

/* rt_slot_disarm saw seq, not kseq: the M slept while armed (or a
 * userspace retaker looked).  kseq is always even, so rt_enter_slot's
 * check never passes on a slot that says we are off CPU. */
struct m *rt_enter_seq_moved(struct m *mp, uint64_t seq)
{
	if (unlikely(seq & 1)) {
		seq = kassist_slot_on(mp->slot, seq);
		atomic_fetch_add_explicit(&sched.nkmissed, 1, memory_order_relaxed);
	}
	mp->kseq = seq;
	atomic_thread_fence(memory_order_seq_cst);
	if (mp->p && p_still_mine(mp))
		return mp;
	exitsyscall(mp);
	return getm();
}

/* Our P went to another M while we were blocked.  Take an idle P, or queue
 * the goroutine and let this M sleep until there is work. */
static void exitsyscall(struct m *mp)
{
	struct g *gp = mp->curg;
	mp->p = NULL;
	rt_lock(&sched.lock);
	struct p *pp = pidleget();
	rt_unlock(&sched.lock);
	if (pp) {
		acquirep(pp);
		return;
	}
	atomic_store(&gp->status, G_RUNNABLE);
	mp->after = (struct after_switch){ AFTER_GLOBRUNQPUT, gp, NULL, NULL };
	mp->curg = NULL;
	switch_to(mp, gp, &mp->g0, false);
}

/* Takes pp from its owner if that M is still in goroutine code (owner is
 * the P_USER status seen by the caller, who found the M blocked in the
 * kernel), and hands it to a spare M or the idle list (Go's retake).  An M
 * with a slot does not CAS on entry, so the claim is checked after our CAS:
 * on the kernel-assist path the M must still be off CPU in the same block,
 * on the userspace path its uslot must still be armed. */
static bool claim(struct p *pp, uintptr_t owner)
{
	struct m *mp = P_OWNER(owner);
	if (!mp)
		return false;
	struct kassist_slot *slot = m_kslot(mp);
	uint64_t seq = 0;
	if (slot && !kassist_slot_off_since(slot, &seq))
		return false;
	if (!atomic_compare_exchange_strong(&pp->status, &owner, P_RETAKING))
		return false;
	/* An M that registered its slot since we looked (M0 does so lazily)
	 * went through RUNTIME and back to the same P_USER word: our CAS
	 * proved nothing then.  Its slot is visible now (we read the status it
	 * stored after registering), so check the block on it. */
	if (!slot && (slot = m_kslot(mp)) != NULL)
		seq = ~(uint64_t)0;
	/* The M goes on with no P when it wakes: its blocks until it next
	 * enters the runtime are nobody's to hand off. */
	if (slot ? !kassist_quiet_block(slot, seq) : m_in_runtime_user(mp)) {
		uintptr_t retaking = P_RETAKING;
		atomic_compare_exchange_strong(&pp->status, &retaking, owner);
		return false;
	}
	/* What the owner wrote to the P before its last arming is ours from
	 * here.  Its rt_exit stores only the arming (the status stays P_USER),
	 * so that is what we acquire.  The kernel's switch away orders those
	 * writes before the block we saw as well, but only this load says so
	 * to the language, and to ThreadSanitizer. */
	if (slot)
		(void)__atomic_load_n(&slot->armed, __ATOMIC_ACQUIRE);
	pp->m = NULL;
	atomic_fetch_add_explicit(&pp->nhandoff, 1, memory_order_relaxed);
	return true;
}

bool retake(struct p *pp, uintptr_t owner)
{
	if (!claim(pp, owner))
		return false;
	handoffp(pp);
	return true;
}

/* Is the owner of P status st in goroutine code, and has the kernel seen it
 * go to sleep no later than before (CLOCK_MONOTONIC ns)?  Kernel-assist path
 * only: without a slot the answer is no. */
bool owner_blocked(uintptr_t st, int64_t before)
{
	struct m *mp = P_OWNER(st);
	struct kassist_slot *slot = mp && (st & P_USER) ? m_kslot(mp) : NULL;
	if (!slot)
		return false;
	uint64_t since = kassist_slot_off_since(slot, NULL);
	return since && (int64_t)since <= before;
}

/* ---- Ms ------------------------------------------------------------------- */

void checkdead(void);

static void m_init(struct m *mp, bool recycled)
{
	mp->rand_state = (uint64_t)nanotime() ^ ((uint64_t)(uintptr_t)mp << 17);
	mp->g0.m = mp;
	mp->g0.goid = 0;
	if (recycled)
		return;
	rt_lock(&sched.lock);
	mp->id = sched.mnext++;
	mp->alllink = sched.allm;
	sched.allm = mp;
	rt_unlock(&sched.lock);
}

static void thread_stack_bounds(struct stack *st)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
			st->lo = (uintptr_t)addr;
			st->hi = (uintptr_t)addr + size;
			st->guarded = 1;
		}
		pthread_attr_destroy(&attr);
	}
}

static void *mstart(void *arg)
{
	struct m *mp = arg;
	mp->rtdepth = 1; /* g0 is runtime code */
	tls_m = mp;
	mp->tid = gettid_();
	thread_stack_bounds(&mp->g0.stack);
	san_current_context(&mp->g0);
	signals_minit(mp);
	if (__atomic_load_n(&kassist_decided, __ATOMIC_ACQUIRE))
		m_kassist_register(mp);
	struct p *pp = mp->nextp;
	mp->nextp = NULL;
	acquirep(pp);
	schedule();
}

/* Starts a new M that will own pp.  sched.mcount counts it from here. */
/* A zeroed M struct: a recycled one (it keeps its place in allm), or a new
 * one. */
static struct m *malloc_m(bool *recycled)
{
	rt_lock(&sched.lock);
	struct m *mp = sched.mfree;
	if (mp)
		sched.mfree = mp->schedlink;
	rt_unlock(&sched.lock);
	*recycled = mp != NULL;
	if (mp) {
		struct m *keep = mp->alllink;
		int32_t id = mp->id;
		memset(mp, 0, sizeof(*mp));
		mp->alllink = keep;
		mp->id = id;
		return mp;
	}
	mp = aligned_alloc(64, (sizeof(struct m) + 63) & ~(size_t)63);
	if (mp)
		memset(mp, 0, sizeof(*mp));
	return mp;
}

static int newm(struct p *pp, bool spinning)
{
	bool recycled;
	struct m *mp = malloc_m(&recycled);
	if (!mp)
		return -ENOMEM;
	m_init(mp, recycled);
	mp->nextp = pp;
	mp->spinning = spinning;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, M_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread unblocks what it needs */
	rt_lock(&sched.lock);
	sched.mcount++;
	rt_unlock(&sched.lock);
	int err = pthread_create(&mp->thread, &attr, mstart, mp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err) {
		rt_lock(&sched.lock);
		sched.mcount--;
		rt_unlock(&sched.lock);
		return -err;
	}
	return 0;
}

/* Puts the calling M to sleep until startm hands it a P. */
/* sched.lock held.  Idle Ms beyond this many end their threads, so that a
 * burst of blocking calls (each of which may start a spare M) leaves the
 * thread count where it was. */
static int32_t idle_m_max(void)
{
	int32_t n = maxprocs_now();
	return n < 4 ? 4 : n;
}

/* The calling M ends its thread.  Its struct goes to sched.mfree for the
 * next newm: M structs are never freed (stale P status words may still
 * name them). */
__attribute__((noreturn)) static void mexit(struct m *mp)
{
	sched.mcount--;
	checkdead();
	rt_unlock(&sched.lock);
	__atomic_store_n(&mp->slot, NULL, __ATOMIC_RELEASE);
	kassist_unregister(mp->kslot);
	__atomic_store_n(&mp->kslot, NULL, __ATOMIC_RELEASE);
	signals_mexit(mp);
	tls_m = NULL; /* from here on the struct may be reused: touch it no more */
	rt_lock(&sched.lock);
	mp->schedlink = sched.mfree;
	sched.mfree = mp;
	rt_unlock(&sched.lock);
	pthread_exit(NULL);
}

/* An idle M sleeps on its note until startm (or startlockedm) hands it a P
 * in nextp. */
static void sleep_for_p(struct m *mp)
{
	note_sleep(&mp->park);
	note_clear(&mp->park);
	struct p *pp = mp->nextp;
	mp->nextp = NULL;
	acquirep(pp);
}

/* The kernel-assist watcher: one idle M that sleeps on the BPF ring buffer
 * instead of its futex, so that when an armed M blocks with work queued on
 * its P, the watcher takes that P itself — one wake-up, not two (sysmon,
 * then a spare M).  It counts as idle for checkdead; startm cannot pick it
 * (it is not on the idle list), and it leaves the role once it has a P. */
static struct p *find_blocked_with_work(uintptr_t *owner)
{
	int32_t n = maxprocs_now();
	bool global = atomic_load(&sched.runqsize) > 0;
	for (int32_t i = 0; i < n; i++) {
		uintptr_t st = atomic_load_explicit(&allp[i]->status, memory_order_acquire);
		if (owner_blocked(st, INT64_MAX) && (global || !runqempty(allp[i]))) {
			*owner = st;
			return allp[i];
		}
	}
	return NULL;
}

/* For the watcher and sysmon when an event woke them: some M may have
 * armed "wake" while its P had work that thieves took since.  Quieten each
 * M that owns a P with an empty queue, blocked or not (kassist.h has the
 * why).  The queue is looked at again after the CAS: an M arms after
 * filling its queue (rt_exit), so if the arming we hit is a fresh "wake",
 * that queue is not empty to us. */
void quiet_stale_wakes(void)
{
	int32_t n = maxprocs_now();
	for (int32_t i = 0; i < n; i++) {
		struct p *pp = allp[i];
		uintptr_t st = atomic_load_explicit(&pp->status, memory_order_acquire);
		struct m *mp = P_OWNER(st);
		struct kassist_slot *slot = mp && (st & P_USER) ? m_kslot(mp) : NULL;
		if (!slot || !runqempty(pp) || !kassist_quiet(slot))
			continue;
		if (atomic_load(&pp->status) != st || !runqempty(pp))
			kassist_unquiet(slot);
	}
}

/* A new watcher first polls, as Go's spinning Ms look for work before they
 * sleep: an M that blocks soon after another went idle (a server doing one
 * blocking call after another) is then seen with no wake-up at all, which on
 * a VM is the costly part (20 us and more).  How long it polls depends on the
 * last watcher: one that got its P within WATCH_QUICK_NS of taking the role
 * says blocks are following each other closely, and the next one polls for
 * WATCH_SPIN_NS; otherwise it polls for WATCH_SPIN_MIN_NS only.  So a process
 * that blocks now and then, or an idle one, burns next to nothing, and a
 * stream of blocks is caught spinning.  Only the watcher (one M at a time)
 * writes watch_spin_ns. */
enum {
	WATCH_SPIN_NS = 200 * 1000,
	WATCH_SPIN_MIN_NS = 5 * 1000,
	WATCH_QUICK_NS = 500 * 1000,
};
static _Atomic int64_t watch_spin_ns = WATCH_SPIN_NS;

static struct p *watch_spin(uintptr_t *owner, int64_t start)
{
	int64_t spin = atomic_load_explicit(&watch_spin_ns, memory_order_relaxed);
	do {
		struct p *pp = find_blocked_with_work(owner);
		if (pp)
			return pp;
		for (int i = 0; i < 32; i++)
			cpu_relax();
	} while (nanotime() - start < spin);
	return NULL;
}

/* The spin comes before kassist_wait_begin: a spinning watcher needs no
 * wake-up, so blocks meanwhile do not post one (posting costs the blocking
 * M's CPU a self-IPI).  The look after kassist_wait_begin catches a block
 * from between the spin and the sleep. */
static struct p *watch_blocked(void)
{
	uintptr_t owner = 0;
	int64_t start = nanotime();
	struct p *pp = watch_spin(&owner, start);
	while (!pp || !claim(pp, owner)) {
		kassist_wait_begin();
		pp = find_blocked_with_work(&owner);
		if (!pp && kassist_wait(-1, NULL, 0) > 0)
			quiet_stale_wakes();
		kassist_wait_end();
	}
	int64_t waited = nanotime() - start;
	atomic_store_explicit(&watch_spin_ns, waited < WATCH_QUICK_NS ? WATCH_SPIN_NS : WATCH_SPIN_MIN_NS,
			      memory_order_relaxed);
	return pp;
}

static bool become_watcher(struct m *mp)
{
	if (!__atomic_load_n(&kassist_live, __ATOMIC_ACQUIRE) || sched.kwatcher ||
	    mp->lockedg)
		return false;
	atomic_store(&sched.kwatcher, mp);
	return true;
}

static void stopm(void)
{
	struct m *mp = getm();
	if (mp->p)
		fatal_nodump("stopm holding a P");
	rt_lock(&sched.lock);
	if (!mp->is_main_thread && !mp->lockedg && sched.nmidle >= idle_m_max())
		mexit(mp);
	if (become_watcher(mp)) {
		checkdead();
		rt_unlock(&sched.lock);
		struct p *pp = watch_blocked();
		atomic_store(&sched.kwatcher, NULL);
		acquirep(pp);
		return;
	}
	mp->schedlink = sched.midle;
	sched.midle = mp;
	sched.nmidle++;
	checkdead();
	rt_unlock(&sched.lock);
	sleep_for_p(mp);
}

/* sched.lock held */
static struct m *mget(void)
{
	struct m *mp = sched.midle;
	if (mp) {
		sched.midle = mp->schedlink;
		sched.nmidle--;
	}
	return mp;
}

enum { MFAIL_RETRY_NS = 1000 * 1000 };	/* sysmon retries a failed start this often */

/* Counts a failed thread start (EAGAIN: a thread limit; ENOMEM), which the
 * schedtrace line shows as mfail=; the first one also gets a warning. */
static void m_start_failed(int err)
{
	static _Atomic bool warned;
	atomic_store(&sched.mfail_last, nanotime());
	atomic_fetch_add(&sched.nmfail, 1);
	if (!atomic_exchange(&warned, true))
		warn("cannot start a thread (%s); the goroutines of its P wait, and the start is "
		     "retried", strerror(-err));
}

/* sysmon: a P left idle with work by a failed start gets another try, at
 * most once per MFAIL_RETRY_NS. */
bool restart_stranded(struct p *pp, int64_t now)
{
	if (atomic_load(&pp->status) != P_IDLE || runqempty(pp) ||
	    now - atomic_load(&sched.mfail_last) < MFAIL_RETRY_NS)
		return false;
	rt_lock(&sched.lock);
	bool took = pidleremove(pp);
	rt_unlock(&sched.lock);
	if (took)
		startm(pp, false);
	return took;
}

/* Gives pp (or an idle P) to an idle or new M.  A spinning start was
 * already counted in nmspinning by the caller. */
static void startm(struct p *pp, bool spinning)
{
	rt_lock(&sched.lock);
	if (!pp) {
		pp = pidleget();
		if (!pp) {
			rt_unlock(&sched.lock);
			if (spinning)
				atomic_fetch_sub(&sched.nmspinning, 1);
			return;
		}
	}
	struct m *mp = mget();
	rt_unlock(&sched.lock);
	if (!mp) {
		int err = newm(pp, spinning);
		if (err) {
			/* No thread: the P goes back, with its work, until an M
			 * comes back from the kernel and takes it, or sysmon's
			 * retry (restart_stranded) gets a thread. */
			m_start_failed(err);
			rt_lock(&sched.lock);
			pidleput(pp);
			rt_unlock(&sched.lock);
			if (spinning)
				atomic_fetch_sub(&sched.nmspinning, 1);
		}
		return;
	}
	mp->spinning = spinning;
	mp->nextp = pp;
	note_wakeup(&mp->park);
}

/* Wakes an idle P if there is one and nobody is already looking for work. */
void wakep(void)
{
	if (atomic_load_explicit(&sched.npidle, memory_order_relaxed) == 0)
		return;
	if (atomic_load_explicit(&sched.nmspinning, memory_order_relaxed) != 0)
		return;
	int32_t zero = 0;
	if (!atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1))
		return;
	startm(NULL, true);
}

static bool has_timers(struct p *pp)
{
	return atomic_load_explicit(&pp->timer0_when, memory_order_relaxed) != 0;
}

/* Hands off pp, whose M is going away or blocking: to a new M if it has
 * work, else to the idle list (Go's handoffp). */
void handoffp(struct p *pp)
{
	if (!runqempty(pp) || atomic_load(&sched.runqsize) != 0) {
		startm(pp, false);
		return;
	}
	int32_t zero = 0;
	if (atomic_load(&sched.nmspinning) + atomic_load(&sched.npidle) == 0 &&
	    atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1)) {
		startm(pp, true);
		return;
	}
	rt_lock(&sched.lock);
	if (atomic_load(&sched.gcwaiting)) {
		atomic_store(&pp->status, P_STOPPED);
		if (--sched.stopwait == 0)
			note_wakeup(&sched.stopnote);
		rt_unlock(&sched.lock);
		return;
	}
	if (atomic_load(&sched.runqsize) != 0) {
		rt_unlock(&sched.lock);
		startm(pp, false);
		return;
	}
	/* The last running P, with timers or fds to watch and nobody polling:
	 * keep an M on it. */
	if (atomic_load(&sched.npidle) == maxprocs_now() - 1 &&
	    atomic_load(&sched.lastpoll) != 0 && (has_timers(pp) || netpoll_anywaiters())) {
		rt_unlock(&sched.lock);
		startm(pp, false);
		return;
	}
	pidleput(pp);
	rt_unlock(&sched.lock);
	int64_t when = atomic_load(&pp->timer0_when);
	if (when)
		netpoll_break();
}

/* ---- free Gs -------------------------------------------------------------- */

static void gfput_nostack(struct g *gp)
{
	rt_lock(&sched.gflock);
	gring_push(&sched.gfree_nostack, gp);
	rt_unlock(&sched.gflock);
}

static struct g *gfget_nostack(void)
{
	struct g *gp = NULL;
	rt_lock(&sched.gflock);
	gring_take_back(&sched.gfree_nostack, &gp, 1);
	rt_unlock(&sched.gflock);
	return gp;
}

/* sysmon, every second: the warm Gs that nobody took since the last
 * call (the low-water mark of the warm list) are not needed now.  Beyond
 * GFREE_WARM_MAX of them, the oldest give their stacks' pages back, in
 * batches sorted by address so that neighbouring stacks cost one madvise.
 * Trimming here, not in gfput, keeps a spawn/exit churn free of syscalls. */
void gfree_trim(void)
{
	enum { BATCH = 256 };
	rt_lock(&sched.gflock);
	int64_t excess = (int64_t)sched.minfree_warm - GFREE_WARM_MAX;
	sched.minfree_warm = sched.gfree_warm.len;
	while (excess > 0) {
		struct g *old[BATCH];
		struct stack *sts[BATCH];
		uint32_t n = gring_take_front(&sched.gfree_warm, old, excess < BATCH ? excess : BATCH);
		sched.minfree_warm = sched.gfree_warm.len;
		if (n == 0)
			break; /* taken meanwhile */
		rt_unlock(&sched.gflock);
		for (uint32_t i = 0; i < n; i++)
			sts[i] = &old[i]->stack;
		stack_trim_batch(sts, (int)n);
		rt_lock(&sched.gflock);
		gring_push_n(&sched.gfree_cold, old, n);
		excess -= n;
	}
	rt_unlock(&sched.gflock);
}

/* Moves the oldest n of pp's free Gs to the global warm list. */
static void gfspill(struct p *pp, int32_t n)
{
	rt_lock(&sched.gflock);
	gring_push_n(&sched.gfree_warm, pp->gfree, (uint32_t)n);
	rt_unlock(&sched.gflock);
	pp->ngfree -= n;
	memmove(pp->gfree, pp->gfree + n, (size_t)pp->ngfree * sizeof(pp->gfree[0]));
}

void gfput(struct p *pp, struct g *gp)
{
	if (gp->stack.hi - gp->stack.lo != config.stack_size) {
		stack_free(&gp->stack);
		gfput_nostack(gp);
		return;
	}
	pp->gfree[pp->ngfree++] = gp;
	if (pp->ngfree == GFREE_LOCAL_MAX)
		gfspill(pp, GFREE_LOCAL_MAX / 2);
}

/* Refills pp's free Gs from the global lists, warm ones first. */
static void gfrefill(struct p *pp)
{
	rt_lock(&sched.gflock);
	uint32_t n = gring_take_back(&sched.gfree_warm, pp->gfree, GFREE_LOCAL_MAX / 2);
	if (sched.gfree_warm.len < sched.minfree_warm)
		sched.minfree_warm = sched.gfree_warm.len;
	if (n == 0)
		n = gring_take_back(&sched.gfree_cold, pp->gfree, GFREE_LOCAL_MAX / 2);
	rt_unlock(&sched.gflock);
	pp->ngfree = (int32_t)n;
}

/* A free G with a default-size stack, or NULL. */
static struct g *gfget(struct p *pp)
{
	if (!pp->ngfree) {
		gfrefill(pp);
		if (!pp->ngfree)
			return NULL;
	}
	return pp->gfree[--pp->ngfree];
}

/* A block of G_BLOCK new G structs, zeroed, all in allg (which dumps skip
 * while they are G_IDLE), or NULL.  G structs are never freed, so they are
 * cut from blocks: one allocation, no per-G malloc header, and one lock
 * per block for allg. */
enum { G_BLOCK = 64 };
static struct g *gblock_new(void)
{
	struct g *b = aligned_alloc(CACHELINE, G_BLOCK * sizeof(struct g));
	if (!b)
		return NULL;
	memset(b, 0, G_BLOCK * sizeof(struct g));
	rt_lock(&allglock);
	for (int i = 0; i < G_BLOCK; i++)
		allg_add_locked(&b[i]);
	rt_unlock(&allglock);
	return b;
}

/* Gives the unused Gs of block b to the global free list (for Gs without
 * a stack). */
static void gblock_spill(struct g_block *b)
{
	for (; b->left > 0; b->left--) {
		san_new_context(b->next);
		gfput_nostack(b->next++);
	}
}

/* The next G of block b, refilled when it is used up; NULL if that fails. */
static struct g *gblock_cut(struct g_block *b)
{
	if (b->left == 0) {
		struct g *fresh = gblock_new();
		if (!fresh)
			return NULL;
		b->next = fresh;
		b->left = G_BLOCK;
	}
	b->left--;
	return b->next++;
}

/* A new G struct, zeroed and in allg: from pp's block, or with no P from a
 * shared one under its own lock (as stacks come from slabs, stack.c). */
static struct g *galloc(struct p *pp)
{
	static struct rt_lock shared_lock;
	static struct g_block shared;
	struct g *gp;
	if (pp) {
		gp = gblock_cut(&pp->gblock);
	} else {
		rt_lock(&shared_lock);
		gp = gblock_cut(&shared);
		rt_unlock(&shared_lock);
	}
	if (gp)
		san_new_context(gp);
	return gp;
}

static int64_t newgoid(struct p *pp)
{
	if (pp->goidcache == pp->goidcacheend) {
		enum { GOID_BATCH = 16 };
		pp->goidcache = atomic_fetch_add(&sched.goidgen, GOID_BATCH) + 1;
		pp->goidcacheend = pp->goidcache + GOID_BATCH;
	}
	return pp->goidcache++;
}

/* A G ready to start fn(arg) with a stack of size bytes, or NULL with *err. */
static struct g *newproc(struct p *pp, void (*fn)(void *), void *arg, size_t size, int *err)
{
	struct g *gp = NULL;
	if (size == config.stack_size && pp)
		gp = gfget(pp);
	if (!gp && !(gp = gfget_nostack()) && !(gp = galloc(pp))) {
		*err = -ENOMEM;
		return NULL;
	}
	if (!gp->stack.hi) {
		*err = stack_alloc(&gp->stack, size, pp ? &pp->slab : NULL);
		if (*err) {
			gfput_nostack(gp);
			return NULL;
		}
	}
	gp->fn = fn;
	gp->arg = arg;
	san_stack_reuse(gp);
	gp->sp = gmprt_stack_init(gp->stack.hi);
	gp->lockedm = NULL;
	gp->m = NULL;
	gp->spawn_run = 0;
	return gp;
}

/* ---- run queues as the scheduler sees them -------------------------------- */

/* Every 61st schedule (as Go's schedtick % 61) the global queue goes first,
 * so that it cannot starve.  The schedule count is sysmon's, which every
 * switch writes anyway: the test costs the switch no store. */
static inline bool fairness_turn(const struct p *pp)
{
	return P_TICK_SCHED(pp->ticks) % FAIRNESS_TICKS == 0;
}

/* The next G from pp's own queues, with the global queue first on the
 * fairness turn. */
static hot_inline struct g *runnable_local(struct p *pp, bool *inherit)
{
	*inherit = false;
	if (unlikely(fairness_turn(pp))) {
		if (atomic_load_explicit(&sched.runqsize, memory_order_relaxed) > 0) {
			rt_lock(&sched.lock);
			struct g *gp = globrunqget(pp, 1);
			rt_unlock(&sched.lock);
			if (gp)
				return gp;
		}
	}
	return runqget(pp, inherit);
}

void injectglist(struct g *list)
{
	if (!list)
		return;
	struct m *mp = getm();
	if (mp && mp->p && !mp->curg) {
		/* g0 with a P: keep them here, and wake others to share. */
		while (list) {
			struct g *next = list->schedlink;
			atomic_store(&list->status, G_RUNNABLE);
			runqput(mp->p, list, false);
			list = next;
		}
		wakep();
		return;
	}
	int32_t n = 0;
	rt_lock(&sched.lock);
	while (list) {
		struct g *next = list->schedlink;
		atomic_store(&list->status, G_RUNNABLE);
		globrunqput(list);
		list = next;
		n++;
	}
	rt_unlock(&sched.lock);
	for (; n > 0 && atomic_load(&sched.npidle) > 0; n--)
		startm(NULL, false);
}

/* ---- parking and waking ---------------------------------------------------- */

/* An adopted thread parks on a futex in its G. */
static void park_adopted(struct g *gp, bool (*unlockf)(struct g *, void *), void *arg,
			 const char *reason)
{
	gp->waitreason = reason;
	atomic_store(&gp->wakeword, 0);
	atomic_store(&gp->status, G_WAITING);
	atomic_fetch_sub(&sched.nadopted, 1);
	if (unlockf && !unlockf(gp, arg)) {
		atomic_fetch_add(&sched.nadopted, 1);
		atomic_store(&gp->status, G_RUNNING);
		return;
	}
	while (atomic_load(&gp->wakeword) == 0)
		futex_wait(&gp->wakeword, 0, -1);
	atomic_store(&gp->status, G_RUNNING);
}

/* Sets gp running on mp, which owns pp. */
static hot_inline void prepare_run(struct m *mp, struct p *pp, struct g *gp, bool inherit)
{
	mp->curg = gp;
	gp->m = mp;
	atomic_store_explicit(&gp->status, G_RUNNING, memory_order_relaxed);
	/* sysmon reads the ticks */
	__atomic_store_n(&pp->ticks, pp->ticks + P_TICK_ONE_SWITCH + !inherit, __ATOMIC_RELAXED);
}

/* gp (running on mp) stops running for next, which came off mp's P, pp,
 * with inherit as runqget says; mp->after says what happens to gp.  A NULL next,
 * or one bound to another M, sends mp to g0 (schedule), which deals with it.
 * Returns the M that gp resumes on; *arm as switch_to_arming says (g0
 * gets none). */
static hot_inline struct m *switch_away_to(struct m *mp, struct p *pp, struct g *gp,
					   struct g *next, bool inherit, bool dead, uint32_t *arm)
{
	if (next && !next->lockedm) {
		prepare_run(mp, pp, next, inherit);
		return switch_to_arming(mp, gp, next, dead, arm);
	}
	mp->nextg = next;
	mp->curg = NULL;
	*arm = 0;
	return switch_to_arming(mp, gp, &mp->g0, dead, arm);
}

/* Out of line: the clock's call would give every switch site a frame. */
static __attribute__((noinline)) bool timer0_due(struct p *pp)
{
	return atomic_load(&pp->timer0_when) <= nanotime();
}

static hot_inline bool timers_due(struct p *pp)
{
	return has_timers(pp) && timer0_due(pp);
}

/* Due timers and a stop of the world are g0's business (findrunnable), so a
 * G that stops running goes there for them rather than to a local G.  (A
 * yield that read sched.solo knows about the stop: timers_due is the rest.) */
static hot_inline bool g0_has_business(struct p *pp)
{
	return atomic_load_explicit(&sched.gcwaiting, memory_order_relaxed) || timers_due(pp);
}

/* gp (running on mp) stops running; mp->after says what happens to it.
 * Runs the next local G directly if there is one, else goes to g0.
 * Returns the M that gp resumes on. */
static hot_inline struct m *switch_away(struct m *mp, struct g *gp, bool dead)
{
	struct p *pp = mp->p;
	struct g *next = NULL;
	bool inherit = false;
	uint32_t arm = 0;
	if (!mp->lockedg && !g0_has_business(pp))
		next = runnable_local(pp, &inherit);
	return switch_away_to(mp, pp, gp, next, inherit, dead, &arm);
}

static bool unlock_rt_lock(struct g *gp, void *l)
{
	rt_unlock(l);
	return true;
}

/* gopark, with what happens after the switch in a (kind, unlockf, arg). */
static hot_inline void park(struct after_switch a, const char *reason)
{
	struct m *mp = getm();
	if (unlikely(!mp || mp->adopted)) {
		park_adopted(getg(), a.kind == AFTER_PARK_UNLOCK ? unlock_rt_lock : a.unlockf, a.arg,
			     reason);
		return;
	}
	mp = rt_enter_m(mp);
	struct g *gp = mp->curg;
	if (!gp)
		fatal("gopark on the scheduler's stack");
	gp->waitreason = reason;
	gp->spawn_run = 0;
	a.g = gp;
	mp->after = a;
	rt_exit_last(switch_away(mp, gp, false));
}

void gopark(bool (*unlockf)(struct g *, void *), void *arg, const char *reason)
{
	park((struct after_switch){ AFTER_PARK, NULL, unlockf, arg }, reason);
}

/* The most common park, with no unlock function to call: run_after
 * releases the lock itself. */
void gopark_unlock(struct rt_lock *l, const char *reason)
{
	park((struct after_switch){ AFTER_PARK_UNLOCK, NULL, NULL, l }, reason);
}

static inline void ready(struct g *gp, bool next);

/* WAITING -> RUNNABLE.  A G that is still switching away (a waker found it
 * through a queue that gopark's unlock function has not yet released) is
 * waited for: that takes a few hundred instructions at most. */
static __attribute__((noinline)) void ready_status_wait(struct g *gp);

static inline void ready_status(struct g *gp)
{
	/* The waker that took gp off a wait queue is its only writer now: a
	 * store will do, no CAS. */
	if (likely(atomic_load_explicit(&gp->status, memory_order_acquire) == G_WAITING))
		atomic_store_explicit(&gp->status, G_RUNNABLE, memory_order_relaxed);
	else
		ready_status_wait(gp);
}

static void ready_status_wait(struct g *gp)
{
	int64_t deadline = 0;
	for (;;) {
		int expect = atomic_load_explicit(&gp->status, memory_order_acquire);
		if (expect == G_WAITING) {
			atomic_store_explicit(&gp->status, G_RUNNABLE, memory_order_relaxed);
			return;
		}
		if (expect != G_RUNNING)
			fatal("goready: goroutine %lld is not waiting (status %d)",
			      (long long)gp->goid, expect);
		if (!deadline)
			deadline = nanotime() + 1000000000;
		else if (nanotime() > deadline)
			fatal("goready: goroutine %lld never parked", (long long)gp->goid);
		sched_yield();
	}
}

void goready(struct g *gp)
{
	ready(gp, true);
}

void goready_fifo(struct g *gp)
{
	ready(gp, false);
}

/* ready's cases other than "a goroutine readies a goroutine": an adopted
 * G is woken on its futex; a thread without a P queues gp globally.  Out of
 * line, so that the common path saves no registers. */
static __attribute__((noinline)) void ready_slow(struct g *gp)
{
	if (gp->adopted) {
		atomic_fetch_add(&sched.nadopted, 1);
		atomic_store(&gp->wakeword, 1);
		futex_wake(&gp->wakeword, 1);
		return;
	}
	ready_status(gp);
	rt_lock(&sched.lock);
	globrunqput(gp);
	rt_unlock(&sched.lock);
	wakep();
}

/* Makes gp runnable: in runnext (next) or at the tail of this P's queue, or
 * on the global queue from a thread without a P. */
static hot_inline void ready(struct g *gp, bool next)
{
	struct m *mp = getm();
	if (unlikely(!mp || mp->adopted || gp->adopted)) {
		ready_slow(gp);
		return;
	}
	ready_status(gp);
	mp = rt_enter_m(mp);
	struct p *pp = mp->p;
	runqput(pp, gp, next);
	uint32_t h = atomic_load_explicit(&pp->runqhead, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
	rt_exit_m(mp);
	if (t != h)
		wakep();
}

/* ---- the scheduler loop (on g0) ------------------------------------------ */

static void gcstopm(void)
{
	struct m *mp = getm();
	if (mp->spinning) {
		mp->spinning = false;
		atomic_fetch_sub(&sched.nmspinning, 1);
	}
	struct p *pp = releasep();
	rt_lock(&sched.lock);
	atomic_store(&pp->status, P_STOPPED);
	if (--sched.stopwait == 0)
		note_wakeup(&sched.stopnote);
	rt_unlock(&sched.lock);
	stopm();
}

static void become_spinning(struct m *mp)
{
	mp->spinning = true;
	atomic_fetch_add(&sched.nmspinning, 1);
}

static void min_when(int64_t *acc, int64_t when)
{
	if (when != 0 && (*acc == 0 || when < *acc))
		*acc = when;
}

/* Four passes over the other Ps in random order; the last also runs their
 * due timers and may take their runnext. */
static struct g *stealwork(struct p *pp, int64_t *polluntil)
{
	int32_t n = maxprocs_now();
	if (n <= 1 && !has_timers(pp))
		return NULL;
	int64_t now = 0;
	for (int pass = 0; pass < 4; pass++) {
		bool last = pass == 3;
		uint32_t r = fastrand();
		int32_t start = (int32_t)(r % (uint32_t)n);
		int32_t stride = stealorder[(r >> 16) % (uint32_t)nstealorder];
		for (int32_t i = 0, k = start; i < n; i++, k = (k + stride) % n) {
			if (atomic_load_explicit(&sched.gcwaiting, memory_order_relaxed))
				return NULL;
			struct p *p2 = allp[k];
			if (p2 == pp)
				continue;
			if (last && has_timers(p2)) {
				if (!now)
					now = nanotime();
				min_when(polluntil, checktimers(p2, now));
				bool inherit;
				struct g *gp = runqget(pp, &inherit);
				if (gp)
					return gp;
			}
			uintptr_t st = atomic_load_explicit(&p2->status, memory_order_acquire);
			if (st == P_IDLE)
				continue;
			/* A victim whose M the kernel saw block: take its runnext
			 * now, and the P itself if work is left on it. */
			bool blocked = owner_blocked(st, INT64_MAX);
			struct g *gp = runqsteal(pp, p2, last || blocked);
			if (blocked && !runqempty(p2))
				retake(p2, st);
			if (gp)
				return gp;
		}
	}
	return NULL;
}

/* The earliest timer of any P, read without a P. */
static int64_t next_timer_any(void)
{
	int64_t w = 0;
	int32_t n = maxprocs_now();
	for (int32_t i = 0; i < n; i++)
		min_when(&w, atomic_load_explicit(&allp[i]->timer0_when, memory_order_relaxed));
	return w;
}

/* After dropping the P: did work appear that the M must not sleep through? */
static struct p *recheck_runqs(void)
{
	int32_t n = maxprocs_now();
	bool work = atomic_load(&sched.runqsize) > 0;
	for (int32_t i = 0; i < n && !work; i++)
		work = !runqempty(allp[i]);
	if (!work)
		return NULL;
	rt_lock(&sched.lock);
	struct p *pp = pidleget();
	rt_unlock(&sched.lock);
	return pp;
}

/* Blocks in netpoll until fds are ready or polluntil; then takes an idle P.
 * Returns a G to run (*got_p says a P was acquired), or NULL. */
static struct g *block_in_netpoll(int64_t polluntil, bool *got_p)
{
	int64_t delay = -1;
	if (polluntil) {
		delay = polluntil - nanotime();
		if (delay < 0)
			delay = 0;
	}
	atomic_store(&sched.polluntil, polluntil);
	struct g *list = netpoll(delay);
	atomic_store(&sched.polluntil, 0);
	atomic_store(&sched.lastpoll, nanotime());
	rt_lock(&sched.lock);
	struct p *pp = pidleget();
	rt_unlock(&sched.lock);
	*got_p = pp != NULL;
	if (!pp) {
		injectglist(list);
		return NULL;
	}
	acquirep(pp);
	if (!list)
		return NULL;
	struct g *gp = list;
	injectglist(gp->schedlink);
	atomic_store(&gp->status, G_RUNNABLE);
	return gp;
}

/* Finds a runnable G; blocks until there is one (Go's findRunnable). */
static struct g *findrunnable(bool *inherit)
{
	struct m *mp = getm();
	for (;;) {
		struct p *pp = mp->p;
		struct g *gp;
		int64_t polluntil = 0;
		if (atomic_load(&sched.gcwaiting)) {
			gcstopm();
			continue;
		}
		if (has_timers(pp))
			polluntil = checktimers(pp, nanotime());
		if ((gp = runnable_local(pp, inherit)))
			return gp;
		*inherit = false;
		if (atomic_load(&sched.runqsize) > 0) {
			rt_lock(&sched.lock);
			gp = globrunqget(pp, 0);
			rt_unlock(&sched.lock);
			if (gp)
				return gp;
		}
		if (netpoll_anywaiters() && atomic_load(&sched.lastpoll) != 0) {
			struct g *list = netpoll(0);
			if (list) {
				gp = list;
				injectglist(gp->schedlink);
				atomic_store(&gp->status, G_RUNNABLE);
				return gp;
			}
		}
		int32_t busy = maxprocs_now() - atomic_load(&sched.npidle);
		if (mp->spinning || 2 * atomic_load(&sched.nmspinning) < busy) {
			if (!mp->spinning)
				become_spinning(mp);
			if ((gp = stealwork(pp, &polluntil)))
				return gp;
		}

		/* Nothing: give the P back. */
		rt_lock(&sched.lock);
		if (atomic_load(&sched.gcwaiting)) {
			rt_unlock(&sched.lock);
			continue;
		}
		if (atomic_load(&sched.runqsize) > 0) {
			gp = globrunqget(pp, 0);
			rt_unlock(&sched.lock);
			return gp;
		}
		releasep();
		pidleput(pp);
		rt_unlock(&sched.lock);

		bool was_spinning = mp->spinning;
		if (mp->spinning) {
			mp->spinning = false;
			atomic_fetch_sub(&sched.nmspinning, 1);
			struct p *p2 = recheck_runqs();
			if (p2) {
				acquirep(p2);
				become_spinning(mp);
				continue;
			}
		}
		min_when(&polluntil, next_timer_any());
		if ((netpoll_anywaiters() || polluntil) && atomic_exchange(&sched.lastpoll, 0) != 0) {
			bool got_p;
			gp = block_in_netpoll(polluntil, &got_p);
			if (gp)
				return gp;
			if (got_p) {
				if (was_spinning)
					become_spinning(mp);
				continue;
			}
		} else if (polluntil) {
			int64_t pu = atomic_load(&sched.polluntil);
			if (pu == 0 || polluntil < pu)
				netpoll_break();
		}
		stopm();
	}
}

static void resetspinning(struct m *mp)
{
	mp->spinning = false;
	if (atomic_fetch_sub(&sched.nmspinning, 1) == 1)
		wakep(); /* we were the last spinner: keep one looking */
}

/* Gives this M's P to gp's bound M, and sleeps (Go's startlockedm). */
static void startlockedm(struct g *gp)
{
	struct m *mp = gp->lockedm;
	/* The waker, not the sleeper, uncounts it, so that checkdead never
	 * sees both of us idle. */
	rt_lock(&sched.lock);
	sched.nmidlelocked--;
	rt_unlock(&sched.lock);
	mp->nextp = releasep();
	note_wakeup(&mp->park);
	stopm();
}

/* The bound M's G is not running: give the P away and sleep until the G is
 * runnable and someone hands us a P (Go's stoplockedm). */
static void stoplockedm(void)
{
	struct m *mp = getm();
	if (mp->p)
		handoffp(releasep());
	rt_lock(&sched.lock);
	sched.nmidlelocked++;
	checkdead();
	rt_unlock(&sched.lock);
	sleep_for_p(mp);
}

static void execute(struct m *mp, struct g *gp, bool inherit)
{
	prepare_run(mp, mp->p, gp, inherit);
	switch_to(mp, &mp->g0, gp, false);
}

static void schedule(void)
{
	struct m *mp = getm();
	for (;;) {
		if (mp->lockedg) {
			stoplockedm();
			execute(mp, mp->lockedg, false);
			continue;
		}
		if (!mp->p)
			stopm(); /* lost its P in exitsyscall */
		bool inherit = false;
		struct g *gp = mp->nextg;
		mp->nextg = NULL;
		if (!gp)
			gp = findrunnable(&inherit);
		if (mp->spinning)
			resetspinning(mp);
		if (gp->lockedm && gp->lockedm != mp) {
			startlockedm(gp);
			continue;
		}
		execute(mp, gp, inherit);
	}
}

/* ---- goroutine life -------------------------------------------------------- */

void goexit1(void)
{
	struct m *mp = rt_enter();
	struct g *gp = mp->curg;
	atomic_store_explicit(&gp->status, G_DEAD, memory_order_release);
	owner_count(mp->p->nexited, 1);
	if (gp->lockedm) {
		/* Go ends a thread whose goroutine exits locked; gmprt unbinds. */
		gp->lockedm = NULL;
		mp->lockedg = NULL;
		mp->lockcount = 0;
	}
	if (gp->is_main) {
		/* G1 lives on the main thread's stack: nothing to free. */
		mp->after.kind = AFTER_NONE;
	} else {
		mp->after = (struct after_switch){ AFTER_GFREE, gp, NULL, NULL };
	}
	switch_away(mp, gp, true);
	fatal_nodump("a dead goroutine was resumed");
}

static void gosched_global(void);

static bool preempt_pending(struct m *mp)
{
	/* A load first: the exchange is a locked instruction, paid only when
	 * sysmon asked. */
	return !mp->adopted && atomic_load_explicit(&mp->preempt_gen, memory_order_relaxed) &&
	       atomic_exchange_explicit(&mp->preempt_gen, 0, memory_order_relaxed) != 0;
}

GMP_API int64_t gmp_go_opts(void (*fn)(void *), void *arg, const struct gmp_go_opts *opts)
{
	if (!fn)
		return -EINVAL;
	size_t size = opts && opts->stack_size ? opts->stack_size : config.stack_size;
	getg(); /* adopts a foreign thread */
	struct m *mp = rt_enter();
	struct p *pp = mp->p;
	int err = 0;
	struct g *gp = newproc(pp, fn, arg, size, &err);
	if (!gp) {
		rt_exit();
		return err;
	}
	const char *name = opts ? opts->name : NULL;
	if (gp->name != name) /* a reused G: keep its second line unwritten */
		gp->name = name;
	if (pp) {
		gp->goid = newgoid(pp);
		owner_count(pp->ncreated, 1);
		atomic_store_explicit(&gp->status, G_RUNNABLE, memory_order_relaxed);
		runqput(pp, gp, true);
	} else {
		/* An adopted thread has no P: the goroutine goes to the global queue. */
		gp->goid = atomic_fetch_add(&sched.goidgen, 1) + 1;
		atomic_fetch_add(&sched.ncreated_unowned, 1);
		atomic_store(&gp->status, G_RUNNABLE);
		rt_lock(&sched.lock);
		globrunqput(gp);
		rt_unlock(&sched.lock);
	}
	int64_t goid = gp->goid;
	rt_exit();
	if (!atomic_load_explicit(&sysmon_running, memory_order_relaxed))
		sysmon_start();
	wakep();
	/* Backpressure: a goroutine that has spawned a run queue's worth
	 * without waiting, while the global queue holds more than the Ps can
	 * soon run, waits behind that backlog, so that it (and the memory of
	 * its stacks) stays bounded and free Gs come back warm.  A goroutine
	 * that spawns a few and waits (a fan-out) is never held back.  sysmon's
	 * preemption request is honoured here too: gmp_go is where a spawning
	 * loop spends its time, out of reach of the signal. */
	struct g *self = getm()->curg;
	if (self && ++self->spawn_run > RUNQ_SIZE &&
	    atomic_load_explicit(&sched.runqsize, memory_order_relaxed) > (int64_t)RUNQ_SIZE * maxprocs_now())
		gosched_global();
	else if (preempt_pending(getm()))
		gosched_global();
	return goid;
}

GMP_API int64_t gmp_go(void (*fn)(void *), void *arg)
{
	return gmp_go_opts(fn, arg, NULL);
}

/* gosched in every case, in runtime code (mp is rt_enter's).  Returns the
 * M that gp runs on afterwards.  Out of line: it is yield_local's fallback. */
static __attribute__((noinline)) struct m *gosched_slow(struct m *mp, struct g *gp,
							bool to_global)
{
	struct p *pp = mp->p;
	bool local = !runqempty(pp);
	bool global = atomic_load_explicit(&sched.runqsize, memory_order_relaxed) > 0;
	if (!local && !global && !has_timers(pp))
		return mp; /* nothing else to run here */
	to_global |= !local && global;
	gp->spawn_run = 0;
	atomic_store_explicit(&gp->status, G_RUNNABLE, memory_order_relaxed);
	if (mp->lockedg || to_global) {
		mp->after = (struct after_switch){ AFTER_GLOBRUNQPUT, gp, NULL, NULL };
		if (mp->lockedg) { /* its M may run nothing else: through g0 */
			mp->curg = NULL;
			return switch_to(mp, gp, &mp->g0, false);
		}
	} else {
		mp->after = (struct after_switch){ AFTER_RUNQPUT, gp, NULL, NULL };
	}
	return switch_away(mp, gp, false);
}

/* The common local yield, decided in one pass: a G not bound to its M, on a
 * P with nothing for g0 to do and a G to run next.  It picks that G as
 * switch_away would (runnable_local, with its fairness turn), and puts gp
 * where gosched_slow would.  Without thieves gp goes to the tail before its
 * registers are saved: only this M, which holds the P until the switch is
 * done, could take it; and when the ring's head is what runs next, off its
 * fairness turn, both moves are one (runqrotate_alone).  Then the G resumed
 * is told to arm for a wake-up: the queue holds gp.  Returns the M that gp
 * runs on afterwards, with *arm as switch_to_arming says, or NULL, having
 * done nothing, when the case is not this one. */
static hot_inline struct m *yield_local(struct m *mp, struct g *gp, uint32_t *arm)
{
	struct p *pp = mp->p;
	bool inherit, alone = atomic_load_explicit(&sched.solo, memory_order_relaxed);
	if (mp->lockedg || (alone ? timers_due(pp) : g0_has_business(pp)))
		return NULL;
	struct g *next;
	if (alone && likely(!fairness_turn(pp)) && (next = runqrotate_alone(pp, gp))) {
		atomic_store_explicit(&gp->status, G_RUNNABLE, memory_order_relaxed);
		*arm = KASSIST_ARMED_WAKE;
		return switch_away_to(mp, pp, gp, next, false, false, arm);
	}
	next = runnable_local(pp, &inherit);
	if (!next)
		return NULL;
	atomic_store_explicit(&gp->status, G_RUNNABLE, memory_order_relaxed);
	if (alone) {
		runqput(pp, gp, false);
		*arm = KASSIST_ARMED_WAKE;
	} else {
		mp->after = (struct after_switch){ AFTER_RUNQPUT, gp, NULL, NULL };
	}
	return switch_away_to(mp, pp, gp, next, inherit, false, arm);
}

/* gosched, in runtime code on mp (rt_enter's). */
static hot_inline void gosched_entered(struct m *mp, bool to_global)
{
	struct g *gp = mp->curg;
	uint32_t arm = 0;
	struct m *resumed = to_global ? NULL : yield_local(mp, gp, &arm);
	if (!resumed)
		resumed = gosched_slow(mp, gp, to_global);
	rt_exit_armed(resumed, arm);
}

/* gosched for every M that rt_enter_can_slot turns away: none yet, adopted,
 * without a slot, or in runtime code already. */
static __attribute__((noinline)) void gosched_other(struct m *mp, bool to_global)
{
	if (!mp || mp->adopted) {
		getg(); /* adopts a foreign thread */
		sched_yield();
		return;
	}
	gosched_entered(rt_enter_m(mp), to_global);
}

/* The running goroutine gives up its P's time: to the tail of the local
 * queue (gmp_yield), or of the global queue (to_global: a spawner that
 * outruns its Ps, so that it waits behind the backlog it made; and a yield
 * that finds only global work, which from the local tail it would never let
 * run, as Go's Gosched always queues globally).  Returns at once when
 * nothing else could run.  The common M (rt_enter_can_slot) enters inline
 * and is never adopted, which spares the yield that test. */
static hot_inline void gosched(bool to_global)
{
	struct m *mp = getm();
	if (likely(mp && rt_enter_can_slot(mp)))
		gosched_entered(rt_enter_slot(mp), to_global);
	else
		gosched_other(mp, to_global);
}

static __attribute__((noinline)) void gosched_global(void)
{
	gosched(true);
}

GMP_API void gmp_yield(void)
{
	gosched(false);
}

GMP_API void gmp_exit(void)
{
	struct g *gp = getg();
	if (gp->adopted) {
		/* Not a goroutine of ours: end the thread as Goexit ends a goroutine. */
		pthread_exit(NULL);
	}
	goexit1();
}

GMP_API const char *gmp_version(void)
{
#define GMP_STR_(x) #x
#define GMP_STR(x) GMP_STR_(x)
	return GMP_STR(GMPRT_VERSION_MAJOR) "." GMP_STR(GMPRT_VERSION_MINOR) "." GMP_STR(GMPRT_VERSION_PATCH);
}

GMP_API int64_t gmp_self(void)
{
	return getg()->goid;
}

GMP_API int64_t gmp_num_goroutine(void)
{
	int64_t n = atomic_load_explicit(&sched.ncreated_unowned, memory_order_relaxed);
	int32_t np = atomic_load(&nallp);
	for (int32_t i = 0; i < np; i++)
		n += atomic_load_explicit(&allp[i]->ncreated, memory_order_relaxed) -
		     atomic_load_explicit(&allp[i]->nexited, memory_order_relaxed);
	return n;
}

GMP_API void gmp_lock_os_thread(void)
{
	struct g *gp = getg();
	if (gp->adopted)
		return; /* it owns its thread already */
	struct m *mp = gp->m;
	if (mp->lockcount++ == 0) {
		gp->lockedm = mp;
		mp->lockedg = gp;
	}
}

GMP_API void gmp_unlock_os_thread(void)
{
	struct g *gp = getg();
	if (gp->adopted)
		return;
	struct m *mp = gp->m;
	if (mp->lockcount == 0)
		return;
	if (--mp->lockcount == 0) {
		gp->lockedm = NULL;
		mp->lockedg = NULL;
	}
}

/* ---- adopted threads ------------------------------------------------------- */

static void adopted_thread_exit(void *arg)
{
	struct m *mp = arg;
	atomic_fetch_sub(&sched.nadopted, 1);
	atomic_fetch_sub(&sched.nadopted_all, 1);
	(void)mp; /* the G and M stay allocated: Gs are never freed */
}

static pthread_key_t adopted_key;

struct g *adopt_thread(void)
{
	bool recycled;
	struct m *mp = malloc_m(&recycled);
	if (!mp)
		fatal_nodump("out of memory adopting a thread");
	m_init(mp, recycled);
	mp->adopted = true;
	mp->tid = gettid_();
	struct g *gp = calloc(1, sizeof(*gp));
	if (!gp)
		fatal_nodump("out of memory adopting a thread");
	gp->adopted = 1;
	gp->m = mp;
	gp->lockedm = mp;
	gp->goid = atomic_fetch_add(&sched.goidgen, 1) + 1;
	atomic_store(&gp->status, G_RUNNING);
	thread_stack_bounds(&gp->stack);
	san_current_context(gp);
	mp->curg = gp;
	mp->lockedg = gp;
	atomic_fetch_add(&sched.nadopted, 1); /* counted before anyone can see it */
	atomic_fetch_add(&sched.nadopted_all, 1);
	allg_add(gp);
	tls_m = mp;
	pthread_setspecific(adopted_key, mp);
	/* Its waits (fds, timers) need the scheduler's Ms and sysmon going
	 * even if no goroutine was ever started. */
	sysmon_start();
	return gp;
}

/* ---- stop the world and GMP_MAXPROCS ---------------------------------------- */

static void p_init(struct p *pp, int32_t id)
{
	pp->id = id;
	pp->rand_state = (uint64_t)id * 0x9e3779b97f4a7c15ULL + 1;
	runq_p_init(pp);
	atomic_store(&pp->status, P_STOPPED);
}

static int32_t gcd(int32_t a, int32_t b)
{
	while (b) {
		int32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static void compute_stealorder(int32_t n)
{
	nstealorder = 0;
	for (int32_t i = 1; i <= n; i++)
		if (gcd(i, n) == 1)
			stealorder[nstealorder++] = i;
}

/* Moves everything queued on a P that is going away to the global queue. */
static void p_destroy(struct p *pp)
{
	bool inherit;
	struct g *gp;
	rt_lock(&sched.lock);
	while ((gp = runqget(pp, &inherit)))
		globrunqput(gp);
	rt_unlock(&sched.lock);
	timers_move(pp, allp[0]);
	gfspill(pp, pp->ngfree);
	gblock_spill(&pp->gblock);
	atomic_store(&pp->status, P_DEAD);
}

/* World stopped (or not yet started).  Returns Ps with work, linked. */
static struct p *procresize(int32_t n)
{
	int32_t old = maxprocs_now();
	for (int32_t i = 0; i < n; i++) {
		if (!allp[i]) {
			struct p *pp = aligned_alloc(CACHELINE, (sizeof(struct p) + CACHELINE - 1) & ~(size_t)(CACHELINE - 1));
			if (!pp)
				fatal_nodump("out of memory for processors");
			memset(pp, 0, sizeof(*pp));
			p_init(pp, i);
			allp[i] = pp;
			atomic_store(&nallp, i + 1);
		}
	}
	struct m *mp = getm();
	struct p *mine = mp ? mp->p : NULL;
	if (mine && mine->id >= n) { /* ours goes away: move to P 0 first */
		releasep();
		acquirep(allp[0]);
		mine = allp[0];
	}
	atomic_store(&sched.gomaxprocs, n);
	sched_solo_update();
	for (int32_t i = n; i < old; i++)
		p_destroy(allp[i]);
	compute_stealorder(n);
	struct p *runnable = NULL;
	sched.pidle = NULL;
	atomic_store(&sched.npidle, 0);
	for (int32_t i = n - 1; i >= 0; i--) {
		struct p *pp = allp[i];
		if (pp == mine)
			continue;
		pp->m = NULL;
		if (runqempty(pp)) {
			pidleput(pp);
		} else {
			pp->link = runnable;
			runnable = pp;
		}
	}
	return runnable;
}

static void stoptheworld(void)
{
	struct m *mp = getm();
	rt_lock(&sched.stwlock);
	rt_lock(&sched.lock);
	note_clear(&sched.stopnote);
	sched.stopwait = maxprocs_now();
	atomic_store(&sched.gcwaiting, 1);
	sched_solo_update();
	if (mp->p) {
		atomic_store(&mp->p->status, P_STOPPED);
		sched.stopwait--;
	}
	struct p *pp;
	while ((pp = pidleget())) {
		atomic_store(&pp->status, P_STOPPED);
		sched.stopwait--;
	}
	bool wait = sched.stopwait > 0;
	rt_unlock(&sched.lock);
	/* Ps whose M is blocked in the kernel will not stop by themselves. */
	while (wait && !note_sleep_until(&sched.stopnote, nanotime() + 100000)) {
		int32_t n = maxprocs_now();
		for (int32_t i = 0; i < n; i++) {
			uintptr_t st = atomic_load(&allp[i]->status);
			struct m *owner = P_OWNER(st);
			if (owner && (st & P_USER) &&
			    (owner_blocked(st, INT64_MAX) || (!m_kslot(owner) && thread_sleeping(owner->tid))))
				retake(allp[i], st);
		}
	}
}

static void starttheworld(struct p *runnable)
{
	struct m *mp = getm();
	if (mp->p)
		atomic_store(&mp->p->status, p_owned_status(mp));
	atomic_store(&sched.gcwaiting, 0);
	sched_solo_update();
	rt_unlock(&sched.stwlock);
	while (runnable) {
		struct p *next = runnable->link;
		startm(runnable, false);
		runnable = next;
	}
	wakep();
}

GMP_API int gmp_maxprocs(int n)
{
	getg();
	int prev = maxprocs_now();
	if (n <= 0 || n == prev)
		return prev;
	if (n > MAXPROCS_LIMIT)
		return -EINVAL;
	rt_enter();
	stoptheworld();
	starttheworld(procresize(n));
	rt_exit();
	return prev;
}

/* ---- deadlock detection ---------------------------------------------------- */

/* Threads that gmprt does not know of may still call in (the API adopts
 * them), so while any live, waiting goroutines are not a deadlock.  Known:
 * the Ms, sysmon, and adopted threads. */
static bool foreign_threads_alive(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	char line[128];
	long threads = 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Threads:", 8) == 0)
			threads = atol(line + 8);
	fclose(f);
	long known = sched.mcount + atomic_load(&sysmon_running) + atomic_load(&sched.nadopted_all);
#if defined(__SANITIZE_THREAD__)
	known += 1; /* TSan's background thread, there once any thread was started */
#endif
	return threads > known;
}

/* sched.lock held; called as an M goes idle (Go's checkdead). */
void checkdead(void)
{
	int32_t run = sched.mcount - sched.nmidle - sched.nmidlelocked - (atomic_load(&sched.kwatcher) != NULL);
	if (run > 0)
		return;
	if (atomic_load(&sched.nadopted) > 0) /* a G in a syscall keeps its M busy: run > 0 */
		return;
	if (foreign_threads_alive())
		return;
	if (atomic_load(&sched.runqsize) > 0)
		return;
	int32_t n = maxprocs_now();
	for (int32_t i = 0; i < n; i++)
		if (has_timers(allp[i]) || !runqempty(allp[i]))
			return;
	if (gmp_num_goroutine() == 0)
		fatal("no goroutines (main called gmp_exit) - deadlock!");
	fatal("all goroutines are asleep - deadlock!");
}

/* ---- start-up --------------------------------------------------------------- */

static void main_thread_init(void)
{
	m_init(&m0, false);
	m0.tid = gettid_();
	m0.is_main_thread = true;
	m0.rtdepth = 1; /* runtime code until runtime_init returns */
	tls_m = &m0;
	sched.mcount = 1;

	/* g0 of the main thread: a mapped stack, entered through gostart. */
	struct stack *st = &m0.g0.stack;
	if (stack_alloc(st, G0_STACK, NULL) != 0)
		fatal_nodump("cannot map the scheduler stack");
	san_new_context(&m0.g0);
	m0.g0.sp = gmprt_stack_init(st->hi);

	/* G1 is main() on the thread's own stack. */
	g1.goid = atomic_fetch_add(&sched.goidgen, 1) + 1;
	g1.is_main = 1;
	g1.m = &m0;
	g1.name = "main";
	atomic_store(&g1.status, G_RUNNING);
	thread_stack_bounds(&g1.stack);
	san_current_context(&g1);
	allg_add(&g1);
	m0.curg = &g1;
	signals_minit(&m0);
}

__attribute__((constructor(101))) static void runtime_init(void)
{
	config_init();
	stack_init();
	process_fence_init();
	pthread_key_create(&adopted_key, adopted_thread_exit);
	atomic_store(&sched.lastpoll, nanotime());
	bool on_main = getpid() == gettid_();
	if (on_main)
		main_thread_init();
	signals_init();
	preempt_init();
	netpoll_init();
	procresize(config.maxprocs);
	if (on_main) {
		acquirep(allp[0]);
		owner_count(allp[0]->ncreated, 1); /* G1 */
		/* P0 is ours: take it off the idle list procresize built. */
		rt_lock(&sched.lock);
		pidleremove(allp[0]);
		rt_unlock(&sched.lock);
		rt_exit(); /* main() runs goroutine code */
	}
}

/* ---- sysmon ------------------------------------------------------------------ */

static void *sysmon_thread(void *arg)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	sysmon_main();
	return NULL;
}

static void sysmon_start(void)
{
	if (atomic_exchange(&sysmon_running, true))
		return;
	/* Kernel assist loads with the first goroutine, before any M but M0
	 * runs: programs that never spawn do not pay for it. */
	kassist_init(config.kassist); /* M0 registers at its next runtime entry */
	__atomic_store_n(&kassist_decided, true, __ATOMIC_RELEASE);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, M_STACK);
	if (pthread_create(&t, &attr, sysmon_thread, NULL) != 0)
		warn("cannot start sysmon; blocked timers and idle Ps are only noticed by running Ms");
	pthread_attr_destroy(&attr);
}
