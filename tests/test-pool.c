/* The thread pool: every chunk runs exactly once, jobs submitted from
 * inside a chunk or from several threads at once complete, a job completes
 * while a worker is stopped or busy with another job's chunk, and training
 * gives the same bits on one thread as on several. */
#include "pool.h"
#include <glib/gstdio.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 4

typedef struct {
  int64_t n, align;
  atomic_int *hits;
  atomic_int bad;
} Cover;

static void
count_chunk (void *data, int i, int chunks)
{
  Cover *c = data;
  if (i < 0 || i >= chunks)
    atomic_fetch_add (&c->bad, 1);
  else
    atomic_fetch_add (&c->hits[i], 1);
}

static void
count_range (void *data, int64_t lo, int64_t hi)
{
  Cover *c = data;
  if (lo < 0 || hi > c->n || lo >= hi || lo % c->align != 0)
    atomic_fetch_add (&c->bad, 1);
  for (int64_t i = MAX (lo, 0); i < MIN (hi, c->n); i++)
    atomic_fetch_add (&c->hits[i], 1);
}

/* Runs a job of `chunks` chunks and checks that each ran once. */
static void
check_job (int chunks, gboolean coarse)
{
  Cover c = { .hits = g_new0 (atomic_int, MAX (chunks, 1)) };
  (coarse ? snn_pool_run_coarse : snn_pool_run) (chunks, count_chunk, &c);
  g_assert_cmpint (atomic_load (&c.bad), ==, 0);
  for (int i = 0; i < chunks; i++)
    g_assert_cmpint (atomic_load (&c.hits[i]), ==, 1);
  g_free (c.hits);
}

static void
check_chunks (int chunks)
{
  check_job (chunks, FALSE);
}

/* Runs snn_pool_for over n items and checks that each ran once, in ranges
 * that start on multiples of align. */
static void
check_range (int64_t n, double cost, int64_t align)
{
  Cover c = { .n = n, .align = align, .hits = g_new0 (atomic_int, MAX (n, 1)) };
  snn_pool_for (n, cost, align, count_range, &c);
  g_assert_cmpint (atomic_load (&c.bad), ==, 0);
  for (int64_t i = 0; i < n; i++)
    g_assert_cmpint (atomic_load (&c.hits[i]), ==, 1);
  g_free (c.hits);
}

static void
test_coverage (void)
{
  g_assert_cmpint (snn_pool_threads (), ==, THREADS);
  static const int chunks[] = { 0, 1, 2, 3, 7, 64, 256, 1000, 5000 };
  for (guint k = 0; k < G_N_ELEMENTS (chunks); k++)
    for (int rep = 0; rep < 20; rep++)
      {
        check_chunks (chunks[k]);
        check_job (chunks[k], TRUE);
      }
  static const int64_t ns[] = { 0, 1, 63, 64, 65, 1000, 100003, 1 << 20 };
  static const double costs[] = { 1, 64, 1e4 };
  static const int64_t aligns[] = { 1, 16, 64 };
  for (guint a = 0; a < G_N_ELEMENTS (ns); a++)
    for (guint b = 0; b < G_N_ELEMENTS (costs); b++)
      for (guint d = 0; d < G_N_ELEMENTS (aligns); d++)
        check_range (ns[a], costs[b], aligns[d]);
  /* Tiny jobs take one chunk (inline); big ones are split, but never past
   * the cap or into more chunks than items. */
  g_assert_cmpint (snn_pool_chunks_for (100, 1), ==, 1);
  g_assert_cmpint (snn_pool_chunks_for (1 << 20, 1), >, 1);
  g_assert_cmpint (snn_pool_chunks_for (1 << 30, 1), ==, SNN_POOL_MAX_CHUNKS);
  g_assert_cmpint (snn_pool_chunks_for (3, 1e9), ==, 3);
}

