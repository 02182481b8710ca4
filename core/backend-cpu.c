/* The CPU backend: GEMMs on OpenBLAS, everything else plain loops.
 *
 * One thread pool does all the work: OpenBLAS runs single-threaded inside
 * OpenMP threads that split each GEMM and each elementwise loop, so the
 * BLAS workers never spin while the elementwise work waits for a core. */
#include "backend.h"
#include "surrogate.h"
#include <cblas.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *
cpu_alloc (size_t bytes)
{
  /* 64-byte alignment for vector loads; never NULL for 0 bytes. */
  size_t sz = (bytes + 63) & ~(size_t) 63;
  void *p = NULL;
  if (posix_memalign (&p, 64, sz ? sz : 64) != 0)
    {
      /* Sizes are checked against the memory available before a network is
       * built; should an allocation fail anyway, end as bad input does (exit
       * 2, with the size), not with an abort and a core dump. */
      fprintf (stderr, "out of memory allocating %zu bytes for the network; use a smaller model, batch_size or T\n",
               bytes);
      exit (2);
    }
  memset (p, 0, sz ? sz : 64);
  return p;
}

static void
cpu_free (void *p)
{
  free (p);
}

static void
cpu_copy (void *dst, const void *src, size_t bytes)
{
  if (dst != src && bytes)
    memcpy (dst, src, bytes);
}

static void
cpu_zero (void *dst, size_t bytes)
{
  if (bytes)
    memset (dst, 0, bytes);
}

static int cpu_threads = 1;
static void init_threads (void);

/* Below this much work a GEMM runs on one thread: splitting costs more. */
#define PAR_FLOPS 2e6
/* Elementwise loops shorter than this run on one thread. */
#define PAR_MIN 16384

static void
cpu_gemm (gboolean ta, gboolean tb, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
  if (m == 0 || n == 0)
    return;
  int parts = (2.0 * m * n * k >= PAR_FLOPS) ? cpu_threads : 1;
  gboolean split_m = m >= n;
  int len = split_m ? m : n;
  parts = MIN (parts, len);
  /* Each part is a band of rows (or columns) of C: its elements are
   * computed exactly as by one call, so results do not depend on parts. */
#pragma omp parallel for num_threads (parts) if (parts > 1) schedule (static, 1)
  for (int p = 0; p < parts; p++)
    {
      int lo = (int) ((int64_t) len * p / parts), hi = (int) ((int64_t) len * (p + 1) / parts);
      if (hi <= lo)
        continue;
      if (split_m)
        cblas_sgemm (CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, hi - lo, n, k,
                     alpha, ta ? a + lo : a + (size_t) lo * lda, lda, b, ldb, beta, c + (size_t) lo * ldc, ldc);
      else
        cblas_sgemm (CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, hi - lo, k,
                     alpha, a, lda, tb ? b + (size_t) lo * ldb : b + lo, ldb, beta, c + lo, ldc);
    }
}

static void
cpu_add_bias_rows (float *y, const float *bias, int rows, int cols)
{
  for (int r = 0; r < rows; r++)
    {
      float *yr = y + (size_t) r * cols;
      for (int c = 0; c < cols; c++)
        yr[c] += bias[c];
    }
}

static void
cpu_bias_grad_rows (float *db, const float *dy, int rows, int cols)
{
  /* Columns in blocks, so the double accumulators live on the stack. */
  enum { BLOCK = 1024 };
  double acc[BLOCK];
  for (int c0 = 0; c0 < cols; c0 += BLOCK)
    {
      int nc = MIN (BLOCK, cols - c0);
      memset (acc, 0, nc * sizeof (double));
      for (int r = 0; r < rows; r++)
        {
          const float *d = dy + (size_t) r * cols + c0;
          for (int c = 0; c < nc; c++)
            acc[c] += d[c];
        }
      for (int c = 0; c < nc; c++)
        db[c0 + c] += (float) acc[c];
    }
}

static void
cpu_add_bias_channels (float *y, const float *bias, int n, int c, int hw)
{
#pragma omp parallel for if ((size_t) n * c * hw > PAR_MIN) num_threads (cpu_threads)
  for (int s = 0; s < n; s++)
    for (int ch = 0; ch < c; ch++)
      {
        float *p = y + ((size_t) s * c + ch) * hw;
        float b = bias[ch];
        for (int i = 0; i < hw; i++)
          p[i] += b;
      }
}

