/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * ctx.c - contexts (Go's package context: Background, WithCancel,
 * WithTimeout, WithDeadline) and the ctx_watch/ctx_unwatch hooks through
 * which the netpoller learns that a context was cancelled.
 *
 * A context is a node in a tree.  Cancelling one (explicitly, by its timer,
 * or by its parent) records an error, closes its done channel if anyone
 * asked for it, runs its watchers and cancels its subtree, holding its lock
 * throughout, as Go does: so any cancel of a context returns only once its
 * whole subtree is cancelled.  The subtree is walked with an explicit stack
 * threaded through the contexts, not by recursion, so a chain of any depth
 * fits any stack (a goroutine's, or g0's in a timer callback).  The error is
 * written once and never changes.
 *
 * Invariants:
 *   - Lock order is parent before child: a cancel holds the locks on the
 *     path from where it started down to the context it is cancelling;
 *     nothing takes a parent's lock while holding a child's.  Timers are
 *     never added or deleted under a context's lock (a callback takes it).
 *   - Memory is reference counted.  References: one for the user's handle
 *     (dropped by gmp_ctx_release), one held by each child that has not yet
 *     detached (so a child can always lock its parent to leave its children
 *     list, even after the user released the parent), and one held by an
 *     armed timer (dropped by the callback, or by whoever deletes it before
 *     it fires).  The object is freed when the count reaches zero.
 *   - child->parent never changes after creation; child->sib (its link on
 *     the parent's children list) is guarded by the parent's lock.  A parent
 *     that cancels unlinks all its children.
 *   - The background context is a static object with no lock traffic: it is
 *     never cancelled, has no children list (its children are roots) and
 *     ignores watchers.
 *   - The done channel is made on first use (gmp_ctx_done) and installed
 *     under the lock, so it is closed exactly once, by whichever of install
 *     or cancel comes second.
 */
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>

struct gmp_ctx {
	struct rt_lock lock;		/* guards everything not marked otherwise */
	_Atomic int err;		/* 0, -ECANCELED or -ETIMEDOUT; set once, under lock */
	_Atomic int32_t refs;
	_Atomic bool detached;		/* has left its parent (atomic: exactly once) */
	bool is_background;
	bool timer_armed;		/* timer added and not yet fired or being deleted */
	int64_t deadline;		/* INT64_MAX: none; inherited from the parent */
	struct gmp_ctx *parent;		/* holds a reference until detach; NULL for roots */
	struct dlist children;		/* of sib links, newest first */
	struct dlink sib;		/* in parent->children; parent->lock */
	struct gmp_ctx *cancel_next;	/* next up the path of the cancel walking it */
	struct dlist watchers;		/* of ctx_waiter links, newest first */
	_Atomic(gmp_chan *) done;	/* NULL until asked for */
	struct timer timer;
};

static struct gmp_ctx background = {
	.is_background = true,
	.refs = 1,
	.deadline = INT64_MAX,
};

GMP_API gmp_ctx *gmp_ctx_background(void)
{
	return &background;
}

/* ---- references --------------------------------------------------------- */

static void ctx_ref(gmp_ctx *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void ctx_free(gmp_ctx *c)
{
	gmp_chan *done = atomic_load_explicit(&c->done, memory_order_acquire);
	if (done)
		gmp_chan_free(done);
	free(c);
}

static void ctx_unref(gmp_ctx *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		ctx_free(c);
}

/* ---- children and watchers lists ---------------------------------------- */

static void child_link(gmp_ctx *parent, gmp_ctx *child)
{
	dlist_push_front(&parent->children, &child->sib);
}

static void child_unlink(gmp_ctx *parent, gmp_ctx *child)
{
	dlist_remove(&parent->children, &child->sib);
}

static gmp_ctx *first_child(gmp_ctx *parent)
{
	return parent->children.first ? dlist_entry(parent->children.first, gmp_ctx, sib) : NULL;
}

static struct ctx_waiter *first_watcher(gmp_ctx *c)
{
	return c->watchers.first ? dlist_entry(c->watchers.first, struct ctx_waiter, link) : NULL;
}

/* ---- cancellation ------------------------------------------------------- */

/* Runs and forgets every watcher.  Each is unlinked before its fn runs, so
 * fn may reuse or free it. */
static void fire_watchers(gmp_ctx *c)
{
	struct ctx_waiter *w;
	while ((w = first_watcher(c)) != NULL) {
		dlist_remove(&c->watchers, &w->link);
		w->fn(w);
	}
}

/* Marks c cancelled: the error, the done channel, the watchers.  c->lock
 * is held.  False if it was cancelled already. */
static bool cancel_self_locked(gmp_ctx *c, int err)
{
	if (atomic_load_explicit(&c->err, memory_order_relaxed) != 0)
		return false;
	atomic_store_explicit(&c->err, err, memory_order_release);
	gmp_chan *done = atomic_load_explicit(&c->done, memory_order_relaxed);
	if (done)
		gmp_chan_close(done);
	fire_watchers(c);
	return true;
}

/* Cancels c and its subtree, depth first; c->lock is held and stays held.
 * The stack (top, linked by cancel_next) is the path from c down to the
 * context being cancelled, each of them locked.  Every context on it stays
 * alive: its owner's release blocks in ctx_detach on its parent's lock.  A
 * context is pushed only by the cancel that cancels it, so at most once. */
static void cancel_tree_locked(gmp_ctx *c, int err)
{
	if (!cancel_self_locked(c, err))
		return;
	c->cancel_next = NULL;
	gmp_ctx *top = c;
	while (top) {
		gmp_ctx *child = first_child(top);
		if (!child) {		/* top's subtree is done: pop it */
			gmp_ctx *finished = top;
			top = top->cancel_next;
			if (finished != c)
				rt_unlock(&finished->lock);
			continue;
		}
		rt_lock(&child->lock);
		child_unlink(top, child);
		if (cancel_self_locked(child, err)) {
			child->cancel_next = top;
			top = child;
		} else {
			/* cancelled by itself: its own cancel emptied its subtree */
			rt_unlock(&child->lock);
		}
	}
}

static void ctx_cancel_err(gmp_ctx *c, int err)
{
	rt_lock(&c->lock);
	cancel_tree_locked(c, err);
	rt_unlock(&c->lock);
}

/* Deletes c's timer if it has not fired; drops the timer's reference if so. */
static void ctx_stop_timer(gmp_ctx *c)
{
	if (!c->timer.fn)
		return;		/* never had one (fn is set once, at creation) */
	rt_lock(&c->lock);
	bool armed = c->timer_armed;
	c->timer_armed = false;
	rt_unlock(&c->lock);
	if (armed && timer_del(&c->timer))
		ctx_unref(c);	/* it will never fire: its reference is ours */
}

/* Leaves the parent's children list, once, and lets go of the parent. */
static void ctx_detach(gmp_ctx *c)
{
	gmp_ctx *parent = c->parent;
	if (!parent || atomic_exchange_explicit(&c->detached, true, memory_order_acq_rel))
		return;
	rt_lock(&parent->lock);
	if (dlist_linked(&parent->children, &c->sib))
		child_unlink(parent, c);
	rt_unlock(&parent->lock);
	ctx_unref(parent);
}

/* Timer callback, in scheduler context: cancel, then drop the timer's ref. */
static void ctx_timer_fired(void *arg)
{
	gmp_ctx *c = arg;
	rt_lock(&c->lock);
	c->timer_armed = false;
	cancel_tree_locked(c, -ETIMEDOUT);
	rt_unlock(&c->lock);
	ctx_unref(c);
}

/* ---- creation ----------------------------------------------------------- */

/* Allocates a context under parent: linked to it, or cancelled at once with
 * its error if the parent is cancelled already. */
static gmp_ctx *ctx_new(gmp_ctx *parent)
{
	if (!parent) {
		errno = EINVAL;
		return NULL;
	}
	gmp_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	atomic_init(&c->refs, 1);
	c->deadline = parent->deadline;
	if (parent->is_background)
		return c;	/* background never cancels: a root needs no link */
	ctx_ref(parent);
	c->parent = parent;
	rt_lock(&parent->lock);
	int perr = atomic_load_explicit(&parent->err, memory_order_relaxed);
	if (perr)
		atomic_store_explicit(&c->err, perr, memory_order_relaxed);
	else
		child_link(parent, c);
	rt_unlock(&parent->lock);
	return c;
}

GMP_API gmp_ctx *gmp_ctx_with_cancel(gmp_ctx *parent)
{
	return ctx_new(parent);
}

/* Arms c's timer for its deadline, or cancels it now if that has passed. */
static void ctx_arm_deadline(gmp_ctx *c, int64_t deadline)
{
	c->deadline = deadline;
	if (deadline <= gmp_now()) {
		ctx_cancel_err(c, -ETIMEDOUT);
		return;
	}
	rt_lock(&c->lock);
	bool cancelled = atomic_load_explicit(&c->err, memory_order_relaxed) != 0;
	if (!cancelled) {
		ctx_ref(c);		/* the timer's reference */
		c->timer_armed = true;
	}
	rt_unlock(&c->lock);
	if (cancelled)
		return;
	c->timer.when = deadline;
	c->timer.arg = c;
	c->timer.fn = ctx_timer_fired;
	timer_add(&c->timer);
}

GMP_API gmp_ctx *gmp_ctx_with_deadline(gmp_ctx *parent, int64_t deadline_ns)
{
	gmp_ctx *c = ctx_new(parent);
	if (!c)
		return NULL;
	/* a parent that expires first will cancel c (with -ETIMEDOUT) itself */
	if (deadline_ns < c->deadline)
		ctx_arm_deadline(c, deadline_ns);
	return c;
}

GMP_API gmp_ctx *gmp_ctx_with_timeout(gmp_ctx *parent, int64_t ns)
{
	int64_t now = gmp_now();
	int64_t deadline = ns > INT64_MAX - now ? INT64_MAX : now + ns; /* MAX: never */
	return gmp_ctx_with_deadline(parent, deadline);
}

/* ---- the rest of the public API ----------------------------------------- */

GMP_API void gmp_ctx_cancel(gmp_ctx *c)
{
	if (!c || c->is_background)
		return;
	ctx_cancel_err(c, -ECANCELED);
	ctx_stop_timer(c);
	ctx_detach(c);
}

GMP_API void gmp_ctx_release(gmp_ctx *c)
{
	if (!c || c->is_background)
		return;
	gmp_ctx_cancel(c);
	ctx_unref(c);
}

GMP_API int gmp_ctx_err(gmp_ctx *c)
{
	if (!c)
		return -EINVAL;
	return atomic_load_explicit(&c->err, memory_order_acquire);
}

/* Background's channel is never closed: made once, raced for by CAS. */
static gmp_chan *background_done(void)
{
	gmp_chan *ch = atomic_load_explicit(&background.done, memory_order_acquire);
	if (ch)
		return ch;
	gmp_chan *fresh = gmp_chan_make(0, 0);
	if (!fresh)
		return NULL;
	if (atomic_compare_exchange_strong_explicit(&background.done, &ch, fresh,
						    memory_order_acq_rel, memory_order_acquire))
		return fresh;
	gmp_chan_free(fresh);
	return ch;
}

GMP_API gmp_chan *gmp_ctx_done(gmp_ctx *c)
{
	if (!c) {
		errno = EINVAL;
		return NULL;
	}
	gmp_chan *ch = atomic_load_explicit(&c->done, memory_order_acquire);
	if (likely(ch != NULL))
		return ch;
	if (c->is_background)
		return background_done();
	gmp_chan *fresh = gmp_chan_make(0, 0);	/* outside the lock: it allocates */
	if (!fresh)
		return NULL;
	rt_lock(&c->lock);
	ch = atomic_load_explicit(&c->done, memory_order_relaxed);
	if (!ch) {
		ch = fresh;
		fresh = NULL;
		if (atomic_load_explicit(&c->err, memory_order_relaxed) != 0)
			gmp_chan_close(ch);
		atomic_store_explicit(&c->done, ch, memory_order_release);
	}
	rt_unlock(&c->lock);
	if (fresh)
		gmp_chan_free(fresh);
	return ch;
}

/* ---- internal hooks for the netpoller ----------------------------------- */

/* Registers w to run once when ctx is cancelled.  A NULL or background ctx
 * is never cancelled: w is accepted and never runs. */
bool ctx_watch(gmp_ctx *c, struct ctx_waiter *w)
{
	w->link = (struct dlink){ NULL, NULL };
	if (!c || c->is_background)
		return true;
	rt_lock(&c->lock);
	bool live = atomic_load_explicit(&c->err, memory_order_relaxed) == 0;
	if (live)
		dlist_push_front(&c->watchers, &w->link);
	rt_unlock(&c->lock);
	return live;
}

/* Forgets w.  Taking the lock also waits out a cancel running w->fn now. */
void ctx_unwatch(gmp_ctx *c, struct ctx_waiter *w)
{
	if (!c || c->is_background)
		return;
	rt_lock(&c->lock);
	if (dlist_linked(&c->watchers, &w->link))
		dlist_remove(&c->watchers, &w->link);
	rt_unlock(&c->lock);
}
