/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * runtime.h - the internal contract between gmprt's source files.
 *
 * Entities (as in Go's runtime2.go):
 *   G  a goroutine: a saved stack pointer, a stack, a status.  G structs are
 *      never freed: a dead G goes to a free list (per P, then global) and is
 *      reused, so a pointer to a G stays valid for the life of the process.
 *   M  an OS thread.  Each M has a g0: the scheduler's own context.  For Ms
 *      that gmprt starts, g0 runs on the thread's own stack; for the main
 *      thread, whose stack belongs to goroutine 1, g0 runs on a mapped stack.
 *   P  a processor: a run queue, free lists, timers.  An M runs goroutine code
 *      only while it owns a P.  P structs are never freed either; allp[] holds
 *      them and gomaxprocs says how many are live.
 *
 * Invariants every file relies on:
 *   - An M runs runtime code (rtdepth > 0: between rt_enter and rt_exit,
 *     or holding an rt_lock, which counts a level unless it shares one its
 *     taker holds: rt_lock_in) only while it owns m->p, and then nobody can
 *     take that P.  In goroutine code (rtdepth 0) its P may be retaken
 *     while it is blocked in the kernel; it finds out at its next
 *     rt_enter.  Adopted threads never own a P.
 *   - A G's status moves RUNNABLE -> RUNNING -> (WAITING|RUNNABLE|DEAD); only
 *     goready() moves WAITING -> RUNNABLE, and only once per park.
 *   - After any context switch, the code that resumes calls switch_finish(),
 *     which performs the action the switching side left in m->after: that is
 *     how a goroutine releases a lock only once its registers are saved.
 *   - Runtime code never holds an rt_lock across a context switch except the
 *     one handed to gopark's unlock function.
 *   - Never cache getm() across a call that may park: the G may resume on
 *     another M.  Nor read tls_m but through getm() (see there).
 */
#ifndef GMPRT_RUNTIME_H
#define GMPRT_RUNTIME_H

#define _GNU_SOURCE
#include "../../bpf/kassist.h"	/* struct kassist_slot, for struct m */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "gmprt.h"

#define GMP_API __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
/* For the small steps of a switch or a channel operation, which the
 * compiler would otherwise call, each with its own register saves. */
#define hot_inline inline __attribute__((always_inline))
#define CACHELINE 64

enum {
	MAXPROCS_LIMIT = 1024,	/* allp[] capacity */
	RUNQ_SIZE = 256,	/* local run queue ring; a power of two */
	GFREE_LOCAL_MAX = 64,	/* per-P free Gs before spilling half */
	DEFAULT_STACK = 64 << 10,
};

/* ---- locks and notes (lock.c) ------------------------------------------- */

/* A runtime mutex: spins briefly, then sleeps on a futex.  Zero is unlocked. */
/* A spin-wait hint to the CPU (and to its hyperthread sibling). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

struct rt_lock {
	_Atomic uint32_t key;		/* 0 unlocked, 1 locked (sleepers: lock.c) */
};
static inline void rt_lock(struct rt_lock *l);	/* inline below; the slow path in lock.c */
static inline void rt_unlock(struct rt_lock *l);
void rt_lock_slow(struct rt_lock *l);
void rt_lock_wake(struct rt_lock *l);

/* Sleeper counts, hashed by lock address, beside the locks (lock.c). */
enum { RT_LOCK_BUCKETS = 64 };	/* a power of two */
extern _Atomic uint32_t rt_lock_sleepers[RT_LOCK_BUCKETS];
static inline _Atomic uint32_t *rt_lock_sleepers_of(struct rt_lock *l)
{
	uintptr_t a = (uintptr_t)l;
	return &rt_lock_sleepers[(a >> 2 ^ a >> 8) & (RT_LOCK_BUCKETS - 1)];
}

/* A one-shot wake-up (Go's note): sleep until woken; clear before reuse. */
struct note {
	_Atomic uint32_t key;
};
void note_clear(struct note *n);
void note_sleep(struct note *n);
bool note_sleep_until(struct note *n, int64_t deadline); /* false on timeout */
void note_wakeup(struct note *n);

int futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns);
int futex_wake(_Atomic uint32_t *addr, int n);

/* ---- goroutines --------------------------------------------------------- */

enum gstatus {
	G_IDLE,		/* allocated, not yet started */
	G_RUNNABLE,	/* on a run queue */
	G_RUNNING,	/* owns an M and P */
	G_WAITING,	/* parked; waitreason says on what */
	G_SYSCALL,	/* its M is blocked in the kernel (not set yet: shows as running) */
	G_DEAD,		/* on a free list */
};

