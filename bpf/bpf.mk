# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# bpf/bpf.mk - build rules for kernel assist, included by the top Makefile
# after its variables (it uses B, CC, BPF_CLANG, CFLAGS_BASE, RT_CFLAGS,
# RT_LIBS).  It owns:
#   $(B)/bpf/sched_switch.bpf.o    the BPF object (clang -target bpf, CO-RE)
#   $(B)/bpf/sched_switch.skel.h   its bpftool skeleton, included by kassist.c
#   $(B)/selftests/kassist/kassist_test   the standalone TAP selftest
# and appends what libbpf 1.1 needs to RT_LIBS.  It defines no default goal.

kassist_saved_goal := $(.DEFAULT_GOAL)

BPFTOOL ?= bpftool
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' \
	-e 's/ppc64le/powerpc/' -e 's/s390x/s390/' -e 's/riscv64/riscv/')
BPF_MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
# -mcpu=v3: 32-bit ALU and jumps (kernel 5.1+).  The program uses no atomic
# whose result is read, so it loads on 5.8+ (ring buffer) kernels.
BPF_CFLAGS := -target bpf -O2 -g -mcpu=v3 -Wall -D__TARGET_ARCH_$(BPF_ARCH) \
	-Ibpf $(if $(BPF_MULTIARCH),-idirafter /usr/include/$(BPF_MULTIARCH))

KASSIST_BPF_OBJ := $(B)/bpf/sched_switch.bpf.o
KASSIST_SKEL := $(B)/bpf/sched_switch.skel.h

$(KASSIST_BPF_OBJ): bpf/sched_switch.bpf.c bpf/kassist.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(KASSIST_SKEL): $(KASSIST_BPF_OBJ)
	$(BPFTOOL) gen skeleton $< name sched_switch_bpf > $@.tmp
	mv $@.tmp $@

$(B)/obj/runtime/src/kassist.o: $(KASSIST_SKEL) bpf/kassist.h

RT_LIBS += -lbpf -lelf -lz

# The selftest links kassist.o alone (plus its own warn()), not the scheduler.
KASSIST_TEST := $(B)/selftests/kassist/kassist_test
KASSIST_TEST_SRCS := selftests/kassist/kassist_test.c selftests/kassist/warn_stub.c

$(KASSIST_TEST): $(KASSIST_TEST_SRCS) $(B)/obj/runtime/src/kassist.o runtime/src/kassist.h bpf/kassist.h \
		selftests/kassist/task_state.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Iruntime/src -Ibpf $(KASSIST_TEST_SRCS) $(B)/obj/runtime/src/kassist.o \
		-o $@ $(LDFLAGS_SAN) -lbpf -lelf -lz -lpthread

.PHONY: kassist-selftest
kassist-selftest: $(KASSIST_TEST)
tests: $(KASSIST_TEST)

.DEFAULT_GOAL := $(kassist_saved_goal)