static void
cpu_bias_grad_channels (float *db, const float *dy, int n, int c, int hw)
{
#pragma omp parallel for if ((size_t) n * c * hw > PAR_MIN) num_threads (cpu_threads)
  for (int ch = 0; ch < c; ch++)
    {
      double acc = 0;
      for (int s = 0; s < n; s++)
        {
          const float *p = dy + ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            acc += p[i];
        }
      db[ch] += (float) acc;
    }
}

/* One output row of a patch: src is an input row (or NULL for padding). */
static inline void
im2col_row (const float *src, int w, int ow, int stride, int pad, int kj, float *d)
{
  if (!src)
    {
      memset (d, 0, ow * sizeof (float));
      return;
    }
  if (stride == 1)
    {
      /* jj = oj - pad + kj must lie in [0, w): one copy between two fills. */
      int lo = CLAMP (pad - kj, 0, ow), hi = CLAMP (w + pad - kj, lo, ow);
      memset (d, 0, lo * sizeof (float));
      memcpy (d + lo, src + lo - pad + kj, (hi - lo) * sizeof (float));
      memset (d + hi, 0, (ow - hi) * sizeof (float));
      return;
    }
  for (int oj = 0; oj < ow; oj++)
    {
      int jj = oj * stride - pad + kj;
      d[oj] = (jj >= 0 && jj < w) ? src[jj] : 0.0f;
    }
}

static void
cpu_im2col (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh,
            int ow, float *col)
{
  size_t np = (size_t) n * oh * ow;
#pragma omp parallel for collapse (3) if (np * c * k * k > PAR_MIN) num_threads (cpu_threads)
  for (int ch = 0; ch < c; ch++)
    for (int ki = 0; ki < k; ki++)
      for (int kj = 0; kj < k; kj++)
        {
          float *row = col + ((size_t) (ch * k + ki) * k + kj) * np;
          for (int s = 0; s < n; s++)
            {
              const float *img = x + ((size_t) s * c + ch) * h * w;
              float *dst = row + (size_t) s * oh * ow;
              for (int oi = 0; oi < oh; oi++)
                {
                  int ii = oi * stride - pad + ki;
                  im2col_row (ii >= 0 && ii < h ? img + (size_t) ii * w : NULL, w, ow, stride, pad, kj, dst + oi * ow);
                }
            }
        }
}

static void
cpu_col2im (const float *dcol, int n, int c, int h, int w, int k, int stride, int pad, int oh,
            int ow, float *dx)
{
  size_t np = (size_t) n * oh * ow;
#pragma omp parallel for if (np * c * k * k > PAR_MIN) num_threads (cpu_threads)
  for (int ch = 0; ch < c; ch++)
    for (int ki = 0; ki < k; ki++)
      for (int kj = 0; kj < k; kj++)
        {
          const float *row = dcol + ((size_t) (ch * k + ki) * k + kj) * np;
          for (int s = 0; s < n; s++)
            {
              float *img = dx + ((size_t) s * c + ch) * h * w;
              const float *src = row + (size_t) s * oh * ow;
              for (int oi = 0; oi < oh; oi++)
                {
                  int ii = oi * stride - pad + ki;
                  if (ii < 0 || ii >= h)
                    continue;
                  float *d = img + (size_t) ii * w;
                  const float *sr = src + oi * ow;
                  for (int oj = 0; oj < ow; oj++)
                    {
                      int jj = oj * stride - pad + kj;
                      if (jj >= 0 && jj < w)
                        d[jj] += sr[oj];
                    }
                }
            }
        }
}

static void
cpu_cn_to_nchw (const float *m, int n, int c, int hw, float *y)
{
#pragma omp parallel for if ((size_t) n * c * hw > PAR_MIN) num_threads (cpu_threads)
  for (int s = 0; s < n; s++)
    for (int ch = 0; ch < c; ch++)
      memcpy (y + ((size_t) s * c + ch) * hw, m + (size_t) ch * n * hw + (size_t) s * hw, hw * sizeof (float));
}

static void
cpu_nchw_to_cn (const float *y, int n, int c, int hw, float *m)
{
#pragma omp parallel for if ((size_t) n * c * hw > PAR_MIN) num_threads (cpu_threads)
  for (int s = 0; s < n; s++)
    for (int ch = 0; ch < c; ch++)
      memcpy (m + (size_t) ch * n * hw + (size_t) s * hw, y + ((size_t) s * c + ch) * hw, hw * sizeof (float));
}