struct stack {
	uintptr_t lo, hi;	/* usable range; hi is where the stack starts */
	uintptr_t map_lo;	/* start of the mapping (guard page included) */
	uint8_t guarded;	/* 1: a guard page lies below lo; 0: canary mode */
	uint8_t marker;		/* the guard is a page-table marker, not a PROT_NONE VMA */
	uint8_t slab;		/* cut from a slab: never unmapped */
	uint32_t vg_id;		/* valgrind's id for it, when running under valgrind */
};

/* Where default-size stacks are cut from: the unused part of a slab (stack.c).
 * Each P has one (no lock); a thread without a P shares a global one. */
struct stack_slab {
	uintptr_t next, end;
	bool guarded;
};

/* Where new G structs are cut from: the unused part of a block (proc.c's
 * galloc), already in allg.  Each P has one (no lock); a thread without a P
 * shares a global one. */
struct g;
struct g_block {
	struct g *next;
	int32_t left;
};

struct m;
struct p;

/* Layout: the first cache line holds every field that a spawn, a switch and
 * an exit write; the rest are read on those paths but written only when a
 * goroutine parks, starts with a new stack or a name.  A G typically
 * starts on one CPU and runs and dies on another (a thief's): each line
 * written on both sides is a cache miss per goroutine. */
struct g {
	/* line 1: written on every spawn, switch and exit */
	void *sp;			/* saved stack pointer while not running */
	struct g *schedlink;		/* run queue and free list link */
	void (*fn)(void *);
	void *arg;
	struct m *m;			/* M running it, or NULL */
	struct m *lockedm;		/* bound: runs only on this M */
	int64_t goid;
	_Atomic int status;
	uint32_t spawn_run;		/* goroutines it started since it last parked, or
				 * yielded through g0 or the global queue
				 * (gmp_go's backpressure) */

	/* read on the hot paths, written rarely */
	struct stack stack __attribute__((aligned(CACHELINE)));
	const char *name;
	uint8_t adopted;		/* a foreign thread: never runs on a P */
	uint8_t is_main;		/* goroutine 1 on the main thread's stack */

	/* written when it parks */
	const char *waitreason;		/* what it is parked on, for dumps (status G_WAITING) */
	int64_t waitsince;		/* gmp_now() when it parked */
	void *param;			/* passed by the waker (e.g. the sudog that fired) */
	_Atomic uint32_t selectdone;	/* a select's cases race for this */
	_Atomic uint32_t wakeword;	/* adopted threads sleep on this futex */
	void *tsan_fiber;
	void *asan_fake_stack;
};
_Static_assert(offsetof(struct g, stack) == CACHELINE, "struct g: the hot fields fill line 1");

/* ---- processors --------------------------------------------------------- */

/* P status: THE ownership word.  Unowned states are small constants; an
 * owned P holds its M's address (64-byte aligned) tagged P_USER or
 * P_RUNTIME.  An M with a slot keeps P_USER from acquirep on, in runtime
 * code too: a retaker moves P_USER to P_RETAKING with a CAS, and then
 * checks that the M is not in runtime code, by the M's slot (see
 * rt_enter_outer): the kernel's record of its block, or on the userspace
 * path the M's own armed word, read after a process_fence.  An M with no
 * slot (no membarrier) moves P_USER to P_RUNTIME with a CAS on entry,
 * which the retaker's CAS excludes, and stores P_USER on exit (rt_exit);
 * its acquirep says P_RUNTIME. */
enum pstatus {
	P_IDLE = 8,	/* on the idle list */
	P_STOPPED = 16,	/* stopped for a stop of the world */
	P_DEAD = 24,	/* beyond gomaxprocs */
	P_RETAKING = 32, /* taken from a blocked M, being handed off */
	P_TAGS = 63,	/* low bits of an owned status */
	P_USER = 1,
	P_RUNTIME = 2,
};
#define P_OWNER(st) ((st) > P_TAGS ? (struct m *)((st) & ~(uintptr_t)P_TAGS) : NULL)
#define P_TICK_ONE_SWITCH ((uint64_t)1 << 32)
#define P_TICK_SCHED(t) ((uint32_t)(t))
#define P_TICK_SWITCH(t) ((uint32_t)((t) >> 32))

