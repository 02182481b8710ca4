/* The backend interface: every piece of layer math the network runs goes
 * through this table, so the training methods never ask which device runs
 * them. Buffers are the backend's own memory (host memory for the CPU). All
 * tensors are float32, C order; "rows" are samples (time steps x batch).
 *
 * A device backend queues its ops and returns at once. The host waits for
 * the device only at the syncs named here: download, free, finish, dot and
 * the device memory query. Scalars the network learns (the residual gain) stay
 * in device memory and enter the ops by pointer (axpy_gain, scale_gain,
 * dot_add). */
#pragma once
#include <glib.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"

G_BEGIN_DECLS

typedef struct _SnnBackend SnnBackend;
struct _SnnBackend {
  const char *name;
  /* Samples per lane when a batch trains faster split into lanes, each a
   * network of its own side by side on the host's threads (a lane's
   * activations stay in a core's caches, and a lane is work enough for one
   * thread); 0: never split. */
  int lane_samples;
  /* Every member from here on is an op. */
  void *(*alloc) (size_t bytes);          /* zero-filled */
  void  (*free) (void *ptr);             /* SYNC: queued ops may still use ptr */
  void  (*upload) (void *dst, const void *src, size_t bytes);
  /* SYNC: waits for the queued ops, then copies to the host. */
  void  (*download) (void *dst, const void *src, size_t bytes);
  void  (*zero) (void *dst, size_t bytes);
  void  (*copy) (void *dst, const void *src, size_t bytes);

