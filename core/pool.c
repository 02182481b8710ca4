/* The thread pool (see pool.h).
 *
 * A job lives in one of a few slots. A slot's state word holds the job's
 * generation and the number of its chunks nobody has claimed yet; claiming
 * is a compare-and-swap that takes one. A claim that succeeds proves the
 * job is still live (its submitter cannot return before every chunk has
 * run), so the claimer may read the job's function and data. The submitter
 * claims chunks like any worker and then waits for the ones others hold.
 * Nothing on a job's path takes a lock: sleeping and waking go through
 * futexes on the job counter and the chunks-done counter, so a thread
 * stopped anywhere delays at most the chunk it holds. (Reading the load,
 * every 10 ms, takes one for the table of the program's own threads.) */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "pool.h"
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sched.h>
#include <fcntl.h>
#include <string.h>
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
 * spins before it sleeps. With the machine to ourselves, long enough to
 * catch the next job of a training step (waking a sleeping thread costs
 * tens of microseconds, more in a virtual machine); beside other work,
 * short, so as not to burn a core another program wants. */
#define QUIET_WORKER_SPIN_US 300
#define QUIET_WAIT_SPIN_US 300
#define BUSY_WORKER_SPIN_US 20
#define BUSY_WAIT_SPIN_US 5
/* How often the load is sampled, and the weight of a new sample in its
 * running average. */
#define LOAD_SAMPLE_US 10000
#define LOAD_WEIGHT 0.2
/* How far the average must pass a whole number of other threads before the
 * pool stands aside for one more (or takes one back). Short-lived threads
 * (kernel workers, a daemon's timer, a shell's fork) show up in a few
 * samples in a hundred on a quiet machine; without this margin, a few in a
 * row would cost a quiet machine a thread for a while. A busy program
 * counts in every sample and passes it within 70 ms. */
#define LOAD_MARGIN 0.25

/* A cache line each, so that jobs of different threads do not share one. */
typedef struct {
  _Alignas (64) _Atomic uint64_t state;  /* generation << 32 | chunks not yet claimed */
  atomic_int owned;        /* a submitter holds the slot */
  atomic_uint done;        /* chunks finished */
  atomic_int waiting;      /* the submitter sleeps until done == chunks */
  uint32_t generation;     /* owner only */
  int chunks;
  atomic_int coarse;       /* every thread takes its chunks, standing aside or not */
  int cpu;                 /* coarse: the core the submitter ran on (-1: unknown) */
  SnnPoolChunkFunc fn;
  void *data;
} Slot;

static struct {
  int threads;
  gboolean adaptive;       /* follows the load (see sample_load) */
  Slot slot[SLOTS];
  _Alignas (64) atomic_uint epoch; /* bumped at every job published */
  atomic_int sleepers;     /* workers asleep on epoch */
  atomic_int awake;        /* workers not asleep: the kernel counts them as running */
  _Alignas (64) atomic_uint active; /* threads that take chunks now, the submitter included */
  atomic_uint gate;        /* bumped when active changes or a coarse job comes: inactive workers sleep on it */
  atomic_int worker_spin_us, wait_spin_us;
  _Alignas (64) _Atomic int64_t next_sample; /* when the load is next read */
  int loadavg_fd;
  double others;           /* running average of other runnable threads (the sampler's) */
  int aside;               /* threads the pool stands aside for (the sampler's) */
} pool;

/* Sleeps while *word == seen (or not: a spurious return is fine, callers
 * check again). TRUE when a wake() took it off the futex, which wake()
 * then counted; FALSE when it did not sleep or something else woke it.
 * Without futexes, a short nap (FALSE). */
static gboolean
sleep_while (atomic_uint *word, unsigned seen)
{
#ifdef __linux__
  return syscall (SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0) == 0;
#else
  if (atomic_load (word) == seen)
    g_usleep (50);
  return FALSE;
#endif
}

