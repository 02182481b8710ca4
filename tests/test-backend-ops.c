/* Every op of the backend table on every backend this machine can run: the
 * CPU backend against plain reference loops written here, any other backend
 * against the CPU backend. Sizes are odd on purpose (not multiples of 32 or
 * 64), with padding, strides, single rows and spike words cut short. A
 * backend that is not built or has no device is reported as skipped.
 *
 * Tolerances (|got - want| <= abs + rel * max |want|, per op):
 *   exact (0, 0): layout, copies, masks, spike bits, pooling gathers of
 *     one term, LIF forward spikes;
 *   sums of few float terms (1e-6, 1e-6): biases, pooling, axpy, scale,
 *     optimizers, LIF forward u, sum_steps;
 *   reductions in double (1e-6, 1e-5): bias gradients, batch norm, weight
 *     standardisation, channel means, dot;
 *   LIF backward (1e-6, 1e-5): one division per surrogate may round apart;
 *   GEMM and batched GEMM (1e-6, 2e-5): cuBLAS may block the sums differently. */
#include "test-util.h"
#include "lif-math.h"
#include "snn-config.h"
#ifdef SNN_HAVE_CUDA
#include "backends/cuda/backend-cuda.h"
#include "backends/cpu/backend-cpu.h"
#include "pool.h"
#include <gmodule.h>
#endif

#define N_OUT 4

typedef struct {
  GArray *out[N_OUT];   /* floats per output */
  const char *what[N_OUT];
  double abs_tol, rel_tol;
} Out;

/* Device buffers of one op run: uploads from the host, downloads into the
 * outputs. be NULL: the reference loops run on host copies. */
typedef struct {
  const SnnBackend *be;
  GPtrArray *bufs;
} Dev;

static float *
rnd (int64_t n, uint64_t seed, float lo, float hi)
{
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  float *x = g_new (float, MAX (n, 1));
  for (int64_t i = 0; i < n; i++)
    x[i] = snn_rng_uniform_range (&rng, lo, hi);
  return x;
}

/* 0/1 with probability p */
static float *
spikes (int64_t n, uint64_t seed, double p)
{
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  float *x = g_new (float, MAX (n, 1));
  for (int64_t i = 0; i < n; i++)
    x[i] = snn_rng_uniform (&rng) < p ? 1.0f : 0.0f;
  return x;
}

static void *
put (Dev *d, const void *h, size_t bytes)
{
  void *p;
  if (d->be)
    {
      p = d->be->alloc (bytes + 256);
      d->be->upload (p, h, bytes);
    }
  else
    {
      p = g_malloc0 (bytes + 256);
      memcpy (p, h, bytes);
    }
  g_ptr_array_add (d->bufs, p);
  return p;
}

static float *
putf (Dev *d, const float *h, int64_t n)
{
  return put (d, h, (size_t) n * sizeof (float));
}

static float *
zerosf (Dev *d, int64_t n)
{
  float *z = g_new0 (float, MAX (n, 1));
  float *p = putf (d, z, n);
  g_free (z);
  return p;
}

static void
get (Dev *d, Out *o, int k, const char *what, const void *src, int64_t nfloats)
{
  float *h = g_new (float, MAX (nfloats, 1));
  if (d->be)
    d->be->download (h, src, (size_t) nfloats * sizeof (float));
  else
    memcpy (h, src, (size_t) nfloats * sizeof (float));
  if (!o->out[k])
    o->out[k] = g_array_new (FALSE, FALSE, sizeof (float));
  g_array_append_vals (o->out[k], h, (guint) nfloats);
  o->what[k] = what;
  g_free (h);
}

/* Spike words as one float (0 or 1) per bit, so that they compare exactly. */
static void
get_bits (Dev *d, Out *o, int k, const char *what, const uint64_t *src, int64_t words)
{
  uint64_t *h = g_new (uint64_t, MAX (words, 1));
  if (d->be)
    d->be->download (h, src, (size_t) words * 8);
  else
    memcpy (h, src, (size_t) words * 8);
  float *f = g_new (float, words * 64);
  for (int64_t i = 0; i < words * 64; i++)
    f[i] = (float) ((h[i / 64] >> (i % 64)) & 1);
  Dev host = { NULL, NULL };
  get (&host, o, k, what, f, words * 64);
  g_free (f), g_free (h);
}

static void
dev_init (Dev *d, const SnnBackend *be)
{
  d->be = be;
  d->bufs = g_ptr_array_new ();
}

static void
dev_clear (Dev *d)
{
  for (guint i = 0; i < d->bufs->len; i++)
    d->be ? d->be->free (d->bufs->pdata[i]) : g_free (d->bufs->pdata[i]);
  g_ptr_array_free (d->bufs, TRUE);
}

/* ---- GEMM ---- */

static void
ref_gemm (gboolean ta, gboolean tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
          int ldb, float beta, float *c, int ldc)
{
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++)
      {
        double acc = 0;
        for (int p = 0; p < k; p++)
          acc += (double) (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
        c[i * ldc + j] = (float) (alpha * acc + beta * c[i * ldc + j]);
      }
}

/* C = 0.75 op(A) op(B) + beta C for the four transposes, leading
 * dimensions pad floats past the rows; beta is beta_same where both or
 * neither operand is transposed, else beta_mixed. A, B and C draw from
 * seed + ta, seed + 2 + tb and seed + 4. */
static void
gemm_cases (const SnnBackend *be, Out *o, int m, int n, int k, int pad, uint64_t seed, float beta_same,
            float beta_mixed)
{
  o->abs_tol = 1e-6, o->rel_tol = 2e-5;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      {
        int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        float beta = ta == tb ? beta_same : beta_mixed;
        float *a = rnd ((int64_t) (ta ? k : m) * lda, seed + ta, -1, 1);
        float *b = rnd ((int64_t) (tb ? n : k) * ldb, seed + 2 + tb, -1, 1);
        float *c = rnd ((int64_t) m * ldc, seed + 4, -1, 1);
        Dev d;
        dev_init (&d, be);
        float *da = putf (&d, a, (int64_t) (ta ? k : m) * lda), *db = putf (&d, b, (int64_t) (tb ? n : k) * ldb);
        float *dc = putf (&d, c, (int64_t) m * ldc);
        (be ? be->gemm : ref_gemm) (ta, tb, m, n, k, 0.75f, da, lda, db, ldb, beta, dc, ldc);
        get (&d, o, 0, "C", dc, (int64_t) m * ldc);
        dev_clear (&d);
        g_free (a), g_free (b), g_free (c);
      }
}

static void
op_gemm (const SnnBackend *be, Out *o)
{
  gemm_cases (be, o, 37, 29, 67, 3, 1, -0.5f, -0.5f);
}

/* A C too small to split into bands and a long inner dimension, as a
 * convolution's weight gradient has (the CPU backend splits k and adds the
 * parts in order); with beta = 0, C's old values must not count. */