struct timer;
struct timer_ent {		/* a timer heap entry (time.c) */
	int64_t when;		/* the timer's, copied: sifting touches no timer */
	struct timer *t;
};

struct p {
	int32_t id;
	_Atomic uintptr_t status;	/* enum pstatus, or owner | P_USER / P_RUNTIME */
	struct m *m;			/* owner, NULL when idle */
	struct p *link;			/* idle list */
	/* sysmon's view of progress, one word for one store per switch:
	 * P_TICK_SCHED(ticks) counts schedules (new time slices: what
	 * preemption goes by), P_TICK_SWITCH(ticks) every switch to a G,
	 * inherited slices too. */
	uint64_t ticks;
	_Atomic int64_t timer0_when;	/* heap top's when, 0 if empty (timers below); here
					 * because every switch looks at it */

	/* local run queue: the owner puts at tail, anyone takes at head.
	 * runqends is the pair as one word, for an owner with no thieves
	 * that moves both ends at once (runqrotate_alone): head is its low
	 * half (the layout is little-endian, as on every target).  The
	 * empty array starts the line: an aligned union would fill it. */
	char runq_line[0] __attribute__((aligned(CACHELINE)));
	union {
		struct {
			_Atomic uint32_t runqhead;
			_Atomic uint32_t runqtail;
		};
		_Atomic uint64_t runqends;
	};
	_Atomic(struct g *) runnext;
	_Atomic uint32_t runnext_owner;	/* 1 while the owner takes or swaps runnext with plain ops */
	_Atomic uint32_t runnext_thieves; /* thieves after runnext, +1 for good without membarrier */
	struct g *runq[RUNQ_SIZE];

	/* free Gs with default-size stacks (a stack: the last is the warmest),
	 * and the goid batch */
	int32_t ngfree __attribute__((aligned(CACHELINE)));
	struct g *gfree[GFREE_LOCAL_MAX];
	int64_t goidcache, goidcacheend;
	/* where new Gs and their stacks come from, without a lock */
	struct g_block gblock;
	struct stack_slab slab;
	uint64_t rand_state;

	/* timers: a min-heap ordered by when; timerlock guards it */
	struct rt_lock timerlock;
	struct timer_ent *timers;
	int32_t ntimers, captimers;
	struct timer *_Atomic timer_running; /* popped, its fn running (compared, never dereferenced) */

	/* counters, published by the stats segment; written by the owner with
	 * owner_count (a load and a store: no locked instruction), except
	 * nstolen and nhandoff, which thieves and retakers add to */
	_Atomic uint64_t nsteal, nstolen;
	_Atomic uint64_t nhandoff;		/* taken from an M blocked in the kernel */
	_Atomic uint64_t npreempt;		/* goroutines preempted by sysmon */
	_Atomic int64_t ncreated, nexited;	/* goroutines started and ended here */
};

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "struct p: runqends's halves");

/* Adds to a counter that only the P's owner writes; readers load it relaxed. */
#define owner_count(ctr, n)                                                              \
	atomic_store_explicit(&(ctr), atomic_load_explicit(&(ctr), memory_order_relaxed) + (n), \
			      memory_order_relaxed)

/* ---- machines ----------------------------------------------------------- */

enum after_kind {
	AFTER_NONE,
	AFTER_PARK,	/* run after.unlockf(after.g, after.arg); resume after.g if it says no */
	AFTER_PARK_UNLOCK, /* after.g parked: rt_unlock(after.arg) (gopark_unlock) */
	AFTER_RUNQPUT,	/* after.g yielded: put it on the local run queue */
	AFTER_GLOBRUNQPUT, /* after.g yielded while bound: put it on the global queue */
	AFTER_GFREE,	/* after.g exited: free it */
};

struct after_switch {
	enum after_kind kind;
	struct g *g;
	bool (*unlockf)(struct g *, void *);
	void *arg;
};

struct kassist_slot;