/* Wakes up to n sleepers; returns how many it woke. */
static int
wake (atomic_uint *word, int n)
{
#ifdef __linux__
  long woken = syscall (SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
  return woken > 0 ? (int) woken : 0;
#else
  (void) word, (void) n;
  return 0;
#endif
}

/* A worker going to sleep on word: it stops counting as awake, and counts
 * again from the moment a wake() takes it off the futex (the waker counts
 * it, as the kernel does from then on: it is runnable before it runs). */
static void
worker_sleep (atomic_uint *word, unsigned seen)
{
  atomic_fetch_sub (&pool.awake, 1);
  if (!sleep_while (word, seen))
    atomic_fetch_add (&pool.awake, 1);
}

/* Wakes up to n sleeping workers on word and counts them awake. */
static void
wake_workers (atomic_uint *word, int n)
{
  int woken = wake (word, n);
  if (woken)
    atomic_fetch_add (&pool.awake, woken);
}

/* Chunks the current thread is running (nested jobs run inline). */
static _Thread_local int in_chunk;

#ifdef __linux__
/* A worker's allowed cores when it started, and the core it keeps off. */
static _Thread_local cpu_set_t worker_cpus;
static _Thread_local gboolean worker_may_move;
static _Thread_local int avoided_cpu = -1;
#endif

/* A worker about to run a coarse job's chunk moves off the submitter's core.
 * On a core of its own it adds that core's time to the job; on the
 * submitter's (where the kernel may wake it when the other cores are busy)
 * the two would take turns and the job would run as on one thread. */
static void
avoid_cpu (int cpu)
{
#ifdef __linux__
  if (!worker_may_move || cpu < 0 || (cpu == avoided_cpu && sched_getcpu () != cpu))
    return;
  cpu_set_t set = worker_cpus;
  CPU_CLR (cpu, &set);
  if (CPU_COUNT (&set) == 0 || sched_setaffinity (0, sizeof set, &set) != 0)
    return;
  avoided_cpu = cpu;
#else
  (void) cpu;
#endif
}

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
  if (atomic_load_explicit (&s->coarse, memory_order_relaxed))
    avoid_cpu (s->cpu);
  in_chunk++;
  s->fn (s->data, i, (int) chunks);
  in_chunk--;
  /* After this the slot may be reused at once: touch nothing of the job
   * (a stray wake-up of the slot's next submitter is harmless). */
  if (atomic_fetch_add (&s->done, 1) + 1 == chunks && atomic_load (&s->waiting))
    wake (&s->done, INT_MAX);
}

/* Spins until (*word == value) == equal, or `us` microseconds have
 * passed; returns whether it got there. */