static void
op_gemm_long_k (const SnnBackend *be, Out *o)
{
  gemm_cases (be, o, 19, 37, 9001, 5, 61, 0.0f, -0.5f);
}

/* Three GEMMs at once, the first operand shared (stride 0) as the
 * convolution's forward pass does: each C_i as one gemm would give. */
static void
op_gemm_batched (const SnnBackend *be, Out *o)
{
  const int m = 19, n = 53, k = 31, count = 3, lda = k + 2, ldb = n + 1, ldc = n + 3;
  const int64_t sb = (int64_t) k * ldb + 5, sc = (int64_t) m * ldc + 7;
  o->abs_tol = 1e-6, o->rel_tol = 2e-5;
  float *a = rnd ((int64_t) m * lda, 21, -1, 1), *b = rnd (sb * count, 22, -1, 1), *c = rnd (sc * count, 23, -1, 1);
  Dev d;
  dev_init (&d, be);
  float *da = putf (&d, a, (int64_t) m * lda), *db = putf (&d, b, sb * count), *dc = putf (&d, c, sc * count);
  if (be)
    be->gemm_batched (FALSE, FALSE, m, n, k, 1.25f, da, lda, 0, db, ldb, sb, 0.5f, dc, ldc, sc, count);
  else
    for (int i = 0; i < count; i++)
      ref_gemm (FALSE, FALSE, m, n, k, 1.25f, da, lda, db + i * sb, ldb, 0.5f, dc + i * sc, ldc);
  get (&d, o, 0, "C", dc, sc * count);
  dev_clear (&d);
  g_free (a), g_free (b), g_free (c);
}

/* ---- biases ---- */

static void
op_bias_rows (const SnnBackend *be, Out *o)
{
  const int R = 77, C = 45;
  float *y = rnd (R * C, 11, -1, 1), *b = rnd (C, 12, -1, 1), *db0 = rnd (C, 13, -1, 1);
  Dev d;
  dev_init (&d, be);
  float *dy = putf (&d, y, R * C), *dbias = putf (&d, b, C), *ddb = putf (&d, db0, C);
  if (be)
    be->add_bias_rows (dy, dbias, R, C), be->bias_grad_rows (ddb, dy, R, C);
  else
    {
      for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
          dy[r * C + c] += dbias[c];
      for (int c = 0; c < C; c++)
        {
          double acc = 0;
          for (int r = 0; r < R; r++)
            acc += dy[r * C + c];
          ddb[c] += (float) acc;
        }
    }
  get (&d, o, 0, "y", dy, R * C);
  get (&d, o, 1, "db", ddb, C);
  o->abs_tol = 1e-6, o->rel_tol = 1e-5;
  dev_clear (&d);
  g_free (y), g_free (b), g_free (db0);
}

static void
op_bias_channels (const SnnBackend *be, Out *o)
{
  const int n = 5, c = 7, hw = 13;
  float *y = rnd (n * c * hw, 21, -1, 1), *b = rnd (c, 22, -1, 1), *db0 = rnd (c, 23, -1, 1);
  Dev d;
  dev_init (&d, be);
  float *dy = putf (&d, y, n * c * hw), *dbias = putf (&d, b, c), *ddb = putf (&d, db0, c);
  if (be)
    be->add_bias_channels (dy, dbias, n, c, hw), be->bias_grad_channels (ddb, dy, n, c, hw);
  else
    {
      for (int i = 0; i < n * c * hw; i++)
        dy[i] += dbias[(i / hw) % c];
      for (int ch = 0; ch < c; ch++)
        {
          double acc = 0;
          for (int i = 0; i < n * c * hw; i++)
            if ((i / hw) % c == ch)
              acc += dy[i];
          ddb[ch] += (float) acc;
        }
    }
  get (&d, o, 0, "y", dy, n * c * hw);
  get (&d, o, 1, "db", ddb, c);
  o->abs_tol = 1e-6, o->rel_tol = 1e-5;
  dev_clear (&d);
  g_free (y), g_free (b), g_free (db0);
}

/* ---- convolution layout ---- */

typedef struct { int n, c, h, w, k, stride, pad; } ConvShape;

/* Where tap (ki, kj) of output pixel (oi, oj) reads a plane [h][w]: the
 * index in it, or -1 in the padding. */
static int64_t
conv_tap (ConvShape s, int oi, int oj, int ki, int kj)
{
  int ii = oi * s.stride - s.pad + ki, jj = oj * s.stride - s.pad + kj;
  return ii >= 0 && ii < s.h && jj >= 0 && jj < s.w ? (int64_t) ii * s.w + jj : -1;
}
/* Stride 1 with the output as wide as the input takes a path of its own on
 * the CPU: kernels of 1, 3 and 5, and images smaller than the kernel. */
static const ConvShape conv_shapes[] = { { 3, 5, 7, 9, 3, 1, 1 }, { 2, 3, 8, 7, 3, 2, 1 }, { 1, 2, 5, 5, 1, 1, 0 },
                                         { 2, 4, 6, 6, 2, 2, 0 }, { 1, 1, 4, 3, 3, 1, 2 }, { 2, 3, 6, 8, 5, 1, 2 },
                                         { 2, 2, 1, 1, 3, 1, 1 }, { 1, 2, 2, 1, 3, 1, 1 }, { 1, 1, 3, 2, 5, 1, 2 } };

static void
op_im2col (const SnnBackend *be, Out *o)
{
  for (guint q = 0; q < G_N_ELEMENTS (conv_shapes); q++)
    {
      ConvShape s = conv_shapes[q];
      int oh = (s.h + 2 * s.pad - s.k) / s.stride + 1, ow = (s.w + 2 * s.pad - s.k) / s.stride + 1;
      int64_t nx = (int64_t) s.n * s.c * s.h * s.w, ncol = (int64_t) s.c * s.k * s.k * s.n * oh * ow;
      float *x = rnd (nx, 31 + q, -1, 1);
      Dev d;
      dev_init (&d, be);
      float *dx = putf (&d, x, nx), *dcol = zerosf (&d, ncol);
      if (be)
        be->im2col (dx, s.n, s.c, s.h, s.w, s.k, s.stride, s.pad, oh, ow, dcol);
      else
        for (int ch = 0; ch < s.c; ch++)
          for (int ki = 0; ki < s.k; ki++)
            for (int kj = 0; kj < s.k; kj++)
              for (int sm = 0; sm < s.n; sm++)
                for (int oi = 0; oi < oh; oi++)
                  for (int oj = 0; oj < ow; oj++)
                    {
                      int64_t ci = (((int64_t) (ch * s.k + ki) * s.k + kj) * s.n + sm) * oh * ow + oi * ow + oj;
                      int64_t t = conv_tap (s, oi, oj, ki, kj);
                      dcol[ci] = t >= 0 ? dx[((int64_t) sm * s.c + ch) * s.h * s.w + t] : 0.0f;
                    }
      get (&d, o, 0, "col", dcol, ncol);
      dev_clear (&d);
      g_free (x);
    }
  o->abs_tol = 0, o->rel_tol = 0;
}

