/* Checkpoints and exact resume: a run stopped anywhere (SIGINT, SIGTERM,
 * SIGKILL, or a checkpoint taken by the trainer API) and continued ends bit
 * for bit where an uninterrupted run does; no file is ever found truncated;
 * a diverged run keeps its last finite weights. */
#include "test-util.h"
#include "atomic-file.h"
#include "experiment.h"
#include "snn-error.h"
#include "trainer.h"
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>

typedef struct {
  char *dir;
} Fixture;

static void
setup (Fixture *f, gconstpointer d)
{
  f->dir = g_dir_make_tmp ("snnwb-resume-XXXXXX", NULL);
}

static void
teardown (Fixture *f, gconstpointer d)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", f->dir);
  g_assert_cmpint (system (cmd), ==, 0);
  g_free (f->dir);
}

/* Small and fast: the built-in temporal set, a few epochs of 63 iterations. */
static const char *configs[] = {
  "epochs=4",
  "epochs=4 method=bptt optimizer=adam",
  "epochs=4 method=sltt_k K=3 weight_decay=0.0005",
  "epochs=4 method=bptt recompute=false schedule=constant",
};

static SnnExperiment *
experiment (const char *overrides)
{
  GError *error = NULL;
  SnnExperiment *e = snn_experiment_load ("temporal-mlp", &error);
  g_assert_no_error (error);
  g_auto (GStrv) kv = g_strsplit (overrides, " ", -1);
  for (int i = 0; kv[i]; i++)
    {
      g_assert_true (snn_experiment_apply_override (e, kv[i], &error));
      g_assert_no_error (error);
    }
  return e;
}

/* Two checkpoints agree on everything but wall-clock times. */
static void
assert_same_checkpoint (const SnnNpz *a, const SnnNpz *b)
{
  g_assert_cmpuint (snn_npz_count (a), ==, snn_npz_count (b));
  for (guint i = 0; i < snn_npz_count (a); i++)
    {
      const char *name = snn_npz_name (a, i);
      SnnArray *x = snn_npz_get (a, name), *y = snn_npz_get (b, name);
      g_assert_nonnull (y);
      g_assert_cmpint (x->dtype, ==, y->dtype);
      g_assert_cmpint (snn_array_numel (x), ==, snn_array_numel (y));
      if (g_str_equal (name, "epoch.sums"))
        {
          /* the loss sum and the learning-rate override; the rest are times */
          const double *p = x->data, *q = y->data;
          g_assert_true (p[0] == q[0] && p[4] == q[4]);
        }
      else if (g_str_equal (name, "metrics"))
        {
          /* epoch, train loss, train and test accuracy; the rest are times and memory */
          for (int64_t r = 0; r < x->shape[0]; r++)
            g_assert_true (memcmp ((double *) x->data + r * x->shape[1], (double *) y->data + r * y->shape[1],
                                   4 * sizeof (double)) == 0);
        }
      else if (memcmp (x->data, y->data, snn_array_numel (x) * snn_dtype_size (x->dtype)) != 0)
        g_error ("checkpoint entry '%s' differs", name);
    }
}

static SnnNpz *
load_npz (const char *dir, const char *name)
{
  g_autofree char *p = g_build_filename (dir, name, NULL);
  GError *error = NULL;
  SnnNpz *npz = snn_npz_load (p, &error);
  g_assert_no_error (error);
  return npz;
}

/* Through the API the workbench uses: a checkpoint written at a random
 * iteration, read back into a new trainer, continued to the end. */
