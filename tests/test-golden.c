/* Every committed golden case, written by an independent PyTorch
 * implementation (tests/golden/gen_golden.py), must be reproduced on every
 * backend this machine runs (others are skipped), in-process, as snnwb grad
 * computes it: spikes equal, gradients within 1e-4 of their largest value. */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include "npy.h"
#include "train.h"

typedef struct {
  char *dir;
  char *tmp;
} Fixture;

static char *
case_root (void)
{
  return g_build_filename (g_getenv ("SNN_SOURCE_ROOT"), "tests", "golden", "cases", NULL);
}

static double
max_abs (const float *a, int64_t n)
{
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    m = MAX (m, fabs (a[i]));
  return m;
}

static void
compare_close (const char *case_name, const char *name, const SnnArray *got, const SnnArray *ref, double rel)
{
  g_assert_nonnull (got);
  g_assert_cmpint (got->ndim, ==, ref->ndim);
  for (int d = 0; d < ref->ndim; d++)
    g_assert_cmpint (got->shape[d], ==, ref->shape[d]);
  SnnArray *r = snn_array_to_f32 (ref);
  const float *g = got->data, *e = r->data;
  int64_t n = snn_array_numel (ref);
  double scale = max_abs (e, n), worst = 0;
  for (int64_t i = 0; i < n; i++)
    worst = MAX (worst, fabs ((double) g[i] - e[i]));
  if (worst > rel * MAX (scale, 1e-30) && !(scale == 0 && worst == 0))
    g_error ("%s: %s differs by %g (largest reference value %g, tolerance %g)", case_name, name, worst, scale,
             rel * scale);
  snn_array_free (r);
}

static void
compare_equal (const char *case_name, const char *name, const SnnArray *got, const SnnArray *ref)
{
  g_assert_nonnull (got);
  SnnArray *r = snn_array_to_f32 (ref);
  int64_t n = snn_array_numel (ref);
  g_assert_cmpint (snn_array_numel (got), ==, n);
  for (int64_t i = 0; i < n; i++)
    if (((float *) got->data)[i] != ((float *) r->data)[i])
      g_error ("%s: %s differs at flat index %" G_GINT64_FORMAT, case_name, name, i);
  snn_array_free (r);
}

