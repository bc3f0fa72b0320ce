/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * test_ctx.c - unit tests for contexts (runtime/src/ctx.c): cancellation and
 * its propagation, done channels in gmp_select, timeouts and deadlines,
 * release in any order, and the internal ctx_watch/ctx_unwatch hooks.
 *
 * The hooks are hidden symbols of libgmprt.so, so the tests find them in the
 * library's own (unstripped) symbol table; a stripped library skips those
 * tests.  Timing: a timeout is only checked not to fire early, never to fire
 * within a bound.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <gmprt.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* 1 if ch is closed (drained), 0 if a receive would block. */
static int is_closed(gmp_chan *ch)
{
	int r = gmp_chan_tryrecv(ch, NULL);
	CHECK(r == 0 || r == -EAGAIN);
	return r == 0;
}

static void wait_until_eq(_Atomic int *flag, int want)
{
	int64_t deadline = gmp_now() + 10000 * MS;
	while (atomic_load(flag) != want) {
		CHECK(gmp_now() < deadline);
		gmp_sleep(MS / 10);
	}
}

/* ---- background and bad arguments --------------------------------------- */

TEST(ctx_background_is_never_cancelled)
{
	gmp_ctx *bg = gmp_ctx_background();
	CHECK(bg != NULL);
	CHECK(gmp_ctx_background() == bg);
	CHECK_EQ(gmp_ctx_err(bg), 0);
	gmp_ctx_cancel(bg);
	gmp_ctx_release(bg);
	CHECK_EQ(gmp_ctx_err(bg), 0);
	gmp_chan *done = gmp_ctx_done(bg);
	CHECK(done != NULL);
	CHECK(gmp_ctx_done(bg) == done);
	CHECK_EQ(is_closed(done), 0);
	struct gmp_case c = { .chan = done, .op = GMP_RECV };
	CHECK_EQ(gmp_select(&c, 1, 0), -EAGAIN);
}

TEST(ctx_null_arguments)
{
	errno = 0;
	CHECK(gmp_ctx_with_cancel(NULL) == NULL);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(gmp_ctx_with_timeout(NULL, MS) == NULL);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(gmp_ctx_with_deadline(NULL, gmp_now()) == NULL);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(gmp_ctx_err(NULL), -EINVAL);
	CHECK(gmp_ctx_done(NULL) == NULL);
	gmp_ctx_cancel(NULL);
	gmp_ctx_release(NULL);
}

/* ---- cancellation ------------------------------------------------------- */

TEST(ctx_cancel_closes_done)
{
	gmp_ctx *c = gmp_ctx_with_cancel(gmp_ctx_background());
	CHECK(c != NULL);
	CHECK_EQ(gmp_ctx_err(c), 0);
	gmp_chan *early = gmp_ctx_done(c);
	CHECK(early != NULL);
	CHECK(gmp_ctx_done(c) == early);
	CHECK_EQ(is_closed(early), 0);
	gmp_ctx_cancel(c);
	CHECK_EQ(gmp_ctx_err(c), -ECANCELED);
	CHECK_EQ(is_closed(early), 1);
	CHECK_EQ(gmp_chan_recv(early, NULL), 0);
	gmp_ctx_cancel(c);	/* twice is harmless */
	CHECK_EQ(gmp_ctx_err(c), -ECANCELED);
	gmp_ctx_release(c);

	/* done asked for only after the cancel is closed already */
	gmp_ctx *late = gmp_ctx_with_cancel(gmp_ctx_background());
	gmp_ctx_cancel(late);
	CHECK_EQ(is_closed(gmp_ctx_done(late)), 1);
	gmp_ctx_release(late);
}