static void
test_api_resume (Fixture *f, gconstpointer d)
{
  for (guint c = 0; c < G_N_ELEMENTS (configs); c++)
    {
      SnnExperiment *e = experiment (configs[c]);
      GError *error = NULL;
      SnnTrainer *ref = snn_trainer_new (e, &error);
      g_assert_no_error (error);
      SnnIterInfo it;
      while (!snn_trainer_finished (ref))
        g_assert_true (snn_trainer_step (ref, &it, NULL));
      SnnTrainer *tr = snn_trainer_new (e, &error);
      g_autofree char *dir = g_build_filename (f->dir, configs[c], NULL);
      g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
      /* The first from a checkpoint taken before any iteration. */
      int stop = c == 0 ? 0 : g_test_rand_int_range (1, 4 * 63);
      g_test_message ("%s: stopped after %d iterations", configs[c], stop);
      for (int i = 0; i < stop; i++)
        g_assert_true (snn_trainer_step (tr, &it, NULL));
      g_assert_true (snn_trainer_save_run (tr, dir, &error));
      snn_trainer_free (tr);
      tr = snn_trainer_open_run (dir, &error);
      g_assert_no_error (error);
      while (!snn_trainer_finished (tr))
        g_assert_true (snn_trainer_step (tr, &it, NULL));
      SnnNpz *a = snn_trainer_checkpoint (ref), *b = snn_trainer_checkpoint (tr);
      assert_same_checkpoint (a, b);
      g_autofree char *csv_a = snn_trainer_metrics_csv (ref), *csv_b = snn_trainer_metrics_csv (tr);
      g_assert_cmpuint (strlen (csv_a), >, 100);
      snn_npz_free (a);
      snn_npz_free (b);
      snn_trainer_free (ref);
      snn_trainer_free (tr);
      snn_experiment_free (e);
    }
}

static char *
read_file (const char *dir, const char *name)
{
  g_autofree char *p = g_build_filename (dir, name, NULL);
  char *text = NULL;
  g_assert_true (g_file_get_contents (p, &text, NULL, NULL));
  return text;
}

/* A kill between the renames of weights.npz and metrics.csv leaves them an
 * epoch apart; opening the run makes them agree with the checkpoint. */
static void
test_repair (Fixture *f, gconstpointer d)
{
  SnnExperiment *e = experiment ("epochs=3");
  GError *error = NULL;
  SnnTrainer *tr = snn_trainer_new (e, NULL);
  SnnIterInfo it;
  do
    g_assert_true (snn_trainer_step (tr, &it, NULL));
  while (!it.epoch_done);
  g_autofree char *old = g_build_filename (f->dir, "old", NULL);
  g_assert_cmpint (g_mkdir (old, 0755), ==, 0);
  g_assert_true (snn_trainer_save_run (tr, old, &error));
  do
    g_assert_true (snn_trainer_step (tr, &it, NULL));
  while (!it.epoch_done);
  g_assert_true (snn_trainer_save_run (tr, f->dir, &error));
  g_autofree char *new_csv = read_file (f->dir, "metrics.csv"), *new_w = read_file (f->dir, "weights.npz");
  /* the old weights beside the new metrics */
  g_autofree char *old_w = g_build_filename (old, "weights.npz", NULL), *w = g_build_filename (f->dir, "weights.npz", NULL);
  g_assert_cmpint (g_rename (old_w, w), ==, 0);
  SnnTrainer *again = snn_trainer_open_run (f->dir, &error);
  g_assert_no_error (error);
  /* One writer per run folder. */
  g_assert_null (snn_trainer_open_run (f->dir, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "another trainer"));
  g_clear_error (&error);
  g_autofree char *csv = read_file (f->dir, "metrics.csv"), *wt = read_file (f->dir, "weights.npz");
  g_assert_cmpstr (csv, ==, new_csv);
  g_assert_true (memcmp (wt, new_w, 64) == 0);
  SnnNpz *a = snn_trainer_checkpoint (tr), *b = snn_trainer_checkpoint (again);
  assert_same_checkpoint (a, b);
  snn_npz_free (a);
  snn_npz_free (b);
  snn_trainer_free (again);
  snn_trainer_free (tr);
  snn_experiment_free (e);
}

/* A damaged checkpoint is refused with a message naming the file and the
 * entry, never a crash. */
