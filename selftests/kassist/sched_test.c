/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * sched_test.c - scheduler-level selftests of kernel assist (issue 3, part
 * 7): what a user of the whole runtime sees when a goroutine blocks in the
 * kernel, spins, or when many block at once, on the BPF path and on the
 * userspace path.  It owns the TAP runner and the checks; the workloads are
 * in sched_work.c and run in a child process each (this binary re-executed
 * as "--child MODE ..."), so GMP_MAXPROCS, GMP_DEBUG and dropped
 * capabilities apply from the child's start.
 *
 * A third path, for kernels without membarrier(2): this binary also runs
 * as "--no-membarrier PROG ARGS...", which makes membarrier fail with
 * ENOSYS (a seccomp filter, kept across exec) and runs PROG; the runtime
 * then takes its P with a CAS at every entry instead of arming a slot.
 *
 * Prints TAP (kselftest style).  A case skips, with the reason, what the
 * machine cannot do (no kernel assist, not root, no setpriv/capsh).  Every
 * child has a deadline; one that passes it is killed (with its process
 * group) and the case fails, saying which step it stalled in.
 *
 * SCHED_TESTS=name,name runs only those cases (the others SKIP).
 * Exit status: 0 all passed or skipped, 1 a case failed, 4 all skipped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
int sched_work_main(int argc, char **argv);	/* sched_work.c */

#define WARN_KASSIST "gmprt: warning: kernel assist unavailable ("
#define WARN_KASSIST_TAIL "); using the userspace path"
#define MAX_ARGS 24
#define MAX_ENV 256

enum result { PASS, FAIL, SKIP };

struct child;

static char why[1024];		/* the failing check or the skip reason */
static char self_exe[4096];
static struct child *ran[4];	/* the children of the current case */
static int nran;

static enum result verdict(enum result r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static enum result verdict(enum result r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return r;
}

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (!(cond))                                              \
			return verdict(FAIL, __VA_ARGS__);                \
	} while (0)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- children ----------------------------------------------------------- */

struct child {
	pid_t pid;
	int out_fd, err_fd;
	char out[16384], err[65536];
	size_t out_len, err_len;
	int status;
	bool done, timed_out;
	int64_t started_ms, ms;
};

/* Our environment without GMP_* and SCHED_TEST_*, plus extra. */
static void child_env(char **env, char *const extra[])
{
	int n = 0;

	for (char **e = environ; *e && n < MAX_ENV - 16; e++)
		if (strncmp(*e, "GMP_", 4) != 0 && strncmp(*e, "SCHED_TEST_", 11) != 0)
			env[n++] = *e;
	for (int i = 0; extra && extra[i] && n < MAX_ENV - 1; i++)
		env[n++] = extra[i];
	env[n] = NULL;
}