/* The case's args.json as a training configuration (and its K steps). */
static void
case_config (const char *dir, SnnTrainConfig *cfg, int *k_steps, int *n_k)
{
  g_autofree char *args_path = g_build_filename (dir, "args.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_file (p, args_path, NULL));
  JsonObject *o = json_node_get_object (json_parser_get_root (p));
  snn_train_config_init (cfg);
  g_assert_true (snn_method_from_name (json_object_get_string_member (o, "method"), &cfg->method));
  cfg->T = (int) json_object_get_int_member (o, "T");
  if (json_object_has_member (o, "lambda"))
    cfg->lambda = (float) json_object_get_double_member (o, "lambda");
  JsonNode *t = json_object_get_member (o, "mse_target");
  if (t && json_node_get_value_type (t) == G_TYPE_STRING)
    cfg->mse_onehot = g_str_equal (json_node_get_string (t), "onehot"), cfg->mse_target = 1.0f;
  else if (t)
    cfg->mse_target = (float) json_node_get_double (t);
  *n_k = 0;
  if (json_object_has_member (o, "k_steps"))
    {
      JsonArray *k = json_object_get_array_member (o, "k_steps");
      for (guint i = 0; i < json_array_get_length (k); i++)
        k_steps[(*n_k)++] = (int) json_array_get_int_element (k, i);
      cfg->K = *n_k;
    }
}

/* One batch of the case on the backend, with no update: what snnwb grad
 * writes, gathered in-process. */
static SnnNpz *
run_batch (const SnnBackend *be, const char *dir)
{
  GError *error = NULL;
  SnnTrainConfig cfg;
  int k_steps[64], n_k;
  case_config (dir, &cfg, k_steps, &n_k);
  g_autofree char *mpath = g_build_filename (dir, "model.json", NULL);
  g_autofree char *wpath = g_build_filename (dir, "weights.npz", NULL);
  g_autofree char *xpath = g_build_filename (dir, "input.npy", NULL);
  g_autofree char *ypath = g_build_filename (dir, "labels.npy", NULL);
  SnnModel *m = snn_model_load_file (mpath, &error);
  g_assert_no_error (error);
  SnnNet *net = snn_net_new (m, be);
  g_assert_true (snn_net_load_npz (net, wpath, &error));
  SnnArray *raw = snn_npy_load (xpath, &error), *x = snn_array_to_f32 (raw);
  snn_array_free (raw);
  raw = snn_npy_load (ypath, &error);
  SnnArray *y = snn_array_to_i64 (raw, &error);
  g_assert_no_error (error);
  snn_array_free (raw);
  gboolean sequence = x->ndim == m->input_shape.ndim + 2;
  int B = (int) y->shape[0];
  int32_t *labels = g_new (int32_t, B);
  for (int b = 0; b < B; b++)
    labels[b] = (int32_t) ((int64_t *) y->data)[b];
  SnnLifRecord *record = snn_lif_record_new (m, cfg.T, B);
  int64_t oshape[3] = { cfg.T, B, m->num_classes };
  SnnArray *o = snn_array_new (SNN_DTYPE_F32, 3, oshape);
  SnnRng rng;
  snn_rng_seed (&rng, 0);
  SnnBatchResult res;
  snn_net_zero_grad (net);
  g_assert_true (snn_train_batch (net, &cfg, x->data, sequence, B, labels, n_k ? k_steps : NULL, n_k, &rng,
                                  snn_lif_record_probe, record, o->data, &res, &error));
  g_assert_no_error (error);
  SnnNpz *out = snn_net_to_npz (net, TRUE);
  snn_npz_add (out, "loss", snn_array_new_scalar_f32 ((float) res.loss));
  snn_npz_add (out, "o", o);
  snn_lif_record_move_to_npz (record, out);
  snn_lif_record_free (record);
  g_free (labels);
  snn_array_free (x), snn_array_free (y);
  snn_net_free (net);
  snn_model_free (m);
  return out;
}

typedef struct {
  const char *backend;
  char *name;
} Case;

static void
run_case (gconstpointer data)
{
  const Case *c = data;
  const char *name = c->name;
  GError *error = NULL;
  const SnnBackend *be = snn_backend_get (c->backend, &error);
  if (!be)
    {
      g_test_skip (error->message);
      g_error_free (error);
      return;
    }
  g_autofree char *root = case_root ();
  g_autofree char *dir = g_build_filename (root, name, NULL);
  g_autofree char *exp_path = g_build_filename (dir, "expected.npz", NULL);
  SnnNpz *got = run_batch (be, dir), *ref = snn_npz_load (exp_path, NULL);
  g_assert_nonnull (ref);
  int n_grads = 0;
  for (guint i = 0; i < snn_npz_count (ref); i++)
    {
      const char *k = snn_npz_name (ref, i);
      SnnArray *r = snn_npz_get (ref, k), *g = snn_npz_get (got, k);
      if (!g)
        g_error ("%s: the batch gave no '%s'", name, k);
      if (g_str_has_prefix (k, "spikes."))
        compare_equal (name, k, g, r);
      else if (g_str_has_prefix (k, "grad."))
        {
          compare_close (name, k, g, r, 1e-4);
          n_grads++;
        }
      else
        compare_close (name, k, g, r, 1e-4); /* loss, o, v */
    }
  g_assert_cmpint (n_grads, >, 0);
  snn_npz_free (got);
  snn_npz_free (ref);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  const char *backends[] = { "cpu", "cuda" };
  g_autofree char *root = case_root ();
  g_autofree char *manifest_path = g_build_filename (root, "MANIFEST.txt", NULL);
  g_autofree char *manifest = NULL;
  if (!g_file_get_contents (manifest_path, &manifest, NULL, NULL))
    g_error ("cannot read %s", manifest_path);
  g_auto (GStrv) names = g_strsplit (manifest, "\n", -1);
  int n = 0;
  for (int i = 0; names[i]; i++)
    {
      g_strstrip (names[i]);
      if (!*names[i] || names[i][0] == '#')
        continue;
      for (guint b = 0; b < G_N_ELEMENTS (backends); b++)
        {
          Case *c = g_new (Case, 1);
          c->backend = backends[b];
          c->name = g_strdup (names[i]);
          g_autofree char *path = g_strdup_printf ("/golden/%s/%s", backends[b], names[i]);
          g_test_add_data_func (path, c, run_case);
        }
      n++;
    }
  g_assert_cmpint (n, >=, 20);
  return g_test_run ();
}
