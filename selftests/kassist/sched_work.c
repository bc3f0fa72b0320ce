/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * sched_work.c - the workloads of the scheduler-level kernel-assist
 * selftest (sched_test.c runs each in a fresh child process, so GMP_*
 * variables apply from the start).  It owns what happens inside a child:
 *
 *   blocked_read      a goroutine blocked in plain read() on an empty pipe
 *                     must not hold the only P: main and then another
 *                     goroutine run while it sleeps; a write releases it.
 *   preempt MS        a goroutine spinning with no calls must be preempted:
 *                     a sleeper's 100 x 1 ms sleeps keep finishing.  After MS
 *                     a watchdog thread gives up and prints the progress.
 *   stress            1,000 goroutines x 100 blocking calls (pipe read(),
 *                     pread() on /dev/shm, syscall(SYS_nanosleep)).
 *   pair N HOLD_MS    N goroutines blocked in read() at once for HOLD_MS
 *                     while a ticker keeps running; run twice side by side.
 *   pingpong ROUNDS   two goroutines ping-pong a byte ROUNDS times through
 *                     two pipes with plain read()/write(): every switch is
 *                     an armed M blocking in the kernel.
 *   no_threads        (root) the process becomes uid nobody with
 *                     RLIMIT_NPROC at its thread count, so spare Ms cannot
 *                     start while goroutines block in read(); a plain
 *                     thread lifts the limit, and the ticker must run
 *                     again before the readers are released.
 *
 * A child prints "key=value ..." lines on stdout for the parent to check,
 * a reason on stderr ("sched_work: ...") when something is wrong, and
 * exits 0 when its own checks passed.  Only the public API (gmprt.h) is
 * used, plus plain libc calls that block in the kernel.
 */
#define _GNU_SOURCE /* setresuid */
#include <gmprt.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "task_state.h"

#define MS (1000 * 1000LL)

int sched_work_main(int argc, char **argv);

