/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * netpoll.c - the netpoller: fd I/O that parks the goroutine, never the M.
 *
 * Owns the epoll instance, the eventfd that breaks a blocked epoll_wait, the
 * table of fd descriptors (one struct pdesc per fd number), and the public
 * gmp_read/gmp_write/gmp_accept/gmp_connect, their _ctx forms, and gmp_close.
 *
 * How an operation runs: it tries the syscall without blocking.  Only on
 * EAGAIN does it queue a waiter (on its own stack) on the fd's pdesc, arm the
 * fd in epoll, and park.  Whoever wakes it (netpoll, gmp_close, or its
 * context being cancelled) dequeues it and tells it why; on "ready" it simply
 * tries the syscall again.  The scheduler calls netpoll() to collect the
 * goroutines whose fds became ready and makes them runnable itself.  One
 * exception to "syscall first": a read of a stream socket whose last read came
 * up short parks at once (read_would_block), because in request/response
 * traffic that read would only say EAGAIN.
 *
 * Arming: each wait re-arms the fd with EPOLL_CTL_MOD | EPOLLONESHOT for the
 * union of what its queued waiters want (falling back to EPOLL_CTL_ADD on
 * ENOENT).  This costs one epoll_ctl per park, and buys three things:
 *   - no lost wake-ups: MOD and ADD test readiness on the spot, so readiness
 *     that arrived between the EAGAIN and the arm is reported all the same;
 *   - a reader and a writer may wait on one fd at once: a fired one-shot is
 *     re-armed by netpoll for whichever waiters it did not wake;
 *   - an fd number reused after a plain close() cannot hang a waiter: the
 *     kernel dropped (or keeps, for a still-open duplicate) the registration
 *     of the old file, MOD fails with ENOENT for the new file and we ADD it.
 *     A stale event from the old file at worst wakes a waiter spuriously.
 *
 * Never blocking an M: sockets are read and written with MSG_DONTWAIT (and
 * MSG_NOSIGNAL: a closed peer gives -EPIPE, not SIGPIPE), which holds even
 * for a socket that was opened under a reused fd number behind our back.
 * Other fds (pipes, ttys, eventfds), listening sockets and connecting
 * sockets get their O_NONBLOCK checked (F_GETFL) before each syscall.  Every
 * socket is also switched to O_NONBLOCK on first use, as gmprt.h promises.
 *
 * Semantics worth knowing:
 *   - gmp_write returns n, or -errno even when part of buf went out (a
 *     cancelled context, a peer that went away): the stream is then broken.
 *   - Several goroutines may wait on one fd; readiness wakes all waiters of
 *     that direction and each retries (an accept loop with many acceptors
 *     gets a small herd, never a hang).
 *   - Close fds that goroutines may be waiting on with gmp_close: after a
 *     plain close() the kernel drops the fd from epoll without an event, so
 *     a goroutine already parked on it stays parked (as in Go).
 *   - The epoll instance is not re-created after fork(): a child that keeps
 *     using gmprt without exec would share it with its parent.
 *
 * Invariants:
 *   - A pdesc is never freed or moved.  The table is a directory of chunk
 *     pointers; chunks stay put, and a directory that grows is replaced (and
 *     the old one kept, never freed), so a lock-free reader holding an old
 *     directory still finds valid chunks.  Only fds that exist get chunks.
 *   - A waiter is queued, and the fd armed, under pd->lock, after its
 *     syscall said EAGAIN; gopark releases the lock only once the G's
 *     registers are saved, so a waker that dequeues it finds it parked.
 *   - Exactly one party dequeues a waiter, under pd->lock, and that party
 *     alone makes its G runnable, never touching the waiter (it lives on the
 *     G's stack) after letting go of the lock.
 *   - netpoll() never calls goready() for a goroutine: it may run on an M
 *     without a P.  It returns the ready Gs linked through g->schedlink.
 *     Adopted threads (which never run on a P) it wakes itself.
 *   - pd->gen changes on every gmp_close: a waiter whose syscall ran before
 *     the close gets -EBADF instead of waiting on a file that is gone.
 *   - Lock order: a context's lock, then pd->lock (the cancel callback runs
 *     under the context's lock); nothing here takes a context's lock while
 *     holding pd->lock.
 */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	PD_CHUNK_SHIFT = 8,		/* 256 descriptors per chunk */
	PD_CHUNK = 1 << PD_CHUNK_SHIFT,
	PD_DIR_MIN = 16,		/* chunks in the first directory */
	POLL_BATCH = 128,		/* events taken per epoll_wait */
};

