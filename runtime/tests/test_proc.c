/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * test_proc.c - the scheduler: spawning, yielding, G1, bound goroutines,
 * adopted threads, GMP_MAXPROCS, the environment, fatal errors, stacks,
 * timers, and the stress tests that go with them.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fenv.h>
#include <gmprt.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static long tid(void)
{
	return syscall(SYS_gettid);
}

/* VmRSS or Threads from /proc/self/status. */
static long status_field(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			v = atol(line + n + 1);
	if (f)
		fclose(f);
	return v;
}

/* ---- spawning ---------------------------------------------------------- */

static atomic_long counter;

static void bump(void *arg)
{
	atomic_fetch_add(&counter, arg ? (long)(intptr_t)arg : 1);
}

static void wait_counter(long want)
{
	while (atomic_load(&counter) < want)
		gmp_sleep(100000);
}

TEST(main_is_goroutine_1)
{
	CHECK_EQ(gmp_self(), 1);
	CHECK_EQ(gmp_num_goroutine(), 1);
}

TEST(go_returns_increasing_ids)
{
	int64_t a = gmp_go(bump, NULL), b = gmp_go(bump, NULL);
	CHECK(a > 1);
	CHECK(b > a);
	wait_counter(2);
}

TEST(go_bad_arguments)
{
	CHECK_EQ(gmp_go(NULL, NULL), -EINVAL);
	struct gmp_go_opts huge = { .stack_size = (size_t)4 << 30 };
	CHECK_EQ(gmp_go_opts(bump, NULL, &huge), -EINVAL);
	struct gmp_go_opts small = { .stack_size = 16 << 10, .name = "small" };
	CHECK(gmp_go_opts(bump, NULL, &small) > 0);
	wait_counter(1);
}

TEST_OPTS(spawn_one_million, .timeout_s = 120)
{
	const int N = TEST_SCALE(1000000);
	for (int i = 0; i < N; i++)
		CHECK(gmp_go(bump, NULL) > 0);
	wait_counter(N);
	while (gmp_num_goroutine() > 1)
		gmp_yield();
	CHECK_EQ(atomic_load(&counter), N);
}

/* ---- floating-point control words belong to the goroutine ---------------- */

struct fp_case {
	int mode;		/* fesetround mode this goroutine runs with */
	int bad;		/* switches after which it found another mode */
	gmp_chan *done;
};

/* The rounding field of the SSE control word (x86-64) or of FPCR (AArch64),
 * read from the register itself. */
static unsigned hw_rounding(void)
{
#if defined(__x86_64__)
	return (__builtin_ia32_stmxcsr() >> 13) & 3;
#elif defined(__aarch64__)
	uint64_t fpcr;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	return (fpcr >> 22) & 3;
#endif
}

static void fp_worker(void *arg)
{
	struct fp_case *fc = arg;
	fesetround(fc->mode);
	unsigned sse = hw_rounding();
	for (int i = 0; i < 2000; i++) {
		gmp_yield();
		if (fegetround() != fc->mode || hw_rounding() != sse)
			fc->bad++;
	}
	fesetround(FE_TONEAREST);
	gmp_chan_send(fc->done, &(int){ 1 });
}

/* Starts fa(a) and fb(b), which end by sending on done, and waits for
 * both; frees done. */
static void run_two(void (*fa)(void *), void *a, void (*fb)(void *), void *b, gmp_chan *done)
{
	int v;
	go(fa, a);
	go(fb, b);
	CHECK_EQ(gmp_chan_recv(done, &v), 1);
	CHECK_EQ(gmp_chan_recv(done, &v), 1);
	gmp_chan_free(done);
}

/* Two goroutines on one P with different rounding modes switch to each
 * other 4,000 times: each keeps its own mode, x87 and SSE (or FPCR) alike
 * (the switch loads MXCSR and FPCR only when they differ, so this is the
 * case that must not be missed). */
TEST_OPTS(rounding_mode_is_per_goroutine, .env = "GMP_MAXPROCS=1")
{
	gmp_chan *done = gmp_chan_make(sizeof(int), 2);
	struct fp_case up = { FE_UPWARD, 0, done }, near = { FE_TONEAREST, 0, done };
	run_two(fp_worker, &up, fp_worker, &near, done);
	CHECK_EQ(up.bad, 0);
	CHECK_EQ(near.bad, 0);
	CHECK_EQ(fegetround(), FE_TONEAREST);
}