TEST(ctx_cancel_propagates_to_grandchildren)
{
	gmp_ctx *root = gmp_ctx_with_cancel(gmp_ctx_background());
	gmp_ctx *a = gmp_ctx_with_cancel(root);
	gmp_ctx *b = gmp_ctx_with_timeout(root, 3600 * 1000 * MS);
	gmp_ctx *a1 = gmp_ctx_with_cancel(a);
	gmp_ctx *a2 = gmp_ctx_with_cancel(a);
	gmp_ctx *b1 = gmp_ctx_with_cancel(b);
	gmp_ctx *a11 = gmp_ctx_with_cancel(a1);
	gmp_ctx *all[] = { root, a, b, a1, a2, b1, a11 };
	gmp_chan *done_a11 = gmp_ctx_done(a11);

	/* cancelling a leaf or a middle node touches only its subtree */
	gmp_ctx_cancel(a2);
	CHECK_EQ(gmp_ctx_err(a2), -ECANCELED);
	CHECK_EQ(gmp_ctx_err(a), 0);
	CHECK_EQ(gmp_ctx_err(a1), 0);
	gmp_ctx_cancel(b);
	CHECK_EQ(gmp_ctx_err(b1), -ECANCELED);
	CHECK_EQ(gmp_ctx_err(root), 0);
	CHECK_EQ(gmp_ctx_err(a), 0);
	CHECK_EQ(is_closed(done_a11), 0);

	gmp_ctx_cancel(root);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		CHECK_EQ(gmp_ctx_err(all[i]), -ECANCELED);
		CHECK_EQ(is_closed(gmp_ctx_done(all[i])), 1);
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		gmp_ctx_release(all[i]);
}

TEST(ctx_child_of_cancelled_parent_is_cancelled)
{
	gmp_ctx *p = gmp_ctx_with_cancel(gmp_ctx_background());
	gmp_ctx_cancel(p);
	gmp_ctx *c = gmp_ctx_with_cancel(p);
	CHECK(c != NULL);
	CHECK_EQ(gmp_ctx_err(c), -ECANCELED);
	CHECK_EQ(is_closed(gmp_ctx_done(c)), 1);
	gmp_ctx *t = gmp_ctx_with_timeout(p, 3600 * 1000 * MS);
	CHECK_EQ(gmp_ctx_err(t), -ECANCELED);

	/* a timed-out parent passes on its own error */
	gmp_ctx *expired = gmp_ctx_with_timeout(gmp_ctx_background(), 0);
	gmp_ctx *ec = gmp_ctx_with_cancel(expired);
	CHECK_EQ(gmp_ctx_err(ec), -ETIMEDOUT);
	gmp_ctx_release(ec);
	gmp_ctx_release(expired);
	gmp_ctx_release(t);
	gmp_ctx_release(c);
	gmp_ctx_release(p);
}

/* ---- done channels in select ---------------------------------------------- */

struct selector {
	gmp_ctx *ctx;
	gmp_chan *other;
	_Atomic int index;	/* case that fired, +1 */
	_Atomic int ok;
};

static void select_on_done(void *arg)
{
	struct selector *s = arg;
	struct gmp_case cases[2] = {
		{ .chan = s->other, .op = GMP_RECV },
		{ .chan = gmp_ctx_done(s->ctx), .op = GMP_RECV, .ok = -1 },
	};
	int r = gmp_select(cases, 2, -1);
	atomic_store(&s->ok, r >= 0 ? cases[r].ok : -1);
	atomic_store(&s->index, r + 1);
}

TEST(ctx_done_wakes_select)
{
	gmp_maxprocs(2);
	static struct selector s;
	s.ctx = gmp_ctx_with_cancel(gmp_ctx_background());
	s.other = gmp_chan_make(sizeof(int), 0);
	CHECK(gmp_go(select_on_done, &s) > 0);
	gmp_sleep(20 * MS);
	CHECK_EQ(atomic_load(&s.index), 0);	/* nothing fired yet */
	gmp_ctx_cancel(s.ctx);
	wait_until_eq(&s.index, 2);
	CHECK_EQ(atomic_load(&s.ok), 0);	/* a closed channel, not a value */
	gmp_ctx_release(s.ctx);
	gmp_chan_free(s.other);
}