enum io_mode { MODE_READ, MODE_WRITE };

/* What we learned about the file behind an fd number (a hint that corrects
 * itself if the number is reused: recv says ENOTSOCK for a non-socket). */
enum fd_kind { KIND_UNKNOWN, KIND_SOCKET, KIND_OTHER };

/* Whether a socket is SOCK_STREAM (a short read means its queue was empty;
 * for datagrams and records it means nothing).  A hint like fd_kind. */
enum stream_kind { STREAM_UNKNOWN, STREAM_YES, STREAM_NO };

struct pdesc;

/* One goroutine's wait on an fd, for the whole of one operation. */
struct io_waiter {
	struct g *g;
	struct pdesc *pd;
	struct dlink link;	/* on pd->q[mode] while queued; under pd->lock */
	enum io_mode mode;
	bool cancelled;		/* its context fired; under pd->lock */
	int result;		/* set by the waker: 0 ready, -EBADF closed, -ECANCELED */
	gmp_ctx *ctx;		/* watched, or NULL */
	struct ctx_waiter cw;
};


struct pdesc {
	struct rt_lock lock;		/* guards q[] and registered */
	_Atomic uint32_t gen;		/* bumped by gmp_close */
	_Atomic uint32_t closing;	/* gmp_close calls between wake-up and close(2) */
	_Atomic uint8_t kind;		/* enum fd_kind */
	_Atomic uint8_t drained;	/* a stream socket's last read came up short */
	_Atomic uint8_t stream;		/* enum stream_kind: learned at the first short read */
	bool registered;		/* we added fd to epoll and have not removed it */
	int fd;
	struct dlist q[2];		/* of io_waiter links, indexed by enum io_mode */
} __attribute__((aligned(CACHELINE)));

struct pd_dir {
	size_t nchunks;
	_Atomic(struct pdesc *) chunk[];
};

static _Atomic(struct pd_dir *) pd_dir;
static struct rt_lock pd_grow_lock;	/* serialises directory and chunk creation */

static int epfd = -1;
static int breakfd = -1;
static int init_err;			/* -errno if the netpoller could not start */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static char break_tag;			/* epoll data of breakfd: its address */
static _Atomic uint32_t break_pending;	/* breakfd written and not yet drained */
static _Atomic int32_t nwaiters;	/* waiters queued on any pdesc */
static _Atomic bool have_pwait2 = true;

/* ---- start-up ------------------------------------------------------------ */

static void netpoll_setup(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int bf = ep < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &break_tag };
	if (bf < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, bf, &ev) < 0) {
		init_err = -errno;
		warn("netpoll: cannot start (%s); fd I/O will fail", strerror(errno));
		if (ep >= 0)
			close(ep);
		if (bf >= 0)
			close(bf);
		return;
	}
	epfd = ep;
	breakfd = bf;
}

void netpoll_init(void)
{
	pthread_once(&init_once, netpoll_setup);
}

static int netpoll_started(void)
{
	netpoll_init();
	return init_err;
}

/* ---- the descriptor table ------------------------------------------------ */