struct m {
	_Alignas(64) struct g g0;	/* the scheduler context; m is 64-byte aligned (P_OWNER) */
	struct g *curg;			/* running goroutine, or NULL on g0 */
	struct p *p;
	struct p *nextp;		/* P handed over with the wake-up */
	struct g *lockedg;
	int32_t lockcount;		/* nested gmp_lock_os_thread calls */
	bool spinning;
	bool is_main_thread;
	bool adopted;			/* a foreign thread: never owns a P */
	int32_t rtdepth;		/* > 0 while in runtime code (see rt_enter) */
	struct kassist_slot *slot;	/* what rt_enter disarms: kslot, &uslot, or NULL */
	uint64_t kseq;			/* slot->seq when rt_enter last looked */
	struct kassist_slot *kslot;	/* kernel-assist slot, or NULL (userspace path) */
	bool kslot_tried;		/* registration was attempted */
	_Atomic uint64_t preempt_gen;	/* set by sysmon to ask for a preemption */
	struct note park;
	struct g *nextg;		/* G for g0 to run next, chosen by a switching G */
	int32_t id;
	int32_t tid;
	struct m *schedlink;		/* idle list */
	struct m *alllink;
	struct after_switch after;
	uint64_t rand_state;
	pthread_t thread;
	void *sigstack;
	/* The userspace path's slot: armed and disarmed like a kernel-assist
	 * slot, read by a retaker after a process_fence; its seq, even, moves
	 * only when a retaker looks (m_in_runtime_user). */
	struct kassist_slot uslot;
};

/* ---- the scheduler's global state (proc.c) ------------------------------ */

/* A growable ring of G pointers (runq.c): the global run queue (FIFO) and
 * the global free lists (LIFO; trimming takes the oldest, at the front).
 * Its owner's lock guards it.  It holds pointers rather than linking the
 * Gs, so that moving a batch in or out touches no G: the Gs are usually in
 * another CPU's cache, and walking a list of them is a chain of misses.
 * It grows by doubling and never shrinks (a burst of 1M queued goroutines
 * leaves 8 MB); growing it when memory is exhausted is a fatal error. */
struct gring {
	struct g **buf;
	uint32_t cap;		/* a power of two, or 0 */
	uint32_t head;		/* index of the front */
	uint32_t len;
};
void gring_push_n(struct gring *r, struct g *const *gs, uint32_t n);	/* at the back */
uint32_t gring_take_front(struct gring *r, struct g **out, uint32_t max);
uint32_t gring_take_back(struct gring *r, struct g **out, uint32_t max); /* keeps their order */
static inline void gring_push(struct gring *r, struct g *gp)
{
	gring_push_n(r, &gp, 1);
}

struct sched {
	struct rt_lock lock;		/* guards everything below up to "atomics" */
	struct m *midle;
	int32_t nmidle, nmidlelocked, mcount, mnext;
	struct p *pidle;
	struct gring runq;		/* global run queue */
	struct rt_lock gflock;		/* guards the global free lists */
	struct gring gfree_warm;	/* free Gs whose stacks are still committed */
	struct gring gfree_cold;	/* free Gs whose stacks were trimmed */
	struct gring gfree_nostack;	/* free Gs without a stack */
	uint32_t minfree_warm;		/* low-water mark of gfree_warm.len since the last trim */
	struct rt_lock stwlock;		/* one stop of the world at a time */
	int32_t stopwait;
	struct note stopnote;
	struct m *allm;
	struct m *mfree;		/* structs of Ms whose threads ended */
	struct m *_Atomic kwatcher;	/* the idle M waiting on the BPF ring buffer, if any */
	bool sysmonwait;		/* sysmon sleeps on sysmonnote until a P gets busy */
	struct note sysmonnote;

	/* atomics, read without the lock */
	_Atomic int32_t npidle;
	_Atomic int32_t nmspinning;
	_Atomic int32_t gomaxprocs;
	_Atomic int64_t runqsize;
	_Atomic uint32_t gcwaiting;	/* a stop of the world is in progress */
	_Atomic uint32_t solo;		/* gomaxprocs == 1 && !gcwaiting (sched_solo_update) */
	_Atomic int64_t goidgen;
	_Atomic int64_t ncreated_unowned;	/* goroutines started by threads without a P */
	_Atomic int64_t lastpoll;	/* 0: an M is blocked in netpoll */
	_Atomic int64_t polluntil;	/* when that M wakes up, 0 for never */
	_Atomic int32_t nadopted;	/* foreign threads running their own code */
	_Atomic int32_t nadopted_all;	/* foreign threads adopted and still alive */
	_Atomic uint64_t nmfail;	/* Ms that could not be started (no thread) */
	_Atomic uint64_t nkmissed;	/* switches back in the kernel did not record (kassist_slot_on) */
	_Atomic int64_t mfail_last;	/* when the last of those failed */
};

extern struct sched sched;
extern struct p *allp[MAXPROCS_LIMIT];

static inline struct m *getm(void);
static inline struct g *getg(void);

/* Goroutine park and wake (Go's gopark/goready).  unlockf runs once the G's
 * registers are saved; if it returns false the G resumes at once. */
