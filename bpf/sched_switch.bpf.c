/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * bpf/sched_switch.bpf.c - kernel assist: tell the runtime, through a
 * memory-mapped slot and a ring-buffer event, that one of its Ms went off
 * CPU voluntarily (blocked in the kernel) and when it came back.
 *
 * It owns the kassist_shm, kassist_tids and kassist_events maps described in
 * kassist.h, which is the whole contract with user space.  Two twins of the
 * same logic: tp_btf/sched_switch (direct, BTF-checked loads) and
 * raw_tp/sched_switch (probe reads) for kernels without BTF-typed
 * tracepoints; the loader enables exactly one.
 *
 * It runs on every context switch of the machine, so it filters first and
 * cheaply: tgid of prev and next against the configured tgid (a constant to
 * the verifier), and returns at once for every other process.  Only then does
 * it look a tid up in kassist_tids.
 *
 * Invariants (see kassist.h for the slot protocol):
 *   - Only tasks of kassist_cfg.tgid are ever looked at beyond their tgid.
 *   - An off-CPU switch is recorded only when !preempt && prev_state != 0
 *     (a voluntary sleep) and the slot is armed; it bumps seq to odd.
 *   - A switch back in is recorded only when seq is odd; it bumps seq to even.
 *   - A registered thread that dies is disarmed, flagged EXITED and dropped
 *     from kassist_tids, so its tid can never match a stale slot.
 *   - Per slot, writes come from one CPU at a time: the switch out of a task
 *     completes before it can be switched in anywhere.
 */
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kassist.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Filled in by the loader before load (skel->rodata). */
const volatile struct kassist_config kassist_cfg = {
	.abi_version = KASSIST_ABI_VERSION,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kassist_shared);
} kassist_shm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KASSIST_NSLOTS);
	__type(key, __u32);	/* tid */
	__type(value, __u32);	/* slot index */
} kassist_tids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KASSIST_RINGBUF_BYTES);
} kassist_events SEC(".maps");

/*
 * The few task_struct fields we read, relocated by CO-RE against the running
 * kernel's BTF.  The ___suffix is dropped when matching, so both describe
 * struct task_struct: __state since 5.14, state before.
 */
struct task_struct___kassist {
	int pid;
	int tgid;
	unsigned int __state;
} __attribute__((preserve_access_index));

struct task_struct___kassist_pre514 {
	long state;
} __attribute__((preserve_access_index));

#define ONCE(x) (*(volatile typeof(x) *)&(x))

/* ---- kernel-version differences, in one place ---------------------------- */

/* Task state through a BTF pointer (tp_btf): plain loads. */
static __always_inline __u32 task_state_btf(struct task_struct___kassist *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return ((struct task_struct___kassist_pre514 *)t)->state;
}

/* Task state through an untyped pointer (raw_tp): probe reads. */
static __always_inline __u32 task_state_probe(struct task_struct___kassist *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___kassist_pre514 *)t, state);
}

/* ---- slots ---------------------------------------------------------------- */

/*
 * seq += 1 for a seq whose only writer we are (now == its value); returns
 * the new value.  An atomic add without fetch: it runs on every kernel with
 * BPF atomics (fetch variants need 5.12), and on x86-64 it is a locked
 * instruction, a full barrier, so the stores before it are visible before
 * seq changes and the waiters word read after it is fresh (the other half
 * of kassist_wait_begin's barrier).  Where the JIT emits an unordered add
 * (arm64), a waiter that begins just as an M blocks may miss that one event
 * and sleep until its timeout; the slot itself is still right.
 */
static __always_inline __u64 bump(__u64 *seq, __u64 now)
{
	__sync_fetch_and_add(seq, 1);
	return now + 1;
}

static __always_inline struct kassist_shared *shared(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&kassist_shm, &zero);
}

/* The slot registered for tid, or NULL; *index gets its position. */
static __always_inline struct kassist_slot *
slot_of(struct kassist_shared *shm, __u32 tid, __u32 *index)
{
	__u32 *idx = bpf_map_lookup_elem(&kassist_tids, &tid);
	struct kassist_slot *s;

	if (!idx)
		return NULL;
	*index = *idx & (KASSIST_NSLOTS - 1);
	s = &shm->slot[*index];
	if (ONCE(s->tid) != tid)
		return NULL;
	return s;
}

/* Whether the runtime asked to be woken for this off-CPU switch: someone
 * waits, and the slot was armed with KASSIST_ARMED_WAKE. */
