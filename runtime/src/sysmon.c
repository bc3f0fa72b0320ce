/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * sysmon.c - the system monitor: one thread, no P, started with the first
 * goroutine (Go's sysmon).
 *
 * Each round it looks at every P and remembers its schedtick and when that
 * last moved.  A P whose tick stands still is:
 *   - retaken, if its M is in goroutine code and asleep in the kernel: at
 *     once when work waits on the P, after 1 ms (BPF) or 10 ms (userspace)
 *     otherwise.  The kernel-assist slot says so on the BPF path; on the
 *     userspace path the M's /proc/self/task/TID/stat state does, checked
 *     only for a P whose tick has not moved for SLOW_CHECK_NS;
 *   - preempted (SIGURG to its M), if one goroutine has run on it in
 *     goroutine code for 10 ms;
 *   - woken for, if work sits on it while Ps are idle and nobody spins
 *     (goready does not wake a P for a lone runnext G; see proc.c), and it
 *     has switched to no G since the last round (the switch count in
 *     p->ticks: goroutines trading the P through runnext keep the tick
 *     still, not the P);
 *   - given another try at a thread (restart_stranded), if it is idle with
 *     work because a spare M could not be started.
 * It also polls the network if nobody has for 10 ms, gives the pages of
 * idle free stacks back every second (gfree_trim), and prints the
 * schedtrace line that GMP_DEBUG=schedtrace=MS asks for.
 *
 * Sleeping: 20 us at first, doubling after 50 quiet rounds (no work moved
 * on: check_p says what counts) up to 10 ms; once
 * at 10 ms with every P idle, it sleeps until a P gets busy (pidleget wakes
 * it), so an idle process costs no CPU.  With kernel assist live the sleep is
 * a wait on the BPF ring buffer: an armed M that blocks wakes sysmon at once,
 * unless the watcher M (proc.c) waits on that ring, in which case sysmon
 * keeps to its timer and gives the watcher WATCHER_GRACE_NS to take the P.
 */
#include "runtime.h"
#include "kassist.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	SYSMON_MIN_NS = 20 * 1000,
	SYSMON_MAX_NS = 10 * 1000 * 1000,
	FORCE_POLL_NS = 10 * 1000 * 1000,
	PREEMPT_NS = 10 * 1000 * 1000,
	IDLE_RETAKE_BPF_NS = 1000 * 1000,
	WATCHER_GRACE_NS = 200 * 1000,	/* the watcher's head start; it needs ~10-100 us */
	IDLE_RETAKE_USER_NS = 10 * 1000 * 1000,
	SLOW_CHECK_NS = 20 * 1000,
	TRIM_INTERVAL_NS = 1000 * 1000 * 1000,
};

struct psnap {
	uint32_t tick;		/* schedtick last seen */
	int64_t since;		/* when it last changed */
	uint32_t nswitch;	/* nswitch last seen */
	bool seen;		/* sysmon has looked at this P before */
};
static struct psnap snaps[MAXPROCS_LIMIT];

bool thread_sleeping(int32_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	char *paren = strrchr(buf, ')'); /* the command name may hold anything */
	return paren && paren[1] == ' ' && (paren[2] == 'S' || paren[2] == 'D');
}

static bool has_work(struct p *pp)
{
	return !runqempty(pp) || atomic_load(&sched.runqsize) > 0;
}

/* Userspace path: has the owner of st (a P_USER status, no kernel-assist
 * slot) stood still long enough, and does /proc say it sleeps? */
static bool blocked_long_enough(uintptr_t st, const struct psnap *ps, int64_t now, bool work)
{
	struct m *mp = P_OWNER(st);
	int64_t still = now - ps->since;
	if (still < (work ? SLOW_CHECK_NS : IDLE_RETAKE_USER_NS))
		return false;
	return thread_sleeping(mp->tid);
}

/* A round saw a blocked P with work that it left to the watcher: the next
 * round comes after the watcher's head start, not after the full delay, in
 * case the watcher missed it. */
static bool recheck_soon;

static bool watcher_waiting(void)
{
	return atomic_load_explicit(&sched.kwatcher, memory_order_relaxed) != NULL;
}

