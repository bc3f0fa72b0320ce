/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * gmprt.h - the one public header of gmprt, Go's G/M/P scheduler for C.
 *
 * Goroutines (G) run on OS threads (M) that own processors (P).  main() is
 * goroutine 1; no setup call is needed.  Every function here may be called
 * from main(), from a goroutine, or from any other thread (which is then
 * adopted as a bound goroutine that keeps its own thread).
 *
 * Conventions:
 *   - errors are negative errno values, never a crash;
 *   - the zero value of every synchronisation type is ready to use;
 *   - every wait parks the goroutine, never the thread it ran on, so code that
 *     caches errno's address or other thread-local addresses across a call
 *     that may park must not assume it resumes on the same thread (use
 *     gmp_lock_os_thread for thread-affine C libraries).
 *
 * See docs/api.md for the full semantics of each call.
 */
#ifndef GMPRT_H
#define GMPRT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GMPRT_VERSION_MAJOR 0
#define GMPRT_VERSION_MINOR 1
#define GMPRT_VERSION_PATCH 0

#if defined(__GNUC__)
#define GMP_NORETURN __attribute__((noreturn))
#else
#define GMP_NORETURN
#endif

/* ---- goroutines ---------------------------------------------------------- */

struct gmp_go_opts {
	size_t stack_size;	/* stack reservation in bytes; 0: GMP_STACK or 64 KiB */
	const char *name;	/* shown in fatal-error dumps and gmpstat; may be NULL.
				   Not copied: must outlive the goroutine. */
};

int64_t gmp_go(void (*fn)(void *), void *arg);	/* G id > 0, or -errno */
int64_t gmp_go_opts(void (*fn)(void *), void *arg, const struct gmp_go_opts *opts);
void gmp_yield(void);				/* Go's runtime.Gosched */
GMP_NORETURN void gmp_exit(void);		/* Go's runtime.Goexit */
int64_t gmp_self(void);				/* id of the calling goroutine */
int gmp_maxprocs(int n);			/* n <= 0 queries; returns the previous value, or -errno */
int64_t gmp_num_goroutine(void);		/* live goroutines, as runtime.NumGoroutine */
void gmp_lock_os_thread(void);			/* calls nest, as in Go */
void gmp_unlock_os_thread(void);
int64_t gmp_now(void);				/* CLOCK_MONOTONIC, ns */
int gmp_sleep(int64_t ns);			/* 0; ns <= 0 returns at once */
const char *gmp_version(void);			/* "0.1.0" */

/* ---- channels ------------------------------------------------------------ */

typedef struct gmp_chan gmp_chan;

#define GMP_SEND 1
#define GMP_RECV 2

gmp_chan *gmp_chan_make(size_t elem_size, size_t cap);	/* NULL with errno set on failure */
int gmp_chan_send(gmp_chan *c, const void *elem);	/* 0, or -EPIPE once closed */
int gmp_chan_recv(gmp_chan *c, void *elem);		/* 1 value, 0 closed and drained */
int gmp_chan_trysend(gmp_chan *c, const void *elem);	/* 0, -EPIPE, or -EAGAIN */
int gmp_chan_tryrecv(gmp_chan *c, void *elem);		/* 1, 0, or -EAGAIN */
void gmp_chan_close(gmp_chan *c);			/* closing twice is a fatal error, as in Go */
void gmp_chan_free(gmp_chan *c);
size_t gmp_chan_len(gmp_chan *c);
size_t gmp_chan_cap(gmp_chan *c);

struct gmp_case {
	gmp_chan *chan;	/* NULL: never ready (Go's nil channel) */
	int op;		/* GMP_SEND or GMP_RECV */
	void *elem;	/* value to send, or buffer for the received value (may be NULL) */
	int ok;		/* set for a receive: 1 value, 0 closed */
};
/* index of the case that fired (random among the ready ones); timeout_ns < 0
 * blocks, 0 polls (-EAGAIN when nothing is ready), > 0 gives up with -ETIMEDOUT */
