/* The gradient analysis against the backend's own BPTT and SLTT passes, and
 * the sensitivities epsilon against Eqs. (11) and (S11) of the paper. */
#include "test-util.h"
#include "analysis.h"

#define LIF_OPTS "\"tau\": 2.0, \"reset\": \"RESET\", \"surrogate\": \"SG\", \"detach_reset\": DETACH"

static const char *deep_json =
  "{\"input_shape\": [1, 6, 6], \"num_classes\": 3, \"layers\": ["
  "{\"type\": \"conv\", \"in_ch\": 1, \"out_ch\": 4, \"k\": 3, \"pad\": 1}, {\"type\": \"bn_step\", \"num_features\": 4},"
  "{\"type\": \"lif\", " LIF_OPTS "}, {\"type\": \"avgpool\", \"k\": 2}, {\"type\": \"flatten\"},"
  "{\"type\": \"linear\", \"in\": 36, \"out\": 20}, {\"type\": \"lif\", " LIF_OPTS "},"
  "{\"type\": \"dropout\", \"p\": 0.2},"
  "{\"type\": \"linear\", \"in\": 20, \"out\": 16}, {\"type\": \"lif\", " LIF_OPTS "},"
  "{\"type\": \"linear\", \"in\": 16, \"out\": 3}]}";

enum { B = 4, T = 6 };

static char *
replace (const char *text, const char *what, const char *with)
{
  g_auto (GStrv) parts = g_strsplit (text, what, -1);
  return g_strjoinv (with, parts);
}

static SnnModel *
deep_model (const char *reset, const char *sg, gboolean detach)
{
  g_autofree char *a = replace (deep_json, "RESET", reset);
  g_autofree char *b = replace (a, "SG", sg);
  g_autofree char *c = replace (b, "DETACH", detach ? "true" : "false");
  return tu_model (c);
}

static void
config (SnnTrainConfig *cfg)
{
  snn_train_config_init (cfg);
  cfg->T = T;
  cfg->lambda = 0.05f; /* as tu_grads */
}

static const int32_t labels[B] = { 0, 1, 2, 1 };

/* dL/du of every LIF layer from a plain BPTT pass with a hook. */
typedef struct {
  float *du[16];
  int64_t count[16];
} DuCapture;

static void
du_hook (SnnNet *net, int layer, int first, int steps, const float *u, const float *ds, const float *du, gpointer d)
{
  DuCapture *c = d;
  c->count[layer] = snn_net_layer_size (net, layer) * snn_net_batch (net);
  g_free (c->du[layer]);
  c->du[layer] = g_memdup2 (du, (size_t) steps * c->count[layer] * sizeof (float));
}

static SnnNpz *
snapshot (SnnNet *net)
{
  SnnNpz *z = snn_net_to_npz (net, FALSE), *g = snn_net_to_npz (net, TRUE);
  for (guint i = 0; i < snn_npz_count (g); i++)
    {
      SnnArray *a = snn_npz_get (g, snn_npz_name (g, i));
      snn_npz_add (z, snn_npz_name (g, i), snn_array_new_f32 (a->ndim, a->shape, a->data));
    }
  snn_npz_free (g);
  return z;
}

static void
assert_same_npz (SnnNpz *a, SnnNpz *b)
{
  g_assert_cmpuint (snn_npz_count (a), ==, snn_npz_count (b));
  for (guint i = 0; i < snn_npz_count (a); i++)
    {
      SnnArray *x = snn_npz_get (a, snn_npz_name (a, i)), *y = snn_npz_get (b, snn_npz_name (a, i));
      g_assert_nonnull (y);
      g_assert_cmpmem (x->data, snn_array_numel (x) * 4, y->data, snn_array_numel (y) * 4);
    }
}

