/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * test_netpoll.c - fd I/O through the netpoller: a goroutine that waits on a
 * pipe or socket parks and its M runs others; echo over socketpairs and TCP
 * loopback; accept and connect (flags, refused ports); gmp_close and context
 * cancellation waking parked goroutines; a reader and a writer on one fd; fd
 * numbers reused behind the runtime's back; 1,000 socketpairs echoing at
 * once; callers that are plain pthreads; bad arguments; and examples/httpd
 * spoken to over loopback.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <gmprt.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Lets every other runnable goroutine run until it blocks (with one P). */
static void settle(void)
{
	for (int i = 0; i < 20; i++)
		gmp_yield();
	gmp_sleep(20 * MS);
}

/* Sleeps in small steps until *flag is set; false after timeout_ms. */
static bool wait_flag(_Atomic int *flag, int timeout_ms)
{
	int64_t deadline = gmp_now() + timeout_ms * MS;
	while (!atomic_load(flag)) {
		if (gmp_now() > deadline)
			return false;
		gmp_sleep(1 * MS);
	}
	return true;
}

static bool is_nonblocking(int fd)
{
	return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* A listening TCP socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_loopback(struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	*addr = (struct sockaddr_in){ .sin_family = AF_INET,
				      .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(bind(fd, (struct sockaddr *)addr, sizeof(*addr)) == 0);
	CHECK(listen(fd, 128) == 0);
	socklen_t len = sizeof(*addr);
	CHECK(getsockname(fd, (struct sockaddr *)addr, &len) == 0);
	return fd;
}

static int connect_loopback(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK_EQ(gmp_connect(fd, (const struct sockaddr *)addr, sizeof(*addr)), 0);
	return fd;
}

/* ---- a read parks the goroutine, not the M ------------------------------------ */

struct park_arg {
	int fd;
	_Atomic int others_ran;	/* yields done by the busy goroutine */
	_Atomic int done;
	int others_at_wake;
	ssize_t got;
	char buf[16];
};

static void park_reader(void *p)
{
	struct park_arg *a = p;
	a->got = gmp_read(a->fd, a->buf, sizeof(a->buf));
	a->others_at_wake = atomic_load(&a->others_ran);
	atomic_store(&a->done, 1);
}

static void busy_then_write(void *p)
{
	struct park_arg *a = p;
	for (int i = 0; i < 100; i++) {
		atomic_fetch_add(&a->others_ran, 1);
		gmp_yield();
	}
	CHECK_EQ(gmp_write(a->fd + 1, "hello", 5), 5);
}

TEST_OPTS(read_parks_goroutine_not_m, .env = "GMP_MAXPROCS=1", .timeout_s = 20)
{
	int p[2];
	CHECK(pipe(p) == 0);
	CHECK_EQ(p[1], p[0] + 1);
	struct park_arg a = { .fd = p[0] };
	go(park_reader, &a);
	settle();
	CHECK(!atomic_load(&a.done));	/* parked in IO wait */
	CHECK(is_nonblocking(p[0]));	/* switched on first use */
	go(busy_then_write, &a);
	CHECK(wait_flag(&a.done, 5000));
	CHECK_EQ(a.got, 5);
	CHECK(memcmp(a.buf, "hello", 5) == 0);
	/* With one P, the busy goroutine could only have run on the M the
	 * reader left: all its 100 turns came before the reader woke. */
	CHECK_EQ(a.others_at_wake, 100);
	CHECK_EQ(gmp_close(p[0]), 0);
	CHECK_EQ(gmp_close(p[1]), 0);
}

/* ---- echo ---------------------------------------------------------------------- */

/* Echoes fd until end of stream, then shuts down its side and closes it. */
static void echo_server(void *p)
{
	int fd = (int)(intptr_t)p;
	char buf[16384];
	ssize_t n;
	while ((n = gmp_read(fd, buf, sizeof(buf))) > 0)
		CHECK_EQ(gmp_write(fd, buf, (size_t)n), n);
	CHECK_EQ(n, 0);
	CHECK_EQ(gmp_close(fd), 0);
}

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)(i * 131 + (i >> 11));
}

struct sender_arg {
	int fd;
	size_t total;
	gmp_waitgroup wg;
};

static void send_pattern(void *p)
{
	struct sender_arg *a = p;
	size_t chunk = 7919, sent = 0;
	unsigned char buf[7919];
	while (sent < a->total) {
		size_t n = a->total - sent < chunk ? a->total - sent : chunk;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern_byte(sent + i);
		CHECK_EQ(gmp_write(a->fd, buf, n), n);
		sent += n;
	}
	CHECK(shutdown(a->fd, SHUT_WR) == 0);
	gmp_wg_done(&a->wg);
}

