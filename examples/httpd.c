/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * httpd.c - the seed's HTTP server in C: one goroutine per connection, and
 * every request sleeps 100 ms (the seed's "slow database query") before it
 * answers "Done".
 *
 *   httpd [PORT [ADDR]]    PORT may also come from $PORT; the default is 8080
 *                          on 127.0.0.1.  PORT 0 picks a free port; the
 *                          "listening on" line says which.
 *
 * main() is goroutine 1 and runs the accept loop.  Each connection gets its
 * own goroutine with a small stack (32 KiB reserved, of which only the pages
 * touched cost memory), so tens of thousands of keep-alive connections cost
 * little and need no more threads than CPUs: a goroutine that waits for its
 * next request, or sleeps, parks, and its thread runs the others.
 *
 * HTTP/1.1 as far as wrk and curl need it: the request line, headers,
 * Content-Length bodies (read and thrown away), keep-alive unless the client
 * says "Connection: close" (HTTP/1.0: close unless it says keep-alive), and
 * pipelined requests.  Chunked request bodies get 501.
 *
 * SIGINT or SIGTERM stops the accept loop; main prints what was served and
 * returns 0.
 */
#define _GNU_SOURCE
#include <gmprt.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

enum {
	CONN_STACK = 32 << 10,		/* stack reserved per connection goroutine */
	HEAD_MAX = 4096,		/* longest request line plus headers */
};

#define QUERY_TIME_NS (100 * 1000000LL)	/* the seed's time.Sleep(100 * time.Millisecond) */

static atomic_long nconnections, nrequests;

/* ---- parsing a request ---------------------------------------------------- */

struct request {
	int status;		/* 0 fine; otherwise answer with this and close */
	bool keep_alive;
	bool head_only;		/* a HEAD request: headers, no body */
	long long body_len;	/* Content-Length */
};

/* Cuts the next CRLF-terminated line out of [*pos, end) and NUL-terminates it. */
static char *next_line(char **pos, char *end)
{
	char *line = *pos;
	char *cr = memmem(line, (size_t)(end - line), "\r\n", 2);
	if (!cr)
		return NULL;
	*cr = '\0';
	*pos = cr + 2;
	return line;
}

/* Does a comma-separated header value contain token (any case)? */
static bool has_token(const char *value, const char *token)
{
	size_t len = strlen(token);
	for (const char *p = value; *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t,");
		if (n == len && strncasecmp(p, token, len) == 0)
			return true;
		p += n;
	}
	return false;
}

static void parse_request_line(char *line, struct request *req)
{
	char *rest;
	char *method = strtok_r(line, " ", &rest);
	char *target = strtok_r(NULL, " ", &rest);
	char *version = strtok_r(NULL, " ", &rest);
	if (!method || !target || !version || strncmp(version, "HTTP/1.", 7) != 0) {
		req->status = 400;
		return;
	}
	req->keep_alive = strcmp(version, "HTTP/1.0") != 0;
	req->head_only = strcmp(method, "HEAD") == 0;
}

static void parse_header(char *line, struct request *req)
{
	char *colon = strchr(line, ':');
	if (!colon) {
		req->status = 400;
		return;
	}
	*colon = '\0';
	char *value = colon + 1 + strspn(colon + 1, " \t");
	if (strcasecmp(line, "Content-Length") == 0) {
		char *endp;
		errno = 0;
		req->body_len = strtoll(value, &endp, 10);
		if (errno || endp == value || req->body_len < 0)
			req->status = 400;
	} else if (strcasecmp(line, "Connection") == 0) {
		if (has_token(value, "close"))
			req->keep_alive = false;
		else if (has_token(value, "keep-alive"))
			req->keep_alive = true;
	} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
		req->status = 501;
	}
}

/* Parses the head [head, head + len), which ends with an empty line. */
static struct request parse_request(char *head, size_t len)
{
	struct request req = { 0 };
	char *pos = head, *end = head + len;
	char *line = next_line(&pos, end);
	if (!line)
		req.status = 400;
	else
		parse_request_line(line, &req);
	while (!req.status && (line = next_line(&pos, end)) != NULL && *line)
		parse_header(line, &req);
	return req;
}

/* ---- one connection --------------------------------------------------------- */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	default: return "Error";
	}
}

#define CONTENT_TYPE "Content-Type: text/plain; charset=utf-8\r\n"

/* The answer nearly every request gets, formatted once. */
static const char done_reply[] = "HTTP/1.1 200 OK\r\n" CONTENT_TYPE "Content-Length: 4\r\n\r\nDone";

static int respond(int fd, int status, const struct request *req)
{
	if (status == 200 && req->keep_alive && !req->head_only) {
		ssize_t n = (ssize_t)sizeof(done_reply) - 1;
		return gmp_write(fd, done_reply, (size_t)n) == n ? 0 : -1;
	}
	const char *body = status == 200 ? "Done" : reason_phrase(status);
	char out[256];
	int n = snprintf(out, sizeof(out),
			 "HTTP/1.1 %d %s\r\n"
			 CONTENT_TYPE
			 "Content-Length: %zu\r\n"
			 "%s"
			 "\r\n"
			 "%s",
			 status, reason_phrase(status), strlen(body),
			 req->keep_alive ? "" : "Connection: close\r\n",
			 req->head_only ? "" : body);
	return gmp_write(fd, out, (size_t)n) == n ? 0 : -1;
}