/* spatial + temporal equals the backend's dL/du element by element. */
static void
check_decomposition (const char *reset, const char *sg, gboolean detach)
{
  SnnModel *m = deep_model (reset, sg, detach);
  SnnNet *net = snn_net_new (m, tu_cpu ());
  tu_randomize (net, 3, 3.0f);
  float *x = tu_input (B * 36, 5, 0, 1.5f);
  SnnTrainConfig cfg;
  config (&cfg);
  /* Leftover gradients, which the analysis must not touch. */
  SnnNpz *g0 = tu_grads (net, SNN_METHOD_SLTT, T, NULL, 0, x, FALSE, B, labels, NULL);
  snn_npz_free (g0);
  SnnNpz *before = snapshot (net);

  SnnAnalysisOptions opt;
  snn_analysis_options_init (&opt);
  opt.keep_components = TRUE;
  opt.seed = 7;
  GError *error = NULL;
  SnnAnalysis *an = snn_analyze_batch (net, &cfg, x, FALSE, B, labels, &opt, &error);
  g_assert_no_error (error);
  SnnNpz *after = snapshot (net);
  assert_same_npz (before, after);

  DuCapture cap = { 0 };
  snn_net_set_lif_hook (net, du_hook, &cap);
  SnnNpz *g = tu_grads (net, SNN_METHOD_BPTT, T, NULL, 0, x, FALSE, B, labels, NULL);
  snn_net_set_lif_hook (net, NULL, NULL);
  g_assert_cmpint (an->n_lif, ==, 3);
  for (int i = 0; i < an->n_lif; i++)
    {
      const SnnLifAnalysis *la = &an->lif[i];
      const float *du = cap.du[la->layer];
      int64_t n = T * cap.count[la->layer];
      double scale = 0, worst = 0, temporal = 0;
      for (int64_t j = 0; j < n; j++)
        scale = MAX (scale, fabs (du[j]));
      g_assert_cmpfloat (scale, >, 0);
      for (int64_t j = 0; j < n; j++)
        {
          worst = MAX (worst, fabs ((double) la->spatial[j] + la->temporal[j] - du[j]));
          temporal = MAX (temporal, fabs (la->temporal[j]));
        }
      g_assert_cmpfloat (worst / scale, <, 1e-5);
      g_assert_cmpfloat (la->residual, <, 1e-5);
      /* tau = 2: the temporal routes carry something. */
      g_assert_cmpfloat (temporal, >, 0);
      g_free (cap.du[la->layer]);
    }
  snn_npz_free (g);
  snn_npz_free (before);
  snn_npz_free (after);
  snn_analysis_free (an);
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
}

static void
test_decomposition (void)
{
  const char *resets[] = { "soft", "hard" }, *sgs[] = { "rectangle", "triangle", "sigmoid", "atan" };
  for (int r = 0; r < 2; r++)
    for (int s = 0; s < 4; s++)
      for (int d = 0; d < 2; d++)
        check_decomposition (resets[r], sgs[s], d);
}

/* tau = 1 with detach_reset: 1 - 1/tau = 0, so no temporal route at all. */
static void
test_tau_one (void)
{
  const char *resets[] = { "soft", "hard" };
  for (int r = 0; r < 2; r++)
    {
      SnnModel *m = deep_model (resets[r], "triangle", TRUE);
      SnnNet *net = snn_net_new (m, tu_cpu ());
      tu_randomize (net, 4, 3.0f);
      float *x = tu_input (B * 36, 6, 0, 1.5f);
      SnnTrainConfig cfg;
      config (&cfg);
      SnnAnalysisOptions opt;
      snn_analysis_options_init (&opt);
      opt.tau_override = 1.0f;
      GError *error = NULL;
      SnnAnalysis *an = snn_analyze_batch (net, &cfg, x, FALSE, B, labels, &opt, &error);
      g_assert_no_error (error);
      for (int i = 0; i < an->n_lif; i++)
        {
          g_assert_cmpfloat (an->lif[i].lif.tau, ==, 1.0f);
          for (int t = 0; t < T; t++)
            {
              g_assert_cmpfloat (an->lif[i].temporal_norm[t], ==, 0.0);
              g_assert_cmpfloat (an->lif[i].eps_max[t], ==, 0.0);
              g_assert_cmpfloat (an->lif[i].eps_zero_share[t], ==, 1.0);
            }
          g_assert_cmpfloat (an->lif[i].spatial_norm[T - 1], >, 0.0);
        }
      g_assert_cmpint (an->n_affine, ==, 4);
      for (int i = 0; i < an->n_affine; i++)
        g_assert_cmpfloat (fabs (an->affine[i].cosine - 1.0), <, 1e-6);
      g_assert_cmpfloat (fabs (an->cosine_mean - 1.0), <, 1e-6);
      /* The model's own tau is back in place. */
      g_assert_cmpfloat (snn_net_lif_params (net, 2)->tau, ==, 2.0f);
      snn_analysis_free (an);
      g_free (x);
      snn_net_free (net);
      snn_model_free (m);
    }
}

/* One LIF layer behind an identity: u[t] follows from the input alone.
 * All values are multiples of 1/8 and lambda is 1/2, so u is exact. */