static void
test_bad_checkpoint (Fixture *f, gconstpointer d)
{
  SnnExperiment *e = experiment ("epochs=1");
  SnnTrainer *tr = snn_trainer_new (e, NULL);
  SnnIterInfo it;
  for (int i = 0; i < 5; i++)
    g_assert_true (snn_trainer_step (tr, &it, NULL));
  g_autofree char *path = g_build_filename (f->dir, "checkpoint.npz", NULL);
  const char *cases[][2] = { { "data.order", "permutation" }, { "rng.train", "rng.train" },
                             { "optim.steps", "optim.steps" }, { "progress", "position" } };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      SnnNpz *ck = snn_trainer_checkpoint (tr);
      SnnArray *a = snn_npz_get (ck, cases[c][0]);
      if (c == 0)
        ((int32_t *) a->data)[1] = ((int32_t *) a->data)[0];
      else if (c == 3)
        ((int64_t *) a->data)[1] = 1000;
      else
        snn_npz_add (ck, cases[c][0], snn_array_new_scalar_f32 (1));
      GError *error = NULL;
      g_assert_true (snn_npz_save (path, ck, &error));
      snn_npz_free (ck);
      SnnTrainer *bad = snn_trainer_open_run (f->dir, &error);
      g_assert_null (bad);
      g_assert_nonnull (error);
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, path));
      g_assert_nonnull (strstr (error->message, cases[c][1]));
      g_clear_error (&error);
    }
  snn_trainer_free (tr);
  snn_experiment_free (e);
}

typedef struct {
  gboolean signaled;
  int status;  /* exit status, or the signal */
  char *out, *err;
} Result;

static void
result_clear (Result *r)
{
  g_free (r->out);
  g_free (r->err);
}

/* Runs snnwb with args; once training has begun (the "backend:" line), waits
 * delay_ms and sends sig (0: none). */
static void
run_snnwb (const char *args, int sig, int delay_ms, Result *r)
{
  g_autofree char *cmd = g_strdup_printf ("%s %s", g_getenv ("SNNWB"), args);
  g_auto (GStrv) argv = g_strsplit (cmd, " ", -1);
  GError *error = NULL;
  GSubprocess *p = g_subprocess_newv ((const char *const *) argv,
                                      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  GString *out = g_string_new (NULL);
  if (sig)
    {
      GDataInputStream *in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (p));
      char *line;
      while ((line = g_data_input_stream_read_line (in, NULL, NULL, NULL)))
        {
          g_string_append_printf (out, "%s\n", line);
          gboolean started = g_str_has_prefix (line, "backend:");
          g_free (line);
          if (started)
            break;
        }
      g_usleep (delay_ms * 1000);
      g_subprocess_send_signal (p, sig);
      /* The rest is read through the same buffered stream. */
      while ((line = g_data_input_stream_read_line (in, NULL, NULL, NULL)))
        {
          g_string_append_printf (out, "%s\n", line);
          g_free (line);
        }
      g_object_unref (in);
      /* stderr holds a few lines at most: it fits the pipe's buffer. */
      GString *err = g_string_new (NULL);
      char buf[4096];
      gssize n;
      while ((n = g_input_stream_read (g_subprocess_get_stderr_pipe (p), buf, sizeof buf, NULL, &error)) > 0)
        g_string_append_len (err, buf, n);
      g_assert_no_error (error);
      g_assert_true (g_subprocess_wait (p, NULL, &error));
      r->err = g_string_free (err, FALSE);
    }
  else
    {
      g_autofree char *o = NULL;
      g_assert_true (g_subprocess_communicate_utf8 (p, NULL, NULL, &o, &r->err, &error));
      g_string_append (out, o);
    }
  g_assert_no_error (error);
  r->out = g_string_free (out, FALSE);
  r->signaled = g_subprocess_get_if_signaled (p);
  r->status = r->signaled ? g_subprocess_get_term_sig (p) : g_subprocess_get_exit_status (p);
  g_object_unref (p);
}

/* Every file of the run folder is whole: the archives load, the CSV has
 * complete rows, the experiment parses. */
static void
assert_files_whole (const char *dir)
{
  const char *npz[] = { "checkpoint.npz", "weights.npz" };
  for (guint i = 0; i < G_N_ELEMENTS (npz); i++)
    {
      g_autofree char *p = g_build_filename (dir, npz[i], NULL);
      if (g_file_test (p, G_FILE_TEST_EXISTS))
        snn_npz_free (load_npz (dir, npz[i]));
    }
  g_autofree char *csv_path = g_build_filename (dir, "metrics.csv", NULL), *csv = NULL;
  if (g_file_get_contents (csv_path, &csv, NULL, NULL))
    {
      g_assert_true (g_str_has_suffix (csv, "\n"));
      g_auto (GStrv) lines = g_strsplit (csv, "\n", -1);
      for (int i = 0; lines[i] && lines[i][0]; i++)
        {
          g_auto (GStrv) fields = g_strsplit (lines[i], ",", -1);
          g_assert_cmpint (g_strv_length (fields), ==, 10);
        }
    }
  g_autofree char *e_path = g_build_filename (dir, "experiment.json", NULL);
  if (g_file_test (e_path, G_FILE_TEST_EXISTS))
    {
      GError *error = NULL;
      SnnExperiment *e = snn_experiment_load (e_path, &error);
      g_assert_no_error (error);
      snn_experiment_free (e);
    }
}

