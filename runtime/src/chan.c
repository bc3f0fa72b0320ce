/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * chan.c - channels and select (Go's chan.go and select.go).
 *
 * A channel is one allocation: the header below followed by a ring of cap
 * slots of elem_size bytes.  One rt_lock guards everything in it.  Goroutines
 * that cannot proceed wait on recvq or sendq with a sudog on their own stack;
 * the sudog's elem points at the waiter's value (a sender) or at its buffer
 * (a receiver), so a hand-off copies straight from one goroutine to the other.
 *
 * Invariants:
 *   - recvq is non-empty only while the buffer is empty, sendq only while it
 *     is full (for an unbuffered channel: only while nobody is on the other
 *     queue).  Once closed, both queues are empty and stay empty.
 *   - A waker copies the value, sets sudog.success (true: a value moved;
 *     false: the channel was closed) and g->param = sudog, unlocks the
 *     channel, and only then calls goready().  After goready() it touches
 *     neither the sudog (it lives on a stack that may now be gone) nor the
 *     channel (the woken side may free it at once).
 *   - close, trysend and tryrecv never park: they may run in scheduler
 *     context (a timer's fn, such as a context's deadline closing its done
 *     channel).
 *   - A woken sender or receiver never touches the channel again: its result
 *     is in its own sudog.  This is what makes gmp_chan_free safe as soon as
 *     "every value the caller expects has been received".
 *   - Buffered values keep their order: when a receiver takes from a full
 *     buffer while a sender waits, the sender's value goes into the freed
 *     slot at the tail, as in Go.
 *
 * select (gmp_select) follows selectgo: lock every channel of the cases in
 * address order (each once), look at the cases in a random order and take
 * the first ready one; otherwise put one sudog per case on the queues and
 * park.  The sudogs' G races for g->selectdone (waitq_dequeue does the CAS),
 * so exactly one waker, or the timeout timer, wakes the select.  The waker
 * that wins also unlinks the select's other sudogs from its own channel;
 * once awake, the select relocks only the *other* channels to unlink the
 * rest, so the channel that fired is never touched after its operation has
 * completed for the other side.
 */
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
	MAX_ELEM_SIZE = 64 << 10,	/* larger elements: EINVAL (Go: size out of range) */
	SELECT_STACK_CASES = 8,		/* selects up to this size allocate nothing */
};

struct gmp_chan {
	struct rt_lock lock;
	uint32_t closed;
	size_t elem_size;
	size_t cap;			/* ring slots; 0 for an unbuffered channel */
	_Atomic size_t qcount;		/* values in the ring; read unlocked by gmp_chan_len */
	size_t sendx, recvx;		/* next slot to fill, next slot to take */
	struct waitq recvq, sendq;
	_Alignas(max_align_t) unsigned char buf[];
};

/* ---- the ring and value copies (c->lock held) ---------------------------- */

static size_t qcount_get(const gmp_chan *c)
{
	return atomic_load_explicit(&c->qcount, memory_order_relaxed);
}

static void qcount_set(gmp_chan *c, size_t n)
{
	atomic_store_explicit(&c->qcount, n, memory_order_relaxed);
}

static void *slot(gmp_chan *c, size_t i)
{
	return c->buf + i * c->elem_size;
}

static size_t ring_next(const gmp_chan *c, size_t i)
{
	return i + 1 == c->cap ? 0 : i + 1;
}

/* Copies one element; a NULL destination discards it (recv with elem NULL).
 * The common sizes are copied inline, not through a call to memcpy. */
static hot_inline void elem_copy(const gmp_chan *c, void *dst, const void *src)
{
	if (!c->elem_size || !dst)
		return;
	switch (c->elem_size) {
	case 4: memcpy(dst, src, 4); break;
	case 8: memcpy(dst, src, 8); break;
	case 16: memcpy(dst, src, 16); break;
	default: memcpy(dst, src, c->elem_size); break;
	}
}

static void elem_zero(const gmp_chan *c, void *dst)
{
	if (c->elem_size && dst)
		memset(dst, 0, c->elem_size);
}

/* ---- select sudogs ------------------------------------------------------- */