void gopark(bool (*unlockf)(struct g *, void *), void *arg, const char *reason);
void gopark_unlock(struct rt_lock *l, const char *reason); /* unlockf = rt_unlock(l) */
void goready(struct g *gp);
void goready_fifo(struct g *gp);	/* behind the queued work: keeps a batch in order */
void wakep(void);	/* wake an idle P if there is one and nobody spins */
void handoffp(struct p *pp);	/* give a P whose M is going away to a spare M or the idle list */

/* Runtime entry from goroutine code (proc.c).  Between rt_enter and rt_exit
 * the M's P cannot be retaken; rt_enter may move the G to another M (if its
 * P was retaken while it blocked) and returns the M it is on.  Calls nest;
 * a G that switches away inside resumes with the arriving M's depth.  Hence
 * the rule every park site keeps: it parks at depth 1 plus the rt_locks its
 * unlock function releases (gopark's own entry, and those locks, nothing
 * more), so that whoever resumes finds depth 1.  An extra rt_enter around
 * a parking call breaks the count for the goroutine that runs next. */
static inline struct m *rt_enter(void);	/* inline below: nesting is a count */
static inline void rt_exit(void);
/* The same, for a caller that holds the current M already (getm()). */
static inline struct m *rt_enter_m(struct m *mp);
static inline void rt_exit_m(struct m *mp);
/* rt_enter_m's first step, for a caller that tests before it enters: an M
 * at depth 0 with a slot and a P, never an adopted one, which has neither
 * (rt_enter_can_slot); then rt_enter_slot enters. */
static inline bool rt_enter_can_slot(const struct m *mp);
static inline struct m *rt_enter_slot(struct m *mp);
/* rt_exit_m from depth 1 on an M that is not adopted: where a G resumes
 * after a switch (the rule above). */
static inline void rt_exit_last(struct m *mp);
struct m *rt_enter_outer(struct m *mp);	/* depth 0 -> 1, the cases rt_enter does not inline */
struct m *rt_enter_seq_moved(struct m *mp, uint64_t seq); /* an M with a slot whose seq moved */
bool retake(struct p *pp, uintptr_t owner);	/* owner: the P_USER status seen */
bool owner_blocked(uintptr_t st, int64_t before);	/* kernel saw it sleep, no later than before */
void quiet_stale_wakes(void);	/* after an event woke us: no stale "wake" arming stays (proc.c) */
bool thread_sleeping(int32_t tid);		/* /proc says asleep in the kernel (sysmon.c) */
void preempt_request(struct m *mp);		/* ask mp to preempt its goroutine (preempt.c) */
void preempt_init(void);

/* An intrusive doubly-linked list: the one shape of the runtime's queues of
 * waiters (sudogs, I/O waiters, context watchers and children).  Elements
 * embed a struct dlink, zeroed while unlinked; dlist_entry gets back the
 * element.  The owner's lock guards each list. */
struct dlink {
	struct dlink *next, *prev;
};
struct dlist {
	struct dlink *first, *last;
};
#define dlist_entry(link, type, member) ((type *)((char *)(link) - offsetof(type, member)))

static inline void dlist_push_back(struct dlist *l, struct dlink *e)
{
	e->next = NULL;
	e->prev = l->last;
	if (l->last)
		l->last->next = e;
	else
		l->first = e;
	l->last = e;
}

static inline void dlist_push_front(struct dlist *l, struct dlink *e)
{
	e->prev = NULL;
	e->next = l->first;
	if (l->first)
		l->first->prev = e;
	else
		l->last = e;
	l->first = e;
}

static inline bool dlist_linked(const struct dlist *l, const struct dlink *e)
{
	return e->prev != NULL || l->first == e;
}

/* e must be on l. */
static inline void dlist_remove(struct dlist *l, struct dlink *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->first = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->last = e->prev;
	e->next = e->prev = NULL;
}

/* Wait queues of parked goroutines, shared by channels and sync (Go's
 * sudog and waitq).  A sudog usually lives on the waiting G's stack; the
 * object's own lock guards the queue.  A select puts one sudog per case on
 * several queues; the first waker to win the CAS on g->selectdone takes it. */
struct sudog {
	struct g *g;
	struct dlink link;	/* on a waitq */
	void *elem;		/* data to send, or where to receive */
	void *obj;		/* the channel (or sync object) waited on */
	int32_t case_index;	/* select: which case this sudog stands for */
	bool is_select;
	bool success;		/* set by the waker: true for a value, false for close */
	uint64_t ticket;	/* free for the owner's use */
};

