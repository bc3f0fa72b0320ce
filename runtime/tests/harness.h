/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * harness.h - gmprt's unit-test harness.
 *
 * A test file defines tests with TEST(name) or TEST_OPTS(name, ...) and links
 * harness.c, which provides main().  Each test runs in a fresh process (the
 * binary re-executes itself with --run NAME), so a test sees a runtime that
 * nothing else has touched, may set its own environment, and may expect a
 * fatal error.  Output is TAP; `BINARY --list` prints the test names.
 */
#ifndef GMPRT_HARNESS_H
#define GMPRT_HARNESS_H

#include <gmprt.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

struct test_opts {
	const char *env;		/* "A=1 B=2": set before the test starts */
	int expect_status;		/* exit status the test must end with (default 0) */
	const char *expect_stderr;	/* a string its stderr must contain */
	int timeout_s;			/* default 60 */
	const char *skip_unless;	/* shell command that must succeed, else SKIP */
	const char *native_only;	/* why it is skipped under GMP_TEST_WRAP (an emulator) */
};

struct test_case {
	const char *name;
	void (*fn)(void);
	struct test_opts opts;
	struct test_case *next;
};

void harness_register(struct test_case *tc);
void harness_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
void harness_skip(const char *why) __attribute__((noreturn));
/* exec path with up to two arguments (NULL ends them), through the
 * GMP_TEST_WRAP emulator when there is one; returns only on failure.
 * Between fork and exec it calls getenv and exec only. */
void harness_exec(const char *path, const char *arg1, const char *arg2);

#define TEST_OPTS(name, ...)                                                      \
	static void test_##name(void);                                            \
	static struct test_case tc_##name = { #name, test_##name,                 \
					      { __VA_ARGS__ }, NULL };            \
	__attribute__((constructor)) static void reg_##name(void)                 \
	{                                                                         \
		harness_register(&tc_##name);                                     \
	}                                                                         \
	static void test_##name(void)

#define TEST(name) TEST_OPTS(name, .env = NULL)

/* For tests that end in the deadlock report: the check counts the
 * process's threads, and an emulator's own (qemu-user's RCU thread) look
 * like threads of the program that could still wake someone. */
#define NEEDS_DEADLOCK_CHECK \
	.native_only = "its own threads look like the program's to the deadlock check"

/* Stress sizes: TSan keeps a heavy shadow per goroutine (a fiber each, with
 * its own mappings), so counts of live goroutines shrink under it. */
#if defined(__SANITIZE_THREAD__)
#define TEST_SCALE(n) ((n) / 1000 > 100 ? (n) / 1000 : ((n) > 100 ? 100 : (n)))
#define TEST_UNDER_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define TEST_SCALE(n) ((n) / 10 > 100 ? (n) / 10 : (n))
#define TEST_UNDER_TSAN 0
#else
#define TEST_SCALE(n) (n)
#define TEST_UNDER_TSAN 0
#endif

#define CHECK(cond)                                                               \
	do {                                                                      \
		if (!(cond))                                                      \
			harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);     \
	} while (0)

#define CHECK_EQ(a, b)                                                            \
	do {                                                                      \
		long long a_ = (long long)(a), b_ = (long long)(b);               \
		if (a_ != b_)                                                     \
			harness_fail(__FILE__, __LINE__, "%s == %lld, want %s == %lld", \
				     #a, a_, #b, b_);                             \
	} while (0)

#define MS (1000 * 1000LL)

/* gmp_go that fails the test (at the caller's line) when it cannot start. */
#define go(fn, arg) test_go_((fn), (arg), __FILE__, __LINE__)
static inline void test_go_(void (*fn)(void *), void *arg, const char *file, int line)
{
	int64_t id = gmp_go(fn, arg);
	if (id <= 0)
		harness_fail(file, line, "gmp_go: %lld", (long long)id);
}

#endif