/* One look at pp; true if it moved work on (a retake, a wake-up, a thread
 * restarted), after which sysmon looks again at once and then at its
 * fastest.  A preemption request does not count, as in Go: goroutines that
 * share one slice through runnext (a ping-pong) are asked every 10 ms, and
 * counting that kept sysmon at 20 us rounds, a fifth of a CPU. */
static bool check_p(struct p *pp, struct psnap *ps, int64_t now)
{
	uint64_t ticks = __atomic_load_n(&pp->ticks, __ATOMIC_RELAXED);
	uint32_t tick = P_TICK_SCHED(ticks);
	/* Goroutines that hand the P to each other through runnext share one
	 * time slice, so the tick stands still for them (preemption counts
	 * it), but they are not stuck: a P is woken for their queued work
	 * only once the switch count stands still too. */
	uint32_t nswitch = P_TICK_SWITCH(ticks);
	if (!ps->seen) {
		/* The first look: whatever runs there started its slice no
		 * later than now.  (main() runs from the start of the process
		 * with the tick at 0, which a zeroed snapshot took for a slice
		 * begun at time 0: preempted at the first look, it let the
		 * goroutine it had just started print first.) */
		*ps = (struct psnap){ tick, now, nswitch, true };
		return false;
	}
	bool switching = nswitch != ps->nswitch;
	ps->nswitch = nswitch;
	uintptr_t st = atomic_load(&pp->status);
	struct m *owner = P_OWNER(st);
	bool user = owner && (st & P_USER);
	if (!owner) {
		ps->tick = tick;
		ps->since = now;
		return restart_stranded(pp, now);
	}
	bool work = has_work(pp);
	/* The kernel's word needs no standing still: act on it at once. */
	struct kassist_slot *slot = user ? m_kslot(owner) : NULL;
	/* With work queued, at once, unless the watcher M of proc.c is there
	 * to take the P itself (one wake-up instead of ours and then a spare
	 * M's); without work, after a while. */
	int64_t grace = !work ? IDLE_RETAKE_BPF_NS : watcher_waiting() ? WATCHER_GRACE_NS : 0;
	if (slot && owner_blocked(st, now - grace))
		return retake(pp, st);
	if (slot && work && owner_blocked(st, now))
		recheck_soon = true; /* the watcher's head start runs out soon */
	if (tick != ps->tick) {
		ps->tick = tick;
		ps->since = now;
		return false;
	}
	if (user && !slot && blocked_long_enough(st, ps, now, work))
		return retake(pp, st);
	if (user && config.preempt && now - ps->since >= PREEMPT_NS) {
		ps->since = now; /* once per slice */
		if (slot ? owner_blocked(st, now) : thread_sleeping(owner->tid))
			return false; /* asleep, not running: a signal would only interrupt it */
		preempt_request(owner);
		return false;
	}
	if (work && !switching && atomic_load(&sched.npidle) > 0 &&
	    atomic_load(&sched.nmspinning) == 0) {
		wakep();
		return true;
	}
	return false;
}

/* Polls the network if no M has blocked in netpoll for FORCE_POLL_NS.  What
 * it finds does not count as moving work on, as in Go: Ms that are busy
 * never block in netpoll, so under load this poll finds goroutines every
 * 10 ms, and counting that kept sysmon at its fastest, 20 us rounds (an
 * httpd under wrk spent a seventh of its CPU in sysmon's sleeps). */
static void poll_if_stale(int64_t now)
{
	int64_t last = atomic_load(&sched.lastpoll);
	if (last == 0 || now - last < FORCE_POLL_NS || !netpoll_anywaiters())
		return;
	int64_t expect = last;
	if (!atomic_compare_exchange_strong(&sched.lastpoll, &expect, now))
		return;
	injectglist(netpoll(0));
}

static uint64_t sum_counter(size_t offset)
{
	uint64_t sum = 0;
	int32_t n = atomic_load(&sched.gomaxprocs);
	for (int32_t i = 0; i < n; i++)
		sum += atomic_load((_Atomic uint64_t *)((char *)allp[i] + offset));
	return sum;
}

