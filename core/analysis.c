#include "analysis.h"
#include "surrogate.h"
#include <math.h>
#include <string.h>

#define ZERO_EPS 1e-6

void
snn_analysis_options_init (SnnAnalysisOptions *opt)
{
  memset (opt, 0, sizeof *opt);
}

float
snn_lif_epsilon (const SnnLifParams *p, float u)
{
  const float lam = 1.0f - 1.0f / p->tau;
  const float sg = snn_surrogate_grad (p, u - p->vth);
  if (p->reset == SNN_RESET_SOFT)
    return p->detach_reset ? lam : lam * (1.0f - p->vth * sg);
  /* The spike is the forward one (u >= vth), as in the backend. */
  float s = u >= p->vth ? 1.0f : 0.0f;
  return p->detach_reset ? lam * (1.0f - s) : lam * ((1.0f - s) - u * sg);
}

double
snn_cosine (const float *a, const float *b, int64_t n)
{
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; i++)
    {
      ab += (double) a[i] * b[i];
      aa += (double) a[i] * a[i];
      bb += (double) b[i] * b[i];
    }
  return aa > 0 && bb > 0 ? ab / sqrt (aa * bb) : NAN;
}

/* ---- what the BPTT pass leaves behind ---- */

typedef struct {
  const SnnBackend *be;
  int T;
  int64_t *count;           /* per model layer: batch * neurons, 0 if not LIF */
  float **u, **ds, **du;    /* per model layer, [T][count] host */
} Capture;

static void
capture_hook (SnnNet *net, int layer, int first_step, int steps, const float *u, const float *ds, const float *du,
              gpointer user_data)
{
  Capture *c = user_data;
  size_t off = (size_t) first_step * c->count[layer], bytes = (size_t) steps * c->count[layer] * sizeof (float);
  c->be->download (c->u[layer] + off, u, bytes);
  c->be->download (c->ds[layer] + off, ds, bytes);
  c->be->download (c->du[layer] + off, du, bytes);
}

static void
capture_init (Capture *c, const SnnModel *m, const SnnBackend *be, int T, int batch)
{
  c->be = be;
  c->T = T;
  c->count = g_new0 (int64_t, m->n_layers);
  c->u = g_new0 (float *, m->n_layers);
  c->ds = g_new0 (float *, m->n_layers);
  c->du = g_new0 (float *, m->n_layers);
  for (int l = 0; l < m->n_layers; l++)
    if (m->layers[l].type == SNN_LAYER_LIF)
      {
        c->count[l] = (int64_t) batch * snn_shape_numel (&m->layers[l].out_shape);
        c->u[l] = g_new0 (float, (size_t) T * c->count[l]);
        c->ds[l] = g_new0 (float, (size_t) T * c->count[l]);
        c->du[l] = g_new0 (float, (size_t) T * c->count[l]);
      }
}

static void
capture_clear (Capture *c, int n_layers)
{
  for (int l = 0; l < n_layers; l++)
    {
      g_free (c->u[l]);
      g_free (c->ds[l]);
      g_free (c->du[l]);
    }
  g_free (c->u);
  g_free (c->ds);
  g_free (c->du);
  g_free (c->count);
}

/* ---- per LIF layer ---- */

static double
sum_sq (const float *a, int64_t n)
{
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += (double) a[i] * a[i];
  return s;
}

/* Splits du into its spatial and temporal parts, step by step. */
static void
lif_components (SnnLifAnalysis *la, int T, int64_t N, const float *u, const float *ds, const float *du,
                const float *eps, float *spatial, float *temporal)
{
  const SnnLifParams *p = &la->lif;
  la->residual = 0;
  for (int t = 0; t < T; t++)
    {
      size_t off = (size_t) t * N;
      double dot = 0, rr = 0;
      for (int64_t i = 0; i < N; i++)
        {
          float sp = ds[off + i] * snn_surrogate_grad (p, u[off + i] - p->vth);
          float tp = t + 1 < T ? du[off + N + i] * eps[off + i] : 0.0f;
          spatial[off + i] = sp;
          temporal[off + i] = tp;
          dot += (double) sp * tp;
          double r = (double) sp + tp - du[off + i];
          rr += r * r;
        }
      double ss = sum_sq (spatial + off, N), tt = sum_sq (temporal + off, N), dd = sum_sq (du + off, N);
      la->spatial_norm[t] = sqrt (ss);
      la->temporal_norm[t] = sqrt (tt);
      la->cosine_du[t] = ss > 0 && tt > 0 ? dot / sqrt (ss * tt) : NAN;
      /* Relative to the largest of the three, so a near cancellation of the
       * two parts does not blow the check up. */
      double scale = MAX (dd, MAX (ss, tt));
      la->residual = MAX (la->residual, scale > 0 ? sqrt (rr / scale) : 0.0);
    }
}