/* Exception flags are caller-saved, and C lets a call raise them but not
 * clear them: a switch may carry flags over from another goroutine, but
 * never clears those of the goroutine it resumes. */
struct flag_case {
	int bad;		/* resumptions that found FE_INEXACT clear */
	gmp_chan *done;
};

static volatile double fp_num = 1.0, fp_den = 3.0;

static void flag_raiser(void *arg)
{
	struct flag_case *fc = arg;
	feclearexcept(FE_ALL_EXCEPT);
	volatile double third = fp_num / fp_den; /* inexact */
	(void)third;
	for (int i = 0; i < 2000; i++) {
		gmp_yield();
		if (!fetestexcept(FE_INEXACT))
			fc->bad++;
	}
	gmp_chan_send(fc->done, &(int){ 1 });
}

static void flag_clearer(void *arg)
{
	struct flag_case *fc = arg;
	for (int i = 0; i < 2000; i++) {
		feclearexcept(FE_ALL_EXCEPT);
		gmp_yield();
	}
	gmp_chan_send(fc->done, &(int){ 1 });
}

/* One P: the raiser and the clearer alternate 4,000 times; the raiser's
 * FE_INEXACT survives every switch back from the clearer. */
TEST_OPTS(switch_keeps_raised_fp_flags, .env = "GMP_MAXPROCS=1")
{
	struct flag_case fc = { 0, gmp_chan_make(sizeof(int), 2) };
	run_two(flag_raiser, &fc, flag_clearer, &fc, fc.done);
	CHECK_EQ(fc.bad, 0);
}

#if defined(__x86_64__)
/* The x87 control word alone, as _FPU_SETCW sets it (53-bit precision),
 * with MXCSR left alone: the switch must carry it on its own. */
struct x87_case {
	uint16_t cw;		/* the control word this goroutine runs with */
	int bad;		/* switches after which it found another */
	gmp_chan *done;
};

static uint16_t x87_cw(void)
{
	uint16_t cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return cw;
}

static void x87_worker(void *arg)
{
	struct x87_case *xc = arg;
	uint16_t def = x87_cw();
	__asm__ volatile("fldcw %0" : : "m"(xc->cw));
	for (int i = 0; i < 2000; i++) {
		gmp_yield();
		if (x87_cw() != xc->cw)
			xc->bad++;
	}
	__asm__ volatile("fldcw %0" : : "m"(def));
	gmp_chan_send(xc->done, &(int){ 1 });
}

TEST_OPTS(x87_control_word_is_per_goroutine, .env = "GMP_MAXPROCS=1")
{
	gmp_chan *done = gmp_chan_make(sizeof(int), 2);
	struct x87_case p53 = { 0x027f, 0, done }, p64 = { 0x037f, 0, done };
	run_two(x87_worker, &p53, x87_worker, &p64, done);
	CHECK_EQ(p53.bad, 0);
	CHECK_EQ(p64.bad, 0);
	CHECK_EQ(x87_cw(), 0x037f);
}
#endif

/* ---- the seed's first program ------------------------------------------ */

static char order[32];
static atomic_int norder;

static void alternate_worker(void *done)
{
	for (int i = 0; i < 5; i++) {
		order[atomic_fetch_add(&norder, 1)] = 'W';
		gmp_yield();
	}
	gmp_chan_send(done, &(int){ 1 });
}

TEST_OPTS(maxprocs1_yield_alternates, .env = "GMP_MAXPROCS=1")
{
	CHECK_EQ(gmp_maxprocs(0), 1);
	gmp_chan *done = gmp_chan_make(sizeof(int), 0);
	gmp_go(alternate_worker, done);
	for (int i = 0; i < 5; i++) {
		order[atomic_fetch_add(&norder, 1)] = 'M';
		gmp_yield();
	}
	int v;
	gmp_chan_recv(done, &v);
	CHECK(strcmp(order, "MWMWMWMWMW") == 0);
	gmp_chan_free(done);
}

TEST(yield_alone_returns)
{
	for (int i = 0; i < 1000; i++)
		gmp_yield();
}

