/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * san.h - telling ASan and TSan about goroutine stack switches.
 *
 * Every switch goes through san_before_switch() on the leaving side and
 * san_after_switch() on the arriving side (proc.c's switch_to and gostart).
 * Without a sanitizer these compile to nothing.  Valgrind learns about
 * stacks where they are mapped (stack.c).
 */
#ifndef GMPRT_SAN_H
#define GMPRT_SAN_H

#include "runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define GMP_ASAN_ON 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define GMP_TSAN_ON 1
#endif

/* from is about to give the CPU to to; from_dead: from will never run again. */
static inline void san_before_switch(struct g *from, struct g *to, bool from_dead)
{
#ifdef GMP_ASAN_ON
	__sanitizer_start_switch_fiber(from_dead ? NULL : &from->asan_fake_stack,
				       (const void *)to->stack.lo, to->stack.hi - to->stack.lo);
#endif
#ifdef GMP_TSAN_ON
	__tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
	(void)from;
	(void)to;
	(void)from_dead;
}

/* self has just been switched to. */
static inline void san_after_switch(struct g *self)
{
#ifdef GMP_ASAN_ON
	__sanitizer_finish_switch_fiber(self->asan_fake_stack, NULL, NULL);
#endif
	(void)self;
}

/* A fresh context for a new G struct (once: G structs are reused). */
static inline void san_new_context(struct g *gp)
{
#ifdef GMP_TSAN_ON
	gp->tsan_fiber = __tsan_create_fiber(0);
#endif
	(void)gp;
}

/* A stack about to be reused by a new goroutine: frames of its last owner
 * that never returned (it parked, then exited from deeper down) leave ASan
 * poison behind. */
static inline void san_stack_reuse(struct g *gp)
{
#ifdef GMP_ASAN_ON
	__asan_unpoison_memory_region((void *)gp->stack.lo, gp->stack.hi - gp->stack.lo);
	gp->asan_fake_stack = NULL;
#endif
	(void)gp;
}

/* The context the calling thread is running in now. */
static inline void san_current_context(struct g *gp)
{
#ifdef GMP_TSAN_ON
	gp->tsan_fiber = __tsan_get_current_fiber();
#endif
	(void)gp;
}

#endif
