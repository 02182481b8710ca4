/* Helpers shared by the core tests. */
#pragma once
#include <math.h>
#include <string.h>
#include "net.h"
#include "train.h"

/* The CPU backend, through the registry as the program gets it. */
static inline const SnnBackend *
tu_cpu (void)
{
  GError *error = NULL;
  const SnnBackend *be = snn_backend_get ("cpu", &error);
  g_assert_no_error (error);
  return be;
}

/* Parameter memory belongs to the backend: tests write and read it by
 * upload and download, as on a device. */
static inline void
tu_put (SnnNet *net, float *dst, const float *src, int64_t n)
{
  snn_net_backend (net)->upload (dst, src, (size_t) n * sizeof (float));
}

static inline float
tu_get1 (SnnNet *net, const float *src)
{
  float v;
  snn_net_backend (net)->download (&v, src, sizeof v);
  return v;
}

static inline SnnModel *
tu_model (const char *json)
{
  GError *error = NULL;
  SnnModel *m = snn_model_parse (json, -1, "<test>", &error);
  g_assert_no_error (error);
  return m;
}

/* Uniform weights scaled so that LIF layers fire at a useful rate. */
static inline void
tu_randomize (SnnNet *net, uint64_t seed, float scale)
{
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  for (int i = 0; i < snn_net_n_params (net); i++)
    {
      SnnParam *p = snn_net_param (net, i);
      if (!p->grad)
        continue;
      gboolean ones = g_str_has_suffix (p->name, ".gain")
                      || (snn_net_model (net)->layers[p->layer].type == SNN_LAYER_BN_STEP && g_str_has_suffix (p->name, ".weight"));
      float *h = g_new (float, p->info.numel);
      for (int64_t j = 0; j < p->info.numel; j++)
        h[j] = ones ? 1.0f + 0.2f * snn_rng_uniform_range (&rng, -1, 1)
                    : scale * snn_rng_uniform_range (&rng, -1, 1) / sqrtf ((float) (p->info.numel / p->info.shape[0]));
      tu_put (net, p->data, h, p->info.numel);
      g_free (h);
    }
}

static inline float *
tu_input (int n, uint64_t seed, float lo, float hi)
{
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  float *x = g_new (float, n);
  for (int i = 0; i < n; i++)
    x[i] = snn_rng_uniform_range (&rng, lo, hi);
  return x;
}

/* The defaults with a method, T, K and the recompute switch set. */
static inline SnnTrainConfig
tu_config (SnnMethod method, int T, int K, gboolean recompute)
{
  SnnTrainConfig cfg;
  snn_train_config_init (&cfg);
  cfg.method = method;
  cfg.T = T;
  cfg.K = K;
  cfg.recompute = recompute;
  return cfg;
}

/* Runs one batch and returns all gradients concatenated per parameter. */
static inline SnnNpz *
tu_grads (SnnNet *net, SnnMethod method, int T, const int *k, int nk, const float *x, gboolean seq, int B,
          const int32_t *y, double *loss)
{
  SnnTrainConfig cfg = tu_config (method, T, nk, TRUE);
  cfg.lambda = 0.05f;
  SnnRng rng;
  snn_rng_seed (&rng, 7);
  SnnBatchResult res;
  GError *error = NULL;
  snn_net_zero_grad (net);
  g_assert_true (snn_train_batch (net, &cfg, x, seq, B, y, k, nk, &rng, NULL, NULL, NULL, &res, &error));
  g_assert_no_error (error);
  if (loss)
    *loss = res.loss;
  return snn_net_to_npz (net, TRUE);
}

/* Largest |a - b| over one named gradient, relative to max |b| but at least
 * floor: a gradient that is zero in exact arithmetic (a bias in front of
 * bn_step) is compared against the scale of the others, not its own rounding
 * noise. */
static inline double
tu_rel_diff_floor (SnnNpz *a, SnnNpz *b, const char *name, double floor)
{
  SnnArray *x = snn_npz_get (a, name), *y = snn_npz_get (b, name);
  g_assert_nonnull (x);
  g_assert_nonnull (y);
  double d = 0, m = 0;
  for (int64_t i = 0; i < snn_array_numel (x); i++)
    {
      d = MAX (d, fabs (((float *) x->data)[i] - ((float *) y->data)[i]));
      m = MAX (m, fabs (((float *) y->data)[i]));
    }
  return d / MAX (m, floor);
}

static inline double
tu_max_abs_all (SnnNpz *a)
{
  double m = 0;
  for (guint i = 0; i < snn_npz_count (a); i++)
    {
      SnnArray *x = snn_npz_get (a, snn_npz_name (a, i));
      for (int64_t j = 0; j < snn_array_numel (x); j++)
        m = MAX (m, fabs (((float *) x->data)[j]));
    }
  return m;
}

static inline double
tu_rel_diff (SnnNpz *a, SnnNpz *b, const char *name)
{
  return tu_rel_diff_floor (a, b, name, 1e-2 * tu_max_abs_all (b));
}
