/* The thread pool (see pool.h).
 *
 * A job lives in one of a few slots. A slot's state word holds the job's
 * generation and the number of its chunks nobody has claimed yet; claiming
 * is a compare-and-swap that takes one. A claim that succeeds proves the
 * job is still live (its submitter cannot return before every chunk has
 * run), so the claimer may read the job's function and data. The submitter
 * claims chunks like any worker and then waits for the ones others hold.
 * Nothing takes a lock: sleeping and waking go through futexes on the job
 * counter and the chunks-done counter, so a thread stopped anywhere delays
 * at most the chunk it holds. */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "pool.h"
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause ()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__ ("yield")
#else
#define cpu_relax() do { } while (0)
#endif

/* Jobs that may run at once (submitted by different threads); a further
 * submitter runs its job inline. */
enum { SLOTS = 4 };
/* How long an idle worker, or a submitter waiting for a claimed chunk,
 * spins before it sleeps: long enough to catch the next job of a training
 * step, short enough not to burn a core another program wants. */
#define WORKER_SPIN_US 40
#define WAIT_SPIN_US 10

/* A cache line each, so that jobs of different threads do not share one. */
typedef struct {
  _Alignas (64) _Atomic uint64_t state;  /* generation << 32 | chunks not yet claimed */
  atomic_int owned;        /* a submitter holds the slot */
  atomic_uint done;        /* chunks finished */
  atomic_int waiting;      /* the submitter sleeps until done == chunks */
  uint32_t generation;     /* owner only */
  int chunks;
  SnnPoolChunkFunc fn;
  void *data;
} Slot;

static struct {
  int threads;
  Slot slot[SLOTS];
  _Alignas (64) atomic_uint epoch; /* bumped at every job published */
  atomic_int sleepers;     /* workers asleep on epoch */
} pool;

/* Sleeps while *word == seen (or not: a spurious return is fine, callers
 * check again); wakes up to n sleepers. Without futexes, a short nap. */