/* ---- parallelism and stealing ------------------------------------------ */

static atomic_long tids[2];

static void spin_and_note_tid(void *arg)
{
	long t = tid();
	long zero = 0;
	if (!atomic_compare_exchange_strong(&tids[0], &zero, t) && atomic_load(&tids[0]) != t) {
		zero = 0;
		atomic_compare_exchange_strong(&tids[1], &zero, t);
	}
	volatile long x = 0;
	for (long i = 0; i < 2000000; i++)
		x += i;
	bump(NULL);
}

TEST_OPTS(two_ps_run_in_parallel, .env = "GMP_MAXPROCS=2")
{
	for (int i = 0; i < 64; i++)
		gmp_go(spin_and_note_tid, NULL);
	wait_counter(64);
	CHECK(atomic_load(&tids[0]) != 0);
	CHECK(atomic_load(&tids[1]) != 0); /* work was stolen by the second M */
}

/* runnext between its owner and thieves (runq.c): the main goroutine hands
 * a partner a value (the partner goes to main's runnext), then spins a
 * while before it parks, so that an M looking for work (the napper's,
 * between its 5 us naps) may take the partner from runnext while main's M
 * takes it at the park.  A partner run twice at once, or lost, fails. */
enum { RN_ROUNDS = 20000 };
static gmp_chan *rn_ping, *rn_pong;
static atomic_int rn_running, rn_overlap, rn_stop;
static atomic_long rn_elsewhere, rn_done;

static void rn_partner(void *arg)
{
	long v;
	(void)arg;
	while (gmp_chan_recv(rn_ping, &v) == 1) {
		if (atomic_exchange(&rn_running, 1))
			atomic_fetch_add(&rn_overlap, 1);
		if (tid() != v)
			atomic_fetch_add(&rn_elsewhere, 1);
		atomic_fetch_add(&rn_done, 1);
		atomic_store(&rn_running, 0);
		gmp_chan_send(rn_pong, &v);
	}
}

static void rn_napper(void *arg)
{
	(void)arg;
	while (!atomic_load(&rn_stop))
		gmp_sleep(5000);
}

TEST_OPTS(runnext_owner_and_thieves, .env = "GMP_MAXPROCS=2")
{
	rn_ping = gmp_chan_make(sizeof(long), 0);
	rn_pong = gmp_chan_make(sizeof(long), 0);
	CHECK(rn_ping && rn_pong);
	CHECK(gmp_go(rn_partner, NULL) > 0);
	CHECK(gmp_go(rn_napper, NULL) > 0);
	for (long i = 0; i < RN_ROUNDS; i++) {
		long v = tid();
		CHECK(gmp_chan_send(rn_ping, &v) == 0);
		int64_t until = gmp_now() + (i % 8) * 4000;
		while (gmp_now() < until)
			;
		CHECK(gmp_chan_recv(rn_pong, &v) == 1);
	}
	atomic_store(&rn_stop, 1);
	gmp_chan_close(rn_ping);
	CHECK_EQ(atomic_load(&rn_done), RN_ROUNDS);
	CHECK_EQ(atomic_load(&rn_overlap), 0);
	/* Some partners ran on the napper's M: thieves took part. */
	CHECK(atomic_load(&rn_elsewhere) > 0);
	printf("# %ld of %d partners ran on another thread\n", atomic_load(&rn_elsewhere),
	       RN_ROUNDS);
}

TEST(maxprocs_query_and_set)
{
	int n = gmp_maxprocs(0);
	CHECK(n >= 1);
	CHECK_EQ(n, (int)sysconf(_SC_NPROCESSORS_ONLN) < n ? n : n);
	CHECK_EQ(gmp_maxprocs(3), n);
	CHECK_EQ(gmp_maxprocs(0), 3);
	CHECK_EQ(gmp_maxprocs(100000), -EINVAL);
	CHECK_EQ(gmp_maxprocs(1), 3);
	CHECK_EQ(gmp_maxprocs(0), 1);
}

static void churn(void *arg)
{
	for (int i = 0; i < 200; i++)
		gmp_yield();
	bump(NULL);
}

TEST(maxprocs_changes_while_running)
{
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 50; i++)
			gmp_go(churn, NULL);
		gmp_maxprocs(round % 3 + 1);
	}
	wait_counter(1000);
	CHECK_EQ(atomic_load(&counter), 1000);
}