enum { NE = 10, BE = 2, TE = 5 };
static const float eq_x[BE * NE] = { 0.125, 0.5, 0.625, 1.0, 1.375, 1.5, 1.75, -0.25, 0.875, 2.5,
                                     0.25, 0.75, 1.25, 0.375, 1.125, 0.0, -0.5, 3.0, 0.5, 1.5 };

static void
expected_u (gboolean hard, float u[TE][BE * NE], float s[TE][BE * NE])
{
  float v[BE * NE] = { 0 };
  for (int t = 0; t < TE; t++)
    for (int i = 0; i < BE * NE; i++)
      {
        u[t][i] = 0.5f * v[i] + eq_x[i];
        s[t][i] = u[t][i] >= 1.0f;
        v[i] = hard ? u[t][i] * (1 - s[t][i]) : u[t][i] - s[t][i];
      }
}

static SnnNet *
identity_net (SnnModel **m, const char *reset)
{
  g_autofree char *json = g_strdup_printf (
    "{\"input_shape\": [%d], \"num_classes\": 2, \"layers\": ["
    "{\"type\": \"linear\", \"in\": %d, \"out\": %d, \"bias\": false},"
    "{\"type\": \"lif\", \"tau\": 2.0, \"vth\": 1.0, \"surrogate\": \"rectangle\", \"reset\": \"%s\"},"
    "{\"type\": \"linear\", \"in\": %d, \"out\": 2}]}", NE, NE, NE, reset, NE);
  *m = tu_model (json);
  SnnNet *net = snn_net_new (*m, tu_cpu ());
  SnnParam *w = snn_net_find_param (net, "0.weight");
  float *eye = g_new0 (float, w->info.numel);
  for (int i = 0; i < NE; i++)
    eye[i * NE + i] = 1.0f;
  tu_put (net, w->data, eye, w->info.numel);
  g_free (eye);
  return net;
}

static void
check_epsilon (const char *reset)
{
  gboolean hard = g_str_equal (reset, "hard");
  SnnModel *m;
  SnnNet *net = identity_net (&m, reset);
  SnnTrainConfig cfg;
  snn_train_config_init (&cfg);
  cfg.T = TE;
  SnnAnalysisOptions opt;
  snn_analysis_options_init (&opt);
  opt.keep_diag = TRUE;
  int32_t y[BE] = { 0, 1 };
  GError *error = NULL;
  SnnAnalysis *an = snn_analyze_batch (net, &cfg, eq_x, FALSE, BE, y, &opt, &error);
  g_assert_no_error (error);
  g_assert_cmpint (an->n_lif, ==, 1);
  const SnnLifAnalysis *la = &an->lif[0];
  float u[TE][BE * NE], s[TE][BE * NE];
  expected_u (hard, u, s);
  const float lam = 0.5f, vth = 1.0f;
  int zeros = 0, zeros0 = 0;
  for (int t = 0; t < TE; t++)
    for (int i = 0; i < BE * NE; i++)
      {
        float uu = u[t][i], want;
        gboolean inside = 0.5f * vth < uu && uu < 1.5f * vth;
        if (!hard)
          want = inside ? 0.0f : lam; /* Eq. (11) */
        else
          want = inside ? lam * (1 - s[t][i] - uu / vth) : lam * (1 - s[t][i]); /* Eq. (S11) */
        g_assert_cmpfloat (fabsf (la->eps_diag[t * BE * NE + i] - want), <=, 1e-7);
        zeros += want == 0.0f;
        zeros0 += t == 0 && want == 0.0f;
      }
  /* The cases cover both branches and the open ends of the interval. */
  g_assert_cmpint (zeros, >, 0);
  if (!hard)
    g_assert_cmpfloat (la->eps_zero_share[0], ==, (double) zeros0 / (BE * NE));
  /* A span's product is the product of the single-step values. */
  for (int t = 0; t < TE; t++)
    {
      g_assert_cmpfloat (la->eps_prod_mean[t * TE + t], ==, 1.0);
      if (t > 0)
        g_assert_true (isnan (la->eps_prod_mean[t * TE + t - 1]));
      if (t + 1 < TE)
        g_assert_cmpfloat (fabs (la->eps_prod_mean[t * TE + t + 1] - la->eps_mean[t]), <, 1e-7);
    }
  double want02 = 0;
  for (int i = 0; i < BE * NE; i++)
    want02 += (double) la->eps_diag[i] * la->eps_diag[BE * NE + i];
  g_assert_cmpfloat (fabs (la->eps_prod_mean[2] - want02 / (BE * NE)), <, 1e-7);
  snn_analysis_free (an);
  snn_net_free (net);
  snn_model_free (m);
}

