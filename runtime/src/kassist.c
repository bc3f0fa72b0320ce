/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * kassist.c - the loader for kernel assist: probes what the kernel can do,
 * loads bpf/sched_switch.bpf.c (embedded as a bpftool skeleton) for this
 * process, maps its slot table, hands slots to Ms and lets sysmon or a spare
 * M sleep on its ring buffer.  The interface is kassist.h; the layout shared
 * with the BPF program is bpf/kassist.h.
 *
 * It owns the libbpf objects, the shared mapping of struct kassist_shared
 * and the ring-buffer consumer.  Invariants:
 *   - kassist_live is true exactly while the program is attached for this
 *     process's tgid and ka.shm maps its slots; it is written only by
 *     kassist_init, kassist_fini and the fork-child handler.
 *   - Every failure to go live prints one warning line (warn()) and nothing
 *     else: libbpf's own printing is silenced while we call it.
 *   - ka.shm never becomes unmapped once set: fini and fork replace it by
 *     private anonymous memory, so stale slot pointers stay harmless.
 *   - One thread at a time consumes the ring buffer (ka.consume_lock).
 */
#include "runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/membarrier.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kassist.h"
#include "sched_switch.skel.h"

#define VMLINUX_BTF "/sys/kernel/btf/vmlinux"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static struct {
	bool initialized;		/* kassist_init ran since start, fini or fork */
	int result;			/* what it returned */
	struct sched_switch_bpf *skel;
	struct kassist_shared *shm;	/* the mapped map value */
	size_t shm_len;
	int tids_fd, events_fd;
	struct ring_buffer *rb;
	const char *twin;		/* attached program's section name */
	char reason[128];		/* why the userspace path is live */
	enum kassist_twin force_twin;	/* kassist_force() */
	bool force_task_state;

	pthread_mutex_t consume_lock;	/* guards rb and the out_* fields */
	struct kassist_event *out;	/* where the consumer copies events */
	int out_max, out_n;
} ka = {
	.tids_fd = -1,
	.events_fd = -1,
	.consume_lock = PTHREAD_MUTEX_INITIALIZER,
};

bool kassist_live; /* read and written with __atomic builtins: other Ms read it */

static inline bool live(void)
{
	return __atomic_load_n(&kassist_live, __ATOMIC_ACQUIRE);
}

static inline void set_live(bool v)
{
	__atomic_store_n(&kassist_live, v, __ATOMIC_RELEASE);
}

/* What the kernel offers, found by probing before we load anything. */
struct kassist_probe {
	bool tp_btf;			/* worth trying the tp_btf twin */
	bool raw_tp;			/* raw tracepoint programs load */
	bool prev_state_arg;		/* sched_switch has its 4th argument */
};

/* ---- the one warning ------------------------------------------------------ */

static int give_up(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record why kernel assist is off, print it once, return err (< 0). */
static int give_up(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ka.reason, sizeof(ka.reason), fmt, ap);
	va_end(ap);
	warn(KASSIST_UNAVAILABLE_FMT, ka.reason);
	return err;
}

/* libbpf speaks only through the warning line above. */
static int libbpf_silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

/* ---- probes --------------------------------------------------------------- */

/* Tracing programs need CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN. */
static bool have_bpf_caps(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	uint64_t eff;

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) != 0)
		return true; /* cannot tell: let the load decide */
	eff = data[0].effective | (uint64_t)data[1].effective << 32;
	if (eff & (1ull << CAP_SYS_ADMIN))
		return true;
	return (eff & (1ull << CAP_BPF)) && (eff & (1ull << CAP_PERFMON));
}

/* Since 5.18 sched_switch passes prev_state as its 4th argument (the
 * prototype change was not backported: an older kernel that had it would
 * only make us read the task's state instead, which is slower, not wrong). */
static bool has_prev_state_arg(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 18);
}

/*
 * Fill *pr, or explain (through give_up) why nothing can load.  Cheap on
 * purpose, since it runs at every process start: no parse of the kernel's
 * BTF (libbpf parses it once more to load; ~10 ms each here).  Whether
 * tp_btf attaches is probed by loading and attaching the tp_btf twin
 * itself; go_live falls back to the raw_tp twin if that fails.
 * (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACING) would not do: it
 * probes with an fentry program, which this kind of VM refuses while tp_btf
 * works.)
 */
