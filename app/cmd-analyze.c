/* snnwb analyze: the spatial and temporal parts of BPTT's dL/du, the
 * sensitivities epsilon and the cosine between BPTT's and the spatial
 * (SLTT) weight gradients, for one batch. */
#include "snnwb.h"
#include "analysis.h"
#include "npy.h"
#include "snn-error.h"
#include <math.h>
#include <string.h>

typedef struct {
  char *model, *weights, *input, *labels, *mse_target, *out, *backend;
  int T;
  double lambda, tau;
  gint64 seed;
  gboolean force;
} AnalyzeArgs;

/* Accepts (B, ...) static or (T, B, ...) sequence input of the model's shape. */
static gboolean
check_input (const SnnArray *x, const SnnModel *m, int T, const char *path, int *B, gboolean *sequence,
             GError **error)
{
  int nd = m->input_shape.ndim;
  gboolean fits = x->ndim == nd + 1 || x->ndim == nd + 2;
  for (int i = 0; fits && i < nd; i++)
    fits = x->shape[x->ndim - nd + i] == m->input_shape.d[i];
  if (!fits)
    {
      g_autofree char *got = snn_array_shape_string (x);
      g_autofree char *want = snn_shape_to_string (&m->input_shape);
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE,
                   "%s: input of shape %s does not fit the model's input %s (expected (B, ...) or (T, B, ...))", path,
                   got, want);
      return FALSE;
    }
  *sequence = x->ndim == nd + 2;
  if (*sequence && x->shape[0] != T)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE,
                   "%s: the sequence has %" G_GINT64_FORMAT " steps but --T is %d", path, x->shape[0], T);
      return FALSE;
    }
  *B = (int) x->shape[*sequence ? 1 : 0];
  if (*B < 1)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE, "%s: the batch is empty", path);
      return FALSE;
    }
  return TRUE;
}

static int32_t *
load_labels (const char *path, int B, int classes, GError **error)
{
  SnnArray *raw = snn_npy_load (path, error);
  if (!raw)
    return NULL;
  SnnArray *y = snn_array_to_i64 (raw, error);
  snn_array_free (raw);
  if (!y)
    {
      g_prefix_error (error, "%s: ", path);
      return NULL;
    }
  int32_t *out = NULL;
  if (y->ndim != 1 || y->shape[0] != B)
    {
      g_autofree char *s = snn_array_shape_string (y);
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE, "%s: labels of shape %s, expected (%d,)", path, s, B);
      goto done;
    }
  out = g_new (int32_t, B);
  for (int b = 0; b < B; b++)
    {
      int64_t v = ((int64_t *) y->data)[b];
      if (v < 0 || v >= classes)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID,
                       "%s: label %" G_GINT64_FORMAT " at index %d is outside 0..%d", path, v, b, classes - 1);
          g_clear_pointer (&out, g_free);
          goto done;
        }
      out[b] = (int32_t) v;
    }
done:
  snn_array_free (y);
  return out;
}

static gboolean
parse_config (const AnalyzeArgs *a, SnnTrainConfig *cfg, GError **error)
{
  snn_train_config_init (cfg);
  cfg->method = SNN_METHOD_BPTT;
  cfg->T = a->T;
  cfg->lambda = (float) a->lambda;
  if (!a->mse_target)
    return TRUE;
  cfg->mse_onehot = g_str_equal (a->mse_target, "onehot");
  if (cfg->mse_onehot)
    return TRUE;
  char *end;
  cfg->mse_target = (float) g_ascii_strtod (a->mse_target, &end);
  if (end == a->mse_target || *end)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--mse-target must be a number or onehot");
      return FALSE;
    }
  return TRUE;
}

static SnnArray *
doubles_array (int ndim, const int64_t *shape, const double *v)
{
  SnnArray *arr = snn_array_new (SNN_DTYPE_F32, ndim, shape);
  for (int64_t i = 0; i < snn_array_numel (arr); i++)
    ((float *) arr->data)[i] = (float) v[i];
  return arr;
}

static void
add_named (SnnNpz *out, SnnArray *arr, const char *fmt, int layer)
{
  g_autofree char *name = g_strdup_printf (fmt, layer);
  snn_npz_add (out, name, arr);
}

/* Copies every "grad.<i>.<p>" of src under prefix. */
static void
add_grads (SnnNpz *out, SnnNpz *src, const char *prefix)
{
  for (guint i = 0; i < snn_npz_count (src); i++)
    {
      const char *name = snn_npz_name (src, i);
      SnnArray *g = snn_npz_get (src, name);
      g_autofree char *renamed = g_strconcat (prefix, name + strlen ("grad"), NULL);
      snn_npz_add (out, renamed, snn_array_new_f32 (g->ndim, g->shape, g->data));
    }
}

static void
add_lif (SnnNpz *out, const SnnAnalysis *an, const SnnModel *m, const SnnLifAnalysis *la)
{
  int T = an->T, l = la->layer;
  int64_t steps[1] = { T }, span[2] = { T, T }, diag[2 + SNN_MAX_DIMS] = { T, an->batch };
  const SnnShape *s = &m->layers[l].out_shape;
  for (int i = 0; i < s->ndim; i++)
    diag[2 + i] = s->d[i];
  add_named (out, doubles_array (1, steps, la->spatial_norm), "spatial_norm.%d", l);
  add_named (out, doubles_array (1, steps, la->temporal_norm), "temporal_norm.%d", l);
  add_named (out, doubles_array (1, steps, la->cosine_du), "cosine_du.%d", l);
  add_named (out, doubles_array (1, steps, la->eps_mean), "eps_mean.%d", l);
  add_named (out, doubles_array (1, steps, la->eps_max), "eps_max.%d", l);
  add_named (out, doubles_array (1, steps, la->eps_zero_share), "eps_zero_share.%d", l);
  add_named (out, doubles_array (2, span, la->eps_prod_mean), "eps_prod_mean.%d", l);
  add_named (out, doubles_array (2, span, la->eps_prod_max), "eps_prod_max.%d", l);
  add_named (out, snn_array_new_f32 (2 + s->ndim, diag, la->eps_diag), "eps_diag.%d", l);
}