/* The boundaries of a split depend on the job alone. */
static void
test_fixed_boundaries (void)
{
  int64_t lo, hi, prev = 0;
  for (int i = 0; i < 7; i++)
    {
      snn_pool_range (1000, 16, i, 7, &lo, &hi);
      g_assert_cmpint (lo, ==, prev);
      g_assert_cmpint (lo % 16, ==, 0);
      prev = hi;
    }
  g_assert_cmpint (prev, ==, 1000);
}

static void
nested_chunk (void *data, int i, int chunks)
{
  /* Each outer chunk runs a whole inner job. */
  check_chunks (37);
  count_chunk (data, i, chunks);
}

static void
test_nested (void)
{
  Cover c = { .hits = g_new0 (atomic_int, 50) };
  snn_pool_run (50, nested_chunk, &c);
  g_assert_cmpint (atomic_load (&c.bad), ==, 0);
  for (int i = 0; i < 50; i++)
    g_assert_cmpint (atomic_load (&c.hits[i]), ==, 1);
  g_free (c.hits);
}

static gpointer
submitter (gpointer data)
{
  int seed = GPOINTER_TO_INT (data);
  for (int rep = 0; rep < 300; rep++)
    check_chunks (2 + (rep * 7 + seed) % 90);
  return NULL;
}

/* More submitting threads than job slots: some jobs run inline. */
static void
test_concurrent (void)
{
  GThread *t[7];
  for (int i = 0; i < 7; i++)
    t[i] = g_thread_new ("submitter", submitter, GINT_TO_POINTER (i));
  for (int i = 0; i < 7; i++)
    g_thread_join (t[i]);
}

/* ---- a worker stopped, or busy with another job's chunk ---- */

static atomic_int stopped, release;

/* Holds the thread it lands on, wherever that thread was, until released:
 * a worker the scheduler has put aside. */
static void
hold_here (int sig)
{
  atomic_fetch_add (&stopped, 1);
  while (!atomic_load (&release))
    usleep (1000);
  atomic_fetch_sub (&stopped, 1);
}

/* The thread ids of the pool's workers. */
static GArray *
worker_tids (void)
{
  GArray *tids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  GDir *dir = g_dir_open ("/proc/self/task", 0, NULL);
  g_assert_nonnull (dir);
  for (const char *name; (name = g_dir_read_name (dir));)
    {
      g_autofree char *path = g_strdup_printf ("/proc/self/task/%s/comm", name), *comm = NULL;
      if (g_file_get_contents (path, &comm, NULL, NULL) && g_str_has_prefix (comm, "snnwb-pool"))
        {
          pid_t tid = atoi (name);
          g_array_append_val (tids, tid);
        }
    }
  g_dir_close (dir);
  return tids;
}

/* Every worker but one is held (mid-chunk or idle); then all of them: jobs
 * still complete, on the threads left. */
static void
test_stopped_worker (void)
{
  check_chunks (64); /* the workers exist */
  g_autoptr (GArray) tids = worker_tids ();
  g_assert_cmpint (tids->len, ==, THREADS - 1);
  signal (SIGUSR1, hold_here);
  for (guint held = 1; held <= tids->len; held++)
    {
      atomic_store (&release, 0);
      for (guint k = 0; k < held; k++)
        syscall (SYS_tgkill, getpid (), g_array_index (tids, pid_t, k), SIGUSR1);
      /* (No job meanwhile: a worker held inside a chunk would hold it up.) */
      while (atomic_load (&stopped) < (int) held)
        g_usleep (100);
      for (int rep = 0; rep < 200; rep++)
        check_chunks (1 + rep % 100);
      atomic_store (&release, 1);
      while (atomic_load (&stopped) > 0)
        g_usleep (100);
    }
  signal (SIGUSR1, SIG_DFL);
}

static atomic_int busy_in, busy_release;

static void
busy_chunk (void *data, int i, int chunks)
{
  atomic_fetch_add (&busy_in, 1);
  while (!atomic_load (&busy_release))
    g_usleep (500);
}

static gpointer
busy_submitter (gpointer data)
{
  snn_pool_run (THREADS * 4, busy_chunk, NULL);
  return NULL;
}

/* Every worker and another submitter sit in chunks of a job that does not
 * end; a second job, from this thread, completes anyway. */