/* Sends total bytes through fd (in another goroutine) and checks that the
 * same bytes come back. */
static void check_echo(int fd, size_t total)
{
	struct sender_arg a = { .fd = fd, .total = total };
	gmp_wg_add(&a.wg, 1);
	go(send_pattern, &a);
	unsigned char buf[10007];
	size_t got = 0;
	ssize_t n;
	while ((n = gmp_read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern_byte(got + (size_t)i))
				harness_fail(__FILE__, __LINE__, "byte %zu differs", got + (size_t)i);
		got += (size_t)n;
	}
	CHECK_EQ(n, 0);
	CHECK_EQ(got, total);
	gmp_wg_wait(&a.wg);
}

TEST_OPTS(socketpair_echo, .timeout_s = 30)
{
	const size_t sizes[] = { 1, 100, 65536, 4 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int sv[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		go(echo_server, (void *)(intptr_t)sv[1]);
		check_echo(sv[0], sizes[i]);
		CHECK_EQ(gmp_close(sv[0]), 0);
	}
}

/* After a short read, the next gmp_read parks without trying recv (the
 * queue was empty a moment ago).  Data that is already there by then must
 * still come back at once through the arm's readiness test, and data that
 * comes later through an event; under one P the reader is the only
 * goroutine, so nothing else would wake it. */
static void write_later(void *p)
{
	int fd = (int)(intptr_t)p;
	gmp_sleep(20 * 1000000);
	CHECK_EQ(gmp_write(fd, "later", 5), 5);
}

TEST_OPTS(read_after_short_read, .env = "GMP_MAXPROCS=1", .timeout_s = 20)
{
	int sv[2];
	char buf[64];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	for (int round = 0; round < 100; round++) {
		CHECK_EQ(write(sv[1], "first", 5), 5);
		CHECK_EQ(gmp_read(sv[0], buf, sizeof(buf)), 5);	/* short: "drained" */
		CHECK_EQ(write(sv[1], "waiting", 7), 7);		/* there before the next read */
		int64_t t0 = gmp_now();
		CHECK_EQ(gmp_read(sv[0], buf, sizeof(buf)), 7);
		CHECK(memcmp(buf, "waiting", 7) == 0);
		CHECK(gmp_now() - t0 < 1000000000);
	}
	go(write_later, (void *)(intptr_t)sv[1]);
	CHECK_EQ(gmp_read(sv[0], buf, sizeof(buf)), 5);
	CHECK(memcmp(buf, "later", 5) == 0);
	CHECK_EQ(gmp_close(sv[0]), 0);
	CHECK_EQ(gmp_close(sv[1]), 0);

	/* Datagrams: every read is short, and the next one is still queued. */
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(write(sv[1], "dgram", 5), 5);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(gmp_read(sv[0], buf, sizeof(buf)), 5);
	CHECK_EQ(gmp_close(sv[0]), 0);
	CHECK_EQ(gmp_close(sv[1]), 0);
}

static void accept_one_and_echo(void *p)
{
	int lfd = (int)(intptr_t)p;
	int fd = gmp_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	echo_server((void *)(intptr_t)fd);
}

TEST_OPTS(tcp_loopback_echo, .timeout_s = 30)
{
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr);
	for (int round = 0; round < 3; round++) {
		go(accept_one_and_echo, (void *)(intptr_t)lfd);
		int fd = connect_loopback(&addr);
		check_echo(fd, round == 2 ? 8 << 20 : 1000 * (size_t)(round + 1));
		CHECK_EQ(gmp_close(fd), 0);
	}
	CHECK_EQ(gmp_close(lfd), 0);
}

/* ---- accept and connect ---------------------------------------------------------- */

struct accept_arg {
	int lfd, fd;
	struct sockaddr_in peer;
	socklen_t peerlen;
	_Atomic int done;
};

static void accept_and_record(void *p)
{
	struct accept_arg *a = p;
	a->peerlen = sizeof(a->peer);
	a->fd = gmp_accept(a->lfd, (struct sockaddr *)&a->peer, &a->peerlen);
	atomic_store(&a->done, 1);
}

