/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * kassist_test.c - selftest of kernel assist without the scheduler: the
 * loader (runtime/src/kassist.o) and the sched_switch program, driven by
 * plain pthreads.  Prints TAP (kselftest style); tests that need CAP_BPF or
 * setpriv are skipped with the reason when the machine cannot run them.
 *
 * KASSIST_TESTS=name,name runs only those tests (the others SKIP).
 *
 * The binary re-executes itself as a child ("--child MODE") for the cases
 * that need a fresh process: kassist=off, no capabilities, a second
 * instance of the program.  Exit status: 0 all passed or skipped, 1 a test
 * failed, 4 everything was skipped (kselftest's KSFT_SKIP).
 */
#include "runtime.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kassist.h"
#include "task_state.h"

#define MS (1000 * 1000LL)
#define WARN_HEAD "gmprt: warning: kernel assist unavailable ("
#define WARN_TAIL "); using the userspace path\n"

enum result { PASS, FAIL, SKIP };

static char why[512];		/* the failing check or the skip reason */
static char self_exe[4096];	/* this binary, for re-execution */
static bool bpf_ok;		/* kassist_init succeeded in this process */

static enum result fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static enum result skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static enum result fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return FAIL;
}

static enum result skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return SKIP;
}

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond))                                                      \
			return fail(__VA_ARGS__);                                 \
	} while (0)

#define NEED_BPF()                                                                \
	do {                                                                      \
		if (!bpf_ok)                                                      \
			return skip("kernel assist not live: %s", kassist_detail()); \
	} while (0)

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int gettid_(void)
{
	return (int)syscall(SYS_gettid);
}

/* Poll until the task sleeps in the kernel ('S'), for up to 5 s. */
static bool wait_sleeping(int pid, int tid)
{
	for (int64_t end = now_ns() + 5000 * MS; now_ns() < end; sleep_ns(MS / 2))
		if (task_state(pid, tid) == 'S')
			return true;
	return false;
}

/* ---- a thread that registers and blocks in read() on an empty pipe -------- */

struct blocker {
	bool arm;			/* arm the slot around the first read */
	bool exit_registered;		/* exit without unregistering */
	bool started;			/* the thread exists */
	int64_t spin_ns;		/* busy-loop this long, armed, before reading */
	int wake[2];			/* a byte here ends the first (armed) read */
	int release[2];			/* a byte here ends the second (disarmed) read */
	pthread_t thread;
	_Atomic int tid;
	struct kassist_slot *_Atomic slot;
	_Atomic int stage;		/* 1: about to block; 2: woke and disarmed */
	_Atomic int64_t t_block;	/* now_ns() just before the first read */
	_Atomic int64_t t_woke;		/* now_ns() just after it */
};

static void *blocker_main(void *arg)
{
	struct blocker *b = arg;
	struct kassist_slot *s;
	char c;

	b->tid = gettid_();
	s = kassist_register(b->tid);
	b->slot = s;
	if (b->arm)
		kassist_arm(s);
	for (int64_t end = now_ns() + b->spin_ns; now_ns() < end;)
		;
	b->t_block = now_ns();
	b->stage = 1;
	if (read(b->wake[0], &c, 1) != 1)
		abort();
	kassist_disarm(s);
	b->t_woke = now_ns();
	b->stage = 2;
	if (read(b->release[0], &c, 1) != 1)
		abort();
	if (!b->exit_registered)
		kassist_unregister(s);
	return NULL;
}

static bool wait_stage(struct blocker *b, int stage)
{
	for (int64_t end = now_ns() + 5000 * MS; now_ns() < end; sleep_ns(MS / 10))
		if (b->stage >= stage)
			return true;
	return false;
}

static bool blocker_launch(struct blocker *b, bool arm, int64_t spin_ns)
{
	memset(b, 0, sizeof(*b));
	b->arm = arm;
	b->spin_ns = spin_ns;
	if (pipe(b->wake) || pipe(b->release))
		return false;
	if (pthread_create(&b->thread, NULL, blocker_main, b))
		return false;
	b->started = true;
	return true;
}

/* Launch and wait until it sleeps in its first read(). */
static bool blocker_start(struct blocker *b, bool arm)
{
	return blocker_launch(b, arm, 0) && wait_stage(b, 1) && wait_sleeping(getpid(), b->tid);
}

