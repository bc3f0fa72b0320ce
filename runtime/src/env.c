/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * env.c - the environment (GMP_MAXPROCS, GMP_STACK, GMP_DEBUG) and the number
 * of CPUs the process may use.
 *
 * Each variable is read once, at start.  A malformed value is never
 * guessed at: it gets one warning line naming the variable, the value and
 * what is used instead.  The default GMP_MAXPROCS is the smaller of the
 * affinity mask's CPU count and the cgroup CPU quota (v2 cpu.max, or v1
 * cpu.cfs_quota_us / cpu.cfs_period_us), rounded up.
 */
#include "runtime.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config config = {
	.maxprocs = 1,
	.stack_size = DEFAULT_STACK,
};

static int32_t affinity_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	int n = CPU_COUNT(&set);
	return n > 0 ? n : 1;
}

/* The path of our cgroup in the v2 hierarchy, or of the v1 cpu controller. */
static bool cgroup_path(bool v2, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *ctrl = strchr(line, ':');
		char *path = ctrl ? strchr(ctrl + 1, ':') : NULL;
		if (!path)
			continue;
		*path++ = 0;
		path[strcspn(path, "\n")] = 0;
		ctrl++;
		bool is_v2 = line[0] == '0' && ctrl[0] == 0;
		bool is_v1_cpu = strstr(ctrl, "cpu") && !strstr(ctrl, "cpuset") ? true : false;
		if ((v2 && is_v2) || (!v2 && is_v1_cpu && !is_v2)) {
			snprintf(out, len, "%s", path);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool read_two(const char *file, char *a, size_t alen, long long *b)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return false;
	char buf[64];
	bool ok = fscanf(f, "%63s %lld", buf, b) == 2;
	fclose(f);
	if (ok)
		snprintf(a, alen, "%s", buf);
	return ok;
}

static long long read_one(const char *file)
{
	FILE *f = fopen(file, "re");
	long long v = -1;
	if (f) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* CPUs allowed by the cgroup quota, rounded up; 0 when unlimited. */
static int32_t quota_cpus(void)
{
	char path[768], file[1024], max[64];
	long long quota = -1, period = 0;
	if (cgroup_path(true, path, sizeof(path))) {
		snprintf(file, sizeof(file), "/sys/fs/cgroup%s/cpu.max", path);
		if (read_two(file, max, sizeof(max), &period) && strcmp(max, "max") != 0)
			quota = atoll(max);
	}
	if (quota < 0 && cgroup_path(false, path, sizeof(path))) {
		const char *roots[] = { "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu" };
		for (size_t i = 0; i < 2 && quota < 0; i++) {
			snprintf(file, sizeof(file), "%s%s/cpu.cfs_quota_us", roots[i], path);
			quota = read_one(file);
			snprintf(file, sizeof(file), "%s%s/cpu.cfs_period_us", roots[i], path);
			period = read_one(file);
		}
	}
	if (quota <= 0 || period <= 0)
		return 0;
	return (int32_t)((quota + period - 1) / period);
}

int32_t ncpu_usable(void)
{
	int32_t n = affinity_cpus();
	int32_t q = quota_cpus();
	if (q > 0 && q < n)
		n = q;
	return n < MAXPROCS_LIMIT ? n : MAXPROCS_LIMIT;
}

/* Parses a decimal integer in [lo, hi]; false if anything else is there. */
static bool parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* "64k", "1m", "65536": a size in bytes; false if malformed. */
static bool parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return false;
	unsigned long long mul = 1;
	switch (tolower((unsigned char)*end)) {
	case 0: break;
	case 'k': mul = 1ULL << 10; end++; break;
	case 'm': mul = 1ULL << 20; end++; break;
	case 'g': mul = 1ULL << 30; end++; break;
	default: return false;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || v == 0 || v > (1ULL << 30) / mul)
		return false;
	*out = (size_t)(v * mul);
	return true;
}

static void parse_maxprocs(void)
{
	const char *s = getenv("GMP_MAXPROCS");
	long v;
	if (!s)
		return;
	if (parse_int(s, 1, MAXPROCS_LIMIT, &v))
		config.maxprocs = (int32_t)v;
	else
		warn("GMP_MAXPROCS=%s is not an integer from 1 to %d; using %d", s, MAXPROCS_LIMIT,
		     config.maxprocs);
}

static void parse_stack(void)
{
	const char *s = getenv("GMP_STACK");
	size_t v;
	if (!s)
		return;
	if (parse_size(s, &v) && v >= (8 << 10))
		config.stack_size = (v + 4095) & ~(size_t)4095;
	else
		warn("GMP_STACK=%s is not a size from 8k to 1g (like 64k or 1m); using %zuk", s,
		     config.stack_size >> 10);
}

static void debug_option(const char *key, const char *val)
{
	long v;
	if (strcmp(key, "schedtrace") == 0 && val && parse_int(val, 0, 3600000, &v))
		config.schedtrace_ms = (int32_t)v;
	else if (strcmp(key, "scheddetail") == 0 && val && parse_int(val, 0, 1, &v))
		config.scheddetail = v;
	else if (strcmp(key, "kassist") == 0 && val && strcmp(val, "auto") == 0)
		config.kassist = KASSIST_AUTO;
	else if (strcmp(key, "kassist") == 0 && val && strcmp(val, "bpf") == 0)
		config.kassist = KASSIST_BPF;
	else if (strcmp(key, "kassist") == 0 && val && strcmp(val, "off") == 0)
		config.kassist = KASSIST_OFF;
	else if (strcmp(key, "pin") == 0 && val && strcmp(val, "node") == 0)
		config.pin = PIN_NODE;
	else if (strcmp(key, "pin") == 0 && val && strcmp(val, "cpu") == 0)
		config.pin = PIN_CPU;
	else if (strcmp(key, "pin") == 0 && val && strcmp(val, "none") == 0)
		config.pin = PIN_NONE;
	else if (strcmp(key, "preempt") == 0 && val && parse_int(val, 0, 1, &v))
		config.preempt = v;
	else if (strcmp(key, "guard") == 0 && val && strcmp(val, "auto") == 0)
		config.vma_guards = false;
	else if (strcmp(key, "guard") == 0 && val && strcmp(val, "vma") == 0)
		config.vma_guards = true;
	else
		warn("GMP_DEBUG: ignoring %s%s%s (want schedtrace=MS, scheddetail=0|1, "
		     "kassist=auto|bpf|off, pin=node|cpu|none, preempt=0|1, guard=auto|vma)",
		     key, val ? "=" : "", val ? val : "");
}

static void parse_debug(void)
{
	const char *s = getenv("GMP_DEBUG");
	if (!s || !*s)
		return;
	char *copy = strdup(s), *save = NULL;
	if (!copy)
		return;
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (eq)
			*eq++ = 0;
		debug_option(item, eq);
	}
	free(copy);
}

void config_init(void)
{
	config.maxprocs = ncpu_usable();
	config.pin = PIN_NODE;
	config.kassist = KASSIST_AUTO;
	config.preempt = true;
	parse_maxprocs();
	parse_stack();
	parse_debug();
}