TEST_OPTS(accept_connect, .timeout_s = 20)
{
	struct sockaddr_in addr;
	struct accept_arg a = { .lfd = listen_loopback(&addr) };
	go(accept_and_record, &a);
	settle();
	CHECK(!atomic_load(&a.done));		/* parked: nobody has connected */
	int fd = connect_loopback(&addr);
	CHECK(is_nonblocking(fd));
	CHECK(wait_flag(&a.done, 5000));
	CHECK(a.fd >= 0);
	CHECK(is_nonblocking(a.fd));
	CHECK(fcntl(a.fd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(a.peerlen, sizeof(struct sockaddr_in));
	CHECK_EQ(a.peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	struct sockaddr_in local;
	socklen_t len = sizeof(local);
	CHECK(getsockname(fd, (struct sockaddr *)&local, &len) == 0);
	CHECK_EQ(a.peer.sin_port, local.sin_port);

	CHECK_EQ(gmp_write(fd, "ping", 4), 4);
	char buf[8];
	CHECK_EQ(gmp_read(a.fd, buf, sizeof(buf)), 4);
	CHECK(memcmp(buf, "ping", 4) == 0);
	CHECK_EQ(gmp_close(fd), 0);
	CHECK_EQ(gmp_read(a.fd, buf, sizeof(buf)), 0);	/* end of stream */
	CHECK_EQ(gmp_close(a.fd), 0);
	CHECK_EQ(gmp_close(a.lfd), 0);
}

TEST(connect_refused)
{
	/* A port that was just bound and released has no listener. */
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	socklen_t len = sizeof(addr);
	CHECK(getsockname(probe, (struct sockaddr *)&addr, &len) == 0);
	close(probe);
	for (int i = 0; i < 3; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);	/* blocking: gmp_connect copes */
		CHECK_EQ(gmp_connect(fd, (struct sockaddr *)&addr, sizeof(addr)), -ECONNREFUSED);
		close(fd);	/* a plain close: the next socket reuses the number */
	}
}

/* ---- waking parked goroutines: close and contexts --------------------------------- */

struct wait_arg {
	int fd;
	gmp_ctx *ctx;
	ssize_t result;
	int64_t finished;	/* gmp_now() when it gave up */
	_Atomic int done;
};

static void read_and_record(void *p)
{
	struct wait_arg *a = p;
	char buf[16];
	a->result = a->ctx ? gmp_read_ctx(a->ctx, a->fd, buf, sizeof(buf))
			   : gmp_read(a->fd, buf, sizeof(buf));
	a->finished = gmp_now();
	atomic_store(&a->done, 1);
}

static void write_forever(void *p)
{
	struct wait_arg *a = p;
	static char big[1 << 20];
	for (;;) {
		a->result = a->ctx ? gmp_write_ctx(a->ctx, a->fd, big, sizeof(big))
				   : gmp_write(a->fd, big, sizeof(big));
		if (a->result < 0)
			break;
	}
	a->finished = gmp_now();
	atomic_store(&a->done, 1);
}

TEST_OPTS(close_wakes_reader_and_writer, .timeout_s = 20)
{
	int p[2], sv[2];
	CHECK(pipe(p) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct wait_arg r = { .fd = p[0] }, w = { .fd = sv[0] };
	go(read_and_record, &r);
	go(write_forever, &w);
	settle();
	CHECK(!atomic_load(&r.done) && !atomic_load(&w.done));
	CHECK_EQ(gmp_close(p[0]), 0);
	CHECK_EQ(gmp_close(sv[0]), 0);
	CHECK(wait_flag(&r.done, 5000));
	CHECK(wait_flag(&w.done, 5000));
	CHECK_EQ(r.result, -EBADF);
	CHECK_EQ(w.result, -EBADF);
	CHECK_EQ(gmp_close(p[0]), -EBADF);	/* already closed */
	close(p[1]);
	close(sv[1]);
}

TEST_OPTS(ctx_cancel_wakes_reader, .timeout_s = 20)
{
	int p[2];
	CHECK(pipe(p) == 0);
	struct wait_arg a = { .fd = p[0], .ctx = gmp_ctx_with_cancel(gmp_ctx_background()) };
	CHECK(a.ctx != NULL);
	go(read_and_record, &a);
	settle();
	CHECK(!atomic_load(&a.done));
	gmp_ctx_cancel(a.ctx);
	CHECK(wait_flag(&a.done, 5000));
	CHECK_EQ(a.result, -ECANCELED);
	/* The fd is fine afterwards: a later read gets data. */
	CHECK_EQ(gmp_write(p[1], "x", 1), 1);
	char c;
	CHECK_EQ(gmp_read(p[0], &c, 1), 1);
	/* A context already cancelled gives up before trying. */
	CHECK_EQ(gmp_write(p[1], "y", 1), 1);
	CHECK_EQ(gmp_read_ctx(a.ctx, p[0], &c, 1), -ECANCELED);
	CHECK_EQ(gmp_write_ctx(a.ctx, p[1], "z", 1), -ECANCELED);
	gmp_ctx_release(a.ctx);
	gmp_close(p[0]);
	gmp_close(p[1]);
}

TEST_OPTS(ctx_timeout_wakes_reader_and_writer, .timeout_s = 20)
{
	int p[2], sv[2];
	CHECK(pipe(p) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	int64_t t0 = gmp_now();
	gmp_ctx *ctx = gmp_ctx_with_timeout(gmp_ctx_background(), 50 * MS);
	CHECK(ctx != NULL);
	struct wait_arg r = { .fd = p[0], .ctx = ctx }, w = { .fd = sv[0], .ctx = ctx };
	go(read_and_record, &r);
	go(write_forever, &w);
	CHECK(wait_flag(&r.done, 5000));
	CHECK(wait_flag(&w.done, 5000));
	CHECK_EQ(r.result, -ETIMEDOUT);
	CHECK_EQ(w.result, -ETIMEDOUT);
	CHECK(r.finished - t0 >= 50 * MS);
	CHECK(r.finished - t0 < 5000 * MS);

	/* accept gives up the same way */
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr);
	gmp_ctx *short_ctx = gmp_ctx_with_timeout(gmp_ctx_background(), 20 * MS);
	CHECK_EQ(gmp_accept_ctx(short_ctx, lfd, NULL, NULL), -ETIMEDOUT);
	int fd = socket(AF_INET, SOCK_STREAM, 0);	/* the context has expired by now */
	CHECK_EQ(gmp_connect_ctx(short_ctx, fd, (struct sockaddr *)&addr, sizeof(addr)), -ETIMEDOUT);
	gmp_close(fd);
	gmp_close(lfd);
	gmp_ctx_release(short_ctx);
	gmp_ctx_release(ctx);
}

/* ---- a reader and a writer on one fd -------------------------------------------- */

TEST_OPTS(reader_and_writer_on_one_fd, .timeout_s = 20)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	int small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	struct wait_arg r = { .fd = sv[0] }, w = { .fd = sv[0] };
	static char big[1 << 20];
	go(read_and_record, &r);
	go(write_forever, &w);	/* parks once the buffers are full */
	settle();
	CHECK(!atomic_load(&r.done) && !atomic_load(&w.done));

	/* Readiness to read wakes the reader and leaves the writer parked. */
	CHECK_EQ(gmp_write(sv[1], "hi", 2), 2);
	CHECK(wait_flag(&r.done, 5000));
	CHECK_EQ(r.result, 2);
	settle();
	CHECK(!atomic_load(&w.done));

	/* Draining the other end lets the writer go on: more than one of its
	 * 1 MiB writes comes through. */
	size_t drained = 0;
	while (drained < 3 * sizeof(big)) {
		ssize_t n = gmp_read(sv[1], big, sizeof(big));
		CHECK(n > 0);
		drained += (size_t)n;
	}
	CHECK(!atomic_load(&w.done));
	CHECK_EQ(gmp_close(sv[0]), 0);	/* and close ends it */
	CHECK(wait_flag(&w.done, 5000));
	CHECK_EQ(w.result, -EBADF);
	close(sv[1]);
}

/* Several goroutines waiting to read one pipe all get their byte. */
static void read_one_byte(void *p)
{
	struct wait_arg *a = p;
	char c;
	a->result = gmp_read(a->fd, &c, 1);
	atomic_store(&a->done, 1);
}

TEST_OPTS(many_readers_on_one_fd, .timeout_s = 20)
{
	int p[2];
	CHECK(pipe(p) == 0);
	struct wait_arg r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct wait_arg){ .fd = p[0] };
		go(read_one_byte, &r[i]);
	}
	settle();
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(gmp_write(p[1], "abcd" + i, 1), 1);
		gmp_sleep(5 * MS);
	}
	for (int i = 0; i < 4; i++) {
		CHECK(wait_flag(&r[i].done, 5000));
		CHECK_EQ(r[i].result, 1);
	}
	gmp_close(p[0]);
	gmp_close(p[1]);
}

