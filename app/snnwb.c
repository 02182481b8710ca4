/* snnwb: the command line of SNN Workbench. */
#include "snnwb.h"
#include "blas-select.h"
#include "backend.h"
#include "snn-config.h"
#include "snn-error.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
  "Usage: snnwb COMMAND [ARGS]\n"
  "\n"
  "Commands:\n"
  "  train EXPERIMENT [key=value ...]   train (EXPERIMENT: a file or a preset: mlp, mlp-small, conv-small, ...)\n"
  "  eval EXPERIMENT --weights W.npz    test accuracy of saved weights\n"
  "  grad --model M.json --weights W.npz --input X.npy --labels Y.npy --method bptt|sltt|sltt_k\n"
  "       --T N [--k-steps 0,3] [--lambda L] [--mse-target VALUE|onehot] --out OUT.npz\n"
  "                                     gradients of one batch, no update\n"
  "  analyze --model M.json --weights W.npz --input X.npy --labels Y.npy --T N [--lambda L]\n"
  "       [--mse-target VALUE|onehot] --out OUT.npz\n"
  "                                     spatial and temporal gradient components of one batch\n"
  "  reproduce fig3|table1|table2|fig4 [--quick] [--out DIR]\n"
  "                                     small-scale versions of the paper's figures and tables\n"
  "  bench [--net LIST] [--T LIST] [--methods LIST]\n"
  "                                     time per SGD step, GFLOP/s against the SGEMM ceiling, memory\n"
  "  export EXPERIMENT|--model M.json [--weights W.npz] --out DIR\n"
  "                                     a PyTorch folder: model.py, train.py (torchrun), README.md\n"
  "  frames EXPERIMENT --out DIR        the experiment's dataset as .npy (for the exported train.py)\n"
  "  --version                          version, the backends built and the BLAS in use\n"
  "\n"
  "Commands that compute take --backend cpu|cuda (or $SNNWB_BACKEND).\n"
  "\n"
  "Run 'snnwb COMMAND --help' for the options of a command.\n";

int
snnwb_fail (GError *error)
{
  int code = 1;
  if (error->domain == SNN_MODEL_ERROR || error->domain == SNN_DATA_ERROR || error->domain == SNN_IO_ERROR
      || error->domain == G_OPTION_ERROR || error->domain == SNN_BACKEND_ERROR)
    code = 2;
  fprintf (stderr, "snnwb: %s\n", error->message);
  g_error_free (error);
  return code;
}

gboolean
snnwb_check_new_file (const char *path, gboolean force, GError **error)
{
  if (!force && g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: already exists; not overwriting it (use --force)", path);
      return FALSE;
    }
  return TRUE;
}

SnnExperiment *
snnwb_load_experiment (int argc, char **argv, const char *backend, GError **error)
{
  SnnExperiment *e = snn_experiment_load (argv[1], error);
  for (int i = 2; e && i < argc; i++)
    if (!snn_experiment_apply_override (e, argv[i], error))
      g_clear_pointer (&e, snn_experiment_free);
  if (e && backend)
    g_free (e->backend), e->backend = g_strdup (backend);
  return e;
}

gboolean
snnwb_check_new_dir (const char *dir, GError **error)
{
  GDir *d = g_file_test (dir, G_FILE_TEST_IS_DIR) ? g_dir_open (dir, 0, NULL) : NULL;
  gboolean empty = !d || g_dir_read_name (d) == NULL;
  if (d)
    g_dir_close (d);
  if (!g_file_test (dir, G_FILE_TEST_EXISTS) || (empty && g_file_test (dir, G_FILE_TEST_IS_DIR)))
    return TRUE;
  g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID,
               g_file_test (dir, G_FILE_TEST_IS_DIR) ? "%s: already exists and is not empty; not writing into it "
                                                       "(choose a new --out folder)"
                                                     : "%s: already exists and is not a folder (choose a new --out folder)",
               dir);
  return FALSE;
}

gboolean
snnwb_check_finite (const SnnArray *x, const char *path, GError **error)
{
  const float *v = x->data;
  int64_t n = snn_array_numel (x);
  for (int64_t i = 0; i < n; i++)
    if (!isfinite (v[i]))
      {
        g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_NONFINITE, "%s: value %g at flat index %" G_GINT64_FORMAT
                     " is not finite; inputs must be finite numbers", path, v[i], i);
        return FALSE;
      }
  return TRUE;
}

int
main (int argc, char **argv)
{
  if (argc < 2 || g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h") || g_str_equal (argv[1], "help"))
    {
      fputs (usage, argc < 2 ? stderr : stdout);
      return argc < 2 ? 2 : 0;
    }
  snnwb_blas_select (argc, argv);
  const char *cmd = argv[1];
  if (g_str_equal (cmd, "--version"))
    {
      g_autofree char *cpu = snn_backend_describe (snn_backend_get ("cpu", NULL));
      printf ("snnwb %s\nbackends built: %s\nbackend: %s\nBLAS kernel: %s\n", SNN_VERSION, snn_backend_built (), cpu,
              snnwb_blas_choice ());
      return 0;
    }
  if (g_str_equal (cmd, "train"))
    return snnwb_cmd_train (argc - 1, argv + 1);
  if (g_str_equal (cmd, "eval"))
    return snnwb_cmd_eval (argc - 1, argv + 1);
  if (g_str_equal (cmd, "grad"))
    return snnwb_cmd_grad (argc - 1, argv + 1);
  if (g_str_equal (cmd, "analyze"))
    return snnwb_cmd_analyze (argc - 1, argv + 1);
  if (g_str_equal (cmd, "reproduce"))
    return snnwb_cmd_reproduce (argc - 1, argv + 1);
  if (g_str_equal (cmd, "export"))
    return snnwb_cmd_export (argc - 1, argv + 1);
  if (g_str_equal (cmd, "frames"))
    return snnwb_cmd_frames (argc - 1, argv + 1);
  if (g_str_equal (cmd, "bench"))
    return snnwb_cmd_bench (argc - 1, argv + 1);
  fprintf (stderr, "snnwb: unknown command '%s'\n\n%s", cmd, usage);
  return 2;
}