static void
test_epsilon_soft (void)
{
  check_epsilon ("soft");
}

static void
test_epsilon_hard (void)
{
  check_epsilon ("hard");
}

/* grad_spatial is SLTT's gradient, grads_bptt BPTT's, as snn_train_batch
 * computes them (same dropout masks). */
static void
test_spatial_is_sltt (void)
{
  SnnModel *m = deep_model ("soft", "triangle", FALSE);
  SnnNet *net = snn_net_new (m, tu_cpu ());
  tu_randomize (net, 8, 3.0f);
  float *x = tu_input (T * B * 36, 9, 0, 1.5f);
  SnnTrainConfig cfg;
  config (&cfg);
  SnnAnalysisOptions opt;
  snn_analysis_options_init (&opt);
  opt.keep_grads = TRUE;
  opt.seed = 7; /* tu_grads' seed */
  GError *error = NULL;
  SnnAnalysis *an = snn_analyze_batch (net, &cfg, x, TRUE, B, labels, &opt, &error);
  g_assert_no_error (error);
  SnnNpz *sltt = tu_grads (net, SNN_METHOD_SLTT, T, NULL, 0, x, TRUE, B, labels, NULL);
  SnnNpz *bptt = tu_grads (net, SNN_METHOD_BPTT, T, NULL, 0, x, TRUE, B, labels, NULL);
  g_assert_cmpuint (snn_npz_count (an->grads_spatial), ==, snn_npz_count (sltt));
  for (guint i = 0; i < snn_npz_count (sltt); i++)
    {
      const char *name = snn_npz_name (sltt, i);
      g_assert_cmpfloat (tu_rel_diff (an->grads_spatial, sltt, name), <, 1e-6);
      g_assert_cmpfloat (tu_rel_diff (an->grads_bptt, bptt, name), <, 1e-6);
    }
  /* The cosine is the one of these two gradients. */
  for (int i = 0; i < an->n_affine; i++)
    {
      g_autofree char *name = g_strdup_printf ("grad.%d.weight", an->affine[i].layer);
      SnnArray *a = snn_npz_get (bptt, name), *b = snn_npz_get (sltt, name);
      g_assert_cmpfloat (fabs (an->affine[i].cosine - snn_cosine (a->data, b->data, snn_array_numel (a))), <, 1e-9);
    }
  /* tau = 2: the two methods really differ. */
  g_assert_cmpfloat (tu_rel_diff (sltt, bptt, "grad.0.weight"), >, 1e-4);
  snn_npz_free (sltt);
  snn_npz_free (bptt);
  snn_analysis_free (an);
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
}

/* A layer wide enough that its sums are taken over several chunks. */
static const char *wide_json =
  "{\"input_shape\": [16], \"num_classes\": 3, \"layers\": ["
  "{\"type\": \"linear\", \"in\": 16, \"out\": 1100}, {\"type\": \"lif\", \"tau\": 2.0},"
  "{\"type\": \"linear\", \"in\": 1100, \"out\": 3}]}";
enum { BW = 32 };

static void
assert_same_floats (const float *a, const float *b, size_t n)
{
  g_assert_cmpmem (a, n * sizeof (float), b, n * sizeof (float));
}

static void
assert_same_doubles (const double *a, const double *b, size_t n)
{
  g_assert_cmpmem (a, n * sizeof (double), b, n * sizeof (double));
}

static void
assert_same_analysis (const SnnAnalysis *a, const SnnAnalysis *b, gboolean arrays)
{
  g_assert_cmpint (a->n_lif, ==, b->n_lif);
  g_assert_cmpfloat (a->loss, ==, b->loss);
  g_assert_cmpmem (&a->cosine_mean, sizeof (double), &b->cosine_mean, sizeof (double));
  for (int i = 0; i < a->n_lif; i++)
    {
      const SnnLifAnalysis *x = &a->lif[i], *y = &b->lif[i];
      int n = a->T;
      assert_same_doubles (x->spatial_norm, y->spatial_norm, n);
      assert_same_doubles (x->temporal_norm, y->temporal_norm, n);
      assert_same_doubles (x->cosine_du, y->cosine_du, n);
      assert_same_doubles (x->eps_mean, y->eps_mean, n);
      assert_same_doubles (x->eps_max, y->eps_max, n);
      assert_same_doubles (x->eps_zero_share, y->eps_zero_share, n);
      assert_same_doubles (x->eps_prod_mean, y->eps_prod_mean, (size_t) n * n);
      assert_same_doubles (x->eps_prod_max, y->eps_prod_max, (size_t) n * n);
      g_assert_cmpfloat (x->residual, ==, y->residual);
      if (arrays)
        {
          size_t count = (size_t) n * a->batch * x->neurons;
          assert_same_floats (x->eps_diag, y->eps_diag, count);
          assert_same_floats (x->spatial, y->spatial, count);
          assert_same_floats (x->temporal, y->temporal, count);
        }
    }
}

