#include "analysis.h"
#include "surrogate.h"
#include "backend.h"
#include "pool.h"
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
  const float lam = snn_lif_leak (p->tau);
  return snn_lif_epsilon_of (p->reset, p->detach_reset, lam, u, p->vth, snn_surrogate_grad (p, u - p->vth));
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
  const SnnModel *model;
  const SnnBackend *be;
  int T, batch, n_layers;
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
capture_clear (Capture *c)
{
  for (int l = 0; l < c->n_layers; l++)
    {
      g_free (c->u[l]);
      g_free (c->ds[l]);
      g_free (c->du[l]);
    }
  g_free (c->u);
  g_free (c->ds);
  g_free (c->du);
  g_free (c->count);
  memset (c, 0, sizeof *c);
}

/* Keeps the buffers of an earlier batch of the same model, T and size: the
 * BPTT pass writes every step of every layer before anything reads them. */
static void
capture_prepare (Capture *c, const SnnModel *m, const SnnBackend *be, int T, int batch)
{
  if (c->model == m && c->T == T && c->batch == batch && c->be == be)
    return;
  capture_clear (c);
  c->model = m;
  c->be = be;
  c->T = T;
  c->batch = batch;
  c->n_layers = m->n_layers;
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

/* ---- per LIF layer ---- */

static double
sum_sq (const float *a, int64_t n)
{
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += (double) a[i] * a[i];
  return s;
}

/* The per-step sums below are taken over fixed chunks of neurons, on as
 * many threads as training uses (the pool's), and the chunks' partial sums
 * are added in order: the figures are the same whatever the number of
 * threads. */
#define CHUNK 16384

static inline int64_t
n_chunks (int64_t N)
{
  return MAX ((N + CHUNK - 1) / CHUNK, 1);
}

typedef struct {
  const SnnLifParams *p;
  int T;
  int64_t N, nc;
  const float *u, *ds, *du, *eps;
  float *spatial, *temporal, *prod;
  double *part;
} CompArgs;

/* Chunk q = (step t, neurons chunk c): per (step, chunk) sp.tp, residual^2,
 * sp^2, tp^2, du^2 */
static void
components_chunk (void *data, int q, int chunks)
{
  const CompArgs *A = data;
  const SnnLifParams *p = A->p;
  const int T = A->T, t = (int) (q / A->nc);
  const int64_t N = A->N, c = q % A->nc;
  const float *ds = A->ds, *u = A->u, *du = A->du, *eps = A->eps;
  size_t off = (size_t) t * N;
  int64_t lo = c * CHUNK, hi = MIN (N, lo + CHUNK);
  double dot = 0, rr = 0, ss = 0, tt = 0, dd = 0;
  for (int64_t i = lo; i < hi; i++)
    {
      float sp = ds[off + i] * snn_surrogate_grad (p, u[off + i] - p->vth);
      float tp = t + 1 < T ? du[off + N + i] * eps[off + i] : 0.0f;
      A->spatial[off + i] = sp;
      A->temporal[off + i] = tp;
      dot += (double) sp * tp;
      double r = (double) sp + tp - du[off + i];
      rr += r * r;
      ss += (double) sp * sp;
      tt += (double) tp * tp;
      dd += (double) du[off + i] * du[off + i];
    }
  double *o = A->part + (size_t) q * 5;
  o[0] = dot, o[1] = rr, o[2] = ss, o[3] = tt, o[4] = dd;
}

/* Splits du into its spatial and temporal parts, step by step. */
static void
lif_components (SnnLifAnalysis *la, int T, int64_t N, const float *u, const float *ds, const float *du,
                const float *eps, float *spatial, float *temporal)
{
  const int64_t nc = n_chunks (N);
  double *part = g_new0 (double, (size_t) T * nc * 5);
  CompArgs a = { .p = &la->lif, .T = T, .N = N, .nc = nc, .u = u, .ds = ds, .du = du, .eps = eps,
                 .spatial = spatial, .temporal = temporal, .part = part };
  snn_pool_run ((int) (T * nc), components_chunk, &a);
  la->residual = 0;
  for (int t = 0; t < T; t++)
    {
      double dot = 0, rr = 0, ss = 0, tt = 0, dd = 0;
      for (int64_t c = 0; c < nc; c++)
        {
          const double *q = part + ((size_t) t * nc + c) * 5;
          dot += q[0], rr += q[1], ss += q[2], tt += q[3], dd += q[4];
        }
      la->spatial_norm[t] = sqrt (ss);
      la->temporal_norm[t] = sqrt (tt);
      la->cosine_du[t] = ss > 0 && tt > 0 ? dot / sqrt (ss * tt) : NAN;
      /* Relative to the largest of the three, so a near cancellation of the
       * two parts does not blow the check up. */
      double scale = MAX (dd, MAX (ss, tt));
      la->residual = MAX (la->residual, scale > 0 ? sqrt (rr / scale) : 0.0);
    }
  g_free (part);
}

/* Chunk q = (step, neurons chunk): sum, largest magnitude, zeros */
static void
eps_stats_chunk (void *data, int q, int chunks)
{
  const CompArgs *A = data;
  const int t = (int) (q / A->nc);
  const int64_t c = q % A->nc;
  const float *e = A->eps + (size_t) t * A->N;
  int64_t lo = c * CHUNK, hi = MIN (A->N, lo + CHUNK), zeros = 0;
  double sum = 0, mx = 0;
  for (int64_t i = lo; i < hi; i++)
    {
      sum += e[i];
      mx = MAX (mx, fabs (e[i]));
      zeros += fabs (e[i]) <= ZERO_EPS;
    }
  double *o = A->part + (size_t) q * 3;
  o[0] = sum, o[1] = mx, o[2] = (double) zeros;
}

static void
lif_eps_stats (SnnLifAnalysis *la, int T, int64_t N, const float *eps)
{
  const int64_t nc = n_chunks (N);
  double *part = g_new0 (double, (size_t) T * nc * 3);
  CompArgs a = { .T = T, .N = N, .nc = nc, .eps = eps, .part = part };
  snn_pool_run ((int) (T * nc), eps_stats_chunk, &a);
  for (int t = 0; t < T; t++)
    {
      double sum = 0, mx = 0, zeros = 0;
      for (int64_t c = 0; c < nc; c++)
        {
          const double *q = part + ((size_t) t * nc + c) * 3;
          sum += q[0], mx = MAX (mx, q[1]), zeros += q[2];
        }
      la->eps_mean[t] = N ? sum / N : 0;
      la->eps_max[t] = mx;
      la->eps_zero_share[t] = N ? zeros / N : 0;
    }
  g_free (part);
}

/* Neurons chunk c: per (t, t') the sum and largest magnitude of the
 * products */
static void
eps_spans_chunk (void *data, int c, int chunks)
{
  const CompArgs *A = data;
  const int T = A->T;
  const int64_t N = A->N, lo = (int64_t) c * CHUNK, hi = MIN (N, lo + CHUNK);
  float *prod = A->prod;
  for (int t = 0; t < T; t++)
    {
      for (int64_t i = lo; i < hi; i++)
        prod[i] = 1.0f;
      for (int t2 = t + 1; t2 < T; t2++)
        {
          const float *e = A->eps + (size_t) (t2 - 1) * N;
          double sum = 0, mx = 0;
          for (int64_t i = lo; i < hi; i++)
            {
              prod[i] *= e[i];
              sum += prod[i];
              mx = MAX (mx, fabs (prod[i]));
            }
          double *q = A->part + (((size_t) c * T + t) * T + t2) * 2;
          q[0] = sum, q[1] = mx;
        }
    }
}

/* Products of epsilon over every span [t, t'): one running product per
 * start step, so the cost is T^2/2 passes over the neurons, chunk by chunk
 * so that a chunk's products stay in cache. */
static void
lif_eps_spans (SnnLifAnalysis *la, int T, int64_t N, const float *eps)
{
  double *pm = la->eps_prod_mean, *px = la->eps_prod_max;
  const int64_t nc = n_chunks (N);
  /* per (chunk, t, t'): sum and largest magnitude of the products */
  double *part = g_new0 (double, (size_t) nc * T * T * 2);
  float *prod = g_new (float, N);
  CompArgs a = { .T = T, .N = N, .nc = nc, .eps = eps, .part = part, .prod = prod };
  snn_pool_run ((int) nc, eps_spans_chunk, &a);
  for (int i = 0; i < T * T; i++)
    pm[i] = px[i] = NAN;
  for (int t = 0; t < T; t++)
    {
      pm[t * T + t] = px[t * T + t] = 1.0;
      for (int t2 = t + 1; t2 < T; t2++)
        {
          double sum = 0, mx = 0;
          for (int64_t c = 0; c < nc; c++)
            {
              const double *q = part + (((size_t) c * T + t) * T + t2) * 2;
              sum += q[0], mx = MAX (mx, q[1]);
            }
          pm[t * T + t2] = N ? sum / N : 0;
          px[t * T + t2] = mx;
        }
    }
  g_free (prod);
  g_free (part);
}

struct _SnnAnalyzer {
  SnnNet *scratch;            /* a copy of the analysed network */
  Capture cap;
  float *work;                /* eps, spatial, temporal of one layer */
  size_t work_floats;
};

/* Buffers for one layer: the analyzer's own, or new ones when the caller
 * keeps them. */
static float *
layer_buffer (SnnAnalyzer *z, int which, size_t n, gboolean kept)
{
  if (kept)
    return g_new (float, n);
  if (z->work_floats < 3 * n)
    {
      g_free (z->work);
      z->work = g_new (float, 3 * n);
      z->work_floats = 3 * n;
    }
  return z->work + which * n;
}

static void
epsilon_range (void *data, int64_t lo, int64_t hi)
{
  const CompArgs *A = data;
  for (int64_t i = lo; i < hi; i++)
    ((float *) A->eps)[i] = snn_lif_epsilon (A->p, A->u[i]);
}

static void
lif_analyze (SnnAnalyzer *z, SnnLifAnalysis *la, int l, const SnnAnalysisOptions *opt)
{
  const Capture *c = &z->cap;
  const int T = c->T;
  const int64_t N = c->count[l];
  const size_t n = (size_t) T * N;
  const float *u = c->u[l];
  la->spatial_norm = g_new (double, T);
  la->temporal_norm = g_new (double, T);
  la->cosine_du = g_new (double, T);
  la->eps_mean = g_new (double, T);
  la->eps_max = g_new (double, T);
  la->eps_zero_share = g_new (double, T);
  la->eps_prod_mean = g_new (double, (size_t) T * T);
  la->eps_prod_max = g_new (double, (size_t) T * T);
  float *eps = layer_buffer (z, 0, n, opt->keep_diag);
  float *spatial = layer_buffer (z, 1, n, opt->keep_components);
  float *temporal = layer_buffer (z, 2, n, opt->keep_components);
  const SnnLifParams *p = &la->lif;
  CompArgs a = { .p = p, .u = u, .eps = eps };
  snn_pool_for ((int64_t) n, 4, 64, epsilon_range, &a);
  lif_components (la, T, N, u, c->ds[l], c->du[l], eps, spatial, temporal);
  lif_eps_stats (la, T, N, eps);
  lif_eps_spans (la, T, N, eps);
  if (opt->keep_diag)
    la->eps_diag = eps;
  if (opt->keep_components)
    {
      la->spatial = spatial;
      la->temporal = temporal;
    }
}

/* ---- the two passes ---- */

/* The analyzer's copy of the caller's network: same parameters, buffers
 * and run-time LIF settings, its own arena, kept from one analysis to the
 * next of the same model. */
static SnnNet *
scratch_net (SnnAnalyzer *z, SnnNet *net, float tau_override)
{
  const SnnModel *m = snn_net_model (net);
  const SnnBackend *be = snn_net_backend (net);
  if (!z->scratch || snn_net_model (z->scratch) != m || snn_net_backend (z->scratch) != be)
    {
      g_clear_pointer (&z->scratch, snn_net_free);
      z->scratch = snn_net_new (m, be);
    }
  SnnNet *s = z->scratch;
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

SnnAnalyzer *
snn_analyzer_new (void)
{
  return g_new0 (SnnAnalyzer, 1);
}

void
snn_analyzer_free (SnnAnalyzer *z)
{
  if (!z)
    return;
  g_clear_pointer (&z->scratch, snn_net_free);
  capture_clear (&z->cap);
  g_free (z->work);
  g_free (z);
}

SnnAnalysis *
snn_analyzer_run (SnnAnalyzer *z, SnnNet *net, const SnnTrainConfig *cfg, const float *x, gboolean sequence,
                  int batch, const int32_t *y, const SnnAnalysisOptions *opt, GError **error)
{
  SnnAnalysisOptions defaults;
  if (!opt)
    {
      snn_analysis_options_init (&defaults);
      opt = &defaults;
    }
  const SnnModel *m = snn_net_model (net);
  SnnNet *s = scratch_net (z, net, opt->tau_override);
  SnnAnalysis *a = g_new0 (SnnAnalysis, 1);
  a->T = cfg->T;
  a->batch = batch;
  capture_prepare (&z->cap, m, snn_net_backend (net), cfg->T, batch);
  SnnNpz *gb = NULL, *gs = NULL;
  gboolean ok;

  snn_net_set_lif_hook (s, capture_hook, &z->cap);
  ok = run_pass (s, cfg, SNN_METHOD_BPTT, x, sequence, batch, y, opt->seed, &a->loss, error);
  snn_net_set_lif_hook (s, NULL, NULL);
  if (!ok)
    goto fail;
  gb = snn_net_to_npz (s, TRUE);
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
        lif_analyze (z, la, l, opt);
      }
  affine_compare (a, m, gb, gs);
  if (opt->keep_grads)
    {
      a->grads_bptt = g_steal_pointer (&gb);
      a->grads_spatial = g_steal_pointer (&gs);
    }
  g_clear_pointer (&gb, snn_npz_free);
  g_clear_pointer (&gs, snn_npz_free);
  return a;

fail:
  g_clear_pointer (&gb, snn_npz_free);
  snn_analysis_free (a);
  return NULL;
}

SnnAnalysis *
snn_analyze_batch (SnnNet *net, const SnnTrainConfig *cfg, const float *x, gboolean sequence, int batch,
                   const int32_t *y, const SnnAnalysisOptions *opt, GError **error)
{
  SnnAnalyzer *z = snn_analyzer_new ();
  SnnAnalysis *a = snn_analyzer_run (z, net, cfg, x, sequence, batch, y, opt, error);
  snn_analyzer_free (z);
  return a;
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