/* More images than one group of the CPU's: small images, many per group;
 * large ones, one each; a stride of 2; and patches long enough for the
 * weight gradient's bands, with several groups and with one. */
static const ConvShape conv_groups[] = { { 70, 3, 4, 5, 3, 1, 1 }, { 5, 2, 17, 19, 3, 1, 1 }, { 9, 2, 23, 21, 3, 2, 1 },
                                         { 6, 32, 9, 7, 3, 1, 1 }, { 3, 40, 6, 6, 3, 1, 1 } };

#define N_CONV_CASES (G_N_ELEMENTS (conv_shapes) + G_N_ELEMENTS (conv_groups))

/* Case q of the convolution ops: its shape, out channels, patch length,
 * output size, and the counts of input floats and output pixels. */
typedef struct {
  ConvShape s;
  int out, kk, oh, ow;
  int64_t nx, np;
} ConvCase;

static ConvCase
conv_case (guint q)
{
  ConvCase c = { q < G_N_ELEMENTS (conv_shapes) ? conv_shapes[q] : conv_groups[q - G_N_ELEMENTS (conv_shapes)] };
  const ConvShape s = c.s;
  c.out = 3 + (int) q % 4, c.kk = s.c * s.k * s.k;
  c.oh = (s.h + 2 * s.pad - s.k) / s.stride + 1, c.ow = (s.w + 2 * s.pad - s.k) / s.stride + 1;
  c.nx = (int64_t) s.n * s.c * s.h * s.w, c.np = (int64_t) s.n * c.oh * c.ow;
  return c;
}

/* y = W x's patches + bias, in double; every other case without bias. */
static void
op_conv_forward (const SnnBackend *be, Out *o)
{
  for (guint q = 0; q < N_CONV_CASES; q++)
    {
      const ConvCase cc = conv_case (q);
      const ConvShape s = cc.s;
      const int out = cc.out, kk = cc.kk, oh = cc.oh, ow = cc.ow;
      const int64_t nx = cc.nx, ny = out * cc.np;
      float *x = rnd (nx, 81 + q, -1, 1), *w = rnd ((int64_t) out * kk, 91 + q, -1, 1), *b = rnd (out, 99 + q, -1, 1);
      float *noise = rnd (ny, 101 + q, -9, 9);
      Dev d;
      dev_init (&d, be);
      float *dx = putf (&d, x, nx), *dw = putf (&d, w, (int64_t) out * kk), *db = q % 2 ? NULL : putf (&d, b, out);
      float *dcol = zerosf (&d, kk * (int64_t) s.n * oh * ow), *dy = putf (&d, noise, ny);
      if (be)
        be->conv_forward (dx, dw, db, s.n, s.c, s.h, s.w, out, s.k, s.stride, s.pad, oh, ow, dcol, dy);
      else
        for (int sm = 0; sm < s.n; sm++)
          for (int oc = 0; oc < out; oc++)
            for (int oi = 0; oi < oh; oi++)
              for (int oj = 0; oj < ow; oj++)
                {
                  double sum = db ? db[oc] : 0.0;
                  for (int ch = 0; ch < s.c; ch++)
                    for (int ki = 0; ki < s.k; ki++)
                      for (int kj = 0; kj < s.k; kj++)
                        {
                          int64_t t = conv_tap (s, oi, oj, ki, kj);
                          if (t >= 0)
                            sum += (double) dw[(int64_t) oc * kk + (ch * s.k + ki) * s.k + kj] *
                                   dx[((int64_t) sm * s.c + ch) * s.h * s.w + t];
                        }
                  dy[(((int64_t) sm * out + oc) * oh + oi) * ow + oj] = (float) sum;
                }
      get (&d, o, 0, "y", dy, ny);
      dev_clear (&d);
      g_free (x), g_free (w), g_free (b), g_free (noise);
    }
  o->abs_tol = 1e-6, o->rel_tol = 2e-5;
}

/* Reference: dcol = W^T dy in double, then each entry added back where
 * im2col took it from. */
static void
ref_conv_input_grad (ConvShape s, int out, int oh, int ow, const float *w, const float *dy, float *dcol, float *dx)
{
  const int kk = s.c * s.k * s.k;
  const int64_t np = (int64_t) s.n * oh * ow;
  for (int r = 0; r < kk; r++)
    for (int64_t p = 0; p < np; p++)
      {
        double sum = 0;
        for (int q = 0; q < out; q++)
          sum += (double) w[(int64_t) q * kk + r] * dy[q * np + p];
        dcol[r * np + p] = (float) sum;
      }
  memset (dx, 0, (size_t) s.n * s.c * s.h * s.w * sizeof (float));
  for (int ch = 0; ch < s.c; ch++)
    for (int ki = 0; ki < s.k; ki++)
      for (int kj = 0; kj < s.k; kj++)
        for (int sm = 0; sm < s.n; sm++)
          for (int oi = 0; oi < oh; oi++)
            for (int oj = 0; oj < ow; oj++)
              {
                int64_t t = conv_tap (s, oi, oj, ki, kj);
                if (t >= 0)
                  dx[((int64_t) sm * s.c + ch) * s.h * s.w + t] +=
                    dcol[(((int64_t) (ch * s.k + ki) * s.k + kj) * s.n + sm) * oh * ow + oi * ow + oj];
              }
}

/* dw += dy patches^T: dw starts as noise, the reference adds in double. */
static void
op_conv_weight_grad (const SnnBackend *be, Out *o)
{
  for (guint q = 0; q < N_CONV_CASES; q++)
    {
      const ConvCase cc = conv_case (q);
      const ConvShape s = cc.s;
      const int out = cc.out, kk = cc.kk, oh = cc.oh, ow = cc.ow;
      const int64_t nx = cc.nx, np = cc.np;
      float *x = rnd (nx, 111 + q, -1, 1), *g = rnd (out * np, 121 + q, -1, 1), *w0 = rnd ((int64_t) out * kk, 131 + q, -1, 1);
      Dev d;
      dev_init (&d, be);
      float *dx = putf (&d, x, nx), *dg = putf (&d, g, out * np), *dcol = zerosf (&d, kk * np);
      float *dw = putf (&d, w0, (int64_t) out * kk);
      if (be)
        be->conv_weight_grad (dx, dg, s.n, s.c, s.h, s.w, out, s.k, s.stride, s.pad, oh, ow, dcol, dw);
      else
        for (int oc = 0; oc < out; oc++)
          for (int ch = 0; ch < s.c; ch++)
            for (int ki = 0; ki < s.k; ki++)
              for (int kj = 0; kj < s.k; kj++)
                {
                  double sum = dw[(int64_t) oc * kk + (ch * s.k + ki) * s.k + kj];
                  for (int sm = 0; sm < s.n; sm++)
                    for (int oi = 0; oi < oh; oi++)
                      for (int oj = 0; oj < ow; oj++)
                        {
                          int64_t t = conv_tap (s, oi, oj, ki, kj);
                          if (t >= 0)
                            sum += (double) dg[oc * np + ((int64_t) sm * oh + oi) * ow + oj] *
                                   dx[((int64_t) sm * s.c + ch) * s.h * s.w + t];
                        }
                  dw[(int64_t) oc * kk + (ch * s.k + ki) * s.k + kj] = (float) sum;
                }
      get (&d, o, 0, "dw", dw, (int64_t) out * kk);
      dev_clear (&d);
      g_free (x), g_free (g), g_free (w0);
    }
  o->abs_tol = 1e-6, o->rel_tol = 2e-5;
}

