/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * switch_x86_64.S - the out-of-line half of the goroutine context switch
 * for x86-64 (System V ABI): a new goroutine's first frame, and the
 * asynchronous-preemption entry.  The switch itself is inline asm
 * (switch_x86_64.h), so that the compiler saves only the registers it has
 * live across it; this file and that one share the saved frame, below the
 * saved stack pointer sp:
 *
 *   sp-8 the address to resume at   sp-16 mxcsr   sp-12 x87 control word
 *
 * A switch jumps to the address with rsp at sp; what lies at sp and above
 * belongs to the code resumed.
 */
	.text

/* void *gmprt_stack_init(uintptr_t top): lays out a saved frame at the top
 * of a fresh stack (top rounded down to a cache line) that resumes at
 * gmprt_gostart with the default control words, and returns the sp to
 * switch to, 16-byte aligned as a call wants it.  One cache line is the
 * whole cost: the stack is often in another CPU's cache, where its last
 * goroutine ran. */
	.globl gmprt_stack_init
	.hidden gmprt_stack_init
	.type gmprt_stack_init, @function
	.align 16
gmprt_stack_init:
	.cfi_startproc
	movq	%rdi, %rax
	andq	$-64, %rax
	leaq	gmprt_gostart(%rip), %rcx
	movq	%rcx, -40(%rax)
	movl	$0x1f80, -48(%rax)
	movw	$0x037f, -44(%rax)
	leaq	-32(%rax), %rax
	ret
	.cfi_endproc
	.size gmprt_stack_init, .-gmprt_stack_init

/* First instruction of every goroutine, resumed with rsp at top - 32
 * (16-byte aligned): the end of the frame chain, and gostart. */
	.type gmprt_gostart, @function
	.align 16
gmprt_gostart:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	call	gostart
	ud2
	.cfi_endproc
	.size gmprt_gostart, .-gmprt_gostart


/* gmprt_asyncpreempt: where the SIGURG handler (preempt.c) sends a goroutine
 * interrupted at a safe point.  The handler left the interrupted pc just
 * below the red zone: [rsp] = pc, and 128 bytes above that the interrupted
 * rsp.  Every register the interrupted code may have live is saved: the
 * general registers, flags, and the whole extended state (XSAVE, size
 * gmprt_xsave_size from CPUID, 64-byte aligned, header zeroed), then
 * asyncpreempt_park() runs, and all is restored.  `ret $128` pops the pc
 * and skips the red zone. */
	.globl gmprt_asyncpreempt
	.hidden gmprt_asyncpreempt
	.type gmprt_asyncpreempt, @function
	.align 16
gmprt_asyncpreempt:
	.cfi_startproc
	pushfq
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rbx		/* callee-saved: where the registers are */
	movl	gmprt_xsave_size(%rip), %eax
	subq	%rax, %rsp
	andq	$-64, %rsp
	xorl	%eax, %eax		/* zero the 64-byte XSAVE header */
	movq	%rax, 512(%rsp)
	movq	%rax, 520(%rsp)
	movq	%rax, 528(%rsp)
	movq	%rax, 536(%rsp)
	movq	%rax, 544(%rsp)
	movq	%rax, 552(%rsp)
	movq	%rax, 560(%rsp)
	movq	%rax, 568(%rsp)
	movl	$-1, %eax
	movl	$-1, %edx
	xsave64	(%rsp)
	call	asyncpreempt_park
	movl	$-1, %eax
	movl	$-1, %edx
	xrstor64 (%rsp)
	movq	%rbx, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rbp
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rbx
	popq	%rax
	popfq
	ret	$128
	.cfi_endproc
	.size gmprt_asyncpreempt, .-gmprt_asyncpreempt

	.section .note.GNU-stack,"",@progbits