TEST(ctx_done_in_select_with_timeout)
{
	gmp_ctx *c = gmp_ctx_with_timeout(gmp_ctx_background(), 30 * MS);
	struct gmp_case cs = { .chan = gmp_ctx_done(c), .op = GMP_RECV, .ok = -1 };
	/* a select timeout well past the context's: the context must win */
	CHECK_EQ(gmp_select(&cs, 1, 60000 * MS), 0);
	CHECK_EQ(cs.ok, 0);
	CHECK_EQ(gmp_ctx_err(c), -ETIMEDOUT);
	gmp_ctx_release(c);
}

/* ---- timeouts and deadlines --------------------------------------------- */

TEST(ctx_timeout_gives_etimedout)
{
	int64_t t0 = gmp_now();
	gmp_ctx *c = gmp_ctx_with_timeout(gmp_ctx_background(), 20 * MS);
	CHECK(c != NULL);
	gmp_ctx *child = gmp_ctx_with_cancel(c);
	gmp_ctx *longer = gmp_ctx_with_timeout(c, 3600 * 1000 * MS);	/* bounded by c */
	CHECK_EQ(gmp_chan_recv(gmp_ctx_done(c), NULL), 0);
	CHECK(gmp_now() - t0 >= 20 * MS);	/* never early */
	CHECK_EQ(gmp_ctx_err(c), -ETIMEDOUT);
	CHECK_EQ(gmp_ctx_err(child), -ETIMEDOUT);
	CHECK_EQ(gmp_chan_recv(gmp_ctx_done(longer), NULL), 0);
	CHECK_EQ(gmp_ctx_err(longer), -ETIMEDOUT);
	gmp_ctx_cancel(c);	/* a later cancel does not change the error */
	CHECK_EQ(gmp_ctx_err(c), -ETIMEDOUT);
	gmp_ctx_release(longer);
	gmp_ctx_release(child);
	gmp_ctx_release(c);
}

TEST(ctx_child_timeout_leaves_parent_alone)
{
	gmp_ctx *p = gmp_ctx_with_cancel(gmp_ctx_background());
	gmp_ctx *c = gmp_ctx_with_timeout(p, 10 * MS);
	CHECK_EQ(gmp_chan_recv(gmp_ctx_done(c), NULL), 0);
	CHECK_EQ(gmp_ctx_err(c), -ETIMEDOUT);
	CHECK_EQ(gmp_ctx_err(p), 0);
	gmp_ctx_release(p);
	gmp_ctx_release(c);
}

TEST(ctx_cancel_before_timeout_gives_ecanceled)
{
	gmp_ctx *c = gmp_ctx_with_timeout(gmp_ctx_background(), 3600 * 1000 * MS);
	gmp_ctx *child = gmp_ctx_with_cancel(c);
	gmp_ctx_cancel(c);
	CHECK_EQ(gmp_ctx_err(c), -ECANCELED);
	CHECK_EQ(gmp_ctx_err(child), -ECANCELED);
	gmp_ctx_release(child);
	gmp_ctx_release(c);

	/* a short one: whichever came first wins, and the error never changes */
	c = gmp_ctx_with_timeout(gmp_ctx_background(), 50 * MS);
	child = gmp_ctx_with_cancel(c);
	gmp_ctx_cancel(c);
	int first = gmp_ctx_err(c);
	CHECK(first == -ECANCELED || first == -ETIMEDOUT);
	CHECK_EQ(gmp_ctx_err(child), first);
	gmp_sleep(100 * MS);	/* past the deadline: the timer is gone or harmless */
	CHECK_EQ(gmp_ctx_err(c), first);
	CHECK_EQ(gmp_ctx_err(child), first);
	gmp_ctx_release(child);
	gmp_ctx_release(c);

	/* released with its timer pending: the timer must not touch freed memory */
	for (int i = 0; i < 100; i++)
		gmp_ctx_release(gmp_ctx_with_timeout(gmp_ctx_background(), (i % 10) * MS / 10));
	gmp_sleep(20 * MS);
}

