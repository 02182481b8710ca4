/* The CUDA backend's device code: cuBLAS for the GEMMs, our kernels for
 * every other op of the table. Everything is queued on one stream; the host
 * waits only in snn_cu_download, snn_cu_dot and snn_cu_sync. Reductions
 * accumulate in double in a fixed order, as the CPU loops do, so results do
 * not depend on timing. */
#include "cuda-kernels.h"
#include "lif-math.h"
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

static cudaStream_t stream;
static cublasHandle_t blas;
static double *partials;          /* per-block sums of dot and dot_add */
enum { THREADS = 256, RED_BLOCKS = 1024 };

#define CU_CHECK(call)                                                                   \
  do {                                                                                   \
    cudaError_t e_ = (call);                                                             \
    if (e_ != cudaSuccess)                                                               \
      {                                                                                  \
        fprintf (stderr, "snnwb: CUDA: %s (%s:%d)\n", cudaGetErrorString (e_), __FILE__, __LINE__); \
        abort ();                                                                        \
      }                                                                                  \
  } while (0)

static unsigned
blocks_for (int64_t n)
{
  int64_t b = (n + THREADS - 1) / THREADS;
  return (unsigned) (b < 1 ? 1 : b > (1 << 20) ? (1 << 20) : b);
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t) gridDim.x * blockDim.x)

/* The sum of v over the block (THREADS threads), valid in thread 0. */
__device__ double
block_sum (double v)
{
  __shared__ double warp_sums[THREADS / 32];
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_down_sync (0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0)
    warp_sums[threadIdx.x >> 5] = v;
  __syncthreads ();
  double t = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < THREADS / 32; w++)
      t += warp_sums[w];
  __syncthreads ();
  return t;
}

/* ---- setup ---- */

extern "C" int
snn_cu_open (char *err, size_t errlen, int tf32)
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount (&n);
  if (e != cudaSuccess || n == 0)
    {
      int driver = 0;
      if (cudaDriverGetVersion (&driver) != cudaSuccess || driver == 0)
        snprintf (err, errlen, "no CUDA device: no NVIDIA driver is installed on this machine");
      else
        snprintf (err, errlen, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString (e) : "none found");
      return 1;
    }
  if ((e = cudaSetDevice (0)) != cudaSuccess || (e = cudaStreamCreateWithFlags (&stream, cudaStreamNonBlocking))
      != cudaSuccess || (e = cudaMalloc (&partials, RED_BLOCKS * sizeof (double))) != cudaSuccess)
    {
      snprintf (err, errlen, "CUDA device 0 cannot be used (%s)", cudaGetErrorString (e));
      return 1;
    }
  if (cublasCreate (&blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream (blas, stream) != CUBLAS_STATUS_SUCCESS
      || cublasSetMathMode (blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS)
    {
      snprintf (err, errlen, "cuBLAS cannot start on CUDA device 0");
      return 1;
    }
  return 0;
}

extern "C" void
snn_cu_describe (char *out, size_t len)
{
  cudaDeviceProp p;
  int ver = 0;
  CU_CHECK (cudaGetDeviceProperties (&p, 0));
  cublasGetVersion (blas, &ver);
  snprintf (out, len, "%s, sm_%d%d, %.1f GiB, cuBLAS %d", p.name, p.major, p.minor,
            p.totalGlobalMem / 1073741824.0, ver);
}

extern "C" int
snn_cu_sync (char *err, size_t errlen)
{
  cudaError_t e = cudaStreamSynchronize (stream);
  if (e == cudaSuccess)
    e = cudaGetLastError ();
  if (e != cudaSuccess)
    snprintf (err, errlen, "%s", cudaGetErrorString (e));
  return e != cudaSuccess;
}

/* ---- memory ---- */

extern "C" void *
snn_cu_malloc (size_t bytes)
{
  void *p = NULL;
  size_t sz = bytes ? (bytes + 255) & ~(size_t) 255 : 256;
  if (cudaMalloc (&p, sz) != cudaSuccess)
    return NULL;
  CU_CHECK (cudaMemsetAsync (p, 0, sz, stream));
  return p;
}

extern "C" void
snn_cu_free (void *p)
{
  /* Queued work may still use p: wait for it first. */
  CU_CHECK (cudaStreamSynchronize (stream));
  CU_CHECK (cudaFree (p));
}

extern "C" void
snn_cu_upload (void *dst, const void *src, size_t bytes)
{
  /* From pageable memory this returns once src has been staged, so the
   * caller may reuse src at once. */
  if (bytes)
    CU_CHECK (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyHostToDevice, stream));
}