struct waitq {
	struct dlist l;
};

static inline struct sudog *waitq_first(const struct waitq *q)
{
	return q->l.first ? dlist_entry(q->l.first, struct sudog, link) : NULL;
}

static inline struct sudog *waitq_next(const struct sudog *s)
{
	return s->link.next ? dlist_entry(s->link.next, struct sudog, link) : NULL;
}

static inline void waitq_enqueue(struct waitq *q, struct sudog *s)
{
	dlist_push_back(&q->l, &s->link);
}

/* Does nothing if s is not queued on q. */
static inline void waitq_remove(struct waitq *q, struct sudog *s)
{
	if (dlist_linked(&q->l, &s->link))
		dlist_remove(&q->l, &s->link);
}

/* The first waiter that can still be woken; select sudogs whose select has
 * already fired elsewhere are dropped. */
static inline struct sudog *waitq_dequeue(struct waitq *q)
{
	for (;;) {
		struct sudog *s = waitq_first(q);
		if (!s)
			return NULL;
		dlist_remove(&q->l, &s->link);
		if (s->is_select) {
			uint32_t zero = 0;
			if (!atomic_compare_exchange_strong(&s->g->selectdone, &zero, 1))
				continue;
		}
		return s;
	}
}

/* Run queues (runq.c) */
struct g *runqsteal(struct p *pp, struct p *victim, bool steal_runnext);
/* Process-wide fences for asymmetric protocols (lock.c has the why). */
extern bool process_fence_ok;	/* set once, before any P exists */
void process_fence_init(void);
void process_fence(void);	/* only when process_fence_ok */
void runq_p_init(struct p *pp);
void globrunqput(struct g *gp);			/* sched.lock held */
void globrunqputbatch(struct g *const *gs, uint32_t n); /* sched.lock held */
struct g *globrunqget(struct p *pp, int32_t max); /* sched.lock held */
void injectglist(struct g *list);		/* make a schedlink list runnable */
void gfree_trim(void);				/* sysmon: give idle free stacks' pages back */
bool sysmon_park(void);				/* sysmon: sleep while every P is idle */
bool restart_stranded(struct p *pp, int64_t now);	/* sysmon: retry an M for an idle P with work */

uint32_t fastrand(void);
int64_t nanotime(void);

/* Stacks (stack.c) */
/* 0 or -errno; a default-size stack is cut from own (NULL: from a global
 * slab, under a lock) */
int stack_alloc(struct stack *st, size_t size, struct stack_slab *own);
void stack_free(struct stack *st);
void stack_trim(struct stack *st);		/* give its pages back, keep the mapping */
void stack_trim_batch(struct stack **sts, int n); /* the same for many; sorts sts */
bool stack_canary_intact(const struct stack *st); /* false: it overflowed (canary mode) */
bool stack_fault_is_overflow(const struct stack *st, uintptr_t addr);
void stack_init(void);

/* Context switch (switch_<arch>.h and .S, sanitizer hooks in proc.c) */
void *gmprt_stack_init(uintptr_t top);		/* initial sp for a new G */

/* Timers (time.c).  A timer fires once.  fn runs on an M with a P, in
 * scheduler context, without the timer's lock: it must not block or park,
 * and it must not touch the timer after waking the goroutine that owns it
 * (that goroutine may return and pop the timer off its stack at once).
 * A timer may be added before its goroutine parks: goready waits for a G
 * that is still switching away. */
struct timer {
	int64_t when;
	void (*fn)(void *arg);
	void *arg;
	struct p *_Atomic p;	/* heap it was last added to */
	int32_t pos;		/* index in that heap + 1; 0 when not queued */
};
void timer_add(struct timer *t);
/* true: removed before firing.  false: it fired; when this returns, fn has
 * finished running, so the timer's memory may be reused. */
bool timer_del(struct timer *t);
int64_t checktimers(struct p *pp, int64_t now); /* runs due timers; returns next when, 0 none */
void timers_move(struct p *from, struct p *to);	/* world stopped */

/* Contexts (ctx.c): run a callback once when a context is cancelled.  fn
 * runs in the canceller's context (a goroutine, or a timer in scheduler
 * context), under the locks of the contexts from the cancelled one down to
 * this one: it must not park or take any context's lock. */