/* argv = prefix..., self_exe, "--child", args... */
static void child_argv(char **argv, char *const prefix[], char *const args[])
{
	int n = 0;

	for (int i = 0; prefix && prefix[i] && n < MAX_ARGS - 4; i++)
		argv[n++] = prefix[i];
	argv[n++] = self_exe;
	argv[n++] = "--child";
	for (int i = 0; args[i] && n < MAX_ARGS - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
}

static int child_start(struct child *c, char *const extra_env[], char *const prefix[],
		       char *const args[])
{
	char *argv[MAX_ARGS], *env[MAX_ENV];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int out[2], err[2], rc;

	memset(c, 0, sizeof(*c));
	c->out_fd = c->err_fd = -1;
	if (nran < 4)
		ran[nran++] = c;
	if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		return -errno;
	child_argv(argv, prefix, args);
	child_env(env, extra_env);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, 0);
	rc = posix_spawn(&c->pid, argv[0], &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(out[1]);
	close(err[1]);
	c->out_fd = out[0];
	c->err_fd = err[0];
	c->started_ms = now_ms();
	if (rc != 0) {
		close(out[0]);
		close(err[0]);
		c->done = true;
		return -rc;
	}
	return 0;
}

/* Append what fd has to buf; close it at EOF. */
static void drain(int *fd, char *buf, size_t cap, size_t *len)
{
	char scratch[4096];
	ssize_t n = read(*fd, scratch, sizeof(scratch));
	size_t room = cap - 1 - *len;

	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if ((size_t)n > room)
		n = (ssize_t)room;
	memcpy(buf + *len, scratch, (size_t)n);
	*len += (size_t)n;
	buf[*len] = 0;
}

static void child_reap(struct child *c, bool block)
{
	if (c->done || waitpid(c->pid, &c->status, block ? 0 : WNOHANG) != c->pid)
		return;
	c->done = true;
	c->ms = now_ms() - c->started_ms;
}

static void child_kill(struct child *c)
{
	kill(-c->pid, SIGKILL);
	kill(c->pid, SIGKILL);
	c->timed_out = true;
}

/* One round of polling every open pipe of cs[0..n) for up to 20 ms. */
static void children_poll(struct child **cs, int n)
{
	struct pollfd pf[8];
	int np = 0;

	for (int i = 0; i < n && np < 7; i++) {
		if (cs[i]->out_fd >= 0)
			pf[np++] = (struct pollfd){ cs[i]->out_fd, POLLIN, 0 };
		if (cs[i]->err_fd >= 0)
			pf[np++] = (struct pollfd){ cs[i]->err_fd, POLLIN, 0 };
	}
	if (np == 0 || poll(pf, (nfds_t)np, 20) <= 0) {
		if (np == 0)
			usleep(5000);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct child *c = cs[i];

		for (int k = 0; k < np; k++) {
			if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (pf[k].fd == c->out_fd)
				drain(&c->out_fd, c->out, sizeof(c->out), &c->out_len);
			else if (pf[k].fd == c->err_fd)
				drain(&c->err_fd, c->err, sizeof(c->err), &c->err_len);
		}
	}
}

/* Collect output until every child exited and closed its pipes, killing
 * those still running after timeout_ms. */
static void children_wait(struct child **cs, int n, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		bool open = false;

		children_poll(cs, n);
		for (int i = 0; i < n; i++) {
			child_reap(cs[i], false);
			open |= !cs[i]->done || cs[i]->out_fd >= 0 || cs[i]->err_fd >= 0;
		}
		if (!open)
			return;
		if (now_ms() > deadline) {
			for (int i = 0; i < n; i++)
				if (!cs[i]->done)
					child_kill(cs[i]);
			deadline = now_ms() + 5000;	/* pipes of grandchildren */
			timeout_ms = -1;
		}
		if (timeout_ms < 0 && now_ms() > deadline)
			break;
	}
	for (int i = 0; i < n; i++) {
		child_reap(cs[i], true);
		if (cs[i]->out_fd >= 0)
			close(cs[i]->out_fd);
		if (cs[i]->err_fd >= 0)
			close(cs[i]->err_fd);
		cs[i]->out_fd = cs[i]->err_fd = -1;
	}
}

static int run_child(struct child *c, char *const env[], char *const prefix[], char *const args[],
		     int timeout_ms)
{
	struct child *one = c;
	int rc = child_start(c, env, prefix, args);

	if (rc == 0)
		children_wait(&one, 1, timeout_ms);
	return rc;
}

/* ---- reading what a child said ------------------------------------------ */

/* The value after "key=" where key starts a word of text. */
static const char *find_key(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = strstr(text, key); p; p = strstr(p + 1, key))
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') && p[kl] == '=')
			return p + kl + 1;
	return NULL;
}

static bool key_double(const char *text, const char *key, double *v)
{
	const char *p = find_key(text, key);
	char *end;

	if (!p)
		return false;
	*v = strtod(p, &end);
	return end != p;
}

static long key_long(const char *text, const char *key, long dflt)
{
	double v;

	return key_double(text, key, &v) ? (long)v : dflt;
}