static void poke(int fd)
{
	if (write(fd, "x", 1) != 1)
		abort();
}

static void blocker_stop(struct blocker *b)
{
	if (!b->started)
		return;
	if (b->stage < 2)
		poke(b->wake[1]);
	poke(b->release[1]);
	pthread_join(b->thread, NULL);
	close(b->wake[0]), close(b->wake[1]);
	close(b->release[0]), close(b->release[1]);
}

/* ---- tests ---------------------------------------------------------------- */

static enum result t_loads(void)
{
	if (!bpf_ok)
		return skip("%s", kassist_detail());
	CHECK(strcmp(kassist_mode_name(), "bpf") == 0, "mode %s", kassist_mode_name());
	printf("# attached %s\n", kassist_detail());
	return PASS;
}

/* Start an armed blocker b and check what the slot and the ring say while
 * it sleeps in read(); b keeps sleeping afterwards. */
static enum result armed_block_checks(struct blocker *b)
{
	struct kassist_event ev[8];
	struct kassist_slot *s;
	int64_t got_event_at;
	uint64_t off;
	int n;

	/* the blocker spins 2 ms (armed, on CPU) first, so we are already
	 * asleep in kassist_wait when it blocks: that times a real wake-up */
	if (!blocker_launch(b, true, 2 * MS))
		return fail("pthread_create failed");
	n = kassist_wait(5000 * MS, ev, 8);
	got_event_at = now_ns();
	CHECK(n >= 1, "kassist_wait returned %d", n);
	CHECK(wait_stage(b, 1) && wait_sleeping(getpid(), b->tid), "blocker did not sleep");
	s = b->slot;
	CHECK(s != NULL, "kassist_register returned NULL");
	off = kassist_slot_off_since(s, NULL);
	CHECK(off != 0, "no off-CPU stamp in the slot (seq %llu)", (unsigned long long)s->seq);
	CHECK((int64_t)off >= b->t_block, "off-CPU stamp %llu before the read (%lld)",
	      (unsigned long long)off, (long long)b->t_block);
	CHECK((int64_t)off - b->t_block < 10 * MS, "off-CPU stamp %lld ns after the read",
	      (long long)((int64_t)off - b->t_block));
	CHECK(ev[0].tid == (uint32_t)b->tid, "event tid %u, want %d", ev[0].tid, b->tid);
	CHECK(ev[0].seq & 1, "event seq %llu is even", (unsigned long long)ev[0].seq);
	CHECK(ev[0].off_ns == off, "event off_ns differs from the slot's");
	CHECK(kassist_slot_at(ev[0].slot) == s && kassist_slot_index(s) == (int)ev[0].slot,
	      "event slot index %u", ev[0].slot);
	printf("# off-CPU stamp %.1f us after read() began; event in hand %.1f us after the stamp "
	       "(left cpu %u, state %#x)\n", ((int64_t)off - b->t_block) / 1e3,
	       (got_event_at - (int64_t)off) / 1e3, ev[0].cpu, ev[0].prev_state);
	return PASS;
}

static enum result armed_block(struct blocker *b)
{
	enum result r;

	kassist_wait_begin();
	r = armed_block_checks(b);
	kassist_wait_end();
	return r;
}

static enum result t_armed_block_recorded(void)
{
	struct blocker b;
	struct kassist_slot *s;
	uint64_t seq_on;
	enum result r;

	NEED_BPF();
	r = armed_block(&b);
	if (r != PASS) {
		blocker_stop(&b);
		return r;
	}
	s = b.slot;
	poke(b.wake[1]);
	CHECK(wait_stage(&b, 2), "blocker did not wake");
	CHECK(!(s->seq & 1), "seq %llu still odd after the read returned", (unsigned long long)s->seq);
	CHECK(s->off_ns == 0, "off_ns still set after the read returned");
	CHECK(s->on_ns >= (uint64_t)b.t_block && s->on_ns <= (uint64_t)b.t_woke,
	      "on_ns %llu outside [%lld, %lld]", (unsigned long long)s->on_ns,
	      (long long)b.t_block, (long long)b.t_woke);
	CHECK(s->blocked_ns > 0 && s->nevents == 1, "blocked_ns %llu nevents %llu",
	      (unsigned long long)s->blocked_ns, (unsigned long long)s->nevents);
	seq_on = s->seq;
	/* now disarmed, it blocks on the release pipe: that must not count */
	CHECK(wait_sleeping(getpid(), b.tid), "blocker did not block again");
	sleep_ns(20 * MS);
	CHECK(s->seq == seq_on, "a disarmed block changed seq %llu -> %llu",
	      (unsigned long long)seq_on, (unsigned long long)s->seq);
	blocker_stop(&b);
	CHECK(s->tid == 0, "slot still owned after unregister");
	return PASS;
}