  /* C = alpha * op(A) * op(B) + beta * C, row-major. */
  void (*gemm) (gboolean trans_a, gboolean trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
  /* count GEMMs at once: C_i = alpha * op(A_i) * op(B_i) + beta * C_i with
   * X_i = x + i * stride_x (a stride of 0 shares one matrix), each element
   * computed as by gemm. */
  void (*gemm_batched) (gboolean trans_a, gboolean trans_b, int m, int n, int k, float alpha, const float *a,
                        int lda, int64_t stride_a, const float *b, int ldb, int64_t stride_b, float beta, float *c,
                        int ldc, int64_t stride_c, int count);
  /* y[r][c] += bias[c] for rows x cols */
  void (*add_bias_rows) (float *y, const float *bias, int rows, int cols);
  /* db[c] += sum_r dy[r][c] */
  void (*bias_grad_rows) (float *db, const float *dy, int rows, int cols);
  /* y[n][c][p] += bias[c] */
  void (*add_bias_channels) (float *y, const float *bias, int n, int c, int hw);
  void (*bias_grad_channels) (float *db, const float *dy, int n, int c, int hw);

  /* col[(c*k + i)*k + j][s*oh*ow + p] from x[s][c][h][w] for s in 0..n */
  void (*im2col) (const float *x, int n, int c, int h, int w, int k, int stride, int pad,
                  int oh, int ow, float *col);
  /* A convolution: y [n][o][oh][ow] = W times x's patches (im2col below)
   * plus bias[o] (NULL: none), for w [o][c*k*k]; col is scratch the
   * backend may use for the patches ([c*k*k][n*oh*ow]). Leaves nothing in
   * col that a caller may count on. */
  void (*conv_forward) (const float *x, const float *w, const float *bias, int n, int c, int h, int wd, int o, int k,
                        int stride, int pad, int oh, int ow, float *col, float *y);
  /* A convolution's weight gradient: dw [o][c*k*k] += dy times x's
   * patches transposed, for dy in nchw_to_cn's layout [o][n*oh*ow]; col is
   * scratch the backend may use for the patches. */
  void (*conv_weight_grad) (const float *x, const float *dy, int n, int c, int h, int wd, int o, int k, int stride,
                            int pad, int oh, int ow, float *col, float *dw);
  /* A convolution's input gradient: dx [n][c][h][w] = the scatter
   * (col2im) of dcol = W^T dy back to where im2col took each patch entry
   * from, for w [o][c*k*k] and dy in nchw_to_cn's layout [o][n*oh*ow]; col
   * is scratch the backend may use for dcol ([c*k*k][n*oh*ow]). Overwrites
   * dx. */
  void (*conv_input_grad) (const float *w, const float *dy, int o, int n, int c, int h, int wd, int k, int stride,
                           int pad, int oh, int ow, float *col, float *dx);
  /* y[s][o][p] = m[o][s*hw + p] (and back): GEMM output to NCHW */
  void (*cn_to_nchw) (const float *m, int n, int c, int hw, float *y);
  void (*nchw_to_cn) (const float *y, int n, int c, int hw, float *m);

  /* Zero padding `pad`; the divisor is always k*k (PyTorch's count_include_pad). */
  void (*avgpool_forward) (const float *x, int n, int c, int h, int w, int k, int stride, int pad,
                           int oh, int ow, float *y);
  void (*avgpool_backward) (const float *dy, int n, int c, int h, int w, int k, int stride, int pad,
                            int oh, int ow, float *dx);
  /* [n][c][hw] -> [n][c] means, and back (dx = dy / hw) */
  void (*global_avgpool_forward) (const float *x, int64_t planes, int hw, float *y);
  void (*global_avgpool_backward) (const float *dy, int64_t planes, int hw, float *dx);

  /* Batch norm over the samples of one step: x is [n][c][hw]. Training:
   * batch mean and biased variance; saves xhat and invstd; updates running
   * stats (unbiased variance, as PyTorch). */
  void (*bn_forward_train) (const float *x, int n, int c, int hw, const float *gamma,
                            const float *beta, float eps, float momentum, float *running_mean,
                            float *running_var, float *xhat, float *invstd, float *y);
  /* Applies `times` more running-statistic updates with the batch statistics
   * of the last bn_forward_train (for inputs that repeat at every step). */
  void (*bn_repeat_running) (const float *invstd, const float *mean, int c, int count, float eps,
                             float momentum, int times, float *running_mean, float *running_var);
  void (*bn_forward_eval) (const float *x, int n, int c, int hw, const float *gamma,
                           const float *beta, float eps, const float *running_mean,
                           const float *running_var, float *y);
  void (*bn_backward) (const float *dy, const float *xhat, const float *invstd, int n, int c,
                       int hw, const float *gamma, float *dgamma, float *dbeta, float *dx);

  /* LIF over steps: x is [steps][count], or one [count] for every step when
   * x_repeats (a static input); v is the carried state [count] (updated).
   * Writes u (before reset), s unless NULL, and the spikes as bits unless
   * bits is NULL (see pack_spikes). */
  void (*lif_forward) (const SnnLifParams *p, const float *x, gboolean x_repeats, float *v,
                       int steps, int64_t count, float *u, float *s, uint64_t *bits);
  /* Backward over steps. temporal: follow the leak and reset routes between
   * steps (BPTT); otherwise every step stands alone (SLTT). ds is dL/ds per
   * step; writes dx = dL/du. */
  void (*lif_backward) (const SnnLifParams *p, const float *u, const float *ds, int steps,
                        int64_t count, gboolean temporal, float *dx);

  /* Scaled weight standardisation: rows x fan, see model.h. Saves the row
   * centred weights' scale for backward. */
  void (*ws_forward) (const float *w, const float *gain, int rows, int fan, float g0, float eps,
                      float *what, float *inv_scale);
  void (*ws_backward) (const float *w, const float *gain, const float *dwhat,
                       const float *inv_scale, int rows, int fan, float g0, float eps,
                       float *dw, float *dgain);

  /* Spikes (each exactly 0 or 1) to bits and back: `steps` rows of
   * `count`, each row packed into snn_spike_words (count) words, bit i % 64
   * of word i / 64. */
  void (*pack_spikes) (const float *s, int steps, int64_t count, uint64_t *bits);
  void (*unpack_spikes) (const uint64_t *bits, int steps, int64_t count, float *s);

  /* A linear layer on spikes: y = s W^T + bias for s [rows][in] whose
   * entries are 0 or 1, from wt = W^T [in][out]: each output row is the sum
   * of the weight columns of the inputs that fired; wt has SNN_SPIKE_SLACK
   * floats of slack after its end. fired_idx is scratch of
   * snn_spike_linear_scratch (rows, in) ints. Returns FALSE, having written
   * nothing to y, when more than a fifth of s is non-zero (a GEMM is then
   * faster). The CPU decides from the spikes (host memory, no sync); a
   * device backend decides from the shapes alone, so that no sync is
   * needed. */
  gboolean (*spike_linear) (const float *s, int rows, int in, int out, const float *wt, const float *bias,
                            int *fired_idx, float *y);
  /* dst [cols][rows] = src [rows][cols] */
  void (*transpose) (const float *src, int rows, int cols, float *dst);

  /* y[s][i] = x[s][i] * mask[s % batch][i] for rows = steps*batch */
  void (*mul_mask) (const float *x, const float *mask, int steps, int batch, int64_t count, float *y);

  /* y += a * x */
  void (*axpy) (int64_t n, float a, const float *x, float *y);
  /* y = a * x */
  void (*scale) (int64_t n, float a, const float *x, float *y);
  /* SYNC: returns <a, b> to the host (tests and tools; training uses dot_add). */
  double (*dot) (int64_t n, const float *a, const float *b);
  /* Optimizer updates (PyTorch's): SGD with momentum buffer buf (first: the
   * buffer starts as the gradient) and L2 weight decay; Adam with bias
   * corrections c1 = 1 - beta1^t, c2 = 1 - beta2^t. */
  void (*sgd_update) (float *w, const float *g, float *buf, int64_t n, float lr, float momentum,
                      float weight_decay, gboolean first);
  void (*adam_update) (float *w, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                       float beta2, float eps, float weight_decay, double c1, double c2);
  /* y[i] = sum over s of x[s][i] for steps s (added to y when accumulate) */
  void (*sum_steps) (const float *x, int steps, int64_t count, gboolean accumulate, float *y);
  /* mean[c] of the last batch statistics, from x and invstd: used together
   * with bn_repeat_running */
  void (*channel_mean) (const float *x, int n, int c, int hw, float *mean);

  /* Scalars in device memory: y += alpha * gain[0] * x and y = alpha *
   * gain[0] * x (gain NULL: 1); out[0] += alpha * <a, b>. */
  void (*axpy_gain) (int64_t n, float alpha, const float *gain, const float *x, float *y);
  void (*scale_gain) (int64_t n, float alpha, const float *gain, const float *x, float *y);
  void (*dot_add) (int64_t n, float alpha, const float *a, const float *b, float *out);
  /* SYNC: waits until every queued op has run (timing). */
  void (*finish) (void);
  /* SYNC: bytes of device memory this process holds now and at most since
   * the last reset; FALSE where the backend has no device memory (CPU). */
  gboolean (*device_memory) (int64_t *in_use, int64_t *peak, gboolean reset_peak);
};

static inline int64_t
snn_spike_words (int64_t count)
{
  return (count + 63) / 64;
}

#define SNN_SPIKE_SLACK 64

static inline int64_t
snn_spike_linear_scratch (int rows, int in)
{
  return (int64_t) rows * in / 5 + rows + 1;
}

/* The backend called `name` ("cpu" or "cuda"; NULL: $SNNWB_BACKEND, or
 * "cpu"). Fails with SNN_BACKEND_ERROR when the name is unknown, the
 * backend was not built, or it has no device to run on. */
const SnnBackend *snn_backend_get (const char *name, GError **error);
/* $SNNWB_BACKEND, or "cpu": the choice when nothing else names one. */
const char *snn_backend_default_name (void);
/* The backends this build holds, e.g. "cpu, cuda". */
const char *snn_backend_built (void);
/* One line about a backend (library, device, threads), for --version and
 * run headers. */
char *snn_backend_describe (const SnnBackend *be);

G_END_DECLS