/* One per case of a blocking select, on the selecting G's stack (or in its
 * heap block for big selects).  Only this file puts select sudogs on channel
 * queues, so a waker may widen a dequeued is_select sudog to this struct. */
struct select_sudog {
	struct sudog sg;		/* first: a struct sudog * converts back */
	struct select_sudog *all;	/* the select's array, indexed by case */
	int32_t nall;
	bool is_send;			/* which queue of sg.obj it sits on */
};

static struct waitq *select_queue(gmp_chan *c, const struct select_sudog *s)
{
	return s->is_send ? &c->sendq : &c->recvq;
}

/* The waker of a select holds c->lock and has won g->selectdone: it unlinks
 * the select's other sudogs on c, because the woken select will not lock c
 * again (c may be freed by then). */
static void select_unlink_siblings(gmp_chan *c, struct sudog *fired)
{
	struct select_sudog *self = (struct select_sudog *)fired;
	for (int32_t k = 0; k < self->nall; k++) {
		struct select_sudog *s = &self->all[k];
		if (s != self && s->sg.obj == c)
			waitq_remove(select_queue(c, s), &s->sg);
	}
}

/* ---- the operations, c->lock held ---------------------------------------- */

/* Marks a dequeued waiter as served and returns its G, which the caller
 * readies once it has unlocked every channel it holds. */
static hot_inline struct g *waiter_claim(gmp_chan *c, struct sudog *sg, bool success)
{
	struct g *gp = sg->g;
	if (sg->is_select)
		select_unlink_siblings(c, sg);
	sg->success = success;
	gp->param = sg;
	return gp;
}

/* Sends without blocking: 0 sent, -EPIPE closed, -EAGAIN it would block.
 * *wake is set to a receiver to ready after unlocking. */
static hot_inline int send_locked(gmp_chan *c, const void *elem, struct g **wake)
{
	if (c->closed)
		return -EPIPE;
	struct sudog *sg = waitq_dequeue(&c->recvq);
	if (sg) {
		elem_copy(c, sg->elem, elem);
		*wake = waiter_claim(c, sg, true);
		return 0;
	}
	size_t n = qcount_get(c);
	if (n < c->cap) {
		elem_copy(c, slot(c, c->sendx), elem);
		c->sendx = ring_next(c, c->sendx);
		qcount_set(c, n + 1);
		return 0;
	}
	return -EAGAIN;
}

/* Takes the value of a waiting sender.  Unbuffered: straight from the
 * sender.  Buffered (then full): the head of the ring, whose slot the
 * sender's value refills, so the ring's order is kept. */
static hot_inline void recv_from_sender(gmp_chan *c, struct sudog *sg, void *elem)
{
	if (c->cap == 0) {
		elem_copy(c, elem, sg->elem);
		return;
	}
	void *head = slot(c, c->recvx);
	elem_copy(c, elem, head);
	elem_copy(c, head, sg->elem);
	c->recvx = ring_next(c, c->recvx);
	c->sendx = c->recvx;
}

/* Receives without blocking: 1 a value, 0 closed and drained (elem zeroed),
 * -EAGAIN it would block.  *wake as for send_locked. */
static hot_inline int recv_locked(gmp_chan *c, void *elem, struct g **wake)
{
	size_t n = qcount_get(c);
	if (c->closed && n == 0) {
		elem_zero(c, elem);
		return 0;
	}
	struct sudog *sg = waitq_dequeue(&c->sendq);
	if (sg) {
		recv_from_sender(c, sg, elem);
		*wake = waiter_claim(c, sg, true);
		return 1;
	}
	if (n > 0) {
		elem_copy(c, elem, slot(c, c->recvx));
		c->recvx = ring_next(c, c->recvx);
		qcount_set(c, n - 1);
		return 1;
	}
	return -EAGAIN;
}

/* ---- channel API --------------------------------------------------------- */

