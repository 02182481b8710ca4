/* The CUDA backend's table: the device code lives in kernels.cu; here are
 * the parts that speak GLib (errors, the allocation record). */
#include "backend-cuda.h"
#include "cuda-kernels.h"
#include <gmodule.h>
#include <string.h>

/* Device bytes per pointer, for the in-use and peak counts. */
static GHashTable *sizes;
static GMutex lock;
static int64_t in_use, peak;

static void *
cu_alloc (size_t bytes)
{
  void *p = snn_cu_malloc (bytes);
  if (!p)
    g_error ("CUDA: out of device memory allocating %zu bytes", bytes);
  g_mutex_lock (&lock);
  g_hash_table_insert (sizes, p, GSIZE_TO_POINTER (bytes));
  in_use += bytes;
  peak = MAX (peak, in_use);
  g_mutex_unlock (&lock);
  return p;
}

static void
cu_free (void *p)
{
  if (!p)
    return;
  g_mutex_lock (&lock);
  in_use -= GPOINTER_TO_SIZE (g_hash_table_lookup (sizes, p));
  g_hash_table_remove (sizes, p);
  g_mutex_unlock (&lock);
  snn_cu_free (p);
}

static gboolean
cu_device_memory (int64_t *now, int64_t *max, gboolean reset_peak)
{
  char err[256];
  if (snn_cu_sync (err, sizeof err))
    g_error ("CUDA: %s", err);
  g_mutex_lock (&lock);
  if (reset_peak)
    peak = in_use;
  *now = in_use;
  *max = peak;
  g_mutex_unlock (&lock);
  return TRUE;
}

static void
cu_finish (void)
{
  char err[256];
  if (snn_cu_sync (err, sizeof err))
    g_error ("CUDA: %s", err);
}

static SnnCuLif
lif_of (const SnnLifParams *p)
{
  return (SnnCuLif) { p->tau, p->vth, p->width, p->alpha, p->reset, p->surrogate, p->detach_reset };
}

static void
cu_lif_forward (const SnnLifParams *p, const float *x, gboolean x_repeats, float *v, int steps, int64_t count,
                float *u, float *s, uint64_t *bits)
{
  SnnCuLif l = lif_of (p);
  snn_cu_lif_forward (&l, x, x_repeats, v, steps, count, u, s, bits);
}

static void
cu_lif_backward (const SnnLifParams *p, const float *u, const float *ds, int steps, int64_t count, gboolean temporal,
                 float *dx)
{
  SnnCuLif l = lif_of (p);
  snn_cu_lif_backward (&l, u, ds, steps, count, temporal, dx);
}

static const SnnBackend cuda_backend = {
  .name = "cuda",
  .alloc = cu_alloc,
  .free = cu_free,
  .upload = snn_cu_upload,
  .download = snn_cu_download,
  .zero = snn_cu_zero,
  .copy = snn_cu_copy,
  .gemm = snn_cu_gemm,
  .gemm_batched = snn_cu_gemm_batched,
  .add_bias_rows = snn_cu_add_bias_rows,
  .bias_grad_rows = snn_cu_bias_grad_rows,
  .add_bias_channels = snn_cu_add_bias_channels,
  .bias_grad_channels = snn_cu_bias_grad_channels,
  .im2col = snn_cu_im2col,
  .conv_forward = snn_cu_conv_forward,
  .conv_weight_grad = snn_cu_conv_weight_grad,
  .conv_input_grad = snn_cu_conv_input_grad,
  .cn_to_nchw = snn_cu_cn_to_nchw,
  .nchw_to_cn = snn_cu_nchw_to_cn,
  .avgpool_forward = snn_cu_avgpool_forward,
  .avgpool_backward = snn_cu_avgpool_backward,
  .global_avgpool_forward = snn_cu_global_avgpool_forward,
  .global_avgpool_backward = snn_cu_global_avgpool_backward,
  .bn_forward_train = snn_cu_bn_forward_train,
  .bn_repeat_running = snn_cu_bn_repeat_running,
  .bn_forward_eval = snn_cu_bn_forward_eval,
  .bn_backward = snn_cu_bn_backward,
  .lif_forward = cu_lif_forward,
  .lif_backward = cu_lif_backward,
  .ws_forward = snn_cu_ws_forward,
  .ws_backward = snn_cu_ws_backward,
  .pack_spikes = snn_cu_pack_spikes,
  .unpack_spikes = snn_cu_unpack_spikes,
  .spike_linear = snn_cu_spike_linear,
  .transpose = snn_cu_transpose,
  .mul_mask = snn_cu_mul_mask,
  .axpy = snn_cu_axpy,
  .scale = snn_cu_scale,
  .dot = snn_cu_dot,
  .sgd_update = snn_cu_sgd_update,
  .adam_update = snn_cu_adam_update,
  .sum_steps = snn_cu_sum_steps,
  .channel_mean = snn_cu_channel_mean,
  .axpy_gain = snn_cu_axpy_gain,
  .scale_gain = snn_cu_scale_gain,
  .dot_add = snn_cu_dot_add,
  .finish = cu_finish,
  .device_memory = cu_device_memory,
};

/* TF32 tensor cores for the GEMMs only when asked for ($SNNWB_CUDA_TF32=1). */
static gboolean
tf32_wanted (void)
{
  const char *env = g_getenv ("SNNWB_CUDA_TF32");
  return env && g_str_equal (env, "1");
}

G_MODULE_EXPORT const SnnBackend *
snn_cuda_module_open (char *why, size_t len)
{
  static gsize done = 0;
  static char reason[512];
  if (g_once_init_enter (&done))
    {
      sizes = g_hash_table_new (g_direct_hash, g_direct_equal);
      gsize failed = snn_cu_open (reason, sizeof reason, tf32_wanted ()) ? 2 : 1;
      g_once_init_leave (&done, failed);
    }
  if (done == 2)
    {
      g_strlcpy (why, reason, len);
      return NULL;
    }
  return &cuda_backend;
}

/* The table without opening a device: lets a test check that every op is
 * there on a machine without a GPU. */
G_MODULE_EXPORT const SnnBackend *
snn_cuda_module_table (void)
{
  return &cuda_backend;
}

G_MODULE_EXPORT void
snn_cuda_module_describe (char *out, size_t len)
{
  char d[256];
  snn_cu_describe (d, sizeof d);
  g_snprintf (out, len, "%s, %s GEMMs", d, tf32_wanted () ? "TF32" : "FP32");
}