static struct pdesc *pd_find(int fd)
{
	struct pd_dir *d = atomic_load_explicit(&pd_dir, memory_order_acquire);
	size_t ci = (unsigned)fd >> PD_CHUNK_SHIFT;
	if (!d || ci >= d->nchunks)
		return NULL;
	struct pdesc *c = atomic_load_explicit(&d->chunk[ci], memory_order_acquire);
	return c ? &c[fd & (PD_CHUNK - 1)] : NULL;
}

/* A directory with room for need chunks.  The old one is left in place on
 * purpose: readers may still be looking at it (its size is bounded by the
 * new one's, so what is kept is at most the final directory's size). */
static struct pd_dir *pd_dir_grow(struct pd_dir *old, size_t need)
{
	size_t n = old ? old->nchunks * 2 : PD_DIR_MIN;
	while (n < need)
		n *= 2;
	struct pd_dir *d = calloc(1, sizeof(*d) + n * sizeof(d->chunk[0]));
	if (!d)
		return NULL;
	d->nchunks = n;
	for (size_t i = 0; old && i < old->nchunks; i++)
		atomic_init(&d->chunk[i], atomic_load_explicit(&old->chunk[i], memory_order_relaxed));
	atomic_store_explicit(&pd_dir, d, memory_order_release);
	return d;
}

static struct pdesc *pd_chunk_new(size_t ci)
{
	struct pdesc *c = aligned_alloc(CACHELINE, PD_CHUNK * sizeof(*c));
	if (!c)
		return NULL;
	memset(c, 0, PD_CHUNK * sizeof(*c));
	for (int i = 0; i < PD_CHUNK; i++)
		c[i].fd = (int)(ci << PD_CHUNK_SHIFT) + i;
	return c;
}

static int pd_create(int fd, struct pdesc **out)
{
	size_t ci = (unsigned)fd >> PD_CHUNK_SHIFT;
	int err = 0;
	rt_lock(&pd_grow_lock);
	struct pd_dir *d = atomic_load_explicit(&pd_dir, memory_order_relaxed);
	if (!d || ci >= d->nchunks)
		d = pd_dir_grow(d, ci + 1);
	struct pdesc *c = d ? atomic_load_explicit(&d->chunk[ci], memory_order_relaxed) : NULL;
	if (d && !c) {
		c = pd_chunk_new(ci);
		if (c)
			atomic_store_explicit(&d->chunk[ci], c, memory_order_release);
	}
	if (!c)
		err = -ENOMEM;
	rt_unlock(&pd_grow_lock);
	if (c)
		*out = &c[fd & (PD_CHUNK - 1)];
	return err;
}

/* The descriptor of fd, created on first use; -EBADF if fd is not open. */
static int pd_get(int fd, struct pdesc **out)
{
	if (fd < 0)
		return -EBADF;
	*out = pd_find(fd);
	if (likely(*out != NULL))
		return 0;
	if (fcntl(fd, F_GETFD) < 0)	/* only open fds get table space */
		return -errno;
	return pd_create(fd, out);
}

/* ---- wait queues ----------------------------------------------------------- */

struct glist {
	struct g *head, *tail;
};

static void glist_push(struct glist *l, struct g *gp)
{
	gp->schedlink = NULL;
	if (l->tail)
		l->tail->schedlink = gp;
	else
		l->head = gp;
	l->tail = gp;
}

static void goready_list(struct g *gp)
{
	while (gp) {
		struct g *next = gp->schedlink;	/* goready reuses schedlink */
		goready(gp);
		gp = next;
	}
}

static void queue_push(struct dlist *q, struct io_waiter *w)
{
	dlist_push_back(q, &w->link);
	atomic_fetch_add_explicit(&nwaiters, 1, memory_order_relaxed);
}

static void queue_remove(struct dlist *q, struct io_waiter *w)
{
	dlist_remove(q, &w->link);
	atomic_fetch_sub_explicit(&nwaiters, 1, memory_order_relaxed);
}