int gmp_select(struct gmp_case *cases, int n, int64_t timeout_ns);

/* ---- synchronisation (zero value ready; waits park the G, never the M) --- */

typedef struct gmp_mutex { uint64_t opaque_[4]; } gmp_mutex;
typedef struct gmp_rwmutex { uint64_t opaque_[12]; } gmp_rwmutex;
typedef struct gmp_cond { uint64_t opaque_[4]; } gmp_cond;
typedef struct gmp_waitgroup { uint64_t opaque_[6]; } gmp_waitgroup;
typedef struct gmp_once { uint64_t opaque_[6]; } gmp_once;

#define GMP_MUTEX_INIT { { 0 } }
#define GMP_RWMUTEX_INIT { { 0 } }
#define GMP_COND_INIT { { 0 } }
#define GMP_WAITGROUP_INIT { { 0 } }
#define GMP_ONCE_INIT { { 0 } }

void gmp_mutex_lock(gmp_mutex *mu);
int gmp_mutex_trylock(gmp_mutex *mu);		/* 1 locked, 0 busy */
void gmp_mutex_unlock(gmp_mutex *mu);
void gmp_rwmutex_rlock(gmp_rwmutex *rw);
void gmp_rwmutex_runlock(gmp_rwmutex *rw);
void gmp_rwmutex_lock(gmp_rwmutex *rw);
void gmp_rwmutex_unlock(gmp_rwmutex *rw);
void gmp_cond_wait(gmp_cond *cv, gmp_mutex *mu);
void gmp_cond_signal(gmp_cond *cv);
void gmp_cond_broadcast(gmp_cond *cv);
void gmp_wg_add(gmp_waitgroup *wg, int64_t delta);	/* a negative counter is a fatal error */
void gmp_wg_done(gmp_waitgroup *wg);
void gmp_wg_wait(gmp_waitgroup *wg);
void gmp_once_do(gmp_once *once, void (*fn)(void));

/* ---- contexts ------------------------------------------------------------ */

typedef struct gmp_ctx gmp_ctx;

gmp_ctx *gmp_ctx_background(void);			/* never cancelled; release is a no-op */
gmp_ctx *gmp_ctx_with_cancel(gmp_ctx *parent);		/* NULL with errno set on failure */
gmp_ctx *gmp_ctx_with_timeout(gmp_ctx *parent, int64_t ns);
gmp_ctx *gmp_ctx_with_deadline(gmp_ctx *parent, int64_t deadline_ns); /* gmp_now() clock */
void gmp_ctx_cancel(gmp_ctx *ctx);
gmp_chan *gmp_ctx_done(gmp_ctx *ctx);			/* closed when cancelled */
int gmp_ctx_err(gmp_ctx *ctx);				/* 0, -ECANCELED, or -ETIMEDOUT */
void gmp_ctx_release(gmp_ctx *ctx);			/* cancels it and frees it */

/* ---- I/O through the netpoller ------------------------------------------
 * The fd is switched to O_NONBLOCK on first use.  A goroutine that would
 * block parks; its M runs other goroutines.  Return bytes (or the new fd, or
 * 0) and -errno on failure.  The _ctx forms give up with gmp_ctx_err(ctx)
 * when ctx is cancelled or its deadline passes. */

ssize_t gmp_read(int fd, void *buf, size_t n);
ssize_t gmp_write(int fd, const void *buf, size_t n);	/* writes all n bytes unless an error occurs */
int gmp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
int gmp_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
ssize_t gmp_read_ctx(gmp_ctx *ctx, int fd, void *buf, size_t n);
ssize_t gmp_write_ctx(gmp_ctx *ctx, int fd, const void *buf, size_t n);
int gmp_accept_ctx(gmp_ctx *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen);
int gmp_connect_ctx(gmp_ctx *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen);
int gmp_close(int fd);	/* wakes goroutines waiting on fd with -EBADF, then closes it */

#ifdef __cplusplus
}
#endif
#endif /* GMPRT_H */