/* A thread that runs while its slot says "off CPU" (an odd seq with off_ns
 * set: what a switch back in that the program did not record leaves)
 * records that switch itself (kassist_slot_on, which the runtime calls at
 * its next entry): seq even, off_ns 0, no retaker sees the block as going
 * on, and the program goes on recording real blocks from there. */
static enum result t_stale_off_recorded_by_the_thread(void)
{
	struct kassist_slot *s;
	uint64_t seq;

	NEED_BPF();
	s = kassist_register((int)syscall(SYS_gettid));
	CHECK(s, "kassist_register failed");
	seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
	CHECK(!(seq & 1), "a fresh slot has odd seq %llu", (unsigned long long)seq);
	__atomic_store_n(&s->off_ns, (uint64_t)now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELEASE);
	CHECK(kassist_slot_off_since(s, NULL) != 0, "the stale block is not seen as one");
	CHECK(kassist_slot_on(s, seq + 1) == seq + 2, "kassist_slot_on did not return seq + 2");
	CHECK(s->seq == seq + 2 && s->off_ns == 0, "seq %llu off_ns %llu after kassist_slot_on",
	      (unsigned long long)s->seq, (unsigned long long)s->off_ns);
	CHECK(kassist_slot_off_since(s, NULL) == 0, "still seen off CPU");
	CHECK(kassist_slot_on(s, seq + 2) == seq + 2 && s->seq == seq + 2,
	      "kassist_slot_on changed an even seq");
	kassist_arm(s);
	sleep_ns(2 * MS);
	kassist_disarm(s);
	CHECK(s->seq >= seq + 4 && !(s->seq & 1), "an armed sleep after it: seq %llu, want %llu",
	      (unsigned long long)s->seq, (unsigned long long)(seq + 4));
	kassist_unregister(s);
	return PASS;
}

static enum result t_unarmed_block_silent(void)
{
	struct kassist_event ev;
	struct blocker b;
	uint64_t seq;
	int n;

	NEED_BPF();
	kassist_wait_begin();
	if (!blocker_start(&b, false)) {
		kassist_wait_end();
		return fail("blocker thread did not start and sleep");
	}
	CHECK(b.slot != NULL, "kassist_register returned NULL");
	seq = b.slot->seq;
	sleep_ns(50 * MS);
	n = kassist_wait(0, &ev, 1);
	kassist_wait_end();
	CHECK(n == -ETIMEDOUT, "an unarmed block posted something (kassist_wait %d)", n);
	CHECK(b.slot->seq == seq && kassist_slot_off_since(b.slot, NULL) == 0,
	      "an unarmed block was recorded");
	blocker_stop(&b);
	return PASS;
}

/* A process that reads a pipe byte by byte: it blocks once per byte. */
static pid_t spawn_reader(int fds[2])
{
	pid_t pid;
	char c;

	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(fds[1]);
		while (read(fds[0], &c, 1) == 1)
			;
		_exit(0);
	}
	close(fds[0]);
	return pid;
}

static enum result t_other_process_ignored(void)
{
	struct kassist_event ev;
	struct kassist_slot *s;
	int fds[2], n, status;
	uint64_t seq;
	pid_t pid;

	NEED_BPF();
	pid = spawn_reader(fds);
	CHECK(pid > 0, "fork: %s", strerror(errno));
	/* register and arm the child's tid in our table: only the tgid filter
	 * keeps its switches out */
	s = kassist_register(pid);
	CHECK(s != NULL, "kassist_register(child) returned NULL");
	kassist_arm(s);
	seq = s->seq;
	kassist_wait_begin();
	for (int i = 0; i < 20; i++) {
		wait_sleeping(pid, pid);
		poke(fds[1]);
		sleep_ns(MS);
	}
	wait_sleeping(pid, pid);
	n = kassist_wait(10 * MS, &ev, 1);
	kassist_wait_end();
	close(fds[1]);
	waitpid(pid, &status, 0);
	CHECK(s->seq == seq && s->off_ns == 0 && s->on_ns == 0,
	      "another process's thread was recorded (seq %llu -> %llu)",
	      (unsigned long long)seq, (unsigned long long)s->seq);
	CHECK(n == -ETIMEDOUT, "another process's thread posted an event (%d)", n);
	kassist_unregister(s);
	return PASS;
}