/* One pooling window's sum, the window clipped to the image (padding is zero). */
static inline float
pool_sum (const float *img, int h, int w, int i0, int j0, int k)
{
  float acc = 0;
  for (int ii = MAX (i0, 0); ii < MIN (i0 + k, h); ii++)
    for (int jj = MAX (j0, 0); jj < MIN (j0 + k, w); jj++)
      acc += img[ii * w + jj];
  return acc;
}

static void
cpu_avgpool_forward (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh,
                     int ow, float *y)
{
  float scale = 1.0f / (k * k);
#pragma omp parallel for if ((size_t) n * c * h * w > PAR_MIN) num_threads (cpu_threads)
  for (size_t p = 0; p < (size_t) n * c; p++)
    {
      const float *img = x + p * h * w;
      float *out = y + p * oh * ow;
      if (k == 2 && stride == 2 && pad == 0)
        {
          for (int oi = 0; oi < oh; oi++)
            {
              const float *r0 = img + (size_t) 2 * oi * w, *r1 = r0 + w;
              for (int oj = 0; oj < ow; oj++)
                out[oi * ow + oj] = (r0[2 * oj] + r0[2 * oj + 1] + r1[2 * oj] + r1[2 * oj + 1]) * scale;
            }
          continue;
        }
      for (int oi = 0; oi < oh; oi++)
        for (int oj = 0; oj < ow; oj++)
          out[oi * ow + oj] = pool_sum (img, h, w, oi * stride - pad, oj * stride - pad, k) * scale;
    }
}

static void
cpu_avgpool_backward (const float *dy, int n, int c, int h, int w, int k, int stride, int pad, int oh,
                      int ow, float *dx)
{
  float scale = 1.0f / (k * k);
#pragma omp parallel for if ((size_t) n * c * h * w > PAR_MIN) num_threads (cpu_threads)
  for (size_t p = 0; p < (size_t) n * c; p++)
    {
      float *img = dx + p * h * w;
      const float *d = dy + p * oh * ow;
      memset (img, 0, (size_t) h * w * sizeof (float));
      if (k == 2 && stride == 2 && pad == 0)
        {
          for (int oi = 0; oi < oh; oi++)
            {
              float *r0 = img + (size_t) 2 * oi * w, *r1 = r0 + w;
              for (int oj = 0; oj < ow; oj++)
                {
                  float g = d[oi * ow + oj] * scale;
                  r0[2 * oj] = r0[2 * oj + 1] = r1[2 * oj] = r1[2 * oj + 1] = g;
                }
            }
          continue;
        }
      for (int oi = 0; oi < oh; oi++)
        for (int oj = 0; oj < ow; oj++)
          {
            float g = d[oi * ow + oj] * scale;
            int i0 = oi * stride - pad, j0 = oj * stride - pad;
            for (int ii = MAX (i0, 0); ii < MIN (i0 + k, h); ii++)
              for (int jj = MAX (j0, 0); jj < MIN (j0 + k, w); jj++)
                img[ii * w + jj] += g;
          }
    }
}

static void
cpu_global_avgpool_forward (const float *x, int64_t planes, int hw, float *y)
{
  for (int64_t p = 0; p < planes; p++)
    {
      double acc = 0;
      for (int i = 0; i < hw; i++)
        acc += x[p * hw + i];
      y[p] = (float) (acc / hw);
    }
}

static void
cpu_global_avgpool_backward (const float *dy, int64_t planes, int hw, float *dx)
{
  for (int64_t p = 0; p < planes; p++)
    {
      float g = dy[p] / hw;
      for (int i = 0; i < hw; i++)
        dx[p * hw + i] = g;
    }
}