/* Throws away a body of len bytes, of which *have are already in buf. */
static int skip_body(int fd, char *buf, size_t *have, long long len)
{
	size_t buffered = *have < (unsigned long long)len ? *have : (size_t)len;
	memmove(buf, buf + buffered, *have - buffered);
	*have -= buffered;
	len -= (long long)buffered;
	while (len > 0) {
		char sink[1024];
		size_t want = len < (long long)sizeof(sink) ? (size_t)len : sizeof(sink);
		ssize_t n = gmp_read(fd, sink, want);
		if (n <= 0)
			return -1;
		len -= n;
	}
	return 0;
}

/* Reads until buf holds a whole request head; its length, 0 at end of
 * stream, or -1 when the head does not fit. */
static ssize_t read_head(int fd, char *buf, size_t *have)
{
	for (;;) {
		char *blank = memmem(buf, *have, "\r\n\r\n", 4);
		if (blank)
			return blank + 4 - buf;
		if (*have == HEAD_MAX)
			return -1;
		ssize_t n = gmp_read(fd, buf + *have, HEAD_MAX - *have);
		if (n <= 0)
			return 0;
		*have += (size_t)n;
	}
}

static void serve_connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[HEAD_MAX];
	size_t have = 0;
	atomic_fetch_add(&nconnections, 1);
	for (;;) {
		ssize_t head_len = read_head(fd, buf, &have);
		if (head_len == 0)
			break;
		struct request req = { .status = 431 };
		if (head_len > 0)
			req = parse_request(buf, (size_t)head_len);
		if (req.status) {
			req.keep_alive = false;
			respond(fd, req.status, &req);
			break;
		}
		have -= (size_t)head_len;
		memmove(buf, buf + head_len, have);
		if (skip_body(fd, buf, &have, req.body_len) < 0)
			break;

		gmp_sleep(QUERY_TIME_NS);	/* parks this goroutine, not the thread */

		if (respond(fd, 200, &req) < 0)
			break;
		atomic_fetch_add(&nrequests, 1);
		if (!req.keep_alive)
			break;
	}
	gmp_close(fd);
}

/* ---- listening, accepting, stopping ------------------------------------------ */

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* A listening socket on addr:port, or -1 with a message. */
static int listen_on(const char *addr, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai;
	int err = getaddrinfo(addr, port, &hints, &ai);
	if (err) {
		fprintf(stderr, "httpd: %s port %s: %s\n", addr, port, gai_strerror(err));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
		fprintf(stderr, "httpd: listen on %s:%s: %s\n", addr, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Signals arrive on a pipe that a goroutine reads: a handler can do no more
 * than write(2), and the goroutine can do the rest. */
static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	if (write(signal_pipe[1], &c, 1) < 0) {
		/* the pipe is full: a stop is already on its way */
	}
	errno = saved;
}

/* Closes the listener on the first SIGINT/SIGTERM, which wakes the accept loop. */
static void stop_on_signal(void *arg)
{
	int listen_fd = (int)(intptr_t)arg;
	unsigned char sig;
	if (gmp_read(signal_pipe[0], &sig, 1) == 1) {
		printf("httpd: %s, stopping\n", strsignal(sig));
		gmp_close(listen_fd);
	}
}

static int watch_signals(int listen_fd)
{
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct gmp_go_opts opts = { .stack_size = CONN_STACK, .name = "signals" };
	return gmp_go_opts(stop_on_signal, (void *)(intptr_t)listen_fd, &opts) < 0 ? -1 : 0;
}

/* Errors that pass: out of fds or memory for a moment, or a client that gave up. */
static bool accept_error_is_temporary(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM ||
	       err == -EPERM || err == -EPROTO || err == -ENETDOWN || err == -EHOSTUNREACH;
}

static int accept_loop(int listen_fd)
{
	struct gmp_go_opts opts = { .stack_size = CONN_STACK, .name = "conn" };
	int one = 1;
	for (;;) {
		int fd = gmp_accept(listen_fd, NULL, NULL);
		if (fd == -EBADF)
			return 0;	/* stop_on_signal closed the listener */
		if (fd < 0 && accept_error_is_temporary(fd)) {
			gmp_sleep(10 * 1000000LL);	/* let connections finish and free fds */
			continue;
		}
		if (fd < 0) {
			fprintf(stderr, "httpd: accept: %s\n", strerror(-fd));
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (gmp_go_opts(serve_connection, (void *)(intptr_t)fd, &opts) < 0)
			gmp_close(fd);
	}
}

int main(int argc, char **argv)
{
	const char *port = argc > 1 ? argv[1] : getenv("PORT") ? getenv("PORT") : "8080";
	const char *addr = argc > 2 ? argv[2] : "127.0.0.1";

	setvbuf(stdout, NULL, _IOLBF, 0);
	raise_fd_limit();
	int listen_fd = listen_on(addr, port);
	if (listen_fd < 0)
		return 1;
	if (watch_signals(listen_fd) < 0) {
		fprintf(stderr, "httpd: cannot watch signals: %s\n", strerror(errno));
		return 1;
	}
	printf("httpd: listening on %s:%d (pid %d, %d processors)\n", addr, bound_port(listen_fd),
	       (int)getpid(), gmp_maxprocs(0));

	int status = accept_loop(listen_fd);

	printf("httpd: served %ld requests on %ld connections\n", atomic_load(&nrequests),
	       atomic_load(&nconnections));
	return status;
}