/* ---- fd numbers reused after a plain close() ------------------------------------ */

/* Moves fd to number num (which must be free or fd itself); returns num. */
static int move_fd(int fd, int num)
{
	if (fd != num) {
		CHECK(dup2(fd, num) == num);
		close(fd);
	}
	return num;
}

TEST_OPTS(socket_fd_reused_after_plain_close, .timeout_s = 20)
{
	int a[2], b[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
	/* Park once on a[0] so that the netpoller registers it. */
	struct wait_arg r = { .fd = a[0] };
	go(read_and_record, &r);
	settle();
	CHECK_EQ(gmp_write(a[1], "old", 3), 3);
	CHECK(wait_flag(&r.done, 5000));
	CHECK_EQ(r.result, 3);

	/* Leave the old file armed in epoll: a read that parks and is
	 * cancelled, so the one-shot never fires. */
	gmp_ctx *ctx = gmp_ctx_with_cancel(gmp_ctx_background());
	r = (struct wait_arg){ .fd = a[0], .ctx = ctx };
	go(read_and_record, &r);
	settle();
	gmp_ctx_cancel(ctx);
	CHECK(wait_flag(&r.done, 5000));
	CHECK_EQ(r.result, -ECANCELED);
	gmp_ctx_release(ctx);

	/* The nasty case: a duplicate keeps the old file (and so its armed
	 * epoll registration) alive while the number goes to a new socket. */
	int num = a[0];
	int dup_old = dup(a[0]);
	CHECK(dup_old >= 0);
	close(a[0]);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
	CHECK(b[1] != num);
	move_fd(b[0], num);

	for (int round = 0; round < 3; round++) {
		r = (struct wait_arg){ .fd = num };
		go(read_and_record, &r);
		settle();
		CHECK(!atomic_load(&r.done));
		/* Noise on the old file may wake the reader spuriously, no more. */
		CHECK_EQ(gmp_write(a[1], "stale", 5), 5);
		settle();
		CHECK(!atomic_load(&r.done));
		CHECK_EQ(gmp_write(b[1], "new", 3), 3);
		CHECK(wait_flag(&r.done, 5000));
		CHECK_EQ(r.result, 3);
	}
	close(num);
	close(dup_old);
	close(a[1]);
	close(b[1]);
}

struct write_later_arg {
	int fd;
	_Atomic int wrote;
};

static void write_after_yields(void *p)
{
	struct write_later_arg *a = p;
	settle();
	atomic_store(&a->wrote, 1);
	CHECK_EQ(write(a->fd, "z", 1), 1);
}

TEST_OPTS(pipe_fd_reused_after_plain_close, .env = "GMP_MAXPROCS=1", .timeout_s = 20)
{
	int p[2], q[2];
	CHECK(pipe(p) == 0);
	CHECK_EQ(gmp_write(p[1], "1", 1), 1);
	char c;
	CHECK_EQ(gmp_read(p[0], &c, 1), 1);
	CHECK(is_nonblocking(p[0]));
	int num = p[0];
	close(p[0]);
	close(p[1]);
	/* A new, blocking pipe under the same number.  If gmp_read trusted what
	 * it knew of the old file, read(2) would block the only M and the
	 * writer below would never run. */
	CHECK(pipe(q) == 0);
	CHECK(q[1] != num);
	move_fd(q[0], num);
	CHECK(!is_nonblocking(num));
	struct write_later_arg w = { .fd = q[1] };
	go(write_after_yields, &w);
	CHECK_EQ(gmp_read(num, &c, 1), 1);
	CHECK(atomic_load(&w.wrote));
	CHECK_EQ(c, 'z');
	gmp_close(num);
	gmp_close(q[1]);
}

/* ---- stress: 1,000 socketpairs echoing at once ---------------------------------- */

enum { STRESS_PAIRS = 1000, STRESS_ROUNDS = 50, STRESS_MSG = 64 };

struct stress_client {
	int fd;
	int id;
	gmp_waitgroup *wg;
	_Atomic long *roundtrips;
};

static void stress_client(void *p)
{
	struct stress_client *c = p;
	unsigned char out[STRESS_MSG], in[STRESS_MSG];
	for (int r = 0; r < STRESS_ROUNDS; r++) {
		for (int i = 0; i < STRESS_MSG; i++)
			out[i] = (unsigned char)(c->id + r + i);
		CHECK_EQ(gmp_write(c->fd, out, sizeof(out)), sizeof(out));
		size_t got = 0;
		while (got < sizeof(in)) {
			ssize_t n = gmp_read(c->fd, in + got, sizeof(in) - got);
			CHECK(n > 0);
			got += (size_t)n;
		}
		CHECK(memcmp(in, out, sizeof(in)) == 0);
		atomic_fetch_add(c->roundtrips, 1);
	}
	CHECK_EQ(gmp_close(c->fd), 0);
	gmp_wg_done(c->wg);
}

TEST_OPTS(stress_1000_socketpairs, .timeout_s = 60)
{
	raise_fd_limit();
	static struct stress_client clients[STRESS_PAIRS];
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	_Atomic long roundtrips = 0;
	int64_t t0 = gmp_now();
	for (int i = 0; i < STRESS_PAIRS; i++) {
		int sv[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		clients[i] = (struct stress_client){ sv[0], i, &wg, &roundtrips };
		gmp_wg_add(&wg, 1);
		go(echo_server, (void *)(intptr_t)sv[1]);
		go(stress_client, &clients[i]);
	}
	gmp_wg_wait(&wg);
	double secs = (double)(gmp_now() - t0) / 1e9;
	CHECK_EQ(atomic_load(&roundtrips), (long)STRESS_PAIRS * STRESS_ROUNDS);
	fprintf(stderr, "%d round trips in %.2f s\n", STRESS_PAIRS * STRESS_ROUNDS, secs);
	CHECK(secs < 20);
	/* The echo servers see end of stream and close their ends. */
	for (int i = 0; i < 2000 && gmp_num_goroutine() > 1; i++)
		gmp_sleep(1 * MS);
	CHECK_EQ(gmp_num_goroutine(), 1);
}

/* ---- callers that are plain pthreads ---------------------------------------------- */

struct thread_arg {
	int pipe_rd;
	struct sockaddr_in addr;
	ssize_t got;
	char buf[8];
	int64_t waited;
	int echo_ok;
	_Atomic int started;	/* the thread is about to read */
	_Atomic int done;
};

static void *plain_thread(void *p)
{
	struct thread_arg *a = p;
	int64_t t0 = gmp_now();
	atomic_store(&a->started, 1);
	a->got = gmp_read(a->pipe_rd, a->buf, sizeof(a->buf));	/* parks this thread */
	a->waited = gmp_now() - t0;

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (gmp_connect(fd, (struct sockaddr *)&a->addr, sizeof(a->addr)) == 0 &&
	    gmp_write(fd, "thread", 6) == 6) {
		char back[6];
		size_t got = 0;
		ssize_t n;
		while (got < 6 && (n = gmp_read(fd, back + got, 6 - got)) > 0)
			got += (size_t)n;
		a->echo_ok = got == 6 && memcmp(back, "thread", 6) == 0;
	}
	gmp_close(fd);
	atomic_store(&a->done, 1);
	return NULL;
}

TEST_OPTS(calls_from_plain_pthread, .timeout_s = 20)
{
	int p[2];
	CHECK(pipe(p) == 0);
	struct thread_arg a = { .pipe_rd = p[0] };
	int lfd = listen_loopback(&a.addr);
	go(accept_one_and_echo, (void *)(intptr_t)lfd);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, plain_thread, &a) == 0);
	/* From the thread's start (late under an emulator), 50 ms before the
	 * write. */
	CHECK(wait_flag(&a.started, 10000));
	gmp_sleep(50 * MS);
	CHECK_EQ(gmp_write(p[1], "wake", 4), 4);
	/* Not pthread_join at once: that would hold this M (and, with one P,
	 * the echo goroutine the thread talks to) in the kernel. */
	CHECK(wait_flag(&a.done, 10000));
	CHECK(pthread_join(t, NULL) == 0);
	CHECK_EQ(a.got, 4);
	CHECK(memcmp(a.buf, "wake", 4) == 0);
	CHECK(a.waited >= 40 * MS);
	CHECK(a.echo_ok);
	gmp_close(lfd);
	gmp_close(p[0]);
	gmp_close(p[1]);
}

