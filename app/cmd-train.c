/* snnwb train and snnwb eval. */
#include "snnwb.h"
#include "backend.h"
#include "snn-error.h"
#include "trainer.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void
print_progress (const SnnIterInfo *it, double loss, double acc)
{
  int width = 30, done = (int) ((double) (it->iter_in_epoch + 1) / it->iters_per_epoch * width);
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < done ? '#' : '.';
  bar[width] = 0;
  fprintf (stderr, "\r  epoch %d [%s] %d/%d  loss %.4f  acc %5.1f%%", it->epoch + 1, bar, it->iter_in_epoch + 1,
           it->iters_per_epoch, loss, 100.0 * acc);
  fflush (stderr);
}

/* A new folder under runs/ named after the experiment and the time; an
 * existing one is never reused. */
static char *
make_run_dir (const char *requested, const char *name, GError **error)
{
  char *dir;
  if (requested)
    dir = g_strdup (requested);
  else
    {
      g_autoptr (GDateTime) now = g_date_time_new_now_local ();
      g_autofree char *stamp = g_date_time_format (now, "%Y%m%d-%H%M%S");
      dir = g_strdup_printf ("runs/%s-%s", name, stamp);
      for (int i = 2; g_file_test (dir, G_FILE_TEST_EXISTS); i++)
        {
          g_free (dir);
          dir = g_strdup_printf ("runs/%s-%s-%d", name, stamp, i);
        }
    }
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: cannot create the folder", dir);
      g_free (dir);
      return NULL;
    }
  return dir;
}

static void
print_epoch (const SnnEpochInfo *ep, int epochs)
{
  printf ("epoch %d/%d  train loss %.4f  train acc %.2f%%  test acc %.2f%%  %.2f ms/iter (fwd %.2f, bwd %.2f)  "
          "held for backward %.2f MiB  %.1f s\n",
          ep->epoch, epochs, ep->train_loss, 100 * ep->train_acc, 100 * ep->test_acc, ep->ms_per_iter, ep->forward_ms,
          ep->backward_ms, ep->peak_held_bytes / 1048576.0, ep->seconds);
  fflush (stdout);
}

/* SIGINT and SIGTERM only raise a flag: the iteration under way finishes
 * and a checkpoint is written. The handler is reset on delivery, so a
 * second signal ends the process at once (the files stay whole). */
static volatile sig_atomic_t stop_signal;

static void
on_stop_signal (int sig)
{
  stop_signal = sig;
}

static void
catch_stop_signals (void)
{
  struct sigaction sa = { 0 };
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
}

/* A folder that holds a resumable run is never written into: it is continued. */
static gboolean
check_run_dir (const char *dir, GError **error)
{
  static const char *files[] = { "checkpoint.npz" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *p = g_build_filename (dir, files[i], NULL);
      if (g_file_test (p, G_FILE_TEST_EXISTS))
        {
          g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID,
                       "%s: already holds a run (%s); give another --out folder, or continue it with: "
                       "snnwb train --resume %s", dir, files[i], dir);
          return FALSE;
        }
    }
  return TRUE;
}

