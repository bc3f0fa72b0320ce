/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * task_state.h - the one /proc reader the kernel-assist selftests share:
 * whether a thread sleeps in the kernel is what their checks are about.
 */
#ifndef GMPRT_SELFTEST_TASK_STATE_H
#define GMPRT_SELFTEST_TASK_STATE_H

#include <stdio.h>
#include <string.h>

/* Field 3 of /proc/PID/task/TID/stat: R, S, D, ... ('?' if unreadable).
 * The command name before it may hold anything, so look past its last ')'. */
static inline char task_state(int pid, int tid)
{
	char path[64], buf[512], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

#endif