static void
cpu_bn_forward_train (const float *x, int n, int c, int hw, const float *gamma, const float *beta,
                      float eps, float momentum, float *rmean, float *rvar, float *xhat,
                      float *invstd, float *y)
{
  double count = (double) n * hw;
  /* Channels are independent: each is summed in the same order whatever
   * the number of threads. */
#pragma omp parallel for if ((size_t) n * c * hw > PAR_MIN) num_threads (cpu_threads)
  for (int ch = 0; ch < c; ch++)
    {
      double sum = 0, sq = 0;
      for (int s = 0; s < n; s++)
        {
          const float *p = x + ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            sum += p[i];
        }
      double mean = sum / count;
      for (int s = 0; s < n; s++)
        {
          const float *p = x + ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            {
              double d = p[i] - mean;
              sq += d * d;
            }
        }
      double var = sq / count;
      float is = (float) (1.0 / sqrt (var + eps));
      invstd[ch] = is;
      float m = (float) mean, g = gamma[ch], b = beta[ch];
      for (int s = 0; s < n; s++)
        {
          size_t off = ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            {
              float xh = (x[off + i] - m) * is;
              if (xhat)
                xhat[off + i] = xh;
              y[off + i] = g * xh + b;
            }
        }
      if (rmean)
        {
          rmean[ch] = (float) ((1.0 - momentum) * rmean[ch] + momentum * mean);
          double unbiased = count > 1 ? var * count / (count - 1) : var;
          rvar[ch] = (float) ((1.0 - momentum) * rvar[ch] + momentum * unbiased);
        }
    }
}

static void
cpu_bn_forward_eval (const float *x, int n, int c, int hw, const float *gamma, const float *beta,
                     float eps, const float *rmean, const float *rvar, float *y)
{
#pragma omp parallel for if ((size_t) n * c * hw > PAR_MIN) num_threads (cpu_threads)
  for (int ch = 0; ch < c; ch++)
    {
      float is = 1.0f / sqrtf (rvar[ch] + eps);
      float a = gamma[ch] * is, b = beta[ch] - rmean[ch] * a;
      for (int s = 0; s < n; s++)
        {
          size_t off = ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            y[off + i] = a * x[off + i] + b;
        }
    }
}

static void
cpu_bn_backward (const float *dy, const float *xhat, const float *invstd, int n, int c, int hw,
                 const float *gamma, float *dgamma, float *dbeta, float *dx)
{
  double count = (double) n * hw;
#pragma omp parallel for if ((size_t) n * c * hw > PAR_MIN) num_threads (cpu_threads)
  for (int ch = 0; ch < c; ch++)
    {
      double sdy = 0, sdyx = 0;
      for (int s = 0; s < n; s++)
        {
          size_t off = ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            {
              sdy += dy[off + i];
              sdyx += (double) dy[off + i] * xhat[off + i];
            }
        }
      dgamma[ch] += (float) sdyx;
      dbeta[ch] += (float) sdy;
      float k = gamma[ch] * invstd[ch];
      float mdy = (float) (sdy / count), mdyx = (float) (sdyx / count);
      for (int s = 0; s < n; s++)
        {
          size_t off = ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            dx[off + i] = k * (dy[off + i] - mdy - xhat[off + i] * mdyx);
        }
    }
}

/* 64 flags (each 0 or 1) to one word, bit i = flag i: eight bytes at a
 * time, gathered by one multiplication. */
static inline uint64_t
flags_to_word (const uint8_t *m, int n)
{
  uint8_t full[64];
  if (n < 64)
    {
      memset (full, 0, sizeof full);
      memcpy (full, m, n);
      m = full;
    }
  uint64_t word = 0;
  for (int k = 0; k < 8; k++)
    {
      uint64_t x;
      memcpy (&x, m + 8 * k, 8);
      word |= ((x * 0x0102040810204080ull) >> 56) << (8 * k);
    }
  return word;
}

static void
cpu_lif_forward (const SnnLifParams *p, const float *x, gboolean x_repeats, float *v, int steps,
                 int64_t count, float *u, float *s, uint64_t *bits)
{
  const float lam = 1.0f - 1.0f / p->tau, vth = p->vth;
  const gboolean hard = p->reset == SNN_RESET_HARD;
  const int64_t words = snn_spike_words (count);
  for (int t = 0; t < steps; t++)
    {
      const float *xt = x_repeats ? x : x + (size_t) t * count;
      float *ut = u + (size_t) t * count, *st = s ? s + (size_t) t * count : NULL;
      /* Blocks of 64 neurons: one word of spike bits each. */
#pragma omp parallel for if (count > PAR_MIN) num_threads (cpu_threads)
      for (int64_t w = 0; w < words; w++)
        {
          const int64_t lo = w * 64;
          const int n = (int) MIN (64, count - lo);
          uint8_t fired[64];
          for (int k = 0; k < n; k++)
            {
              const int64_t i = lo + k;
              float ui = lam * v[i] + xt[i];
              float si = ui >= vth ? 1.0f : 0.0f;
              ut[i] = ui;
              if (s)
                st[i] = si;
              v[i] = hard ? ui * (1.0f - si) : ui - vth * si;
              fired[k] = ui >= vth;
            }
          if (bits)
            bits[(size_t) t * words + w] = flags_to_word (fired, n);
        }
    }
}