/* dx starts as noise: the op must overwrite it. */
static void
op_conv_input_grad (const SnnBackend *be, Out *o)
{
  for (guint q = 0; q < N_CONV_CASES; q++)
    {
      const ConvCase cc = conv_case (q);
      const ConvShape s = cc.s;
      const int out = cc.out, kk = cc.kk, oh = cc.oh, ow = cc.ow;
      const int64_t nx = cc.nx, np = cc.np;
      float *w = rnd ((int64_t) out * kk, 51 + q, -1, 1), *g = rnd (out * np, 41 + q, -1, 1), *noise = rnd (nx, 71 + q, -9, 9);
      Dev d;
      dev_init (&d, be);
      float *dw = putf (&d, w, (int64_t) out * kk), *dg = putf (&d, g, out * np), *dcol = zerosf (&d, kk * np);
      float *dx = putf (&d, noise, nx);
      if (be)
        be->conv_input_grad (dw, dg, out, s.n, s.c, s.h, s.w, s.k, s.stride, s.pad, oh, ow, dcol, dx);
      else
        ref_conv_input_grad (s, out, oh, ow, dw, dg, dcol, dx);
      get (&d, o, 0, "dx", dx, nx);
      dev_clear (&d);
      g_free (w), g_free (g), g_free (noise);
    }
  o->abs_tol = 1e-6, o->rel_tol = 2e-5;
}

static void
op_cn_nchw (const SnnBackend *be, Out *o)
{
  const int n = 3, c = 5, hw = 11;
  float *m = rnd (n * c * hw, 51, -1, 1);
  Dev d;
  dev_init (&d, be);
  float *dm = putf (&d, m, n * c * hw), *dy = zerosf (&d, n * c * hw), *dback = zerosf (&d, n * c * hw);
  if (be)
    be->cn_to_nchw (dm, n, c, hw, dy), be->nchw_to_cn (dy, n, c, hw, dback);
  else
    for (int s = 0; s < n; s++)
      for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < hw; p++)
          {
            dy[(s * c + ch) * hw + p] = dm[ch * n * hw + s * hw + p];
            dback[ch * n * hw + s * hw + p] = dy[(s * c + ch) * hw + p];
          }
  get (&d, o, 0, "nchw", dy, n * c * hw);
  get (&d, o, 1, "cn", dback, n * c * hw);
  dev_clear (&d);
  g_free (m);
}

/* ---- pooling ---- */

static void
op_avgpool (const SnnBackend *be, Out *o)
{
  for (guint q = 0; q < G_N_ELEMENTS (conv_shapes); q++)
    {
      ConvShape s = conv_shapes[q];
      int oh = (s.h + 2 * s.pad - s.k) / s.stride + 1, ow = (s.w + 2 * s.pad - s.k) / s.stride + 1;
      int64_t nx = (int64_t) s.n * s.c * s.h * s.w, ny = (int64_t) s.n * s.c * oh * ow;
      float *x = rnd (nx, 61 + q, -1, 1), *g = rnd (ny, 71 + q, -1, 1);
      Dev d;
      dev_init (&d, be);
      float *junk = rnd (nx, 81, -1, 1);
      float *dx = putf (&d, x, nx), *dy = zerosf (&d, ny), *dg = putf (&d, g, ny);
      float *dgx = putf (&d, junk, nx);   /* backward overwrites whatever was there */
      g_free (junk);
      if (be)
        {
          be->avgpool_forward (dx, s.n, s.c, s.h, s.w, s.k, s.stride, s.pad, oh, ow, dy);
          be->avgpool_backward (dg, s.n, s.c, s.h, s.w, s.k, s.stride, s.pad, oh, ow, dgx);
        }
      else
        {
          memset (dgx, 0, nx * sizeof (float));
          float sc = 1.0f / (s.k * s.k);
          for (int p = 0; p < s.n * s.c; p++)
            for (int oi = 0; oi < oh; oi++)
              for (int oj = 0; oj < ow; oj++)
                {
                  float acc = 0;
                  for (int ki = 0; ki < s.k; ki++)
                    for (int kj = 0; kj < s.k; kj++)
                      {
                        int64_t t = conv_tap (s, oi, oj, ki, kj);
                        if (t >= 0)
                          {
                            acc += dx[p * s.h * s.w + t];
                            dgx[p * s.h * s.w + t] += dg[(p * oh + oi) * ow + oj] * sc;
                          }
                      }
                  dy[(p * oh + oi) * ow + oj] = acc * sc;
                }
        }
      get (&d, o, 0, "y", dy, ny);
      get (&d, o, 1, "dx", dgx, nx);
      dev_clear (&d);
      g_free (x), g_free (g);
    }
  o->abs_tol = 1e-6, o->rel_tol = 1e-6;
}

static void
op_global_avgpool (const SnnBackend *be, Out *o)
{
  const int planes = 23, hw = 37;
  float *x = rnd (planes * hw, 91, -1, 1), *g = rnd (planes, 92, -1, 1);
  Dev d;
  dev_init (&d, be);
  float *dx = putf (&d, x, planes * hw), *dy = zerosf (&d, planes), *dg = putf (&d, g, planes);
  float *dgx = zerosf (&d, planes * hw);
  if (be)
    be->global_avgpool_forward (dx, planes, hw, dy), be->global_avgpool_backward (dg, planes, hw, dgx);
  else
    for (int p = 0; p < planes; p++)
      {
        double acc = 0;
        for (int i = 0; i < hw; i++)
          acc += dx[p * hw + i], dgx[p * hw + i] = dg[p] / hw;
        dy[p] = (float) (acc / hw);
      }
  get (&d, o, 0, "y", dy, planes);
  get (&d, o, 1, "dx", dgx, planes * hw);
  o->abs_tol = 1e-6, o->rel_tol = 1e-6;
  dev_clear (&d);
  g_free (x), g_free (g);
}

/* ---- batch norm ---- */

