/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * harness.c - runs the tests registered with TEST(), each in its own process.
 *
 * Without arguments: TAP for every test.  --list: the names.  --run NAME: run
 * one test in this process (what the parent execs).  A test passes when its
 * process exits with the expected status (0 unless told otherwise), within its
 * timeout, and with the expected text on stderr.
 *
 * GMP_TEST_WRAP names an emulator (qemu-aarch64-static for a cross build):
 * the test processes are started through it, and tests marked native_only
 * are skipped with their reason.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct test_case *tests, **tests_tail = &tests;

void harness_register(struct test_case *tc)
{
	*tests_tail = tc;
	tests_tail = &tc->next;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

#define SKIP_STATUS 77

void harness_skip(const char *why)
{
	fprintf(stderr, "SKIP: %s\n", why);
	fflush(stderr);
	_exit(SKIP_STATUS);
}

static struct test_case *find(const char *name)
{
	for (struct test_case *tc = tests; tc; tc = tc->next)
		if (strcmp(tc->name, name) == 0)
			return tc;
	return NULL;
}

void harness_exec(const char *path, const char *arg1, const char *arg2)
{
	/* GMP_TEST_WRAP: an emulator that runs the binary (qemu-user cannot
	 * exec a foreign binary by itself). */
	const char *wrap = getenv("GMP_TEST_WRAP");
	if (wrap && *wrap)
		execlp(wrap, wrap, path, arg1, arg2, (char *)NULL);
	else
		execl(path, path, arg1, arg2, (char *)NULL);
}

/* Starts self --run NAME with the test's environment; its stderr on *errfd. */
static pid_t spawn(const char *self, struct test_case *tc, int *errfd)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		if (tc->opts.env) {
			char *env = strdup(tc->opts.env), *save = NULL;
			for (char *kv = strtok_r(env, " ", &save); kv; kv = strtok_r(NULL, " ", &save))
				putenv(kv);
		}
		harness_exec(self, "--run", tc->name);
		_exit(127);
	}
	close(pfd[1]);
	*errfd = pfd[0];
	return pid;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Collects the child's stderr until it exits or the timeout passes. */
static int wait_child(pid_t pid, int errfd, int timeout_s, char **out, int *timed_out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	double deadline = now_s() + timeout_s;
	*timed_out = 0;
	for (;;) {
		struct pollfd pf = { .fd = errfd, .events = POLLIN };
		int left = (int)((deadline - now_s()) * 1000);
		if (left <= 0) {
			*timed_out = 1;
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pf, 1, left) <= 0)
			continue;
		if (len + 1024 > cap)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(errfd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += n;
	}
	buf[len] = 0;
	close(errfd);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*out = buf;
	return status;
}

static void print_comment(const char *text)
{
	const char *line = text;
	int shown = 0;
	while (*line && shown < 40) {
		const char *nl = strchr(line, '\n');
		int n = nl ? (int)(nl - line) : (int)strlen(line);
		printf("# %.*s\n", n, line);
		shown++;
		line += n + (nl != NULL);
	}
}

/* Returns 0 pass, 1 fail, 2 skip. */
static int run_one(const char *self, struct test_case *tc, int idx)
{
	const char *wrap = getenv("GMP_TEST_WRAP");
	if (tc->opts.native_only && wrap && *wrap) {
		printf("ok %d %s # SKIP under %s: %s\n", idx, tc->name, wrap, tc->opts.native_only);
		return 2;
	}
	if (tc->opts.skip_unless && system(tc->opts.skip_unless) != 0) {
		printf("ok %d %s # SKIP needs: %s\n", idx, tc->name, tc->opts.skip_unless);
		return 2;
	}
	int errfd, timed_out;
	char *err;
	double t0 = now_s();
	pid_t pid = spawn(self, tc, &errfd);
	if (pid < 0) {
		printf("not ok %d %s # cannot start: %s\n", idx, tc->name, strerror(errno));
		return 1;
	}
	int status = wait_child(pid, errfd, tc->opts.timeout_s ? tc->opts.timeout_s : 60, &err,
				&timed_out);
	double secs = now_s() - t0;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	const char *why = NULL;
	if (timed_out)
		why = "timed out";
	else if (code == SKIP_STATUS) {
		char *nl = strchr(err, '\n');
		if (nl)
			*nl = 0;
		printf("ok %d %s # SKIP %s\n", idx, tc->name, err + (strncmp(err, "SKIP: ", 6) ? 0 : 6));
		free(err);
		return 2;
	} else if (code != tc->opts.expect_status)
		why = "unexpected exit status";
	else if (tc->opts.expect_stderr && !strstr(err, tc->opts.expect_stderr))
		why = "expected text missing from stderr";
	if (why) {
		printf("not ok %d %s # %s (status %d, %.2fs)\n", idx, tc->name, why, code, secs);
		print_comment(err);
	} else {
		printf("ok %d %s # %.2fs\n", idx, tc->name, secs);
	}
	fflush(stdout);
	free(err);
	return why != NULL;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (struct test_case *tc = tests; tc; tc = tc->next)
			puts(tc->name);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--run") == 0) {
		struct test_case *tc = find(argv[2]);
		if (!tc) {
			fprintf(stderr, "no test named %s\n", argv[2]);
			return 2;
		}
		tc->fn();
		fflush(stdout);
		return 0;
	}
	const char *only = argc == 2 ? argv[1] : NULL;
	int n = 0, idx = 0, failed = 0;
	for (struct test_case *tc = tests; tc; tc = tc->next)
		n += !only || strstr(tc->name, only) != NULL;
	/* This binary's own path (under qemu-user, the emulated binary's: the
	 * link /proc/self/exe itself would name the emulator). */
	static char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0 || len >= (ssize_t)sizeof(self) - 1)
		strcpy(self, "/proc/self/exe");
	else
		self[len] = '\0';
	printf("TAP version 13\n1..%d\n", n);
	fflush(stdout);
	for (struct test_case *tc = tests; tc; tc = tc->next)
		if (!only || strstr(tc->name, only))
			failed += run_one(self, tc, ++idx) == 1;
	return failed ? 1 : 0;
}