static void
lif_eps_stats (SnnLifAnalysis *la, int T, int64_t N, const float *eps)
{
  for (int t = 0; t < T; t++)
    {
      const float *e = eps + (size_t) t * N;
      double sum = 0, mx = 0;
      int64_t zeros = 0;
      for (int64_t i = 0; i < N; i++)
        {
          sum += e[i];
          mx = MAX (mx, fabs (e[i]));
          zeros += fabs (e[i]) <= ZERO_EPS;
        }
      la->eps_mean[t] = N ? sum / N : 0;
      la->eps_max[t] = mx;
      la->eps_zero_share[t] = N ? (double) zeros / N : 0;
    }
}

/* Products of epsilon over every span [t, t'): one running product per
 * start step, so the cost is T^2/2 passes over the neurons. */
static void
lif_eps_spans (SnnLifAnalysis *la, int T, int64_t N, const float *eps)
{
  double *pm = la->eps_prod_mean, *px = la->eps_prod_max;
  float *prod = g_new (float, N);
  for (int i = 0; i < T * T; i++)
    pm[i] = px[i] = NAN;
  for (int t = 0; t < T; t++)
    {
      pm[t * T + t] = px[t * T + t] = 1.0;
      for (int64_t i = 0; i < N; i++)
        prod[i] = 1.0f;
      for (int t2 = t + 1; t2 < T; t2++)
        {
          const float *e = eps + (size_t) (t2 - 1) * N;
          double sum = 0, mx = 0;
          for (int64_t i = 0; i < N; i++)
            {
              prod[i] *= e[i];
              sum += prod[i];
              mx = MAX (mx, fabs (prod[i]));
            }
          pm[t * T + t2] = N ? sum / N : 0;
          px[t * T + t2] = mx;
        }
    }
  g_free (prod);
}

static void
lif_analyze (SnnLifAnalysis *la, const Capture *c, int l, const SnnAnalysisOptions *opt)
{
  const int T = c->T;
  const int64_t N = c->count[l];
  const size_t n = (size_t) T * N;
  la->spatial_norm = g_new (double, T);
  la->temporal_norm = g_new (double, T);
  la->cosine_du = g_new (double, T);
  la->eps_mean = g_new (double, T);
  la->eps_max = g_new (double, T);
  la->eps_zero_share = g_new (double, T);
  la->eps_prod_mean = g_new (double, (size_t) T * T);
  la->eps_prod_max = g_new (double, (size_t) T * T);
  float *eps = g_new (float, n), *spatial = g_new (float, n), *temporal = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    eps[i] = snn_lif_epsilon (&la->lif, c->u[l][i]);
  lif_components (la, T, N, c->u[l], c->ds[l], c->du[l], eps, spatial, temporal);
  lif_eps_stats (la, T, N, eps);
  lif_eps_spans (la, T, N, eps);
  if (opt->keep_diag)
    la->eps_diag = g_steal_pointer (&eps);
  if (opt->keep_components)
    {
      la->spatial = g_steal_pointer (&spatial);
      la->temporal = g_steal_pointer (&temporal);
    }
  g_free (eps);
  g_free (spatial);
  g_free (temporal);
}

/* ---- the two passes ---- */

/* A copy of the caller's network: same parameters, buffers and run-time LIF
 * settings, its own arena. */
static SnnNet *
scratch_net (SnnNet *net, float tau_override)
{
  const SnnModel *m = snn_net_model (net);
  const SnnBackend *be = snn_net_backend (net);
  SnnNet *s = snn_net_new (m, be);
  for (int i = 0; i < snn_net_n_params (net); i++)
    {
      SnnParam *src = snn_net_param (net, i), *dst = snn_net_param (s, i);
      be->copy (dst->data, src->data, src->info.numel * sizeof (float));
    }
  for (int l = 0; l < m->n_layers; l++)
    if (m->layers[l].type == SNN_LAYER_LIF)
      *snn_net_lif_params (s, l) = *snn_net_lif_params (net, l);
  if (tau_override > 0)
    snn_net_set_tau (s, tau_override);
  return s;
}

static gboolean
run_pass (SnnNet *s, const SnnTrainConfig *base, SnnMethod method, const float *x, gboolean sequence, int batch,
          const int32_t *y, uint64_t seed, double *loss, GError **error)
{
  SnnTrainConfig cfg = *base;
  cfg.method = method;
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  SnnBatchResult res;
  snn_net_zero_grad (s);
  if (!snn_train_batch (s, &cfg, x, sequence, batch, y, NULL, 0, &rng, NULL, NULL, NULL, &res, error))
    return FALSE;
  if (loss)
    *loss = res.loss;
  return TRUE;
}