static gboolean
has_temporary_files (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;
  gboolean found = FALSE;
  while ((name = g_dir_read_name (d)))
    found |= g_str_has_prefix (name, SNN_ATOMIC_TMP_PREFIX);
  g_dir_close (d);
  return found;
}

/* How long the last uninterrupted reference run took, in ms: stops are
 * drawn within it, so most land mid-run on a fast machine and a slow one. */
static int reference_ms = 250;

/* The reference: the same run, never stopped. */
static SnnNpz *
reference_run (Fixture *f, const char *config, int k)
{
  g_autofree char *dir = g_strdup_printf ("%s/ref%d", f->dir, k);
  g_autofree char *args = g_strdup_printf ("train temporal-mlp %s --quiet --out %s", config, dir);
  Result r = { 0 };
  gint64 t0 = g_get_monotonic_time ();
  run_snnwb (args, 0, 0, &r);
  reference_ms = (int) MAX (4, (g_get_monotonic_time () - t0) / 1000);
  g_assert_cmpint (r.status, ==, 0);
  result_clear (&r);
  return load_npz (dir, "checkpoint.npz");
}

/* Stops a run with sig at random moments, resuming each time, until it
 * finishes; returns how many times it was stopped mid-run. */
static int
stop_and_resume (const char *dir, const char *config, int sig)
{
  g_autofree char *first = g_strdup_printf ("train temporal-mlp %s --quiet --out %s", config, dir);
  g_autofree char *again = g_strdup_printf ("train --resume %s --quiet", dir);
  int stopped = 0;
  for (int round = 0;; round++)
    {
      Result r = { 0 };
      int delay = g_test_rand_int_range (0, MAX (2, reference_ms / 2));
      run_snnwb (round ? again : first, round < 4 ? sig : 0, delay, &r);
      g_test_message ("signal %d after %d ms: %s %d; %s", sig, delay, r.signaled ? "killed by" : "exit", r.status, r.err);
      assert_files_whole (dir);
      if (!r.signaled && r.status == 0)
        {
          result_clear (&r);
          break;
        }
      if (sig == SIGKILL)
        g_assert_true (r.signaled && r.status == SIGKILL);
      else
        {
          /* A clean stop: a checkpoint, the message, 128 + the signal. */
          g_assert_false (r.signaled);
          g_assert_cmpint (r.status, ==, 128 + sig);
          g_autofree char *want = g_strdup_printf ("; continue with: snnwb train --resume %s\n", dir);
          g_assert_true (g_str_has_prefix (r.err, "interrupted at epoch "));
          g_assert_nonnull (strstr (r.err, want));
        }
      stopped++;
      result_clear (&r);
      g_assert_cmpint (round, <, 10);
    }
  g_assert_false (has_temporary_files (dir));
  return stopped;
}

static void
signal_test (Fixture *f, int sig)
{
  int stopped = 0;
  for (guint c = 0; c < G_N_ELEMENTS (configs); c++)
    {
      /* Longer runs than the in-process tests: a process's start-up is then
       * a small part of its life, and most stops land mid-run. */
      g_autofree char *config = g_strdup_printf ("%s epochs=12", configs[c]);
      SnnNpz *ref = reference_run (f, config, c);
      for (int k = 0; k < 2; k++)
        {
          g_autofree char *dir = g_strdup_printf ("%s/run%d-%d", f->dir, c, k);
          stopped += stop_and_resume (dir, config, sig);
          SnnNpz *ck = load_npz (dir, "checkpoint.npz");
          assert_same_checkpoint (ref, ck);
          snn_npz_free (ck);
          /* weights.npz and metrics.csv agree with it too */
          g_autofree char *rw = g_strdup_printf ("%s/ref%d/weights.npz", f->dir, c);
          g_autofree char *w = g_build_filename (dir, "weights.npz", NULL);
          g_autofree char *a = NULL, *b = NULL;
          gsize la, lb;
          g_assert_true (g_file_get_contents (rw, &a, &la, NULL) && g_file_get_contents (w, &b, &lb, NULL));
          g_assert_true (la == lb && memcmp (a, b, la) == 0);
        }
      snn_npz_free (ref);
    }
  /* Some stops may come after a run ended; most must not. */
  g_assert_cmpint (stopped, >=, 8);
}

