/* The CPU backend: GEMMs on OpenBLAS, everything else plain loops.
 *
 * One thread pool (pool.h) does all the work: OpenBLAS runs single-threaded
 * inside the pool's chunks, which split each GEMM into bands and each
 * elementwise loop into ranges. Chunk boundaries depend on the shapes
 * alone, so results do not depend on the number of threads. */
#include "backend-cpu.h"
#include "pool.h"
#include "surrogate.h" /* lif-math.h, its codes checked against SnnSurrogate */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
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

/* GEMMs are split into bands of rows (or columns) of C, one chunk each.
 * Every band packs the whole other operand again, so a band is at least
 * GEMM_BAND wide, which keeps that repacking to a few per cent of the
 * band's flops, and at least GEMM_CHUNK_FLOPS of work. */
#define GEMM_CHUNK_FLOPS 4e6
#define GEMM_BAND 256
#define GEMM_BAND_MIN 64
#define GEMM_MAX_CHUNKS 64

typedef struct {
  gboolean ta, tb, split_m;
  int m, n, k, len;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int lda, ldb, ldc;
  int64_t sa, sb, sc;
  int bands;              /* per GEMM, for batches */
} GemmJob;

static void warm_blas (void);

static void
gemm_band_of (const GemmJob *g, int p, int parts)
{
  warm_blas ();
  const CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
  int64_t lo64, hi64;
  snn_pool_range (g->len, 16, p, parts, &lo64, &hi64);
  const int lo = (int) lo64, hi = (int) hi64;
  if (hi <= lo)
    return;
  if (g->split_m)
    cblas_sgemm (CblasRowMajor, ta, tb, hi - lo, g->n, g->k, g->alpha, g->ta ? g->a + lo : g->a + (size_t) lo * g->lda,
                 g->lda, g->b, g->ldb, g->beta, g->c + (size_t) lo * g->ldc, g->ldc);
  else
    cblas_sgemm (CblasRowMajor, ta, tb, g->m, hi - lo, g->k, g->alpha, g->a, g->lda,
                 g->tb ? g->b + (size_t) lo * g->ldb : g->b + lo, g->ldb, g->beta, g->c + lo, g->ldc);
}

static void
gemm_band (void *data, int p, int parts)
{
  gemm_band_of (data, p, parts);
}

/* Bands of one GEMM: at least GEMM_BAND wide and GEMM_CHUNK_FLOPS each;
 * from the shape alone. */
static int
gemm_bands (int m, int n, int k, int most)
{
  const int len = MAX (m, n);
  double flops = 2.0 * m * n * k;
  /* A narrow GEMM with a long inner dimension (a convolution's weight
   * gradient) still gets a few bands of GEMM_BAND_MIN: some repacking
   * costs less than running it on one thread. */
  int bands = MAX (len / GEMM_BAND, MIN (len / GEMM_BAND_MIN, 4));
  return MAX (1, (int) MIN (MIN (flops / GEMM_CHUNK_FLOPS, (double) bands), (double) most));
}

/* Chunk q: band q % bands of GEMM q / bands */
static void
gemm_batch_chunk (void *data, int q, int chunks)
{
  GemmJob g = *(const GemmJob *) data;
  const int i = q / g.bands;
  g.a += i * g.sa, g.b += i * g.sb, g.c += i * g.sc;
  gemm_band_of (&g, q % g.bands, g.bands);
}

static void
cpu_gemm_batched (gboolean ta, gboolean tb, int m, int n, int k, float alpha, const float *a, int lda, int64_t sa,
                  const float *b, int ldb, int64_t sb, float beta, float *c, int ldc, int64_t sc, int count)
{
  if (m == 0 || n == 0 || count <= 0)
    return;
  gboolean split_m = m >= n;
  int bands = gemm_bands (m, n, k, MAX (1, GEMM_MAX_CHUNKS / count));
  GemmJob g = { ta, tb, split_m, m, n, k, split_m ? m : n, alpha, beta, a, b, c, lda, ldb, ldc, sa, sb, sc, bands };
  snn_pool_run (count * bands, gemm_batch_chunk, &g);
}

/* A GEMM whose C is too small to split into bands but whose inner
 * dimension is long (a convolution's weight gradient: out_ch x k*k*in_ch
 * over every output pixel of the batch) is split along k instead: chunk i
 * computes alpha * A[:, k_i] B[k_i, :] into a partial C of its own, and the
 * partials are then added in chunk order. Chunks are at least
 * GEMM_K_CHUNK long and GEMM_K_CHUNK_FLOPS of work. */
#define GEMM_K_CHUNK 1024
#define GEMM_K_CHUNK_FLOPS 1e6

typedef struct {
  GemmJob g;
  int parts;
  float *partial;         /* parts x m x n */
} GemmSplitK;

static int
gemm_k_parts (int m, int n, int k)
{
  double flops = 2.0 * m * n * k;
  return (int) MAX (1.0, MIN (MIN ((double) (k / GEMM_K_CHUNK), flops / GEMM_K_CHUNK_FLOPS), GEMM_MAX_CHUNKS));
}

static void
gemm_k_part (void *data, int p, int parts)
{
  const GemmSplitK *j = data;
  const GemmJob *g = &j->g;
  warm_blas ();
  int64_t lo, hi;
  snn_pool_range (g->k, 16, p, parts, &lo, &hi);
  float *c = j->partial + (size_t) p * g->m * g->n;
  if (hi <= lo)
    {
      memset (c, 0, (size_t) g->m * g->n * sizeof (float));
      return;
    }
  const float *a = g->ta ? g->a + lo * g->lda : g->a + lo, *b = g->tb ? g->b + lo : g->b + lo * g->ldb;
  cblas_sgemm (CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, g->m, g->n,
               (int) (hi - lo), g->alpha, a, g->lda, b, g->ldb, 0.0f, c, g->n);
}

/* Rows [lo, hi) of C: beta C plus the partials, in chunk order. */
static void
gemm_k_sum (void *data, int64_t lo, int64_t hi)
{
  const GemmSplitK *j = data;
  const GemmJob *g = &j->g;
  const size_t plane = (size_t) g->m * g->n;
  for (int64_t r = lo; r < hi; r++)
    {
      float *c = g->c + r * g->ldc;
      const float *p0 = j->partial + r * g->n;
      for (int x = 0; x < g->n; x++)
        {
          float sum = g->beta == 0.0f ? p0[x] : g->beta * c[x] + p0[x];
          for (int p = 1; p < j->parts; p++)
            sum += p0[p * plane + x];
          c[x] = sum;
        }
    }
}

/* Scratch memory per thread, kept and grown as needed, so that a training
 * step allocates once: the partials of a k split (the submitting thread's)
 * and the patch gradients of a convolution's image group (each chunk's). */
typedef struct {
  float *data;
  size_t count;
} Scratch;

static void
scratch_free (gpointer p)
{
  Scratch *s = p;
  g_free (s->data);
  g_free (s);
}

static GPrivate gemm_scratch = G_PRIVATE_INIT (scratch_free);
static GPrivate conv_scratch = G_PRIVATE_INIT (scratch_free);

static float *
scratch_floats (GPrivate *key, size_t count)
{
  Scratch *s = g_private_get (key);
  if (!s)
    {
      s = g_new0 (Scratch, 1);
      g_private_set (key, s);
    }
  if (count > s->count)
    {
      g_free (s->data);
      s->data = g_malloc (count * sizeof (float));
      s->count = count;
    }
  return s->data;
}