/* How many lines of text start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

/* The first line of text starting with prefix, copied into line. */
static bool first_line(const char *text, const char *prefix, char *line, size_t len)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			size_t n = strcspn(p, "\n");

			snprintf(line, len, "%.*s", (int)(n < len ? n : len - 1), p);
			return true;
		}
	return false;
}

/* The last schedtrace line ("SCHED ...") of text, copied into line. */
static bool last_sched_line(const char *text, char *line, size_t len)
{
	const char *last = NULL;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, "SCHED ", 6) == 0)
			last = p;
	if (!last)
		return false;
	snprintf(line, len, "%.*s", (int)strcspn(last, "\n"), last);
	return true;
}

/* The word after "kassist=" in a schedtrace line. */
static void sched_path(const char *line, char *path, size_t len)
{
	const char *p = find_key(line, "kassist");

	snprintf(path, len, "%.*s", p ? (int)strcspn(p, " \n]") : 0, p ? p : "");
}

/* Print a block of child output as TAP diagnostics, at most max lines. */
static void diag_block(const char *tag, const char *text, int max)
{
	int n = 0;

	for (const char *p = text; p && *p && n < max; n++) {
		size_t l = strcspn(p, "\n");

		printf("#   %s: %.*s\n", tag, (int)l, p);
		p = p[l] ? p + l + 1 : NULL;
	}
}

/* Fails for a child that crashed, timed out or printed a fatal error. */
static enum result child_ok(const struct child *c, const char *what)
{
	char fatal[512];

	if (first_line(c->err, "gmprt: fatal error", fatal, sizeof(fatal)))
		return verdict(FAIL, "%s: %s", what, fatal);
	if (c->timed_out)
		return verdict(FAIL, "%s: still running after its deadline; killed. stdout: %.200s", what,
			       c->out);
	if (!WIFEXITED(c->status))
		return verdict(FAIL, "%s: killed by signal %d", what, WTERMSIG(c->status));
	if (WEXITSTATUS(c->status) != 0)
		return verdict(FAIL, "%s: exit status %d: %.300s", what, WEXITSTATUS(c->status), c->err);
	return PASS;
}

/* The warning line's reason when the child fell back, or NULL. */
static const char *fallback_reason(const struct child *c, char *line, size_t len)
{
	return first_line(c->err, WARN_KASSIST, line, len) ? line + strlen(WARN_KASSIST) : NULL;
}

/* Exactly one "gmprt:" line on stderr, and it is the kernel-assist warning. */
static enum result check_one_warning(const struct child *c)
{
	char line[512];
	int gmprt_lines = count_lines(c->err, "gmprt:");

	CHECK(gmprt_lines == 1, "want exactly one gmprt: line on stderr, got %d", gmprt_lines);
	CHECK(first_line(c->err, WARN_KASSIST, line, sizeof(line)), "the gmprt: line is not the "
	      "kernel-assist warning");
	CHECK(strstr(line, WARN_KASSIST_TAIL) &&
	      strcmp(line + strlen(line) - strlen(WARN_KASSIST_TAIL), WARN_KASSIST_TAIL) == 0,
	      "malformed warning: %s", line);
	return PASS;
}

/* The last schedtrace line names the path and, when want_handoffs, counts one. */
static enum result check_schedtrace(const struct child *c, const char *want_path, long min_handoffs)
{
	char line[4096], path[32];
	long handoffs;

	CHECK(last_sched_line(c->err, line, sizeof(line)), "no schedtrace line on stderr");
	sched_path(line, path, sizeof(path));
	CHECK(strcmp(path, want_path) == 0, "schedtrace says kassist=%s, want %s: %s",
	      path[0] ? path : "(missing)", want_path, line);
	handoffs = key_long(line, "handoffs", -1);
	CHECK(handoffs >= min_handoffs, "schedtrace handoffs=%ld, want >= %ld: %s", handoffs,
	      min_handoffs, line);
	printf("# kassist=%s handoffs=%ld\n", path, handoffs);
	return PASS;
}