/* Trains to the end, or until a stop signal (returns 128 + the signal). */
static int
train_loop (SnnTrainer *tr, const char *dir, gboolean quiet, GError **error)
{
  SnnExperiment *e = snn_trainer_experiment (tr);
  gboolean tty = isatty (2) && !quiet, ok = TRUE, saved = TRUE;
  double loss = 0, acc = 0;
  SnnIterInfo it = { 0 };
  while (ok && !stop_signal && !snn_trainer_finished (tr))
    {
      ok = snn_trainer_step (tr, &it, error);
      if (!ok)
        break;
      saved = FALSE;
      loss = it.iter_in_epoch == 0 ? it.batch.loss : 0.98 * loss + 0.02 * it.batch.loss;
      double a = it.batch.count ? (double) it.batch.correct / it.batch.count : 0;
      acc = it.iter_in_epoch == 0 ? a : 0.98 * acc + 0.02 * a;
      if (tty && (it.iter_in_epoch % 5 == 0 || it.epoch_done))
        print_progress (&it, loss, acc);
      if (it.epoch_done)
        {
          if (tty)
            fprintf (stderr, "\r\033[K");
          print_epoch (snn_trainer_last_epoch (tr), e->epochs);
          /* A checkpoint after every epoch, so a killed run loses at most one. */
          ok = saved = snn_trainer_save_run (tr, dir, error);
        }
    }
  /* The handler stays: a signal after the last iteration finds the run done. */
  int sig = stop_signal;
  if (tty && !ok)
    fprintf (stderr, "\n");
  if (!ok && snn_trainer_diverged (tr) && error && *error)
    {
      /* The run folder keeps its last checkpoint; the weights of the last
       * finite iteration go beside it. */
      GError *local = NULL;
      g_autofree char *good = g_build_filename (dir, "weights-last-good.npz", NULL);
      g_autofree char *more = snn_trainer_save_run (tr, dir, &local)
                                ? g_strdup_printf ("; the last finite weights are in %s", good)
                                : g_strdup_printf ("; %s", local->message);
      char *m = g_strconcat ((*error)->message, more, NULL);
      g_free ((*error)->message);
      (*error)->message = m;
      g_clear_error (&local);
    }
  if (!ok)
    return 2;
  if (sig && !snn_trainer_finished (tr))
    {
      if (!saved && !snn_trainer_save_run (tr, dir, error))
        return 2;
      int epoch, iter;
      snn_trainer_position (tr, &epoch, &iter);
      if (tty)
        fprintf (stderr, "\r\033[K");
      fprintf (stderr, "interrupted at epoch %d, iteration %d; continue with: snnwb train --resume %s\n", epoch,
               iter, dir);
      return 128 + sig;
    }
  return 0;
}

/* Also starts catching stop signals: from here on a run stops cleanly. */
static void
print_header (SnnTrainer *tr, const char *dir)
{
  stop_signal = 0;
  catch_stop_signals ();
  SnnExperiment *e = snn_trainer_experiment (tr);
  g_autofree char *backend = snn_backend_describe (snn_net_backend (snn_trainer_net (tr)));
  printf ("%s: %s, %s, T=%d, batch %d, %d train / %d test samples, %" G_GINT64_FORMAT " parameters\n", e->name,
          snn_method_name (e->train.method), snn_dataset_kind_name (e->dataset), e->train.T, e->batch_size,
          snn_trainer_train_set (tr)->n, snn_trainer_test_set (tr)->n, snn_model_param_count (e->model));
  printf ("backend: %s; writing %s\n", backend, dir);
  fflush (stdout);
}

static int
train_run (SnnExperiment *e, const char *out_dir, gboolean quiet, GError **error)
{
  if (out_dir && (!check_run_dir (out_dir, error) || !snnwb_check_new_dir (out_dir, error)))
    return 2;
  SnnTrainer *tr = snn_trainer_new (e, error);
  if (!tr)
    return 2;
  g_autofree char *dir = make_run_dir (out_dir, e->name, error);
  g_autofree char *e_path = dir ? g_build_filename (dir, "experiment.json", NULL) : NULL;
  if (!dir || !snn_trainer_lock_run (tr, dir, error) || !snn_experiment_save (e, e_path, error))
    {
      snn_trainer_free (tr);
      return 2;
    }
  /* A checkpoint before the first iteration: --resume works from the start. */
  if (!snn_trainer_save_run (tr, dir, error))
    {
      snn_trainer_free (tr);
      return 2;
    }
  print_header (tr, dir);
  int rc = train_loop (tr, dir, quiet, error);
  snn_trainer_free (tr);
  return rc;
}

