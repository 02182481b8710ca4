/* CPU ops that take their scalars by pointer (host memory: read at once),
 * and the syncs, which are no-ops on the host. */
#include "backend-cpu.h"

static void
cpu_axpy_gain (int64_t n, float alpha, const float *gain, const float *x, float *y)
{
  snn_backend_cpu ()->axpy (n, alpha * (gain ? gain[0] : 1.0f), x, y);
}

static void
cpu_scale_gain (int64_t n, float alpha, const float *gain, const float *x, float *y)
{
  snn_backend_cpu ()->scale (n, alpha * (gain ? gain[0] : 1.0f), x, y);
}

static void
cpu_dot_add (int64_t n, float alpha, const float *a, const float *b, float *out)
{
  double acc = 0;
  for (int64_t i = 0; i < n; i++)
    acc += (double) a[i] * b[i];
  out[0] += (float) (alpha * acc);
}

static void
cpu_finish (void)
{
}

void
snn_backend_cpu_complete (SnnBackend *be)
{
  be->axpy_gain = cpu_axpy_gain;
  be->scale_gain = cpu_scale_gain;
  be->dot_add = cpu_dot_add;
  be->finish = cpu_finish;
  be->device_memory = NULL;
}
