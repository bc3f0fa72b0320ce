/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * preempt.c - asynchronous preemption of a goroutine that runs too long
 * (Go's asyncPreempt).
 *
 * sysmon sends SIGURG to the M of a P whose goroutine has run for 10 ms.
 * The handler preempts only at a safe point:
 *   - the M runs goroutine code (rtdepth 0, a real goroutine, not adopted);
 *   - the interrupted pc is in application code: not in gmprt, libc, the
 *     dynamic loader, the vDSO, or a sanitizer runtime (their locks and
 *     state must not be held by a goroutine that moves to another thread);
 *   - the interrupted sp is on the goroutine's own stack.
 * Anywhere else the signal is simply ignored; sysmon asks again next round.
 * GMP_DEBUG=preempt=0 turns it off; under TSan it is off (TSan defers
 * signals to points of its own choosing).
 *
 * How the goroutine then yields depends on the architecture:
 *   - x86-64: the handler (on the M's alternate stack) makes the interrupted
 *     code "call" gmprt_asyncpreempt (switch_x86_64.S), which saves every
 *     register, the extended state included (XSAVE), and calls
 *     asyncpreempt_park(): a yield.  Its return needs no free register
 *     (`ret $128` skips the red zone).
 *   - AArch64: a branch needs a register, and C code may keep a value in
 *     any of them, so there is no such trampoline.  The handler runs on the
 *     goroutine's own stack instead (no SA_ONSTACK), where the kernel saved
 *     every register, SVE's included, in the signal frame; it yields from
 *     inside the handler and returns when the goroutine is resumed, on
 *     whatever M: rt_sigreturn then restores the frame on that thread.  The
 *     frame's signal mask is the Ms' common one; its alternate-stack record
 *     is rewritten to the resuming thread's, which rt_sigreturn installs.
 *     The frame (about 4.5 KiB, more with SVE) must fit on the goroutine's
 *     stack: sysmon does not signal a goroutine whose stack has no guard
 *     page (preempt_request), which a frame could silently overrun.
 */
#include "runtime.h"

#include <errno.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

void asyncpreempt_park(void) __attribute__((used));

enum { MAX_UNSAFE = 32 };
struct text_range {
	uintptr_t lo, hi;
};
static struct text_range unsafe_text[MAX_UNSAFE];
static int nunsafe;
static bool preempt_on;

static bool unsafe_object(const char *name)
{
	static const char *const names[] = { "libgmprt", "libc.so", "ld-linux", "linux-vdso",
					     "libasan", "libtsan", "libpthread", "libgcc_s" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strstr(name, names[i]))
			return true;
	return false;
}

static int note_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	if (!info->dlpi_name || !unsafe_object(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum && nunsafe < MAX_UNSAFE; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			unsafe_text[nunsafe].lo = info->dlpi_addr + ph->p_vaddr;
			unsafe_text[nunsafe].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
			nunsafe++;
		}
	}
	return 0;
}

/* In a static link gmprt's code is the program's: a pc there at rtdepth 0
 * is on its way out of the runtime, which holds nothing then. */

static bool pc_unsafe(uintptr_t pc)
{
	for (int i = 0; i < nunsafe; i++)
		if (pc >= unsafe_text[i].lo && pc < unsafe_text[i].hi)
			return true;
	return false;
}

/* Is the interrupted context (pc, sp) a safe point of mp's goroutine,
 * with a page of its stack left below low, where the yield will run? */
static bool safe_point(struct m *mp, uintptr_t pc, uintptr_t sp, uintptr_t low)
{
	if (!mp || mp->adopted || mp->rtdepth > 0 || !mp->curg)
		return false;
	struct g *gp = mp->curg;
	return !pc_unsafe(pc) && low >= gp->stack.lo + 4096 && sp <= gp->stack.hi;
}

#if defined(__x86_64__)
#include <cpuid.h>

void gmprt_asyncpreempt(void);
uint32_t gmprt_xsave_size __attribute__((visibility("hidden")));

static bool preempt_arch_usable(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return false;
	__cpuid_count(0xd, 0, a, b, c, d);
	gmprt_xsave_size = b + 64;
	return b >= 576;
}

enum { PREEMPT_SA_FLAGS = SA_SIGINFO | SA_ONSTACK | SA_RESTART };

static void on_preempt(int sig, siginfo_t *info, void *ucv)
{
	ucontext_t *uc = ucv;
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
	if (!safe_point(getm(), pc, sp, sp))
		return;
	uintptr_t *slot = (uintptr_t *)(sp - 128 - 8);
	*slot = pc;
	uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(uintptr_t)slot;
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)gmprt_asyncpreempt;
}

#elif defined(__aarch64__)
static bool preempt_arch_usable(void)
{
	return true;
}

enum { PREEMPT_SA_FLAGS = SA_SIGINFO | SA_RESTART };

static void on_preempt(int sig, siginfo_t *info, void *ucv)
{
	ucontext_t *uc = ucv;
	/* The yield runs below the signal frame, from this handler's frame. */
	if (!safe_point(getm(), uc->uc_mcontext.pc, uc->uc_mcontext.sp,
			(uintptr_t)__builtin_frame_address(0)))
		return;
	/* Other goroutines run on this M meanwhile: with the M's own mask, not
	 * the handler's (a fault must not find SIGSEGV blocked). */
	pthread_sigmask(SIG_SETMASK, &uc->uc_sigmask, NULL);
	asyncpreempt_park();
	sigaltstack(NULL, &uc->uc_stack);
}

#else
static bool preempt_arch_usable(void)
{
	return false;
}

enum { PREEMPT_SA_FLAGS = SA_SIGINFO | SA_RESTART };

static void on_preempt(int sig, siginfo_t *info, void *ucv)
{
}
#endif

/* The preempted goroutine yields.  errno belongs to the interrupted code
 * (it may sit between a libc call and its look at errno), and the thread
 * it resumes on has its own: carry the value across. */
void asyncpreempt_park(void)
{
	int saved_errno = errno;
	struct m *mp = getm();
	atomic_store_explicit(&mp->preempt_gen, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&mp->p->npreempt, 1, memory_order_relaxed);
	gmp_yield();
	errno = saved_errno;
}

void preempt_init(void)
{
#if defined(__SANITIZE_THREAD__)
	config.preempt = false;
#endif
	if (!config.preempt || !preempt_arch_usable())
		return;
	dl_iterate_phdr(note_object, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_preempt;
	sa.sa_flags = PREEMPT_SA_FLAGS;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGURG, &sa, NULL) == 0)
		preempt_on = true;
}

/* May the signal land on mp's goroutine?  On AArch64 its frame goes on the
 * goroutine's stack, which must have a guard page to catch a frame that
 * does not fit (a racy look at curg: the signal is only a hint). */
static bool signal_fits(struct m *mp)
{
#if defined(__aarch64__)
	struct g *gp = __atomic_load_n(&mp->curg, __ATOMIC_RELAXED);
	return gp && gp->stack.guarded;
#else
	(void)mp;
	return true;
#endif
}

/* Asks mp to preempt its goroutine: a flag for the runtime entries that a
 * busy goroutine cannot avoid (gmp_go checks it), and the signal for the
 * rest. */
void preempt_request(struct m *mp)
{
	atomic_store_explicit(&mp->preempt_gen, 1, memory_order_relaxed);
	if (preempt_on && mp->tid && signal_fits(mp))
		syscall(SYS_tgkill, getpid(), mp->tid, SIGURG);
}