static void
ref_bn_train (const float *x, int n, int c, int hw, const float *gamma, const float *beta, float eps, float mom,
              float *rm, float *rv, float *xhat, float *invstd, float *y)
{
  double count = (double) n * hw;
  for (int ch = 0; ch < c; ch++)
    {
      double sum = 0, sq = 0;
      for (int s = 0; s < n; s++)
        for (int i = 0; i < hw; i++)
          sum += x[(s * c + ch) * hw + i];
      double mean = sum / count;
      for (int s = 0; s < n; s++)
        for (int i = 0; i < hw; i++)
          sq += (x[(s * c + ch) * hw + i] - mean) * (x[(s * c + ch) * hw + i] - mean);
      double var = sq / count;
      invstd[ch] = (float) (1.0 / sqrt (var + eps));
      for (int s = 0; s < n; s++)
        for (int i = 0; i < hw; i++)
          {
            int off = (s * c + ch) * hw + i;
            xhat[off] = (float) ((x[off] - mean) * invstd[ch]);
            y[off] = gamma[ch] * xhat[off] + beta[ch];
          }
      rm[ch] = (float) ((1 - mom) * rm[ch] + mom * mean);
      rv[ch] = (float) ((1 - mom) * rv[ch] + mom * var * count / (count - 1));
    }
}

static void
op_batch_norm (const SnnBackend *be, Out *o)
{
  const int n = 6, c = 9, hw = 17, N = n * c * hw;
  const float eps = 1e-5f, mom = 0.1f;
  float *x = rnd (N, 101, -2, 3), *gm = rnd (c, 102, 0.5, 1.5), *bt = rnd (c, 103, -1, 1), *g = rnd (N, 104, -1, 1);
  float *rv0 = rnd (c, 105, 0.5, 2);
  Dev d;
  dev_init (&d, be);
  float *dx = putf (&d, x, N), *dgm = putf (&d, gm, c), *dbt = putf (&d, bt, c), *dgr = putf (&d, g, N);
  float *rm = zerosf (&d, c), *rv = putf (&d, rv0, c), *xhat = zerosf (&d, N), *is = zerosf (&d, c), *y = zerosf (&d, N);
  float *ye = zerosf (&d, N), *dgam = zerosf (&d, c), *dbet = zerosf (&d, c), *dxo = zerosf (&d, N), *mean = zerosf (&d, c);
  if (be)
    {
      be->bn_forward_train (dx, n, c, hw, dgm, dbt, eps, mom, rm, rv, xhat, is, y);
      be->channel_mean (dx, n, c, hw, mean);
      be->bn_repeat_running (is, mean, c, n * hw, eps, mom, 3, rm, rv);
      be->bn_forward_eval (dx, n, c, hw, dgm, dbt, eps, rm, rv, ye);
      be->bn_backward (dgr, xhat, is, n, c, hw, dgm, dgam, dbet, dxo);
    }
  else
    {
      ref_bn_train (dx, n, c, hw, dgm, dbt, eps, mom, rm, rv, xhat, is, y);
      for (int ch = 0; ch < c; ch++)
        {
          double sum = 0;
          for (int s = 0; s < n; s++)
            for (int i = 0; i < hw; i++)
              sum += dx[(s * c + ch) * hw + i];
          mean[ch] = (float) (sum / (n * hw));
          double var = 1.0 / ((double) is[ch] * is[ch]) - eps, cnt = n * hw;
          for (int k = 0; k < 3; k++)
            {
              rm[ch] = (float) ((1 - mom) * rm[ch] + mom * mean[ch]);
              rv[ch] = (float) ((1 - mom) * rv[ch] + mom * var * cnt / (cnt - 1));
            }
          double sdy = 0, sdyx = 0;
          for (int s = 0; s < n; s++)
            for (int i = 0; i < hw; i++)
              {
                int off = (s * c + ch) * hw + i;
                ye[off] = (float) (dgm[ch] * (dx[off] - rm[ch]) / sqrt (rv[ch] + eps) + dbt[ch]);
                sdy += dgr[off], sdyx += (double) dgr[off] * xhat[off];
              }
          dgam[ch] = (float) sdyx, dbet[ch] = (float) sdy;
          for (int s = 0; s < n; s++)
            for (int i = 0; i < hw; i++)
              {
                int off = (s * c + ch) * hw + i;
                dxo[off] = (float) (dgm[ch] * is[ch] * (dgr[off] - sdy / cnt - xhat[off] * sdyx / cnt));
              }
        }
    }
  get (&d, o, 0, "y", y, N), get (&d, o, 0, "y", xhat, N), get (&d, o, 0, "y", is, c);
  get (&d, o, 1, "running", rm, c), get (&d, o, 1, "running", rv, c), get (&d, o, 1, "running", mean, c);
  get (&d, o, 2, "eval", ye, N);
  get (&d, o, 3, "backward", dgam, c), get (&d, o, 3, "backward", dbet, c), get (&d, o, 3, "backward", dxo, N);
  o->abs_tol = 1e-5, o->rel_tol = 1e-5;
  dev_clear (&d);
  g_free (x), g_free (gm), g_free (bt), g_free (g), g_free (rv0);
}

/* ---- LIF ---- */

static SnnLifParams
lif_case (int q)
{
  SnnLifParams p;
  snn_lif_params_init (&p);
  p.surrogate = q % 4;
  p.reset = (q / 4) % 2;
  p.detach_reset = (q / 8) % 2;
  p.tau = 1.7f + 0.3f * q, p.vth = 0.8f + 0.05f * q, p.width = 0.9f, p.alpha = 3.0f;
  return p;
}

static void
ref_lif_forward (const SnnLifParams *p, const float *x, gboolean rep, float *v, int steps, int64_t count, float *u,
                 float *s, uint64_t *bits)
{
  const float lam = 1.0f - 1.0f / p->tau;
  const int64_t words = snn_spike_words (count);
  memset (bits, 0, (size_t) steps * words * 8);
  for (int t = 0; t < steps; t++)
    for (int64_t i = 0; i < count; i++)
      {
        float ui = lam * v[i] + x[(rep ? 0 : t * count) + i], si = ui >= p->vth ? 1.0f : 0.0f;
        u[t * count + i] = ui, s[t * count + i] = si;
        v[i] = p->reset == SNN_RESET_HARD ? ui * (1 - si) : ui - p->vth * si;
        bits[t * words + i / 64] |= (uint64_t) (si != 0) << (i % 64);
      }
}

/* The backward route written out from the model's equations: dL/du[t] =
 * ds[t] * sg + dL/dv[t] * dv[t]/du[t], with dv/du through the reset. */
static void
ref_lif_backward (const SnnLifParams *p, const float *u, const float *ds, int steps, int64_t count, gboolean temporal,
                  float *dx)
{
  const float lam = 1.0f - 1.0f / p->tau, vth = p->vth;
  for (int t = steps - 1; t >= 0; t--)
    for (int64_t i = 0; i < count; i++)
      {
        float ut = u[t * count + i], sg = snn_lif_surrogate (p->surrogate, p->width, p->alpha, ut - vth);
        float dv = temporal && t + 1 < steps ? lam * dx[(t + 1) * count + i] : 0.0f, s = ut >= vth ? 1.0f : 0.0f;
        float dvdu = p->reset == SNN_RESET_HARD ? (1 - s) - (p->detach_reset ? 0 : ut * sg) : 1 - (p->detach_reset ? 0 : vth * sg);
        dx[t * count + i] = ds[t * count + i] * sg + dv * dvdu;
      }
}

