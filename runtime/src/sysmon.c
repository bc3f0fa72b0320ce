/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * sysmon.c - the system monitor: one thread, no P, started with the first
 * goroutine.
 *
 * Like Go's sysmon it sleeps 20 us at first and doubles its sleep up to
 * 10 ms while nothing needs it, so an idle process costs next to nothing.
 * Each round it
 *   - polls the network if nobody has for 10 ms (an M that is busy never
 *     blocks in netpoll);
 *   - wakes an idle P for a P whose queue holds work that has not moved for
 *     a whole round (goready defers that wake-up, see proc.c);
 *   - prints the schedtrace line when GMP_DEBUG=schedtrace=MS asks.
 */
#include "runtime.h"

#include <stdio.h>
#include <time.h>

enum {
	SYSMON_MIN_NS = 20 * 1000,
	SYSMON_MAX_NS = 10 * 1000 * 1000,
	FORCE_POLL_NS = 10 * 1000 * 1000,
};

static uint32_t last_tick[MAXPROCS_LIMIT];

/* A running P with queued work and the same schedtick as last round. */
static bool wake_for_stuck_work(void)
{
	if (atomic_load(&sched.npidle) == 0 || atomic_load(&sched.nmspinning) != 0)
		return false;
	int32_t n = atomic_load(&sched.gomaxprocs);
	bool woke = false;
	for (int32_t i = 0; i < n; i++) {
		struct p *pp = allp[i];
		uint32_t tick = __atomic_load_n(&pp->schedtick, __ATOMIC_RELAXED);
		bool stuck = tick == last_tick[i] && atomic_load(&pp->status) == P_RUNNING &&
			     !runqempty(pp);
		last_tick[i] = tick;
		if (stuck && !woke) {
			wakep();
			woke = true;
		}
	}
	return woke;
}

static bool poll_if_stale(int64_t now)
{
	int64_t last = atomic_load(&sched.lastpoll);
	if (last == 0 || now - last < FORCE_POLL_NS || !netpoll_anywaiters())
		return false;
	int64_t expect = last;
	if (!atomic_compare_exchange_strong(&sched.lastpoll, &expect, now))
		return false;
	struct g *list = netpoll(0);
	injectglist(list);
	return list != NULL;
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
	int len = snprintf(buf, sizeof(buf),
			   "SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%d spinningthreads=%d "
			   "idlethreads=%d runqueue=%lld [",
			   (long long)((now - start) / 1000000), n, atomic_load(&sched.npidle),
			   sched.mcount, atomic_load(&sched.nmspinning), sched.nmidle,
			   (long long)atomic_load(&sched.runqsize));
	for (int32_t i = 0; i < n && len < (int)sizeof(buf) - 16; i++) {
		struct p *pp = allp[i];
		uint32_t q = atomic_load(&pp->runqtail) - atomic_load(&pp->runqhead);
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "%s%u", i ? " " : "", q);
	}
	snprintf(buf + len, sizeof(buf) - (size_t)len, "]\n");
	fputs(buf, stderr);
}

void sysmon_main(void)
{
	int64_t delay = SYSMON_MIN_NS;
	int idle_rounds = 0;
	for (;;) {
		struct timespec ts = { 0, delay };
		nanosleep(&ts, NULL);
		int64_t now = nanotime();
		bool acted = poll_if_stale(now);
		acted |= wake_for_stuck_work();
		schedtrace(now);
		if (acted) {
			idle_rounds = 0;
			delay = SYSMON_MIN_NS;
		} else if (++idle_rounds > 50 && delay < SYSMON_MAX_NS) {
			delay *= 2;
			if (delay > SYSMON_MAX_NS)
				delay = SYSMON_MAX_NS;
		}
	}
}