static SnnNpz *
analysis_npz (const SnnAnalysis *an, const SnnModel *m)
{
  SnnNpz *out = snn_npz_new ();
  snn_npz_add (out, "loss", snn_array_new_scalar_f32 ((float) an->loss));
  add_grads (out, an->grads_bptt, "grad");
  add_grads (out, an->grads_spatial, "grad_spatial");
  for (int i = 0; i < an->n_affine; i++)
    add_named (out, snn_array_new_scalar_f32 ((float) an->affine[i].cosine), "cosine.%d", an->affine[i].layer);
  snn_npz_add (out, "cosine_mean", snn_array_new_scalar_f32 ((float) an->cosine_mean));
  for (int i = 0; i < an->n_lif; i++)
    add_lif (out, an, m, &an->lif[i]);
  return out;
}

static gboolean
run_analyze (AnalyzeArgs *a, GError **error)
{
  SnnTrainConfig cfg;
  if (!parse_config (a, &cfg, error) || !snnwb_check_new_file (a->out, a->force, error))
    return FALSE;
  SnnModel *model = NULL;
  SnnNet *net = NULL;
  SnnArray *raw = NULL, *x = NULL;
  int32_t *labels = NULL;
  SnnAnalysis *an = NULL;
  SnnNpz *out = NULL;
  gboolean ok = FALSE, sequence;
  int B;
  const SnnBackend *be = snn_backend_get (a->backend, error);
  if (!be || !(model = snn_model_load_file (a->model, error)))
    goto done;
  net = snn_net_new (model, be);
  if (!snn_net_load_npz (net, a->weights, error) || !(raw = snn_npy_load (a->input, error)))
    goto done;
  x = snn_array_to_f32 (raw);
  if (!check_input (x, model, a->T, a->input, &B, &sequence, error) || !snnwb_check_finite (x, a->input, error)
      || !(labels = load_labels (a->labels, B, model->num_classes, error)))
    goto done;
  SnnAnalysisOptions opt;
  snn_analysis_options_init (&opt);
  opt.tau_override = (float) a->tau;
  opt.keep_diag = opt.keep_grads = TRUE;
  opt.seed = (uint64_t) a->seed;
  if (!(an = snn_analyze_batch (net, &cfg, x->data, sequence, B, labels, &opt, error)))
    goto done;
  out = analysis_npz (an, model);
  ok = snn_npz_save (a->out, out, error);
done:
  g_clear_pointer (&out, snn_npz_free);
  snn_analysis_free (an);
  g_free (labels);
  g_clear_pointer (&raw, snn_array_free);
  g_clear_pointer (&x, snn_array_free);
  g_clear_pointer (&net, snn_net_free);
  g_clear_pointer (&model, snn_model_free);
  return ok;
}

int
snnwb_cmd_analyze (int argc, char **argv)
{
  AnalyzeArgs a = { 0 };
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &a.model, "Model file (JSON)", "M.json" },
    { "weights", 0, 0, G_OPTION_ARG_FILENAME, &a.weights, "Weights (.npz)", "W.npz" },
    { "input", 0, 0, G_OPTION_ARG_FILENAME, &a.input, "Input batch, float32 (B,...) or (T,B,...)", "X.npy" },
    { "labels", 0, 0, G_OPTION_ARG_FILENAME, &a.labels, "Labels, int64 (B,)", "Y.npy" },
    { "T", 0, 0, G_OPTION_ARG_INT, &a.T, "Time steps", "N" },
    { "lambda", 0, 0, G_OPTION_ARG_DOUBLE, &a.lambda, "Weight of the MSE term [0]", "L" },
    { "mse-target", 0, 0, G_OPTION_ARG_STRING, &a.mse_target, "MSE target: a constant or onehot [1.0]", "VALUE" },
    { "tau", 0, 0, G_OPTION_ARG_DOUBLE, &a.tau, "Run every LIF layer with this tau [the model's]", "TAU" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &a.seed, "Seed for dropout masks [0]", "S" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &a.out, "Output (.npz)", "OUT.npz" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &a.force, "Replace OUT if it exists", NULL },
    SNNWB_BACKEND_OPTION (a.backend),
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- spatial and temporal gradient components of one batch");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int rc;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    rc = snnwb_fail (error);
  else if (!a.model || !a.weights || !a.input || !a.labels || a.T < 1 || !a.out)
    {
      g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "analyze needs --model, --weights, --input, --labels, --T (>= 1) and --out");
      rc = snnwb_fail (error);
    }
  else if (a.T > 64 || (a.tau != 0 && a.tau < 1))
    {
      g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   a.T > 64 ? "--T must be at most 64" : "--tau must be at least 1");
      rc = snnwb_fail (error);
    }
  else
    rc = run_analyze (&a, &error) ? 0 : snnwb_fail (error);
  g_free (a.model), g_free (a.weights), g_free (a.input), g_free (a.labels);
  g_free (a.mse_target), g_free (a.out), g_free (a.backend);
  return rc;
}