TEST(ctx_deadline_in_the_past)
{
	gmp_ctx *c = gmp_ctx_with_deadline(gmp_ctx_background(), gmp_now() - 1);
	CHECK(c != NULL);
	CHECK_EQ(gmp_ctx_err(c), -ETIMEDOUT);
	CHECK_EQ(is_closed(gmp_ctx_done(c)), 1);
	gmp_ctx_release(c);
	gmp_ctx *z = gmp_ctx_with_timeout(gmp_ctx_background(), 0);
	CHECK_EQ(gmp_ctx_err(z), -ETIMEDOUT);
	gmp_ctx_release(z);
	gmp_ctx *neg = gmp_ctx_with_timeout(gmp_ctx_background(), -5 * MS);
	CHECK_EQ(gmp_ctx_err(neg), -ETIMEDOUT);
	gmp_ctx_release(neg);
	gmp_ctx *far = gmp_ctx_with_timeout(gmp_ctx_background(), INT64_MAX);
	CHECK_EQ(gmp_ctx_err(far), 0);
	gmp_ctx_release(far);
}

TEST(ctx_deadline_fires)
{
	int64_t when = gmp_now() + 15 * MS;
	gmp_ctx *c = gmp_ctx_with_deadline(gmp_ctx_background(), when);
	CHECK_EQ(gmp_chan_recv(gmp_ctx_done(c), NULL), 0);
	CHECK(gmp_now() >= when);
	CHECK_EQ(gmp_ctx_err(c), -ETIMEDOUT);
	gmp_ctx_release(c);
}

struct chain {
	gmp_ctx **links;
	int n;
	gmp_ctx *root;		/* what the goroutine cancels, or NULL */
	gmp_waitgroup wg;
};

/* Builds links[0..n) each the child of the previous, under root. */
static void chain_build(struct chain *ch, gmp_ctx *root)
{
	ch->links[0] = root;
	for (int i = 1; i < ch->n; i++) {
		ch->links[i] = gmp_ctx_with_cancel(ch->links[i - 1]);
		CHECK(ch->links[i] != NULL);
	}
}

static void chain_cancel(void *arg)
{
	struct chain *ch = arg;
	gmp_ctx_cancel(ch->root);
	gmp_wg_done(&ch->wg);
}

static void chain_check_and_release(struct chain *ch, int err)
{
	CHECK_EQ(gmp_ctx_err(ch->links[ch->n - 1]), err);
	CHECK_EQ(is_closed(gmp_ctx_done(ch->links[ch->n - 1])), 1);
	for (int i = 0; i < ch->n; i++)
		gmp_ctx_release(ch->links[i]);
}

/* Cancellation walks the tree without recursion: a very deep chain is
 * cancelled from a goroutine's small stack and from a timer callback. */
TEST(ctx_deep_chain_cancel)
{
	static struct chain ch;
	ch.n = 100000;
	ch.links = calloc(ch.n, sizeof(*ch.links));
	chain_build(&ch, gmp_ctx_with_cancel(gmp_ctx_background()));
	gmp_chan *leaf_done = gmp_ctx_done(ch.links[ch.n - 1]);
	ch.root = ch.links[0];
	gmp_wg_add(&ch.wg, 1);
	CHECK(gmp_go(chain_cancel, &ch) > 0);	/* on a default 64 KiB stack */
	gmp_wg_wait(&ch.wg);
	CHECK_EQ(gmp_chan_recv(leaf_done, NULL), 0);
	chain_check_and_release(&ch, -ECANCELED);

	chain_build(&ch, gmp_ctx_with_timeout(gmp_ctx_background(), 5 * MS));
	CHECK_EQ(gmp_chan_recv(gmp_ctx_done(ch.links[ch.n - 1]), NULL), 0);
	chain_check_and_release(&ch, -ETIMEDOUT);
	free(ch.links);
}