/* ---- without membarrier ----------------------------------------------------- */

#if defined(__x86_64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_AARCH64
#endif

/* "--no-membarrier PROG ARGS...": membarrier(2) fails with ENOSYS from here
 * on, in PROG too, as on a kernel built without it.  Exit status 127 when
 * that cannot be arranged (the message says why). */
static int run_without_membarrier(char **argv)
{
#ifdef AUDIT_ARCH_SELF
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_SELF, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(filter) / sizeof(filter[0]), filter };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		fprintf(stderr, "no seccomp filter: %s\n", strerror(errno));
		return 127;
	}
	if (syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0, 0) != -1 || errno != ENOSYS) {
		fprintf(stderr, "membarrier still answers under the filter\n");
		return 127;
	}
	execv(argv[0], argv);
	fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
#else
	fprintf(stderr, "no seccomp architecture constant for this machine\n");
#endif
	return 127;
}

static char *const no_membarrier_prefix[] = { self_exe, "--no-membarrier", NULL };

/* A child, with membarrier(2) or under no_membarrier_prefix; SKIP when
 * membarrier could not be taken away. */
static enum result run_child_userspace(struct child *c, char *const env[], char *const args[],
				       bool without_membarrier)
{
	if (run_child(c, env, without_membarrier ? no_membarrier_prefix : NULL, args, 20000) != 0)
		return verdict(FAIL, "cannot start the child: %s", strerror(errno));
	if (without_membarrier && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 127)
		return verdict(SKIP, "cannot take membarrier away: %.200s", c->err);
	return PASS;
}

/* ---- blocked read on one P ------------------------------------------------ */

static enum result check_blocked_read(const struct child *c, const char *path)
{
	enum result r = child_ok(c, "blocked_read child");

	if (r != PASS)
		return r;
	CHECK(key_long(c->out, "reader_ok", 0) == 1, "the child did not report reader_ok: %s", c->out);
	printf("# %s path: main back %.1f us after the reader's read(); child took %lld ms\n", path,
	       (double)key_long(c->out, "main_back_us", -1), (long long)c->ms);
	return check_schedtrace(c, path, 1);
}

static enum result t_blocked_read_bpf(void)
{
	char *env[] = { "GMP_MAXPROCS=1", "GMP_DEBUG=schedtrace=100", "SCHED_TEST_LINGER_MS=250", NULL };
	char *args[] = { "blocked_read", NULL };
	static struct child c;
	const char *reason;
	char line[512];

	if (run_child(&c, env, NULL, args, 20000) != 0)
		return verdict(FAIL, "cannot start the child: %s", strerror(errno));
	reason = fallback_reason(&c, line, sizeof(line));
	if (reason && child_ok(&c, "child") == PASS)
		return verdict(SKIP, "kernel assist unavailable here (%.*s)",
			       (int)(strlen(reason) - strlen(WARN_KASSIST_TAIL)), reason);
	return check_blocked_read(&c, "bpf");
}

/* kassist=off, with membarrier(2) or (without_membarrier) without. */
static enum result blocked_read_userspace(bool without_membarrier)
{
	char *env[] = { "GMP_MAXPROCS=1", "GMP_DEBUG=kassist=off,schedtrace=100",
			"SCHED_TEST_LINGER_MS=250", NULL };
	char *args[] = { "blocked_read", NULL };
	static struct child c;
	enum result r;

	if ((r = run_child_userspace(&c, env, args, without_membarrier)) != PASS)
		return r;
	if ((r = check_blocked_read(&c, "userspace")) != PASS)
		return r;
	if ((r = check_one_warning(&c)) != PASS)
		return r;
	CHECK(strstr(c.err, "kassist=off"), "the warning does not name GMP_DEBUG=kassist=off");
	return PASS;
}

static enum result t_blocked_read_userspace(void)
{
	return blocked_read_userspace(false);
}

