/* snnwb train and snnwb eval. */
#include "snnwb.h"
#include "backend.h"
#include "snn-error.h"
#include "trainer.h"
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

static const char csv_header[] =
  "epoch,train_loss,train_acc,test_acc,ms_per_iter,forward_ms,backward_ms,peak_held_bytes,process_peak_bytes,seconds\n";

static void
print_epoch (const SnnEpochInfo *ep, int epochs, GString *csv)
{
  printf ("epoch %d/%d  train loss %.4f  train acc %.2f%%  test acc %.2f%%  %.2f ms/iter (fwd %.2f, bwd %.2f)  "
          "held for backward %.2f MiB  %.1f s\n",
          ep->epoch, epochs, ep->train_loss, 100 * ep->train_acc, 100 * ep->test_acc, ep->ms_per_iter, ep->forward_ms,
          ep->backward_ms, ep->peak_held_bytes / 1048576.0, ep->seconds);
  fflush (stdout);
  g_string_append_printf (csv, "%d,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%.3f\n",
                          ep->epoch, ep->train_loss, ep->train_acc, ep->test_acc, ep->ms_per_iter, ep->forward_ms,
                          ep->backward_ms, ep->peak_held_bytes, ep->process_peak_bytes, ep->seconds);
}

static gboolean
train_run (SnnExperiment *e, const char *out_dir, gboolean quiet, GError **error)
{
  SnnTrainer *tr = snn_trainer_new (e, error);
  if (!tr)
    return FALSE;
  g_autofree char *dir = make_run_dir (out_dir, e->name, error);
  if (!dir)
    {
      snn_trainer_free (tr);
      return FALSE;
    }
  g_autofree char *csv_path = g_build_filename (dir, "metrics.csv", NULL);
  g_autofree char *w_path = g_build_filename (dir, "weights.npz", NULL);
  g_autofree char *e_path = g_build_filename (dir, "experiment.json", NULL);
  if (!snnwb_check_new_file (csv_path, FALSE, error) || !snnwb_check_new_file (w_path, FALSE, error)
      || !snn_experiment_save (e, e_path, error))
    {
      snn_trainer_free (tr);
      return FALSE;
    }
  g_autofree char *blas = snn_backend_cpu_describe ();
  printf ("%s: %s, %s, T=%d, batch %d, %d train / %d test samples, %" G_GINT64_FORMAT " parameters\n", e->name,
          snn_method_name (e->train.method), snn_dataset_kind_name (e->dataset), e->train.T, e->batch_size,
          snn_trainer_train_set (tr)->n, snn_trainer_test_set (tr)->n, snn_model_param_count (e->model));
  printf ("backend: cpu (%s); writing %s\n", blas, dir);
  fflush (stdout);
  GString *csv = g_string_new (csv_header);
  gboolean tty = isatty (2) && !quiet, ok = TRUE;
  double loss = 0, acc = 0;
  while (ok && !snn_trainer_finished (tr))
    {
      SnnIterInfo it;
      ok = snn_trainer_step (tr, &it, error);
      if (!ok)
        break;
      loss = it.iter_in_epoch == 0 ? it.batch.loss : 0.98 * loss + 0.02 * it.batch.loss;
      double a = it.batch.count ? (double) it.batch.correct / it.batch.count : 0;
      acc = it.iter_in_epoch == 0 ? a : 0.98 * acc + 0.02 * a;
      if (tty && (it.iter_in_epoch % 5 == 0 || it.epoch_done))
        print_progress (&it, loss, acc);
      if (it.epoch_done)
        {
          if (tty)
            fprintf (stderr, "\r\033[K");
          print_epoch (snn_trainer_last_epoch (tr), e->epochs, csv);
          /* Written after every epoch so an interrupted run keeps its results. */
          ok = g_file_set_contents (csv_path, csv->str, -1, error)
               && snn_net_save_npz (snn_trainer_net (tr), w_path, error);
        }
    }
  g_string_free (csv, TRUE);
  snn_trainer_free (tr);
  return ok;
}

int
snnwb_cmd_train (int argc, char **argv)
{
  char *out = NULL;
  gboolean quiet = FALSE;
  GOptionEntry entries[] = {
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Folder for metrics.csv and weights.npz [runs/NAME-TIME]", "DIR" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress bar", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("EXPERIMENT [key=value ...] - train a network");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
    "EXPERIMENT is an experiment file or a preset name (mlp, mlp-small, conv-small, ...).\n"
    "Overrides: T, method, K, recompute, lr, epochs, batch_size, seed, train_subset, test_subset,\n"
    "lambda, mse_target, optimizer, momentum, weight_decay, schedule, dataset, dataset_path,\n"
    "and for every LIF layer: tau, vth, width, surrogate, reset, detach_reset.\n");
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  if (argc < 2)
    {
      g_autofree char *help = g_option_context_get_help (ctx, TRUE, NULL);
      fputs (help, stderr);
      return 2;
    }
  SnnExperiment *e = snn_experiment_load (argv[1], &error);
  for (int i = 2; e && i < argc; i++)
    if (!snn_experiment_apply_override (e, argv[i], &error))
      g_clear_pointer (&e, snn_experiment_free);
  if (e && ((out && !snnwb_check_new_dir (out, &error)) || !snn_experiment_check_memory (e, &error)))
    g_clear_pointer (&e, snn_experiment_free);
  int rc = e && train_run (e, out, quiet, &error) ? 0 : snnwb_fail (error);
  snn_experiment_free (e);
  g_free (out);
  return rc;
}

int
snnwb_cmd_eval (int argc, char **argv)
{
  char *weights = NULL;
  GOptionEntry entries[] = {
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
  SnnExperiment *e = snn_experiment_load (argv[1], &error);
  for (int i = 2; e && i < argc; i++)
    if (!snn_experiment_apply_override (e, argv[i], &error))
      g_clear_pointer (&e, snn_experiment_free);
  if (e && !snn_experiment_check_memory (e, &error))
    g_clear_pointer (&e, snn_experiment_free);
  SnnTrainer *tr = e ? snn_trainer_new (e, &error) : NULL;
  int rc;
  if (tr && snn_net_load_npz (snn_trainer_net (tr), weights, &error))
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
  return rc;
}