/* An analyzer used again (after another tau, other options, new weights)
 * gives what a fresh analysis gives, bit for bit, and its sums over chunks
 * of neurons are the plain sums. */
static void
test_analyzer_reuse (void)
{
  SnnModel *m = tu_model (wide_json);
  SnnNet *net = snn_net_new (m, tu_cpu ());
  tu_randomize (net, 11, 1.0f);
  float *x = tu_input (T * BW * 16, 12, 0, 1.5f);
  SnnTrainConfig cfg;
  config (&cfg);
  SnnAnalysisOptions keep, plain, other;
  snn_analysis_options_init (&keep);
  keep.keep_diag = keep.keep_components = TRUE;
  snn_analysis_options_init (&plain);
  other = plain;
  other.tau_override = 1.5f;
  GError *error = NULL;
  int32_t y[BW];
  for (int i = 0; i < BW; i++)
    y[i] = i % 3;

  SnnAnalyzer *z = snn_analyzer_new ();
  for (int round = 0; round < 2; round++)
    {
      SnnAnalysis *fresh = snn_analyze_batch (net, &cfg, x, TRUE, BW, y, &keep, &error);
      g_assert_no_error (error);
      SnnAnalysis *tau = snn_analyzer_run (z, net, &cfg, x, TRUE, BW, y, &other, &error);
      g_assert_no_error (error);
      g_assert_cmpfloat (tau->lif[0].lif.tau, ==, 1.5f);
      SnnAnalysis *again = snn_analyzer_run (z, net, &cfg, x, TRUE, BW, y, &plain, &error);
      g_assert_no_error (error);
      g_assert_cmpfloat (again->lif[0].lif.tau, ==, 2.0f);
      g_assert_null (again->lif[0].eps_diag);
      SnnAnalysis *kept = snn_analyzer_run (z, net, &cfg, x, TRUE, BW, y, &keep, &error);
      g_assert_no_error (error);
      assert_same_analysis (fresh, again, FALSE);
      assert_same_analysis (fresh, kept, TRUE);

      /* The sums against plain double sums over all neurons. */
      const SnnLifAnalysis *la = &fresh->lif[0];
      int64_t N = (int64_t) BW * la->neurons;
      g_assert_cmpint (N, >, 2 * 16384);
      for (int t = 0; t < T; t++)
        {
          double sum = 0, ss = 0;
          for (int64_t i = 0; i < N; i++)
            {
              sum += la->eps_diag[t * N + i];
              ss += (double) la->spatial[t * N + i] * la->spatial[t * N + i];
            }
          g_assert_cmpfloat (fabs (la->eps_mean[t] - sum / N), <=, 1e-12 * MAX (1.0, fabs (sum / N)));
          g_assert_cmpfloat (fabs (la->spatial_norm[t] - sqrt (ss)), <=, 1e-12 * MAX (1e-30, sqrt (ss)));
        }
      for (int t = 0; t + 2 < T; t++)
        {
          double sum = 0;
          for (int64_t i = 0; i < N; i++)
            sum += (float) (la->eps_diag[t * N + i] * la->eps_diag[(t + 1) * N + i]);
          g_assert_cmpfloat (fabs (la->eps_prod_mean[t * T + t + 2] - sum / N), <=, 1e-12 * MAX (1.0, fabs (sum / N)));
        }
      snn_analysis_free (fresh);
      snn_analysis_free (tau);
      snn_analysis_free (again);
      snn_analysis_free (kept);
      /* New weights: the analyzer's copy follows. */
      tu_randomize (net, 13, 1.0f);
    }
  snn_analyzer_free (z);
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/analysis/decomposition", test_decomposition);
  g_test_add_func ("/analysis/tau-one", test_tau_one);
  g_test_add_func ("/analysis/epsilon-eq11", test_epsilon_soft);
  g_test_add_func ("/analysis/epsilon-s11", test_epsilon_hard);
  g_test_add_func ("/analysis/spatial-is-sltt", test_spatial_is_sltt);
  g_test_add_func ("/analysis/analyzer-reuse", test_analyzer_reuse);
  return g_test_run ();
}
