/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * lock.c - the runtime's own futex-based mutex and notes.
 *
 * rt_lock: key is 0 unlocked, 1 locked; taking it is one CAS.  The fast
 * paths of rt_lock and rt_unlock are inline in runtime.h; this file has the
 * spinning and sleeping.  A locker
 * spins a little (the holder is usually on another CPU and about to let go),
 * then counts itself in its lock's sleeper bucket and sleeps on the futex.
 * The buckets live outside the locks, which stay one word (they are embedded
 * in the public gmp_mutex and friends); a bucket shared by two locks costs at
 * most a needless futex_wake.  These locks guard short critical sections in
 * the runtime (the scheduler, a channel, a timer heap); goroutines never hold
 * one while parked, except the one gopark releases for them.
 *
 * Unlocking is a plain release store of 0 and a look at the bucket, with no
 * read-modify-write: a channel operation is two lock round trips, and on x86
 * a locked instruction costs as much as the rest of the unlock path.  Without
 * a fence the look may be ordered before the store, so a locker that went to
 * sleep in that window may not be woken by this unlock: every sleep is
 * therefore bounded by LOCK_SLEEP_NS, after which the locker looks again.
 * The window is the few nanoseconds a store spends in the store buffer,
 * against the microsecond a locker spends getting into futex_wait (which
 * rereads key itself), so the bound is a backstop that costs nothing in
 * practice.
 *
 * Holding a runtime lock is being in the runtime: rt_lock enters it
 * (rt_enter) before it takes the lock and rt_unlock leaves it after, so that
 * a goroutine in a channel operation can neither lose its P to sysmon nor
 * have a sleep on a contended lock reported as blocking (kernel assist).
 * Threads without an M (sysmon) and adopted threads skip that part.
 *
 * note: a one-shot event for an M to sleep on (Go's note): 0 clear, 1 woken.
 *
 * process_fence: the rare side of an asymmetric Dekker.  The frequent side
 * stores its flag and loads the other side's with no fence (a compiler
 * barrier between); the rare side stores, calls process_fence, and loads.
 * membarrier makes every CPU that runs one of our threads pass a full fence
 * (a thread not running passed one as it was switched out), so either the
 * frequent side's store is visible to the rare side's load, or the frequent
 * side's load comes after the fence and sees the rare side's store.  Used
 * by runnext (runq.c) and by the userspace path's P claim (proc.c); both
 * fall back to locked instructions when process_fence_ok is false.
 */
#include "runtime.h"

#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
	return r < 0 ? -errno : 0;
}

int futex_wake(_Atomic uint32_t *addr, int n)
{
	return (int)syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

bool process_fence_ok;

void process_fence_init(void)
{
	process_fence_ok =
		syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void process_fence(void)
{
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
		fatal("membarrier: %s", strerror(errno));
}

enum { LOCK_SLEEP_NS = 1000000 };	/* the backstop above */

_Atomic uint32_t rt_lock_sleepers[RT_LOCK_BUCKETS];

void rt_lock_slow(struct rt_lock *l)
{
	for (int spin = 0; spin < 100; spin++) {
		if (atomic_load_explicit(&l->key, memory_order_relaxed) == 0 && rt_lock_try_key(l))
			return;
		cpu_relax();
	}
	_Atomic uint32_t *sleepers = rt_lock_sleepers_of(l);
	atomic_fetch_add_explicit(sleepers, 1, memory_order_seq_cst);
	while (!rt_lock_try_key(l))
		futex_wait(&l->key, 1, LOCK_SLEEP_NS);
	atomic_fetch_sub_explicit(sleepers, 1, memory_order_relaxed);
}

void rt_lock_wake(struct rt_lock *l)
{
	futex_wake(&l->key, 1);
}

void note_clear(struct note *n)
{
	atomic_store_explicit(&n->key, 0, memory_order_relaxed);
}

void note_wakeup(struct note *n)
{
	if (atomic_exchange_explicit(&n->key, 1, memory_order_release) != 0)
		fatal_nodump("note_wakeup: double wakeup");
	futex_wake(&n->key, 1);
}

void note_sleep(struct note *n)
{
	while (atomic_load_explicit(&n->key, memory_order_acquire) == 0)
		futex_wait(&n->key, 0, -1);
}

bool note_sleep_until(struct note *n, int64_t deadline)
{
	while (atomic_load_explicit(&n->key, memory_order_acquire) == 0) {
		int64_t left = deadline - nanotime();
		if (left <= 0)
			return false;
		futex_wait(&n->key, 0, left);
	}
	return true;
}