/* ---- errors ------------------------------------------------------------------------ */

TEST(bad_arguments)
{
	char buf[8];
	CHECK_EQ(gmp_read(-1, buf, 1), -EBADF);
	CHECK_EQ(gmp_write(-1, buf, 1), -EBADF);
	CHECK_EQ(gmp_accept(-1, NULL, NULL), -EBADF);
	CHECK_EQ(gmp_connect(-1, NULL, 0), -EBADF);
	CHECK_EQ(gmp_close(-1), -EBADF);
	CHECK_EQ(gmp_read(INT_MAX, buf, 1), -EBADF);
	CHECK_EQ(gmp_read(1 << 20, buf, 1), -EBADF);
	CHECK_EQ(gmp_close(1 << 20), -EBADF);

	int p[2];
	CHECK(pipe(p) == 0);
	CHECK_EQ(gmp_write(p[0], "x", 1), -EBADF);	/* the read end */
	CHECK_EQ(gmp_read(p[1], buf, 1), -EBADF);	/* the write end */
	CHECK_EQ(gmp_write(p[1], "x", 1), 1);
	CHECK_EQ(gmp_read(p[0], (void *)8, 1), -EFAULT);
	CHECK_EQ(gmp_write(p[1], (void *)8, 1), -EFAULT);
	CHECK_EQ(gmp_read(p[0], buf, 0), 0);
	CHECK_EQ(gmp_write(p[1], buf, 0), 0);
	CHECK_EQ(gmp_accept(p[0], NULL, NULL), -ENOTSOCK);
	CHECK_EQ(gmp_close(p[0]), 0);
	CHECK_EQ(gmp_close(p[0]), -EBADF);
	CHECK_EQ(gmp_read(p[0], buf, 1), -EBADF);

	int s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_EQ(gmp_accept(s, NULL, NULL), -EINVAL);	/* not listening */
	struct sockaddr_in addr = { .sin_family = AF_INET };
	CHECK_EQ(gmp_connect(s, (struct sockaddr *)&addr, 3), -EINVAL);
	CHECK_EQ(gmp_connect(s, (struct sockaddr *)8, sizeof(addr)), -EFAULT);
	CHECK_EQ(gmp_read(s, buf, 1), -ENOTCONN);
	CHECK_EQ(gmp_close(s), 0);
	gmp_close(p[1]);
}