static void
sleep_while (atomic_uint *word, unsigned seen)
{
#ifdef __linux__
  syscall (SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
  if (atomic_load (word) == seen)
    g_usleep (50);
#endif
}

static void
wake (atomic_uint *word, int n)
{
#ifdef __linux__
  syscall (SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
#else
  (void) word, (void) n;
#endif
}

/* Chunks the current thread is running (nested jobs run inline). */
static _Thread_local int in_chunk;

/* Claims a chunk of s: its index, or -1 when none is left. */
static int
claim (Slot *s)
{
  uint64_t st = atomic_load_explicit (&s->state, memory_order_relaxed);
  while ((uint32_t) st != 0)
    if (atomic_compare_exchange_weak_explicit (&s->state, &st, st - 1, memory_order_acquire,
                                               memory_order_relaxed))
      return s->chunks - (int) (uint32_t) st;
  return -1;
}

static void
run_chunk (Slot *s, int i)
{
  const unsigned chunks = (unsigned) s->chunks;
  in_chunk++;
  s->fn (s->data, i, (int) chunks);
  in_chunk--;
  /* After this the slot may be reused at once: touch nothing of the job
   * (a stray wake-up of the slot's next submitter is harmless). */
  if (atomic_fetch_add (&s->done, 1) + 1 == chunks && atomic_load (&s->waiting))
    wake (&s->done, INT_MAX);
}

/* Spins until *word differs from seen or `us` microseconds have passed;
 * returns whether it changed. */
static gboolean
spin_while_equal (atomic_uint *word, unsigned seen, int us)
{
  gint64 until = 0;
  for (unsigned n = 1;; n++)
    {
      if (atomic_load_explicit (word, memory_order_relaxed) != seen)
        return TRUE;
      if ((n & 63) == 0)
        {
          gint64 now = g_get_monotonic_time ();
          if (!until)
            until = now + us;
          else if (now >= until)
            return FALSE;
        }
      cpu_relax ();
    }
}

static gpointer
worker (gpointer unused)
{
#if defined(__linux__) && defined(SCHED_IDLE)
  /* Workers inherit the policy of the thread that started the pool; one
   * started from an idle-priority thread must still train at full speed. */
  if (sched_getscheduler (0) == SCHED_IDLE)
    {
      struct sched_param sp = { 0 };
      sched_setscheduler (0, SCHED_OTHER, &sp);
    }
#endif
  for (;;)
    {
      unsigned seen = atomic_load (&pool.epoch);
      gboolean worked = FALSE;
      for (int k = 0; k < SLOTS; k++)
        for (int i; (i = claim (&pool.slot[k])) >= 0;)
          run_chunk (&pool.slot[k], i), worked = TRUE;
      if (worked || spin_while_equal (&pool.epoch, seen, WORKER_SPIN_US))
        continue;
      atomic_fetch_add (&pool.sleepers, 1);
      while (atomic_load (&pool.epoch) == seen)
        sleep_while (&pool.epoch, seen);
      atomic_fetch_sub (&pool.sleepers, 1);
    }
  return NULL;
}

static void
pool_init (void)
{
  static gsize done = 0;
  if (!g_once_init_enter (&done))
    return;
  const char *env = g_getenv ("SNNWB_THREADS");
  int n = env ? atoi (env) : (int) g_get_num_processors ();
  pool.threads = CLAMP (n, 1, 64);
  for (int t = 1; t < pool.threads; t++)
    g_thread_unref (g_thread_new ("snnwb-pool", worker, NULL));
  g_once_init_leave (&done, 1);
}

int
snn_pool_threads (void)
{
  pool_init ();
  return pool.threads;
}

static Slot *
take_slot (void)
{
  for (int k = 0; k < SLOTS; k++)
    {
      int free_ = 0;
      if (atomic_compare_exchange_strong (&pool.slot[k].owned, &free_, 1))
        return &pool.slot[k];
    }
  return NULL;
}

static void
publish (Slot *s, int chunks, SnnPoolChunkFunc fn, void *data)
{
  s->fn = fn;
  s->data = data;
  s->chunks = chunks;
  atomic_store (&s->done, 0);
  s->generation++;
  atomic_store_explicit (&s->state, (uint64_t) s->generation << 32 | (uint32_t) chunks, memory_order_release);
  atomic_fetch_add (&pool.epoch, 1);
  /* One worker per chunk beyond the submitter's own is enough. */
  if (atomic_load (&pool.sleepers) > 0)
    wake (&pool.epoch, chunks - 1);
}

/* Waits for the chunks other threads claimed: a short spin, then sleep,
 * which frees the core for a preempted worker that holds one. */
static void
wait_done (Slot *s, int chunks)
{
  gint64 until = 0;
  for (unsigned n = 1; atomic_load (&s->done) != (unsigned) chunks; n++)
    {
      if ((n & 63) == 0)
        {
          gint64 now = g_get_monotonic_time ();
          if (!until)
            until = now + WAIT_SPIN_US;
          else if (now >= until)
            break;
        }
      cpu_relax ();
    }
  if (atomic_load (&s->done) == (unsigned) chunks)
    return;
  atomic_store (&s->waiting, 1);
  for (unsigned d; (d = atomic_load (&s->done)) != (unsigned) chunks;)
    sleep_while (&s->done, d);
  atomic_store (&s->waiting, 0);
}

void
snn_pool_run (int chunks, SnnPoolChunkFunc fn, void *data)
{
  if (chunks <= 0)
    return;
  pool_init ();
  Slot *s = chunks > 1 && !in_chunk && pool.threads > 1 ? take_slot () : NULL;
  if (!s)
    {
      for (int i = 0; i < chunks; i++)
        fn (data, i, chunks);
      return;
    }
  publish (s, chunks, fn, data);
  for (int i; (i = claim (s)) >= 0;)
    run_chunk (s, i);
  wait_done (s, chunks);
  atomic_store_explicit (&s->owned, 0, memory_order_release);
}

int
snn_pool_chunks_for (int64_t n, double cost)
{
  double c = floor ((double) n * cost / SNN_POOL_CHUNK_COST);
  return (int) CLAMP (c, 1.0, (double) MIN (n, (int64_t) SNN_POOL_MAX_CHUNKS));
}

typedef struct {
  int64_t n, align;
  SnnPoolRangeFunc fn;
  void *data;
} RangeJob;

static void
range_chunk (void *data, int i, int chunks)
{
  RangeJob *j = data;
  int64_t lo, hi;
  snn_pool_range (j->n, j->align, i, chunks, &lo, &hi);
  if (hi > lo)
    j->fn (j->data, lo, hi);
}

void
snn_pool_for (int64_t n, double cost, int64_t align, SnnPoolRangeFunc fn, void *data)
{
  if (n <= 0)
    return;
  align = MAX (align, 1);
  RangeJob j = { n, align, fn, data };
  snn_pool_run (snn_pool_chunks_for ((n + align - 1) / align, cost * align), range_chunk, &j);
}
