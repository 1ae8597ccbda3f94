/*
 * pool.c - the engine's fixed thread pool: n-1 worker threads plus the
 * calling thread run one parallel-for at a time (ab_pool_run). The
 * forward pass calls it hundreds of times per generated token, each call
 * doing a few tens of microseconds of work per thread, so the cost of a
 * round trip matters as much as the throughput.
 *
 * Design. A run is published by bumping an atomic generation counter
 * after storing the function, its argument and the number of workers
 * still to finish (pending). Workers wait for the counter to move; they
 * first spin on it for a bounded number of pause instructions (roughly
 * a hundred microseconds: long enough to catch the next matmul of the
 * same token without any system call; past the first few hundred
 * pauses it also yields the CPU now and then, which keeps an
 * oversubscribed pool from burning whole time slices), then sleep on a Linux futex on the
 * counter word (or a condition variable elsewhere). A waker only issues
 * the FUTEX_WAKE system call when some worker announced it is asleep
 * (sleepers > 0); the announce-then-recheck on one side and the
 * publish-then-check on the other are sequentially consistent, so one
 * of the two always sees the other and no wake-up is lost. The caller
 * runs share 0 itself and then waits for pending to reach zero the same
 * way: bounded spin, then futex sleep with a "caller waiting" flag the
 * last worker checks. So an idle pool never busy-spins for long, and a
 * busy one does not pay system calls. ab_pool_free sets a stop flag,
 * bumps the generation, wakes everyone and joins.
 *
 * All shared state is in one struct; the hot words (gen, pending) sit on
 * separate cache lines so that workers polling gen do not slow down the
 * decrements of pending.
 */
#include "quant.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define HAVE_FUTEX 1
#else
#define HAVE_FUTEX 0
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ITERS 20000 /* pause instructions before sleeping */
#define SPIN_YIELD 256 /* after this many, yield the CPU every 32 */

/* One step of a bounded spin: a pause, and from time to time a
 * sched_yield so that an oversubscribed machine (more runnable threads
 * than cores) gets on with the thread we are waiting for. */
static void spin_step(int i)
{
	cpu_relax();
	if (i >= SPIN_YIELD && (i & 31) == 0)
		sched_yield();
}

struct worker {
	struct ab_pool *p;
	int ith;
	pthread_t th;
};

struct ab_pool {
	int n;
	struct worker *w;
	void (*fn)(void *ud, int ith, int nth);
	void *ud;
	atomic_int stop;
	_Alignas(64) atomic_uint gen;
	atomic_int sleepers;
	_Alignas(64) atomic_uint pending;
	atomic_int caller_waiting;
#if !HAVE_FUTEX
	pthread_mutex_t mu;
	pthread_cond_t cv;
#endif
};

#if HAVE_FUTEX
static void fwait(atomic_uint *addr, unsigned val, struct ab_pool *p)
{
	(void)p;
	syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void fwake(atomic_uint *addr, struct ab_pool *p)
{
	(void)p;
	syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}
#else
static void fwait(atomic_uint *addr, unsigned val, struct ab_pool *p)
{
	pthread_mutex_lock(&p->mu);
	if (atomic_load(addr) == val)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

static void fwake(atomic_uint *addr, struct ab_pool *p)
{
	(void)addr;
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}
#endif

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ab_pool *p = w->p;
	unsigned seen = 0;
	for (;;) {
		unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
		for (int i = 0; g == seen && i < SPIN_ITERS; i++) {
			spin_step(i);
			g = atomic_load_explicit(&p->gen, memory_order_acquire);
		}
		if (g == seen) {
			atomic_fetch_add(&p->sleepers, 1);
			while ((g = atomic_load(&p->gen)) == seen)
				fwait(&p->gen, seen, p);
			atomic_fetch_sub(&p->sleepers, 1);
		}
		seen = g;
		if (atomic_load_explicit(&p->stop, memory_order_acquire))
			break;
		p->fn(p->ud, w->ith, p->n);
		if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_waiting))
			fwake(&p->pending, p);
	}
	return NULL;
}

struct ab_pool *ab_pool_new(int n_threads)
{
	if (n_threads < 1)
		n_threads = 1;
	struct ab_pool *p = ab_xcalloc(1, sizeof(*p));
	p->n = n_threads;
#if !HAVE_FUTEX
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
#endif
	p->w = ab_xcalloc((size_t)n_threads, sizeof(*p->w));
	for (int i = 1; i < n_threads; i++) {
		p->w[i].p = p;
		p->w[i].ith = i;
		if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
			/* run with the threads we got */
			p->n = i;
			break;
		}
	}
	return p;
}

void ab_pool_free(struct ab_pool *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	atomic_fetch_add(&p->gen, 1);
	fwake(&p->gen, p);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->w[i].th, NULL);
#if !HAVE_FUTEX
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
#endif
	free(p->w);
	free(p);
}

int ab_pool_threads(const struct ab_pool *p)
{
	return p ? p->n : 1;
}

void ab_pool_run(struct ab_pool *p, void (*fn)(void *ud, int ith, int nth), void *ud)
{
	if (!p || p->n == 1) {
		fn(ud, 0, 1);
		return;
	}
	p->fn = fn;
	p->ud = ud;
	atomic_store(&p->pending, (unsigned)(p->n - 1));
	atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn, ud, pending */
	if (atomic_load(&p->sleepers) > 0)
		fwake(&p->gen, p);
	fn(ud, 0, p->n);
	unsigned left = atomic_load_explicit(&p->pending, memory_order_acquire);
	for (int i = 0; left && i < SPIN_ITERS; i++) {
		spin_step(i);
		left = atomic_load_explicit(&p->pending, memory_order_acquire);
	}
	if (left) {
		atomic_store(&p->caller_waiting, 1);
		while ((left = atomic_load(&p->pending)) != 0)
			fwait(&p->pending, left, p);
		atomic_store(&p->caller_waiting, 0);
	}
}