static enum result t_blocked_read_no_membarrier(void)
{
	return blocked_read_userspace(true);
}

/* ---- without CAP_BPF ------------------------------------------------------ */

/* A command prefix that drops every capability, or NULL (why says why). */
static char *const *drop_caps_prefix(void)
{
	static char *setpriv[] = { "setpriv", "--inh-caps=-all", "--ambient-caps=-all",
				   "--bounding-set=-all", "--", NULL };
	static char *capsh[] = { "capsh", "--drop=all", "--shell=/bin/sh", "--", "-c",
				 "exec \"$0\" \"$@\"", NULL };
	static const char *dirs[] = { "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/" };
	static char path[64];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%ssetpriv", dirs[i]);
		if (access(path, X_OK) == 0)
			return setpriv[0] = path, setpriv;
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%scapsh", dirs[i]);
		if (access(path, X_OK) == 0)
			return capsh[0] = path, capsh;
	}
	verdict(SKIP, "neither setpriv nor capsh is installed");
	return NULL;
}

static enum result t_no_cap_bpf(void)
{
	char *env[] = { "GMP_MAXPROCS=1", "GMP_DEBUG=schedtrace=100", "SCHED_TEST_LINGER_MS=250", NULL };
	char *args[] = { "blocked_read", NULL };
	static struct child c;
	char *const *prefix;
	enum result r;

	if (geteuid() != 0)
		return verdict(SKIP, "not root: there is no CAP_BPF to drop");
	if (!(prefix = drop_caps_prefix()))
		return SKIP;
	if (run_child(&c, env, prefix, args, 20000) != 0)
		return verdict(FAIL, "cannot start %s: %s", prefix[0], strerror(errno));
	if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 127)
		return verdict(SKIP, "%s could not run the child: %.200s", prefix[0], c.err);
	printf("# dropped capabilities with %s\n", prefix[0]);
	if ((r = check_blocked_read(&c, "userspace")) != PASS)
		return r;
	return check_one_warning(&c);
}


/* ---- async preemption ------------------------------------------------------ */

/* TSan delivers signals only at points of its own choosing, so the runtime
 * turns async preemption off under it (runtime/src/preempt.c). */
#ifdef GMP_TSAN
#define NEED_PREEMPT() return verdict(SKIP, "async preemption is off under ThreadSanitizer")
#else
#define NEED_PREEMPT() (void)0
#endif

static enum result t_preempt_tight_loop(void)
{
	char *env[] = { "GMP_MAXPROCS=1", NULL };
	char *args[] = { "preempt", "15000", NULL };
	static struct child c;
	enum result r;
	double worst;

	NEED_PREEMPT();
	if (run_child(&c, env, NULL, args, 20000) != 0)
		return verdict(FAIL, "cannot start the child: %s", strerror(errno));
	if ((r = child_ok(&c, "preempt child")) != PASS)
		return r;
	CHECK(strncmp(c.out, "finished", 8) == 0, "the sleeper stalled behind the spinner: %s", c.out);
	CHECK(key_double(c.out, "worst_late_us", &worst), "no worst_late_us: %s", c.out);
	printf("# 100 sleeps of 1 ms beside a spinner: worst lateness %.1f ms, %lld ms in all\n",
	       worst / 1000, (long long)c.ms);
	CHECK(worst < 100000, "a 1 ms sleep was %.1f ms late (limit 100 ms)", worst / 1000);
	return PASS;
}

static enum result t_preempt_off(void)
{
	char *env[] = { "GMP_MAXPROCS=1", "GMP_DEBUG=preempt=0", NULL };
	char *args[] = { "preempt", "2000", NULL };
	static struct child c;
	enum result r;
	long progress;