static gboolean
spin_until (atomic_uint *word, unsigned value, gboolean equal, int us)
{
  gint64 until = 0;
  for (unsigned n = 1;; n++)
    {
      if ((atomic_load_explicit (word, memory_order_acquire) == value) == equal)
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

/* Runs the chunks of coarse jobs; whether there were any. */
static gboolean
run_coarse (void)
{
  gboolean worked = FALSE;
  for (int k = 0; k < SLOTS; k++)
    if (atomic_load_explicit (&pool.slot[k].coarse, memory_order_relaxed))
      for (int i; (i = claim (&pool.slot[k])) >= 0;)
        run_chunk (&pool.slot[k], i), worked = TRUE;
  return worked;
}

/* Worker `index` (1, 2, ...) takes chunks only while fewer threads than
 * pool.active come before it; otherwise it takes only coarse jobs' chunks,
 * and sleeps until one comes or that changes. */
static void
sleep_while_inactive (int index)
{
  for (;;)
    {
      unsigned gate = atomic_load (&pool.gate);
      if (index < (int) atomic_load (&pool.active))
        return;
      if (!run_coarse ())
        worker_sleep (&pool.gate, gate);
    }
}

static gpointer
worker (gpointer data)
{
  const int index = GPOINTER_TO_INT (data);
#if defined(__linux__) && defined(SCHED_IDLE)
  /* Workers inherit the policy of the thread that started the pool; one
   * started from an idle-priority thread must still train at full speed. */
  if (sched_getscheduler (0) == SCHED_IDLE)
    {
      struct sched_param sp = { 0 };
      sched_setscheduler (0, SCHED_OTHER, &sp);
    }
  worker_may_move = sched_getaffinity (0, sizeof worker_cpus, &worker_cpus) == 0 && CPU_COUNT (&worker_cpus) > 1;
#endif
  for (;;)
    {
      sleep_while_inactive (index);
      unsigned seen = atomic_load (&pool.epoch);
      gboolean worked = FALSE;
      for (int k = 0; k < SLOTS; k++)
        for (int i; (i = claim (&pool.slot[k])) >= 0;)
          run_chunk (&pool.slot[k], i), worked = TRUE;
      const int spin_us = atomic_load_explicit (&pool.worker_spin_us, memory_order_relaxed);
      if (worked || spin_until (&pool.epoch, seen, FALSE, spin_us))
        continue;
      atomic_fetch_add (&pool.sleepers, 1);
      while (atomic_load (&pool.epoch) == seen && index < (int) atomic_load (&pool.active))
        worker_sleep (&pool.epoch, seen);
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
  const char *adapt = g_getenv ("SNNWB_POOL_ADAPT");
  pool.adaptive = !adapt || atoi (adapt) != 0;
#ifdef __linux__
  pool.loadavg_fd = pool.adaptive ? open ("/proc/loadavg", O_RDONLY | O_CLOEXEC) : -1;
#else
  pool.loadavg_fd = -1;
#endif
  atomic_store (&pool.active, (unsigned) pool.threads);
  atomic_store (&pool.worker_spin_us, QUIET_WORKER_SPIN_US);
  atomic_store (&pool.wait_spin_us, QUIET_WAIT_SPIN_US);
  atomic_store (&pool.awake, pool.threads - 1);
  for (int t = 1; t < pool.threads; t++)
    g_thread_unref (g_thread_new ("snnwb-pool", worker, GINT_TO_POINTER (t)));
  g_once_init_leave (&done, 1);
}

int
snn_pool_threads (void)
{
  pool_init ();
  return pool.threads;
}

/* Threads of this program that are not workers but whose work is part of
 * its own (every thread that submits jobs, and any that asks, such as a
 * window's drawing thread): they are not "others" to stand aside for. Each
 * keeps its /proc stat file open, so that the sampler can see whether it
 * is running; a slot whose thread has ended is taken again. */
enum { OWN_MAX = 16 };
static struct {
  GMutex lock;
  int fd[OWN_MAX];         /* 0: free */
} own;
static _Thread_local gboolean own_counted;

void
snn_pool_count_as_own (void)
{
#ifdef __linux__
  if (own_counted)
    return;
  own_counted = TRUE;
  char path[64];
  g_snprintf (path, sizeof path, "/proc/self/task/%ld/stat", (long) syscall (SYS_gettid));
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  g_mutex_lock (&own.lock);
  int k = 0;
  while (k < OWN_MAX && own.fd[k] > 0)
    k++;
  if (k < OWN_MAX)
    own.fd[k] = fd;
  else
    close (fd);
  g_mutex_unlock (&own.lock);
#endif
}

#ifdef __linux__
/* Whether the thread behind a /proc/.../stat file is running or runnable
 * ("pid (comm) R ..."); -1 when it has ended. */
static int
stat_running (int fd)
{
  char buf[512];
  ssize_t len = pread (fd, buf, sizeof buf - 1, 0);
  if (len <= 0)
    return -1;
  buf[len] = 0;
  const char *paren = strrchr (buf, ')');
  return paren && paren[1] == ' ' && paren[2] == 'R';
}

/* Marks in running[] which of the program's own threads are running or
 * runnable now (OR-ing into what is there). */
static void
own_running (gboolean running[OWN_MAX])
{
  g_mutex_lock (&own.lock);
  for (int k = 0; k < OWN_MAX; k++)
    if (own.fd[k] > 0)
      {
        int r = stat_running (own.fd[k]);
        if (r < 0)
          close (own.fd[k]), own.fd[k] = 0;
        else
          running[k] |= r;
      }
  g_mutex_unlock (&own.lock);
}
#endif

/* Other runnable threads on the machine now: the kernel's count of running
 * threads (/proc/loadavg) less this program's own (the workers that are
 * awake, the threads counted as its own, this one); -1 when it cannot be
 * read. */
static int
others_running (void)
{
#ifdef __linux__
  /* Our threads are looked at just before and just after the kernel's
   * count: one that ran at either moment counts as ours, so that one going
   * to sleep in between is not taken for another program's. */
  gboolean running_own[OWN_MAX] = { FALSE };
  own_running (running_own);
  const int awake_before = atomic_load (&pool.awake);
  char buf[128];
  ssize_t len = pread (pool.loadavg_fd, buf, sizeof buf - 1, 0);
  own_running (running_own);
  const int awake = MAX (awake_before, atomic_load (&pool.awake));
  if (len <= 0)
    return -1;
  buf[len] = 0;
  /* "0.80 0.33 0.12 2/76 6735": the fourth field is running/total. */
  const char *p = buf;
  for (int field = 0; field < 3 && p; field++)
    p = strchr (p + 1, ' ');
  if (!p)
    return -1;
  int running = atoi (p + 1), own_count = 0;
  for (int k = 0; k < OWN_MAX; k++)
    own_count += running_own[k];
  return MAX (0, running - MAX (own_count, 1) - awake);
#else
  return -1;
#endif
}

/* Every LOAD_SAMPLE_US, one submitting thread reads the load. With other
 * threads runnable, ours would share cores with them, and a chunk held by
 * a preempted thread holds up its whole job: the pool then takes chunks on
 * one thread fewer per other runnable thread (the average over the last few
 * samples, so that a passing blip changes nothing) and spins less. This
 * changes who runs a chunk, never the chunks, so results stay the same. */
static void
sample_load (void)
{
  int64_t now = g_get_monotonic_time (), next = atomic_load_explicit (&pool.next_sample, memory_order_relaxed);
  if (now < next || !atomic_compare_exchange_strong (&pool.next_sample, &next, now + LOAD_SAMPLE_US))
    return;
  int others = others_running ();
  if (others < 0)
    return;
  pool.others += LOAD_WEIGHT * (others - pool.others);
  while (pool.others > pool.aside + 0.5 + LOAD_MARGIN)
    pool.aside++;
  while (pool.aside > 0 && pool.others < pool.aside - 0.5 - LOAD_MARGIN)
    pool.aside--;
  const int busy = pool.aside;
  const unsigned active = (unsigned) CLAMP (pool.threads - busy, 1, pool.threads);
  atomic_store (&pool.worker_spin_us, busy ? BUSY_WORKER_SPIN_US : QUIET_WORKER_SPIN_US);
  atomic_store (&pool.wait_spin_us, busy ? BUSY_WAIT_SPIN_US : QUIET_WAIT_SPIN_US);
  if (atomic_exchange (&pool.active, active) != active)
    {
      atomic_fetch_add (&pool.gate, 1);
      wake_workers (&pool.gate, INT_MAX);
    }
}

int
snn_pool_active (void)
{
  pool_init ();
  return (int) atomic_load (&pool.active);
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
publish (Slot *s, int chunks, gboolean coarse, SnnPoolChunkFunc fn, void *data)
{
  s->fn = fn;
  s->data = data;
  s->chunks = chunks;
#ifdef __linux__
  s->cpu = coarse ? sched_getcpu () : -1;
#else
  s->cpu = -1;
#endif
  atomic_store (&s->coarse, coarse);
  atomic_store (&s->done, 0);
  s->generation++;
  atomic_store_explicit (&s->state, (uint64_t) s->generation << 32 | (uint32_t) chunks, memory_order_release);
  atomic_fetch_add (&pool.epoch, 1);
  /* One worker per chunk beyond the submitter's own is enough. */
  const int active = (int) atomic_load (&pool.active);
  if (atomic_load (&pool.sleepers) > 0)
    wake_workers (&pool.epoch, MIN (chunks, active) - 1);
  if (coarse && active < pool.threads)
    {
      atomic_fetch_add (&pool.gate, 1);
      wake_workers (&pool.gate, MIN (chunks, pool.threads) - 1);
    }
}

/* Waits for the chunks other threads claimed: a short spin, then sleep,
 * which frees the core for a preempted worker that holds one. */
static void
wait_done (Slot *s, int chunks)
{
  const int spin_us = atomic_load_explicit (&pool.wait_spin_us, memory_order_relaxed);
  if (spin_until (&s->done, (unsigned) chunks, TRUE, spin_us))
    return;
  atomic_store (&s->waiting, 1);
  for (unsigned d; (d = atomic_load (&s->done)) != (unsigned) chunks;)
    sleep_while (&s->done, d);
  atomic_store (&s->waiting, 0);
}

static void
run_job (int chunks, gboolean coarse, SnnPoolChunkFunc fn, void *data)
{
  if (chunks <= 0)
    return;
  pool_init ();
  if (pool.adaptive && pool.threads > 1 && !in_chunk)
    {
      snn_pool_count_as_own ();
      sample_load ();
    }
  const int takers = coarse ? pool.threads : (int) atomic_load_explicit (&pool.active, memory_order_relaxed);
  Slot *s = chunks > 1 && !in_chunk && takers > 1 ? take_slot () : NULL;
  if (!s)
    {
      for (int i = 0; i < chunks; i++)
        fn (data, i, chunks);
      return;
    }
  publish (s, chunks, coarse, fn, data);
  for (int i; (i = claim (s)) >= 0;)
    run_chunk (s, i);
  wait_done (s, chunks);
  atomic_store (&s->coarse, FALSE);
  atomic_store_explicit (&s->owned, 0, memory_order_release);
}

void
snn_pool_run (int chunks, SnnPoolChunkFunc fn, void *data)
{
  run_job (chunks, FALSE, fn, data);
}

void
snn_pool_run_coarse (int chunks, SnnPoolChunkFunc fn, void *data)
{
  run_job (chunks, TRUE, fn, data);
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
