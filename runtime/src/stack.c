/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * stack.c - goroutine stacks: reservation, overflow detection, trimming.
 *
 * A stack is an anonymous MAP_NORESERVE mapping: the kernel commits its pages
 * one by one as they are touched, so a parked goroutine costs about a page.
 * Reuse is the G free lists' job (proc.c): a dead G keeps its stack, and
 * stack_trim() gives the pages back when a free list is over its bound.
 *
 * Overflow detection, two modes:
 *   guarded  a guard page lies just below the stack; running into it
 *            faults, and the SIGSEGV handler (panic.c) reports the overflow.
 *            Where the kernel has lightweight guard regions (Linux 6.13,
 *            MADV_GUARD_INSTALL), the guard is a page-table marker, which
 *            costs no VMA: every stack is guarded, and default-size stacks
 *            come from slabs of 64 whose guards one process_madvise call
 *            installs.  Elsewhere the guard is a PROT_NONE page, which costs
 *            two VMAs per stack, so only while the mapping budget lasts (a
 *            quarter of vm.max_map_count).
 *   canary   no guard page: the mapping merges with its neighbours and costs
 *            no VMA.  The lowest CANARY_BYTES of the stack must stay zero; the
 *            scheduler checks them, and the saved sp, at every switch away
 *            from the goroutine.  Reading them never commits memory (an
 *            untouched page reads from the kernel's zero page).  Stacks of
 *            the default size are cut from slabs of 64, one mmap each.
 */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

enum { CANARY_BYTES = 64, MIN_STACK = 8 << 10, MAX_STACK = 1 << 30 };

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static size_t page_size;
static _Atomic long guard_budget;	/* PROT_NONE-guarded stacks we may still map */
static _Atomic bool marker_guards;	/* MADV_GUARD_INSTALL works here */

/* Does this kernel install lightweight guard regions?  Success is not
 * taken on trust (an emulator such as qemu-user says yes to advice it
 * ignores): the kernel must then refuse to read the page, as write(2) from
 * it into a pipe shows. */
static bool probe_marker_guards(void)
{
	char *p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return false;
	bool ok = false;
	int fds[2];
	if (madvise(p, page_size, MADV_GUARD_INSTALL) == 0 && pipe2(fds, O_CLOEXEC) == 0) {
		ok = write(fds[1], p, 1) < 0 && errno == EFAULT;
		close(fds[0]);
		close(fds[1]);
	}
	munmap(p, 2 * page_size);
	return ok;
}

static long read_max_map_count(void)
{
	long v = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 65530;
		fclose(f);
	}
	return v;
}

void stack_init(void)
{
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	atomic_store(&guard_budget, read_max_map_count() / 4 / 2);
	atomic_store(&marker_guards,
		     !config.vma_guards && !RUNNING_ON_VALGRIND && probe_marker_guards());
}

