/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * bpf/kassist.h - the one contract between the kernel-assist BPF program
 * (bpf/sched_switch.bpf.c) and the runtime that loads it (runtime/src/kassist.c).
 * Both sides include this file; nothing else is shared.  bpftool 7.1's
 * skeleton names these structs without defining them, so include this header
 * before sched_switch.skel.h.
 *
 * What lives where:
 *   .rodata  struct kassist_config   fixed by the loader before load: whose
 *                                     threads to watch, which kernel quirks apply.
 *   kassist_shm (array map, 1 entry, BPF_F_MMAPABLE, mapped by the runtime)
 *            struct kassist_shared   one header line, then KASSIST_NSLOTS slots.
 *   kassist_tids (hash)              tid -> slot index, for registered Ms only.
 *   kassist_events (ring buffer)     struct kassist_event, one per armed
 *                                     voluntary off-CPU, when someone waits.
 *
 * Who writes which word of a slot (never both sides the same word, except
 * armed, which the BPF program clears when the thread dies):
 *   runtime: tid, armed
 *   BPF:     seq, off_ns, on_ns, blocked_ns, nevents, ndropped, flags, cpu
 *
 * Invariants:
 *   - seq is odd exactly while the slot's thread is off CPU after a voluntary
 *     switch taken while armed; off_ns is then the bpf_ktime_get_ns() of that
 *     switch (CLOCK_MONOTONIC, the clock of gmp_now()).  off_ns is written
 *     before seq turns odd, and cleared before seq turns even again (seq
 *     moves by an atomic add, a full barrier on x86-64), so a reader that
 *     sees the same odd seq before and after reading off_ns has a
 *     consistent pair.
 *   - The BPF program records an off-CPU switch only for a task of the
 *     configured tgid, whose tid is in kassist_tids, whose slot holds that
 *     same tid, and whose slot is armed.  It records the return on CPU for
 *     any slot whose seq is odd, armed or not.
 *   - A slot is 64 bytes and 64-byte aligned: one cache line per M.
 */
#ifndef GMPRT_BPF_KASSIST_H
#define GMPRT_BPF_KASSIST_H

#include <linux/types.h>

/* Bump on any change to a struct below or to the meaning of a field. */
#define KASSIST_ABI_VERSION 2

/* Slots in the table: a power of two (the BPF program masks the index). */
#define KASSIST_NSLOTS 1024

/* Bytes of the event ring buffer: a power of two and a multiple of the page. */
#define KASSIST_RINGBUF_BYTES (64 * 1024)

/* kassist_head.wake_policy: when an armed off-CPU switch posts an event. */
enum kassist_wake_policy {
	KASSIST_WAKE_WAITERS = 0,	/* only while kassist_head.waiters > 0 */
	KASSIST_WAKE_NEVER = 1,		/* never: readers poll the slots */
	KASSIST_WAKE_ALWAYS = 2,	/* on every armed off-CPU switch */
};

/* kassist_slot.armed: 0 disarmed; armed, an off-CPU switch is recorded,
 * and with KASSIST_ARMED_WAKE it also posts an event (under
 * KASSIST_WAKE_WAITERS, while someone waits).  The runtime arms "wake" only
 * when work waits on the M's P: then a hand-off pays; otherwise the
 * record alone lets sysmon find the M on its rounds, and the costly wake-up
 * (a self-IPI) is saved. */
#define KASSIST_ARMED 1u
#define KASSIST_ARMED_WAKE 2u

/* kassist_slot.flags */
#define KASSIST_SLOT_EXITED 0x1u	/* the thread died while registered */

/* Linux's TASK_DEAD state bit (stable since 4.14). */
#define KASSIST_TASK_DEAD 0x80u

/*
 * Set by the loader in the program's .rodata before load; read-only after.
 * The verifier sees these as constants, so the branches they guard cost
 * nothing at run time.
 */
struct kassist_config {
	__u32 abi_version;	/* KASSIST_ABI_VERSION, set by the program's initializer */
	__u32 tgid;		/* the process whose threads are watched */
	__u32 prev_state_arg;	/* 1: sched_switch passes prev_state (5.18+) */
	__u32 reserved;
};

/* The first cache line of the shared map value. */
struct kassist_head {
	__u32 abi_version;	/* runtime: KASSIST_ABI_VERSION once mapped */
	__u32 nslots;		/* runtime: KASSIST_NSLOTS */
	__u32 wake_policy;	/* runtime: enum kassist_wake_policy */
	__u32 waiters;		/* runtime: threads between kassist_wait_begin and _end */
	__u64 reserved[6];
} __attribute__((aligned(64)));

/* One M's slot. */
struct kassist_slot {
	__u32 tid;		/* runtime: the registered thread id; 0 = free */
	__u32 armed;		/* runtime: KASSIST_ARMED[_WAKE] while the M runs user code with a P */
	__u64 seq;		/* BPF: +1 on every recorded off or on; odd = off CPU */
	__u64 off_ns;		/* BPF: went off CPU voluntarily at; 0 while on CPU */
	__u64 on_ns;		/* BPF: last came back on CPU at */
	__u64 blocked_ns;	/* BPF: total time off CPU between recorded off and on */
	__u64 nevents;		/* BPF: ring-buffer events posted for this slot */
	__u64 ndropped;		/* BPF: events lost because the ring buffer was full */
	__u32 flags;		/* BPF: KASSIST_SLOT_* */
	__u32 cpu;		/* BPF: the CPU it left at the last recorded off */
} __attribute__((aligned(64)));

/* The whole memory-mapped value (key 0 of kassist_shm). */
struct kassist_shared {
	struct kassist_head head;
	struct kassist_slot slot[KASSIST_NSLOTS];
};

/* A ring-buffer record: an armed M went off CPU voluntarily. */
struct kassist_event {
	__u32 tid;
	__u32 slot;		/* index into kassist_shared.slot */
	__u64 seq;		/* the slot's seq after the switch (odd) */
	__u64 off_ns;		/* same as the slot's off_ns */
	__u32 cpu;		/* the CPU it left: waking a spare there is cheapest */
	__u32 prev_state;	/* the kernel task state it blocked in */
};

_Static_assert(sizeof(struct kassist_head) == 64, "kassist_head is one cache line");
_Static_assert(sizeof(struct kassist_slot) == 64, "kassist_slot is one cache line");
_Static_assert((KASSIST_NSLOTS & (KASSIST_NSLOTS - 1)) == 0, "KASSIST_NSLOTS is a power of two");
_Static_assert(sizeof(struct kassist_event) == 32, "kassist_event layout");

#endif /* GMPRT_BPF_KASSIST_H */
