/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * panic.c - fatal errors, warnings, and the signal handler that turns a
 * stack overflow into a report.
 *
 * A fatal error prints one line "gmprt: fatal error: ...", then, like Go, a
 * block per goroutine saying what it is doing or waiting on, and exits with
 * status 2.  Output is formatted into a buffer on the stack and written with
 * write(2): the heap may be what is broken.  If two threads fail at once,
 * the second waits for the first to exit the process.
 *
 * SIGSEGV/SIGBUS run on a per-M alternate stack.  A fault in the guard page
 * (or canary) of the running goroutine's stack is a stack overflow; any
 * other fault is not ours and is re-raised with the previous disposition.
 *
 * SIGQUIT, where the program left it at its default, first lists the
 * goroutines (as Go does) and then takes its default action: the process
 * ends on the signal, with a core dump where the limits allow one.  A
 * program that handles SIGQUIT itself keeps its handler.
 */
#include "runtime.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

enum { ALTSTACK_SIZE = 64 << 10 };

static _Atomic int dying;
static struct sigaction prev_segv, prev_bus;

static void write_all(const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(2, buf, n);
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

static void vprint(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s", prefix);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	write_all(buf, (size_t)n);
}

void warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("gmprt: warning: ", fmt, ap);
	va_end(ap);
}

static const char *status_word(struct g *gp)
{
	switch (atomic_load(&gp->status)) {
	case G_RUNNABLE: return "runnable";
	case G_RUNNING: return "running";
	case G_WAITING: return gp->waitreason ? gp->waitreason : "waiting";
	case G_SYSCALL: return "syscall";
	default: return NULL;
	}
}

static void dump_one(struct g *gp, void *arg)
{
	const char *what = status_word(gp);
	if (!what || atomic_load(&gp->status) == G_IDLE)
		return;
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "goroutine %lld [%s%s]:\n", (long long)gp->goid, what,
			 gp->adopted ? ", adopted thread" : "");
	char fname[128];
	if (gp->is_main)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\tmain()\n");
	else if (gp->fn && sym_name((void *)gp->fn, fname, sizeof(fname)))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\t%s(%p)%s%s\n", fname,
			      gp->arg, gp->name ? " name=" : "", gp->name ? gp->name : "");
	else if (gp->fn)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\t%p(%p)%s%s\n", (void *)gp->fn,
			      gp->arg, gp->name ? " name=" : "", gp->name ? gp->name : "");
	if (n < (int)sizeof(buf) - 1)
		buf[n++] = '\n';
	write_all(buf, (size_t)n);
	(void)arg;
}

__attribute__((noreturn)) static void die(bool dump, const char *fmt, va_list ap)
{
	if (atomic_exchange(&dying, 1)) {
		for (;;)
			pause();
	}
	vprint("gmprt: fatal error: ", fmt, ap);
	if (dump) {
		write_all("\n", 1);
		allg_foreach(dump_one, NULL);
	}
	_exit(2);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	die(true, fmt, ap);
}

void fatal_nodump(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	die(false, fmt, ap);
}

static void reraise(int sig, siginfo_t *info, void *uc)
{
	struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
	if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
		prev->sa_sigaction(sig, info, uc);
		return;
	}
	if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
		return;
	}
	/* Default action: restore it and return; the fault happens again. */
	signal(sig, SIG_DFL);
}

/* The interrupted stack pointer, where the architecture is known. */
static uintptr_t fault_sp(void *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	return (uintptr_t)((ucontext_t *)uc)->uc_mcontext.sp;
#else
	(void)uc;
	return UINTPTR_MAX;
#endif
}

/* Did the running goroutine's stack overflow?  Either the fault is in its
 * guard page or canary, or its sp is below the stack (a canary-mode stack
 * that ran into its neighbour's memory). */
static bool overflowed(const struct stack *st, uintptr_t addr, uintptr_t sp)
{
	return stack_fault_is_overflow(st, addr) || (st->hi && sp < st->lo + 256 && sp + (1 << 20) > st->lo);
}

static void on_fault(int sig, siginfo_t *info, void *uc)
{
	struct m *mp = getm();
	uintptr_t addr = (uintptr_t)info->si_addr;
	if (mp && info->si_code > 0) {
		struct g *gp = mp->curg ? mp->curg : &mp->g0;
		if (!gp->adopted && overflowed(&gp->stack, addr, fault_sp(uc))) {
			if (gp == &mp->g0)
				fatal("stack overflow on the scheduler stack of M%d", mp->id);
			fatal("stack overflow in goroutine %lld (stack %zu bytes)", (long long)gp->goid,
			      (size_t)(gp->stack.hi - gp->stack.lo));
		}
	}
	reraise(sig, info, uc);
}

/* The goroutine list, then SIGQUIT's default action: re-raised, it is
 * blocked until this handler returns.  A fatal error already under way
 * has the process to itself. */
static void on_quit(int sig)
{
	if (atomic_exchange(&dying, 1)) {
		for (;;)
			pause();
	}
	static const char head[] = "SIGQUIT: quit\n\n";
	write_all(head, sizeof(head) - 1);
	allg_foreach(dump_one, NULL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void quit_dumps_goroutines(void)
{
	struct sigaction old;
	if (sigaction(SIGQUIT, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
	    old.sa_handler != SIG_DFL)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_quit;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	sigaction(SIGQUIT, &sa, NULL);
}

void signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &prev_segv);
	sigaction(SIGBUS, &sa, &prev_bus);
	quit_dumps_goroutines();
}

void signals_minit(struct m *mp)
{
	/* Ms start with every signal blocked; let faults and preemption through. */
	sigset_t faults;
	sigemptyset(&faults);
	sigaddset(&faults, SIGSEGV);
	sigaddset(&faults, SIGBUS);
	sigaddset(&faults, SIGURG); /* preemption requests (preempt.c) */
	pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
	stack_t old;
	if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
		return; /* the thread has one already */
	void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return;
	stack_t ss = { .ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0) {
		munmap(mem, ALTSTACK_SIZE);
		return;
	}
	mp->sigstack = mem;
}

void signals_mexit(struct m *mp)
{
	if (!mp->sigstack)
		return;
	stack_t off = { .ss_flags = SS_DISABLE };
	sigaltstack(&off, NULL);
	munmap(mp->sigstack, ALTSTACK_SIZE);
	mp->sigstack = NULL;
}