extern "C" void
snn_cu_download (void *dst, const void *src, size_t bytes)
{
  if (bytes)
    CU_CHECK (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  CU_CHECK (cudaStreamSynchronize (stream));
}

extern "C" void
snn_cu_zero (void *dst, size_t bytes)
{
  if (bytes)
    CU_CHECK (cudaMemsetAsync (dst, 0, bytes, stream));
}

extern "C" void
snn_cu_copy (void *dst, const void *src, size_t bytes)
{
  if (bytes && dst != src)
    CU_CHECK (cudaMemcpyAsync (dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
}

/* ---- GEMM ---- */

extern "C" void
snn_cu_gemm (int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
             float beta, float *c, int ldc)
{
  if (m == 0 || n == 0)
    return;
  /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T. */
  cublasStatus_t st = cublasSgemm (blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                                   &alpha, b, ldb, a, lda, &beta, c, ldc);
  if (st != CUBLAS_STATUS_SUCCESS)
    {
      fprintf (stderr, "snnwb: cuBLAS SGEMM failed (status %d)\n", (int) st);
      abort ();
    }
}

/* count GEMMs in one cuBLAS call; a stride of 0 shares one matrix. */
extern "C" void
snn_cu_gemm_batched (int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, int64_t sa,
                     const float *b, int ldb, int64_t sb, float beta, float *c, int ldc, int64_t sc, int count)
{
  if (m == 0 || n == 0 || count <= 0)
    return;
  cublasStatus_t st = cublasSgemmStridedBatched (blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                 n, m, k, &alpha, b, ldb, sb, a, lda, sa, &beta, c, ldc, sc, count);
  if (st != CUBLAS_STATUS_SUCCESS)
    {
      fprintf (stderr, "snnwb: cuBLAS batched SGEMM failed (status %d)\n", (int) st);
      abort ();
    }
}

/* ---- biases ---- */

__global__ void
k_add_bias_rows (float *y, const float *bias, int64_t total, int cols)
{
  GRID_STRIDE (i, total)
    y[i] += bias[i % cols];
}

extern "C" void
snn_cu_add_bias_rows (float *y, const float *bias, int rows, int cols)
{
  int64_t total = (int64_t) rows * cols;
  if (total)
    k_add_bias_rows<<<blocks_for (total), THREADS, 0, stream>>> (y, bias, total, cols);
}

/* Columns across threadIdx.x (coalesced), rows split over threadIdx.y. */
__global__ void
k_bias_grad_rows (float *db, const float *dy, int rows, int cols)
{
  __shared__ double part[8][33];
  int c = blockIdx.x * 32 + threadIdx.x;
  double acc = 0;
  if (c < cols)
    for (int r = threadIdx.y; r < rows; r += 8)
      acc += dy[(size_t) r * cols + c];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads ();
  if (threadIdx.y == 0 && c < cols)
    {
      double t = 0;
      for (int j = 0; j < 8; j++)
        t += part[j][threadIdx.x];
      db[c] += (float) t;
    }
}

extern "C" void
snn_cu_bias_grad_rows (float *db, const float *dy, int rows, int cols)
{
  if (cols)
    k_bias_grad_rows<<<(cols + 31) / 32, dim3 (32, 8), 0, stream>>> (db, dy, rows, cols);
}

__global__ void
k_add_bias_channels (float *y, const float *bias, int64_t total, int c, int hw)
{
  GRID_STRIDE (i, total)
    y[i] += bias[(i / hw) % c];
}

extern "C" void
snn_cu_add_bias_channels (float *y, const float *bias, int n, int c, int hw)
{
  int64_t total = (int64_t) n * c * hw;
  if (total)
    k_add_bias_channels<<<blocks_for (total), THREADS, 0, stream>>> (y, bias, total, c, hw);
}

/* One block per channel: the sum over samples and positions. */
__device__ double
channel_sum (const float *x, int n, int c, int hw, int ch)
{
  double acc = 0;
  int64_t per = (int64_t) n * hw;
  for (int64_t j = threadIdx.x; j < per; j += blockDim.x)
    acc += x[((size_t) (j / hw) * c + ch) * hw + j % hw];
  return block_sum (acc);
}

__global__ void
k_bias_grad_channels (float *db, const float *dy, int n, int c, int hw)
{
  double t = channel_sum (dy, n, c, hw, blockIdx.x);
  if (threadIdx.x == 0)
    db[blockIdx.x] += (float) t;
}

extern "C" void
snn_cu_bias_grad_channels (float *db, const float *dy, int n, int c, int hw)
{
  if (c)
    k_bias_grad_channels<<<c, THREADS, 0, stream>>> (db, dy, n, c, hw);
}

/* ---- convolution layout ---- */

__global__ void
k_im2col (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow, float *col,
          int64_t total)
{
  const int64_t np = (int64_t) n * oh * ow;
  GRID_STRIDE (i, total)
    {
      int64_t row = i / np, q = i % np;
      int s = (int) (q / ((int64_t) oh * ow)), p = (int) (q % ((int64_t) oh * ow));
      int ch = (int) (row / (k * k)), kk = (int) (row % (k * k)), ki = kk / k, kj = kk % k;
      int ii = (p / ow) * stride - pad + ki, jj = (p % ow) * stride - pad + kj;
      col[i] = (ii >= 0 && ii < h && jj >= 0 && jj < w) ? x[(((size_t) s * c + ch) * h + ii) * w + jj] : 0.0f;
    }
}

extern "C" void
snn_cu_im2col (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow, float *col)
{
  int64_t total = (int64_t) c * k * k * n * oh * ow;
  if (total)
    k_im2col<<<blocks_for (total), THREADS, 0, stream>>> (x, n, c, h, w, k, stride, pad, oh, ow, col, total);
}

/* Each input element gathers the patch entries that copied it: no atomics,
 * and the same sum order on every run. Overwrites dx. */
__global__ void
k_col2im (const float *dcol, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow, float *dx,
          int64_t total)
{
  const int64_t np = (int64_t) n * oh * ow;
  GRID_STRIDE (i, total)
    {
      int jj = (int) (i % w), ii = (int) ((i / w) % h);
      int64_t sc = i / ((int64_t) h * w);
      int ch = (int) (sc % c), s = (int) (sc / c);
      float acc = 0;
      for (int ki = 0; ki < k; ki++)
        {
          int t = ii + pad - ki;
          if (t < 0 || t % stride)
            continue;
          int oi = t / stride;
          if (oi >= oh)
            continue;
          for (int kj = 0; kj < k; kj++)
            {
              int u = jj + pad - kj;
              if (u < 0 || u % stride)
                continue;
              int oj = u / stride;
              if (oj >= ow)
                continue;
              acc += dcol[((int64_t) (ch * k + ki) * k + kj) * np + (int64_t) s * oh * ow + oi * ow + oj];
            }
        }
      dx[i] = acc;
    }
}

/* The patches, then a GEMM per sample that writes its NCHW place. */
extern "C" void
snn_cu_conv_forward (const float *x, const float *w, const float *bias, int n, int c, int h, int wd, int o, int k,
                     int stride, int pad, int oh, int ow, float *col, float *y)
{
  const int kk = c * k * k, hw = oh * ow, np = n * hw;
  snn_cu_im2col (x, n, c, h, wd, k, stride, pad, oh, ow, col);
  snn_cu_gemm_batched (0, 0, o, hw, kk, 1.0f, w, kk, 0, col, np, hw, 0.0f, y, hw, (int64_t) o * hw, n);
  if (bias)
    snn_cu_add_bias_channels (y, bias, n, o, hw);
}

extern "C" void
snn_cu_conv_weight_grad (const float *x, const float *dy, int n, int c, int h, int wd, int o, int k, int stride,
                         int pad, int oh, int ow, float *col, float *dw)
{
  const int kk = c * k * k, np = n * oh * ow;
  snn_cu_im2col (x, n, c, h, wd, k, stride, pad, oh, ow, col);
  snn_cu_gemm (0, 1, o, kk, np, 1.0f, dy, np, col, np, 1.0f, dw, kk);
}

extern "C" void
snn_cu_conv_input_grad (const float *w, const float *dy, int o, int n, int c, int h, int wd, int k, int stride,
                        int pad, int oh, int ow, float *col, float *dx)
{
  const int kk = c * k * k, np = n * oh * ow;
  snn_cu_gemm (1, 0, kk, np, o, 1.0f, w, kk, dy, np, 0.0f, col, np);
  int64_t total = (int64_t) n * c * h * wd;
  if (total)
    k_col2im<<<blocks_for (total), THREADS, 0, stream>>> (col, n, c, h, wd, k, stride, pad, oh, ow, dx, total);
}

/* y[s][o][p] = m[o][s*hw + p] (to_nchw) or back. */
__global__ void
k_cn_nchw (const float *src, int n, int c, int hw, float *dst, int to_nchw, int64_t total)
{
  GRID_STRIDE (i, total)
    {
      int p = (int) (i % hw);
      int64_t sc = i / hw;
      int ch = (int) (sc % c), s = (int) (sc / c);
      int64_t cn = (int64_t) ch * n * hw + (int64_t) s * hw + p;
      if (to_nchw)
        dst[i] = src[cn];
      else
        dst[cn] = src[i];
    }
}

extern "C" void
snn_cu_cn_to_nchw (const float *m, int n, int c, int hw, float *y)
{
  int64_t total = (int64_t) n * c * hw;
  if (total)
    k_cn_nchw<<<blocks_for (total), THREADS, 0, stream>>> (m, n, c, hw, y, 1, total);
}

extern "C" void
snn_cu_nchw_to_cn (const float *y, int n, int c, int hw, float *m)
{
  int64_t total = (int64_t) n * c * hw;
  if (total)
    k_cn_nchw<<<blocks_for (total), THREADS, 0, stream>>> (y, n, c, hw, m, 0, total);
}

/* ---- pooling ---- */

__global__ void
k_avgpool_forward (const float *x, int h, int w, int k, int stride, int pad, int oh, int ow, float *y, int64_t total)
{
  const float scale = 1.0f / (k * k);
  GRID_STRIDE (i, total)
    {
      int oj = (int) (i % ow), oi = (int) ((i / ow) % oh);
      const float *img = x + (i / ((int64_t) oh * ow)) * h * w;
      int i0 = oi * stride - pad, j0 = oj * stride - pad;
      float acc = 0;
      for (int ii = max (i0, 0); ii < min (i0 + k, h); ii++)
        for (int jj = max (j0, 0); jj < min (j0 + k, w); jj++)
          acc += img[ii * w + jj];
      y[i] = acc * scale;
    }
}

extern "C" void
snn_cu_avgpool_forward (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow,
                        float *y)
{
  int64_t total = (int64_t) n * c * oh * ow;
  if (total)
    k_avgpool_forward<<<blocks_for (total), THREADS, 0, stream>>> (x, h, w, k, stride, pad, oh, ow, y, total);
}

/* Each input position gathers the windows that hold it. */
__global__ void
k_avgpool_backward (const float *dy, int h, int w, int k, int stride, int pad, int oh, int ow, float *dx,
                    int64_t total)
{
  const float scale = 1.0f / (k * k);
  GRID_STRIDE (i, total)
    {
      int jj = (int) (i % w), ii = (int) ((i / w) % h);
      const float *d = dy + (i / ((int64_t) h * w)) * oh * ow;
      /* Windows oi hold row ii when oi*stride - pad <= ii < oi*stride - pad + k. */
      int oi0 = max (0, (ii + pad - k + stride) / stride), oi1 = min (oh - 1, (ii + pad) / stride);
      int oj0 = max (0, (jj + pad - k + stride) / stride), oj1 = min (ow - 1, (jj + pad) / stride);
      float acc = 0;
      for (int oi = oi0; oi <= oi1; oi++)
        for (int oj = oj0; oj <= oj1; oj++)
          acc += d[oi * ow + oj] * scale;
      dx[i] = acc;
    }
}

extern "C" void
snn_cu_avgpool_backward (const float *dy, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow,
                         float *dx)
{
  int64_t total = (int64_t) n * c * h * w;
  if (total)
    k_avgpool_backward<<<blocks_for (total), THREADS, 0, stream>>> (dy, h, w, k, stride, pad, oh, ow, dx, total);
}

__global__ void
k_global_avgpool_forward (const float *x, int hw, float *y)
{
  const float *p = x + (int64_t) blockIdx.x * hw;
  double acc = 0;
  for (int j = threadIdx.x; j < hw; j += blockDim.x)
    acc += p[j];
  acc = block_sum (acc);
  if (threadIdx.x == 0)
    y[blockIdx.x] = (float) (acc / hw);
}

extern "C" void
snn_cu_global_avgpool_forward (const float *x, int64_t planes, int hw, float *y)
{
  if (planes)
    k_global_avgpool_forward<<<(unsigned) planes, THREADS, 0, stream>>> (x, hw, y);
}

__global__ void
k_global_avgpool_backward (const float *dy, int hw, float *dx, int64_t total)
{
  GRID_STRIDE (i, total)
    dx[i] = dy[i / hw] / hw;
}

extern "C" void
snn_cu_global_avgpool_backward (const float *dy, int64_t planes, int hw, float *dx)
{
  int64_t total = planes * hw;
  if (total)
    k_global_avgpool_backward<<<blocks_for (total), THREADS, 0, stream>>> (dy, hw, dx, total);
}

/* ---- batch norm: one block per channel ---- */

#define CH_LOOP(j, off) \
  for (int64_t j = threadIdx.x, off = 0; j < (int64_t) n * hw && ((off = ((int64_t) (j / hw) * c + ch) * hw + j % hw), 1); j += blockDim.x)

__global__ void
k_bn_forward_train (const float *x, int n, int c, int hw, const float *gamma, const float *beta, float eps,
                    float momentum, float *rmean, float *rvar, float *xhat, float *invstd, float *y)
{
  __shared__ double stat[2];
  const int ch = blockIdx.x;
  const double count = (double) n * hw;
  double t = channel_sum (x, n, c, hw, ch);
  if (threadIdx.x == 0)
    stat[0] = t / count;
  __syncthreads ();
  const double mean = stat[0];
  double sq = 0;
  CH_LOOP (j, off)
    {
      double d = x[off] - mean;
      sq += d * d;
    }
  sq = block_sum (sq);
  if (threadIdx.x == 0)
    stat[1] = sq / count;
  __syncthreads ();
  const double var = stat[1];
  const float is = (float) (1.0 / sqrt (var + eps)), m = (float) mean, g = gamma[ch], b = beta[ch];
  CH_LOOP (j, off)
    {
      float xh = (x[off] - m) * is;
      if (xhat)
        xhat[off] = xh;
      y[off] = g * xh + b;
    }
  if (threadIdx.x == 0)
    {
      invstd[ch] = is;
      if (rmean)
        {
          rmean[ch] = (float) ((1.0 - momentum) * rmean[ch] + momentum * mean);
          double unbiased = count > 1 ? var * count / (count - 1) : var;
          rvar[ch] = (float) ((1.0 - momentum) * rvar[ch] + momentum * unbiased);
        }
    }
}

extern "C" void
snn_cu_bn_forward_train (const float *x, int n, int c, int hw, const float *gamma, const float *beta, float eps,
                         float momentum, float *running_mean, float *running_var, float *xhat, float *invstd,
                         float *y)
{
  if (c)
    k_bn_forward_train<<<c, THREADS, 0, stream>>> (x, n, c, hw, gamma, beta, eps, momentum, running_mean, running_var,
                                                    xhat, invstd, y);
}

__global__ void
k_bn_repeat_running (const float *invstd, const float *mean, int c, int count, float eps, float momentum, int times,
                     float *rmean, float *rvar)
{
  GRID_STRIDE (ch, c)
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

extern "C" void
snn_cu_bn_repeat_running (const float *invstd, const float *mean, int c, int count, float eps, float momentum,
                          int times, float *running_mean, float *running_var)
{
  if (c)
    k_bn_repeat_running<<<blocks_for (c), THREADS, 0, stream>>> (invstd, mean, c, count, eps, momentum, times,
                                                                  running_mean, running_var);
}

__global__ void
k_bn_forward_eval (const float *x, int c, int hw, const float *gamma, const float *beta, float eps,
                   const float *rmean, const float *rvar, float *y, int64_t total)
{
  GRID_STRIDE (i, total)
    {
      int ch = (int) ((i / hw) % c);
      float is = 1.0f / sqrtf (rvar[ch] + eps);
      float a = gamma[ch] * is, b = beta[ch] - rmean[ch] * a;
      y[i] = a * x[i] + b;
    }
}

extern "C" void
snn_cu_bn_forward_eval (const float *x, int n, int c, int hw, const float *gamma, const float *beta, float eps,
                        const float *running_mean, const float *running_var, float *y)
{
  int64_t total = (int64_t) n * c * hw;
  if (total)
    k_bn_forward_eval<<<blocks_for (total), THREADS, 0, stream>>> (x, c, hw, gamma, beta, eps, running_mean,
                                                                    running_var, y, total);
}

__global__ void
k_bn_backward (const float *dy, const float *xhat, const float *invstd, int n, int c, int hw, const float *gamma,
               float *dgamma, float *dbeta, float *dx)
{
  __shared__ double stat[2];
  const int ch = blockIdx.x;
  const double count = (double) n * hw;
  double sdy = 0, sdyx = 0;
  CH_LOOP (j, off)
    {
      sdy += dy[off];
      sdyx += (double) dy[off] * xhat[off];
    }
  sdy = block_sum (sdy);
  sdyx = block_sum (sdyx);
  if (threadIdx.x == 0)
    {
      stat[0] = sdy, stat[1] = sdyx;
      dgamma[ch] += (float) sdyx;
      dbeta[ch] += (float) sdy;
    }
  __syncthreads ();
  const float k = gamma[ch] * invstd[ch];
  const float mdy = (float) (stat[0] / count), mdyx = (float) (stat[1] / count);
  CH_LOOP (j, off)
    dx[off] = k * (dy[off] - mdy - xhat[off] * mdyx);
}

extern "C" void
snn_cu_bn_backward (const float *dy, const float *xhat, const float *invstd, int n, int c, int hw,
                    const float *gamma, float *dgamma, float *dbeta, float *dx)
{
  if (c)
    k_bn_backward<<<c, THREADS, 0, stream>>> (dy, xhat, invstd, n, c, hw, gamma, dgamma, dbeta, dx);
}

/* ---- LIF: one thread per neuron, walking the steps ---- */

/* Threads cover whole 64-neuron words so that every warp's ballot fills one
 * half word: bit i % 64 of word i / 64, low half first. */
__global__ void
k_lif_forward (SnnCuLif p, const float *x, int x_repeats, float *v, int steps, int64_t count, float *u, float *s,
               uint64_t *bits, int64_t padded)
{
  const float lam = snn_lif_leak (p.tau), vth = p.vth;
  const int64_t words = (count + 63) / 64;
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < padded;
       i += (int64_t) gridDim.x * blockDim.x)
    {
      const int live = i < count;
      float vi = live ? v[i] : 0.0f;
      for (int t = 0; t < steps; t++)
        {
          int fired = 0;
          if (live)
            {
              float xi = x[(x_repeats ? 0 : (size_t) t * count) + i];
              float ui = snn_lif_charge (lam, vi, xi), si = snn_lif_fire (ui, vth);
              u[(size_t) t * count + i] = ui;
              if (s)
                s[(size_t) t * count + i] = si;
              vi = snn_lif_reset (p.reset, ui, si, vth);
              fired = si != 0.0f;
            }
          unsigned half = __ballot_sync (0xffffffffu, fired);
          if (bits && (threadIdx.x & 31) == 0)
            ((uint32_t *) bits)[2 * ((size_t) t * words + i / 64) + (i / 32) % 2] = half;
        }
      if (live)
        v[i] = vi;
    }
}

extern "C" void
snn_cu_lif_forward (const SnnCuLif *p, const float *x, int x_repeats, float *v, int steps, int64_t count, float *u,
                    float *s, uint64_t *bits)
{
  int64_t padded = (count + 63) / 64 * 64;
  if (count && steps)
    k_lif_forward<<<blocks_for (padded), THREADS, 0, stream>>> (*p, x, x_repeats, v, steps, count, u, s, bits, padded);
}

__global__ void
k_lif_backward (SnnCuLif p, const float *u, const float *ds, int steps, int64_t count, int temporal, float *dx)
{
  const float vth = p.vth, lam = snn_lif_leak (p.tau);
  GRID_STRIDE (i, count)
    {
      float next = 0.0f;   /* dL/du[t+1] */
      for (int t = steps - 1; t >= 0; t--)
        {
          size_t o = (size_t) t * count + i;
          float ut = u[o];
          float sg = snn_lif_surrogate (p.surrogate, p.width, p.alpha, ut - vth);
          float dv = temporal && t + 1 < steps ? lam * next : 0.0f;
          next = snn_lif_backward_step (p.reset, p.detach, ut, vth, ds[o], dv, sg);
          dx[o] = next;
        }
    }
}

extern "C" void
snn_cu_lif_backward (const SnnCuLif *p, const float *u, const float *ds, int steps, int64_t count, int temporal,
                     float *dx)
{
  if (count && steps)
    k_lif_backward<<<blocks_for (count), THREADS, 0, stream>>> (*p, u, ds, steps, count, temporal, dx);
}

/* ---- weight standardisation: one block per output row ---- */

__global__ void
k_ws_forward (const float *w, const float *gain, int fan, float g0, float eps, float *what, float *inv_scale)
{
  __shared__ double stat[2];
  const int o = blockIdx.x;
  const float *wr = w + (size_t) o * fan;
  double sum = 0;
  for (int j = threadIdx.x; j < fan; j += blockDim.x)
    sum += wr[j];
  sum = block_sum (sum);
  if (threadIdx.x == 0)
    stat[0] = sum / fan;
  __syncthreads ();
  const double mean = stat[0];
  double sq = 0;
  for (int j = threadIdx.x; j < fan; j += blockDim.x)
    sq += (wr[j] - mean) * (wr[j] - mean);
  sq = block_sum (sq);
  if (threadIdx.x == 0)
    stat[1] = sq;
  __syncthreads ();
  const float inv = (float) (1.0 / sqrt (fmax (stat[1], (double) eps)));
  const float a = g0 * gain[o] * inv, m = (float) mean;
  for (int j = threadIdx.x; j < fan; j += blockDim.x)
    what[(size_t) o * fan + j] = a * (wr[j] - m);
  if (threadIdx.x == 0)
    inv_scale[o] = inv;
}

extern "C" void
snn_cu_ws_forward (const float *w, const float *gain, int rows, int fan, float g0, float eps, float *what,
                   float *inv_scale)
{
  if (rows)
    k_ws_forward<<<rows, THREADS, 0, stream>>> (w, gain, fan, g0, eps, what, inv_scale);
}

__global__ void
k_ws_backward (const float *w, const float *gain, const float *dwhat, const float *inv_scale, int fan, float g0,
               float eps, float *dw, float *dgain)
{
  __shared__ double stat[4];
  const int o = blockIdx.x;
  const float *wr = w + (size_t) o * fan, *g = dwhat + (size_t) o * fan;
  double sum = 0;
  for (int j = threadIdx.x; j < fan; j += blockDim.x)
    sum += wr[j];
  sum = block_sum (sum);
  if (threadIdx.x == 0)
    stat[0] = sum / fan;
  __syncthreads ();
  const double mean = stat[0];
  double sq = 0, gc = 0, gsum = 0;
  for (int j = threadIdx.x; j < fan; j += blockDim.x)
    {
      double c = wr[j] - mean;
      sq += c * c;
      gc += g[j] * c;
      gsum += g[j];
    }
  sq = block_sum (sq);
  gc = block_sum (gc);
  gsum = block_sum (gsum);
  if (threadIdx.x == 0)
    stat[1] = sq, stat[2] = gc, stat[3] = gsum;
  __syncthreads ();
  const double inv = inv_scale[o], a = (double) g0 * gain[o];
  const double k = stat[1] > eps ? stat[2] / stat[1] : 0.0, dmean = a * inv * stat[3] / fan;
  for (int j = threadIdx.x; j < fan; j += blockDim.x)
    dw[(size_t) o * fan + j] += (float) (a * inv * (g[j] - (wr[j] - mean) * k) - dmean);
  if (threadIdx.x == 0)
    dgain[o] += (float) (g0 * stat[2] * inv);
}

extern "C" void
snn_cu_ws_backward (const float *w, const float *gain, const float *dwhat, const float *inv_scale, int rows, int fan,
                    float g0, float eps, float *dw, float *dgain)
{
  if (rows)
    k_ws_backward<<<rows, THREADS, 0, stream>>> (w, gain, dwhat, inv_scale, fan, g0, eps, dw, dgain);
}

/* ---- spike bits ---- */

__global__ void
k_pack_spikes (const float *s, int steps, int64_t count, uint64_t *bits, int64_t padded)
{
  const int64_t words = (count + 63) / 64;
  for (int64_t q = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; q < padded * steps;
       q += (int64_t) gridDim.x * blockDim.x)
    {
      int64_t t = q / padded, i = q % padded;
      int fired = i < count && s[(size_t) t * count + i] != 0.0f;
      unsigned half = __ballot_sync (0xffffffffu, fired);
      if ((threadIdx.x & 31) == 0)
        ((uint32_t *) bits)[2 * ((size_t) t * words + i / 64) + (i / 32) % 2] = half;
    }
}

extern "C" void
snn_cu_pack_spikes (const float *s, int steps, int64_t count, uint64_t *bits)
{
  int64_t padded = (count + 63) / 64 * 64;
  if (count && steps)
    k_pack_spikes<<<blocks_for (padded * steps), THREADS, 0, stream>>> (s, steps, count, bits, padded);
}

__global__ void
k_unpack_spikes (const uint64_t *bits, int64_t count, float *s, int64_t total)
{
  const int64_t words = (count + 63) / 64;
  GRID_STRIDE (q, total)
    {
      int64_t t = q / count, i = q % count;
      s[q] = (float) ((bits[t * words + i / 64] >> (i % 64)) & 1);
    }
}

extern "C" void
snn_cu_unpack_spikes (const uint64_t *bits, int steps, int64_t count, float *s)
{
  int64_t total = (int64_t) steps * count;
  if (total)
    k_unpack_spikes<<<blocks_for (total), THREADS, 0, stream>>> (bits, count, s, total);
}

/* y = s W^T + bias from wt = W^T [in][out]: a block takes one row and 256
 * outputs; the whole block skips an input that did not fire (one uniform
 * branch), so the work follows the spikes as on the CPU. The device decides
 * from shapes alone: it always takes this route. */
__global__ void
k_spike_linear (const float *s, int rows, int in, int out, const float *wt, const float *bias, float *y)
{
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  for (int r = blockIdx.y; r < rows; r += gridDim.y)
    {
      const float *sr = s + (size_t) r * in;
      float acc = 0;
      for (int j = 0; j < in; j++)
        if (sr[j] != 0.0f && o < out)
          acc += wt[(size_t) j * out + o];
      if (o < out)
        y[(size_t) r * out + o] = bias ? acc + bias[o] : acc;
    }
}

extern "C" int
snn_cu_spike_linear (const float *s, int rows, int in, int out, const float *wt, const float *bias, int *fired_idx,
                     float *y)
{
  (void) fired_idx;
  if (rows && out)
    k_spike_linear<<<dim3 ((out + THREADS - 1) / THREADS, rows < 65535 ? rows : 65535), THREADS, 0, stream>>> (
      s, rows, in, out, wt, bias, y);
  return 1;
}

__global__ void
k_transpose (const float *src, int rows, int cols, float *dst)
{
  __shared__ float tile[32][33];
  int c = blockIdx.x * 32 + threadIdx.x, r0 = blockIdx.y * 32;
  for (int j = threadIdx.y; j < 32; j += 8)
    if (r0 + j < rows && c < cols)
      tile[j][threadIdx.x] = src[(size_t) (r0 + j) * cols + c];
  __syncthreads ();
  int r = r0 + threadIdx.x, c0 = blockIdx.x * 32;
  for (int j = threadIdx.y; j < 32; j += 8)
    if (c0 + j < cols && r < rows)
      dst[(size_t) (c0 + j) * rows + r] = tile[threadIdx.x][j];
}

extern "C" void
snn_cu_transpose (const float *src, int rows, int cols, float *dst)
{
  if (rows && cols)
    k_transpose<<<dim3 ((cols + 31) / 32, (rows + 31) / 32), dim3 (32, 8), 0, stream>>> (src, rows, cols, dst);
}

/* ---- elementwise ---- */

__global__ void
k_mul_mask (const float *x, const float *mask, int batch, int64_t count, float *y, int64_t total)
{
  GRID_STRIDE (i, total)
    y[i] = x[i] * mask[((i / count) % batch) * count + i % count];
}

extern "C" void
snn_cu_mul_mask (const float *x, const float *mask, int steps, int batch, int64_t count, float *y)
{
  int64_t total = (int64_t) steps * batch * count;
  if (total)
    k_mul_mask<<<blocks_for (total), THREADS, 0, stream>>> (x, mask, batch, count, y, total);
}

/* y = a * gain[0] * x (+ y when add); gain NULL: 1 */
__global__ void
k_axpby (int64_t n, float a, const float *gain, const float *x, float *y, int add)
{
  const float k = a * (gain ? gain[0] : 1.0f);
  GRID_STRIDE (i, n)
    y[i] = add ? y[i] + k * x[i] : k * x[i];
}

extern "C" void
snn_cu_axpy (int64_t n, float a, const float *x, float *y)
{
  if (n)
    k_axpby<<<blocks_for (n), THREADS, 0, stream>>> (n, a, NULL, x, y, 1);
}

extern "C" void
snn_cu_scale (int64_t n, float a, const float *x, float *y)
{
  if (n)
    k_axpby<<<blocks_for (n), THREADS, 0, stream>>> (n, a, NULL, x, y, 0);
}

extern "C" void
snn_cu_axpy_gain (int64_t n, float alpha, const float *gain, const float *x, float *y)
{
  if (n)
    k_axpby<<<blocks_for (n), THREADS, 0, stream>>> (n, alpha, gain, x, y, 1);
}

extern "C" void
snn_cu_scale_gain (int64_t n, float alpha, const float *gain, const float *x, float *y)
{
  if (n)
    k_axpby<<<blocks_for (n), THREADS, 0, stream>>> (n, alpha, gain, x, y, 0);
}

/* <a, b> in two passes: per-block sums, then one block adds them in order. */
__global__ void
k_dot_partial (int64_t n, const float *a, const float *b, double *part)
{
  double acc = 0;
  GRID_STRIDE (i, n)
    acc += (double) a[i] * b[i];
  acc = block_sum (acc);
  if (threadIdx.x == 0)
    part[blockIdx.x] = acc;
}

__global__ void
k_dot_finish (const double *part, int nparts, float alpha, float *out, double *result)
{
  double acc = 0;
  for (int j = threadIdx.x; j < nparts; j += blockDim.x)
    acc += part[j];
  acc = block_sum (acc);
  if (threadIdx.x == 0)
    {
      if (out)
        out[0] += (float) (alpha * acc);
      if (result)
        result[0] = acc;
    }
}

static int
dot_queue (int64_t n, const float *a, const float *b)
{
  int nb = (int) ((n + THREADS - 1) / THREADS);
  nb = nb < 1 ? 1 : nb > RED_BLOCKS ? RED_BLOCKS : nb;
  k_dot_partial<<<nb, THREADS, 0, stream>>> (n, a, b, partials);
  return nb;
}

extern "C" void
snn_cu_dot_add (int64_t n, float alpha, const float *a, const float *b, float *out)
{
  int nb = dot_queue (n, a, b);
  k_dot_finish<<<1, THREADS, 0, stream>>> (partials, nb, alpha, out, NULL);
}

extern "C" double
snn_cu_dot (int64_t n, const float *a, const float *b)
{
  /* The result goes to the first partial slot's neighbour block-wise: use a
   * separate device double so the partials stay intact until read. */
  static double *result;
  if (!result)
    CU_CHECK (cudaMalloc (&result, sizeof (double)));
  int nb = dot_queue (n, a, b);
  k_dot_finish<<<1, THREADS, 0, stream>>> (partials, nb, 0.0f, NULL, result);
  double h = 0;
  snn_cu_download (&h, result, sizeof h);
  return h;
}

__global__ void
k_sgd (float *w, const float *g, float *buf, int64_t n, float lr, float mom, float wd, int first)
{
  GRID_STRIDE (j, n)
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

extern "C" void
snn_cu_sgd_update (float *w, const float *g, float *buf, int64_t n, float lr, float momentum, float weight_decay,
                   int first)
{
  if (n)
    k_sgd<<<blocks_for (n), THREADS, 0, stream>>> (w, g, buf, n, lr, momentum, weight_decay, first);
}

__global__ void
k_adam (float *w, const float *g, float *m, float *v, int64_t n, float lr, float b1, float b2, float eps, float wd,
        double c1, double c2)
{
  GRID_STRIDE (j, n)
    {
      float d = g[j] + wd * w[j];
      m[j] = b1 * m[j] + (1 - b1) * d;
      v[j] = b2 * v[j] + (1 - b2) * d * d;
      double mh = m[j] / c1, vh = v[j] / c2;
      w[j] -= (float) (lr * mh / (sqrt (vh) + eps));
    }
}

extern "C" void
snn_cu_adam_update (float *w, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                    float eps, float weight_decay, double c1, double c2)
{
  if (n)
    k_adam<<<blocks_for (n), THREADS, 0, stream>>> (w, g, m, v, n, lr, beta1, beta2, eps, weight_decay, c1, c2);
}

__global__ void
k_sum_steps (const float *x, int steps, int64_t count, int accumulate, float *y)
{
  GRID_STRIDE (i, count)
    {
      float acc = accumulate ? y[i] : 0.0f;
      for (int t = 0; t < steps; t++)
        acc += x[(size_t) t * count + i];
      y[i] = acc;
    }
}

extern "C" void
snn_cu_sum_steps (const float *x, int steps, int64_t count, int accumulate, float *y)
{
  if (count)
    k_sum_steps<<<blocks_for (count), THREADS, 0, stream>>> (x, steps, count, accumulate, y);
}

__global__ void
k_channel_mean (const float *x, int n, int c, int hw, float *mean)
{
  double t = channel_sum (x, n, c, hw, blockIdx.x);
  if (threadIdx.x == 0)
    mean[blockIdx.x] = (float) (t / ((double) n * hw));
}

extern "C" void
snn_cu_channel_mean (const float *x, int n, int c, int hw, float *mean)
{
  if (c)
    k_channel_mean<<<c, THREADS, 0, stream>>> (x, n, c, hw, mean);
}
