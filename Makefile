# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# gmprt - plain GNU make.  Targets:
#   all (default)  libgmprt.so, libgmprt.a, gmprt.pc, gmpstat, examples, tests
#   test           build and run unit tests and selftests; ends "N passed, N failed"
#   test-aarch64   the same for the AArch64 cross build (make CROSS=aarch64 test)
#   bench          run each benchmark beside its Go peer and print ratios
#   demo           the README's main job: examples/httpd under wrk
#   install        PREFIX=/usr/local DESTDIR=
#   deps           apt-get install what is missing (Debian; needs root)
#   SAN=address|thread  build into build-$(SAN) with that sanitizer
#   CROSS=aarch64  cross-build into build-aarch64 (aarch64-linux-gnu-gcc,
#                  KASSIST=none); its tests run under qemu-user
#   KASSIST=none   a build without BPF support: the userspace path only

.DEFAULT_GOAL := all

PREFIX ?= /usr/local
DESTDIR ?=
SAN ?=
CROSS ?=
CC ?= cc
BPF_CLANG ?= clang
# bpf: kernel assist loads its BPF program (libbpf); none: a build without
# BPF support, which runs the userspace path (runtime/src/kassist_none.c).
KASSIST ?= bpf

# The switch (switch_x86_64.h) leaves rbp to the compiler where rbp is no
# frame pointer; ASan's frame-pointer build has the switch save it.
RT_FRAME := -fomit-frame-pointer -DGMP_SWAP_CLOBBERS_RBP=1

ifneq ($(CROSS),)
ifneq ($(CROSS),aarch64)
$(error CROSS must be aarch64, not '$(CROSS)')
endif
ifneq ($(SAN),)
$(error CROSS and SAN do not go together)
endif
B := build-$(CROSS)
SANFLAGS :=
BINUTILS := $(CROSS)-linux-gnu-
CC := $(CROSS)-linux-gnu-gcc
KASSIST := none
# The unit tests run under qemu-user, with the cross toolchain's libraries.
RUN_WRAP := qemu-$(CROSS)-static
export QEMU_LD_PREFIX := /usr/$(CROSS)-linux-gnu
else ifeq ($(SAN),)
B := build
SANFLAGS :=
else ifeq ($(SAN),address)
B := build-asan
SANFLAGS := -fsanitize=address -fno-omit-frame-pointer -DGMP_ASAN=1
RT_FRAME :=
else ifeq ($(SAN),thread)
B := build-tsan
SANFLAGS := -fsanitize=thread -DGMP_TSAN=1
else
$(error SAN must be address or thread, not '$(SAN)')
endif

# The target's architecture: its context switch (switch_$(ARCH).S/.h).
ARCH := $(or $(CROSS),$(shell uname -m))
ifneq ($(ARCH),x86_64)
RT_FRAME :=
endif
# The x86-64 switch keeps its frame below the stack pointer, where the
# runtime's own code, built without a red zone, keeps nothing.
RT_NO_RED_ZONE := $(if $(filter x86_64,$(ARCH)),-mno-red-zone)

VERSION := 0.1.0
SOMAJOR := 0
OPT ?= -O2
WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS_BASE := -std=gnu11 $(OPT) -g $(WARN) -pthread -Iruntime/include $(SANFLAGS)
RT_CFLAGS := $(CFLAGS_BASE) $(RT_FRAME) $(RT_NO_RED_ZONE) -fPIC -fvisibility=hidden -ftls-model=initial-exec -Iruntime/src -I$(B)/bpf -Ibpf
RT_LIBS := -lpthread
LDFLAGS_SAN := $(SANFLAGS)