static void
test_busy_workers (void)
{
  GThread *t = g_thread_new ("busy", busy_submitter, NULL);
  while (atomic_load (&busy_in) < THREADS)
    g_usleep (100);
  for (int rep = 0; rep < 100; rep++)
    check_chunks (2 + rep);
  atomic_store (&busy_release, 1);
  g_thread_join (t);
  g_assert_cmpint (atomic_load (&busy_in), ==, THREADS * 4);
}

/* ---- standing aside for other runnable threads ---- */

static atomic_int spin_stop, spin_own;

static gpointer
spinner (gpointer data)
{
  gboolean own = FALSE;
  while (!atomic_load_explicit (&spin_stop, memory_order_relaxed))
    if (!own && atomic_load_explicit (&spin_own, memory_order_relaxed))
      {
        snn_pool_count_as_own ();
        own = TRUE;
      }
  return NULL;
}

/* Runs small jobs until snn_pool_active() satisfies ok or `seconds` pass. */
static int
run_until (gboolean (*ok) (int), double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  int active;
  while (!ok (active = snn_pool_active ()) && g_get_monotonic_time () < end)
    {
      check_chunks (16);
      g_usleep (500);
    }
  return active;
}

/* A coarse job's chunk: counts itself, notes its thread, and works for
 * about half a millisecond. */
typedef struct {
  Cover cover;
  GThread *seen[64];
  atomic_int n_seen;
} Coarse;

static void
coarse_chunk (void *data, int i, int chunks)
{
  Coarse *c = data;
  count_chunk (&c->cover, i, chunks);
  c->seen[i] = g_thread_self ();
  gint64 end = g_get_monotonic_time () + 500;
  while (g_get_monotonic_time () < end)
    ;
}

/* Runs coarse jobs of 64 chunks, each chunk once, until one of them has
 * run on more than one thread or `tries` jobs have passed; returns the
 * threads of the last. */
static int
coarse_threads (int tries)
{
  int threads = 0;
  for (int t = 0; t < tries && threads < 2; t++)
    {
      Coarse c = { .cover.hits = g_new0 (atomic_int, 64) };
      snn_pool_run_coarse (64, coarse_chunk, &c);
      g_assert_cmpint (atomic_load (&c.cover.bad), ==, 0);
      threads = 0;
      for (int i = 0; i < 64; i++)
        {
          g_assert_cmpint (atomic_load (&c.cover.hits[i]), ==, 1);
          gboolean first = TRUE;
          for (int j = 0; j < i; j++)
            first &= c.seen[j] != c.seen[i];
          threads += first;
        }
      g_free (c.cover.hits);
    }
  return threads;
}

static gboolean
is_alone (int active)
{
  return active == 1;
}

static gboolean
is_shared (int active)
{
  return active > 1;
}

/* More runnable threads than the pool has: within a few samples the pool
 * takes chunks on the submitter alone, and jobs still complete. Once those
 * threads count as the program's own, it takes more threads again though
 * they still run; and so when they stop. (In a child: the rest of this
 * program runs with the load left out, SNNWB_POOL_ADAPT=0.) */
static void
test_stands_aside (void)
{
  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 250 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
      g_test_trap_assert_passed ();
      return;
    }
  if (!g_file_test ("/proc/loadavg", G_FILE_TEST_EXISTS))
    {
      g_test_skip ("no /proc/loadavg to read the load from");
      return;
    }
  g_setenv ("SNNWB_POOL_ADAPT", "1", TRUE);
  g_assert_cmpint (snn_pool_threads (), ==, THREADS);
  enum { SPINNERS = THREADS + 4 };
  GThread *spinners[SPINNERS];
  for (int i = 0; i < SPINNERS; i++)
    spinners[i] = g_thread_new ("spinner", spinner, NULL);
  g_assert_cmpint (run_until (is_alone, 20), ==, 1);
  for (int rep = 0; rep < 200; rep++)
    check_chunks (1 + rep % 100);
  g_assert_cmpint (snn_pool_active (), ==, 1);
  /* Standing aside, the pool still runs a coarse job (a batch's lanes) on
   * its other threads too: each costs the job at most its one chunk. */
  g_assert_cmpint (coarse_threads (50), >=, 2);
  g_assert_cmpint (snn_pool_active (), ==, 1);
  /* Other programs may keep the machine busy for a while (tests run side
   * by side): wait long enough for a quieter moment. */
  atomic_store (&spin_own, 1);
  g_assert_cmpint (run_until (is_shared, 100), >, 1);
  atomic_store (&spin_stop, 1);
  for (int i = 0; i < SPINNERS; i++)
    g_thread_join (spinners[i]);
  g_assert_cmpint (run_until (is_shared, 100), >, 1);
}

