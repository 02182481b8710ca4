/* The CUDA kernels and cuBLAS calls behind the CUDA backend, as plain C
 * (no GLib: nvcc compiles kernels.cu without it). The arguments follow the
 * backend table (backend.h) with int for gboolean; all run on one stream. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  float tau, vth, width, alpha;
  int reset, surrogate, detach;
} SnnCuLif;

/* 0 on success; otherwise err holds why there is no usable device. */
int  snn_cu_open (char *err, size_t errlen, int tf32);
void snn_cu_describe (char *out, size_t len);
/* Wait for the stream; returns 0, or writes the first error. */
int  snn_cu_sync (char *err, size_t errlen);

void *snn_cu_malloc (size_t bytes);   /* zero-filled; NULL when out of memory */
void  snn_cu_free (void *p);
void  snn_cu_upload (void *dst, const void *src, size_t bytes);
void  snn_cu_download (void *dst, const void *src, size_t bytes);
void  snn_cu_zero (void *dst, size_t bytes);
void  snn_cu_copy (void *dst, const void *src, size_t bytes);

void snn_cu_gemm (int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                  float beta, float *c, int ldc);
void snn_cu_gemm_batched (int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, int64_t sa,
                          const float *b, int ldb, int64_t sb, float beta, float *c, int ldc, int64_t sc, int count);
void snn_cu_add_bias_rows (float *y, const float *bias, int rows, int cols);
void snn_cu_bias_grad_rows (float *db, const float *dy, int rows, int cols);
void snn_cu_add_bias_channels (float *y, const float *bias, int n, int c, int hw);
void snn_cu_bias_grad_channels (float *db, const float *dy, int n, int c, int hw);
void snn_cu_im2col (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow,
                    float *col);
void snn_cu_conv_forward (const float *x, const float *w, const float *bias, int n, int c, int h, int wd, int o, int k,
                          int stride, int pad, int oh, int ow, float *col, float *y);
void snn_cu_conv_weight_grad (const float *x, const float *dy, int n, int c, int h, int wd, int o, int k, int stride,
                              int pad, int oh, int ow, float *col, float *dw);
void snn_cu_conv_input_grad (const float *w, const float *dy, int o, int n, int c, int h, int wd, int k, int stride,
                             int pad, int oh, int ow, float *col, float *dx);
void snn_cu_cn_to_nchw (const float *m, int n, int c, int hw, float *y);
void snn_cu_nchw_to_cn (const float *y, int n, int c, int hw, float *m);
void snn_cu_avgpool_forward (const float *x, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow,
                             float *y);
void snn_cu_avgpool_backward (const float *dy, int n, int c, int h, int w, int k, int stride, int pad, int oh, int ow,
                              float *dx);
void snn_cu_global_avgpool_forward (const float *x, int64_t planes, int hw, float *y);
void snn_cu_global_avgpool_backward (const float *dy, int64_t planes, int hw, float *dx);
void snn_cu_bn_forward_train (const float *x, int n, int c, int hw, const float *gamma, const float *beta, float eps,
                              float momentum, float *running_mean, float *running_var, float *xhat, float *invstd,
                              float *y);
void snn_cu_bn_repeat_running (const float *invstd, const float *mean, int c, int count, float eps, float momentum,
                               int times, float *running_mean, float *running_var);
void snn_cu_bn_forward_eval (const float *x, int n, int c, int hw, const float *gamma, const float *beta, float eps,
                             const float *running_mean, const float *running_var, float *y);
void snn_cu_bn_backward (const float *dy, const float *xhat, const float *invstd, int n, int c, int hw,
                         const float *gamma, float *dgamma, float *dbeta, float *dx);
void snn_cu_lif_forward (const SnnCuLif *p, const float *x, int x_repeats, float *v, int steps, int64_t count,
                         float *u, float *s, uint64_t *bits);
void snn_cu_lif_backward (const SnnCuLif *p, const float *u, const float *ds, int steps, int64_t count, int temporal,
                          float *dx);
void snn_cu_ws_forward (const float *w, const float *gain, int rows, int fan, float g0, float eps, float *what,
                        float *inv_scale);
void snn_cu_ws_backward (const float *w, const float *gain, const float *dwhat, const float *inv_scale, int rows,
                         int fan, float g0, float eps, float *dw, float *dgain);
void snn_cu_pack_spikes (const float *s, int steps, int64_t count, uint64_t *bits);
void snn_cu_unpack_spikes (const uint64_t *bits, int steps, int64_t count, float *s);
int  snn_cu_spike_linear (const float *s, int rows, int in, int out, const float *wt, const float *bias,
                          int *fired_idx, float *y);
void snn_cu_transpose (const float *src, int rows, int cols, float *dst);
void snn_cu_mul_mask (const float *x, const float *mask, int steps, int batch, int64_t count, float *y);
void snn_cu_axpy (int64_t n, float a, const float *x, float *y);
void snn_cu_scale (int64_t n, float a, const float *x, float *y);
double snn_cu_dot (int64_t n, const float *a, const float *b);
void snn_cu_sgd_update (float *w, const float *g, float *buf, int64_t n, float lr, float momentum,
                        float weight_decay, int first);
void snn_cu_adam_update (float *w, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                         float eps, float weight_decay, double c1, double c2);
void snn_cu_sum_steps (const float *x, int steps, int64_t count, int accumulate, float *y);
void snn_cu_channel_mean (const float *x, int n, int c, int hw, float *mean);
void snn_cu_axpy_gain (int64_t n, float alpha, const float *gain, const float *x, float *y);
void snn_cu_scale_gain (int64_t n, float alpha, const float *gain, const float *x, float *y);
void snn_cu_dot_add (int64_t n, float alpha, const float *a, const float *b, float *out);

#ifdef __cplusplus
}
#endif