static void
test_sigint (Fixture *f, gconstpointer d)
{
  signal_test (f, GPOINTER_TO_INT (d));
}

/* lr = 1e38 diverges within a few iterations: the message says where, and
 * the weights kept are those of the iteration before, bit for bit. */
static void
test_last_good (Fixture *f, gconstpointer d)
{
  SnnExperiment *e = experiment ("lr=1e38");
  GError *error = NULL;
  SnnTrainer *tr = snn_trainer_new (e, NULL);
  SnnIterInfo it;
  int done = 0;
  while (snn_trainer_step (tr, &it, &error))
    done++;
  g_assert_error (error, SNN_TRAIN_ERROR, SNN_ERROR_NONFINITE);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "diverged"));
  g_assert_true (strstr (error->message, "pass of layer") || strstr (error->message, "optimizer step"));
  g_clear_error (&error);
  g_assert_true (snn_trainer_diverged (tr));
  g_assert_false (snn_trainer_step (tr, &it, NULL));
  g_assert_true (snn_trainer_save_run (tr, f->dir, &error));
  g_assert_no_error (error);
  SnnNpz *good = load_npz (f->dir, "weights-last-good.npz");
  SnnTrainer *again = snn_trainer_new (e, NULL);
  for (int i = 0; i < done; i++)
    g_assert_true (snn_trainer_step (again, &it, NULL));
  SnnNpz *want = snn_net_to_npz (snn_trainer_net (again), FALSE);
  g_assert_cmpuint (snn_npz_count (good), ==, snn_npz_count (want));
  for (guint i = 0; i < snn_npz_count (want); i++)
    {
      SnnArray *a = snn_npz_get (want, snn_npz_name (want, i)), *b = snn_npz_get (good, snn_npz_name (want, i));
      g_assert_true (memcmp (a->data, b->data, snn_array_numel (a) * 4) == 0);
    }
  snn_npz_free (good);
  snn_npz_free (want);
  snn_trainer_free (again);
  snn_trainer_free (tr);
  snn_experiment_free (e);
}

/* The command line's message and file. */
static void
test_cli_divergence (Fixture *f, gconstpointer d)
{
  g_autofree char *args = g_strdup_printf ("train temporal-mlp lr=1e38 --quiet --out %s/run", f->dir);
  Result r = { 0 };
  run_snnwb (args, 0, 0, &r);
  g_assert_false (r.signaled);
  g_assert_cmpint (r.status, !=, 0);
  g_assert_nonnull (strstr (r.err, "diverged"));
  g_assert_nonnull (strstr (r.err, "weights-last-good.npz"));
  g_autofree char *run = g_build_filename (f->dir, "run", NULL);
  snn_npz_free (load_npz (run, "weights-last-good.npz"));
  assert_files_whole (run);
  result_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/resume/api", Fixture, NULL, setup, test_api_resume, teardown);
  g_test_add ("/resume/repair", Fixture, NULL, setup, test_repair, teardown);
  g_test_add ("/resume/bad-checkpoint", Fixture, NULL, setup, test_bad_checkpoint, teardown);
  g_test_add ("/resume/sigint", Fixture, GINT_TO_POINTER (SIGINT), setup, test_sigint, teardown);
  g_test_add ("/resume/sigterm", Fixture, GINT_TO_POINTER (SIGTERM), setup, test_sigint, teardown);
  g_test_add ("/resume/sigkill", Fixture, GINT_TO_POINTER (SIGKILL), setup, test_sigint, teardown);
  g_test_add ("/resume/last-good", Fixture, NULL, setup, test_last_good, teardown);
  g_test_add ("/resume/cli-divergence", Fixture, NULL, setup, test_cli_divergence, teardown);
  return g_test_run ();
}
