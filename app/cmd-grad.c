/* snnwb grad: the loss, outputs, LIF states and parameter gradients of one
 * batch under a training method, with no update. */
#include "snnwb.h"
#include "npy.h"
#include "snn-error.h"
#include "train.h"
#include <math.h>
#include <string.h>

static gboolean
parse_k_steps (const char *text, int T, int *out, int *n, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  *n = 0;
  gboolean seen[64] = { 0 };
  for (int i = 0; parts[i]; i++)
    {
      char *end;
      gint64 v = g_ascii_strtoll (parts[i], &end, 10);
      if (end == parts[i] || *end || v < 0 || v >= T || seen[v])
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--k-steps: \"%s\" must be distinct steps in 0..%d", parts[i], T - 1);
          return FALSE;
        }
      seen[v] = TRUE;
      out[(*n)++] = (int) v;
    }
  return *n > 0;
}

/* Accepts (B, ...) static or (T, B, ...) sequence input of the model's shape. */
static gboolean
check_input (const SnnArray *x, const SnnModel *m, int T, const char *path, int *B, gboolean *sequence, GError **error)
{
  int nd = m->input_shape.ndim;
  *sequence = x->ndim == nd + 2;
  if (x->ndim != nd + 1 && !*sequence)
    goto bad;
  for (int i = 0; i < nd; i++)
    if (x->shape[x->ndim - nd + i] != m->input_shape.d[i])
      goto bad;
  if (*sequence && x->shape[0] != T)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE, "%s: the sequence has %" G_GINT64_FORMAT " steps but --T is %d",
                   path, x->shape[0], T);
      return FALSE;
    }
  *B = (int) x->shape[*sequence ? 1 : 0];
  return *B > 0;
bad:
  {
    g_autofree char *got = snn_array_shape_string (x);
    g_autofree char *want = snn_shape_to_string (&m->input_shape);
    g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE,
                 "%s: input of shape %s does not fit the model's input %s (expected (B, ...) or (T, B, ...))", path, got,
                 want);
    return FALSE;
  }
}

typedef struct {
  char *model, *weights, *input, *labels, *method, *k_steps, *mse_target, *out, *backend;
  int T;
  double lambda;
  gint64 seed;
  gboolean force;
} GradArgs;

static gboolean
load_inputs (GradArgs *a, SnnModel **model, SnnNet **net, SnnArray **x, SnnArray **y, GError **error)
{
  const SnnBackend *be = snn_backend_get (a->backend, error);
  if (!be || !(*model = snn_model_load_file (a->model, error)))
    return FALSE;
  if (!snn_memory_check (snn_model_predict_bytes (*model, 1, 1, 0), a->model, error))
    return FALSE;
  *net = snn_net_new (*model, be);
  if (!snn_net_load_npz (*net, a->weights, error))
    return FALSE;
  SnnArray *raw = snn_npy_load (a->input, error);
  if (!raw)
    return FALSE;
  *x = snn_array_to_f32 (raw);
  snn_array_free (raw);
  if (!(raw = snn_npy_load (a->labels, error)))
    return FALSE;
  *y = snn_array_to_i64 (raw, error);
  snn_array_free (raw);
  if (!*y)
    {
      g_prefix_error (error, "%s: ", a->labels);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_labels (const SnnArray *y, int B, int classes, const char *path, int32_t *out, GError **error)
{
  if (y->ndim != 1 || y->shape[0] != B)
    {
      g_autofree char *s = snn_array_shape_string (y);
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE, "%s: labels of shape %s, expected (%d,)", path, s, B);
      return FALSE;
    }
  for (int b = 0; b < B; b++)
    {
      int64_t v = ((int64_t *) y->data)[b];
      if (v < 0 || v >= classes)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: label %" G_GINT64_FORMAT " at index %d is outside 0..%d",
                       path, v, b, classes - 1);
          return FALSE;
        }
      out[b] = (int32_t) v;
    }
  return TRUE;
}