static int probe_kernel(struct kassist_probe *pr)
{
	if (!have_bpf_caps())
		return give_up(-EPERM, "no CAP_BPF and CAP_PERFMON");
	if (access(VMLINUX_BTF, R_OK) != 0)
		return give_up(-errno, "no kernel BTF at %s", VMLINUX_BTF);
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) != 1)
		return give_up(-ENOTSUP, "kernel has no BPF ring buffer");
	pr->tp_btf = true;
	pr->raw_tp = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL) == 1;
	pr->prev_state_arg = has_prev_state_arg();
	return 0;
}

/* ---- slots: claiming and releasing ---------------------------------------- */

static struct kassist_slot *slot_of_tid(uint32_t tid)
{
	for (int i = 0; i < KASSIST_NSLOTS; i++)
		if (__atomic_load_n(&ka.shm->slot[i].tid, __ATOMIC_ACQUIRE) == tid)
			return &ka.shm->slot[i];
	return NULL;
}

/* Claim a free slot for tid: CAS its tid word from 0. */
static int claim_slot(uint32_t tid)
{
	for (int i = 0; i < KASSIST_NSLOTS; i++) {
		uint32_t free_tid = 0;
		if (__atomic_compare_exchange_n(&ka.shm->slot[i].tid, &free_tid, tid, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return i;
	}
	return -ENOSPC;
}

/* Events posted for slots that were since reset: kassist_events_posted
 * counts over the life of the process. */
static _Atomic uint64_t events_retired;

/* A slot we own that is not in kassist_tids: the BPF program does not
 * write it, readers may still look (hence the atomic stores). */
static void reset_slot(struct kassist_slot *s)
{
	uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);

	atomic_fetch_add_explicit(&events_retired, __atomic_load_n(&s->nevents, __ATOMIC_RELAXED),
				  memory_order_relaxed);
	__atomic_store_n(&s->armed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->off_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->on_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->blocked_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->nevents, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ndropped, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->flags, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->cpu, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, seq + (seq & 1), __ATOMIC_RELEASE); /* even: on CPU */
}

/* An existing registration of tid.  One whose thread died (EXITED: the BPF
 * program already dropped it from kassist_tids) is handed to the new thread
 * that reuses the tid. */
static struct kassist_slot *registered_slot(uint32_t tid, bool *stale)
{
	struct kassist_slot *s = slot_of_tid(tid);

	*stale = s && (__atomic_load_n(&s->flags, __ATOMIC_ACQUIRE) & KASSIST_SLOT_EXITED);
	return s;
}

/* kassist_register, once ka.shm is mapped. */
static struct kassist_slot *register_tid(uint32_t key)
{
	struct kassist_slot *s;
	uint32_t index;
	bool stale;
	int i;

	s = registered_slot(key, &stale);
	if (s && !stale)
		return s;
	if (!s) {
		i = claim_slot(key);
		if (i < 0)
			return NULL;
		s = &ka.shm->slot[i];
	}
	reset_slot(s);
	index = (uint32_t)(s - ka.shm->slot);
	if (bpf_map_update_elem(ka.tids_fd, &key, &index, BPF_ANY) != 0) {
		__atomic_store_n(&s->tid, 0, __ATOMIC_RELEASE);
		return NULL;
	}
	return s;
}

/* Wait until no BPF run that looked the old tid up can still be writing:
 * tracepoint programs run inside RCU read-side sections, and
 * MEMBARRIER_CMD_GLOBAL waits for a grace period. */
static void wait_bpf_quiescent(void)
{
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
		usleep(20 * 1000);
}

/* Could a BPF run that found tid before we deleted it still write s?  Not
 * when we are tid (none of its switches is in flight while it runs this),
 * not once the thread's final switch flagged it EXITED, and not when it was
 * neither armed nor off CPU (the program then writes nothing). */
static bool bpf_may_still_write(const struct kassist_slot *s, uint32_t tid, uint32_t was_armed)
{
	if (tid == (uint32_t)syscall(SYS_gettid))
		return false;
	if (__atomic_load_n(&s->flags, __ATOMIC_ACQUIRE) & KASSIST_SLOT_EXITED)
		return false;
	return was_armed || (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) & 1);
}