/* The surrogate derivative at x = u - vth, expanded per shape so that the
 * inner loops have no branch on the shape. */
#define SG_LOOP(BODY)                                                                \
  switch (p->surrogate)                                                              \
    {                                                                                \
    case SNN_SURROGATE_RECTANGLE:                                                    \
      { const float half = 0.5f * p->width, inv = 1.0f / p->width;                   \
        BODY (fabsf (x_) < half ? inv : 0.0f) break; }                               \
    case SNN_SURROGATE_TRIANGLE:                                                     \
      { const float g = p->width, inv2 = 1.0f / (p->width * p->width);               \
        BODY ((g - fabsf (x_) > 0.0f ? g - fabsf (x_) : 0.0f) * inv2) break; }                          \
    default:                                                                         \
      BODY (snn_surrogate_grad (p, x_)) break;                                       \
    }

static void
cpu_lif_backward (const SnnLifParams *p, const float *u, const float *ds, int steps, int64_t count,
                  gboolean temporal, float *dx)
{
  const float vth = p->vth, lam = 1.0f - 1.0f / p->tau;
  const gboolean hard = p->reset == SNN_RESET_HARD, detach = p->detach_reset;
  /* dL/dv[t] arrives from step t+1 as lam * dL/du[t+1], already in dx. */
  for (int t = steps - 1; t >= 0; t--)
    {
      const float *ut = u + (size_t) t * count, *dst = ds + (size_t) t * count;
      const float *next = temporal && t + 1 < steps ? dx + (size_t) (t + 1) * count : NULL;
      float *dxt = dx + (size_t) t * count;
#define BODY(SG)                                                                     \
  _Pragma ("omp parallel for if (count > PAR_MIN) num_threads (cpu_threads)")        \
  for (int64_t i = 0; i < count; i++)                                                \
    {                                                                                \
      float x_ = ut[i] - vth, sg = SG, dv = next ? lam * next[i] : 0.0f, du;          \
      if (!hard)                                                                     \
        du = dv + (detach ? dst[i] : dst[i] - vth * dv) * sg;                        \
      else                                                                           \
        {                                                                            \
          float si = ut[i] >= vth ? 1.0f : 0.0f;                                     \
          du = dv * (1.0f - si) + (detach ? dst[i] : dst[i] - ut[i] * dv) * sg;       \
        }                                                                            \
      dxt[i] = du;                                                                   \
    }
      SG_LOOP (BODY)
#undef BODY
    }
}

static void
cpu_ws_forward (const float *w, const float *gain, int rows, int fan, float g0, float eps,
                float *what, float *inv_scale)
{
  for (int o = 0; o < rows; o++)
    {
      const float *wr = w + (size_t) o * fan;
      double sum = 0, sq = 0;
      for (int j = 0; j < fan; j++)
        sum += wr[j];
      double mean = sum / fan;
      for (int j = 0; j < fan; j++)
        sq += (wr[j] - mean) * (wr[j] - mean);
      float inv = (float) (1.0 / sqrt (MAX (sq, (double) eps)));
      inv_scale[o] = inv;
      float a = g0 * gain[o] * inv, m = (float) mean;
      for (int j = 0; j < fan; j++)
        what[(size_t) o * fan + j] = a * (wr[j] - m);
    }
}