static __always_inline bool wake_wanted(struct kassist_shared *shm, __u32 armed)
{
	__u32 policy = ONCE(shm->head.wake_policy);

	if (policy == KASSIST_WAKE_ALWAYS)
		return true;
	return policy == KASSIST_WAKE_WAITERS && armed == KASSIST_ARMED_WAKE &&
	       ONCE(shm->head.waiters) != 0;
}

static __always_inline void post_event(struct kassist_slot *s, __u32 tid, __u32 index,
				       __u64 seq, __u64 now, __u32 cpu, __u32 state)
{
	struct kassist_event *e;

	e = bpf_ringbuf_reserve(&kassist_events, sizeof(*e), 0);
	if (!e) {
		s->ndropped++;
		return;
	}
	e->tid = tid;
	e->slot = index;
	e->seq = seq;
	e->off_ns = now;
	e->cpu = cpu;
	e->prev_state = state;
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	s->nevents++;
}

/* The thread is exiting: forget it so its tid never matches this slot again. */
static __always_inline void record_exit(struct kassist_slot *s, __u32 tid)
{
	ONCE(s->armed) = 0;
	ONCE(s->flags) = s->flags | KASSIST_SLOT_EXITED;
	bpf_map_delete_elem(&kassist_tids, &tid);
}

/* prev (ours) is going to sleep with state != 0 and !preempt. */
static __always_inline void on_switch_out(__u32 tid, __u32 state)
{
	struct kassist_shared *shm = shared();
	struct kassist_slot *s;
	__u32 index, cpu, armed;
	__u64 now, seq;

	if (!shm)
		return;
	s = slot_of(shm, tid, &index);
	if (!s)
		return;
	if (state & KASSIST_TASK_DEAD) {
		record_exit(s, tid);
		return;
	}
	armed = ONCE(s->armed);
	if (!armed)
		return;
	now = bpf_ktime_get_ns();
	cpu = bpf_get_smp_processor_id();
	ONCE(s->off_ns) = now;
	ONCE(s->cpu) = cpu;
	seq = ONCE(s->seq);
	if (!(seq & 1))
		seq = bump(&s->seq, seq);
	if (wake_wanted(shm, armed))
		post_event(s, tid, index, seq, now, cpu, state);
}

/* next (ours) is coming back on CPU. */
static __always_inline void on_switch_in(__u32 tid)
{
	struct kassist_shared *shm = shared();
	struct kassist_slot *s;
	__u64 now, off;
	__u32 index;

	if (!shm)
		return;
	s = slot_of(shm, tid, &index);
	if (!s || !(ONCE(s->seq) & 1))
		return;
	now = bpf_ktime_get_ns();
	off = ONCE(s->off_ns);
	ONCE(s->on_ns) = now;
	if (off && now > off)
		s->blocked_ns += now - off;
	ONCE(s->off_ns) = 0;
	bump(&s->seq, ONCE(s->seq));
}

/* ---- the twins ------------------------------------------------------------ */

SEC("tp_btf/sched_switch")
int BPF_PROG(kassist_switch_btf, bool preempt, struct task_struct___kassist *prev,
	     struct task_struct___kassist *next)
{
	__u32 tgid = kassist_cfg.tgid;
	bool prev_ours = prev->tgid == tgid;
	bool next_ours = next->tgid == tgid;
	__u32 state;

	if (!prev_ours && !next_ours)
		return 0;
	if (prev_ours && !preempt) {
		state = kassist_cfg.prev_state_arg ? (__u32)ctx[3] : task_state_btf(prev);
		if (state)
			on_switch_out(prev->pid, state);
	}
	if (next_ours)
		on_switch_in(next->pid);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(kassist_switch_raw, bool preempt, struct task_struct___kassist *prev,
	     struct task_struct___kassist *next)
{
	__u32 tgid = kassist_cfg.tgid;
	__u64 cur = bpf_get_current_pid_tgid(); /* still prev at this tracepoint */
	bool prev_ours = (__u32)(cur >> 32) == tgid;
	bool next_ours = (__u32)BPF_CORE_READ(next, tgid) == tgid;
	__u32 state;

	if (!prev_ours && !next_ours)
		return 0;
	if (prev_ours && !preempt) {
		state = kassist_cfg.prev_state_arg ? (__u32)ctx[3] : task_state_probe(prev);
		if (state)
			on_switch_out((__u32)cur, state);
	}
	if (next_ours)
		on_switch_in(BPF_CORE_READ(next, pid));
	return 0;
}