/* kassist_unregister; with_map: ka.shm is mapped and kassist_tids open. */
static void release_slot(struct kassist_slot *s, bool with_map)
{
	uint32_t tid, was_armed;

	tid = __atomic_load_n(&s->tid, __ATOMIC_ACQUIRE);
	if (tid == 0)
		return;
	was_armed = __atomic_exchange_n(&s->armed, 0, __ATOMIC_SEQ_CST);
	if (with_map) {
		bpf_map_delete_elem(ka.tids_fd, &tid); /* ENOENT: the thread died */
		if (bpf_may_still_write(s, tid, was_armed))
			wait_bpf_quiescent();
	}
	__atomic_store_n(&s->tid, 0, __ATOMIC_RELEASE);
}

/* ---- load ----------------------------------------------------------------- */

/* Open, configure, load and attach one twin.  On failure *step names what
 * failed and the skeleton is gone. */
static int load_twin(bool btf_twin, const struct kassist_probe *pr, const char **step)
{
	struct sched_switch_bpf *skel;
	struct bpf_program *prog;
	struct bpf_link *link;
	int err;

	*step = "opening";
	skel = sched_switch_bpf__open();
	if (!skel)
		return errno ? -errno : -EINVAL;
	if (skel->rodata->kassist_cfg.abi_version != KASSIST_ABI_VERSION) {
		err = -EPROTO;
		goto fail;
	}
	skel->rodata->kassist_cfg.tgid = (uint32_t)getpid();
	skel->rodata->kassist_cfg.prev_state_arg = pr->prev_state_arg;
	prog = btf_twin ? skel->progs.kassist_switch_btf : skel->progs.kassist_switch_raw;
	bpf_program__set_autoload(skel->progs.kassist_switch_btf, btf_twin);
	bpf_program__set_autoload(skel->progs.kassist_switch_raw, !btf_twin);
	*step = "loading";
	err = sched_switch_bpf__load(skel);
	if (err)
		goto fail;
	*step = "attaching";
	link = bpf_program__attach(prog);
	if (!link) {
		err = errno ? -errno : -EINVAL;
		goto fail;
	}
	*(btf_twin ? &skel->links.kassist_switch_btf : &skel->links.kassist_switch_raw) = link;
	ka.skel = skel;
	ka.twin = btf_twin ? "tp_btf/sched_switch" : "raw_tp/sched_switch";
	return 0;
fail:
	sched_switch_bpf__destroy(skel);
	return err;
}

/* Map the slot table and check it is the layout this runtime was built with. */
static int map_slots(const char **step)
{
	struct bpf_map *map = ka.skel->maps.kassist_shm;
	long page = sysconf(_SC_PAGESIZE);
	size_t len = (sizeof(struct kassist_shared) + page - 1) & ~(size_t)(page - 1);
	void *p;

	*step = "mapping the slots of";
	if (bpf_map__value_size(map) != sizeof(struct kassist_shared))
		return -EPROTO;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	if (p == MAP_FAILED)
		return -errno;
	ka.shm = p;
	ka.shm_len = len;
	ka.shm->head.nslots = KASSIST_NSLOTS;
	ka.shm->head.wake_policy = KASSIST_WAKE_WAITERS;
	__atomic_store_n(&ka.shm->head.abi_version, KASSIST_ABI_VERSION, __ATOMIC_RELEASE);
	return 0;
}

static int on_event(void *ctx, void *data, size_t size);

static int open_events(const char **step)
{
	*step = "opening the ring buffer of";
	ka.events_fd = bpf_map__fd(ka.skel->maps.kassist_events);
	ka.tids_fd = bpf_map__fd(ka.skel->maps.kassist_tids);
	ka.rb = ring_buffer__new(ka.events_fd, on_event, NULL, NULL);
	return ka.rb ? 0 : (errno ? -errno : -ENOMEM);
}

/* Replace the shared slot table by private zeroed memory at the same
 * address: pointers into it stay valid, nothing watches them any more. */