static void
op_lif (const SnnBackend *be, Out *o)
{
  const int steps = 5;
  const int64_t counts[] = { 1, 63, 64, 65, 200 };
  for (int q = 0; q < 16; q++)
    for (guint ci = 0; ci < G_N_ELEMENTS (counts); ci++)
      {
        const int64_t count = counts[ci], n = steps * count, words = snn_spike_words (count);
        const gboolean rep = q % 3 == 0, temporal = q % 2 == 0;
        SnnLifParams p = lif_case (q);
        float *x = rnd (n, 200 + q, -0.5f, 1.5f), *v0 = rnd (count, 300 + q, -0.2f, 0.8f), *g = rnd (n, 400 + q, -1, 1);
        Dev d;
        dev_init (&d, be);
        float *dx = putf (&d, x, rep ? count : n), *v = putf (&d, v0, count), *u = zerosf (&d, n), *s = zerosf (&d, n);
        uint64_t *bits = (uint64_t *) zerosf (&d, steps * words * 2);
        float *dg = putf (&d, g, n), *du = zerosf (&d, n);
        if (be)
          {
            be->lif_forward (&p, dx, rep, v, steps, count, u, s, bits);
            be->lif_backward (&p, u, dg, steps, count, temporal, du);
          }
        else
          {
            ref_lif_forward (&p, dx, rep, v, steps, count, u, s, bits);
            ref_lif_backward (&p, u, dg, steps, count, temporal, du);
          }
        get (&d, o, 0, "spikes, bits", s, n);
        get_bits (&d, o, 0, "spikes, bits", bits, steps * words);
        get (&d, o, 1, "u, v", u, n);
        get (&d, o, 1, "u, v", v, count);
        get (&d, o, 2, "du", du, n);
        dev_clear (&d);
        g_free (x), g_free (v0), g_free (g);
      }
  o->abs_tol = 1e-5, o->rel_tol = 1e-5;
}

/* ---- weight standardisation ---- */

static void
op_ws (const SnnBackend *be, Out *o)
{
  const int rows = 11, fan = 75;
  const float g0 = 1.7f, eps = 1e-4f;
  float *w = rnd (rows * fan, 501, -1, 1), *gain = rnd (rows, 502, 0.5, 1.5), *g = rnd (rows * fan, 503, -1, 1);
  for (int j = 0; j < fan; j++)
    w[j] = 0.25f;   /* a constant row: the scale floor eps */
  Dev d;
  dev_init (&d, be);
  float *dw = putf (&d, w, rows * fan), *dgain = putf (&d, gain, rows), *dg = putf (&d, g, rows * fan);
  float *what = zerosf (&d, rows * fan), *inv = zerosf (&d, rows), *gw = zerosf (&d, rows * fan), *gg = zerosf (&d, rows);
  if (be)
    {
      be->ws_forward (dw, dgain, rows, fan, g0, eps, what, inv);
      be->ws_backward (dw, dgain, dg, inv, rows, fan, g0, eps, gw, gg);
    }
  else
    for (int r = 0; r < rows; r++)
      {
        const float *wr = dw + r * fan, *gr = dg + r * fan;
        double mean = 0, sq = 0, gc = 0, gs = 0;
        for (int j = 0; j < fan; j++)
          mean += wr[j] / (double) fan;
        for (int j = 0; j < fan; j++)
          sq += (wr[j] - mean) * (wr[j] - mean), gc += gr[j] * (wr[j] - mean), gs += gr[j];
        double is = 1.0 / sqrt (MAX (sq, eps)), a = g0 * dgain[r];
        inv[r] = (float) is;
        gg[r] = (float) (g0 * gc * is);
        for (int j = 0; j < fan; j++)
          {
            what[r * fan + j] = (float) (a * is * (wr[j] - mean));
            gw[r * fan + j] = (float) (a * is * (gr[j] - (wr[j] - mean) * (sq > eps ? gc / sq : 0)) - a * is * gs / fan);
          }
      }
  get (&d, o, 0, "what", what, rows * fan), get (&d, o, 0, "what", inv, rows);
  get (&d, o, 1, "dw, dgain", gw, rows * fan), get (&d, o, 1, "dw, dgain", gg, rows);
  o->abs_tol = 1e-5, o->rel_tol = 1e-5;
  dev_clear (&d);
  g_free (w), g_free (gain), g_free (g);
}

/* ---- spikes ---- */

static void
op_pack_unpack (const SnnBackend *be, Out *o)
{
  const int steps = 3;
  const int64_t counts[] = { 1, 64, 97, 130 };
  for (guint ci = 0; ci < G_N_ELEMENTS (counts); ci++)
    {
      const int64_t count = counts[ci], n = steps * count, words = snn_spike_words (count);
      float *s = spikes (n, 600 + ci, 0.3);
      Dev d;
      dev_init (&d, be);
      float *ds = putf (&d, s, n), *back = zerosf (&d, n);
      uint64_t *bits = (uint64_t *) zerosf (&d, steps * words * 2);
      if (be)
        be->pack_spikes (ds, steps, count, bits), be->unpack_spikes (bits, steps, count, back);
      else
        for (int t = 0; t < steps; t++)
          for (int64_t i = 0; i < count; i++)
            {
              bits[t * words + i / 64] |= (uint64_t) (ds[t * count + i] != 0) << (i % 64);
              back[t * count + i] = ds[t * count + i];
            }
      get_bits (&d, o, 0, "bits", bits, steps * words);
      get (&d, o, 1, "unpacked", back, n);
      dev_clear (&d);
      g_free (s);
    }
}

static void
op_spike_linear (const SnnBackend *be, Out *o)
{
  const int rows = 13, in = 150, out = 70;
  float *wt = rnd ((int64_t) in * out + SNN_SPIKE_SLACK, 701, -1, 1), *b = rnd (out, 702, -1, 1);
  for (int dense = 0; dense < 2; dense++)
    {
      float *s = spikes ((int64_t) rows * in, 703 + dense, dense ? 0.6 : 0.08);
      float *y0 = rnd ((int64_t) rows * out, 705, -1, 1);
      Dev d;
      dev_init (&d, be);
      float *dsp = putf (&d, s, rows * in), *dwt = putf (&d, wt, (int64_t) in * out + SNN_SPIKE_SLACK);
      float *db = putf (&d, b, out), *y = putf (&d, y0, rows * out);
      int *idx = (int *) zerosf (&d, snn_spike_linear_scratch (rows, in));
      gboolean done = be && be->spike_linear (dsp, rows, in, out, dwt, db, idx, y);
      float *got = g_new (float, rows * out);
      if (be)
        be->download (got, y, (size_t) rows * out * sizeof (float));
      if (be && !done)
        g_assert_cmpmem (got, rows * out * sizeof (float), y0, rows * out * sizeof (float)); /* untouched */
      if (!done)
        /* Declined (or the reference): the sum of the weight rows that fired. */
        for (int r = 0; r < rows; r++)
          for (int c = 0; c < out; c++)
            {
              float acc = 0;
              for (int j = 0; j < in; j++)
                if (s[r * in + j] != 0)
                  acc += wt[(int64_t) j * out + c];
              got[r * out + c] = acc + b[c];
            }
      Dev h;
      dev_init (&h, NULL);
      get (&h, o, dense, dense ? "y (dense spikes)" : "y (sparse spikes)", got, rows * out);
      dev_clear (&h);
      dev_clear (&d);
      g_free (s), g_free (y0), g_free (got);
    }
  o->abs_tol = 1e-5, o->rel_tol = 1e-6;
  g_free (wt), g_free (b);
}

