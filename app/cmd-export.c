/* snnwb export: an experiment or a model as a PyTorch folder; snnwb frames:
 * the dataset of an experiment as .npy files for it. */
#include "snnwb.h"
#include "export.h"
#include "snn-error.h"
#include "trainer.h"
#include <stdio.h>
#include <string.h>

static gboolean
run_export (int argc, char **argv, const char *model_path, const char *weights_path, const char *out, GError **error)
{
  g_autoptr (GError) local = NULL;
  SnnExperiment *e = NULL;
  SnnModel *m = NULL;
  SnnNpz *w = NULL;
  gboolean ok = FALSE;
  if (model_path ? !(m = snn_model_load_file (model_path, error)) : !(e = snnwb_load_experiment (argc, argv, NULL, error)))
    goto done;
  if (weights_path && !(w = snn_npz_load (weights_path, error)))
    goto done;
  if (!snn_export_pytorch (e, m, w, e ? e->seed : 2022, out, &local))
    {
      /* Weight errors name the parameter; the file is the user's. */
      if (weights_path && local->domain != SNN_IO_ERROR)
        g_prefix_error (&local, "%s: ", weights_path);
      g_propagate_error (error, g_steal_pointer (&local));
      goto done;
    }
  printf ("%s: model.py, train.py, README.md, model.json, weights.npz%s\n", out, e ? ", experiment.json" : "");
  ok = TRUE;
done:
  snn_npz_free (w);
  snn_model_free (m);
  snn_experiment_free (e);
  return ok;
}

int
snnwb_cmd_export (int argc, char **argv)
{
  char *model = NULL, *weights = NULL, *out = NULL;
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model, "A model file instead of an experiment", "M.json" },
    { "weights", 0, 0, G_OPTION_ARG_FILENAME, &weights, "Weights to start from [initialised from the seed]", "W.npz" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Folder to write (files in it are never replaced)", "DIR" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[EXPERIMENT [key=value ...]] --out DIR - export to PyTorch");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
    "Writes model.py (the network as a torch.nn.Module), train.py (the experiment's training, also under\n"
    "torchrun, and --grad as snnwb grad), README.md, model.json, weights.npz and experiment.json.\n"
    "EXPERIMENT is a file or a preset; overrides as for snnwb train.\n");
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  int rc;
  if (!out || (!model && argc < 2) || (model && argc > 1))
    {
      g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "export needs EXPERIMENT or --model M.json (not both), and --out DIR");
      rc = snnwb_fail (error);
    }
  else
    rc = run_export (argc, argv, model, weights, out, &error) ? 0 : snnwb_fail (error);
  g_free (model), g_free (weights), g_free (out);
  return rc;
}

/* x as (n, [seq_T,] input_shape...) float32 and y as (n,) int64. */
static gboolean
save_split (const SnnDataset *ds, const SnnModel *m, const char *dir, const char *split, gboolean force,
            GError **error)
{
  int64_t shape[SNN_ARRAY_MAX_DIMS] = { ds->n };
  int nd = 1;
  if (ds->seq_T > 0)
    shape[nd++] = ds->seq_T;
  for (int i = 0; i < m->input_shape.ndim; i++)
    shape[nd++] = m->input_shape.d[i];
  g_autofree char *xp = g_strdup_printf ("%s/%s_x.npy", dir, split);
  g_autofree char *yp = g_strdup_printf ("%s/%s_y.npy", dir, split);
  if (!snnwb_check_new_file (xp, force, error) || !snnwb_check_new_file (yp, force, error))
    return FALSE;
  SnnArray *x = snn_array_new_f32 (nd, shape, ds->x);
  int64_t n = ds->n;
  SnnArray *y = snn_array_new (SNN_DTYPE_I64, 1, &n);
  for (int i = 0; i < ds->n; i++)
    ((int64_t *) y->data)[i] = ds->y[i];
  gboolean ok = snn_npy_save (xp, x, error) && snn_npy_save (yp, y, error);
  snn_array_free (x);
  snn_array_free (y);
  return ok;
}

static gboolean
run_frames (int argc, char **argv, const char *out, gboolean force, GError **error)
{
  SnnExperiment *e = snnwb_load_experiment (argc, argv, NULL, error);
  if (!e)
    return FALSE;
  SnnDataset *train = snn_experiment_load_dataset (e, TRUE, NULL, error), *test = NULL;
  float norm[2] = { train ? train->norm_mean : 0, train ? train->norm_std : 1 };
  gboolean ok = train && (test = snn_experiment_load_dataset (e, FALSE, norm, error));
  if (ok && g_mkdir_with_parents (out, 0755) != 0)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: cannot create the folder", out);
      ok = FALSE;
    }
  ok = ok && save_split (train, e->model, out, "train", force, error)
       && save_split (test, e->model, out, "test", force, error);
  if (ok)
    printf ("%s: train_x.npy, train_y.npy (%d samples), test_x.npy, test_y.npy (%d samples)%s\n", out, train->n,
            test->n, train->seq_T ? ", T frames each" : "");
  snn_dataset_free (train);
  snn_dataset_free (test);
  snn_experiment_free (e);
  return ok;
}

int
snnwb_cmd_frames (int argc, char **argv)
{
  char *out = NULL;
  gboolean force = FALSE;
  GOptionEntry entries[] = {
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Folder to write", "DIR" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force, "Replace the .npy files if they exist", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("EXPERIMENT [key=value ...] --out DIR - the dataset as .npy");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
    "Writes the experiment's dataset as the network takes it (event data integrated into T frames,\n"
    "subsets and normalisation applied): train_x.npy, train_y.npy, test_x.npy, test_y.npy,\n"
    "for the exported train.py --frames DIR.\n");
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  int rc;
  if (!out || argc < 2)
    {
      g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "frames needs EXPERIMENT and --out DIR");
      rc = snnwb_fail (error);
    }
  else
    rc = run_frames (argc, argv, out, force, &error) ? 0 : snnwb_fail (error);
  g_free (out);
  return rc;
}
