/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * bench/kassist/switch.c - what the sched_switch program costs.  The
 * program runs on every context switch of the machine, so it must drop
 * other processes' switches at its first check and keep ours short.
 *
 * Modes (ROUNDS round trips; each round trip is two context switches):
 *   threads [ROUNDS]       pipe ping-pong between two plain threads of
 *                          this gmprt process (after one goroutine has
 *                          run, so kernel assist is loaded), pinned to one
 *                          CPU; prints ns
 *                          per switch.  run.sh compares kernel assist live
 *                          with GMP_DEBUG=kassist=off.
 *   goroutines [ROUNDS]    the same ping-pong between two goroutines with
 *                          plain read()/write(): every block is an armed M
 *                          going off CPU (and maybe a hand-off); ns per
 *                          switch.
 *   stats [ROUNDS] PLAIN   needs kernel assist live and
 *                          kernel.bpf_stats_enabled=1 (run.sh sets it):
 *                          reads this process's program's run_time_ns and
 *                          run_cnt (bpftool prog show id N, N from
 *                          /proc/self/fdinfo) around four windows and
 *                          prints the ns per program run in each:
 *                          "others ours_threads ours_ms idle":
 *                            others        PLAIN (pingpong_plain, not a
 *                                          gmprt process) ping-pongs;
 *                            ours_threads  the threads mode above;
 *                            ours_ms       the goroutines mode, ROUNDS/10;
 *                            idle          1 s of whatever else the
 *                                          machine does.
 *                          Every window also counts the machine's other
 *                          switches; stderr gets the run counts.
 */
#include "kbench.h"

#include <dirent.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/bpf.h>

#include <gmprt.h>

extern char **environ;

/* ---- goroutine ping-pong -------------------------------------------------- */

static void nop(void *arg)
{
	gmp_wg_done(arg);
}

/* Kernel assist loads with a process's first goroutine: start one, so the
 * plain-thread modes run beside a live program (or beside kassist=off). */
static void start_runtime(void)
{
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;

	gmp_wg_add(&wg, 1);
	KB_CHECK(gmp_go(nop, &wg) > 0, "gmp_go");
	gmp_wg_wait(&wg);
}

static struct kb_pingpong gpp;
static gmp_waitgroup gdone = GMP_WAITGROUP_INIT;

static void g_ping(void *arg)
{
	(void)arg;
	kb_ping_main(&gpp);
	gmp_wg_done(&gdone);
}

static void g_pong(void *arg)
{
	(void)arg;
	kb_pong_main(&gpp);
	gmp_wg_done(&gdone);
}

/* kb_ping_main/kb_pong_main pin their thread: undo that for Ms. */
static double pingpong_goroutines(long rounds)
{
	int64_t t0;

	gpp.rounds = rounds;
	KB_CHECK(pipe(gpp.ab) == 0 && pipe(gpp.ba) == 0, "pipe");
	gmp_wg_add(&gdone, 2);
	t0 = kb_now();
	KB_CHECK(gmp_go(g_pong, NULL) > 0 && gmp_go(g_ping, NULL) > 0, "gmp_go");
	gmp_wg_wait(&gdone);
	t0 = kb_now() - t0;
	close(gpp.ab[0]);
	close(gpp.ab[1]);
	close(gpp.ba[0]);
	close(gpp.ba[1]);
	return (double)t0 / (2.0 * (double)rounds);
}

/* ---- the program's counters ---------------------------------------------- */

/* The id of the first BPF program this process holds an fd to, or -1;
 * *fd gets that fd. */
static int own_prog_id(int *fd)
{
	char path[300], line[128], link[64];
	struct dirent *de;
	int id = -1;
	DIR *d = opendir("/proc/self/fd");

	while (d && id < 0 && (de = readdir(d))) {
		ssize_t n;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0 || (link[n] = 0, strcmp(link, "anon_inode:bpf-prog") != 0))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%s", de->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "prog_id: %d", &id) == 1)
				*fd = atoi(de->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return id;
}

struct prog_stats {
	unsigned long long ns, cnt;
};

/* run_time_ns and run_cnt as `bpftool prog show id ID` prints them. */
static bool stats_bpftool(int id, struct prog_stats *st)
{
	char cmd[96], line[512];
	bool ok = false;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "bpftool prog show id %d 2>/dev/null", id);
	if (!(p = popen(cmd, "r")))
		return false;
	while (fgets(line, sizeof(line), p)) {
		char *s = strstr(line, "run_time_ns ");

		if (s && sscanf(s, "run_time_ns %llu run_cnt %llu", &st->ns, &st->cnt) == 2)
			ok = true;
	}
	return pclose(p) == 0 && ok;
}