	if (run_child(&c, env, NULL, args, 20000) != 0)
		return verdict(FAIL, "cannot start the child: %s", strerror(errno));
	if ((r = child_ok(&c, "preempt child")) != PASS)
		return r;
	progress = key_long(c.out, "progress", -1);
	CHECK(key_long(c.out, "spinner_started", 0) == 1, "the spinner never ran: %s", c.out);
	CHECK(strncmp(c.out, "gave_up", 7) == 0 && progress < 100,
	      "with GMP_DEBUG=preempt=0 the sleeper still finished beside the spinner: %s", c.out);
	printf("# preempt=0: the sleeper made %ld of 100 sleeps in 2 s (preempt=1 finishes)\n",
	       progress);
	return PASS;
}

/* ---- many blocking calls ------------------------------------------------- */

static enum result stress(char *const env[], bool without_membarrier)
{
	char *args[] = { "stress", NULL };
	static struct child c;
	enum result r;

	if ((r = run_child_userspace(&c, env, args, without_membarrier)) != PASS)
		return r;
	printf("# %s", c.out[0] ? c.out : "(no output)\n");
	if ((r = child_ok(&c, "stress child")) != PASS)
		return r;
	CHECK(key_long(c.out, "settle_ms", -1) >= 0,
	      "the thread count did not return to base %ld + %ld within 3 s (at %ld)",
	      key_long(c.out, "threads_base", -1), key_long(c.out, "slack", -1),
	      key_long(c.out, "threads_end", -1));
	return PASS;
}

static enum result t_stress_bpf(void)
{
	return stress(NULL, false);
}

static enum result t_stress_userspace(void)
{
	char *env[] = { "GMP_DEBUG=kassist=off", NULL };

	return stress(env, false);
}

static enum result t_stress_no_membarrier(void)
{
	char *env[] = { "GMP_DEBUG=kassist=off", NULL };

	return stress(env, true);
}

/* ---- wake-ups only where a hand-off pays --------------------------------- */

/* Two goroutines ping-pong through pipes with plain read()/write(), so each
 * switch is an armed M blocking.  Once they run on separate Ps (or one of
 * them on an M whose P was taken), no block has work waiting behind it, and
 * none may post a wake-up: each costs a self-IPI on the blocking CPU and a
 * watcher woken for nothing.  An M that armed "wake" while its P held the
 * other goroutine must not go on posting after thieves or a hand-off took
 * that goroutine away. */
static enum result t_pingpong_wakes_nobody(void)
{
	enum { ROUNDS = 20000 };
	char *env[] = { "GMP_MAXPROCS=2", "GMP_DEBUG=schedtrace=50", "SCHED_TEST_LINGER_MS=120", NULL };
	char rounds[16];
	char *args[] = { "pingpong", rounds, NULL };
	static struct child c;
	char line[4096];
	const char *reason;
	enum result r;
	long wakeups;

	snprintf(rounds, sizeof(rounds), "%d", ROUNDS);
	if (run_child(&c, env, NULL, args, 30000) != 0)
		return verdict(FAIL, "cannot start the child: %s", strerror(errno));
	if ((r = child_ok(&c, "pingpong child")) != PASS)
		return r;
	reason = fallback_reason(&c, line, sizeof(line));
	if (reason)
		return verdict(SKIP, "kernel assist unavailable here (%.*s)",
			       (int)(strlen(reason) - strlen(WARN_KASSIST_TAIL)), reason);
	CHECK(key_long(c.out, "rounds", 0) == ROUNDS, "no result line: %s", c.out);
	CHECK(last_sched_line(c.err, line, sizeof(line)), "no schedtrace line on stderr");
	wakeups = key_long(line, "kwakeups", -1);
	CHECK(wakeups >= 0 && wakeups <= ROUNDS / 20,
	      "kwakeups=%ld for %d round trips (%d blocks): blocks with nothing to hand off "
	      "posted wake-ups: %s", wakeups, ROUNDS, 2 * ROUNDS, line);
	printf("# %d round trips, %ld ns each, kwakeups=%ld, handoffs=%ld\n", ROUNDS,
	       key_long(c.out, "ns_per_round", -1), wakeups, key_long(line, "handoffs", -1));
	return PASS;
}

/* ---- two processes ---------------------------------------------------------- */