GMP_API gmp_chan *gmp_chan_make(size_t elem_size, size_t cap)
{
	size_t ring;
	if (elem_size > MAX_ELEM_SIZE || __builtin_mul_overflow(elem_size, cap, &ring) ||
	    ring > PTRDIFF_MAX - sizeof(struct gmp_chan)) {
		errno = EINVAL;
		return NULL;
	}
	gmp_chan *c = malloc(sizeof(*c) + ring);
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, sizeof(*c));
	c->elem_size = elem_size;
	c->cap = cap;
	return c;
}

/* chan_send and chan_recv hold one runtime level (rt_hold) for the lock,
 * the operation and the wake-up that follows, so that the P is entered and
 * left once per operation: the channel lock shares that level (rt_lock_in).
 * These two end it. */
static int op_done(gmp_chan *c, struct g *wake, int r)
{
	rt_unlock_in(&c->lock);
	if (wake)
		goready(wake);
	rt_release();
	return r;
}

/* Parks on c, whose lock is held.  The operation's level is the lock's,
 * which the unlock function releases: the park happens at the depth the
 * rule of runtime.h requires. */
static void op_park(gmp_chan *c, const char *reason)
{
	gopark_unlock(&c->lock, reason);
}

/* Send or receive with the channel locked, then park when the operation
 * would block.  Returns what send_locked/recv_locked return, or the outcome
 * the waker left in the sudog. */
static int chan_send(gmp_chan *c, const void *elem, bool block)
{
	if (!c || (!elem && c->elem_size))
		return -EINVAL;
	struct g *wake = NULL;
	rt_hold();
	rt_lock_in(&c->lock);
	int r = send_locked(c, elem, &wake);
	if (r != -EAGAIN || !block)
		return op_done(c, wake, r);
	struct sudog sg = { .g = getg(), .elem = (void *)elem, .obj = c };
	waitq_enqueue(&c->sendq, &sg);
	op_park(c, "chan send");
	/* c may already be freed: only our own sudog is looked at. */
	return sg.success ? 0 : -EPIPE;
}

static int chan_recv(gmp_chan *c, void *elem, bool block)
{
	if (!c)
		return -EINVAL;
	struct g *wake = NULL;
	rt_hold();
	rt_lock_in(&c->lock);
	int r = recv_locked(c, elem, &wake);
	if (r != -EAGAIN || !block)
		return op_done(c, wake, r);
	struct sudog sg = { .g = getg(), .elem = elem, .obj = c };
	waitq_enqueue(&c->recvq, &sg);
	op_park(c, "chan receive");
	/* c may already be freed; a closer has zeroed elem for us. */
	return sg.success ? 1 : 0;
}

GMP_API int gmp_chan_send(gmp_chan *c, const void *elem)
{
	return chan_send(c, elem, true);
}

GMP_API int gmp_chan_recv(gmp_chan *c, void *elem)
{
	return chan_recv(c, elem, true);
}

GMP_API int gmp_chan_trysend(gmp_chan *c, const void *elem)
{
	return chan_send(c, elem, false);
}

GMP_API int gmp_chan_tryrecv(gmp_chan *c, void *elem)
{
	return chan_recv(c, elem, false);
}

/* Moves every waiter of q onto *list (linked through g->schedlink, free
 * while a G is parked), marked as woken by a close.  Receivers get their
 * zero value here, so that no woken G needs the channel again. */
static void close_drain(gmp_chan *c, struct waitq *q, bool receivers, struct g **list)
{
	struct sudog *sg;
	while ((sg = waitq_dequeue(q)) != NULL) {
		if (receivers)
			elem_zero(c, sg->elem);
		struct g *gp = waiter_claim(c, sg, false);
		gp->schedlink = *list;
		*list = gp;
	}
}

/* Closing wakes every waiter: receivers get (zero, closed), senders -EPIPE.
 * The Gs are readied only after the unlock, as for any waker. */
GMP_API void gmp_chan_close(gmp_chan *c)
{
	if (!c)
		return;
	rt_lock(&c->lock);
	if (c->closed) {
		rt_unlock(&c->lock);
		fatal("close of closed channel");
	}
	c->closed = 1;
	struct g *list = NULL;
	close_drain(c, &c->recvq, true, &list);
	close_drain(c, &c->sendq, false, &list);
	rt_unlock(&c->lock);
	while (list) {
		struct g *gp = list;
		list = gp->schedlink;
		gp->schedlink = NULL;
		goready(gp);
	}
}

