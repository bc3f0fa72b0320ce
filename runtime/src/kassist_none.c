/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * kassist_none.c - the kernel-assist interface (kassist.h) for a build
 * without BPF support (make KASSIST=none: a target with no libbpf, such as
 * the AArch64 cross build).  It is kassist.c's userspace outcome, decided
 * at build time: kassist_init prints the one warning line kassist.c prints
 * when it cannot go live, no M gets a kernel-assist slot, and the scheduler
 * runs the userspace path (each M's own slot, a sysmon that retakes Ps).
 *
 * Invariant: kassist_live is false for the life of the process.
 */
#include "runtime.h"

#include <errno.h>

#include "kassist.h"

bool kassist_live;

static const char *reason = "not initialized";

int kassist_init(int mode)
{
	static bool initialized;
	if (initialized)
		return -ENOTSUP;
	initialized = true;
	reason = mode == KASSIST_OFF ? "disabled by GMP_DEBUG=kassist=off"
				     : "this build has no BPF support (KASSIST=none)";
	warn(KASSIST_UNAVAILABLE_FMT, reason);
	return -ENOTSUP;
}

void kassist_force(enum kassist_twin twin, bool state_from_task)
{
	(void)twin;
	(void)state_from_task;
}

void kassist_fini(void)
{
	reason = "unloaded";
}

const char *kassist_mode_name(void)
{
	return "userspace";
}

const char *kassist_detail(void)
{
	return reason;
}

uint64_t kassist_events_posted(void)
{
	return 0;
}

struct kassist_slot *kassist_register(int tid)
{
	(void)tid;
	return NULL;
}

struct kassist_slot *kassist_slot_at(uint32_t index)
{
	(void)index;
	return NULL;
}

int kassist_slot_index(const struct kassist_slot *slot)
{
	(void)slot;
	return -1;
}

void kassist_unregister(struct kassist_slot *slot)
{
	(void)slot;
}

void kassist_wait_begin(void)
{
}

void kassist_wait_end(void)
{
}

void kassist_set_wake_policy(enum kassist_wake_policy policy)
{
	(void)policy;
}

int kassist_wait(int64_t timeout_ns, struct kassist_event *evs, int max)
{
	(void)timeout_ns;
	(void)evs;
	(void)max;
	return -ENODEV;
}
