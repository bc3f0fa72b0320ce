/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * kassist.h - the scheduler's interface to kernel assist: the loader of
 * bpf/sched_switch.bpf.c and the per-M slots it writes (layout in
 * bpf/kassist.h, the contract with the kernel side).
 *
 * Life cycle:
 *   kassist_init(config.kassist)     once, at runtime start, before any M
 *                                    registers.  On failure: one warning line,
 *                                    -errno, and every call below degrades to
 *                                    a no-op (register returns NULL).
 *   kassist_register(gettid())       by each M on itself as it starts; NULL
 *                                    means "use the userspace path for this M"
 *                                    (kernel assist off, or the table is full).
 *   kassist_arm / kassist_disarm     by the M on its own slot: armed while it
 *                                    runs goroutine code with a P; disarmed
 *                                    before the runtime's own futex/epoll
 *                                    waits, so those are never reported.
 *   kassist_slot_off_since           by sysmon or a spinning M on any slot:
 *                                    has this M been off CPU since when?
 *   kassist_wait_begin / kassist_wait / kassist_wait_end
 *                                    by a thread that sleeps until an armed M
 *                                    blocks (sysmon, a spare M).
 *   kassist_unregister(slot)         by the M on itself as it exits; by
 *                                    another thread only for a dead M.
 *
 * Invariants:
 *   - A slot pointer stays valid (readable and writable memory) for the life
 *     of the process, even after kassist_fini() or in a fork child: the
 *     shared mapping is then replaced by private memory nobody watches.
 *   - The M that owns a slot writes its armed word; two others may change
 *     it: the BPF program clears it when the thread dies, and a thread that
 *     finds the M's "wake" arming stale turns it into "quiet" by CAS
 *     (kassist_quiet).  Arming needs no fence: the BPF program that reads
 *     it runs in the M's own context at switch-out.
 *   - The BPF program writes seq, except that an M that finds its own seq odd
 *     while it runs makes it even (kassist_slot_on): an odd seq must mean
 *     "off CPU now", or a retaker would take a running M's P.
 *   - The slot says what the kernel saw; whether the M still owns a P is the
 *     scheduler's to check (CAS on the P), never the slot's.
 */
#ifndef GMPRT_KASSIST_H
#define GMPRT_KASSIST_H

#include <stdbool.h>
#include <stdint.h>

#include "../../bpf/kassist.h"

/* Load and attach the sched_switch program for this process.  mode is
 * config.kassist (KASSIST_AUTO, KASSIST_BPF or KASSIST_OFF); BPF and AUTO
 * behave alike, OFF loads nothing.  Returns 0 when the BPF path is live;
 * otherwise prints "gmprt: warning: kernel assist unavailable (<reason>);
 * using the userspace path" once, through warn(), and returns -errno
 * (-ENOTSUP for OFF, -EPERM without CAP_BPF/CAP_PERFMON, -ESRCH when the
 * program cannot see this process, as in a PID namespace, ...).  Before it
 * says yes it checks end to end: the calling thread registers, arms and
 * sleeps 50 us, and that sleep must show in its slot.  Takes ~15 ms here
 * (libbpf parses the kernel's BTF, the verifier runs).  Calling it again
 * returns the first result without printing.  Not thread-safe: call it
 * before the runtime starts other threads. */
int kassist_init(int mode);

/* That warning, with the reason for %s (kassist.c and kassist_none.c). */
#define KASSIST_UNAVAILABLE_FMT "kernel assist unavailable (%s); using the userspace path"

/* For tests and benchmarks, before kassist_init: load this twin only
 * (KASSIST_TWIN_PROBE: the best the kernel has, falling back to raw_tp),
 * and read prev_state from the task even where sched_switch passes it. */
enum kassist_twin { KASSIST_TWIN_PROBE, KASSIST_TWIN_TP_BTF, KASSIST_TWIN_RAW_TP };
void kassist_force(enum kassist_twin twin, bool state_from_task);

/* Detach and unload; registered slots turn into unwatched private memory.
 * For tests and orderly shutdown; process exit unloads without it. */
void kassist_fini(void);

/* True while the BPF path is live in this process. */
extern bool kassist_live;

/* "bpf" or "userspace": which path is live, for GMP_DEBUG and gmpstat. */
const char *kassist_mode_name(void);

/* Which twin is attached ("tp_btf/sched_switch", "raw_tp/sched_switch"), or
 * why the userspace path is live (the reason the warning gave). */
const char *kassist_detail(void);

/* Ring-buffer events (wake-ups) the BPF program has posted for this
 * process's Ms since start; 0 on the userspace path.  Reads every slot:
 * for GMP_DEBUG=schedtrace, not for a fast path. */
uint64_t kassist_events_posted(void);

/* Take a slot for thread tid of this process (normally the caller's own
 * gettid()).  The slot starts disarmed.  NULL when kernel assist is not live
 * or all KASSIST_NSLOTS slots are taken: that M uses the userspace path. */
struct kassist_slot *kassist_register(int tid);

/* The slot at index (a kassist_event's slot field), or NULL when not live
 * or out of range; kassist_slot_index is the inverse. */
struct kassist_slot *kassist_slot_at(uint32_t index);
int kassist_slot_index(const struct kassist_slot *slot);

/* Give the slot back.  NULL is a no-op.  Call it from the slot's own thread,
 * disarmed; from another thread only once that thread is dead.  From
 * another thread, when the slot was armed or off CPU and the BPF program
 * has not flagged the thread EXITED, it first waits for an RCU grace period
 * (membarrier, milliseconds) so that no BPF run still writes the slot. */
void kassist_unregister(struct kassist_slot *slot);

