/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * switch_x86_64.h - the goroutine context switch for x86-64, inline (the
 * frame layout, and a new goroutine's first frame, are in switch_x86_64.S).
 *
 * gmprt_swap saves a frame on the current stack, stores its sp in
 * *save_sp, and resumes the frame at new_sp; it returns when something
 * resumes the saved one, on whatever M.  As inline asm that clobbers every
 * register the ABI lets a call clobber, and the callee-saved ones too, it
 * lets the compiler keep across it only what it needs (spilled to the
 * stack, around the switch), where a call to an assembly function saves
 * all six callee-saved registers again under the caller's own saves.  rbp
 * is clobbered too where the build says it is no frame pointer
 * (GMP_SWAP_CLOBBERS_RBP: the Makefile's -fomit-frame-pointer builds);
 * elsewhere asm may not clobber it, and it is stored by hand beside the
 * control words.
 *
 * The frame lies below the stack pointer, which does not move: the runtime
 * is built with -mno-red-zone, so no compiled code keeps anything there
 * across the asm, and the kernel puts a signal frame 128 bytes lower still
 * (the ABI's red zone, which it skips for every program).  A suspended
 * goroutine's stack has nobody running on it; the resumed side reads its
 * frame before anything could be pushed.
 *
 * The SSE and x87 control words belong to the goroutine: saved with the
 * frame, and loaded again on the resumed side.  The x87 word holds only
 * control bits, and fldcw of the value already live is cheaper than
 * reading fnstcw's store back to compare (about 4% of a yield here, where
 * the compare cost 5%).  MXCSR also holds the sticky exception flags,
 * which the ABI makes caller-saved and C lets a call raise but not clear:
 * it is loaded only when the control bits differ, or when the resumed
 * frame saw a flag that is clear now, and not merely because flags were
 * raised meanwhile.  (Two goroutines, one of which does inexact
 * arithmetic, would otherwise pay an ldmxcsr that changes the word on
 * every switch, about 25 ns here.)  No system call is made: the signal
 * mask is per thread and stays put.  The jump to the resumed frame is indirect, not a ret: a ret
 * with no matching call would mispredict every time.
 */
#ifndef GMPRT_SWITCH_X86_64_H
#define GMPRT_SWITCH_X86_64_H

/* The frame, below the stack pointer of the moment (see the top comment):
 * +0 of *save_sp is that stack pointer; -8 the address to resume at, -16
 * mxcsr, -12 the x87 control word, -24 rbp where the switch saves it. */
#ifdef GMP_SWAP_CLOBBERS_RBP
#define SWAP_SAVE_RBP
#define SWAP_LOAD_RBP
#define SWAP_CLOBBER_RBP "rbp",
#else
#define SWAP_SAVE_RBP "movq	%%rbp, -24(%%rsp)\n\t"
#define SWAP_LOAD_RBP "movq	-24(%%rsp), %%rbp"
#define SWAP_CLOBBER_RBP
#endif

/* Saves the frame, resumes the one at new_sp.  mp is the M of the calling
 * thread; what comes back is the M of the thread that resumed us, which
 * passed its own (every switch is made by the thread that runs what it
 * resumes): so the arriving side needs no thread-local load.  *arm travels
 * the same way, in r9: in, the word for the frame we resume; out, the one
 * the thread that resumed us passed (proc.c's switch_to_arming). */
static inline __attribute__((always_inline)) struct m *gmprt_swap(void **save_sp, void *new_sp,
								  struct m *mp, uint32_t *arm)
{
	register struct m *r8 __asm__("r8") = mp;
	register uint64_t r9 __asm__("r9") = *arm;
	__asm__ volatile(
		"stmxcsr	-16(%%rsp)\n\t"
		"fnstcw	-12(%%rsp)\n\t"
		"movl	-16(%%rsp), %%eax\n\t"	/* read at its store's width */
		"leaq	1f(%%rip), %%rcx\n\t"
		"movq	%%rcx, -8(%%rsp)\n\t"
		SWAP_SAVE_RBP
		"movq	%%rsp, (%%rdi)\n\t"
		"movq	%%rsi, %%rsp\n\t"
		"movl	%%eax, %%ecx\n\t"	/* live flags | saved word == live word? */
		"andl	$0x3f, %%ecx\n\t"
		"orl	-16(%%rsp), %%ecx\n\t"
		"cmpl	%%ecx, %%eax\n\t"
		"jne	2f\n"
		"3:\tfldcw	-12(%%rsp)\n\t"
		"jmp	*-8(%%rsp)\n"
		"2:\tldmxcsr	-16(%%rsp)\n\t"
		"jmp	3b\n"
		"1:\t" SWAP_LOAD_RBP
		: "+D"(save_sp), "+S"(new_sp), "+r"(r8), "+r"(r9)
		:
		: "rax", "rbx", "rcx", "rdx", SWAP_CLOBBER_RBP "r10", "r11", "r12", "r13",
		  "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory",
		  "cc");
	*arm = (uint32_t)r9;
	return r8;
}

#endif /* GMPRT_SWITCH_X86_64_H */