static enum result t_fork_child_detached(void)
{
	struct blocker b;
	int status;
	pid_t pid;

	NEED_BPF();
	if (!blocker_start(&b, false))
		return fail("blocker thread did not start and sleep");
	pid = fork();
	if (pid == 0) {
		/* the child must not be live, nor write the parent's slots */
		bool ok = !kassist_live && strcmp(kassist_mode_name(), "userspace") == 0 &&
			  kassist_register(gettid_()) == NULL;
		kassist_arm(b.slot);
		_exit(ok ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child still saw kassist live");
	CHECK(b.slot->armed == 0, "fork child armed the parent's slot");
	CHECK(kassist_live, "parent lost kernel assist after fork");
	blocker_stop(&b);
	return PASS;
}

static bool exited_flag(const struct kassist_slot *s, int64_t timeout)
{
	for (int64_t end = now_ns() + timeout; now_ns() < end; sleep_ns(MS / 10))
		if (__atomic_load_n(&s->flags, __ATOMIC_ACQUIRE) & KASSIST_SLOT_EXITED)
			return true;
	return false;
}

static enum result t_thread_exit_flagged(void)
{
	struct sched_param rt = { .sched_priority = 1 };
	struct kassist_slot *s;
	struct blocker b;
	bool is_rt;

	NEED_BPF();
	if (!blocker_start(&b, false))
		return fail("blocker thread did not start and sleep");
	b.exit_registered = true;
	s = b.slot;
	CHECK(s != NULL, "kassist_register returned NULL");
	/* pthread_join returns when the kernel clears the thread's tid, before
	 * its last switch; a CFS thread preempted in between has been seen to
	 * wait 20 s for that switch here under load.  SCHED_FIFO makes it prompt. */
	is_rt = pthread_setschedparam(b.thread, SCHED_FIFO, &rt) == 0;
	blocker_stop(&b);
	if (!exited_flag(s, 20000 * MS) && !is_rt)
		return skip("no SCHED_FIFO, and the dead thread's last switch did not come within 20 s");
	CHECK(s->flags & KASSIST_SLOT_EXITED, "a dead registered thread was not flagged");
	CHECK(s->tid == (uint32_t)b.tid, "slot of the dead thread was freed behind our back");
	CHECK(s->armed == 0, "a dead thread's slot is still armed");
	/* a new thread that reuses the tid gets the stale slot, cleaned */
	CHECK(kassist_register(b.tid) == s && s->flags == 0, "a reused tid did not get a clean slot");
	kassist_unregister(s);
	CHECK(s->tid == 0, "unregister left the slot owned");
	return PASS;
}

static enum result t_full_table_degrades(void)
{
	static struct kassist_slot *taken[KASSIST_NSLOTS];
	int n = 0;
	bool full = false;

	NEED_BPF();
	/* tids no process of ours has: inert, the tgid filter drops them */
	for (int tid = 1 << 30; n < KASSIST_NSLOTS; tid++) {
		struct kassist_slot *s = kassist_register(tid);
		if (!s) {
			full = true;
			break;
		}
		taken[n++] = s;
	}
	if (!full)
		full = kassist_register((1 << 30) + KASSIST_NSLOTS + 1) == NULL;
	for (int i = 0; i < n; i++)
		kassist_unregister(taken[i]);
	CHECK(full, "the table never filled");
	CHECK(n > KASSIST_NSLOTS - 8, "only %d slots could be taken", n);
	struct kassist_slot *again = kassist_register(gettid_());
	CHECK(again != NULL, "no slot after freeing the table");
	kassist_unregister(again);
	return PASS;
}

/* One load of a forced variant: an armed block is recorded and posted, the
 * wake-up is recorded. */
static enum result variant_round(enum kassist_twin twin, bool task_state, const char *section)
{
	struct blocker b;
	enum result r;

	kassist_fini();
	kassist_force(twin, task_state);
	CHECK(kassist_init(KASSIST_AUTO) == 0, "did not load: %s", kassist_detail());
	CHECK(strcmp(kassist_detail(), section) == 0, "attached %s", kassist_detail());
	printf("# %s, prev_state from the %s\n", section, task_state ? "task" : "tracepoint");
	r = armed_block(&b);
	if (r == PASS) {
		poke(b.wake[1]);
		if (!wait_stage(&b, 2) || (b.slot->seq & 1) || b.slot->on_ns < (uint64_t)b.t_block)
			r = fail("the wake-up was not recorded");
	}
	blocker_stop(&b);
	return r;
}

static enum result t_every_variant_records(void)
{
	static const struct {
		enum kassist_twin twin;
		bool task_state;
		const char *section;
	} v[] = {
		{ KASSIST_TWIN_TP_BTF, false, "tp_btf/sched_switch" },
		{ KASSIST_TWIN_TP_BTF, true, "tp_btf/sched_switch" },
		{ KASSIST_TWIN_RAW_TP, false, "raw_tp/sched_switch" },
		{ KASSIST_TWIN_RAW_TP, true, "raw_tp/sched_switch" },
	};
	enum result r = PASS;

	NEED_BPF();
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]) && r == PASS; i++)
		r = variant_round(v[i].twin, v[i].task_state, v[i].section);
	kassist_fini();
	kassist_force(KASSIST_TWIN_PROBE, false);
	bpf_ok = kassist_init(KASSIST_AUTO) == 0;
	CHECK(bpf_ok, "default reload failed: %s", kassist_detail());
	return r;
}