static void orphan_slots(void)
{
	if (ka.shm)
		mmap(ka.shm, ka.shm_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ka.shm = NULL;
}

static void unload(void)
{
	set_live(false);
	orphan_slots();
	if (ka.rb)
		ring_buffer__free(ka.rb);
	ka.rb = NULL;
	if (ka.skel)
		sched_switch_bpf__destroy(ka.skel);
	ka.skel = NULL;
	ka.tids_fd = ka.events_fd = -1;
}

/* A fork child is another tgid: the program does not watch it, and the
 * slots it inherited belong to the parent.  Drop them without touching
 * libbpf's state (the child may be in the middle of anything); close our
 * descriptors so the parent's program does not outlive the parent. */
static void forget_after_fork(void)
{
	struct bpf_map *map;
	struct bpf_program *prog;

	if (!live())
		return;
	set_live(false);
	orphan_slots();
	bpf_object__for_each_program(prog, ka.skel->obj)
		close(bpf_program__fd(prog));
	bpf_object__for_each_map(map, ka.skel->obj)
		close(bpf_map__fd(map));
	if (ka.skel->links.kassist_switch_btf)
		close(bpf_link__fd(ka.skel->links.kassist_switch_btf));
	if (ka.skel->links.kassist_switch_raw)
		close(bpf_link__fd(ka.skel->links.kassist_switch_raw));
	close(ring_buffer__epoll_fd(ka.rb));
	ka.skel = NULL; /* leaked on purpose: freeing it would close reused fds */
	ka.rb = NULL;
	ka.tids_fd = ka.events_fd = -1;
	ka.initialized = false;
	snprintf(ka.reason, sizeof(ka.reason), "inherited across fork(); not loaded here");
	pthread_mutex_init(&ka.consume_lock, NULL);
}

void kassist_force(enum kassist_twin twin, bool state_from_task)
{
	ka.force_twin = twin;
	ka.force_task_state = state_from_task;
}

/* Apply kassist_force() to what the probe found. */
static void apply_force(struct kassist_probe *pr)
{
	if (ka.force_twin == KASSIST_TWIN_TP_BTF)
		pr->raw_tp = false;
	if (ka.force_twin == KASSIST_TWIN_RAW_TP)
		pr->tp_btf = false;
	if (ka.force_task_state)
		pr->prev_state_arg = false;
}

/* An armed sleep of our own must show up in our slot.  It proves the
 * program sees this process: inside a PID namespace getpid() and gettid()
 * are not the ids the kernel's tasks carry, and it would see nothing. */
static int self_check(const char **step)
{
	struct kassist_slot *s;
	uint64_t seq0;
	bool seen = false;

	*step = "self-check of";
	s = register_tid((uint32_t)syscall(SYS_gettid));
	if (!s)
		return -ENOSPC;
	seq0 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
	for (int try = 0; try < 3 && !seen; try++) {
		kassist_arm(s);
		usleep(50);
		kassist_disarm(s);
		seen = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) >= seq0 + 2;
	}
	release_slot(s, true);
	return seen ? 0 : -ESRCH;
}

/* Load, map, open and check one twin; on failure *step says what failed
 * and nothing is left loaded. */
static int try_twin(bool btf_twin, const struct kassist_probe *pr, const char **step)
{
	int err = load_twin(btf_twin, pr, step);

	if (!err)
		err = map_slots(step);
	if (!err)
		err = open_events(step);
	if (!err)
		err = self_check(step);
	if (err && ka.skel)
		unload();
	return err;
}

/* Load the best twin the probe found, falling back to raw_tp.  The warning
 * names the first failure: the preferred twin's. */
static int go_live(const struct kassist_probe *pr)
{
	const char *step, *first_step = NULL, *first_twin = NULL;
	int err, first_err = -ENOTSUP;

	if (pr->tp_btf) {
		err = try_twin(true, pr, &step);
		if (!err)
			return 0;
		first_step = step, first_err = err, first_twin = "tp_btf/sched_switch";
	}
	if (pr->raw_tp) {
		err = try_twin(false, pr, &step);
		if (!err)
			return 0;
		if (!first_step)
			first_step = step, first_err = err, first_twin = "raw_tp/sched_switch";
	}
	if (!first_step)
		return give_up(-ENOTSUP, "no sched_switch program type usable here");
	if (first_err == -ESRCH)
		return give_up(-ESRCH, "%s saw none of this process's switches, as in a PID namespace",
			       first_twin);
	return give_up(first_err, "%s %s: %s", first_step, first_twin, strerror(-first_err));
}