static void
cpu_ws_backward (const float *w, const float *gain, const float *dwhat, const float *inv_scale,
                 int rows, int fan, float g0, float eps, float *dw, float *dgain)
{
  for (int o = 0; o < rows; o++)
    {
      const float *wr = w + (size_t) o * fan, *g = dwhat + (size_t) o * fan;
      double sum = 0, sq = 0, gc = 0, gsum = 0;
      for (int j = 0; j < fan; j++)
        sum += wr[j];
      double mean = sum / fan;
      for (int j = 0; j < fan; j++)
        {
          double c = wr[j] - mean;
          sq += c * c;
          gc += g[j] * c;
          gsum += g[j];
        }
      double inv = inv_scale[o], a = (double) g0 * gain[o];
      dgain[o] += (float) (g0 * gc * inv);
      /* d/dc_j = a/s (g_j - c_j <g,c>/|c|^2); below eps the scale is a
       * constant and only the centring remains. Centring subtracts the mean
       * of d/dc, which is a/s mean(g) since the c_j sum to zero. */
      double k = sq > eps ? gc / sq : 0.0, dmean = a * inv * gsum / fan;
      for (int j = 0; j < fan; j++)
        dw[(size_t) o * fan + j] += (float) (a * inv * (g[j] - (wr[j] - mean) * k) - dmean);
    }
}

static void
cpu_pack_spikes (const float *s, int steps, int64_t count, uint64_t *bits)
{
  const int64_t words = snn_spike_words (count);
#pragma omp parallel for collapse (2) if ((int64_t) steps * count > PAR_MIN) num_threads (cpu_threads)
  for (int t = 0; t < steps; t++)
    for (int64_t w = 0; w < words; w++)
      {
        const float *st = s + (size_t) t * count + w * 64;
        int n = (int) MIN (64, count - w * 64);
        uint8_t fired[64];
        for (int i = 0; i < n; i++)
          fired[i] = st[i] != 0.0f;
        bits[(size_t) t * words + w] = flags_to_word (fired, n);
      }
}

/* The eight floats (0 or 1) of every byte of spike bits. */
static float spike_byte_table[256][8];

static void
init_spike_table (void)
{
  for (int b = 0; b < 256; b++)
    for (int i = 0; i < 8; i++)
      spike_byte_table[b][i] = (float) ((b >> i) & 1);
}

static void
cpu_unpack_spikes (const uint64_t *bits, int steps, int64_t count, float *s)
{
  const int64_t words = snn_spike_words (count);
#pragma omp parallel for collapse (2) if ((int64_t) steps * count > PAR_MIN) num_threads (cpu_threads)
  for (int t = 0; t < steps; t++)
    for (int64_t w = 0; w < words; w++)
      {
        float *st = s + (size_t) t * count + w * 64;
        int n = (int) MIN (64, count - w * 64);
        uint64_t word = bits[(size_t) t * words + w];
        if (n == 64)
          for (int k = 0; k < 8; k++)
            memcpy (st + 8 * k, spike_byte_table[(word >> (8 * k)) & 0xff], 8 * sizeof (float));
        else
          for (int i = 0; i < n; i++)
            st[i] = (float) ((word >> i) & 1);
      }
}

static gboolean
cpu_spike_linear (const float *s, int rows, int in, int out, const float *wt, const float *bias, int *fired_idx,
                  float *y)
{
  /* Row r's fired inputs are fired_idx[start[r] .. start[r + 1]); start
   * follows the indices. Above a fifth non-zero, a GEMM is faster. */
  const int64_t n = (int64_t) rows * in, cap = n / 5;
  int *start = fired_idx + cap, total = 0;
  for (int r = 0; r < rows; r++)
    {
      start[r] = total;
      const float *sr = s + (size_t) r * in;
      for (int j0 = 0; j0 < in; j0 += 8)
        {
          /* Spikes are rare: skip eight zeros (all bits clear) at once. */
          const int j1 = MIN (in, j0 + 8);
          uint32_t any = 0, word;
          for (int j = j0; j < j1; j++)
            memcpy (&word, sr + j, 4), any |= word;
          if (!any)
            continue;
          for (int j = j0; j < j1; j++)
            if (sr[j] != 0.0f)
              {
                if (total == cap)
                  return FALSE;
                fired_idx[total++] = j;
              }
        }
    }
  start[rows] = total;
  /* Blocks of 32 outputs, so that a block of W^T (in x 32) stays in cache
   * while every row adds its fired inputs' parts of it. */
  enum { BLOCK = 32 }; /* 8 SSE registers of sums */
  const int blocks = (out + BLOCK - 1) / BLOCK;
#pragma omp parallel for if ((int64_t) total * out > PAR_MIN * 4) num_threads (cpu_threads)
  for (int b = 0; b < blocks; b++)
    {
      const int c0 = b * BLOCK, nc = MIN (BLOCK, out - c0);
      for (int r = 0; r < rows; r++)
        {
          /* Whole blocks even at the end of a row: what lies past it (the
           * next row, or the slack after W^T) lands in unused sums. Vector
           * types keep the 64 sums in registers. */
          typedef float v4 __attribute__ ((vector_size (16)));
          v4 sum[BLOCK / 4] = { { 0 } }, p;
          for (int k = start[r]; k < start[r + 1]; k++)
            {
              const float *w = wt + (size_t) fired_idx[k] * out + c0;
              for (int q = 0; q < BLOCK / 4; q++)
                {
                  memcpy (&p, w + 4 * q, sizeof p);
                  sum[q] += p;
                }
            }
          float acc[BLOCK];
          for (int q = 0; q < BLOCK / 4; q++)
            memcpy (acc + 4 * q, &sum[q], sizeof p);
          float *yr = y + (size_t) r * out + c0;
          for (int c = 0; c < nc; c++)
            yr[c] = bias ? acc[c] + bias[c0 + c] : acc[c];
        }
    }
  return TRUE;
}