/* Freeing a channel that still has waiters would leave them parked on freed
 * memory: that is reported as a fatal error rather than left to corrupt. */
GMP_API void gmp_chan_free(gmp_chan *c)
{
	if (!c)
		return;
	rt_lock(&c->lock);
	bool waiters = waitq_first(&c->recvq) || waitq_first(&c->sendq);
	rt_unlock(&c->lock);
	if (waiters)
		fatal("free of channel with waiting goroutines");
	free(c);
}

GMP_API size_t gmp_chan_len(gmp_chan *c)
{
	return c ? qcount_get(c) : 0;
}

GMP_API size_t gmp_chan_cap(gmp_chan *c)
{
	return c ? c->cap : 0;
}

/* ---- select -------------------------------------------------------------- */

/* Per-call scratch: the poll order, the distinct channels in lock (address)
 * order, and, for a blocking select, one sudog per case. */
struct select_work {
	int32_t *pollorder;
	int32_t npoll;
	gmp_chan **lockorder;
	int32_t nlock;
	struct select_sudog *sudogs;
	void *heap;			/* malloc'd block for big selects, or NULL */
};

/* The timeout of a select.  fn runs in scheduler context on some M; it wakes
 * the select only if it wins g->selectdone, exactly as a channel waker does
 * in waitq_dequeue.  Having won, the G stays parked until fn's goready, and
 * gp (a G struct) is never freed.  Once fn has set `finished` it touches
 * nothing of st again. */
struct select_timer {
	struct timer t;
	struct g *g;
	_Atomic uint32_t finished;
};

static void select_timeout_fire(void *arg)
{
	struct select_timer *st = arg;
	struct g *gp = st->g;
	uint32_t zero = 0;
	bool won = atomic_compare_exchange_strong(&gp->selectdone, &zero, 1);
	atomic_store_explicit(&st->finished, 1, memory_order_release);
	if (won)
		goready(gp);
}

/* After wake-up: once this returns the timer can neither run nor touch st
 * or g->selectdone, so st's frame may go and the next select may reset
 * selectdone.  timer_del promises to wait for a running fn; the finished
 * handshake does not rely on that promise (a timer popped by one M while
 * another M clears the P's timer_running slot would slip through it). */
static void select_timer_stop(struct select_timer *st)
{
	if (timer_del(&st->t))
		return;
	while (!atomic_load_explicit(&st->finished, memory_order_acquire))
		gmp_yield();
}

static int validate_cases(const struct gmp_case *cases, int n)
{
	if (n < 0 || (n > 0 && !cases))
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		const struct gmp_case *cs = &cases[i];
		if (cs->op != GMP_SEND && cs->op != GMP_RECV)
			return -EINVAL;
		if (cs->op == GMP_SEND && cs->chan && cs->chan->elem_size && !cs->elem)
			return -EINVAL;
	}
	return 0;
}

static int work_init(struct select_work *w, int n, bool blocking, int32_t *order_buf,
		     gmp_chan **lock_buf, struct select_sudog *sudog_buf)
{
	memset(w, 0, sizeof(*w));
	if (n <= SELECT_STACK_CASES) {
		w->pollorder = order_buf;
		w->lockorder = lock_buf;
		w->sudogs = sudog_buf;
		return 0;
	}
	size_t per = sizeof(int32_t) + sizeof(gmp_chan *) +
		     (blocking ? sizeof(struct select_sudog) : 0);
	char *p = malloc((size_t)n * per);
	if (!p)
		return -ENOMEM;
	w->heap = p;
	w->sudogs = blocking ? (struct select_sudog *)p : NULL;
	p += blocking ? (size_t)n * sizeof(struct select_sudog) : 0;
	w->lockorder = (gmp_chan **)p;
	w->pollorder = (int32_t *)(p + (size_t)n * sizeof(gmp_chan *));
	return 0;
}

static int chan_addr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (gmp_chan *const *)a, y = (uintptr_t) * (gmp_chan *const *)b;
	return x < y ? -1 : x > y;
}