/* ---- training on one thread and on several ---- */

/* Trains conv-small for an epoch of a small subset on `threads` threads;
 * returns the weights file's bytes. */
static GBytes *
train (const char *dir, const char *method, const char *threads)
{
  g_autofree char *out = g_build_filename (dir, threads, NULL);
  g_autofree char *m = g_strdup_printf ("method=%s", method);
  const char *argv[] = { g_getenv ("SNNWB"), "train", "conv-small", m, "epochs=1", "train_subset=384",
                         "test_subset=64", "--quiet", "--out", out, NULL };
  g_auto (GStrv) env = g_environ_setenv (g_get_environ (), "SNNWB_THREADS", threads, TRUE);
  /* Whoever runs the chunks, the bits must be the same: the trainings
   * follow the load, as users' do. */
  env = g_environ_unsetenv (env, "SNNWB_POOL_ADAPT");
  int status;
  g_autofree char *err = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err,
                               &status, NULL));
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("snnwb train failed: %s", err);
  char *weights = NULL;
  gsize len;
  g_autofree char *path = g_build_filename (out, "weights.npz", NULL);
  g_assert_true (g_file_get_contents (path, &weights, &len, NULL));
  g_assert_cmpuint (len, >, 1000);
  g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", out);
  g_assert_cmpint (system (rm), ==, 0);
  return g_bytes_new_take (weights, len);
}

static void
test_threads_same_weights (void)
{
  if (!g_getenv ("SNNWB"))
    {
      g_test_skip ("SNNWB (the snnwb binary) not set");
      return;
    }
  g_autofree char *dir = g_dir_make_tmp ("snnwb-pool-XXXXXX", NULL);
  static const char *methods[] = { "sltt", "bptt" };
  for (guint k = 0; k < G_N_ELEMENTS (methods); k++)
    {
      g_autoptr (GBytes) one = train (dir, methods[k], "1");
      static const char *more[] = { "2", "3" };
      for (guint t = 0; t < G_N_ELEMENTS (more); t++)
        {
          g_autoptr (GBytes) w = train (dir, methods[k], more[t]);
          gsize n1, n2;
          const void *a = g_bytes_get_data (one, &n1), *b = g_bytes_get_data (w, &n2);
          g_assert_cmpmem (a, n1, b, n2);
        }
    }
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  /* Before the pool starts: more threads than this machine may have cores,
   * so that workers are also preempted. */
  g_setenv ("SNNWB_THREADS", G_STRINGIFY (THREADS), TRUE);
  /* The tests below need every worker taking chunks, whatever else runs
   * (/pool/stands-aside turns the load back on in a child). */
  g_setenv ("SNNWB_POOL_ADAPT", "0", TRUE);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pool/coverage", test_coverage);
  g_test_add_func ("/pool/fixed-boundaries", test_fixed_boundaries);
  g_test_add_func ("/pool/nested", test_nested);
  g_test_add_func ("/pool/concurrent", test_concurrent);
  g_test_add_func ("/pool/stopped-worker", test_stopped_worker);
  g_test_add_func ("/pool/busy-workers", test_busy_workers);
  g_test_add_func ("/pool/stands-aside", test_stands_aside);
  g_test_add_func ("/pool/threads-same-weights", test_threads_same_weights);
  return g_test_run ();
}