static void
cpu_transpose (const float *src, int rows, int cols, float *dst)
{
  enum { TILE = 16 };
  const int row_tiles = (rows + TILE - 1) / TILE;
#pragma omp parallel for if ((int64_t) rows * cols > PAR_MIN) num_threads (cpu_threads)
  for (int t = 0; t < row_tiles; t++)
    {
      const int r0 = t * TILE, r1 = MIN (rows, r0 + TILE);
      for (int c0 = 0; c0 < cols; c0 += TILE)
        {
          const int c1 = MIN (cols, c0 + TILE);
          for (int c = c0; c < c1; c++)
            for (int r = r0; r < r1; r++)
              dst[(size_t) c * rows + r] = src[(size_t) r * cols + c];
        }
    }
}

static void
cpu_mul_mask (const float *x, const float *mask, int steps, int batch, int64_t count, float *y)
{
#pragma omp parallel for collapse (2) if ((int64_t) steps * batch * count > PAR_MIN) num_threads (cpu_threads)
  for (int t = 0; t < steps; t++)
    for (int b = 0; b < batch; b++)
      {
        size_t off = ((size_t) t * batch + b) * count;
        const float *m = mask + (size_t) b * count;
        for (int64_t i = 0; i < count; i++)
          y[off + i] = x[off + i] * m[i];
      }
}

static void
cpu_axpy (int64_t n, float a, const float *x, float *y)
{
  for (int64_t i = 0; i < n; i++)
    y[i] += a * x[i];
}

static void
cpu_sgd_update (float *w, const float *g, float *buf, int64_t n, float lr, float mom, float wd, gboolean first)
{
#pragma omp parallel for if (n > PAR_MIN) num_threads (cpu_threads)
  for (int64_t j = 0; j < n; j++)
    {
      float d = g[j] + wd * w[j];
      if (mom != 0.0f)
        {
          buf[j] = first ? d : mom * buf[j] + d;
          d = buf[j];
        }
      w[j] -= lr * d;
    }
}

static void
cpu_adam_update (float *w, const float *g, float *m, float *v, int64_t n, float lr, float b1, float b2, float eps,
                 float wd, double c1, double c2)
{
#pragma omp parallel for if (n > PAR_MIN) num_threads (cpu_threads)
  for (int64_t j = 0; j < n; j++)
    {
      float d = g[j] + wd * w[j];
      m[j] = b1 * m[j] + (1 - b1) * d;
      v[j] = b2 * v[j] + (1 - b2) * d * d;
      double mh = m[j] / c1, vh = v[j] / c2;
      w[j] -= (float) (lr * mh / (sqrt (vh) + eps));
    }
}

static void
cpu_scale (int64_t n, float a, const float *x, float *y)
{
#pragma omp parallel for if (n > PAR_MIN) num_threads (cpu_threads)
  for (int64_t i = 0; i < n; i++)
    y[i] = a * x[i];
}

static double
cpu_dot (int64_t n, const float *a, const float *b)
{
  double acc = 0;
  for (int64_t i = 0; i < n; i++)
    acc += (double) a[i] * b[i];
  return acc;
}