static void
op_transpose_mask (const SnnBackend *be, Out *o)
{
  const int rows = 45, cols = 33, steps = 3, batch = 4, count = 37;
  float *x = rnd (rows * cols, 801, -1, 1), *a = rnd (steps * batch * count, 802, -1, 1), *m = spikes (batch * count, 803, 0.5);
  Dev d;
  dev_init (&d, be);
  float *dx = putf (&d, x, rows * cols), *dt = zerosf (&d, rows * cols);
  float *da = putf (&d, a, steps * batch * count), *dm = putf (&d, m, batch * count), *dy = zerosf (&d, steps * batch * count);
  if (be)
    be->transpose (dx, rows, cols, dt), be->mul_mask (da, dm, steps, batch, count, dy);
  else
    {
      for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
          dt[c * rows + r] = dx[r * cols + c];
      for (int i = 0; i < steps * batch * count; i++)
        dy[i] = da[i] * dm[((i / count) % batch) * count + i % count];
    }
  get (&d, o, 0, "transpose", dt, rows * cols);
  get (&d, o, 1, "mask", dy, steps * batch * count);
  dev_clear (&d);
  g_free (x), g_free (a), g_free (m);
}

/* ---- vectors and optimizers ---- */

static void
op_vectors (const SnnBackend *be, Out *o)
{
  const int64_t n = 4099;   /* odd: no whole blocks */
  const int steps = 4;
  float *x = rnd (n * steps, 901, -1, 1), *y0 = rnd (n, 902, -1, 1), *gain = rnd (1, 903, -2, 2);
  float out0[2] = { 0.5f, 0 };
  Dev d;
  dev_init (&d, be);
  float *dx = putf (&d, x, n * steps), *y = putf (&d, y0, n), *z = zerosf (&d, n), *dgain = putf (&d, gain, 1);
  float *gn = putf (&d, y0, n), *ga = putf (&d, y0, n), *gs = zerosf (&d, n), *dot = putf (&d, out0, 2), *sum = putf (&d, y0, n), *sum0 = zerosf (&d, n);
  double dot_host;
  if (be)
    {
      be->axpy (n, 0.3f, dx, y);
      be->scale (n, -1.5f, dx, z);
      be->axpy_gain (n, 0.7f, dgain, dx, ga);
      be->scale_gain (n, 0.7f, dgain, dx, gs);
      be->dot_add (n, 0.25f, dx, dx + n, dot);
      be->axpy_gain (n, 0.5f, NULL, dx, gn);   /* no gain: 1 */
      be->sum_steps (dx, steps, n, TRUE, sum);
      be->sum_steps (dx, steps, n, FALSE, sum0);
      dot_host = be->dot (n, dx, dx + 2 * n);
    }
  else
    {
      double acc = 0, acc2 = 0;
      for (int64_t i = 0; i < n; i++)
        {
          y[i] += 0.3f * dx[i];
          z[i] = -1.5f * dx[i];
          ga[i] += 0.7f * dgain[0] * dx[i];
          gn[i] += 0.5f * dx[i];
          gs[i] = 0.7f * dgain[0] * dx[i];
          acc += (double) dx[i] * dx[n + i];
          acc2 += (double) dx[i] * dx[2 * n + i];
          float s0 = dx[i];
          for (int t = 1; t < steps; t++)
            s0 += dx[t * n + i];
          sum0[i] = s0;
          for (int t = 0; t < steps; t++)
            sum[i] += dx[t * n + i];
        }
      dot[0] += (float) (0.25 * acc);
      dot_host = acc2;
    }
  get (&d, o, 0, "axpy, scale", y, n), get (&d, o, 0, "axpy, scale", z, n);
  get (&d, o, 1, "gain ops", ga, n), get (&d, o, 1, "gain ops", gs, n), get (&d, o, 1, "gain ops", gn, n);
  get (&d, o, 2, "dot", dot, 1);
  float dh = (float) dot_host;
  Dev h;
  dev_init (&h, NULL);
  get (&h, o, 2, "dot", &dh, 1);
  dev_clear (&h);
  get (&d, o, 3, "sum_steps", sum, n), get (&d, o, 3, "sum_steps", sum0, n);
  o->abs_tol = 1e-5, o->rel_tol = 1e-5;
  dev_clear (&d);
  g_free (x), g_free (y0), g_free (gain);
}

static void
op_optimizers (const SnnBackend *be, Out *o)
{
  const int64_t n = 517;
  float *w0 = rnd (n, 1001, -1, 1), *g = rnd (n, 1002, -1, 1), *b0 = rnd (n, 1003, -1, 1);
  Dev d;
  dev_init (&d, be);
  float *w = putf (&d, w0, n), *dg = putf (&d, g, n), *buf = putf (&d, b0, n), *w2 = putf (&d, w0, n);
  float *m = zerosf (&d, n), *v = zerosf (&d, n), *w3 = putf (&d, w0, n), *buf3 = zerosf (&d, n);
  for (int step = 0; step < 3; step++)
    {
      double c1 = 1 - pow (0.9, step + 1), c2 = 1 - pow (0.999, step + 1);
      if (be)
        {
          be->sgd_update (w, dg, buf, n, 0.1f, 0.9f, 1e-3f, FALSE);
          be->sgd_update (w3, dg, buf3, n, 0.05f, 0.8f, 0.0f, step == 0);
          be->adam_update (w2, dg, m, v, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 5e-4f, c1, c2);
        }
      else
        for (int64_t j = 0; j < n; j++)
          {
            float d1 = dg[j] + 1e-3f * w[j];
            buf[j] = 0.9f * buf[j] + d1;
            w[j] -= 0.1f * buf[j];
            float d3 = dg[j];
            buf3[j] = step == 0 ? d3 : 0.8f * buf3[j] + d3;
            w3[j] -= 0.05f * buf3[j];
            float d2 = dg[j] + 5e-4f * w2[j];
            m[j] = 0.9f * m[j] + 0.1f * d2;
            v[j] = 0.999f * v[j] + (1 - 0.999f) * d2 * d2;
            w2[j] -= (float) (1e-2f * (m[j] / c1) / (sqrt (v[j] / c2) + 1e-8f));
          }
    }
  get (&d, o, 0, "sgd", w, n), get (&d, o, 0, "sgd", buf, n), get (&d, o, 0, "sgd", w3, n);
  get (&d, o, 1, "adam", w2, n), get (&d, o, 1, "adam", m, n), get (&d, o, 1, "adam", v, n);
  o->abs_tol = 1e-6, o->rel_tol = 1e-5;
  dev_clear (&d);
  g_free (w0), g_free (g), g_free (b0);
}