/* Dequeues every waiter of q with the given result; their Gs go on ready. */
static void queue_wake_all(struct dlist *q, int result, struct glist *ready)
{
	while (q->first) {
		struct io_waiter *w = dlist_entry(q->first, struct io_waiter, link);
		queue_remove(q, w);
		w->result = result;
		glist_push(ready, w->g);
	}
}

/* ---- epoll ----------------------------------------------------------------- */

/* Arms the fd for what its queued waiters want, once.  pd->lock held. */
static int pd_arm(struct pdesc *pd)
{
	struct epoll_event ev = { .events = EPOLLONESHOT, .data.ptr = pd };
	if (pd->q[MODE_READ].first)
		ev.events |= EPOLLIN | EPOLLRDHUP;
	if (pd->q[MODE_WRITE].first)
		ev.events |= EPOLLOUT;
	int op = pd->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(epfd, op, pd->fd, &ev) < 0) {
		if (op == EPOLL_CTL_MOD && errno == ENOENT)
			op = EPOLL_CTL_ADD;	/* closed with close() and maybe reused */
		else if (op == EPOLL_CTL_ADD && errno == EEXIST)
			op = EPOLL_CTL_MOD;
		else
			return -errno;
		if (epoll_ctl(epfd, op, pd->fd, &ev) < 0)
			return -errno;
	}
	pd->registered = true;
	return 0;
}

/* Wakes the waiters an event is for, and re-arms the fd for the others (the
 * one-shot is spent).  If that fails, they are woken too: they will retry
 * their syscall and see what is wrong. */
static void pd_fire(struct pdesc *pd, uint32_t events, struct glist *ready)
{
	const uint32_t broken = EPOLLHUP | EPOLLERR;
	rt_lock(&pd->lock);
	if (events & (EPOLLIN | EPOLLRDHUP | broken))
		queue_wake_all(&pd->q[MODE_READ], 0, ready);
	if (events & (EPOLLOUT | broken))
		queue_wake_all(&pd->q[MODE_WRITE], 0, ready);
	if ((pd->q[MODE_READ].first || pd->q[MODE_WRITE].first) && pd_arm(pd) < 0) {
		queue_wake_all(&pd->q[MODE_READ], 0, ready);
		queue_wake_all(&pd->q[MODE_WRITE], 0, ready);
	}
	rt_unlock(&pd->lock);
}

static int epoll_wait_ns(struct epoll_event *ev, int max, int64_t delay_ns)
{
	if (delay_ns <= 0)
		return epoll_wait(epfd, ev, max, delay_ns < 0 ? -1 : 0);
	if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
		struct timespec ts = { delay_ns / 1000000000, delay_ns % 1000000000 };
		int n = epoll_pwait2(epfd, ev, max, &ts, NULL);
		if (n >= 0 || (errno != ENOSYS && errno != EPERM))
			return n;
		atomic_store_explicit(&have_pwait2, false, memory_order_relaxed);
	}
	/* Milliseconds, rounded up: waking early would make the caller spin. */
	int64_t ms = (delay_ns + 999999) / 1000000;
	return epoll_wait(epfd, ev, max, ms > INT_MAX ? INT_MAX : (int)ms);
}