/* The same counters straight from the kernel, where bpftool is missing. */
static bool stats_syscall(int fd, struct prog_stats *st)
{
	struct bpf_prog_info info;
	union bpf_attr attr;

	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = (unsigned)fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (unsigned long)&info;
	if (syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof(attr)) != 0)
		return false;
	st->ns = info.run_time_ns;
	st->cnt = info.run_cnt;
	return true;
}

static int prog_id = -1, prog_fd = -1;
static bool use_bpftool = true;

static struct prog_stats snapshot(void)
{
	struct prog_stats st = { 0, 0 };

	if (use_bpftool && stats_bpftool(prog_id, &st))
		return st;
	use_bpftool = false;
	KB_CHECK(stats_syscall(prog_fd, &st), "BPF_OBJ_GET_INFO_BY_FD");
	return st;
}

/* ---- the stats windows ------------------------------------------------------ */

static void run_plain(const char *exe, long rounds)
{
	char arg[32], *argv[] = { (char *)exe, arg, NULL };
	int status;
	pid_t pid;

	snprintf(arg, sizeof(arg), "%ld", rounds);
	KB_CHECK(posix_spawn(&pid, exe, NULL, NULL, argv, environ) == 0, "posix_spawn");
	KB_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "the plain ping-pong");
}

enum window { W_OTHERS, W_OURS_THREADS, W_OURS_MS, W_IDLE, NWINDOWS };
static const char *const window_name[] = { "others", "ours_threads", "ours_ms", "idle" };

static void run_window(enum window w, long rounds, const char *plain)
{
	switch (w) {
	case W_OTHERS: run_plain(plain, rounds); break;
	case W_OURS_THREADS: kb_pingpong_threads(rounds); break;
	case W_OURS_MS: pingpong_goroutines(rounds / 10); break;
	default: gmp_sleep(1000 * KB_MS); break;
	}
}

static int stats_mode(long rounds, const char *plain)
{
	double per_run[NWINDOWS];

	prog_id = own_prog_id(&prog_fd);
	if (prog_id < 0) {
		fprintf(stderr, "switch: kernel assist is not live in this process (no BPF program)\n");
		return 3;
	}
	for (int w = 0; w < NWINDOWS; w++) {
		struct prog_stats a = snapshot(), b;
		int64_t t0 = kb_now();

		run_window((enum window)w, rounds, plain);
		b = snapshot();
		if (b.cnt <= a.cnt) {
			fprintf(stderr, "switch: run_cnt did not move (is kernel.bpf_stats_enabled 1?)\n");
			return 4;
		}
		per_run[w] = (double)(b.ns - a.ns) / (double)(b.cnt - a.cnt);
		fprintf(stderr, "switch: prog %d, %s: %llu runs in %.2f s, %.1f ns per run (%s)\n",
			prog_id, window_name[w], b.cnt - a.cnt, (double)(kb_now() - t0) / 1e9,
			per_run[w], use_bpftool ? "bpftool" : "bpf syscall");
	}
	printf("%.1f %.1f %.1f %.1f\n", per_run[W_OTHERS], per_run[W_OURS_THREADS],
	       per_run[W_OURS_MS], per_run[W_IDLE]);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "threads";
	long rounds = kb_arg(argc, argv, 2, 200000);

	start_runtime();

	if (strcmp(mode, "threads") == 0) {
		kb_pingpong_threads(rounds / 20); /* warm-up */
		printf("%.1f\n", kb_pingpong_threads(rounds));
	} else if (strcmp(mode, "goroutines") == 0) {
		printf("%.1f\n", pingpong_goroutines(rounds));
	} else if (strcmp(mode, "stats") == 0 && argc > 3) {
		return stats_mode(rounds, argv[3]);
	} else {
		fprintf(stderr, "usage: switch threads|goroutines [ROUNDS] | stats ROUNDS PLAIN_EXE\n");
		return 2;
	}
	return 0;
}