/* ---- children ------------------------------------------------------------- */

/* The fallback a child must see when kernel assist is off. */
static int child_fallback(int mode)
{
	struct kassist_slot *s;
	int err = kassist_init(mode);

	if (err >= 0 || kassist_init(mode) != err)
		return 1;
	if (strcmp(kassist_mode_name(), "userspace") != 0 || kassist_live)
		return 2;
	s = kassist_register(gettid_());
	if (s)
		return 3;
	kassist_arm(s);
	kassist_disarm(s);
	kassist_wait_begin();
	if (kassist_wait(MS, NULL, 0) != -ENODEV)
		return 4;
	kassist_wait_end();
	kassist_unregister(s);
	return 0;
}

/* A second process with its own program instance: the armed-block checks. */
static int child_peer(void)
{
	struct blocker b;
	enum result r;

	if (kassist_init(KASSIST_AUTO) != 0)
		return 10;
	r = armed_block(&b);
	blocker_stop(&b);
	if (r != PASS)
		fprintf(stderr, "peer: %s\n", why);
	return r == PASS ? 0 : 11;
}

static int child_main(const char *mode)
{
	if (strcmp(mode, "off") == 0)
		return child_fallback(KASSIST_OFF);
	if (strcmp(mode, "nocap") == 0)
		return child_fallback(KASSIST_AUTO);
	if (strcmp(mode, "peer") == 0)
		return child_peer();
	return 99;
}

/* Run argv with stderr captured into err (NUL-terminated); returns the
 * wait status, or -1. */