static gboolean
run_grad (GradArgs *a, GError **error)
{
  SnnTrainConfig cfg;
  snn_train_config_init (&cfg);
  cfg.T = a->T;
  cfg.lambda = (float) a->lambda;
  if (!isfinite (a->lambda) || a->lambda < 0 || a->lambda > 1)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--lambda must be in [0, 1]");
      return FALSE;
    }
  if (!snn_method_from_name (a->method, &cfg.method))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--method must be bptt, sltt or sltt_k, not \"%s\"", a->method);
      return FALSE;
    }
  if (a->mse_target)
    {
      cfg.mse_onehot = g_str_equal (a->mse_target, "onehot");
      char *end;
      cfg.mse_target = cfg.mse_onehot ? 1.0f : (float) g_ascii_strtod (a->mse_target, &end);
      if (!cfg.mse_onehot && (end == a->mse_target || *end || !isfinite (cfg.mse_target)))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--mse-target must be a number or onehot");
          return FALSE;
        }
    }
  int k_steps[64], n_k = 0;
  if (cfg.method == SNN_METHOD_SLTT_K)
    {
      if (!a->k_steps)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--method sltt_k needs --k-steps");
          return FALSE;
        }
      if (!parse_k_steps (a->k_steps, a->T, k_steps, &n_k, error))
        return FALSE;
      cfg.K = n_k;
    }
  if (!snnwb_check_new_file (a->out, a->force, error))
    return FALSE;

  SnnModel *model = NULL;
  SnnNet *net = NULL;
  SnnArray *x = NULL, *y = NULL;
  gboolean ok = FALSE, sequence;
  int B = 0;
  SnnLifRecord *record = NULL;
  SnnNpz *out = NULL;
  int32_t *labels = NULL;
  if (!load_inputs (a, &model, &net, &x, &y, error) || !check_input (x, model, a->T, a->input, &B, &sequence, error)
      || !snnwb_check_finite (x, a->input, error)
      || !snn_memory_check (snn_model_predict_bytes (model, B, a->T, 0), a->input, error))
    goto done;
  labels = g_new (int32_t, B);
  if (!check_labels (y, B, model->num_classes, a->labels, labels, error))
    goto done;
  record = snn_lif_record_new (model, a->T, B);
  int64_t oshape[3] = { a->T, B, model->num_classes };
  SnnArray *o = snn_array_new (SNN_DTYPE_F32, 3, oshape);
  SnnRng rng;
  snn_rng_seed (&rng, (uint64_t) a->seed);
  SnnBatchResult res;
  snn_net_zero_grad (net);
  if (!snn_train_batch (net, &cfg, x->data, sequence, B, labels, n_k ? k_steps : NULL, n_k, &rng, snn_lif_record_probe,
                        record, o->data, &res, error))
    {
      snn_array_free (o);
      goto done;
    }
  out = snn_npz_new ();
  snn_npz_add (out, "loss", snn_array_new_scalar_f32 ((float) res.loss));
  snn_npz_add (out, "o", o);
  SnnNpz *grads = snn_net_to_npz (net, TRUE);
  for (guint i = 0; i < snn_npz_count (grads); i++)
    {
      const char *name = snn_npz_name (grads, i);
      SnnArray *g = snn_npz_get (grads, name);
      SnnArray *copy = snn_array_new_f32 (g->ndim, g->shape, g->data);
      snn_npz_add (out, name, copy);
    }
  snn_npz_free (grads);
  snn_lif_record_move_to_npz (record, out);
  ok = snn_npz_save (a->out, out, error);
done:
  snn_lif_record_free (record);
  g_free (labels);
  snn_npz_free (out);
  snn_array_free (x);
  snn_array_free (y);
  snn_net_free (net);
  snn_model_free (model);
  return ok;
}

int
snnwb_cmd_grad (int argc, char **argv)
{
  GradArgs a = { .T = 0, .lambda = 0.0, .seed = 0 };
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &a.model, "Model file (JSON)", "M.json" },
    { "weights", 0, 0, G_OPTION_ARG_FILENAME, &a.weights, "Weights (.npz)", "W.npz" },
    { "input", 0, 0, G_OPTION_ARG_FILENAME, &a.input, "Input batch, float32 (B,...) or (T,B,...)", "X.npy" },
    { "labels", 0, 0, G_OPTION_ARG_FILENAME, &a.labels, "Labels, int64 (B,)", "Y.npy" },
    { "method", 0, 0, G_OPTION_ARG_STRING, &a.method, "bptt, sltt or sltt_k", "METHOD" },
    { "T", 0, 0, G_OPTION_ARG_INT, &a.T, "Time steps", "N" },
    { "k-steps", 0, 0, G_OPTION_ARG_STRING, &a.k_steps, "Steps backpropagated by sltt_k (0-based)", "0,3" },
    { "lambda", 0, 0, G_OPTION_ARG_DOUBLE, &a.lambda, "Weight of the MSE term [0]", "L" },
    { "mse-target", 0, 0, G_OPTION_ARG_STRING, &a.mse_target, "MSE target: a constant or onehot [1.0]", "VALUE" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &a.seed, "Seed for dropout masks [0]", "S" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &a.out, "Output (.npz)", "OUT.npz" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &a.force, "Replace OUT if it exists", NULL },
    SNNWB_BACKEND_OPTION (a.backend),
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- gradients of one batch");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  if (!a.model || !a.weights || !a.input || !a.labels || !a.method || a.T < 1 || !a.out)
    {
      g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "grad needs --model, --weights, --input, --labels, --method, --T (>= 1) and --out");
      return snnwb_fail (error);
    }
  if (a.T > 64)
    {
      g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--T must be at most 64");
      return snnwb_fail (error);
    }
  int rc = run_grad (&a, &error) ? 0 : snnwb_fail (error);
  g_free (a.model), g_free (a.weights), g_free (a.input), g_free (a.labels), g_free (a.method);
  g_free (a.k_steps), g_free (a.mse_target), g_free (a.out), g_free (a.backend);
  return rc;
}
