/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * switch_aarch64.h - the goroutine context switch for AArch64 (AAPCS64),
 * inline (a new goroutine's first frame is laid out in switch_aarch64.S).
 *
 * gmprt_swap saves a frame on the current stack, stores its sp in
 * *save_sp, and resumes the frame at new_sp; it returns when something
 * resumes the saved one, on whatever M.  As on x86-64 it is inline asm that
 * clobbers every register a call may clobber and the callee-saved ones
 * (x19-x28, the low halves of v8-v15, x30), so the compiler keeps across it
 * only what it needs.  x29 may be the frame pointer, which asm may not
 * clobber: the frame holds it.  x18 (the platform register) is not touched.
 *
 * The frame, 32 bytes, sp 16-aligned:
 *
 *   +0 the address to resume at   +8 fpcr   +16 x29   +24 fpsr
 *
 * FPCR (rounding mode, trap enables) belongs to the goroutine, like
 * MXCSR's control bits on x86-64: saved with the frame and written only
 * when the frame resumed has another value than the one live now.  FPSR
 * (the sticky exception flags) follows MXCSR's flags: written back only
 * when the frame resumed had a flag set that is clear now, so a switch
 * never clears a goroutine's flags but may carry over flags another
 * goroutine raised, as a call may.  No system call is made.  The
 * jump to the resumed frame is a br, not a ret: a ret with no matching bl
 * would mispredict every time.
 */
#ifndef GMPRT_SWITCH_AARCH64_H
#define GMPRT_SWITCH_AARCH64_H

/* mp is the M of the calling thread; what comes back, in x2, is the M of
 * the thread that resumed us, which passed its own.  *arm travels the same
 * way, in x3 (see switch_x86_64.h). */
static inline __attribute__((always_inline)) struct m *gmprt_swap(void **save_sp, void *new_sp,
								  struct m *mp, uint32_t *arm)
{
	register void **x0 __asm__("x0") = save_sp;
	register void *x1 __asm__("x1") = new_sp;
	register struct m *x2 __asm__("x2") = mp;
	register uint64_t x3 __asm__("x3") = *arm;
	__asm__ volatile(
		"sub	sp, sp, #32\n\t"
		"mrs	x9, fpcr\n\t"
		"mrs	x12, fpsr\n\t"
		"adr	x10, 1f\n\t"
		"stp	x10, x9, [sp]\n\t"
		"stp	x29, x12, [sp, #16]\n\t"
		"mov	x11, sp\n\t"
		"str	x11, [x0]\n\t"
		"mov	sp, x1\n\t"
		"ldp	x10, x11, [sp]\n\t"
		"ldr	x13, [sp, #24]\n\t"
		"cmp	x9, x11\n\t"
		"b.eq	2f\n\t"
		"msr	fpcr, x11\n"
		"2:\tbics	xzr, x13, x12\n\t"	/* a flag it had that is clear now? */
		"b.eq	3f\n\t"
		"msr	fpsr, x13\n"
		"3:\tbr	x10\n"
		"1:\thint	#36\n\t"		/* bti j: a landing pad for the br */
		"ldr	x29, [sp, #16]\n\t"
		"add	sp, sp, #32"
		: "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
		:
		: "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
		  "x14", "x15", "x16", "x17", "x19", "x20", "x21", "x22", "x23", "x24", "x25",
		  "x26", "x27", "x28", "x30", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7",
		  "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18",
		  "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29",
		  "v30", "v31", "memory", "cc");
	*arm = (uint32_t)x3;
	return x2;
}

#endif /* GMPRT_SWITCH_AARCH64_H */