static size_t round_to_page(size_t n)
{
	return (n + page_size - 1) & ~(page_size - 1);
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A guard page at base: a page-table marker, or a PROT_NONE page (a VMA). */
static int guard_install(void *base, bool marker)
{
	if (marker)
		return madvise(base, page_size, MADV_GUARD_INSTALL) == 0 ? 0 : -errno;
	return mprotect(base, page_size, PROT_NONE) == 0 ? 0 : -errno;
}

static int map_guarded(struct stack *st, size_t size, bool marker)
{
	char *base = map_anon(size + page_size);
	if (!base)
		return -errno;
	int err = guard_install(base, marker);
	if (err) {
		munmap(base, size + page_size);
		return err;
	}
	st->map_lo = (uintptr_t)base;
	st->lo = (uintptr_t)base + page_size;
	st->guarded = 1;
	st->marker = marker;
	return 0;
}

/* Default-size stacks come from slabs of up to SLAB_MAX_STACKS, within
 * SLAB_MAX_BYTES of address space (a large GMP_STACK gets fewer a slab, so
 * that a strict-overcommit system is not charged for hundreds of them):
 * one mmap instead of many (a skynet run maps about 300 slabs; with 64
 * stacks a slab it mapped 1,300 and took 5-8% longer).  Slab stacks are never unmapped (G structs
 * keep their stacks for life; trimming gives the pages back).  A slab is
 * all canary stacks, or, with marker guards, all guarded ones: each slot is
 * a guard page and then the stack, and process_madvise installs the guards
 * GUARD_BATCH at a time.  Each P cuts
 * from a slab of its own, with no lock and no syscall under one: with one
 * shared slab, two Ps spawning at once took turns sleeping on its lock
 * while the other mapped.  A P that gmp_maxprocs takes away keeps the rest
 * of its slab, unused until the P comes back (address space only: nothing
 * of it was touched). */
enum { SLAB_MAX_STACKS = 256 };
#define SLAB_MAX_BYTES ((size_t)32 << 20)
static struct rt_lock slab_lock;
static struct stack_slab global_slab; /* slab_lock guards it */

#ifndef PIDFD_SELF_THREAD
#define PIDFD_SELF_THREAD -10000	/* "this process" to newer kernels, no fd needed */
#endif
enum { GUARD_BATCH = 64 };		/* guards per process_madvise (1 KiB of iovecs) */
static _Atomic bool pidfd_self_refused;	/* the kernel predates PIDFD_SELF_THREAD */

/* process_madvise(MADV_GUARD_INSTALL) on n slots of a slab: through
 * PIDFD_SELF_THREAD, or where the kernel predates it, through a pidfd of
 * our own opened for the call (no fd of the program's is kept, and a fork
 * child gets its own).  True if every guard went in. */
static bool guard_batch(char *base, size_t stride, int n)
{
	struct iovec v[GUARD_BATCH];
	for (int i = 0; i < n; i++)
		v[i] = (struct iovec){ base + i * stride, page_size };
	const long want = (long)n * (long)page_size;
	if (!atomic_load_explicit(&pidfd_self_refused, memory_order_relaxed)) {
		if (syscall(SYS_process_madvise, PIDFD_SELF_THREAD, v, n, MADV_GUARD_INSTALL, 0) == want)
			return true;
		if (errno == EBADF)
			atomic_store_explicit(&pidfd_self_refused, true, memory_order_relaxed);
	}
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		return false;
	bool ok = syscall(SYS_process_madvise, pidfd, v, n, MADV_GUARD_INSTALL, 0) == want;
	close(pidfd);
	return ok;
}

/* Installs a guard page at the bottom of each of a new slab's count
 * slots, a batch at a time, else one madvise per slot. */
static int slab_guard(char *base, size_t stride, int count)
{
	for (int first = 0; first < count; first += GUARD_BATCH) {
		char *b = base + first * stride;
		int n = count - first < GUARD_BATCH ? count - first : GUARD_BATCH;
		if (guard_batch(b, stride, n))
			continue;
		for (int i = 0; i < n; i++)
			if (guard_install(b + i * stride, true))
				return -errno;
	}
	return 0;
}

/* How many stacks of stride bytes (guard included) a slab holds. */
static int slab_count(size_t stride)
{
	size_t n = SLAB_MAX_BYTES / stride;
	return n < 1 ? 1 : n > SLAB_MAX_STACKS ? SLAB_MAX_STACKS : (int)n;
}

/* Maps a new slab into sl (no lock held: sl is a P's own, or the caller
 * holds slab_lock); false with errno set. */
static bool slab_refill(struct stack_slab *sl, size_t size)
{
	bool g = atomic_load_explicit(&marker_guards, memory_order_relaxed);
	size_t stride = size + (g ? page_size : 0);
	int count = slab_count(stride);
	char *base = map_anon(stride * count);
	if (base && g && slab_guard(base, stride, count)) {
		/* Guards failed here after the probe said yes: go on with canaries. */
		munmap(base, stride * count);
		atomic_store(&marker_guards, false);
		g = false;
		stride = size;
		count = slab_count(stride);
		base = map_anon(stride * count);
	}
	if (!base)
		return false;
	sl->next = (uintptr_t)base;
	sl->end = sl->next + stride * count;
	sl->guarded = g;
	return true;
}

/* The lowest address of a slot for a default-size stack (its guard page
 * first when *guarded), or NULL with errno set. */
static char *slab_cut(struct stack_slab *sl, size_t size, bool *guarded)
{
	if (sl->next == sl->end && !slab_refill(sl, size))
		return NULL;
	char *p = (char *)sl->next;
	*guarded = sl->guarded;
	sl->next += size + (sl->guarded ? page_size : 0);
	return p;
}

static int map_slab(struct stack *st, size_t size, struct stack_slab *own)
{
	bool guarded;
	char *base;
	if (own) {
		base = slab_cut(own, size, &guarded);
	} else {
		rt_lock(&slab_lock);
		base = slab_cut(&global_slab, size, &guarded);
		rt_unlock(&slab_lock);
	}
	if (!base)
		return -errno;
	st->slab = 1;
	st->map_lo = (uintptr_t)base;
	st->lo = (uintptr_t)base + (guarded ? page_size : 0);
	st->guarded = guarded;
	st->marker = guarded;
	return 0;
}

static int map_canary(struct stack *st, size_t size)
{
	char *base = map_anon(size);
	if (!base)
		return -errno;
	st->map_lo = st->lo = (uintptr_t)base;
	st->guarded = 0;
	return 0;
}

/* A stack with no PROT_NONE guard: a slab slot for the default size (which
 * is marker-guarded if markers still work), else a mapping of its own. */
static int map_unguarded(struct stack *st, size_t size, struct stack_slab *own)
{
	return size == config.stack_size ? map_slab(st, size, own) : map_canary(st, size);
}

int stack_alloc(struct stack *st, size_t size, struct stack_slab *own)
{
	if (size < MIN_STACK)
		size = MIN_STACK;
	if (size > MAX_STACK)
		return -EINVAL;
	size = round_to_page(size);
	int err;
	if (atomic_load_explicit(&marker_guards, memory_order_relaxed)) {
		err = size == config.stack_size ? map_slab(st, size, own) : map_guarded(st, size, true);
	} else if (atomic_fetch_sub(&guard_budget, 1) > 0) {
		err = map_guarded(st, size, false);
		if (err) {
			atomic_fetch_add(&guard_budget, 1);
			if (err == -ENOMEM) { /* out of mappings, perhaps: try without a guard */
				atomic_store(&guard_budget, 0);
				err = map_unguarded(st, size, own);
			}
		}
	} else {
		atomic_fetch_add(&guard_budget, 1);
		err = map_unguarded(st, size, own);
	}
	if (err)
		return err;
	st->hi = st->lo + size;
	st->vg_id = RUNNING_ON_VALGRIND ? VALGRIND_STACK_REGISTER(st->lo, st->hi) : 0;
	return 0;
}

void stack_free(struct stack *st)
{
	if (!st->hi)
		return;
	if (st->vg_id)
		VALGRIND_STACK_DEREGISTER(st->vg_id);
	if (st->slab)
		fatal_nodump("stack_free of a slab stack");
	munmap((void *)st->map_lo, st->hi - st->map_lo);
	if (st->guarded && !st->marker)
		atomic_fetch_add(&guard_budget, 1);
	memset(st, 0, sizeof(*st));
}

void stack_trim(struct stack *st)
{
	madvise((void *)st->lo, st->hi - st->lo, MADV_DONTNEED);
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = (*(struct stack *const *)a)->map_lo, y = (*(struct stack *const *)b)->map_lo;
	return x < y ? -1 : x > y;
}

/* Stacks mapped one after another sit side by side (the kernel hands out
 * addresses in order), so one madvise covers a whole run of them: far fewer
 * system calls and TLB shootdowns than one per stack.  A run may span guard
 * pages; advising them is harmless. */
void stack_trim_batch(struct stack **sts, int n)
{
	qsort(sts, (size_t)n, sizeof(*sts), by_address);
	for (int i = 0; i < n;) {
		uintptr_t lo = sts[i]->lo, hi = sts[i]->hi;
		int j = i + 1;
		while (j < n && sts[j]->map_lo == hi)
			hi = sts[j++]->hi;
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
		i = j;
	}
}

bool stack_canary_intact(const struct stack *st)
{
	if (st->guarded || !st->hi)
		return true;
	const uint64_t *w = (const uint64_t *)st->lo;
	uint64_t any = 0;
	for (size_t i = 0; i < CANARY_BYTES / sizeof(*w); i++)
		any |= w[i];
	return any == 0;
}

/* A fault within a page below the stack, or in its canary, is an overflow. */
bool stack_fault_is_overflow(const struct stack *st, uintptr_t addr)
{
	if (!st->hi)
		return false;
	uintptr_t floor = st->lo - (st->guarded ? page_size : 16 * page_size);
	return addr >= floor && addr < st->lo + CANARY_BYTES;
}