/* ---- environment --------------------------------------------------------- */

TEST_OPTS(env_maxprocs, .env = "GMP_MAXPROCS=3")
{
	CHECK_EQ(gmp_maxprocs(0), 3);
}

TEST_OPTS(env_maxprocs_malformed_warns, .env = "GMP_MAXPROCS=two",
	  .expect_stderr = "gmprt: warning: GMP_MAXPROCS=two is not an integer")
{
	CHECK(gmp_maxprocs(0) >= 1);
}

TEST_OPTS(env_stack_malformed_warns, .env = "GMP_STACK=12q",
	  .expect_stderr = "gmprt: warning: GMP_STACK=12q is not a size")
{
	CHECK(gmp_go(bump, NULL) > 0);
	wait_counter(1);
}

TEST_OPTS(env_debug_malformed_warns, .env = "GMP_DEBUG=kassist=maybe",
	  .expect_stderr = "GMP_DEBUG: ignoring kassist=maybe")
{
}

static char big_stack_ok;

static void use_big_stack(void *arg)
{
	volatile char buf[600 << 10];
	buf[0] = 1;
	buf[sizeof(buf) - 1] = 1;
	big_stack_ok = buf[0] + buf[sizeof(buf) - 1];
	bump(NULL);
}

TEST_OPTS(env_stack_size_used, .env = "GMP_STACK=1m")
{
	gmp_go(use_big_stack, NULL);
	wait_counter(1);
	CHECK_EQ(big_stack_ok, 2);
}

/* ---- bound goroutines and threads ---------------------------------------- */

static void locked_worker(void *arg)
{
	gmp_lock_os_thread();
	long t = tid();
	for (int i = 0; i < 50; i++) {
		gmp_yield();
		gmp_sleep(100000);
		CHECK_EQ(tid(), t);
	}
	gmp_unlock_os_thread();
	bump(NULL);
}

TEST_OPTS(lock_os_thread_keeps_thread, .env = "GMP_MAXPROCS=2")
{
	for (int i = 0; i < 4; i++)
		gmp_go(locked_worker, NULL);
	for (int i = 0; i < 100; i++)
		gmp_go(churn, NULL);
	wait_counter(104);
}

TEST_OPTS(main_locked_stays_on_main_thread, .env = "GMP_MAXPROCS=1")
{
	gmp_lock_os_thread();
	for (int i = 0; i < 10; i++)
		gmp_go(churn, NULL);
	for (int i = 0; i < 20; i++) {
		gmp_sleep(200000);
		CHECK_EQ(tid(), getpid());
	}
	wait_counter(10);
	gmp_unlock_os_thread();
}

static void block_main_thread_a_while(void *arg)
{
	bump(NULL);
}

TEST_OPTS(main_may_resume_on_another_thread, .env = "GMP_MAXPROCS=2")
{
	/* Not an assertion that it moves (that depends on timing), only that
	 * it keeps working after parks on any M. */
	for (int i = 0; i < 200; i++) {
		gmp_go(block_main_thread_a_while, NULL);
		gmp_sleep(10000);
	}
	wait_counter(200);
	CHECK_EQ(gmp_self(), 1);
}

static sem_t adopted;

static void *foreign_thread(void *arg)
{
	gmp_chan *c = arg;
	int64_t self = gmp_self();
	CHECK(self > 1);
	sem_post(&adopted);
	for (int i = 0; i < 100; i++) {
		int v;
		CHECK_EQ(gmp_chan_recv(c, &v), 1);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(gmp_self(), self);
	CHECK(gmp_go(bump, NULL) > 0);
	gmp_sleep(1000000);
	return NULL;
}

TEST(foreign_thread_is_adopted)
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	pthread_t t;
	sem_init(&adopted, 0, 0);
	pthread_create(&t, NULL, foreign_thread, c);
	/* Until it first calls in, the thread is unknown to gmprt, and main
	 * blocking on the channel would look like a deadlock (under TSan,
	 * whose own thread blurs the count of unknown threads). */
	sem_wait(&adopted);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(gmp_chan_send(c, &i), 0);
	pthread_join(t, NULL);
	wait_counter(1);
}