static int
resume_run (const char *dir, gboolean quiet, GError **error)
{
  SnnTrainer *tr = snn_trainer_open_run (dir, error);
  if (!tr)
    return 2;
  int rc = 0;
  if (snn_trainer_finished (tr))
    printf ("%s: all %d epochs are done; nothing to continue\n", dir, snn_trainer_experiment (tr)->epochs);
  else
    {
      int epoch, iter;
      snn_trainer_position (tr, &epoch, &iter);
      print_header (tr, dir);
      printf ("resuming at epoch %d, iteration %d\n", epoch, iter);
      fflush (stdout);
      rc = train_loop (tr, dir, quiet, error);
    }
  snn_trainer_free (tr);
  return rc;
}

int
snnwb_cmd_train (int argc, char **argv)
{
  char *out = NULL, *resume = NULL, *backend = NULL;
  gboolean quiet = FALSE;
  GOptionEntry entries[] = {
    SNNWB_BACKEND_OPTION (backend),
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Folder for the run's files (a new one) [runs/NAME-TIME]", "DIR" },
    { "resume", 0, 0, G_OPTION_ARG_FILENAME, &resume, "Continue the run in DIR from its checkpoint", "DIR" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress bar", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("EXPERIMENT [key=value ...] - train a network");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
    "EXPERIMENT is an experiment file or a preset name (mlp, mlp-small, conv-small, ...).\n"
    "Overrides: T, method, K, recompute, lr, epochs, batch_size, seed, train_subset, test_subset,\n"
    "lambda, mse_target, optimizer, momentum, weight_decay, schedule, dataset, dataset_path,\n"
    "and for every LIF layer: tau, vth, width, surrogate, reset, detach_reset.\n"
    "The run folder holds experiment.json, checkpoint.npz, weights.npz and metrics.csv, written\n"
    "after every epoch. SIGINT or SIGTERM (Ctrl+C) ends the iteration under way, writes a\n"
    "checkpoint and exits with 128 + the signal; --resume DIR continues exactly where it was.\n");
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  int rc;
  if (resume)
    {
      if (argc > 1 || out)
        {
          fprintf (stderr, "snnwb: --resume DIR takes no EXPERIMENT, overrides or --out: the run's checkpoint has them\n");
          rc = 2;
        }
      else
        rc = resume_run (resume, quiet, &error);
    }
  else if (argc < 2)
    {
      g_autofree char *help = g_option_context_get_help (ctx, TRUE, NULL);
      fputs (help, stderr);
      rc = 2;
    }
  else
    {
      /* The trainer refuses what cannot fit before it allocates. */
      SnnExperiment *e = snnwb_load_experiment (argc, argv, backend, &error);
      rc = e ? train_run (e, out, quiet, &error) : 2;
      snn_experiment_free (e);
    }
  if (error)
    rc = snnwb_fail (error);
  g_free (out);
  g_free (resume);
  g_free (backend);
  return rc;
}

int
snnwb_cmd_eval (int argc, char **argv)
{
  char *weights = NULL, *backend = NULL;
  GOptionEntry entries[] = {
    SNNWB_BACKEND_OPTION (backend),
    { "weights", 0, 0, G_OPTION_ARG_FILENAME, &weights, "Weights (.npz)", "W.npz" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("EXPERIMENT --weights W.npz - test accuracy");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  if (argc < 2 || !weights)
    {
      fprintf (stderr, "snnwb: eval needs EXPERIMENT and --weights W.npz\n");
      return 2;
    }
  SnnExperiment *e = snnwb_load_experiment (argc, argv, backend, &error);
  SnnTrainer *tr = e ? snn_trainer_new (e, &error) : NULL;
  int rc;
  if (tr && snn_trainer_load_weights (tr, weights, &error))
    {
      double acc = snn_trainer_evaluate (tr, snn_trainer_test_set (tr), NULL, NULL);
      printf ("%s: test accuracy %.2f%% on %d samples (T=%d)\n", weights, 100 * acc, snn_trainer_test_set (tr)->n,
              e->train.T);
      rc = 0;
    }
  else
    rc = snnwb_fail (error);
  snn_trainer_free (tr);
  snn_experiment_free (e);
  g_free (weights);
  g_free (backend);
  return rc;
}