int kassist_init(int mode)
{
	static bool atfork_done;
	struct kassist_probe pr = { 0 };
	libbpf_print_fn_t old_print;
	int err;

	if (ka.initialized)
		return ka.result;
	ka.initialized = true;
	if (mode == KASSIST_OFF)
		return ka.result = give_up(-ENOTSUP, "disabled by GMP_DEBUG=kassist=off");
	old_print = libbpf_set_print(libbpf_silent);
	err = probe_kernel(&pr);
	apply_force(&pr);
	if (!err)
		err = go_live(&pr);
	libbpf_set_print(old_print);
	if (!err && !atfork_done) {
		pthread_atfork(NULL, NULL, forget_after_fork);
		atfork_done = true;
	}
	set_live(err == 0);
	return ka.result = err;
}

void kassist_fini(void)
{
	unload();
	ka.initialized = false;
	snprintf(ka.reason, sizeof(ka.reason), "unloaded");
}

const char *kassist_mode_name(void)
{
	return live() ? "bpf" : "userspace";
}

const char *kassist_detail(void)
{
	if (live())
		return ka.twin;
	return ka.reason[0] ? ka.reason : "not initialized";
}

uint64_t kassist_events_posted(void)
{
	uint64_t n = atomic_load_explicit(&events_retired, memory_order_relaxed);

	if (!ka.shm)
		return n;
	for (int i = 0; i < KASSIST_NSLOTS; i++)
		n += __atomic_load_n(&ka.shm->slot[i].nevents, __ATOMIC_RELAXED);
	return n;
}

/* ---- slots: the public side ---------------------------------------------- */

struct kassist_slot *kassist_register(int tid)
{
	if (!live() || tid <= 0)
		return NULL;
	return register_tid((uint32_t)tid);
}

struct kassist_slot *kassist_slot_at(uint32_t index)
{
	if (!live() || index >= KASSIST_NSLOTS)
		return NULL;
	return &ka.shm->slot[index];
}

int kassist_slot_index(const struct kassist_slot *s)
{
	if (!live() || s < ka.shm->slot || s >= ka.shm->slot + KASSIST_NSLOTS)
		return -1;
	return (int)(s - ka.shm->slot);
}

void kassist_unregister(struct kassist_slot *s)
{
	if (s)
		release_slot(s, live());
}

/* ---- waiting -------------------------------------------------------------- */

void kassist_wait_begin(void)
{
	if (live())
		__atomic_fetch_add(&ka.shm->head.waiters, 1, __ATOMIC_SEQ_CST);
}

void kassist_wait_end(void)
{
	if (live())
		__atomic_fetch_sub(&ka.shm->head.waiters, 1, __ATOMIC_SEQ_CST);
}

void kassist_set_wake_policy(enum kassist_wake_policy policy)
{
	if (live())
		__atomic_store_n(&ka.shm->head.wake_policy, (uint32_t)policy, __ATOMIC_SEQ_CST);
}

/* ring_buffer__consume callback; runs under ka.consume_lock. */
static int on_event(void *ctx, void *data, size_t size)
{
	if (ka.out && ka.out_n < ka.out_max && size >= sizeof(struct kassist_event))
		memcpy(&ka.out[ka.out_n], data, sizeof(struct kassist_event));
	ka.out_n++;
	return 0;
}

/* Take whatever events are queued; 0 if none or another thread is at it. */
static int take_events(struct kassist_event *evs, int max)
{
	int n, err;

	if (pthread_mutex_trylock(&ka.consume_lock) != 0)
		return 0;
	ka.out = evs;
	ka.out_max = evs ? max : 0;
	ka.out_n = 0;
	err = ring_buffer__consume(ka.rb);
	n = ka.out_n;
	ka.out = NULL;
	pthread_mutex_unlock(&ka.consume_lock);
	return err < 0 && n == 0 ? err : n;
}

int kassist_wait(int64_t timeout_ns, struct kassist_event *evs, int max)
{
	struct pollfd pfd;
	struct timespec ts, *tsp = NULL;
	int n, r;

	if (!live())
		return -ENODEV;
	n = take_events(evs, max);
	if (n != 0)
		return n;
	if (timeout_ns == 0)
		return -ETIMEDOUT;
	if (timeout_ns > 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	pfd.fd = ka.events_fd;
	pfd.events = POLLIN;
	r = ppoll(&pfd, 1, tsp, NULL);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	return take_events(evs, max);
}