static void
cpu_gemm (gboolean ta, gboolean tb, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
  if (m == 0 || n == 0)
    return;
  /* Bands of rows (or columns) of C: each element is computed exactly as
   * by one call, and the bands depend on the shape alone. */
  gboolean split_m = m >= n;
  GemmJob g = { ta, tb, split_m, m, n, k, split_m ? m : n, alpha, beta, a, b, c, lda, ldb, ldc };
  int bands = gemm_bands (m, n, k, GEMM_MAX_CHUNKS), parts = bands == 1 ? gemm_k_parts (m, n, k) : 1;
  if (parts == 1)
    {
      snn_pool_run (bands, gemm_band, &g);
      return;
    }
  GemmSplitK j = { g, parts, scratch_floats (&gemm_scratch, (size_t) parts * m * n) };
  snn_pool_run (parts, gemm_k_part, &j);
  snn_pool_for (m, (double) n * parts, 1, gemm_k_sum, &j);
}

/* Items in [lo, hi) of a job (pool.h): each backend loop below is such a
 * range function over a struct of its arguments, then the call that splits
 * it. Every item writes its own outputs, so the split cannot change them. */
#ifdef SNN_TARGET_CLONES
/* Built for AVX2 and AVX-512 as well as the baseline, chosen at start-up. */
#define SNN_CLONES __attribute__ ((target_clones ("default", "avx2", "avx512f")))
#else
#define SNN_CLONES
#endif
#define RANGE(name, Args) SNN_CLONES static void name (void *data_, int64_t lo, int64_t hi) { const Args *A = data_;
#define END_RANGE }

typedef struct { float *y; const float *bias; const float *dy; float *db; int rows, cols; } RowsArgs;

RANGE (add_bias_rows_range, RowsArgs)
  for (int64_t r = lo; r < hi; r++)
    {
      float *yr = A->y + (size_t) r * A->cols;
      for (int c = 0; c < A->cols; c++)
        yr[c] += A->bias[c];
    }
END_RANGE

static void
cpu_add_bias_rows (float *y, const float *bias, int rows, int cols)
{
  RowsArgs a = { .y = y, .bias = bias, .rows = rows, .cols = cols };
  snn_pool_for (rows, cols, 1, add_bias_rows_range, &a);
}

/* Columns [lo, hi): each column's sum runs over the rows in order. */
RANGE (bias_grad_rows_range, RowsArgs)
  /* Columns in blocks, so the double accumulators live on the stack. */
  enum { BLOCK = 1024 };
  double acc[BLOCK];
  for (int64_t c0 = lo; c0 < hi; c0 += BLOCK)
    {
      int nc = (int) MIN (BLOCK, hi - c0);
      memset (acc, 0, nc * sizeof (double));
      for (int r = 0; r < A->rows; r++)
        {
          const float *d = A->dy + (size_t) r * A->cols + c0;
          for (int c = 0; c < nc; c++)
            acc[c] += d[c];
        }
      for (int c = 0; c < nc; c++)
        A->db[c0 + c] += (float) acc[c];
    }
END_RANGE

static void
cpu_bias_grad_rows (float *db, const float *dy, int rows, int cols)
{
  RowsArgs a = { .dy = dy, .db = db, .rows = rows, .cols = cols };
  snn_pool_for (cols, rows, 64, bias_grad_rows_range, &a);
}

typedef struct { float *y; const float *x; const float *bias; float *db; int n, c, hw; } ChanArgs;

/* Planes [lo, hi) of y [n][c][hw] */
RANGE (add_bias_channels_range, ChanArgs)
  for (int64_t p = lo; p < hi; p++)
    {
      float *y = A->y + (size_t) p * A->hw;
      const float b = A->bias[p % A->c];
      for (int i = 0; i < A->hw; i++)
        y[i] += b;
    }
END_RANGE

static void
cpu_add_bias_channels (float *y, const float *bias, int n, int c, int hw)
{
  ChanArgs a = { .y = y, .bias = bias, .n = n, .c = c, .hw = hw };
  snn_pool_for ((int64_t) n * c, hw, 1, add_bias_channels_range, &a);
}

/* Sums over a channel's planes in double, as LANES running sums (one per
 * position modulo LANES) added in a fixed order at the end: one sum would
 * make every addition wait for the one before. LANES_ADD adds EXPR, an
 * expression of the position i, for the hw positions of a plane. */
enum { LANES = 8 };

#define LANES_ADD(lane, hw, EXPR)                                                       \
  do                                                                                    \
    {                                                                                   \
      int i_ = 0;                                                                       \
      for (; i_ + LANES <= (hw); i_ += LANES)                                           \
        for (int l_ = 0; l_ < LANES; l_++)                                              \
          {                                                                             \
            const int i = i_ + l_;                                                      \
            (lane)[l_] += (EXPR);                                                       \
          }                                                                             \
      for (; i_ < (hw); i_++)                                                           \
        {                                                                               \
          const int i = i_;                                                             \
          (lane)[i_ % LANES] += (EXPR);                                                 \
        }                                                                               \
    }                                                                                   \
  while (0)

