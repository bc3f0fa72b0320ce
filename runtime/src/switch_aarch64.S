/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * switch_aarch64.S - the out-of-line half of the goroutine context switch
 * for AArch64: a new goroutine's first frame.  The switch itself is inline
 * asm (switch_aarch64.h); this file and that one share the saved frame:
 *
 *   +0 the address to resume at   +8 fpcr   +16 x29   +24 fpsr
 *
 * A switch loads the address and branches there with sp at +0; what lies
 * above +32 belongs to the code resumed.  Asynchronous preemption needs no
 * assembly here: on AArch64 the SIGURG handler yields itself (preempt.c).
 */
	.text

/* void *gmprt_stack_init(uintptr_t top): lays out a saved frame at the top
 * of a fresh stack (top rounded down to a cache line) that resumes at
 * gmprt_gostart with the default FPCR and no FPSR flags (0), and returns
 * the sp to switch to.  One cache line is the whole cost. */
	.globl gmprt_stack_init
	.hidden gmprt_stack_init
	.type gmprt_stack_init, %function
	.p2align 4
gmprt_stack_init:
	.cfi_startproc
	hint	#34			/* bti c */
	and	x0, x0, #0xffffffffffffffc0
	sub	x0, x0, #64
	adr	x1, gmprt_gostart
	stp	x1, xzr, [x0]
	stp	xzr, xzr, [x0, #16]
	ret
	.cfi_endproc
	.size gmprt_stack_init, .-gmprt_stack_init

/* First instruction of every goroutine, resumed with sp at top - 64: back
 * to top (16-byte aligned), the end of the frame chain, and gostart. */
	.type gmprt_gostart, %function
	.p2align 4
gmprt_gostart:
	.cfi_startproc
	.cfi_undefined x30
	hint	#36			/* bti j: reached by the switch's br */
	add	sp, sp, #64
	mov	x29, #0
	mov	x30, #0
	bl	gostart
	brk	#0
	.cfi_endproc
	.size gmprt_gostart, .-gmprt_gostart

	.section .note.GNU-stack,"",%progbits

/* Built with -mbranch-protection, the C objects say they are BTI and PAC
 * clean; this file says so too (its code lands on bti pads and keeps no
 * return address of its own), or the linker would drop the marking for the
 * whole library. */
#if defined(__ARM_FEATURE_BTI_DEFAULT) || defined(__ARM_FEATURE_PAC_DEFAULT)
	.pushsection .note.gnu.property, "a"
	.p2align 3
	.long	4			/* name size */
	.long	16			/* descriptor size */
	.long	5			/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.long	0xc0000000		/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.long	4
	.long	3			/* BTI | PAC */
	.long	0
	.popsection
#endif