/* ---- release in any order ----------------------------------------------- */

TEST(ctx_release_after_parent_release)
{
	gmp_ctx *p = gmp_ctx_with_cancel(gmp_ctx_background());
	gmp_ctx *c = gmp_ctx_with_timeout(p, 3600 * 1000 * MS);
	gmp_ctx *g = gmp_ctx_with_cancel(c);
	gmp_chan *gdone = gmp_ctx_done(g);
	gmp_ctx_release(p);
	/* the children are cancelled but still valid objects */
	CHECK_EQ(gmp_ctx_err(c), -ECANCELED);
	CHECK_EQ(gmp_ctx_err(g), -ECANCELED);
	CHECK_EQ(is_closed(gdone), 1);
	CHECK_EQ(is_closed(gmp_ctx_done(c)), 1);
	gmp_ctx *late = gmp_ctx_with_cancel(c);	/* from a cancelled, orphaned parent */
	CHECK_EQ(gmp_ctx_err(late), -ECANCELED);
	gmp_ctx_release(c);
	CHECK_EQ(gmp_ctx_err(g), -ECANCELED);
	gmp_ctx_release(late);
	gmp_ctx_release(g);

	/* and children first, the other way round */
	p = gmp_ctx_with_cancel(gmp_ctx_background());
	c = gmp_ctx_with_cancel(p);
	gmp_ctx_release(c);
	CHECK_EQ(gmp_ctx_err(p), 0);
	gmp_ctx_release(p);
}

/* Random trees released in random orders (ASan/valgrind catch misuse). */
TEST(ctx_release_random_orders)
{
	enum { N = 200 };
	static gmp_ctx *nodes[N];
	uint32_t seed = 12345;
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < N; i++) {
			seed = seed * 1103515245 + 12345;
			gmp_ctx *parent = i ? nodes[(seed >> 8) % i] : gmp_ctx_background();
			nodes[i] = (seed >> 4) % 3 == 0 ? gmp_ctx_with_timeout(parent, (seed % 50) * MS / 10)
							: gmp_ctx_with_cancel(parent);
			CHECK(nodes[i] != NULL);
			if ((seed >> 12) % 7 == 0)
				gmp_ctx_done(nodes[i]);
		}
		for (int i = N - 1; i > 0; i--) {	/* shuffle */
			seed = seed * 1103515245 + 12345;
			int j = (seed >> 8) % (i + 1);
			gmp_ctx *t = nodes[i];
			nodes[i] = nodes[j];
			nodes[j] = t;
		}
		for (int i = 0; i < N; i++) {
			if (i % 17 == 0 && i + 5 < N)	/* one not released yet */
				gmp_ctx_cancel(nodes[i + 5]);
			gmp_ctx_release(nodes[i]);
		}
	}
}

struct churn {
	gmp_ctx *shared;
	gmp_waitgroup wg;
	_Atomic int cancelled_seen;
};

/* Children of one shared parent made, watched and released while the
 * parent is cancelled from another goroutine. */
static void churn_children(void *arg)
{
	struct churn *ch = arg;
	for (int i = 0; i < 2000; i++) {
		gmp_ctx *c = i % 2 ? gmp_ctx_with_cancel(ch->shared)
				   : gmp_ctx_with_timeout(ch->shared, (i % 5) * MS / 10);
		CHECK(c != NULL);
		gmp_ctx *gc = gmp_ctx_with_cancel(c);
		if (i % 3 == 0)
			gmp_ctx_done(gc);
		if (i % 2)
			gmp_ctx_release(c), gmp_ctx_release(gc);
		else
			gmp_ctx_release(gc), gmp_ctx_release(c);
		if (gmp_ctx_err(ch->shared))
			atomic_store(&ch->cancelled_seen, 1);
	}
	gmp_wg_done(&ch->wg);
}