struct ctx_waiter {
	void (*fn)(struct ctx_waiter *w);
	void *arg;
	struct dlink link;	/* on the context's watchers */
};
bool ctx_watch(gmp_ctx *ctx, struct ctx_waiter *w);	/* false: already cancelled, fn not called */
void ctx_unwatch(gmp_ctx *ctx, struct ctx_waiter *w);	/* afterwards fn is not running and never will */

/* Netpoller (netpoll.c) */
void netpoll_init(void);
/* delay < 0 blocks, 0 polls; returns the ready Gs (schedlink list) for the
 * caller to inject.  Adopted threads are not in it: netpoll wakes them
 * itself (goready on an adopted G only flips its futex and needs no P). */
struct g *netpoll(int64_t delay_ns);
void netpoll_break(void);
bool netpoll_anywaiters(void);

/* Environment and CPUs (env.c) */
struct config {
	int32_t maxprocs;
	size_t stack_size;
	int32_t schedtrace_ms;
	bool scheddetail;
	enum { KASSIST_AUTO, KASSIST_BPF, KASSIST_OFF } kassist;
	enum { PIN_NODE, PIN_CPU, PIN_NONE } pin;
	bool preempt;		/* sysmon may preempt a G that runs > 10 ms */
	bool vma_guards;	/* guard pages as PROT_NONE VMAs even where markers work */
};
extern struct config config;
void config_init(void);
int32_t ncpu_usable(void);

/* Fatal errors (panic.c): print "gmprt: fatal error: ...", the goroutines and
 * what they wait on, and exit with status 2. */
__attribute__((noreturn, format(printf, 1, 2))) void fatal(const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void fatal_nodump(const char *fmt, ...);
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void signals_init(void);
void signals_minit(struct m *mp);	/* per-M alternate signal stack */
void signals_mexit(struct m *mp);	/* ... given back as the M's thread ends */

/* The name of the function at addr, from the dynamic symbols or the object
 * file's .symtab (symtab.c), into name; false if none is known. */
bool sym_name(const void *addr, char *name, size_t len);

/* All Gs, for dumps and stats: never shrinks. */
void allg_add(struct g *gp);
void allg_foreach(void (*fn)(struct g *, void *), void *arg);

/* Another thread's view of mp's kernel-assist slot (only mp writes it). */
static inline struct kassist_slot *m_kslot(struct m *mp)
{
	return __atomic_load_n(&mp->kslot, __ATOMIC_ACQUIRE);
}

/* The current M: tls_m, written by the thread it belongs to (mstart,
 * adoption, mexit) and read through getm() only.  A goroutine may resume
 * on another thread after a switch in the middle of a function, and a
 * compiler may keep a thread-local's address, computed before the switch,
 * past it (a TSan build did: it read the old thread's tls_m).  getm()'s
 * asm volatile reads the variable afresh, through the thread pointer of
 * the moment, and is never moved across the switch's asm. */
extern __thread struct m *tls_m __attribute__((tls_model("initial-exec")));
static inline struct m *getm(void)
{
	struct m *mp;
#if defined(__x86_64__)
	__asm__ volatile("movq tls_m@gottpoff(%%rip), %0\n\t"
			 "movq %%fs:(%0), %0"
			 : "=r"(mp));
#elif defined(__aarch64__)
	uintptr_t tp;
	__asm__ volatile("adrp	%0, :gottprel:tls_m\n\t"
			 "ldr	%0, [%0, #:gottprel_lo12:tls_m]\n\t"
			 "mrs	%1, tpidr_el0\n\t"
			 "ldr	%0, [%1, %0]"
			 : "=&r"(mp), "=r"(tp));
#else
#error "gmprt: getm() has no thread-pointer access for this architecture"
#endif
	return mp;
}

/* The current G, via the current M.  Inline: used on every fast path. */
struct g *adopt_thread(void);
static inline struct g *getg(void)
{
	struct m *mp = getm();
	if (unlikely(mp == NULL))
		return adopt_thread();
	return mp->curg ? mp->curg : &mp->g0;
}

#include "runq.h"	/* the local run queue's inline operations */
#include "kassist.h"	/* kassist_arm/disarm, inline */

/* Nested entries are a count.  Depth 0 -> 1 for an M with a slot (kernel
 * assist, or the userspace path's own), when the slot's seq has not moved
 * since we last looked, is disarming and one load: whoever could take our
 * P moves the seq first (the kernel, recording a block; a userspace
 * retaker).  rt_enter_outer has the whole story and every other case: an
 * M without a slot, a lost P, adopted Ms. */
static inline bool rt_enter_can_slot(const struct m *mp)
{
	return mp->rtdepth == 0 && mp->slot && mp->p;
}

/* Depth 0 -> 1 on an M with a slot: disarm, then look at the slot's seq,
 * which it returns (the only copy of this order; rt_enter_seq_moved takes
 * it from there when the seq is not kseq). */
static inline uint64_t rt_slot_disarm(struct m *mp)
{
	struct kassist_slot *ks = mp->slot;
	mp->rtdepth = 1;
	kassist_disarm(ks);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&ks->seq, __ATOMIC_RELAXED);
}