ifeq ($(KASSIST),bpf)
RT_SRCS := $(filter-out runtime/src/kassist_none.c,$(wildcard runtime/src/*.c))
else ifeq ($(KASSIST),none)
RT_SRCS := $(filter-out runtime/src/kassist.c,$(wildcard runtime/src/*.c))
else
$(error KASSIST must be bpf or none, not '$(KASSIST)')
endif
RT_ASM := runtime/src/switch_$(ARCH).S
RT_OBJS := $(RT_SRCS:%.c=$(B)/obj/%.o) $(RT_ASM:%.S=$(B)/obj/%.o)

TEST_SRCS := $(wildcard runtime/tests/test_*.c)
TEST_BINS := $(TEST_SRCS:runtime/tests/%.c=$(B)/tests/%)
EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(B)/examples/%)

LIB_SO := $(B)/libgmprt.so
LIB_A := $(B)/libgmprt.a
USE_RPATH := -Wl,-rpath,$(abspath $(B))

ifeq ($(KASSIST),bpf)
include bpf/bpf.mk
endif
ifneq ($(CROSS),)
# valgrind.h (client requests, header only) comes from the host: the cross
# sysroot has none.  Only that header is let through.
RT_CFLAGS += -idirafter $(B)/host-include
$(RT_OBJS): | $(B)/host-include/valgrind
$(B)/host-include/valgrind:
	@mkdir -p $(dir $@)
	ln -sfn /usr/include/valgrind $@
endif

.PHONY: all lib test test-aarch64 bench demo install deps clean examples tests
all: lib $(B)/gmprt.pc examples tests

lib: $(LIB_SO) $(LIB_A)

$(B)/obj/%.o: %.c runtime/include/gmprt.h $(wildcard runtime/src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(RT_CFLAGS) -c $< -o $@

$(B)/obj/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(RT_CFLAGS) -c $< -o $@

$(LIB_SO): $(RT_OBJS) runtime/gmprt.map
	$(CC) -shared -Wl,-soname,libgmprt.so.$(SOMAJOR) -Wl,--version-script=runtime/gmprt.map \
		-Wl,-z,defs -o $@.$(VERSION) $(RT_OBJS) $(LDFLAGS_SAN) $(RT_LIBS)
	ln -sf libgmprt.so.$(VERSION) $@.$(SOMAJOR)
	ln -sf libgmprt.so.$(VERSION) $@

# One relocatable object with every hidden symbol made local: a static link
# sees only gmp_ names.
$(LIB_A): $(RT_OBJS)
	$(BINUTILS)ld -r -o $(B)/gmprt-all.o $(RT_OBJS)
	$(BINUTILS)objcopy --localize-hidden $(B)/gmprt-all.o
	rm -f $@ && $(BINUTILS)ar rcs $@ $(B)/gmprt-all.o

$(B)/gmprt.pc: runtime/gmprt.pc.in Makefile
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS@|$(RT_LIBS)|' $< > $@

tests: $(TEST_BINS)
$(B)/tests/%: runtime/tests/%.c runtime/tests/harness.c runtime/tests/harness.h $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Iruntime/tests $< runtime/tests/harness.c -o $@ -L$(B) -lgmprt -lm $(USE_RPATH) $(LDFLAGS_SAN)

examples: $(EXAMPLE_BINS)
$(B)/examples/%: examples/%.c $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $< -o $@ -L$(B) -lgmprt $(USE_RPATH) $(LDFLAGS_SAN)

# deps runs to the end before anything is built (under -j, prerequisites
# of one rule would run side by side: a compiler being installed while
# make calls it): the goals that install do so first, then build in a
# sub-make (named $(MAKE) in the recipe itself, so that it shares -j).

test: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) SAN=$(SAN) RUN_WRAP=$(RUN_WRAP) sh tools/run-tests.sh

# The unit tests of the AArch64 build, under qemu-user.
test-aarch64:
	@$(MAKE) --no-print-directory CROSS=aarch64 test

bench: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) sh bench/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) sh examples/demo.sh

install: lib $(B)/gmprt.pc
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(LIB_SO).$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libgmprt.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libgmprt.so.$(SOMAJOR)
	ln -sf libgmprt.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libgmprt.so
	install -m 0644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 runtime/include/gmprt.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS@|$(RT_LIBS)|' \
		runtime/gmprt.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gmprt.pc
	install -d $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 0644 docs/man/gmprt.7 $(DESTDIR)$(PREFIX)/share/man/man7/

# Debian packages the build, the tests and the benchmarks need (and, for
# CROSS=aarch64, the cross toolchain and the emulator).
DEB_PKGS := gcc make pkg-config liburcu-dev libnuma-dev libbpf-dev bpftool clang \
	golang-go libboost-context-dev wrk valgrind numactl
ifneq ($(CROSS),)
DEB_PKGS += gcc-$(CROSS)-linux-gnu libc6-dev-arm64-cross qemu-user-static
endif
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "deps: need root to install:$$missing" >&2; exit 1; fi; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	fi

clean:
	rm -rf build build-asan build-tsan build-aarch64
ifeq ($(KASSIST),bpf)
include selftests/kassist/sched.mk
endif