/* One pair child's own checks: correct, progressed while blocked, and its
 * handoffs are its own blockers', not the other process's. */
static enum result check_pair(const struct child *c, const char *name, long blockers)
{
	char line[4096];
	long handoffs;
	enum result r = child_ok(c, name);

	if (r != PASS)
		return r;
	CHECK(key_long(c->out, "blockers", 0) == blockers, "%s: no result line: %s", name, c->out);
	CHECK(key_long(c->out, "ticks", 0) >= 10, "%s: its ticker made %ld ticks in 1.5 s while its "
	      "readers were blocked", name, key_long(c->out, "ticks", 0));
	CHECK(key_long(c->out, "threads_while_blocked", 0) > blockers,
	      "%s: %ld threads for %ld blocked readers", name,
	      key_long(c->out, "threads_while_blocked", 0), blockers);
	CHECK(last_sched_line(c->err, line, sizeof(line)), "%s: no schedtrace line", name);
	handoffs = key_long(line, "handoffs", -1);
	CHECK(handoffs >= blockers && handoffs <= blockers + 30,
	      "%s: handoffs=%ld for its %ld blocked readers: %s", name, handoffs, blockers, line);
	printf("# %s: %ld readers blocked, %ld threads, %ld ticks, handoffs=%ld\n", name, blockers,
	       key_long(c->out, "threads_while_blocked", 0), key_long(c->out, "ticks", 0), handoffs);
	return PASS;
}

/* ---- no thread for a spare M ------------------------------------------ */

#define WARN_NO_THREAD "gmprt: warning: cannot start a thread ("

/* Spare Ms cannot start (RLIMIT_NPROC as uid nobody): one warning line, the
 * failures counted in schedtrace's mfail=, nothing lost, and once the limit
 * is lifted sysmon's retry gives the stranded P a thread again before the
 * blocked readers come back. */
static enum result t_no_threads(void)
{
	char *env[] = { "GMP_MAXPROCS=1", "GMP_DEBUG=schedtrace=50", "SCHED_TEST_LINGER_MS=150", NULL };
	char *args[] = { "no_threads", NULL };
	static struct child c;
	char line[4096];
	enum result r;
	long at_raise, before_release, mfail;

	if (geteuid() != 0)
		return verdict(SKIP, "needs root to become an unprivileged uid with a thread limit");
	if (run_child(&c, env, NULL, args, 20000) != 0)
		return verdict(FAIL, "cannot start the child: %s", strerror(errno));
	if ((r = child_ok(&c, "no_threads child")) != PASS)
		return r;
	CHECK(count_lines(c.err, WARN_NO_THREAD) == 1, "want one '%s...' line, got %d: %.300s",
	      WARN_NO_THREAD, count_lines(c.err, WARN_NO_THREAD), c.err);
	CHECK(last_sched_line(c.err, line, sizeof(line)), "no schedtrace line on stderr");
	mfail = key_long(line, "mfail", -1);
	CHECK(mfail >= 1, "schedtrace mfail=%ld, want >= 1: %s", mfail, line);
	at_raise = key_long(c.out, "ticks_at_raise", -1);
	before_release = key_long(c.out, "ticks_before_release", -1);
	CHECK(at_raise >= 0 && before_release - at_raise >= 10,
	      "the ticker did not run again once threads could start (ticks %ld then %ld): %s",
	      at_raise, before_release, c.out);
	printf("# mfail=%ld, ticks %ld at the raise, %ld 250 ms later\n", mfail, at_raise,
	       before_release);
	return PASS;
}

static enum result t_two_processes(void)
{
	char *env[] = { "GMP_MAXPROCS=1", "GMP_DEBUG=schedtrace=100", NULL };
	char *args_a[] = { "pair", "20", "1500", NULL }, *args_b[] = { "pair", "60", "1500", NULL };
	static struct child a, b;
	struct child *both[] = { &a, &b };
	char line[512];
	enum result r;