/* Per-M arm/disarm: plain stores on the M's own slot; NULL is a no-op.
 * Armed; with wake, a block also posts an event (KASSIST_ARMED_WAKE, see
 * bpf/kassist.h), else it posts none (KASSIST_ARMED). */
static inline void kassist_arm_as(struct kassist_slot *slot, uint32_t armed)
{
	if (slot)
		__atomic_store_n(&slot->armed, armed, __ATOMIC_RELEASE);
}

static inline void kassist_arm_for(struct kassist_slot *slot, bool wake)
{
	kassist_arm_as(slot, wake ? KASSIST_ARMED_WAKE : KASSIST_ARMED);
}

static inline void kassist_arm(struct kassist_slot *slot)
{
	kassist_arm_for(slot, true);
}

static inline void kassist_disarm(struct kassist_slot *slot)
{
	if (slot)
		__atomic_store_n(&slot->armed, 0, __ATOMIC_RELEASE);
}

/* If slot's thread is off CPU after a voluntary switch taken while armed,
 * the bpf_ktime_get_ns() (CLOCK_MONOTONIC, as gmp_now()) it went off at;
 * else 0.  *seq (if not NULL) gets the slot's seq for that block: the same
 * odd seq later means the same, still unbroken, block. */
static inline uint64_t kassist_slot_off_since(const struct kassist_slot *slot, uint64_t *seq)
{
	uint64_t s1, s2, off;

	if (!slot)
		return 0;
	s1 = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
	if (!(s1 & 1))
		return 0;
	off = __atomic_load_n(&slot->off_ns, __ATOMIC_ACQUIRE);
	s2 = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
	if (s1 != s2 || off == 0)
		return 0;
	if (seq)
		*seq = s1;
	return off;
}

/* The slot's own thread, running, finds seq odd: the slot still says "off
 * CPU" for a switch back in that the program did not record (seen under
 * heavy thread churn: an M ran with the same odd seq for 19 ms).  Running
 * is the truth, and a retaker that took that stale block for a current one
 * would take the P of an M that is using it; so the M makes seq even itself
 * (off_ns cleared first).  A late switch-in record then finds seq even and
 * leaves it.  Returns the seq now. */
static inline uint64_t kassist_slot_on(struct kassist_slot *slot, uint64_t seq)
{
	__atomic_store_n(&slot->off_ns, 0, __ATOMIC_RELAXED);
	for (;;) {
		if (!(seq & 1))
			return seq;
		if (__atomic_compare_exchange_n(&slot->seq, &seq, seq + 1, false, __ATOMIC_SEQ_CST,
						__ATOMIC_RELAXED))
			return seq + 1;
	}
}

/* Arming "wake" goes stale when nobody needs waking for the M's blocks
 * any more, and the M, in goroutine code, cannot notice: its P was taken
 * while it blocked (proc.c claim: it goes on with no P until its next
 * runtime entry), or thieves emptied its P's queue after it armed.  Each
 * later block would post an event: a self-IPI on the M's CPU, and a watcher
 * woken for nothing.  kassist_quiet turns KASSIST_ARMED_WAKE into
 * KASSIST_ARMED by CAS (true if it did); the caller then checks that the
 * arming it hit was indeed stale, and if it cannot tell, undoes it with
 * kassist_unquiet, which turns only a quiet arming back: a race with the
 * M's own arming costs at most one needless wake-up, never a missed one.
 * The M's next runtime exit arms afresh either way. */
static inline bool kassist_quiet(struct kassist_slot *slot)
{
	uint32_t wake = KASSIST_ARMED_WAKE;
	return __atomic_compare_exchange_n(&slot->armed, &wake, KASSIST_ARMED, false,
					   __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

static inline void kassist_unquiet(struct kassist_slot *slot)
{
	uint32_t quiet = KASSIST_ARMED;
	__atomic_compare_exchange_n(&slot->armed, &quiet, KASSIST_ARMED_WAKE, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

/* kassist_quiet for an M whose P is being taken, found blocked in the block
 * whose seq is seq: the arming is stale if the M is still in that block
 * (then it has not armed since).  Returns whether it is. */
static inline bool kassist_quiet_block(struct kassist_slot *slot, uint64_t seq)
{
	bool quietened = kassist_quiet(slot);
	uint64_t now = 0;
	if (kassist_slot_off_since(slot, &now) && now == seq)
		return true;
	if (quietened)
		kassist_unquiet(slot);
	return false;
}

/* Waiting for an armed M to block.  Protocol, so no block is missed:
 *     kassist_wait_begin();
 *     scan the slots that matter (kassist_slot_off_since); act on what is off;
 *     if nothing was: n = kassist_wait(timeout, evs, max);
 *     kassist_wait_end();
 * Between begin and end the BPF program posts an event for every armed
 * off-CPU switch (under KASSIST_WAKE_WAITERS, the default policy). */
void kassist_wait_begin(void);
void kassist_wait_end(void);

/* Sleep until an event, timeout_ns (< 0: no limit, 0: just poll) or a
 * signal.  Returns the number of events taken (up to max are copied to evs,
 * which may be NULL), 0 when woken but another waiter took the events,
 * -ETIMEDOUT, -EINTR, or -ENODEV when kernel assist is not live.  Sleeps in
 * ppoll(): the caller's timer slack (prctl PR_SET_TIMERSLACK) bounds how
 * precisely a short timeout is kept. */
int kassist_wait(int64_t timeout_ns, struct kassist_event *evs, int max);

/* Change when events are posted (enum kassist_wake_policy); for benchmarks
 * and a sysmon that polls instead of sleeping.  No-op when not live. */
void kassist_set_wake_policy(enum kassist_wake_policy policy);

#endif /* GMPRT_KASSIST_H */