/* ---- helpers ------------------------------------------------------------- */

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the reason on stderr and return the child's failure status. */
static int die(const char *fmt, ...)
{
	va_list ap;

	fputs("sched_work: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int tid_self(void)
{
	return (int)syscall(SYS_gettid);
}

/* Threads: from /proc/self/status, or -1. */
static int thread_count(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Threads:", 8) == 0)
			n = atoi(line + 8);
	fclose(f);
	return n;
}

/* Poll (parking between looks) until tid sleeps in the kernel. */
static bool wait_task_sleeping(int tid, int64_t timeout_ns)
{
	for (int64_t end = gmp_now() + timeout_ns; gmp_now() < end; gmp_sleep(MS / 2))
		if (task_state(getpid(), tid) == 'S')
			return true;
	return false;
}

/* Plain read() of exactly one byte, retried on EINTR (SIGURG may hit it). */
static int read_byte(int fd, char *c)
{
	ssize_t n;

	do
		n = read(fd, c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

static int write_byte(int fd, char c)
{
	ssize_t n;

	do
		n = write(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* ---- blocked_read -------------------------------------------------------- */

struct reader {
	int fd;
	_Atomic int tid;
	_Atomic int stage;		/* 1: about to read; 2: read returned; 3: done */
	_Atomic int64_t t_read;		/* gmp_now() just before read() */
	char got;
	int after_ok;			/* it carried on: yield, sleep, channel */
	gmp_waitgroup done;
};

static void reader_main(void *arg)
{
	struct reader *r = arg;
	gmp_chan *c = gmp_chan_make(sizeof(int), 1);
	int v = 7, w = 0;

	r->tid = tid_self();
	r->t_read = gmp_now();
	r->stage = 1;
	if (read_byte(r->fd, &r->got) != 0)
		r->got = 0;
	r->stage = 2;
	/* carry on as after Go's exitsyscall: park, yield, use a channel */
	gmp_yield();
	gmp_sleep(MS);
	if (c && gmp_chan_send(c, &v) == 0 && gmp_chan_recv(c, &w) == 1 && w == 7)
		r->after_ok = 1;
	gmp_chan_free(c);
	r->stage = 3;
	gmp_wg_done(&r->done);
}

struct bystander {
	struct reader *r;
	int reader_stage_seen;
	gmp_waitgroup done;
};

static void bystander_main(void *arg)
{
	struct bystander *b = arg;

	b->reader_stage_seen = b->r->stage;
	gmp_wg_done(&b->done);
}

/* main parks so the reader runs; it comes back only if the P was handed
 * away from the blocked reader.  Returns the ns from read() to main back. */
static int64_t let_reader_block(struct reader *r)
{
	gmp_yield();
	while (r->stage == 0)
		gmp_sleep(MS / 10);
	return gmp_now() - r->t_read;
}

static int work_blocked_read(void)
{
	struct reader r = { 0 };
	struct bystander b = { 0 };
	int fds[2];
	int64_t back_ns;

	if (pipe(fds) != 0)
		return die("pipe: %s", strerror(errno));
	r.fd = fds[0];
	gmp_wg_add(&r.done, 1);
	if (gmp_go(reader_main, &r) <= 0)
		return die("gmp_go(reader) failed");
	back_ns = let_reader_block(&r);
	if (r.stage != 1)
		return die("the reader returned from read() of an empty pipe (stage %d)", (int)r.stage);
	if (!wait_task_sleeping(r.tid, 5000 * MS))
		return die("the reader's thread %d never slept in the kernel", (int)r.tid);
	b.r = &r;
	gmp_wg_add(&b.done, 1);
	if (gmp_go(bystander_main, &b) <= 0)
		return die("gmp_go(bystander) failed");
	gmp_wg_wait(&b.done);
	if (b.reader_stage_seen != 1)
		return die("the bystander saw the reader at stage %d, not blocked", b.reader_stage_seen);
	if (write_byte(fds[1], 'k') != 0)
		return die("write: %s", strerror(errno));
	gmp_wg_wait(&r.done);
	if (r.got != 'k' || !r.after_ok)
		return die("the reader got '%c' (want 'k'), carried on: %d", r.got ? r.got : '0',
			   r.after_ok);
	printf("main_back_us=%.1f reader_tid=%d bystander_ran=1 reader_ok=1\n",
	       (double)back_ns / 1000, (int)r.tid);
	return 0;
}

/* ---- preempt ------------------------------------------------------------- */

static _Atomic int preempt_progress;	/* sleeps the sleeper completed */
static _Atomic int64_t preempt_worst_ns;	/* worst lateness of one sleep */
static _Atomic int spinner_started;

/* A loop with no calls at all: only a signal can take its P. */
static void spinner_main(void *arg)
{
	volatile uint64_t spins = 0;

	(void)arg;
	spinner_started = 1;
	for (;;)
		spins++;
}

static void sleeper_main(void *arg)
{
	gmp_waitgroup *done = arg;

	for (int i = 0; i < 100; i++) {
		int64_t t0 = gmp_now(), late;

		gmp_sleep(MS);
		late = gmp_now() - t0 - MS;
		if (late > preempt_worst_ns)
			preempt_worst_ns = late;
		preempt_progress = i + 1;
	}
	gmp_wg_done(done);
}

static void print_preempt(const char *how)
{
	printf("%s progress=%d worst_late_us=%.1f spinner_started=%d\n", how,
	       (int)preempt_progress, (double)preempt_worst_ns / 1000, (int)spinner_started);
	fflush(stdout);
}

/* A plain thread (never calls gmprt): gives up after its timeout. */
static void *preempt_watchdog(void *arg)
{
	int64_t ms = (int64_t)(intptr_t)arg;
	struct timespec ts = { ms / 1000, (ms % 1000) * MS };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	print_preempt("gave_up");
	_exit(0);
}

static int work_preempt(int argc, char **argv)
{
	long give_up_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 15000;
	gmp_waitgroup done = GMP_WAITGROUP_INIT;
	pthread_t wd;

	if (pthread_create(&wd, NULL, preempt_watchdog, (void *)(intptr_t)give_up_ms) != 0)
		return die("pthread_create(watchdog) failed");
	gmp_wg_add(&done, 1);
	if (gmp_go(spinner_main, NULL) <= 0 || gmp_go(sleeper_main, &done) <= 0)
		return die("gmp_go failed");
	gmp_wg_wait(&done);
	print_preempt("finished");
	_exit(0); /* the spinner never ends; do not run exit handlers beside it */
}

/* ---- stress -------------------------------------------------------------- */

enum {
	STRESS_GS = 1000,
	STRESS_CALLS = 100,		/* blocking calls per goroutine */
	STRESS_FILE_BYTES = 4096,
	STRESS_NAP_NS = 100 * 1000,	/* each nanosleep */
};

struct stress {
	int shm_fd;
	int pipes[STRESS_GS][2];	/* goroutine i reads pipes[i][0] */
	_Atomic int64_t calls;		/* blocking calls made */
	_Atomic int64_t bytes;		/* pipe bytes received as expected */
	_Atomic int finished;		/* goroutines that ran to the end */
	_Atomic int errors;
	char first_error[200];
	gmp_waitgroup done;
};

static void stress_error(struct stress *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void stress_error(struct stress *s, const char *fmt, ...)
{
	va_list ap;

	if (s->errors++ != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(s->first_error, sizeof(s->first_error), fmt, ap);
	va_end(ap);
}

static unsigned char pattern_at(long off)
{
	return (unsigned char)(off * 7 + 3);
}

/* The byte goroutine `from` sends in its round `round`. */
static char token(int from, int round)
{
	return (char)(from * 31 + round);
}

struct stress_arg {
	struct stress *s;
	int id;
};

static void stress_pipe_round(struct stress *s, int id, int round)
{
	int next = (id + 1) % STRESS_GS, prev = (id + STRESS_GS - 1) % STRESS_GS;
	char c = 0;

	if (write_byte(s->pipes[next][1], token(id, round)) != 0)
		stress_error(s, "g%d: write: %s", id, strerror(errno));
	if (read_byte(s->pipes[id][0], &c) != 0)
		stress_error(s, "g%d: read: %s", id, strerror(errno));
	else if (c != token(prev, round))
		stress_error(s, "g%d round %d: got byte %d, want %d", id, round, c, token(prev, round));
	else
		s->bytes++;
}

static void stress_pread(struct stress *s, int id, int round)
{
	unsigned char buf[16];
	long off = (id * 13L + round * 17L) % (STRESS_FILE_BYTES - (long)sizeof(buf));
	ssize_t n = pread(s->shm_fd, buf, sizeof(buf), off);

	if (n != (ssize_t)sizeof(buf)) {
		stress_error(s, "g%d: pread returned %zd: %s", id, n, strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != pattern_at(off + (long)i))
			stress_error(s, "g%d: pread at %ld: wrong byte", id, off);
}

static void stress_nap(struct stress *s)
{
	struct timespec ts = { 0, STRESS_NAP_NS };

	while (syscall(SYS_nanosleep, &ts, &ts) != 0 && errno == EINTR)
		;
}

/* 100 calls: round r is a pipe read when r % 3 == 0, then pread, then nanosleep. */
static void stress_main(void *arg)
{
	struct stress_arg *a = arg;
	struct stress *s = a->s;

	for (int r = 0; r < STRESS_CALLS; r++) {
		switch (r % 3) {
		case 0: stress_pipe_round(s, a->id, r / 3); break;
		case 1: stress_pread(s, a->id, r); break;
		default: stress_nap(s); break;
		}
		s->calls++;
	}
	s->finished++;
	gmp_wg_done(&s->done);
}

static int stress_setup(struct stress *s)
{
	struct rlimit rl = { 4 * STRESS_GS, 4 * STRESS_GS };
	unsigned char page[STRESS_FILE_BYTES];
	char name[64];

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4 * STRESS_GS) {
		rl.rlim_cur = rl.rlim_max < 4 * STRESS_GS ? rl.rlim_max : 4 * STRESS_GS;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int i = 0; i < STRESS_GS; i++)
		if (pipe(s->pipes[i]) != 0)
			return die("pipe %d: %s (RLIMIT_NOFILE %ld)", i, strerror(errno), (long)rl.rlim_cur);
	snprintf(name, sizeof(name), "/dev/shm/gmprt-sched-test-%d", (int)getpid());
	s->shm_fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (s->shm_fd < 0)
		return die("open %s: %s", name, strerror(errno));
	unlink(name);
	for (long i = 0; i < STRESS_FILE_BYTES; i++)
		page[i] = pattern_at(i);
	if (pwrite(s->shm_fd, page, sizeof(page), 0) != (ssize_t)sizeof(page))
		return die("pwrite %s: %s", name, strerror(errno));
	return 0;
}

/* A plain thread that samples the thread count while the stress runs. */
struct sampler {
	_Atomic bool stop;
	_Atomic int peak;
};

static void *sampler_main(void *arg)
{
	struct sampler *sm = arg;
	struct timespec ts = { 0, 5 * MS };

	while (!sm->stop) {
		int n = thread_count();

		if (n > sm->peak)
			sm->peak = n;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* Poll up to 3 s for the thread count to fall to limit; ms it took, or -1. */
static long settle_threads(int limit, int *now)
{
	int64_t t0 = gmp_now();

	for (;;) {
		*now = thread_count();
		if (*now <= limit)
			return (long)((gmp_now() - t0) / MS);
		if (gmp_now() - t0 > 3000 * MS)
			return -1;
		gmp_sleep(10 * MS);
	}
}

static void nop_main(void *arg)
{
	gmp_wg_done(arg);
}

/* Start sysmon and the first Ms so the baseline counts them. */
static void warm_up(void)
{
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;

	gmp_wg_add(&wg, 1);
	gmp_go(nop_main, &wg);
	gmp_wg_wait(&wg);
	gmp_sleep(50 * MS);
}

static int stress_report(struct stress *s, int base, int peak, int64_t elapsed_ns)
{
	int slack = 8 + 2 * gmp_maxprocs(0), end = 0;
	long settle_ms = settle_threads(base + slack, &end);

	printf("elapsed_ms=%lld calls=%lld bytes=%lld finished=%d errors=%d threads_base=%d "
	       "threads_peak=%d threads_end=%d settle_ms=%ld slack=%d goroutines_end=%lld\n",
	       (long long)(elapsed_ns / MS), (long long)s->calls, (long long)s->bytes,
	       (int)s->finished, (int)s->errors, base, peak, end, settle_ms, slack,
	       (long long)gmp_num_goroutine());
	if (s->errors)
		return die("%d errors; first: %s", (int)s->errors, s->first_error);
	if (s->finished != STRESS_GS || s->calls != (int64_t)STRESS_GS * STRESS_CALLS)
		return die("lost goroutines or calls");
	if (s->bytes != (int64_t)STRESS_GS * ((STRESS_CALLS + 2) / 3))
		return die("lost pipe bytes");
	return 0;
}

static int work_stress(void)
{
	static struct stress s;
	static struct stress_arg args[STRESS_GS];
	struct sampler sm = { 0 };
	pthread_t smt;
	int base, err;
	int64_t t0;

	if ((err = stress_setup(&s)) != 0)
		return err;
	warm_up();
	if (pthread_create(&smt, NULL, sampler_main, &sm) != 0)
		return die("pthread_create(sampler) failed");
	base = thread_count();
	t0 = gmp_now();
	gmp_wg_add(&s.done, STRESS_GS);
	for (int i = 0; i < STRESS_GS; i++) {
		args[i] = (struct stress_arg){ &s, i };
		if (gmp_go(stress_main, &args[i]) <= 0)
			return die("gmp_go %d failed", i);
	}
	gmp_wg_wait(&s.done);
	t0 = gmp_now() - t0;
	sm.stop = true;
	pthread_join(smt, NULL);
	return stress_report(&s, base - 1, sm.peak - 1, t0);
}

/* ---- pair ---------------------------------------------------------------- */

struct pair_blocker {
	int fd;
	_Atomic int tid;
	char got;
	gmp_waitgroup *done;
};

static void pair_blocker_main(void *arg)
{
	struct pair_blocker *b = arg;

	b->tid = tid_self();
	if (read_byte(b->fd, &b->got) != 0)
		b->got = 0;
	gmp_wg_done(b->done);
}

struct pair_ticker {
	_Atomic bool stop;
	_Atomic int ticks;
	gmp_waitgroup done;
};

static void pair_ticker_main(void *arg)
{
	struct pair_ticker *t = arg;

	while (!t->stop) {
		gmp_sleep(MS);
		t->ticks++;
	}
	gmp_wg_done(&t->done);
}

/* Wait until every blocker's thread sleeps in read(). */
static int pair_wait_blocked(struct pair_blocker *bs, int n)
{
	for (int i = 0; i < n; i++) {
		while (bs[i].tid == 0)
			gmp_sleep(MS / 2);
		if (!wait_task_sleeping(bs[i].tid, 5000 * MS))
			return die("blocker %d (thread %d) never slept", i, (int)bs[i].tid);
	}
	return 0;
}

static int pair_release(struct pair_blocker *bs, int (*fds)[2], int n, gmp_waitgroup *done)
{
	for (int i = 0; i < n; i++)
		if (write_byte(fds[i][1], (char)('a' + i % 26)) != 0)
			return die("write: %s", strerror(errno));
	gmp_wg_wait(done);
	for (int i = 0; i < n; i++)
		if (bs[i].got != (char)('a' + i % 26))
			return die("blocker %d got %d", i, bs[i].got);
	return 0;
}

static int work_pair(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 20;
	long hold_ms = argc > 3 ? atol(argv[3]) : 1500;
	struct pair_blocker bs[256] = { { 0 } };
	int fds[256][2], threads, err, ticks;
	gmp_waitgroup done = GMP_WAITGROUP_INIT;
	struct pair_ticker t = { 0 };
	int64_t t_blocked, t_release;

	if (n < 1 || n > 256)
		return die("pair: N must be 1..256");
	gmp_wg_add(&done, n);
	for (int i = 0; i < n; i++) {
		if (pipe(fds[i]) != 0)
			return die("pipe: %s", strerror(errno));
		bs[i] = (struct pair_blocker){ fds[i][0], 0, 0, &done };
		if (gmp_go(pair_blocker_main, &bs[i]) <= 0)
			return die("gmp_go failed");
	}
	if ((err = pair_wait_blocked(bs, n)) != 0)
		return err;
	t_blocked = gmp_now();
	gmp_wg_add(&t.done, 1);
	gmp_go(pair_ticker_main, &t);
	gmp_sleep(hold_ms * MS);
	threads = thread_count();
	t.stop = true;
	gmp_wg_wait(&t.done);
	ticks = t.ticks;
	t_release = gmp_now();
	if ((err = pair_release(bs, fds, n, &done)) != 0)
		return err;
	printf("blockers=%d threads_while_blocked=%d ticks=%d t_blocked=%lld t_release=%lld\n", n,
	       threads, ticks, (long long)t_blocked, (long long)t_release);
	fflush(stdout);
	gmp_sleep(250 * MS); /* one more schedtrace line after the work */
	return 0;
}

/* ---- no_threads ------------------------------------------------------------ */

enum { NT_READERS = 4 };

struct nt_state {
	int fds[NT_READERS][2];
	_Atomic int ticks;
	_Atomic bool stop;
	int ticks_at_raise, ticks_before_release;
	gmp_waitgroup done;
};

static void nt_reader_main(void *arg)
{
	int *fd = arg;
	char c;

	if (read_byte(fd[0], &c) != 0)
		fprintf(stderr, "sched_work: read: %s\n", strerror(errno));
}

static void nt_ticker_main(void *arg)
{
	struct nt_state *st = arg;

	while (!st->stop) {
		st->ticks++;
		gmp_sleep(MS);
	}
	gmp_wg_done(&st->done);
}

/* Sleeps the thread (not a goroutine) to a deadline, through EINTR (the
 * uid change signals every thread). */
static void plain_sleep_ms(long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * MS;
	if (until.tv_nsec >= 1000 * MS) {
		until.tv_sec++;
		until.tv_nsec -= 1000 * MS;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
}

/* A plain thread (goroutines may all be stuck): lifts the limit after
 * 200 ms, notes the ticks then and 250 ms later, then releases the readers. */
static void *nt_releaser_main(void *arg)
{
	struct nt_state *st = arg;
	struct rlimit lim;

	plain_sleep_ms(200);
	st->ticks_at_raise = st->ticks;
	getrlimit(RLIMIT_NPROC, &lim);
	lim.rlim_cur = lim.rlim_max;
	if (setrlimit(RLIMIT_NPROC, &lim) != 0)
		fprintf(stderr, "sched_work: setrlimit: %s\n", strerror(errno));
	plain_sleep_ms(250);
	st->ticks_before_release = st->ticks;
	for (int i = 0; i < NT_READERS; i++)
		if (write_byte(st->fds[i][1], 'r') != 0)
			fprintf(stderr, "sched_work: write: %s\n", strerror(errno));
	return NULL;
}

/* Becomes nobody with room for no more threads than it has.  The hard limit
 * stays, so the releaser may lift the soft one back to it. */
static int nt_limit_threads(void)
{
	struct rlimit lim;

	if (geteuid() != 0)
		return die("not root: cannot switch to an unprivileged uid");
	if (getrlimit(RLIMIT_NPROC, &lim) != 0)
		return die("getrlimit: %s", strerror(errno));
	lim.rlim_cur = (rlim_t)thread_count();
	if (setrlimit(RLIMIT_NPROC, &lim) != 0 || setresgid(65534, 65534, 65534) != 0 ||
	    setresuid(65534, 65534, 65534) != 0)
		return die("cannot drop to uid 65534 with RLIMIT_NPROC %ld: %s", (long)lim.rlim_cur,
			   strerror(errno));
	return 0;
}

static int work_no_threads(void)
{
	static struct nt_state st;
	pthread_t releaser;
	int err;

	for (int i = 0; i < NT_READERS; i++)
		if (pipe(st.fds[i]) != 0)
			return die("pipe: %s", strerror(errno));
	gmp_wg_add(&st.done, 1);
	if (gmp_go(nt_ticker_main, &st) <= 0)
		return die("gmp_go(ticker) failed");
	gmp_sleep(20 * MS); /* sysmon and a spare M or two are up */
	if ((err = pthread_create(&releaser, NULL, nt_releaser_main, &st)) != 0)
		return die("pthread_create: %s", strerror(err));
	if ((err = nt_limit_threads()) != 0)
		return err;
	for (int i = 0; i < NT_READERS; i++)
		if (gmp_go(nt_reader_main, st.fds[i]) <= 0)
			return die("gmp_go(reader) failed");
	pthread_join(releaser, NULL);
	st.stop = true;
	gmp_wg_wait(&st.done);
	printf("ticks_at_raise=%d ticks_before_release=%d threads=%d\n", st.ticks_at_raise,
	       st.ticks_before_release, thread_count());
	return 0;
}

/* ---- pingpong ------------------------------------------------------------ */

struct pipe_pingpong {
	int ab[2], ba[2];	/* ping writes ab, reads ba; pong the other way */
	long rounds;
	_Atomic int failed;
	gmp_waitgroup done;
};

static void pong_main(void *arg)
{
	struct pipe_pingpong *pp = arg;
	char c;

	for (long i = 0; i < pp->rounds && !pp->failed; i++)
		if (read_byte(pp->ab[0], &c) != 0 || write_byte(pp->ba[1], c) != 0)
			pp->failed = 1;
	gmp_wg_done(&pp->done);
}

static void ping_main(void *arg)
{
	struct pipe_pingpong *pp = arg;
	char c = 'p';

	for (long i = 0; i < pp->rounds && !pp->failed; i++)
		if (write_byte(pp->ab[1], c) != 0 || read_byte(pp->ba[0], &c) != 0)
			pp->failed = 1;
	gmp_wg_done(&pp->done);
}

static int work_pingpong(int argc, char **argv)
{
	struct pipe_pingpong pp = { .rounds = argc > 2 ? atol(argv[2]) : 20000 };
	int64_t t0;

	if (pipe(pp.ab) != 0 || pipe(pp.ba) != 0)
		return die("pipe: %s", strerror(errno));
	gmp_wg_add(&pp.done, 2);
	t0 = gmp_now();
	if (gmp_go(pong_main, &pp) <= 0 || gmp_go(ping_main, &pp) <= 0)
		return die("gmp_go failed");
	gmp_wg_wait(&pp.done);
	if (pp.failed)
		return die("a pipe read or write failed: %s", strerror(errno));
	printf("rounds=%ld ns_per_round=%lld\n", pp.rounds,
	       (long long)((gmp_now() - t0) / pp.rounds));
	return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

int sched_work_main(int argc, char **argv)
{
	const char *mode = argv[1];
	int rc;

	if (strcmp(mode, "blocked_read") == 0)
		rc = work_blocked_read();
	else if (strcmp(mode, "preempt") == 0)
		rc = work_preempt(argc, argv);
	else if (strcmp(mode, "stress") == 0)
		rc = work_stress();
	else if (strcmp(mode, "pair") == 0)
		rc = work_pair(argc, argv);
	else if (strcmp(mode, "pingpong") == 0)
		rc = work_pingpong(argc, argv);
	else if (strcmp(mode, "no_threads") == 0)
		rc = work_no_threads();
	else
		rc = die("unknown mode '%s'", mode);
	fflush(stdout);
	if (rc == 0 && getenv("SCHED_TEST_LINGER_MS"))
		gmp_sleep(atol(getenv("SCHED_TEST_LINGER_MS")) * MS);
	return rc;
}