static void
op_memory (const SnnBackend *be, Out *o)
{
  const int64_t n = 333;
  float *x = rnd (n, 1101, -1, 1);
  Dev d;
  dev_init (&d, be);
  float *a = putf (&d, x, n), *b = zerosf (&d, n), *c = putf (&d, x, n);
  if (be)
    be->copy (b, a, n * sizeof (float)), be->zero (c + 7, 11 * sizeof (float));
  else
    memcpy (b, a, n * sizeof (float)), memset (c + 7, 0, 11 * sizeof (float));
  get (&d, o, 0, "copy", b, n);
  get (&d, o, 1, "zero", c, n);
  dev_clear (&d);
  g_free (x);
}

/* ---- the driver ---- */

typedef void (*OpFunc) (const SnnBackend *be, Out *o);
static const struct { const char *name; OpFunc fn; } ops[] = {
  { "gemm", op_gemm }, { "gemm-long-k", op_gemm_long_k }, { "gemm-batched", op_gemm_batched }, { "bias-rows", op_bias_rows }, { "bias-channels", op_bias_channels },
  { "im2col", op_im2col }, { "conv-forward", op_conv_forward }, { "conv-weight-grad", op_conv_weight_grad }, { "conv-input-grad", op_conv_input_grad }, { "cn-nchw", op_cn_nchw }, { "avgpool", op_avgpool },
  { "global-avgpool", op_global_avgpool }, { "batch-norm", op_batch_norm }, { "lif", op_lif },
  { "weight-standardisation", op_ws }, { "pack-unpack", op_pack_unpack }, { "spike-linear", op_spike_linear },
  { "transpose-mask", op_transpose_mask }, { "vectors", op_vectors }, { "optimizers", op_optimizers },
  { "memory", op_memory },
};

typedef struct {
  const char *backend;
  OpFunc fn;
} Case;

static void
compare (const char *backend, const Out *got, const Out *want)
{
  for (int k = 0; k < N_OUT; k++)
    {
      g_assert_true ((got->out[k] == NULL) == (want->out[k] == NULL));
      if (!got->out[k])
        continue;
      g_assert_cmpuint (got->out[k]->len, ==, want->out[k]->len);
      const float *g = (const float *) got->out[k]->data, *w = (const float *) want->out[k]->data;
      double big = 0, worst = 0;
      guint at = 0;
      for (guint i = 0; i < want->out[k]->len; i++)
        big = MAX (big, fabs (w[i]));
      for (guint i = 0; i < want->out[k]->len; i++)
        {
          double e = isnan (g[i]) || isnan (w[i]) ? INFINITY : fabs ((double) g[i] - w[i]);
          if (e > worst)
            worst = e, at = i;
        }
      double tol = want->abs_tol + want->rel_tol * big;
      if (worst > tol)
        g_error ("%s: output \"%s\" differs at %u: %.9g, expected %.9g (|error| %.3g > tolerance %.3g)", backend,
                 want->what[k], at, g[at], w[at], worst, tol);
    }
}

static void
out_clear (Out *o)
{
  for (int k = 0; k < N_OUT; k++)
    if (o->out[k])
      g_array_free (o->out[k], TRUE);
}

static void
test_op (gconstpointer data)
{
  const Case *c = data;
  GError *error = NULL;
  const SnnBackend *be = snn_backend_get (c->backend, &error);
  if (!be)
    {
      g_test_skip (error->message);
      g_error_free (error);
      return;
    }
  /* The CPU answers to the reference loops, every other backend to the CPU. */
  const SnnBackend *ref = g_str_equal (be->name, "cpu") ? NULL : tu_cpu ();
  Out got = { 0 }, want = { 0 };
  c->fn (be, &got);
  c->fn (ref, &want);
  compare (be->name, &got, &want);
  out_clear (&got);
  out_clear (&want);
}

/* Every op of the table is there (only the device memory query may be
 * missing, on the CPU). The CUDA table is read from the module without a
 * device, so this runs wherever the backend was built. */
static void
test_table (gconstpointer data)
{
  const char *name = data;
  const SnnBackend *be = NULL;
  if (g_str_equal (name, "cpu"))
    be = tu_cpu ();
  else
    {
#ifdef SNN_HAVE_CUDA
      GModule *mod = g_module_open (SNN_CUDA_MODULE_BUILT, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
      gpointer fn = NULL;
      g_assert_nonnull (mod);
      g_assert_true (g_module_symbol (mod, SNN_CUDA_TABLE_SYMBOL, &fn));
      g_module_make_resident (mod);
      be = ((const SnnBackend *(*) (void)) fn) ();
#else
      g_test_skip ("this build has no CUDA backend");
      return;
#endif
    }
  g_assert_cmpstr (be->name, ==, name);
  /* Every member from alloc on is a function pointer. */
  void *const *ops = (void *const *) ((const char *) be + offsetof (SnnBackend, alloc));
  size_t n = (sizeof (SnnBackend) - offsetof (SnnBackend, alloc)) / sizeof (void *);
  for (size_t i = 0; i < n; i++)
    if (!ops[i] && !(g_str_equal (name, "cpu") && &ops[i] == (void *const *) &be->device_memory))
      g_error ("%s: op %zu of the table is missing", name, i);
}

/* Once the CPU backend has started, the process runs the pool's threads
 * and no others: OpenBLAS's would spin beside them, and the pool would
 * take them for another program's load and stand aside. In a child, so
 * that no other backend's threads are there. */
static void
test_cpu_threads_only_pool (void)
{
  if (g_test_subprocess ())
    {
      snn_backend_cpu_threads ();
      g_autoptr (GDir) dir = g_dir_open ("/proc/self/task", 0, NULL);
      int threads = 0;
      while (dir && g_dir_read_name (dir))
        threads++;
      if (!dir)
        g_test_skip ("no /proc/self/task");
      else
        g_assert_cmpint (threads, ==, snn_pool_threads ());
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/backend-ops/cpu/threads-only-pool", test_cpu_threads_only_pool);
  const char *backends[] = { "cpu", "cuda" };
  for (guint b = 0; b < G_N_ELEMENTS (backends); b++)
    {
      g_autofree char *path = g_strdup_printf ("/backend-ops/%s/table-complete", backends[b]);
      g_test_add_data_func (path, backends[b], test_table);
    }
  for (guint b = 0; b < G_N_ELEMENTS (backends); b++)
    for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
      {
        Case *c = g_new (Case, 1);
        c->backend = backends[b];
        c->fn = ops[i].fn;
        g_autofree char *path = g_strdup_printf ("/backend-ops/%s/%s", backends[b], ops[i].name);
        g_test_add_data_func_full (path, c, test_op, g_free);
      }
  return g_test_run ();
}