static void schedtrace(int64_t now)
{
	static int64_t start, next;
	if (!config.schedtrace_ms)
		return;
	if (!start)
		start = next = now;
	if (now < next)
		return;
	next = now + (int64_t)config.schedtrace_ms * 1000000;
	char buf[4096];
	int32_t n = atomic_load(&sched.gomaxprocs);
	rt_lock(&sched.lock);
	int32_t mcount = sched.mcount, nmidle = sched.nmidle;
	rt_unlock(&sched.lock);
	int len = snprintf(buf, sizeof(buf),
			   "SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%d spinningthreads=%d "
			   "idlethreads=%d runqueue=%lld kassist=%s handoffs=%llu kwakeups=%llu "
			   "kmissed=%llu preemptions=%llu mfail=%llu [",
			   (long long)((now - start) / 1000000), n, atomic_load(&sched.npidle),
			   mcount, atomic_load(&sched.nmspinning), nmidle,
			   (long long)atomic_load(&sched.runqsize), kassist_mode_name(),
			   (unsigned long long)sum_counter(offsetof(struct p, nhandoff)),
			   (unsigned long long)kassist_events_posted(),
			   (unsigned long long)atomic_load(&sched.nkmissed),
			   (unsigned long long)sum_counter(offsetof(struct p, npreempt)),
			   (unsigned long long)atomic_load(&sched.nmfail));
	for (int32_t i = 0; i < n && len < (int)sizeof(buf) - 16; i++) {
		struct p *pp = allp[i];
		uint32_t q = atomic_load(&pp->runqtail) - atomic_load(&pp->runqhead);
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "%s%u", i ? " " : "", q);
	}
	snprintf(buf + len, sizeof(buf) - (size_t)len, "]\n");
	fputs(buf, stderr);
}

static void trim_if_due(int64_t now)
{
	static int64_t next;
	if (now < next)
		return;
	next = now + TRIM_INTERVAL_NS;
	gfree_trim();
}

static bool round_once(void)
{
	int64_t now = nanotime();
	recheck_soon = false;
	trim_if_due(now);
	poll_if_stale(now);
	bool acted = false;
	int32_t n = atomic_load(&sched.gomaxprocs);
	for (int32_t i = 0; i < n; i++)
		acted |= check_p(allp[i], &snaps[i], now);
	schedtrace(now);
	return acted;
}

static void sysmon_sleep(int64_t ns)
{
	struct timespec ts = { 0, ns };
	nanosleep(&ts, NULL);
}

static int64_t sleep_for(int64_t delay)
{
	return recheck_soon && delay > WATCHER_GRACE_NS ? WATCHER_GRACE_NS : delay;
}

void sysmon_main(void)
{
	int64_t delay = SYSMON_MIN_NS;
	int idle_rounds = 0;
	for (;;) {
		bool acted;
		if (__atomic_load_n(&kassist_live, __ATOMIC_ACQUIRE) && !watcher_waiting()) {
			/* Between begin and end every armed block posts an
			 * event, so none slips past this round's look.  While
			 * the watcher waits for those events, sysmon leaves
			 * them to it and sleeps on its own timer: a woken
			 * sysmon would only race the watcher for the P. */
			kassist_wait_begin();
			acted = round_once();
			if (!acted && kassist_wait(sleep_for(delay), NULL, 0) > 0)
				quiet_stale_wakes();
			kassist_wait_end();
		} else {
			acted = round_once();
			if (!acted)
				sysmon_sleep(sleep_for(delay));
		}
		if (acted) {
			idle_rounds = 0;
			delay = SYSMON_MIN_NS;
		} else if (++idle_rounds > 50 && delay < SYSMON_MAX_NS) {
			delay = delay * 2 > SYSMON_MAX_NS ? SYSMON_MAX_NS : delay * 2;
		} else if (delay == SYSMON_MAX_NS && !config.schedtrace_ms && sysmon_park()) {
			/* Every P was idle: nothing to watch until one is not (an
			 * idle process costs no CPU).  Start over, fast. */
			idle_rounds = 0;
			delay = SYSMON_MIN_NS;
		}
	}
}