TEST(end_of_stream_and_broken_pipe)
{
	int p[2];
	CHECK(pipe(p) == 0);
	CHECK_EQ(gmp_write(p[1], "last", 4), 4);
	CHECK_EQ(gmp_close(p[1]), 0);
	char buf[8];
	CHECK_EQ(gmp_read(p[0], buf, sizeof(buf)), 4);
	CHECK_EQ(gmp_read(p[0], buf, sizeof(buf)), 0);
	gmp_close(p[0]);

	/* A socket whose peer is gone: an error, never SIGPIPE. */
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	close(sv[1]);
	ssize_t r = gmp_write(sv[0], "x", 1);
	CHECK(r == -EPIPE || r == -ECONNRESET);
	gmp_close(sv[0]);
}

struct big_write_arg {
	int fd;
	const unsigned char *buf;
	size_t len;
	ssize_t result;
	_Atomic int done;
};

static void write_big(void *p)
{
	struct big_write_arg *a = p;
	a->result = gmp_write(a->fd, a->buf, a->len);
	gmp_close(a->fd);
	atomic_store(&a->done, 1);
}

/* One gmp_write much larger than the pipe: it parks and resumes until all
 * of it is through. */
TEST_OPTS(large_write_to_pipe, .timeout_s = 20)
{
	int p[2];
	CHECK(pipe(p) == 0);
	static unsigned char buf[3 << 20];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern_byte(i);
	struct big_write_arg a = { .fd = p[1], .buf = buf, .len = sizeof(buf) };
	go(write_big, &a);
	unsigned char in[65536];
	size_t got = 0;
	ssize_t n;
	while ((n = gmp_read(p[0], in, sizeof(in))) > 0) {
		CHECK(memcmp(in, buf + got, (size_t)n) == 0);
		got += (size_t)n;
	}
	CHECK_EQ(n, 0);
	CHECK_EQ(got, sizeof(buf));
	CHECK(wait_flag(&a.done, 5000));
	CHECK_EQ(a.result, sizeof(buf));
	gmp_close(p[0]);
}