TEST(ctx_concurrent_churn_two_procs)
{
	gmp_maxprocs(2);
	static struct churn ch;
	ch.shared = gmp_ctx_with_cancel(gmp_ctx_background());
	gmp_wg_add(&ch.wg, 4);
	for (int i = 0; i < 4; i++)
		CHECK(gmp_go(churn_children, &ch) > 0);
	gmp_sleep(2 * MS);
	gmp_ctx_cancel(ch.shared);
	gmp_wg_wait(&ch.wg);
	CHECK_EQ(gmp_ctx_err(ch.shared), -ECANCELED);
	gmp_ctx_release(ch.shared);
}

/* ---- ctx_watch / ctx_unwatch (hidden symbols, found in the symtab) ------- */

struct ctx_waiter {	/* the layout runtime.h gives it */
	void (*fn)(struct ctx_waiter *w);
	void *arg;
	struct ctx_waiter *next, *prev;
};

static bool (*ctx_watch)(gmp_ctx *, struct ctx_waiter *);
static void (*ctx_unwatch)(gmp_ctx *, struct ctx_waiter *);

/* Address of a hidden function of the library that holds addr_in_lib. */
static void *hidden_symbol(const void *addr_in_lib, const char *name)
{
	Dl_info info;
	if (!dladdr(addr_in_lib, &info) || !info.dli_fname)
		return NULL;
	int fd = open(info.dli_fname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	void *map = MAP_FAILED;
	if (fstat(fd, &st) == 0)
		map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return NULL;
	const Elf64_Ehdr *eh = map;
	const Elf64_Shdr *sh = (const void *)((const char *)map + eh->e_shoff);
	void *found = NULL;
	for (int i = 0; i < eh->e_shnum && !found; i++) {
		if (sh[i].sh_type != SHT_SYMTAB)
			continue;
		const Elf64_Sym *sym = (const void *)((const char *)map + sh[i].sh_offset);
		const char *strtab = (const char *)map + sh[sh[i].sh_link].sh_offset;
		size_t n = sh[i].sh_size / sizeof(*sym);
		for (size_t k = 0; k < n; k++)
			if (ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC &&
			    strcmp(strtab + sym[k].st_name, name) == 0) {
				found = (char *)info.dli_fbase + sym[k].st_value;
				break;
			}
	}
	munmap(map, st.st_size);
	return found;
}

static void need_hooks(void)
{
	const void *in_lib = gmp_ctx_background();	/* a static object in the library */
	*(void **)&ctx_watch = hidden_symbol(in_lib, "ctx_watch");
	*(void **)&ctx_unwatch = hidden_symbol(in_lib, "ctx_unwatch");
	if (!ctx_watch || !ctx_unwatch)
		harness_skip("ctx_watch/ctx_unwatch not found in libgmprt.so's symbol table");
}

struct probe {
	struct ctx_waiter w;
	_Atomic int calls;
	_Atomic int running;
	int64_t hold_ns;	/* how long fn keeps running */
};

static void probe_fn(struct ctx_waiter *w)
{
	struct probe *pr = w->arg;
	CHECK(w == &pr->w);
	atomic_store(&pr->running, 1);
	int64_t until = gmp_now() + pr->hold_ns;
	while (gmp_now() < until)
		;
	atomic_fetch_add(&pr->calls, 1);
	atomic_store(&pr->running, 0);
}

static void probe_init(struct probe *pr, int64_t hold_ns)
{
	memset(pr, 0, sizeof(*pr));
	pr->w.fn = probe_fn;
	pr->w.arg = pr;
	pr->hold_ns = hold_ns;
}

TEST(ctx_watch_fires_once_on_cancel)
{
	need_hooks();
	gmp_ctx *c = gmp_ctx_with_cancel(gmp_ctx_background());
	struct probe a, b, gone;
	probe_init(&a, 0);
	probe_init(&b, 0);
	probe_init(&gone, 0);
	CHECK(ctx_watch(c, &a.w));
	CHECK(ctx_watch(c, &gone.w));
	CHECK(ctx_watch(c, &b.w));
	ctx_unwatch(c, &gone.w);
	CHECK_EQ(a.calls, 0);
	gmp_ctx_cancel(c);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(b.calls, 1);
	CHECK_EQ(gone.calls, 0);
	gmp_ctx_cancel(c);
	CHECK_EQ(a.calls, 1);
	ctx_unwatch(c, &a.w);	/* after it fired: a no-op */
	ctx_unwatch(c, &gone.w);	/* twice: a no-op */

	/* already cancelled: refused, fn not called, unwatch still allowed */
	struct probe late;
	probe_init(&late, 0);
	CHECK(!ctx_watch(c, &late.w));
	CHECK_EQ(late.calls, 0);
	ctx_unwatch(c, &late.w);
	gmp_ctx_release(c);
	CHECK_EQ(a.calls, 1);
}

TEST(ctx_watch_background_never_fires)
{
	need_hooks();
	struct probe pr;
	probe_init(&pr, 0);
	CHECK(ctx_watch(gmp_ctx_background(), &pr.w));
	gmp_ctx_cancel(gmp_ctx_background());
	CHECK_EQ(pr.calls, 0);
	ctx_unwatch(gmp_ctx_background(), &pr.w);
}

TEST(ctx_watch_fires_on_parent_cancel_and_timeout)
{
	need_hooks();
	gmp_ctx *p = gmp_ctx_with_cancel(gmp_ctx_background());
	gmp_ctx *c = gmp_ctx_with_cancel(p);
	gmp_ctx *g = gmp_ctx_with_cancel(c);
	struct probe on_c, on_g;
	probe_init(&on_c, 0);
	probe_init(&on_g, 0);
	CHECK(ctx_watch(c, &on_c.w));
	CHECK(ctx_watch(g, &on_g.w));
	gmp_ctx_cancel(p);
	CHECK_EQ(on_c.calls, 1);
	CHECK_EQ(on_g.calls, 1);
	gmp_ctx_release(g);
	gmp_ctx_release(c);
	gmp_ctx_release(p);

	/* from the timer, in scheduler context; on a slow machine the timeout
	 * may pass before the watch, so lengthen it until the watch comes first */
	struct probe on_t;
	gmp_ctx *t;
	for (int64_t ns = 10 * MS;; ns *= 4) {
		probe_init(&on_t, 0);
		t = gmp_ctx_with_timeout(gmp_ctx_background(), ns);
		if (ctx_watch(t, &on_t.w))
			break;
		CHECK_EQ(gmp_ctx_err(t), -ETIMEDOUT);
		CHECK_EQ(on_t.calls, 0);
		gmp_ctx_release(t);
	}
	wait_until_eq(&on_t.calls, 1);
	CHECK_EQ(gmp_ctx_err(t), -ETIMEDOUT);
	ctx_unwatch(t, &on_t.w);
	gmp_ctx_release(t);
}

/* Releasing a context unwatches nothing by itself, but cancels: a watcher
 * still registered fires exactly once. */
TEST(ctx_watch_fires_on_release)
{
	need_hooks();
	gmp_ctx *c = gmp_ctx_with_cancel(gmp_ctx_background());
	struct probe pr;
	probe_init(&pr, 0);
	CHECK(ctx_watch(c, &pr.w));
	gmp_ctx_release(c);
	CHECK_EQ(pr.calls, 1);
}

struct race {
	gmp_ctx *ctx;
	_Atomic int cancelled;
};

static void cancel_in_background(void *arg)
{
	struct race *r = arg;
	gmp_ctx_cancel(r->ctx);
	atomic_store(&r->cancelled, 1);
}

/* "afterwards fn is not running and never will": unwatch waits out a
 * cancel that is running fn on the other P. */
TEST(ctx_unwatch_waits_for_running_fn)
{
	need_hooks();
	gmp_maxprocs(2);
	static struct race r;
	static struct probe pr;
	r.ctx = gmp_ctx_with_cancel(gmp_ctx_background());
	probe_init(&pr, 50 * MS);
	CHECK(ctx_watch(r.ctx, &pr.w));
	CHECK(gmp_go(cancel_in_background, &r) > 0);
	int64_t deadline = gmp_now() + 10000 * MS;
	while (!atomic_load(&pr.running) && !atomic_load(&pr.calls)) {
		CHECK(gmp_now() < deadline);
		gmp_yield();
	}
	ctx_unwatch(r.ctx, &pr.w);
	CHECK_EQ(atomic_load(&pr.running), 0);
	CHECK_EQ(atomic_load(&pr.calls), 1);
	wait_until_eq(&r.cancelled, 1);
	gmp_ctx_release(r.ctx);
}

/* Watch/unwatch racing with cancel: each watcher fires at most once, and
 * exactly once if it was still watched at the cancel. */
static void watch_churn(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < 20000 && !atomic_load(&r->cancelled); i++) {
		struct probe pr;
		probe_init(&pr, 0);
		if (!ctx_watch(r->ctx, &pr.w)) {
			CHECK_EQ(pr.calls, 0);
			break;
		}
		ctx_unwatch(r->ctx, &pr.w);
		CHECK(pr.calls <= 1);
		CHECK_EQ(pr.running, 0);
	}
	atomic_fetch_add(&r->cancelled, 2);
}