static void
affine_compare (SnnAnalysis *a, const SnnModel *m, SnnNpz *gb, SnnNpz *gs)
{
  a->affine = g_new0 (SnnAffineAnalysis, m->n_layers);
  double sum = 0;
  int n = 0;
  for (int l = 0; l < m->n_layers; l++)
    {
      SnnLayerType type = m->layers[l].type;
      if (type != SNN_LAYER_LINEAR && type != SNN_LAYER_CONV)
        continue;
      g_autofree char *name = g_strdup_printf ("grad.%d.weight", l);
      SnnArray *b = snn_npz_get (gb, name), *s = snn_npz_get (gs, name);
      SnnAffineAnalysis *aa = &a->affine[a->n_affine++];
      int64_t numel = snn_array_numel (b);
      aa->layer = l;
      aa->cosine = snn_cosine (b->data, s->data, numel);
      aa->norm_bptt = sqrt (sum_sq (b->data, numel));
      aa->norm_spatial = sqrt (sum_sq (s->data, numel));
      if (!isnan (aa->cosine))
        {
          sum += aa->cosine;
          n++;
        }
    }
  a->cosine_mean = n ? sum / n : NAN;
}

SnnAnalysis *
snn_analyze_batch (SnnNet *net, const SnnTrainConfig *cfg, const float *x, gboolean sequence, int batch,
                   const int32_t *y, const SnnAnalysisOptions *opt, GError **error)
{
  SnnAnalysisOptions defaults;
  if (!opt)
    {
      snn_analysis_options_init (&defaults);
      opt = &defaults;
    }
  const SnnModel *m = snn_net_model (net);
  SnnNet *s = scratch_net (net, opt->tau_override);
  SnnAnalysis *a = g_new0 (SnnAnalysis, 1);
  a->T = cfg->T;
  a->batch = batch;
  Capture cap;
  capture_init (&cap, m, snn_net_backend (net), cfg->T, batch);
  SnnNpz *gb = NULL, *gs = NULL;

  snn_net_set_lif_hook (s, capture_hook, &cap);
  if (!run_pass (s, cfg, SNN_METHOD_BPTT, x, sequence, batch, y, opt->seed, &a->loss, error))
    goto fail;
  gb = snn_net_to_npz (s, TRUE);
  snn_net_set_lif_hook (s, NULL, NULL);
  if (!run_pass (s, cfg, SNN_METHOD_SLTT, x, sequence, batch, y, opt->seed, NULL, error))
    goto fail;
  gs = snn_net_to_npz (s, TRUE);

  a->lif = g_new0 (SnnLifAnalysis, m->n_layers);
  for (int l = 0; l < m->n_layers; l++)
    if (m->layers[l].type == SNN_LAYER_LIF)
      {
        SnnLifAnalysis *la = &a->lif[a->n_lif++];
        la->layer = l;
        la->neurons = snn_shape_numel (&m->layers[l].out_shape);
        la->lif = *snn_net_lif_params (s, l);
        lif_analyze (la, &cap, l, opt);
      }
  affine_compare (a, m, gb, gs);
  if (opt->keep_grads)
    {
      a->grads_bptt = g_steal_pointer (&gb);
      a->grads_spatial = g_steal_pointer (&gs);
    }
  g_clear_pointer (&gb, snn_npz_free);
  g_clear_pointer (&gs, snn_npz_free);
  capture_clear (&cap, m->n_layers);
  snn_net_free (s);
  return a;

fail:
  g_clear_pointer (&gb, snn_npz_free);
  capture_clear (&cap, m->n_layers);
  snn_net_free (s);
  snn_analysis_free (a);
  return NULL;
}

void
snn_analysis_free (SnnAnalysis *a)
{
  if (!a)
    return;
  for (int i = 0; i < a->n_lif; i++)
    {
      SnnLifAnalysis *la = &a->lif[i];
      g_free (la->spatial_norm);
      g_free (la->temporal_norm);
      g_free (la->cosine_du);
      g_free (la->eps_mean);
      g_free (la->eps_max);
      g_free (la->eps_zero_share);
      g_free (la->eps_prod_mean);
      g_free (la->eps_prod_max);
      g_free (la->eps_diag);
      g_free (la->spatial);
      g_free (la->temporal);
    }
  g_free (a->lif);
  g_free (a->affine);
  g_clear_pointer (&a->grads_bptt, snn_npz_free);
  g_clear_pointer (&a->grads_spatial, snn_npz_free);
  g_free (a);
}