/* ---- examples/httpd over loopback --------------------------------------------------- */

/* examples/httpd beside this binary's directory, or NULL. */
static const char *httpd_path(void)
{
	static char path[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/../examples/httpd", dirname(self));
	return access(path, X_OK) == 0 ? path : NULL;
}

/* Starts httpd on a free port; its pid, the port in *port, and its stdout
 * in *out_fd.  The child dies with this process (PR_SET_PDEATHSIG), so a
 * failed CHECK leaves no server behind. */
static pid_t start_httpd(const char *path, int *port, int *out_fd)
{
	int out[2];
	CHECK(pipe2(out, O_CLOEXEC) == 0);
	pid_t parent = getpid();
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* Only async-signal-safe calls between fork and exec. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(out[1], 1);
		harness_exec(path, "0", NULL);
		_exit(127);
	}
	close(out[1]);
	char line[256];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(line) - 1 && !memchr(line, '\n', len) &&
	       (n = gmp_read(out[0], line + len, sizeof(line) - 1 - len)) > 0)
		len += (size_t)n;
	line[len] = '\0';
	char *colon = strstr(line, "127.0.0.1:");
	CHECK(colon != NULL);
	*port = atoi(colon + strlen("127.0.0.1:"));
	CHECK(*port > 0);
	*out_fd = out[0];
	return pid;
}