/* A thread's first call is a wait, in a process that never started a
 * goroutine: its wake-ups (the fd, the timeout) still come. */
static int adopted_pipe[2];
static _Atomic long adopted_read, adopted_select;

static void *adopted_waits(void *arg)
{
	(void)arg;
	char c;
	adopted_read = gmp_read(adopted_pipe[0], &c, 1);
	gmp_chan *never = gmp_chan_make(sizeof(int), 0);
	int v;
	struct gmp_case cs[1] = { { .chan = never, .op = GMP_RECV, .elem = &v } };
	adopted_select = gmp_select(cs, 1, 20 * MS);
	gmp_chan_free(never);
	return NULL;
}

TEST_OPTS(adopted_thread_waits_without_goroutines, .env = "GMP_MAXPROCS=1")
{
	CHECK(pipe(adopted_pipe) == 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, adopted_waits, NULL) == 0);
	usleep(50 * 1000); /* plain sleeps: main never enters the scheduler */
	CHECK(write(adopted_pipe[1], "x", 1) == 1);
	pthread_join(t, NULL);
	CHECK_EQ(adopted_read, 1);
	CHECK_EQ(adopted_select, -ETIMEDOUT);
}

TEST(version_matches_header)
{
	char want[32];
	snprintf(want, sizeof(want), "%d.%d.%d", GMPRT_VERSION_MAJOR, GMPRT_VERSION_MINOR,
		 GMPRT_VERSION_PATCH);
	CHECK(strcmp(gmp_version(), want) == 0);
}

/* ---- timers ---------------------------------------------------------------- */

static atomic_long last_woken_deadline, out_of_order;

static void sleeper(void *arg)
{
	int64_t d = (int64_t)(intptr_t)arg;
	int64_t deadline = gmp_now() + d;
	gmp_sleep(d);
	/* Absolute deadlines: one that is later must not wake first. */
	long prev = atomic_exchange(&last_woken_deadline, deadline);
	if (prev > deadline)
		atomic_fetch_add(&out_of_order, 1);
	CHECK(gmp_now() >= deadline);
	bump(NULL);
}

TEST_OPTS(timers_fire_in_order, .env = "GMP_MAXPROCS=1")
{
	for (int i = 50; i > 0; i--)
		gmp_go(sleeper, (void *)(intptr_t)(i * 2000000));
	wait_counter(50);
	CHECK_EQ(atomic_load(&out_of_order), 0);
}

TEST(sleep_zero_and_negative_return)
{
	CHECK_EQ(gmp_sleep(0), 0);
	CHECK_EQ(gmp_sleep(-5), 0);
	int64_t t0 = gmp_now();
	CHECK_EQ(gmp_sleep(2000000), 0);
	CHECK(gmp_now() - t0 >= 2000000);
}

static void sleep_100ms(void *arg)
{
	gmp_sleep(100 * 1000000);
	bump(NULL);
}

TEST_OPTS(ten_thousand_sleepers_few_threads, .env = "GMP_MAXPROCS=1")
{
	const int N = TEST_SCALE(10000);
	int64_t t0 = gmp_now();
	for (int i = 0; i < N; i++)
		gmp_go(sleep_100ms, NULL);
	long threads = status_field("Threads") - TEST_UNDER_TSAN;
	wait_counter(N);
	int64_t took = gmp_now() - t0;
	fprintf(stderr, "%d sleepers: %.0f ms, %ld threads\n", N, took / 1e6, threads);
	CHECK(threads <= 4);
	CHECK(took < 5 * 1000000000LL); /* generous: "well under a second" is a bench figure */
}

/* ---- a million parked goroutines ------------------------------------------- */

static void park_on(void *c)
{
	int v;
	gmp_chan_recv(c, &v);
	bump(NULL);
}

static void one_million_parked_body(void);

TEST_OPTS(one_million_parked, .timeout_s = 180)
{
	one_million_parked_body();
}

/* Guard pages as PROT_NONE mappings, as on kernels before 6.13: the first
 * stacks are guarded while the mapping budget lasts, the rest are canary
 * stacks cut from slabs. */
TEST_OPTS(one_million_parked_vma_guards, .env = "GMP_DEBUG=guard=vma", .timeout_s = 180)
{
	one_million_parked_body();
}