/* rt_enter_m from depth 0 on an M with a slot and a P (rt_enter_can_slot,
 * which adopted Ms never pass: they have neither). */
static inline struct m *rt_enter_slot(struct m *mp)
{
	uint64_t seq = rt_slot_disarm(mp);
	if (likely(seq == mp->kseq))
		return mp;
	return rt_enter_seq_moved(mp, seq);
}

static inline struct m *rt_enter_m(struct m *mp)
{
	if (mp->rtdepth > 0) {
		mp->rtdepth++;
		return mp;
	}
	if (likely(rt_enter_can_slot(mp)))
		return rt_enter_slot(mp);
	return rt_enter_outer(mp);
}

static inline struct m *rt_enter(void)
{
	return rt_enter_m(getm());
}

/* Back to goroutine code at depth 0: the P may be retaken if we block from
 * now on.  Arming (with a slot) or P_USER (without, the CAS protocol)
 * first, the depth last: a preemption signal that lands in between sees
 * runtime code and leaves it alone.  An M with a slot finds its P's status
 * at P_USER already (p_owned_status).  Adopted Ms stay at depth 0 and own
 * no P.  rt_exit_armed takes the arming a switch passed along (proc.c's
 * switch_to_arming), which spares it the look at the queue; rt_exit_last
 * has none (0). */
static inline void rt_exit_armed(struct m *mp, uint32_t arm)
{
	struct kassist_slot *ks = mp->slot;
	if (!ks)
		atomic_store_explicit(&mp->p->status, (uintptr_t)mp | P_USER, memory_order_release);
	else if (arm)
		kassist_arm_as(ks, arm);
	else	/* ask to be woken for a block only when a hand-off would pay */
		kassist_arm_for(ks, !runqempty_own(mp->p));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	mp->rtdepth = 0;
}

static inline void rt_exit_last(struct m *mp)
{
	rt_exit_armed(mp, 0);
}

static inline void rt_exit_m(struct m *mp)
{
	if (mp->rtdepth > 1) {
		mp->rtdepth--;
		return;
	}
	if (mp->adopted)
		return;
	rt_exit_last(mp);
}

static inline void rt_exit(void)
{
	rt_exit_m(getm());
}

/* rt_enter/rt_exit for code that may also run on a thread without an M
 * (sysmon, a foreign thread not adopted yet), which has no P to hold. */
static inline void rt_hold(void)
{
	struct m *mp = getm();
	if (mp)
		rt_enter_m(mp);
}

static inline void rt_release(void)
{
	struct m *mp = getm();
	if (mp)
		rt_exit_m(mp);
}

/* A runtime lock, for code that holds a runtime level of its own that the
 * lock may share (chan.c: one level for the whole operation): one CAS when
 * the lock is free. */
static inline bool rt_lock_try_key(struct rt_lock *l)
{
	uint32_t zero = 0;
	return atomic_compare_exchange_strong_explicit(&l->key, &zero, 1, memory_order_acquire,
						       memory_order_relaxed);
}

static inline void rt_lock_in(struct rt_lock *l)
{
	if (likely(rt_lock_try_key(l)))
		return;
	rt_lock_slow(l);
}

/* A release store and a look at the sleeper count (lock.c says why that
 * needs no fence); the level stays. */
static inline void rt_unlock_in(struct rt_lock *l)
{
	atomic_store_explicit(&l->key, 0, memory_order_release);
	if (unlikely(atomic_load_explicit(rt_lock_sleepers_of(l), memory_order_relaxed) != 0))
		rt_lock_wake(l);
}

/* Taking a runtime lock enters the runtime; leaving it leaves. */
static inline void rt_lock(struct rt_lock *l)
{
	rt_hold();
	rt_lock_in(l);
}

static inline void rt_unlock(struct rt_lock *l)
{
	rt_unlock_in(l);
	rt_release();
}

#endif /* GMPRT_RUNTIME_H */