/* Sends req and reads until the server closes; returns what came back. */
static char *http_exchange(int port, const char *req)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = connect_loopback(&addr);
	CHECK_EQ(gmp_write(fd, req, strlen(req)), strlen(req));
	/* Not static, nor _Thread_local: goroutines share threads. */
	char *reply = malloc(4096);
	CHECK(reply != NULL);
	const size_t cap = 4096;
	size_t len = 0;
	ssize_t n;
	while (len < cap - 1 && (n = gmp_read(fd, reply + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	reply[len] = '\0';
	gmp_close(fd);
	return reply;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

struct http_client_arg {
	int port;
	gmp_waitgroup *wg;
	_Atomic int *ok;
};

static void http_client(void *p)
{
	struct http_client_arg *a = p;
	char *reply = http_exchange(a->port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	if (strstr(reply, "HTTP/1.1 200 OK\r\n") && strstr(reply, "\r\n\r\nDone"))
		atomic_fetch_add(a->ok, 1);
	free(reply);
	gmp_wg_done(a->wg);
}

TEST_OPTS(httpd_over_loopback, .timeout_s = 30)
{
	const char *path = httpd_path();
	if (!path)
		harness_skip("examples/httpd is not built");
	int port, out;
	pid_t pid = start_httpd(path, &port, &out);

	/* Keep-alive: two pipelined requests, then one that asks to close. */
	int64_t t0 = gmp_now();
	char *reply = http_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
					  "POST /q HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
					  "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	int64_t took = gmp_now() - t0;
	CHECK_EQ(count_of(reply, "HTTP/1.1 200 OK\r\n"), 3);
	CHECK_EQ(count_of(reply, "Content-Length: 4\r\n"), 3);
	CHECK_EQ(count_of(reply, "\r\n\r\nDone"), 3);
	CHECK_EQ(count_of(reply, "Connection: close\r\n"), 1);
	CHECK(took >= 290 * MS);	/* one after the other, 100 ms each */
	free(reply);

	reply = http_exchange(port, "NONSENSE\r\n\r\n");
	CHECK(strstr(reply, "HTTP/1.1 400 ") == reply);
	free(reply);

	/* 100 connections at once: each sleeps in its own goroutine. */
	enum { CLIENTS = 100 };
	gmp_waitgroup wg = GMP_WAITGROUP_INIT;
	_Atomic int ok = 0;
	struct http_client_arg args[CLIENTS];
	t0 = gmp_now();
	for (int i = 0; i < CLIENTS; i++) {
		args[i] = (struct http_client_arg){ port, &wg, &ok };
		gmp_wg_add(&wg, 1);
		go(http_client, &args[i]);
	}
	gmp_wg_wait(&wg);
	took = gmp_now() - t0;
	CHECK_EQ(atomic_load(&ok), CLIENTS);
	CHECK(took < 3000 * MS);	/* not 100 x 100 ms */

#ifdef __SANITIZE_THREAD__
	/* TSan defers a signal handler until its thread makes an intercepted
	 * call, and an idle M sleeps in a raw futex syscall: SIGTERM could wait
	 * forever.  The clean stop is tested in the other builds. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return;
#endif
	/* SIGTERM: it stops accepting, says what it served, and exits 0. */
	CHECK(kill(pid, SIGTERM) == 0);
	char said[512];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(said) - 1 && (n = gmp_read(out, said + len, sizeof(said) - 1 - len)) > 0)
		len += (size_t)n;
	said[len] = '\0';
	CHECK(strstr(said, "httpd: Terminated, stopping\nhttpd: served ") != NULL);
	gmp_close(out);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status))
		harness_fail(__FILE__, __LINE__, "httpd killed by signal %d", WTERMSIG(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}