static int run_captured(char *const argv[], char *err, size_t errlen)
{
	int fds[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	while (len + 1 < errlen && (n = read(fds[0], err + len, errlen - 1 - len)) > 0)
		len += (size_t)n;
	err[len] = 0;
	close(fds[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return status;
}

/* err holds exactly one line: the kernel-assist warning naming reason. */
static enum result check_one_warning(const char *err, const char *reason)
{
	const char *nl = strchr(err, '\n');

	CHECK(nl && nl[1] == 0, "want exactly one stderr line, got: %s", err);
	CHECK(strncmp(err, WARN_HEAD, strlen(WARN_HEAD)) == 0, "unexpected line: %s", err);
	CHECK(strlen(err) > strlen(WARN_TAIL) &&
	      strcmp(err + strlen(err) - strlen(WARN_TAIL), WARN_TAIL) == 0, "unexpected line: %s", err);
	CHECK(strstr(err, reason) != NULL, "reason is not '%s': %s", reason, err);
	return PASS;
}

static enum result t_kassist_off_warns(void)
{
	char *argv[] = { self_exe, "--child", "off", NULL };
	char err[2048];
	int status = run_captured(argv, err, sizeof(err));

	CHECK(status >= 0 && WIFEXITED(status), "child did not exit (status %d)", status);
	CHECK(WEXITSTATUS(status) == 0, "fallback check %d failed; stderr: %s", WEXITSTATUS(status), err);
	return check_one_warning(err, "(disabled by GMP_DEBUG=kassist=off)");
}

static enum result t_no_cap_bpf_warns(void)
{
	char *argv[] = { "/usr/bin/setpriv", "--inh-caps=-all", "--ambient-caps=-all",
			 "--bounding-set=-all", "--", self_exe, "--child", "nocap", NULL };
	char err[2048];
	int status;

	if (access(argv[0], X_OK) != 0)
		return skip("setpriv not installed");
	status = run_captured(argv, err, sizeof(err));
	CHECK(status >= 0 && WIFEXITED(status), "child did not exit (status %d)", status);
	if (WEXITSTATUS(status) == 127)
		return skip("setpriv could not drop capabilities: %s", err);
	CHECK(WEXITSTATUS(status) == 0, "fallback check %d failed; stderr: %s", WEXITSTATUS(status), err);
	return check_one_warning(err, "(no CAP_BPF and CAP_PERFMON)");
}

static enum result t_two_processes(void)
{
	char *argv[] = { self_exe, "--child", "peer", NULL };
	struct kassist_slot *s;
	struct blocker b;
	char err[2048];
	uint64_t seq;
	int status;

	NEED_BPF();
	/* our own armed M stays blocked while the peer loads and runs */
	if (!blocker_start(&b, true))
		return fail("blocker thread did not start and sleep");
	s = b.slot;
	seq = s->seq;
	status = run_captured(argv, err, sizeof(err));
	CHECK(s->seq == seq && (seq & 1), "our blocked M's slot changed while the peer ran");
	blocker_stop(&b);
	CHECK(status >= 0 && WIFEXITED(status), "peer did not exit (status %d)", status);
	CHECK(WEXITSTATUS(status) == 0, "peer failed (%d): %s", WEXITSTATUS(status), err);
	CHECK(err[0] == 0, "peer printed: %s", err);
	return PASS;
}

/* ---- runner --------------------------------------------------------------- */

static const struct test {
	const char *name;
	enum result (*fn)(void);
} tests[] = {
	{ "loads_and_attaches", t_loads },
	{ "armed_block_recorded_and_posted", t_armed_block_recorded },
	{ "unarmed_block_not_recorded", t_unarmed_block_silent },
	{ "stale_off_recorded_by_the_thread", t_stale_off_recorded_by_the_thread },
	{ "other_process_never_recorded", t_other_process_ignored },
	{ "fork_child_detached", t_fork_child_detached },
	{ "thread_exit_flagged", t_thread_exit_flagged },
	{ "full_table_degrades", t_full_table_degrades },
	{ "two_processes_own_instances", t_two_processes },
	{ "every_twin_and_state_source_records", t_every_variant_records },
	{ "kassist_off_warns_and_falls_back", t_kassist_off_warns },
	{ "no_cap_bpf_warns_and_falls_back", t_no_cap_bpf_warns },
};

int main(int argc, char **argv)
{
	int n = (int)(sizeof(tests) / sizeof(tests[0])), failed = 0, skipped = 0;
	const char *only = getenv("KASSIST_TESTS"); /* test names to run */
	ssize_t len;

	if (argc == 3 && strcmp(argv[1], "--child") == 0)
		return child_main(argv[2]);
	len = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (len <= 0)
		return 1;
	self_exe[len] = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(120);
	printf("TAP version 13\n1..%d\n", n);
	bpf_ok = kassist_init(KASSIST_AUTO) == 0;
	for (int i = 0; i < n; i++) {
		enum result r;

		why[0] = 0;
		r = only && !strstr(only, tests[i].name) ? skip("not in KASSIST_TESTS") : tests[i].fn();
		if (r == SKIP) {
			printf("ok %d %s # SKIP %s\n", i + 1, tests[i].name, why);
			skipped++;
		} else if (r == FAIL) {
			printf("# %s\nnot ok %d %s\n", why, i + 1, tests[i].name);
			failed++;
		} else {
			printf("ok %d %s\n", i + 1, tests[i].name);
		}
	}
	kassist_fini();
	printf("# Totals: pass:%d fail:%d skip:%d\n", n - failed - skipped, failed, skipped);
	return failed ? 1 : skipped == n ? 4 : 0;
}