static void one_million_parked_body(void)
{
	const int N = TEST_SCALE(1000000);
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	long rss0 = status_field("VmRSS");
	for (int i = 0; i < N; i++)
		CHECK(gmp_go(park_on, c) > 0);
	while (gmp_num_goroutine() < N + 1)
		gmp_yield();
	gmp_sleep(10 * 1000000); /* let every one of them park */
	long rss1 = status_field("VmRSS");
	fprintf(stderr, "1M parked: %.0f bytes RSS each\n", (rss1 - rss0) * 1024.0 / N);
	if (TEST_SCALE(1000) == 1000) /* sanitizers keep their own shadow per page */
		CHECK((rss1 - rss0) * 1024.0 / N < 16384);
	else
		fprintf(stderr, "# RSS bound not checked: a sanitizer's shadow memory dominates RSS\n");
	gmp_chan_close(c);
	wait_counter(N);
}

/* ---- free stacks give their pages back ------------------------------------ */

static void deep_then_park(void *c)
{
	volatile char frame[24 << 10];
	memset((char *)frame, 1, sizeof(frame));
	int v;
	gmp_chan_recv(c, &v);
	bump(NULL);
}

static void spawn_deep_and_release(int n)
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	long before = atomic_load(&counter);
	for (int i = 0; i < n; i++)
		CHECK(gmp_go(deep_then_park, c) > 0);
	while (gmp_num_goroutine() < n + 1)
		gmp_yield();
	gmp_chan_close(c);
	wait_counter(before + n);
	gmp_chan_free(c);
}

/* 4,000 goroutines each commit 24 KiB of stack and exit: their Gs keep the
 * stacks on the free lists.  sysmon's once-a-second trim must give back
 * the pages of all but ~1,000 idle ones, and the trimmed Gs must then work
 * again (their stacks refault). */
TEST_OPTS(idle_free_stacks_give_pages_back, .timeout_s = 60)
{
	const int N = 4000;
	const long excess_kib = (N - 1024 - 64 * 8) * 24L;
	long rss0 = status_field("VmRSS");
	spawn_deep_and_release(N);
	long rss_full = status_field("VmRSS");
	fprintf(stderr, "RSS %ld KiB before, %ld KiB with %d dead deep stacks\n", rss0, rss_full, N);
	long rss = rss_full;
	for (int i = 0; i < 100 && rss > rss_full - excess_kib / 2; i++) {
		gmp_sleep(100 * 1000000);
		rss = status_field("VmRSS");
	}
	fprintf(stderr, "RSS %ld KiB after the trim\n", rss);
	if (TEST_SCALE(1000) == 1000) /* sanitizers: RSS is mostly their shadow */
		CHECK(rss <= rss_full - excess_kib / 2);
	else
		fprintf(stderr, "# RSS drop not checked: a sanitizer's shadow memory dominates RSS\n");
	spawn_deep_and_release(N);
}

/* ---- fatal errors ---------------------------------------------------------- */

static void wait_forever(void *c)
{
	int v;
	gmp_chan_recv(c, &v);
}

TEST_OPTS(deadlock_is_reported, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "gmprt: fatal error: all goroutines are asleep - deadlock!")
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	gmp_go(wait_forever, c);
	int v;
	gmp_chan_recv(c, &v);
}

/* With its start function by name: wait_forever is static, so only the
 * test binary's .symtab knows it. */
TEST_OPTS(deadlock_lists_goroutines, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "goroutine 2 [chan receive]:\n\twait_forever(0x")
{
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	gmp_go(wait_forever, c);
	gmp_sleep(1000000);
	int v;
	gmp_chan_recv(c, &v);
}

TEST_OPTS(main_exit_then_nothing_left, NEEDS_DEADLOCK_CHECK, .expect_status = 2,
	  .expect_stderr = "no goroutines (main called gmp_exit) - deadlock!")
{
	gmp_go(bump, NULL);
	gmp_exit();
}

#pragma GCC diagnostic ignored "-Winfinite-recursion"
static int recurse(int n)
{
	volatile char pad[512];
	pad[0] = (char)n;
	return recurse(n + 1) + pad[0];
}

static void overflow(void *arg)
{
	recurse(0);
}

