# SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
#
# selftests/kassist/sched.mk - build rules for the scheduler-level
# kernel-assist selftest, included at the end of the top Makefile (it uses
# B, CC, CFLAGS_BASE, LIB_SO, USE_RPATH, LDFLAGS_SAN).  It owns:
#   $(B)/selftests/kassist/sched_test   sched_test.c + sched_work.c, linked
#                                       against the public library only
# tools/run-tests.sh runs it with every other executable in that folder.
# Until the top Makefile includes this file:
#   make -f Makefile -f selftests/kassist/sched.mk $(B)/selftests/kassist/sched_test
# It defines no default goal.

sched_mk_saved_goal := $(.DEFAULT_GOAL)

SCHED_TEST := $(B)/selftests/kassist/sched_test
SCHED_TEST_SRCS := $(wildcard selftests/kassist/sched_*.c)

$(SCHED_TEST): $(SCHED_TEST_SRCS) selftests/kassist/task_state.h runtime/include/gmprt.h $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(SCHED_TEST_SRCS) -o $@ -L$(B) -lgmprt $(USE_RPATH) $(LDFLAGS_SAN)

.PHONY: kassist-sched-selftest
kassist-sched-selftest: $(SCHED_TEST)
tests: $(SCHED_TEST)

.DEFAULT_GOAL := $(sched_mk_saved_goal)