static void
cpu_sum_steps (const float *x, int steps, int64_t count, gboolean accumulate, float *y)
{
  if (!accumulate)
    memcpy (y, x, count * sizeof (float));
  for (int t = accumulate ? 0 : 1; t < steps; t++)
    {
      const float *xt = x + (size_t) t * count;
      for (int64_t i = 0; i < count; i++)
        y[i] += xt[i];
    }
}

static void
cpu_channel_mean (const float *x, int n, int c, int hw, float *mean)
{
  for (int ch = 0; ch < c; ch++)
    {
      double sum = 0;
      for (int s = 0; s < n; s++)
        {
          const float *p = x + ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            sum += p[i];
        }
      mean[ch] = (float) (sum / ((double) n * hw));
    }
}

static void
cpu_bn_repeat_running (const float *invstd, const float *mean, int c, int count, float eps,
                       float momentum, int times, float *rmean, float *rvar)
{
  for (int ch = 0; ch < c; ch++)
    {
      double var = 1.0 / ((double) invstd[ch] * invstd[ch]) - eps;
      double unbiased = count > 1 ? var * count / (count - 1) : var;
      for (int k = 0; k < times; k++)
        {
          rmean[ch] = (float) ((1.0 - momentum) * rmean[ch] + momentum * mean[ch]);
          rvar[ch] = (float) ((1.0 - momentum) * rvar[ch] + momentum * unbiased);
        }
    }
}

static const SnnBackend cpu_backend = {
  .name = "cpu",
  .alloc = cpu_alloc,
  .free = cpu_free,
  .upload = cpu_copy,
  .download = cpu_copy,
  .zero = cpu_zero,
  .copy = cpu_copy,
  .gemm = cpu_gemm,
  .add_bias_rows = cpu_add_bias_rows,
  .bias_grad_rows = cpu_bias_grad_rows,
  .add_bias_channels = cpu_add_bias_channels,
  .bias_grad_channels = cpu_bias_grad_channels,
  .im2col = cpu_im2col,
  .col2im = cpu_col2im,
  .cn_to_nchw = cpu_cn_to_nchw,
  .nchw_to_cn = cpu_nchw_to_cn,
  .avgpool_forward = cpu_avgpool_forward,
  .avgpool_backward = cpu_avgpool_backward,
  .global_avgpool_forward = cpu_global_avgpool_forward,
  .global_avgpool_backward = cpu_global_avgpool_backward,
  .bn_forward_train = cpu_bn_forward_train,
  .bn_forward_eval = cpu_bn_forward_eval,
  .bn_backward = cpu_bn_backward,
  .lif_forward = cpu_lif_forward,
  .lif_backward = cpu_lif_backward,
  .ws_forward = cpu_ws_forward,
  .ws_backward = cpu_ws_backward,
  .mul_mask = cpu_mul_mask,
  .spike_linear = cpu_spike_linear,
  .transpose = cpu_transpose,
  .pack_spikes = cpu_pack_spikes,
  .unpack_spikes = cpu_unpack_spikes,
  .axpy = cpu_axpy,
  .scale = cpu_scale,
  .sgd_update = cpu_sgd_update,
  .adam_update = cpu_adam_update,
  .dot = cpu_dot,
  .sum_steps = cpu_sum_steps,
  .channel_mean = cpu_channel_mean,
  .bn_repeat_running = cpu_bn_repeat_running,
};

const SnnBackend *
snn_backend_cpu (void)
{
  init_threads ();
  return &cpu_backend;
}

static void
init_threads (void)
{
  static gsize done = 0;
  if (!g_once_init_enter (&done))
    return;
  const char *env = g_getenv ("SNNWB_THREADS");
  int n = env ? atoi (env) : (int) g_get_num_processors ();
#ifndef _OPENMP
  /* Without OpenMP the GEMMs still use both cores through OpenBLAS. */
  openblas_set_num_threads (MAX (n, 1));
  n = 1;
#else
  openblas_set_num_threads (1);
#endif
  cpu_threads = CLAMP (n, 1, 64);
  init_spike_table ();
  g_once_init_leave (&done, 1);
}

int
snn_backend_cpu_threads (void)
{
  init_threads ();
  return cpu_threads;
}

char *
snn_backend_cpu_describe (void)
{
  init_threads ();
  return g_strdup_printf ("%s, core %s, %d thread%s", openblas_get_config (), openblas_get_corename (), cpu_threads,
                          cpu_threads == 1 ? "" : "s");
}