TEST_OPTS(stack_overflow_is_reported, .expect_status = 2,
	  .expect_stderr = "gmprt: fatal error: stack overflow in goroutine")
{
	gmp_go(overflow, NULL);
	gmp_sleep(5 * 1000000000LL);
}

TEST_OPTS(stack_overflow_is_reported_vma_guards, .env = "GMP_DEBUG=guard=vma",
	  .expect_status = 2, .expect_stderr = "gmprt: fatal error: stack overflow in goroutine")
{
	gmp_go(overflow, NULL);
	gmp_sleep(5 * 1000000000LL);
}

/* ---- SIGQUIT ---------------------------------------------------------------- */

/* Left at its default, SIGQUIT lists the goroutines and then ends the
 * process on the signal (no core file here: the limit is set to 0). */
TEST_OPTS(sigquit_lists_goroutines, .expect_status = 128 + SIGQUIT,
	  .expect_stderr = " name=quit-waiter\n")
{
	struct rlimit no_core = { 0, 0 };
	CHECK(setrlimit(RLIMIT_CORE, &no_core) == 0);
	gmp_chan *c = gmp_chan_make(sizeof(int), 0);
	struct gmp_go_opts opts = { .name = "quit-waiter" };
	CHECK(gmp_go_opts(wait_forever, c, &opts) > 0);
	gmp_sleep(20 * MS); /* it parks */
	CHECK(kill(getpid(), SIGQUIT) == 0);
	gmp_sleep(10000 * MS);
	CHECK(!"SIGQUIT did not end the process");
}

/* A program's own SIGQUIT handler stays its own. */
static _Atomic int quits;
static void count_quit(int sig)
{
	(void)sig;
	quits++;
}

TEST(sigquit_handler_of_the_program_kept)
{
	signal(SIGQUIT, count_quit);
	gmp_yield(); /* the runtime has started (it may have already) */
	CHECK(kill(getpid(), SIGQUIT) == 0);
	for (int i = 0; i < 1000 && !quits; i++)
		gmp_sleep(MS);
	CHECK_EQ(quits, 1);
}

/* ---- asynchronous preemption ------------------------------------------------ */

static _Atomic int spin_stop, spin_bad;

/* A loop with no call in it, whose integer and floating-point registers
 * must agree at every step: a preemption that lost a register shows. */
static void spin_checked(void *arg)
{
	(void)arg;
	long x = 0;
	double d = 0;
	for (long i = 0; !atomic_load_explicit(&spin_stop, memory_order_relaxed); i++) {
		x += 3;
		d += 3.0;
		if ((double)x != d)
			atomic_store(&spin_bad, 1);
	}
}

/* With one P, main can run again only if the spinners are preempted. */
TEST_OPTS(preemption_interrupts_tight_loops, .env = "GMP_MAXPROCS=1")
{
	if (TEST_UNDER_TSAN)
		harness_skip("async preemption is off under ThreadSanitizer");
	go(spin_checked, NULL);
	go(spin_checked, NULL);
	for (int i = 0; i < 10; i++)
		gmp_sleep(MS);
	atomic_store(&spin_stop, 1);
	while (gmp_num_goroutine() > 1)
		gmp_sleep(MS);
	CHECK_EQ(spin_bad, 0);
}

/* sysmon's first look at a P starts the slice there: main(), which has run
 * since the process began, is not preempted at once when its first
 * goroutine starts sysmon (it was, about once in 150 runs of the seed's
 * alternating program, which then printed the worker's line first). */
static _Atomic int worker_ran;

static void note_ran(void *arg)
{
	(void)arg;
	worker_ran = 1;
}

TEST_OPTS(first_goroutine_does_not_preempt_main, .env = "GMP_MAXPROCS=1")
{
	if (TEST_UNDER_TSAN)
		harness_skip("async preemption is off under ThreadSanitizer");
	go(note_ran, NULL);
	int64_t end = gmp_now() + 3 * MS; /* well inside the 10 ms slice */
	volatile long spin = 0;
	while (gmp_now() < end) {
		/* Mostly in this loop, where a preemption signal would land. */
		for (int k = 0; k < 10000; k++)
			spin++;
		CHECK_EQ(worker_ran, 0); /* main still holds the only P */
	}
	gmp_yield();
	CHECK_EQ(worker_ran, 1);
}