TEST(ctx_watch_races_cancel)
{
	need_hooks();
	gmp_maxprocs(2);
	static struct race r;
	r.ctx = gmp_ctx_with_cancel(gmp_ctx_background());
	CHECK(gmp_go(watch_churn, &r) > 0);
	gmp_sleep(2 * MS);
	gmp_ctx_cancel(r.ctx);
	atomic_fetch_add(&r.cancelled, 1);
	wait_until_eq(&r.cancelled, 3);
	gmp_ctx_release(r.ctx);
}

/* ---- through the netpoller, the hooks' real user ------------------------ */

struct reader {
	gmp_ctx *ctx;
	int fd;
	_Atomic int finished;
	_Atomic long result;
};

static void read_with_ctx(void *arg)
{
	struct reader *rd = arg;
	char buf[8];
	atomic_store(&rd->result, (long)gmp_read_ctx(rd->ctx, rd->fd, buf, sizeof(buf)));
	atomic_store(&rd->finished, 1);
}

TEST(ctx_cancel_wakes_read_ctx)
{
	gmp_maxprocs(2);
	int fds[2];
	CHECK_EQ(pipe(fds), 0);
	static struct reader rd;
	rd.ctx = gmp_ctx_with_cancel(gmp_ctx_background());
	rd.fd = fds[0];
	CHECK(gmp_go(read_with_ctx, &rd) > 0);
	gmp_sleep(20 * MS);
	CHECK_EQ(atomic_load(&rd.finished), 0);
	gmp_ctx_cancel(rd.ctx);
	wait_until_eq(&rd.finished, 1);
	CHECK_EQ(atomic_load(&rd.result), -ECANCELED);
	gmp_ctx_release(rd.ctx);

	/* a deadline, and a context cancelled before the call */
	gmp_ctx *t = gmp_ctx_with_timeout(gmp_ctx_background(), 20 * MS);
	char buf[4];
	CHECK_EQ(gmp_read_ctx(t, fds[0], buf, sizeof(buf)), -ETIMEDOUT);
	CHECK_EQ(gmp_read_ctx(t, fds[0], buf, sizeof(buf)), -ETIMEDOUT);
	gmp_ctx_release(t);
	CHECK_EQ(gmp_write(fds[1], "x", 1), 1);
	gmp_ctx *live = gmp_ctx_with_cancel(gmp_ctx_background());
	CHECK_EQ(gmp_read_ctx(live, fds[0], buf, sizeof(buf)), 1);
	gmp_ctx_release(live);
	gmp_close(fds[0]);
	gmp_close(fds[1]);
}