static void break_drain(void)
{
	uint64_t count;
	while (read(breakfd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	atomic_store_explicit(&break_pending, 0, memory_order_release);
}

/* Wakes the adopted threads in list and returns the rest.  An adopted G never
 * goes on a run queue, so there is nothing to hand the scheduler: goready
 * only flips the futex its thread sleeps on, which needs no P. */
static struct g *wake_adopted(struct g *list)
{
	struct glist rest = { NULL, NULL };
	while (list) {
		struct g *gp = list;
		list = gp->schedlink;
		if (gp->adopted)
			goready(gp);
		else
			glist_push(&rest, gp);
	}
	return rest.head;
}

/* Without an epoll instance (it could not be created) no fd can have a
 * waiter; a caller that meant to wait for a timer still gets its wait. */
static struct g *netpoll_absent(int64_t delay_ns)
{
	const int64_t most = 10 * 1000000;	/* nothing can break this sleep */
	if (delay_ns != 0) {
		int64_t ns = delay_ns < 0 || delay_ns > most ? most : delay_ns;
		struct timespec ts = { 0, (long)ns };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* Collects the goroutines whose fds are ready: delay_ns < 0 waits for one,
 * 0 only looks, > 0 waits at most that long.  Returns early, possibly with
 * nothing, when netpoll_break() is called or a signal arrives. */
struct g *netpoll(int64_t delay_ns)
{
	if (epfd < 0)
		return netpoll_absent(delay_ns);
	struct epoll_event ev[POLL_BATCH];
	int n = epoll_wait_ns(ev, POLL_BATCH, delay_ns);
	if (n < 0) {
		if (errno != EINTR)
			fatal("netpoll: epoll_wait on fd %d: %s", epfd, strerror(errno));
		return NULL;
	}
	struct glist ready = { NULL, NULL };
	for (int i = 0; i < n; i++) {
		if (ev[i].data.ptr == &break_tag) {
			/* A non-blocking poll leaves the break for the M it was meant for. */
			if (delay_ns != 0)
				break_drain();
			continue;
		}
		pd_fire(ev[i].data.ptr, ev[i].events, &ready);
	}
	return wake_adopted(ready.head);
}

/* Wakes an M blocked in netpoll().  Calls that come before it drains the
 * eventfd cost one atomic load. */
void netpoll_break(void)
{
	if (breakfd < 0 || atomic_load_explicit(&break_pending, memory_order_relaxed))
		return;
	if (atomic_exchange_explicit(&break_pending, 1, memory_order_acq_rel))
		return;
	uint64_t one = 1;
	while (write(breakfd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

bool netpoll_anywaiters(void)
{
	return atomic_load_explicit(&nwaiters, memory_order_relaxed) > 0;
}

/* ---- waiting ------------------------------------------------------------- */

/* Runs in the canceller's context, under the context's lock. */
static void io_ctx_fired(struct ctx_waiter *cw)
{
	struct io_waiter *w = cw->arg;
	struct pdesc *pd = w->pd;
	struct g *gp = NULL;
	rt_lock(&pd->lock);
	w->cancelled = true;
	if (dlist_linked(&pd->q[w->mode], &w->link)) {
		queue_remove(&pd->q[w->mode], w);
		w->result = -ECANCELED;
		gp = w->g;
	}
	rt_unlock(&pd->lock);
	if (gp)
		goready(gp);
}

/* Parks until fd may be ready for w->mode.  gen is pd->gen as read before
 * the syscall that said EAGAIN.  0: try the syscall again; -errno: give up. */
static int wait_io(struct io_waiter *w, uint32_t gen)
{
	struct pdesc *pd = w->pd;
	int err = netpoll_started();
	if (err)
		return err;
	w->g = getg();
	rt_lock(&pd->lock);
	if (atomic_load_explicit(&pd->gen, memory_order_relaxed) != gen) {
		rt_unlock(&pd->lock);
		return -EBADF;		/* gmp_close ran after our syscall */
	}
	if (w->cancelled) {
		rt_unlock(&pd->lock);
		return -ECANCELED;
	}
	if (atomic_load_explicit(&pd->closing, memory_order_relaxed)) {
		/* A gmp_close is between its wake-up and close(2): our syscall
		 * saw either the file about to go or its successor.  Retry once
		 * the close is done. */
		rt_unlock(&pd->lock);
		gmp_yield();
		return 0;
	}
	queue_push(&pd->q[w->mode], w);
	err = pd_arm(pd);
	if (err) {
		queue_remove(&pd->q[w->mode], w);
		rt_unlock(&pd->lock);
		if (err != -EPERM)
			return err;
		gmp_sleep(1000000);	/* cannot be polled: try again soon */
		return 0;
	}
	w->result = 0;
	gopark_unlock(&pd->lock, "IO wait");
	return w->result;
}

/* Starts an operation on fd: its descriptor, and the context to watch. */
static int op_begin(struct io_waiter *w, gmp_ctx *ctx, int fd, enum io_mode mode)
{
	memset(w, 0, sizeof(*w));
	w->mode = mode;
	int err = pd_get(fd, &w->pd);
	if (err || !ctx)
		return err;
	w->cw.fn = io_ctx_fired;
	w->cw.arg = w;
	if (!ctx_watch(ctx, &w->cw)) {
		err = gmp_ctx_err(ctx);
		return err ? err : -ECANCELED;
	}
	w->ctx = ctx;
	return 0;
}

/* Ends it: once the context is unwatched nothing can touch w any more. */
static ssize_t op_end(struct io_waiter *w, ssize_t r)
{
	if (!w->ctx)
		return r;
	ctx_unwatch(w->ctx, &w->cw);
	if (r < 0 && w->cancelled) {
		int err = gmp_ctx_err(w->ctx);
		r = err ? err : -ECANCELED;
	}
	return r;
}

/* ---- non-blocking syscalls ------------------------------------------------ */

static int ensure_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if ((fl & O_NONBLOCK) || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0)
		return 0;
	return -errno;
}

static uint32_t pd_gen(struct pdesc *pd)
{
	return atomic_load_explicit(&pd->gen, memory_order_acquire);
}

/* After a socket call that did not say ENOTSOCK: remember it is a socket,
 * switching it to O_NONBLOCK the first time. */
static void note_socket(struct pdesc *pd, int fd, int err)
{
	if (err == -EBADF || atomic_load_explicit(&pd->kind, memory_order_relaxed) == KIND_SOCKET)
		return;
	ensure_nonblock(fd);
	atomic_store_explicit(&pd->kind, KIND_SOCKET, memory_order_relaxed);
}

/* One non-blocking transfer.  A socket goes through recv/send with
 * MSG_DONTWAIT (its own flags do not matter); anything else through
 * read/write on an fd made O_NONBLOCK first. */
static ssize_t sys_io(struct pdesc *pd, int fd, void *buf, size_t n, bool writing)
{
	if (atomic_load_explicit(&pd->kind, memory_order_relaxed) != KIND_OTHER) {
		ssize_t r = writing ? send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL)
				    : recv(fd, buf, n, MSG_DONTWAIT);
		int err = r < 0 ? -errno : 0;
		if (err != -ENOTSOCK) {
			note_socket(pd, fd, err);
			return r < 0 ? err : r;
		}
		atomic_store_explicit(&pd->kind, KIND_OTHER, memory_order_relaxed);
	}
	int err = ensure_nonblock(fd);
	if (err)
		return err;
	ssize_t r = writing ? write(fd, buf, n) : read(fd, buf, n);
	return r < 0 ? -errno : r;
}

static ssize_t sys_read(struct pdesc *pd, int fd, void *buf, size_t n)
{
	return sys_io(pd, fd, buf, n, false);
}

static ssize_t sys_write(struct pdesc *pd, int fd, const void *buf, size_t n)
{
	return sys_io(pd, fd, (void *)buf, n, true);
}

/* 0 connected, -EINPROGRESS still connecting (a spurious wake-up), -errno failed. */
static int connect_result(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	if (soerr == EINPROGRESS || soerr == EALREADY || soerr == EINTR)
		return -EINPROGRESS;
	if (soerr)
		return -soerr;
	struct sockaddr_storage peer;
	len = sizeof(peer);
	if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
		return 0;
	return errno == ENOTCONN ? -EINPROGRESS : -errno;
}

/* A freshly accepted fd: whatever its number was used for before is gone. */
static void pd_fresh_socket(int fd)
{
	struct pdesc *pd;
	if (pd_get(fd, &pd))
		return;
	rt_lock(&pd->lock);
	pd->registered = false;
	atomic_store_explicit(&pd->kind, KIND_SOCKET, memory_order_relaxed);
	atomic_store_explicit(&pd->drained, 0, memory_order_relaxed);
	atomic_store_explicit(&pd->stream, STREAM_UNKNOWN, memory_order_relaxed);
	rt_unlock(&pd->lock);
}

/* ---- the operations ------------------------------------------------------ */

/* After a try that returned *r: true to try again (interrupted, or it
 * would block and the fd became ready); false with *r final. */
static bool io_again(struct io_waiter *w, uint32_t gen, ssize_t *r)
{
	if (*r == -EINTR)
		return true;
	if (*r != -EAGAIN)
		return false;
	int err = wait_io(w, gen);
	if (err)
		*r = err;
	return err == 0;
}

/* Would a read of this socket find nothing?  A stream socket whose last
 * read returned less than asked had an empty queue then, and in a
 * request/response protocol the next read comes before the next request:
 * it would only say EAGAIN.  Such a read parks at once, and the arm's
 * readiness test (one-shot MOD or ADD) stands in for the syscall.  Only a
 * hint, used once per short read: data that is there after all is reported
 * by the arm at once, so it costs a poll round trip, never a lost wake-up. */
static bool read_would_block(struct pdesc *pd)
{
	return atomic_load_explicit(&pd->drained, memory_order_relaxed) &&
	       atomic_exchange_explicit(&pd->drained, 0, memory_order_relaxed) &&
	       atomic_load_explicit(&pd->kind, memory_order_relaxed) == KIND_SOCKET;
}

/* After a read of r bytes out of n: remember a short read of a stream
 * socket (asking its type once, at its first short read). */
static void note_read(struct pdesc *pd, int fd, ssize_t r, size_t n)
{
	if (r <= 0 || (size_t)r == n ||
	    atomic_load_explicit(&pd->kind, memory_order_relaxed) != KIND_SOCKET)
		return;
	uint8_t st = atomic_load_explicit(&pd->stream, memory_order_relaxed);
	if (st == STREAM_UNKNOWN) {
		int type = 0;
		socklen_t len = sizeof(type);
		st = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM
			     ? STREAM_YES : STREAM_NO;
		atomic_store_explicit(&pd->stream, st, memory_order_relaxed);
	}
	if (st == STREAM_YES)
		atomic_store_explicit(&pd->drained, 1, memory_order_relaxed);
}

static ssize_t io_read(gmp_ctx *ctx, int fd, void *buf, size_t n)
{
	struct io_waiter w;
	ssize_t r = op_begin(&w, ctx, fd, MODE_READ);
	if (r)
		return r;
	bool skip = read_would_block(w.pd);
	for (;;) {
		uint32_t gen = pd_gen(w.pd);
		r = skip ? -EAGAIN : sys_read(w.pd, fd, buf, n);
		skip = false;
		if (!io_again(&w, gen, &r))
			break;
	}
	note_read(w.pd, fd, r, n);
	return op_end(&w, r);
}

/* Writes all of buf: n, or -errno (even if part of it was written). */
static ssize_t io_write(gmp_ctx *ctx, int fd, const void *buf, size_t n)
{
	struct io_waiter w;
	ssize_t r = op_begin(&w, ctx, fd, MODE_WRITE);
	if (r)
		return r;
	size_t done = 0;
	for (;;) {
		uint32_t gen = pd_gen(w.pd);
		r = sys_write(w.pd, fd, (const char *)buf + done, n - done);
		if (r >= 0) {
			done += (size_t)r;
			if (done < n && r > 0)
				continue;
			r = (ssize_t)done;
			break;
		}
		if (!io_again(&w, gen, &r))
			break;
	}
	return op_end(&w, r);
}

static int io_accept(gmp_ctx *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	struct io_waiter w;
	int r = op_begin(&w, ctx, fd, MODE_READ);
	if (r)
		return r;
	for (;;) {
		uint32_t gen = pd_gen(w.pd);
		r = ensure_nonblock(fd);
		if (r == 0) {
			r = accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (r >= 0)
				break;
			r = -errno;
		}
		if (r == -EINTR || r == -ECONNABORTED)
			continue;	/* the next connection may be fine */
		if (r == -EAGAIN)
			r = wait_io(&w, gen);
		if (r < 0)
			break;
	}
	if (r >= 0)
		pd_fresh_socket(r);
	return (int)op_end(&w, r);
}

static int io_connect(gmp_ctx *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	struct io_waiter w;
	int r = op_begin(&w, ctx, fd, MODE_WRITE);
	if (r)
		return r;
	uint32_t gen = pd_gen(w.pd);
	r = ensure_nonblock(fd);
	if (r == 0)
		r = connect(fd, addr, addrlen) == 0 ? 0 : -errno;
	/* In progress (EINTR too: a non-blocking connect goes on regardless). */
	bool pending = r == -EINPROGRESS || r == -EINTR || r == -EALREADY;
	while (pending) {
		r = wait_io(&w, gen);
		if (r < 0)
			break;
		gen = pd_gen(w.pd);
		r = connect_result(fd);
		pending = r == -EINPROGRESS;
	}
	return (int)op_end(&w, r);
}

/* Wakes fd's waiters with -EBADF and forgets its registration. */
static void pd_shutdown(struct pdesc *pd)
{
	struct glist woken = { NULL, NULL };
	rt_lock(&pd->lock);
	atomic_fetch_add_explicit(&pd->gen, 1, memory_order_release);
	atomic_fetch_add_explicit(&pd->closing, 1, memory_order_relaxed);
	queue_wake_all(&pd->q[MODE_READ], -EBADF, &woken);
	queue_wake_all(&pd->q[MODE_WRITE], -EBADF, &woken);
	if (pd->registered) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, pd->fd, NULL);
		pd->registered = false;
	}
	atomic_store_explicit(&pd->kind, KIND_UNKNOWN, memory_order_relaxed);
	atomic_store_explicit(&pd->drained, 0, memory_order_relaxed);
	atomic_store_explicit(&pd->stream, STREAM_UNKNOWN, memory_order_relaxed);
	rt_unlock(&pd->lock);
	goready_list(woken.head);
}

/* ---- public API ------------------------------------------------------------ */

GMP_API ssize_t gmp_read(int fd, void *buf, size_t n)
{
	return io_read(NULL, fd, buf, n);
}

GMP_API ssize_t gmp_write(int fd, const void *buf, size_t n)
{
	return io_write(NULL, fd, buf, n);
}

GMP_API int gmp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return io_accept(NULL, fd, addr, addrlen);
}

GMP_API int gmp_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	return io_connect(NULL, fd, addr, addrlen);
}

GMP_API ssize_t gmp_read_ctx(gmp_ctx *ctx, int fd, void *buf, size_t n)
{
	return io_read(ctx, fd, buf, n);
}

GMP_API ssize_t gmp_write_ctx(gmp_ctx *ctx, int fd, const void *buf, size_t n)
{
	return io_write(ctx, fd, buf, n);
}

GMP_API int gmp_accept_ctx(gmp_ctx *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return io_accept(ctx, fd, addr, addrlen);
}

GMP_API int gmp_connect_ctx(gmp_ctx *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	return io_connect(ctx, fd, addr, addrlen);
}

GMP_API int gmp_close(int fd)
{
	if (fd < 0)
		return -EBADF;
	struct pdesc *pd = pd_find(fd);
	if (pd)
		pd_shutdown(pd);
	/* Linux releases the fd even when close() says EINTR. */
	int err = close(fd) < 0 && errno != EINTR ? -errno : 0;
	if (pd)
		atomic_fetch_sub_explicit(&pd->closing, 1, memory_order_release);
	return err;
}