static void sort_chans(gmp_chan **v, int32_t n)
{
	if (n > 16) {
		qsort(v, (size_t)n, sizeof(*v), chan_addr_cmp);
		return;
	}
	for (int32_t i = 1; i < n; i++) {
		gmp_chan *x = v[i];
		int32_t j = i;
		for (; j > 0 && (uintptr_t)v[j - 1] > (uintptr_t)x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

/* Random poll order over the cases with a channel (Go: a Fisher-Yates
 * insertion with cheaprandn), and the distinct channels sorted by address. */
static void select_orders(struct select_work *w, const struct gmp_case *cases, int n)
{
	int32_t np = 0, nl = 0;
	for (int32_t i = 0; i < n; i++) {
		if (!cases[i].chan)
			continue;
		int32_t j = (int32_t)(((uint64_t)fastrand() * (uint32_t)(np + 1)) >> 32);
		w->pollorder[np] = w->pollorder[j];
		w->pollorder[j] = i;
		np++;
		w->lockorder[nl++] = cases[i].chan;
	}
	sort_chans(w->lockorder, nl);
	int32_t d = 0;
	for (int32_t i = 0; i < nl; i++)
		if (d == 0 || w->lockorder[d - 1] != w->lockorder[i])
			w->lockorder[d++] = w->lockorder[i];
	w->npoll = np;
	w->nlock = d;
}

/* Locks the select's channels in address order, skipping skip (the channel
 * that fired, which must not be touched again). */
static void select_lock(const struct select_work *w, gmp_chan *skip)
{
	for (int32_t i = 0; i < w->nlock; i++)
		if (w->lockorder[i] != skip)
			rt_lock(&w->lockorder[i]->lock);
}

static void select_unlock(const struct select_work *w, gmp_chan *skip)
{
	for (int32_t i = w->nlock; i-- > 0;)
		if (w->lockorder[i] != skip)
			rt_unlock(&w->lockorder[i]->lock);
}

/* Pass 1, all channels locked: the first ready case in poll order.  Returns
 * its index, -EPIPE for a send on a closed channel, -EAGAIN if none is
 * ready.  On anything but -EAGAIN the channels are unlocked and the woken
 * partner readied. */
static int select_poll(struct select_work *w, struct gmp_case *cases)
{
	for (int32_t k = 0; k < w->npoll; k++) {
		int32_t i = w->pollorder[k];
		struct gmp_case *cs = &cases[i];
		struct g *wake = NULL;
		int r;
		if (cs->op == GMP_SEND) {
			r = send_locked(cs->chan, cs->elem, &wake);
		} else {
			r = recv_locked(cs->chan, cs->elem, &wake);
			if (r >= 0)
				cs->ok = r;
		}
		if (r == -EAGAIN)
			continue;
		select_unlock(w, NULL);
		if (wake)
			goready(wake);
		return r == -EPIPE ? -EPIPE : i;
	}
	return -EAGAIN;
}

/* What the park's unlock function needs; it lives on the selecting stack. */
struct select_park {
	gmp_chan **lockorder;
	int32_t nlock;
	struct timer *timer;
};

/* Runs once the selecting G's registers are saved.  Arms the timeout first,
 * then unlocks from the highest address down: while lockorder[0] is still
 * held the woken G cannot get past its relock (lockorder[0] cannot fire
 * while we hold it), so reading lockorder[] on its stack stays safe until the
 * final unlock, after which nothing of the G is touched. */
static bool select_park_commit(struct g *gp, void *arg)
{
	struct select_park *sp = arg;
	gmp_chan **lockorder = sp->lockorder;
	int32_t i = sp->nlock;
	if (sp->timer)
		timer_add(sp->timer);
	while (i-- > 0)
		rt_unlock(&lockorder[i]->lock);
	return true;
}

static void select_enqueue(struct select_work *w, struct gmp_case *cases, int n, struct g *gp)
{
	atomic_store(&gp->selectdone, 0);
	gp->param = NULL;
	for (int32_t i = 0; i < n; i++) {
		struct select_sudog *s = &w->sudogs[i];
		memset(s, 0, sizeof(*s));
		s->all = w->sudogs;
		s->nall = n;
		if (!cases[i].chan)
			continue;
		s->is_send = cases[i].op == GMP_SEND;
		s->sg.g = gp;
		s->sg.elem = cases[i].elem;
		s->sg.obj = cases[i].chan;
		s->sg.case_index = i;
		s->sg.is_select = true;
		waitq_enqueue(select_queue(cases[i].chan, s), &s->sg);
	}
}

/* After wake-up: unlink the sudogs that are still queued, on every channel
 * but the one that fired (its waker unlinked ours there). */
static void select_dequeue_rest(struct select_work *w, int n, gmp_chan *fired)
{
	select_lock(w, fired);
	for (int32_t i = 0; i < n; i++) {
		struct select_sudog *s = &w->sudogs[i];
		gmp_chan *c = s->sg.obj;
		if (c && c != fired)
			waitq_remove(select_queue(c, s), &s->sg);
	}
	select_unlock(w, fired);
}

static bool park_forever_commit(struct g *gp, void *arg)
{
	return true;
}

/* Pass 2 and 3: enqueue on every channel (all locked on entry), park, and
 * sort out who woke us. */
static int select_block(struct select_work *w, struct gmp_case *cases, int n,
			int64_t timeout_ns)
{
	struct g *gp = getg();
	struct select_timer st;
	struct select_park sp = { w->lockorder, w->nlock, NULL };
	if (timeout_ns > 0) {
		memset(&st, 0, sizeof(st));
		int64_t now = nanotime();
		st.t.when = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
		st.t.fn = select_timeout_fire;
		st.t.arg = &st;
		st.g = gp;
		sp.timer = &st.t;
	}
	select_enqueue(w, cases, n, gp);
	gopark(select_park_commit, &sp, "select");

	struct select_sudog *fired = gp->param;
	gp->param = NULL;
	if (sp.timer)
		select_timer_stop(&st);
	gmp_chan *fired_chan = fired ? fired->sg.obj : NULL;
	select_dequeue_rest(w, n, fired_chan);
	if (!fired)
		return -ETIMEDOUT;

	int32_t i = fired->sg.case_index;
	if (fired->is_send)
		return fired->sg.success ? i : -EPIPE;
	cases[i].ok = fired->sg.success; /* on a close, the closer zeroed elem */
	return i;
}

/*
 * Go's selectgo.  Returns the index of the case that fired, -EAGAIN (poll,
 * nothing ready), -ETIMEDOUT, -EINVAL (bad arguments), -ENOMEM (a select of
 * more than SELECT_STACK_CASES cases could not get its scratch memory), or
 * -EPIPE when a send case's channel is closed: Go panics there ("send on
 * closed channel"); gmprt reports it instead, whether the channel was closed
 * before the select looked at it or while it waited.  As in Go, a send case
 * on a closed channel may win the random poll order over another ready case.
 */
GMP_API int gmp_select(struct gmp_case *cases, int n, int64_t timeout_ns)
{
	int r = validate_cases(cases, n);
	if (r < 0)
		return r;
	bool blocking = timeout_ns != 0;
	int32_t order_buf[SELECT_STACK_CASES];
	gmp_chan *lock_buf[SELECT_STACK_CASES];
	struct select_sudog sudog_buf[SELECT_STACK_CASES];
	struct select_work w;
	if ((r = work_init(&w, n, blocking, order_buf, lock_buf, sudog_buf)) < 0)
		return r;
	select_orders(&w, cases, n);

	if (w.nlock == 0 && timeout_ns < 0) {
		/* select {} or only nil channels: blocks forever. */
		free(w.heap);
		gopark(park_forever_commit, NULL, "select (no cases)");
		fatal("select (no cases) woke up");
	}
	select_lock(&w, NULL);
	r = select_poll(&w, cases);
	if (r == -EAGAIN) {
		if (blocking)
			r = select_block(&w, cases, n, timeout_ns);
		else
			select_unlock(&w, NULL);
	}
	free(w.heap);
	return r;
}