static inline double
lanes_total (const double lane[LANES])
{
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* Channels [lo, hi) */
RANGE (bias_grad_channels_range, ChanArgs)
  for (int64_t ch = lo; ch < hi; ch++)
    {
      double lane[LANES] = { 0 };
      for (int s = 0; s < A->n; s++)
        {
          const float *p = A->x + ((size_t) s * A->c + ch) * A->hw;
          LANES_ADD (lane, A->hw, p[i]);
        }
      A->db[ch] += (float) lanes_total (lane);
    }
END_RANGE

static void
cpu_bias_grad_channels (float *db, const float *dy, int n, int c, int hw)
{
  ChanArgs a = { .x = dy, .db = db, .n = n, .c = c, .hw = hw };
  snn_pool_for (c, (double) n * hw, 1, bias_grad_channels_range, &a);
}

/* One output row of a patch: src is an input row (or NULL for padding).
 * Rows are short (tens of floats) and the padding a float or two, so plain
 * loops beat calls to memset and memcpy. */
static inline void
im2col_row (const float *src, int w, int ow, int stride, int pad, int kj, float *d)
{
  if (!src)
    {
      for (int oj = 0; oj < ow; oj++)
        d[oj] = 0.0f;
      return;
    }
  if (stride == 1)
    {
      /* jj = oj - pad + kj must lie in [0, w): one copy between two fills. */
      int lo = CLAMP (pad - kj, 0, ow), hi = CLAMP (w + pad - kj, lo, ow);
      const float *s = src - pad + kj;
      for (int oj = 0; oj < lo; oj++)
        d[oj] = 0.0f;
      for (int oj = lo; oj < hi; oj++)
        d[oj] = s[oj];
      for (int oj = hi; oj < ow; oj++)
        d[oj] = 0.0f;
      return;
    }
  for (int oj = 0; oj < ow; oj++)
    {
      int jj = oj * stride - pad + kj;
      d[oj] = (jj >= 0 && jj < w) ? src[jj] : 0.0f;
    }
}

typedef struct {
  const float *x; float *col;
  int n, c, h, w, k, stride, pad, oh, ow;
  int row0;               /* col holds rows from row0 on */
} ConvArgs;

/* One (channel, ki, kj) row of the patches of one image, for stride 1 and
 * output as wide as the input: then the row is the image shifted by
 * (ki - pad, kj - pad), so one copy of the rows that land inside, then
 * zeros at the ends of each row where the shift wrapped around, and zero
 * rows above and below. */
static inline void
im2col_shifted (const float *img, int h, int w, int oh, int pad, int ki, int kj, float *dst)
{
  const int ow = w, oi_lo = CLAMP (pad - ki, 0, oh), oi_hi = CLAMP (h + pad - ki, oi_lo, oh);
  const int64_t shift = (int64_t) (ki - pad) * w + (kj - pad);
  int64_t x_lo = (int64_t) oi_lo * ow, x_hi = (int64_t) oi_hi * ow;
  /* The copy stops at the image's ends: what it leaves out there is a
   * wrapped column of the first or last row, zeroed below. */
  int64_t c_lo = MAX (x_lo, -shift), c_hi = MIN (x_hi, (int64_t) h * w - shift);
  if (x_lo > 0)
    memset (dst, 0, (size_t) x_lo * sizeof (float));
  if (c_hi > c_lo)
    memcpy (dst + c_lo, img + c_lo + shift, (size_t) (c_hi - c_lo) * sizeof (float));
  if (x_hi < (int64_t) oh * ow)
    memset (dst + x_hi, 0, (size_t) ((int64_t) oh * ow - x_hi) * sizeof (float));
  /* Column by column (a few at most, the padding's width): row by row,
   * the compiler would make each row's few zeros a call to memset. */
  const int left = CLAMP (pad - kj, 0, ow), right = CLAMP (w + pad - kj, left, ow);
  for (int oj = 0; oj < left; oj++)
    for (int oi = oi_lo; oi < oi_hi; oi++)
      dst[(size_t) oi * ow + oj] = 0.0f;
  for (int oj = right; oj < ow; oj++)
    for (int oi = oi_lo; oi < oi_hi; oi++)
      dst[(size_t) oi * ow + oj] = 0.0f;
}

/* Rows [lo, hi) of col, a row per (channel, ki, kj) */
RANGE (im2col_range, ConvArgs)
  const int n = A->n, c = A->c, h = A->h, w = A->w, k = A->k, oh = A->oh, ow = A->ow;
  const size_t np = (size_t) n * oh * ow;
  const gboolean shifted = A->stride == 1 && ow == w;
  for (int64_t r = lo; r < hi; r++)
    {
      const int ch = (int) (r / (k * k)), ki = (int) (r / k % k), kj = (int) (r % k);
      float *row = A->col + (size_t) (r - A->row0) * np;
      for (int s = 0; s < n; s++)
        {
          const float *img = A->x + ((size_t) s * c + ch) * h * w;
          float *dst = row + (size_t) s * oh * ow;
          if (shifted)
            {
              im2col_shifted (img, h, w, oh, A->pad, ki, kj, dst);
              continue;
            }
          for (int oi = 0; oi < oh; oi++)
            {
              int ii = oi * A->stride - A->pad + ki;
              im2col_row (ii >= 0 && ii < h ? img + (size_t) ii * w : NULL, w, ow, A->stride, A->pad, kj, dst + oi * ow);
            }
        }
    }
END_RANGE

static void
cpu_im2col (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh,
            int ow, float *col)
{
  ConvArgs a = { .x = x, .col = col, .n = n, .c = c, .h = h, .w = w, .k = k, .stride = stride, .pad = pad,
                 .oh = oh, .ow = ow };
  snn_pool_for ((int64_t) c * k * k, (double) n * oh * ow, 1, im2col_range, &a);
}

/* One image's dx from the patch gradients dcol ([c*k*k][np], the image's
 * columns from s * oh*ow), overwriting it: each element gets its terms in
 * (ki, kj) order, the same bits in every branch below.
 * - Stride 1 with the output as large as the input (and a small plane):
 *   each tap (ki, kj) is the plane shifted, so it is added as one run over
 *   the rows that land inside, times a 0/1 mask of the columns that do (a
 *   zero term leaves a finite sum as it is): long vectors instead of rows of a
 *   few floats. The run starts and ends inside the plane.
 * - Other stride-1 shapes: each row of dx gathers the rows that land on
 *   it, while it stays in the L1 cache.
 * - Otherwise each row of dcol is added where it came from. */
enum { COL2IM_MASK = 16384 };

SNN_CLONES static void
col2im_image (const float *dcol, size_t np, int s, int c, int h, int w, int k, int stride, int pad, int oh, int ow,
              float *img)
{
  const size_t plane = (size_t) h * w;
  const gboolean shifted = stride == 1 && ow == w && oh == h && (size_t) k * plane <= COL2IM_MASK;
  float mask[COL2IM_MASK];
  for (int kj = 0; kj < k && shifted; kj++)
    for (size_t i = 0; i < plane; i++)
      {
        const int jj = (int) (i % w) + kj - pad;
        mask[kj * plane + i] = jj >= 0 && jj < w ? 1.0f : 0.0f;
      }
  for (int ch = 0; ch < c; ch++, img += plane)
    {
      const float *rows = dcol + (size_t) ch * k * k * np + (size_t) s * oh * ow;
      if (stride != 1 || shifted)
        for (size_t i = 0; i < plane; i++)
          img[i] = 0.0f;
      for (int ki = 0; ki < k && shifted; ki++)
        {
          /* Output rows [o0, o1) land on dx rows o0 + ki - pad on. */
          const int o0 = MAX (0, pad - ki), o1 = MIN (oh, h + pad - ki);
          for (int kj = 0; kj < k && o1 > o0; kj++)
            {
              const ptrdiff_t shift = (ptrdiff_t) (ki - pad) * w + (kj - pad);
              const ptrdiff_t lo = (ptrdiff_t) o0 * w + MAX (0, pad - kj);
              const ptrdiff_t hi = (ptrdiff_t) o1 * w - MAX (0, kj - pad);
              const float *src = rows + (size_t) (ki * k + kj) * np, *m = mask + (size_t) kj * plane;
              float *d = img + shift;
              for (ptrdiff_t i = lo; i < hi; i++)
                d[i] += m[i] * src[i];
            }
        }
      for (int ii = 0; ii < h && stride == 1 && !shifted; ii++)
        {
          float *d = img + (size_t) ii * w;
          for (int jj = 0; jj < w; jj++)
            d[jj] = 0.0f;
          for (int ki = 0; ki < k; ki++)
            {
              const int oi = ii + pad - ki;
              if (oi < 0 || oi >= oh)
                continue;
              for (int kj = 0; kj < k; kj++)
                {
                  const float *sr = rows + (size_t) (ki * k + kj) * np + (size_t) oi * ow;
                  int lo = CLAMP (pad - kj, 0, ow), hi = CLAMP (w + pad - kj, lo, ow);
                  float *dd = d - pad + kj;
                  for (int oj = lo; oj < hi; oj++)
                    dd[oj] += sr[oj];
                }
            }
        }
      for (int ki = 0; ki < k && stride != 1; ki++)
        for (int kj = 0; kj < k; kj++)
          {
            const float *src = rows + (size_t) (ki * k + kj) * np;
            for (int oi = 0; oi < oh; oi++)
              {
                int ii = oi * stride - pad + ki;
                if (ii < 0 || ii >= h)
                  continue;
                float *d = img + (size_t) ii * w;
                const float *sr = src + (size_t) oi * ow;
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

/* Images per group of a convolution's per-group ops: at least GEMM_BAND
 * output pixels, at most GEMM_MAX_CHUNKS groups. From the shape alone. */
static int
conv_group (int n, int hw)
{
  int per = MAX (1, (GEMM_BAND + hw - 1) / hw);
  return MAX (per, (n + GEMM_MAX_CHUNKS - 1) / GEMM_MAX_CHUNKS);
}

/* A convolution's shape and its groups of per images (conv_group): what
 * the three per-group ops below share. */
typedef struct {
  int n, c, h, wd, o, k, stride, pad, oh, ow, per;
} ConvGroups;

static ConvGroups
conv_groups (int n, int c, int h, int wd, int o, int k, int stride, int pad, int oh, int ow)
{
  return (ConvGroups) { n, c, h, wd, o, k, stride, pad, oh, ow, conv_group (n, oh * ow) };
}

/* Images [s0, s1) of group q. */
static void
group_images (const ConvGroups *g, int64_t q, int *s0, int *s1)
{
  *s0 = (int) q * g->per;
  *s1 = MIN (g->n, *s0 + g->per);
}

/* Patch rows [r0, r1) of images [s0, s1) of x into col ([r1 - r0][pixels]). */
static void
group_patches (const ConvGroups *g, const float *x, int s0, int s1, int64_t r0, int64_t r1, float *col)
{
  ConvArgs patches = { .x = x + (size_t) s0 * g->c * g->h * g->wd, .col = col, .n = s1 - s0, .c = g->c, .h = g->h,
                       .w = g->wd, .k = g->k, .stride = g->stride, .pad = g->pad, .oh = g->oh, .ow = g->ow,
                       .row0 = (int) r0 };
  im2col_range (&patches, r0, r1);
}

/* A convolution's forward pass in groups of whole images, a chunk each:
 * the group's patches into the chunk's own scratch (it stays in the
 * cache, where the GEMM then packs it), W times them, and the bias. A
 * group of one image (a large one) writes its place in y directly; a
 * group of small images goes through a scratch of [o][pixels] that is
 * copied to each image's place. Every element is computed as by one GEMM
 * over all images, plus its bias. */
typedef struct {
  const float *x, *w, *bias;
  float *y;
  ConvGroups g;
} ConvForward;

static GPrivate conv_out_scratch = G_PRIVATE_INIT (scratch_free);

/* One image's planes [o][hw] from m (row stride ld; NULL: already in
 * place), plus the bias of each plane (NULL: none). */
SNN_CLONES static void
conv_image_out (const float *m, size_t ld, const float *bias, int o, int hw, float *y)
{
  for (int ch = 0; ch < o; ch++)
    {
      float *d = y + (size_t) ch * hw;
      if (m)
        memcpy (d, m + ch * ld, (size_t) hw * sizeof (float));
      if (bias)
        for (int i = 0; i < hw; i++)
          d[i] += bias[ch];
    }
}

static void
conv_forward_chunk (void *data, int q, int chunks)
{
  const ConvForward *A = data;
  const ConvGroups *G = &A->g;
  warm_blas ();
  const int hw = G->oh * G->ow, kk = G->c * G->k * G->k;
  int s0, s1;
  group_images (G, q, &s0, &s1);
  const int g = s1 - s0, cols = g * hw;
  float *col = scratch_floats (&conv_scratch, (size_t) kk * cols);
  group_patches (G, A->x, s0, s1, 0, kk, col);
  const size_t image = (size_t) G->o * hw;
  float *out = g == 1 ? A->y + s0 * image : scratch_floats (&conv_out_scratch, (size_t) G->o * cols);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, G->o, cols, kk, 1.0f, A->w, kk, col, cols, 0.0f, out,
               cols);
  for (int s = s0; s < s1; s++)
    conv_image_out (g == 1 ? NULL : out + (size_t) (s - s0) * hw, (size_t) cols, A->bias, G->o, hw,
                    A->y + s * image);
}

static void
cpu_conv_forward (const float *x, const float *w, const float *bias, int n, int c, int h, int wd, int o, int k,
                  int stride, int pad, int oh, int ow, float *col, float *y)
{
  if (n <= 0)
    return;
  (void) col; /* the chunks' own scratch instead */
  ConvForward a = { x, w, bias, y, conv_groups (n, c, h, wd, o, k, stride, pad, oh, ow) };
  snn_pool_run ((n + a.g.per - 1) / a.g.per, conv_forward_chunk, &a);
}

/* A convolution's weight gradient, dw += dy patches^T, without the patches
 * of all images at once: a chunk takes a band of dw's columns (patch rows)
 * and a part of the image groups, and for each group builds just its
 * band's patch rows in a scratch of its own, which stays in the cache, and
 * adds their product. A narrow dw (few bands) is also split into parts of
 * the groups, each into a partial dw of its own, added in order at the
 * end. Bands and parts depend on the shape alone. */
#define CONV_WGRAD_BAND 128
#define CONV_WGRAD_CHUNKS 16
#define CONV_WGRAD_PARTS 4

typedef struct {
  const float *x, *dy;
  float *dw, *partial;    /* parts x o x kk, when parts > 1 */
  ConvGroups g;
  int bands, parts;
} ConvWeightGrad;

static void
conv_weight_grad_chunk (void *data, int q, int chunks)
{
  const ConvWeightGrad *A = data;
  const ConvGroups *G = &A->g;
  warm_blas ();
  const int hw = G->oh * G->ow, kk = G->c * G->k * G->k, groups = (G->n + G->per - 1) / G->per;
  const int part = q / A->bands, band = q % A->bands;
  int64_t r0, r1, g0, g1;
  snn_pool_range (kk, 1, band, A->bands, &r0, &r1);
  snn_pool_range (groups, 1, part, A->parts, &g0, &g1);
  float *c = A->parts > 1 ? A->partial + (size_t) part * G->o * kk : A->dw;
  float *col = scratch_floats (&conv_scratch, (size_t) (r1 - r0) * G->per * hw);
  for (int64_t g = g0; g < g1; g++)
    {
      int s0, s1;
      group_images (G, g, &s0, &s1);
      const int cols = (s1 - s0) * hw;
      group_patches (G, A->x, s0, s1, r0, r1, col);
      const float beta = A->parts > 1 && g == g0 ? 0.0f : 1.0f;
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, G->o, (int) (r1 - r0), cols, 1.0f,
                   A->dy + (size_t) s0 * hw, G->n * hw, col, cols, beta, c + r0, kk);
    }
}

static void
cpu_conv_weight_grad (const float *x, const float *dy, int n, int c, int h, int wd, int o, int k, int stride, int pad,
                      int oh, int ow, float *col, float *dw)
{
  if (n <= 0)
    return;
  const ConvGroups g = conv_groups (n, c, h, wd, o, k, stride, pad, oh, ow);
  const int kk = c * k * k, groups = (n + g.per - 1) / g.per;
  const int bands = CLAMP (kk / CONV_WGRAD_BAND, 1, CONV_WGRAD_CHUNKS);
  /* At most one part per group: no part is empty. */
  const int parts = CLAMP (CONV_WGRAD_PARTS / bands, 1, groups);
  (void) col; /* the chunks' own scratch instead */
  ConvWeightGrad a = { x, dy, dw, NULL, g, bands, parts };
  if (parts > 1)
    a.partial = scratch_floats (&gemm_scratch, (size_t) parts * o * kk);
  snn_pool_run (parts * bands, conv_weight_grad_chunk, &a);
  if (parts == 1)
    return;
  GemmSplitK sum = { .g = { .m = o, .n = kk, .c = dw, .ldc = kk, .beta = 1.0f }, .parts = parts,
                     .partial = a.partial };
  snn_pool_for (o, (double) kk * parts, 1, gemm_k_sum, &sum);
}

/* A convolution's input gradient in groups of whole images, a chunk each:
 * the group's columns of dcol = W^T dy (a band of the GEMM, into the
 * chunk's own scratch, which stays in the cache), then at once its images
 * of dx. A group is at least GEMM_BAND output pixels. Groups depend on the shape alone, every element
 * of a band is computed as by one GEMM, and an image reads only its own
 * columns: the same bits on any number of threads. */
typedef struct {
  const float *w, *dy;
  float *dx;
  ConvGroups g;
} ConvInputGrad;

static void
conv_input_grad_chunk (void *data, int q, int chunks)
{
  const ConvInputGrad *A = data;
  const ConvGroups *G = &A->g;
  warm_blas ();
  const int hw = G->oh * G->ow, kk = G->c * G->k * G->k;
  int s0, s1;
  group_images (G, q, &s0, &s1);
  const int cols = (s1 - s0) * hw;
  float *dcol = scratch_floats (&conv_scratch, (size_t) kk * cols);
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, kk, cols, G->o, 1.0f, A->w, kk, A->dy + (size_t) s0 * hw,
               G->n * hw, 0.0f, dcol, cols);
  const size_t image = (size_t) G->c * G->h * G->wd;
  for (int s = s0; s < s1; s++)
    col2im_image (dcol, cols, s - s0, G->c, G->h, G->wd, G->k, G->stride, G->pad, G->oh, G->ow, A->dx + s * image);
}

static void
cpu_conv_input_grad (const float *w, const float *dy, int o, int n, int c, int h, int wd, int k, int stride, int pad,
                     int oh, int ow, float *col, float *dx)
{
  if (n <= 0)
    return;
  (void) col; /* the chunks' own scratch instead */
  ConvInputGrad a = { w, dy, dx, conv_groups (n, c, h, wd, o, k, stride, pad, oh, ow) };
  snn_pool_run ((n + a.g.per - 1) / a.g.per, conv_input_grad_chunk, &a);
}

/* Planes [lo, hi) of [n][c]: copies between [c][n][hw] and [n][c][hw] */
RANGE (cn_to_nchw_range, ChanArgs)
  for (int64_t p = lo; p < hi; p++)
    {
      const int64_t s = p / A->c, ch = p % A->c;
      memcpy (A->y + (size_t) p * A->hw, A->x + ((size_t) ch * A->n + s) * A->hw, A->hw * sizeof (float));
    }
END_RANGE

RANGE (nchw_to_cn_range, ChanArgs)
  for (int64_t p = lo; p < hi; p++)
    {
      const int64_t s = p / A->c, ch = p % A->c;
      memcpy (A->y + ((size_t) ch * A->n + s) * A->hw, A->x + (size_t) p * A->hw, A->hw * sizeof (float));
    }
END_RANGE

static void
cpu_cn_to_nchw (const float *m, int n, int c, int hw, float *y)
{
  ChanArgs a = { .x = m, .y = y, .n = n, .c = c, .hw = hw };
  snn_pool_for ((int64_t) n * c, hw, 1, cn_to_nchw_range, &a);
}

static void
cpu_nchw_to_cn (const float *y, int n, int c, int hw, float *m)
{
  ChanArgs a = { .x = y, .y = m, .n = n, .c = c, .hw = hw };
  snn_pool_for ((int64_t) n * c, hw, 1, nchw_to_cn_range, &a);
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

typedef struct { const float *x; float *y; int h, w, k, stride, pad, oh, ow; } PoolArgs;

/* Planes [lo, hi): y from x, or (backward) x from y */
RANGE (avgpool_forward_range, PoolArgs)
  const int h = A->h, w = A->w, k = A->k, stride = A->stride, pad = A->pad, oh = A->oh, ow = A->ow;
  const float scale = 1.0f / (k * k);
  for (int64_t p = lo; p < hi; p++)
    {
      const float *img = A->x + (size_t) p * h * w;
      float *out = A->y + (size_t) p * oh * ow;
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
END_RANGE

static void
cpu_avgpool_forward (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh,
                     int ow, float *y)
{
  PoolArgs a = { x, y, h, w, k, stride, pad, oh, ow };
  snn_pool_for ((int64_t) n * c, (double) h * w, 1, avgpool_forward_range, &a);
}

RANGE (avgpool_backward_range, PoolArgs)
  const int h = A->h, w = A->w, k = A->k, stride = A->stride, pad = A->pad, oh = A->oh, ow = A->ow;
  const float scale = 1.0f / (k * k);
  for (int64_t p = lo; p < hi; p++)
    {
      float *img = (float *) A->x + (size_t) p * h * w;
      const float *d = A->y + (size_t) p * oh * ow;
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
END_RANGE

static void
cpu_avgpool_backward (const float *dy, int n, int c, int h, int w, int k, int stride, int pad, int oh,
                      int ow, float *dx)
{
  PoolArgs a = { dx, (float *) dy, h, w, k, stride, pad, oh, ow };
  snn_pool_for ((int64_t) n * c, (double) h * w, 1, avgpool_backward_range, &a);
}

typedef struct { const float *x; float *y; int hw; } PlaneArgs;

RANGE (global_avgpool_forward_range, PlaneArgs)
  for (int64_t p = lo; p < hi; p++)
    {
      double acc = 0;
      for (int i = 0; i < A->hw; i++)
        acc += A->x[p * A->hw + i];
      A->y[p] = (float) (acc / A->hw);
    }
END_RANGE

static void
cpu_global_avgpool_forward (const float *x, int64_t planes, int hw, float *y)
{
  PlaneArgs a = { x, y, hw };
  snn_pool_for (planes, hw, 1, global_avgpool_forward_range, &a);
}

RANGE (global_avgpool_backward_range, PlaneArgs)
  for (int64_t p = lo; p < hi; p++)
    {
      float g = A->x[p] / A->hw;
      for (int i = 0; i < A->hw; i++)
        A->y[p * A->hw + i] = g;
    }
END_RANGE

static void
cpu_global_avgpool_backward (const float *dy, int64_t planes, int hw, float *dx)
{
  PlaneArgs a = { dy, dx, hw };
  snn_pool_for (planes, hw, 1, global_avgpool_backward_range, &a);
}

typedef struct {
  const float *x, *dy, *xhat_in, *invstd_in, *gamma, *beta, *rmean_in, *rvar_in;
  float *rmean, *rvar, *xhat, *invstd, *y, *dgamma, *dbeta, *dx;
  int n, c, hw;
  float eps, momentum;
} BnArgs;

/* Channels [lo, hi): each is summed in its own fixed order. */
RANGE (bn_forward_train_range, BnArgs)
  const int n = A->n, c = A->c, hw = A->hw;
  const float *x = A->x;
  const double count = (double) n * hw;
  for (int64_t ch = lo; ch < hi; ch++)
    {
      double sum[LANES] = { 0 }, sq[LANES] = { 0 };
      for (int s = 0; s < n; s++)
        {
          const float *p = x + ((size_t) s * c + ch) * hw;
          LANES_ADD (sum, hw, p[i]);
        }
      const double mean = lanes_total (sum) / count;
      for (int s = 0; s < n; s++)
        {
          const float *p = x + ((size_t) s * c + ch) * hw;
          LANES_ADD (sq, hw, (p[i] - mean) * (p[i] - mean));
        }
      double var = lanes_total (sq) / count;
      float is = (float) (1.0 / sqrt (var + A->eps));
      A->invstd[ch] = is;
      float m = (float) mean, g = A->gamma[ch], b = A->beta[ch];
      for (int s = 0; s < n; s++)
        {
          size_t off = ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            {
              float xh = (x[off + i] - m) * is;
              if (A->xhat)
                A->xhat[off + i] = xh;
              A->y[off + i] = g * xh + b;
            }
        }
      if (A->rmean)
        {
          const double momentum = A->momentum;
          A->rmean[ch] = (float) ((1.0 - momentum) * A->rmean[ch] + momentum * mean);
          double unbiased = count > 1 ? var * count / (count - 1) : var;
          A->rvar[ch] = (float) ((1.0 - momentum) * A->rvar[ch] + momentum * unbiased);
        }
    }
END_RANGE

static void
cpu_bn_forward_train (const float *x, int n, int c, int hw, const float *gamma, const float *beta,
                      float eps, float momentum, float *rmean, float *rvar, float *xhat,
                      float *invstd, float *y)
{
  BnArgs a = { .x = x, .gamma = gamma, .beta = beta, .eps = eps, .momentum = momentum, .rmean = rmean,
               .rvar = rvar, .xhat = xhat, .invstd = invstd, .y = y, .n = n, .c = c, .hw = hw };
  snn_pool_for (c, 3.0 * n * hw, 1, bn_forward_train_range, &a);
}

RANGE (bn_forward_eval_range, BnArgs)
  const int n = A->n, c = A->c, hw = A->hw;
  for (int64_t ch = lo; ch < hi; ch++)
    {
      float is = 1.0f / sqrtf (A->rvar_in[ch] + A->eps);
      float a = A->gamma[ch] * is, b = A->beta[ch] - A->rmean_in[ch] * a;
      for (int s = 0; s < n; s++)
        {
          size_t off = ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            A->y[off + i] = a * A->x[off + i] + b;
        }
    }
END_RANGE

static void
cpu_bn_forward_eval (const float *x, int n, int c, int hw, const float *gamma, const float *beta,
                     float eps, const float *rmean, const float *rvar, float *y)
{
  BnArgs a = { .x = x, .gamma = gamma, .beta = beta, .eps = eps, .rmean_in = rmean, .rvar_in = rvar, .y = y,
               .n = n, .c = c, .hw = hw };
  snn_pool_for (c, (double) n * hw, 1, bn_forward_eval_range, &a);
}

RANGE (bn_backward_range, BnArgs)
  const int n = A->n, c = A->c, hw = A->hw;
  const float *dy = A->dy, *xhat = A->xhat_in;
  const double count = (double) n * hw;
  for (int64_t ch = lo; ch < hi; ch++)
    {
      double lane_dy[LANES] = { 0 }, lane_dyx[LANES] = { 0 };
      for (int s = 0; s < n; s++)
        {
          const float *g = dy + ((size_t) s * c + ch) * hw, *xh = xhat + ((size_t) s * c + ch) * hw;
          LANES_ADD (lane_dy, hw, g[i]);
          LANES_ADD (lane_dyx, hw, (double) g[i] * xh[i]);
        }
      const double sdy = lanes_total (lane_dy), sdyx = lanes_total (lane_dyx);
      A->dgamma[ch] += (float) sdyx;
      A->dbeta[ch] += (float) sdy;
      float k = A->gamma[ch] * A->invstd_in[ch];
      float mdy = (float) (sdy / count), mdyx = (float) (sdyx / count);
      for (int s = 0; s < n; s++)
        {
          size_t off = ((size_t) s * c + ch) * hw;
          for (int i = 0; i < hw; i++)
            A->dx[off + i] = k * (dy[off + i] - mdy - xhat[off + i] * mdyx);
        }
    }
END_RANGE

static void
cpu_bn_backward (const float *dy, const float *xhat, const float *invstd, int n, int c, int hw,
                 const float *gamma, float *dgamma, float *dbeta, float *dx)
{
  BnArgs a = { .dy = dy, .xhat_in = xhat, .invstd_in = invstd, .gamma = gamma, .dgamma = dgamma, .dbeta = dbeta,
               .dx = dx, .n = n, .c = c, .hw = hw };
  snn_pool_for (c, 3.0 * n * hw, 1, bn_backward_range, &a);
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

typedef struct {
  const SnnLifParams *p;
  const float *x, *u_in, *ds;
  gboolean x_repeats, temporal;
  float *v, *u, *s, *dx;
  uint64_t *bits;
  int steps;
  int64_t count;
} LifArgs;

/* Words [lo, hi) of 64 neurons, every step: the neurons are independent. */
RANGE (lif_forward_range, LifArgs)
  const SnnLifParams *p = A->p;
  const float lam = snn_lif_leak (p->tau), vth = p->vth;
  const int reset = p->reset;
  const int64_t count = A->count, words = snn_spike_words (count);
  float *v = A->v;
  for (int t = 0; t < A->steps; t++)
    {
      const float *xt = A->x_repeats ? A->x : A->x + (size_t) t * count;
      float *ut = A->u + (size_t) t * count, *st = A->s ? A->s + (size_t) t * count : NULL;
      for (int64_t w = lo; w < hi; w++)
        {
          const int64_t i0 = w * 64;
          const int n = (int) MIN (64, count - i0);
          uint8_t fired[64];
          for (int k = 0; k < n; k++)
            {
              const int64_t i = i0 + k;
              const float ui = snn_lif_charge (lam, v[i], xt[i]), si = snn_lif_fire (ui, vth);
              ut[i] = ui;
              if (st)
                st[i] = si;
              v[i] = snn_lif_reset (reset, ui, si, vth);
              fired[k] = si != 0.0f;
            }
          if (A->bits)
            A->bits[(size_t) t * words + w] = flags_to_word (fired, n);
        }
    }
END_RANGE

static void
cpu_lif_forward (const SnnLifParams *p, const float *x, gboolean x_repeats, float *v, int steps,
                 int64_t count, float *u, float *s, uint64_t *bits)
{
  LifArgs a = { .p = p, .x = x, .x_repeats = x_repeats, .v = v, .steps = steps, .count = count, .u = u, .s = s,
                .bits = bits };
  snn_pool_for (snn_spike_words (count), 64.0 * 2 * steps, 1, lif_forward_range, &a);
}

/* The loop BODY (SHAPE) once per surrogate shape, the shape a constant in
 * each, so that the inlined lif-math.h leaves the loops without a branch
 * on it. */
#define SG_LOOP(BODY)                                                                \
  switch (p->surrogate)                                                              \
    {                                                                                \
    case SNN_SURROGATE_RECTANGLE:                                                    \
      BODY (SNN_LIF_RECTANGLE) break;                                                \
    case SNN_SURROGATE_TRIANGLE:                                                     \
      BODY (SNN_LIF_TRIANGLE) break;                                                 \
    case SNN_SURROGATE_ATAN:                                                         \
      BODY (SNN_LIF_ATAN) break;                                                     \
    default:                                                                         \
      BODY (p->surrogate) break;                                                     \
    }

/* Neurons [lo, hi), every step from the last: dL/dv[t] arrives from step
 * t+1 as lam * dL/du[t+1], already in dx. */
RANGE (lif_backward_range, LifArgs)
  const SnnLifParams *p = A->p;
  const float vth = p->vth, lam = snn_lif_leak (p->tau), g = p->width, a = p->alpha;
  const int reset = p->reset, detach = p->detach_reset;
  const int64_t count = A->count;
  for (int t = A->steps - 1; t >= 0; t--)
    {
      const float *ut = A->u_in + (size_t) t * count, *dst = A->ds + (size_t) t * count;
      const float *next = A->temporal && t + 1 < A->steps ? A->dx + (size_t) (t + 1) * count : NULL;
      float *dxt = A->dx + (size_t) t * count;
#define BODY(SHAPE)                                                                  \
  for (int64_t i = lo; i < hi; i++)                                                  \
    {                                                                                \
      const float sg = snn_lif_surrogate (SHAPE, g, a, ut[i] - vth);                 \
      const float dv = next ? lam * next[i] : 0.0f;                                  \
      dxt[i] = snn_lif_backward_step (reset, detach, ut[i], vth, dst[i], dv, sg);    \
    }
      SG_LOOP (BODY)
#undef BODY
    }
END_RANGE

static void
cpu_lif_backward (const SnnLifParams *p, const float *u, const float *ds, int steps, int64_t count,
                  gboolean temporal, float *dx)
{
  LifArgs a = { .p = p, .u_in = u, .ds = ds, .steps = steps, .count = count, .temporal = temporal, .dx = dx };
  snn_pool_for (count, 4.0 * steps, 64, lif_backward_range, &a);
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

typedef struct { const float *s; float *out; const uint64_t *bits_in; uint64_t *bits; int64_t count, words; } SpikeArgs;

/* Words [lo, hi) of steps x words */
RANGE (pack_spikes_range, SpikeArgs)
  for (int64_t q = lo; q < hi; q++)
    {
      const int64_t t = q / A->words, w = q % A->words;
      const float *st = A->s + (size_t) t * A->count + w * 64;
      int n = (int) MIN (64, A->count - w * 64);
      uint8_t fired[64];
      for (int i = 0; i < n; i++)
        fired[i] = st[i] != 0.0f;
      A->bits[q] = flags_to_word (fired, n);
    }
END_RANGE

static void
cpu_pack_spikes (const float *s, int steps, int64_t count, uint64_t *bits)
{
  SpikeArgs a = { .s = s, .bits = bits, .count = count, .words = snn_spike_words (count) };
  snn_pool_for (steps * a.words, 64, 1, pack_spikes_range, &a);
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

RANGE (unpack_spikes_range, SpikeArgs)
  for (int64_t q = lo; q < hi; q++)
    {
      const int64_t t = q / A->words, w = q % A->words;
      float *st = A->out + (size_t) t * A->count + w * 64;
      int n = (int) MIN (64, A->count - w * 64);
      uint64_t word = A->bits_in[q];
      if (n == 64)
        for (int k = 0; k < 8; k++)
          memcpy (st + 8 * k, spike_byte_table[(word >> (8 * k)) & 0xff], 8 * sizeof (float));
      else
        for (int i = 0; i < n; i++)
          st[i] = (float) ((word >> i) & 1);
    }
END_RANGE

static void
cpu_unpack_spikes (const uint64_t *bits, int steps, int64_t count, float *s)
{
  SpikeArgs a = { .out = s, .bits_in = bits, .count = count, .words = snn_spike_words (count) };
  snn_pool_for (steps * a.words, 64, 1, unpack_spikes_range, &a);
}

typedef struct {
  const int *start, *fired_idx;
  int rows, out;
  const float *wt, *bias;
  float *y;
} SpikeLinearArgs;

/* Blocks of 32 outputs [lo, hi), so that a block of W^T (in x 32) stays in
 * cache while every row adds its fired inputs' parts of it. */
#define SPIKE_BLOCK 32 /* 8 SSE registers of sums */
RANGE (spike_linear_range, SpikeLinearArgs)
  enum { BLOCK = SPIKE_BLOCK };
  const int out = A->out;
  for (int64_t b = lo; b < hi; b++)
    {
      const int c0 = (int) b * BLOCK, nc = MIN (BLOCK, out - c0);
      for (int r = 0; r < A->rows; r++)
        {
          /* Whole blocks even at the end of a row: what lies past it (the
           * next row, or the slack after W^T) lands in unused sums. Vector
           * types keep the 64 sums in registers. */
          typedef float v4 __attribute__ ((vector_size (16)));
          v4 sum[BLOCK / 4] = { { 0 } }, p;
          for (int k = A->start[r]; k < A->start[r + 1]; k++)
            {
              const float *w = A->wt + (size_t) A->fired_idx[k] * out + c0;
              for (int q = 0; q < BLOCK / 4; q++)
                {
                  memcpy (&p, w + 4 * q, sizeof p);
                  sum[q] += p;
                }
            }
          float acc[BLOCK];
          for (int q = 0; q < BLOCK / 4; q++)
            memcpy (acc + 4 * q, &sum[q], sizeof p);
          float *yr = A->y + (size_t) r * out + c0;
          for (int c = 0; c < nc; c++)
            yr[c] = A->bias ? acc[c] + A->bias[c0 + c] : acc[c];
        }
    }
END_RANGE

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
  enum { BLOCK = SPIKE_BLOCK };
  const int blocks = (out + BLOCK - 1) / BLOCK;
  SpikeLinearArgs a = { start, fired_idx, rows, out, wt, bias, y };
  snn_pool_for (blocks, (double) total * BLOCK / 4, 1, spike_linear_range, &a);
  return TRUE;
}

typedef struct { const float *src, *x, *mask; float *dst, *y; int rows, cols, batch; int64_t count; } MatArgs;

/* src (rows x cols) to dst (cols x rows) in tiles of 4 x 4 read as four
 * vectors and turned by shuffles (__builtin_shufflevector: GCC 12 and
 * clang); the ragged right and bottom edges one
 * element at a time. */
typedef float v4sf __attribute__ ((vector_size (16)));

static inline void
transpose_4x4 (const float *src, size_t ld_src, float *dst, size_t ld_dst)
{
#if defined(__clang__) || __GNUC__ >= 12
  v4sf a, b, c, d;
  memcpy (&a, src, sizeof a);
  memcpy (&b, src + ld_src, sizeof b);
  memcpy (&c, src + 2 * ld_src, sizeof c);
  memcpy (&d, src + 3 * ld_src, sizeof d);
  const v4sf ab_lo = __builtin_shufflevector (a, b, 0, 4, 1, 5);
  const v4sf ab_hi = __builtin_shufflevector (a, b, 2, 6, 3, 7);
  const v4sf cd_lo = __builtin_shufflevector (c, d, 0, 4, 1, 5);
  const v4sf cd_hi = __builtin_shufflevector (c, d, 2, 6, 3, 7);
  const v4sf col0 = __builtin_shufflevector (ab_lo, cd_lo, 0, 1, 4, 5);
  const v4sf col1 = __builtin_shufflevector (ab_lo, cd_lo, 2, 3, 6, 7);
  const v4sf col2 = __builtin_shufflevector (ab_hi, cd_hi, 0, 1, 4, 5);
  const v4sf col3 = __builtin_shufflevector (ab_hi, cd_hi, 2, 3, 6, 7);
  memcpy (dst, &col0, sizeof col0);
  memcpy (dst + ld_dst, &col1, sizeof col1);
  memcpy (dst + 2 * ld_dst, &col2, sizeof col2);
  memcpy (dst + 3 * ld_dst, &col3, sizeof col3);
#else
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      dst[j * ld_dst + i] = src[i * ld_src + j];
#endif
}

/* Row tiles [lo, hi) of 16 rows: a tile's 16 source rows stay in the L1
 * cache while its columns are written. */
RANGE (transpose_range, MatArgs)
  enum { TILE = 16 };
  const int rows = A->rows, cols = A->cols;
  const float *src = A->src;
  float *dst = A->dst;
  for (int64_t t = lo; t < hi; t++)
    {
      const int r0 = (int) t * TILE, r1 = MIN (rows, r0 + TILE), r4 = r0 + (r1 - r0) / 4 * 4;
      const int c4 = cols / 4 * 4;
      for (int c = 0; c < c4; c += 4)
        for (int r = r0; r < r4; r += 4)
          transpose_4x4 (src + (size_t) r * cols + c, (size_t) cols, dst + (size_t) c * rows + r, (size_t) rows);
      for (int r = r0; r < r1; r++)
        for (int c = r < r4 ? c4 : 0; c < cols; c++)
          dst[(size_t) c * rows + r] = src[(size_t) r * cols + c];
    }
END_RANGE

static void
cpu_transpose (const float *src, int rows, int cols, float *dst)
{
  MatArgs a = { .src = src, .dst = dst, .rows = rows, .cols = cols };
  snn_pool_for ((rows + 15) / 16, 16.0 * cols, 1, transpose_range, &a);
}

/* Rows [lo, hi) of steps x batch */
RANGE (mul_mask_range, MatArgs)
  for (int64_t r = lo; r < hi; r++)
    {
      const size_t off = (size_t) r * A->count;
      const float *m = A->mask + (size_t) (r % A->batch) * A->count;
      for (int64_t i = 0; i < A->count; i++)
        A->y[off + i] = A->x[off + i] * m[i];
    }
END_RANGE

static void
cpu_mul_mask (const float *x, const float *mask, int steps, int batch, int64_t count, float *y)
{
  MatArgs a = { .x = x, .mask = mask, .y = y, .batch = batch, .count = count };
  snn_pool_for ((int64_t) steps * batch, count, 1, mul_mask_range, &a);
}

typedef struct {
  float *w, *buf, *m, *v, *y;
  const float *g, *x;
  float lr, momentum, wd, b1, b2, eps, a;
  gboolean first;
  double c1, c2;
} VecArgs;

RANGE (axpy_range, VecArgs)
  for (int64_t i = lo; i < hi; i++)
    A->y[i] += A->a * A->x[i];
END_RANGE

static void
cpu_axpy (int64_t n, float a, const float *x, float *y)
{
  VecArgs v = { .a = a, .x = x, .y = y };
  snn_pool_for (n, 1, 64, axpy_range, &v);
}

RANGE (sgd_range, VecArgs)
  const float mom = A->momentum, wd = A->wd, lr = A->lr;
  float *w = A->w, *buf = A->buf;
  const float *g = A->g;
  for (int64_t j = lo; j < hi; j++)
    {
      float d = g[j] + wd * w[j];
      if (mom != 0.0f)
        {
          buf[j] = A->first ? d : mom * buf[j] + d;
          d = buf[j];
        }
      w[j] -= lr * d;
    }
END_RANGE

static void
cpu_sgd_update (float *w, const float *g, float *buf, int64_t n, float lr, float mom, float wd, gboolean first)
{
  VecArgs a = { .w = w, .g = g, .buf = buf, .lr = lr, .momentum = mom, .wd = wd, .first = first };
  snn_pool_for (n, 2, 64, sgd_range, &a);
}

RANGE (adam_range, VecArgs)
  const float b1 = A->b1, b2 = A->b2, wd = A->wd;
  const double c1 = A->c1, c2 = A->c2, lr = A->lr, eps = A->eps;
  float *w = A->w, *m = A->m, *v = A->v;
  const float *g = A->g;
  for (int64_t j = lo; j < hi; j++)
    {
      float d = g[j] + wd * w[j];
      m[j] = b1 * m[j] + (1 - b1) * d;
      v[j] = b2 * v[j] + (1 - b2) * d * d;
      double mh = m[j] / c1, vh = v[j] / c2;
      w[j] -= (float) (lr * mh / (sqrt (vh) + eps));
    }
END_RANGE

static void
cpu_adam_update (float *w, const float *g, float *m, float *v, int64_t n, float lr, float b1, float b2, float eps,
                 float wd, double c1, double c2)
{
  VecArgs a = { .w = w, .g = g, .m = m, .v = v, .lr = lr, .b1 = b1, .b2 = b2, .eps = eps, .wd = wd, .c1 = c1,
                .c2 = c2 };
  snn_pool_for (n, 8, 64, adam_range, &a);
}

RANGE (scale_range, VecArgs)
  for (int64_t i = lo; i < hi; i++)
    A->y[i] = A->a * A->x[i];
END_RANGE

static void
cpu_scale (int64_t n, float a, const float *x, float *y)
{
  VecArgs v = { .a = a, .x = x, .y = y };
  snn_pool_for (n, 1, 64, scale_range, &v);
}

/* Scalars by pointer are host memory here: read at once. */
static void
cpu_axpy_gain (int64_t n, float alpha, const float *gain, const float *x, float *y)
{
  cpu_axpy (n, alpha * (gain ? gain[0] : 1.0f), x, y);
}

static void
cpu_scale_gain (int64_t n, float alpha, const float *gain, const float *x, float *y)
{
  cpu_scale (n, alpha * (gain ? gain[0] : 1.0f), x, y);
}

/* One sum in order on the calling thread: a split would change its rounding. */
static double
cpu_dot (int64_t n, const float *a, const float *b)
{
  double acc = 0;
  for (int64_t i = 0; i < n; i++)
    acc += (double) a[i] * b[i];
  return acc;
}

static void
cpu_dot_add (int64_t n, float alpha, const float *a, const float *b, float *out)
{
  out[0] += (float) (alpha * cpu_dot (n, a, b));
}

/* Every op has finished when it returns. */
static void
cpu_finish (void)
{
}

typedef struct { const float *x; float *y; int steps; int64_t count; gboolean accumulate; int n, c, hw; } SumArgs;

/* Elements [lo, hi), the steps added in order */
RANGE (sum_steps_range, SumArgs)
  if (!A->accumulate)
    memcpy (A->y + lo, A->x + lo, (hi - lo) * sizeof (float));
  for (int t = A->accumulate ? 0 : 1; t < A->steps; t++)
    {
      const float *xt = A->x + (size_t) t * A->count;
      for (int64_t i = lo; i < hi; i++)
        A->y[i] += xt[i];
    }
END_RANGE

static void
cpu_sum_steps (const float *x, int steps, int64_t count, gboolean accumulate, float *y)
{
  SumArgs a = { .x = x, .y = y, .steps = steps, .count = count, .accumulate = accumulate };
  snn_pool_for (count, steps, 64, sum_steps_range, &a);
}

RANGE (channel_mean_range, SumArgs)
  for (int64_t ch = lo; ch < hi; ch++)
    {
      double sum = 0;
      for (int s = 0; s < A->n; s++)
        {
          const float *p = A->x + ((size_t) s * A->c + ch) * A->hw;
          for (int i = 0; i < A->hw; i++)
            sum += p[i];
        }
      A->y[ch] = (float) (sum / ((double) A->n * A->hw));
    }
END_RANGE

static void
cpu_channel_mean (const float *x, int n, int c, int hw, float *mean)
{
  SumArgs a = { .x = x, .y = mean, .n = n, .c = c, .hw = hw };
  snn_pool_for (c, (double) n * hw, 1, channel_mean_range, &a);
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
  .lane_samples = 8,
  .alloc = cpu_alloc,
  .free = cpu_free,
  .upload = cpu_copy,
  .download = cpu_copy,
  .zero = cpu_zero,
  .copy = cpu_copy,
  .gemm = cpu_gemm,
  .gemm_batched = cpu_gemm_batched,
  .add_bias_rows = cpu_add_bias_rows,
  .bias_grad_rows = cpu_bias_grad_rows,
  .add_bias_channels = cpu_add_bias_channels,
  .bias_grad_channels = cpu_bias_grad_channels,
  .im2col = cpu_im2col,
  .conv_forward = cpu_conv_forward,
  .conv_weight_grad = cpu_conv_weight_grad,
  .conv_input_grad = cpu_conv_input_grad,
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
  .axpy_gain = cpu_axpy_gain,
  .scale_gain = cpu_scale_gain,
  .dot_add = cpu_dot_add,
  .finish = cpu_finish,
  .device_memory = NULL, /* no device memory */
};

const SnnBackend *
snn_backend_cpu (void)
{
  init_threads ();
  return &cpu_backend;
}

/* OpenBLAS's kernels prefetch far into the packing buffer that each
 * calling thread holds. Until a GEMM large enough to fill it has run, those
 * pages are not yet mapped, and on a 2-core AMD EPYC virtual machine every
 * such prefetch then cost a page walk: each GEMM of a training step ran 2.4
 * times slower, for the life of the process (perf: the stalls sit on the
 * prefetch; an SGEMM of 512^3 first in every thread removes them). So each
 * thread that calls OpenBLAS runs one such SGEMM first: the pool's threads
 * all at once when the backend starts (so that each holds a buffer of its
 * own), any other thread at its first GEMM. */
enum { WARM_N = 512 };
static _Thread_local gboolean blas_warm;

static void
warm_blas (void)
{
  if (blas_warm)
    return;
  blas_warm = TRUE;
  float *a = g_new0 (float, (size_t) 3 * WARM_N * WARM_N);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, WARM_N, WARM_N, WARM_N, 1.0f, a, WARM_N,
               a + WARM_N * WARM_N, WARM_N, 0.0f, a + 2 * WARM_N * WARM_N, WARM_N);
  g_free (a);
}

static atomic_int warm_arrived;

/* Waits (briefly) until every chunk has begun, so that each runs on a
 * thread of its own and holds its own buffer, then warms it. */
static void
warm_chunk (void *data, int i, int chunks)
{
  atomic_fetch_add (&warm_arrived, 1);
  gint64 until = g_get_monotonic_time () + 50000;
  while (atomic_load (&warm_arrived) < chunks && g_get_monotonic_time () < until)
    g_thread_yield ();
  warm_blas ();
}

/* OpenBLAS's pthread build ends its threads with this (it is not in its
 * headers); other builds lack it. */
extern int blas_thread_shutdown_ (void) __attribute__ ((weak));

static void
init_threads (void)
{
  static gsize done = 0;
  if (!g_once_init_enter (&done))
    return;
  /* The pool's chunks call OpenBLAS, which must not start threads of its
   * own. Its threaded build has already started them when it loaded, and
   * each spins for about 0.1 s before it sleeps: runnable threads the pool
   * would take for another program's. They are ended here. */
  openblas_set_num_threads (1);
  if (blas_thread_shutdown_)
    blas_thread_shutdown_ ();
  snn_pool_run (snn_pool_threads (), warm_chunk, NULL);
  cpu_threads = snn_pool_threads ();
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