	if (child_start(&a, env, NULL, args_a) != 0 || child_start(&b, env, NULL, args_b) != 0)
		return verdict(FAIL, "cannot start the children: %s", strerror(errno));
	children_wait(both, 2, 20000);
	if ((r = check_pair(&a, "process A", 20)) != PASS || (r = check_pair(&b, "process B", 60)) != PASS)
		return r;
	CHECK(key_long(a.out, "t_blocked", 0) < key_long(b.out, "t_release", 0) &&
	      key_long(b.out, "t_blocked", 0) < key_long(a.out, "t_release", 0),
	      "the two blocked windows did not overlap");
	printf("# path: %s\n", fallback_reason(&a, line, sizeof(line)) ? "userspace" : "bpf");
	return PASS;
}

/* ---- runner -------------------------------------------------------------- */

static const struct test {
	const char *name;
	enum result (*fn)(void);
} tests[] = {
	{ "blocked_read_bpf", t_blocked_read_bpf },
	{ "blocked_read_userspace", t_blocked_read_userspace },
	{ "no_cap_bpf_fallback", t_no_cap_bpf },
	{ "blocked_read_no_membarrier", t_blocked_read_no_membarrier },
	{ "preempt_tight_loop", t_preempt_tight_loop },
	{ "preempt_off_spinner_keeps_p", t_preempt_off },
	{ "stress_100k_blocking_calls", t_stress_bpf },
	{ "stress_100k_blocking_calls_userspace", t_stress_userspace },
	{ "stress_100k_blocking_calls_no_membarrier", t_stress_no_membarrier },
	{ "pingpong_wakes_nobody", t_pingpong_wakes_nobody },
	{ "two_processes", t_two_processes },
	{ "no_thread_for_spare_m", t_no_threads },
};

#define NTESTS (int)(sizeof(tests) / sizeof(tests[0]))

static bool selected(const char *name)
{
	const char *list = getenv("SCHED_TESTS");
	size_t len = strlen(name);

	if (!list || !*list)
		return true;
	for (const char *p = strstr(list, name); p; p = strstr(p + 1, name))
		if ((p == list || p[-1] == ',') && (p[len] == 0 || p[len] == ','))
			return true;
	return false;
}

static enum result run_one(const struct test *t)
{
	if (!selected(t->name))
		return verdict(SKIP, "not in SCHED_TESTS");
	why[0] = 0;
	nran = 0;
	return t->fn();
}

/* After a failure: what each child of the case printed (its tail). */
static void show_children(void)
{
	for (int i = 0; i < nran; i++) {
		const char *err = ran[i]->err;
		size_t len = ran[i]->err_len;
		int lines = 0;

		while (len > 0 && lines < 12)
			if (err[--len] == '\n' && len + 1 < ran[i]->err_len)
				lines++;
		diag_block("stdout", ran[i]->out, 6);
		diag_block("stderr", err + (len ? len + 1 : 0), 12);
	}
}

int main(int argc, char **argv)
{
	int failed = 0, skipped = 0;
	ssize_t n;

	if (argc >= 3 && strcmp(argv[1], "--child") == 0)
		return sched_work_main(argc - 1, argv + 1);
	if (argc >= 3 && strcmp(argv[1], "--no-membarrier") == 0)
		return run_without_membarrier(argv + 2);
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		return 1;
	self_exe[n] = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..%d\n", NTESTS);
	for (int i = 0; i < NTESTS; i++) {
		enum result r = run_one(&tests[i]);

		if (r == SKIP) {
			printf("ok %d %s # SKIP %s\n", i + 1, tests[i].name, why);
			skipped++;
		} else if (r == PASS) {
			printf("ok %d %s\n", i + 1, tests[i].name);
		} else {
			printf("# %s\n", why);
			show_children();
			printf("not ok %d %s\n", i + 1, tests[i].name);
			failed++;
		}
	}
	if (failed)
		return 1;
	return skipped == NTESTS ? 4 : 0;
}
