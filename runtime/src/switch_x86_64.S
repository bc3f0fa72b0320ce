/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * switch_x86_64.S - goroutine context switch for x86-64 (System V ABI).
 *
 * A saved context is just a stack pointer: the switch pushes the callee-saved
 * registers (rbp, rbx, r12-r15) and the SSE/x87 control words onto the
 * current stack, stores rsp, loads the other stack's rsp and pops the same
 * frame.  Caller-saved registers are the caller's business, as for any call.
 * No system call is made: the signal mask is per thread and stays put.
 *
 * Saved frame, from the saved sp upwards:
 *   +0 mxcsr  +4 x87 control word  +8 r15  +16 r14  +24 r13  +32 r12
 *   +40 rbx  +48 rbp  +56 return address
 */
	.text

/* void gmprt_switch(void **save_sp, void *new_sp) */
	.globl gmprt_switch
	.hidden gmprt_switch
	.type gmprt_switch, @function
	.align 16
gmprt_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movl	(%rsp), %eax		/* the control words as they are now, each */
	movzwl	4(%rsp), %edx		/* read at its store's width (forwarding) */
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	/* Loading a control word is slow (fldcw is microcoded), and nearly
	 * every goroutine runs with the defaults: load them only when the
	 * saved pair differs from the current one. */
	cmpl	(%rsp), %eax
	jne	1f
	cmpw	4(%rsp), %dx
	je	2f
1:	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
2:
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size gmprt_switch, .-gmprt_switch

/* void *gmprt_stack_init(uintptr_t top): lays out a saved frame in the top
 * 64 bytes of a fresh stack (top rounded down to a cache line), whose
 * return address is gmprt_gostart, and returns the sp to switch to.  Only
 * the control words and the return address are written: the registers the
 * frame restores are the new goroutine's to set, and gmprt_gostart clears
 * rbp (the end of the frame chain).  One cache line is the whole cost: the
 * stack is often in another CPU's cache, where its last goroutine ran. */
	.globl gmprt_stack_init
	.hidden gmprt_stack_init
	.type gmprt_stack_init, @function
	.align 16
gmprt_stack_init:
	.cfi_startproc
	movq	%rdi, %rax
	andq	$-64, %rax
	leaq	gmprt_gostart(%rip), %rcx
	movq	%rcx, -8(%rax)
	movl	$0x1f80, -64(%rax)
	movw	$0x037f, -60(%rax)
	leaq	-64(%rax), %rax
	ret
	.cfi_endproc
	.size gmprt_stack_init, .-gmprt_stack_init
/* First instruction of every goroutine: rsp is 16-byte aligned here. */
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
