/* The per-element math of a LIF neuron, in one place: the membrane update,
 * the reset, the four surrogate derivatives and the backward step. Plain C
 * (no GLib), so that the CPU loops, the analysis and the CUDA kernels all
 * compile the same lines; under nvcc the functions run on host and device.
 * Surrogate codes are SnnSurrogate's (rectangle 0, triangle 1, sigmoid 2,
 * atan 3), resets SnnReset's (soft 0, hard 1). */
#pragma once
#include <math.h>

#ifdef __CUDACC__
#define SNN_HD __host__ __device__ __forceinline__
#else
#define SNN_HD static inline
#endif

enum { SNN_LIF_RECTANGLE, SNN_LIF_TRIANGLE, SNN_LIF_SIGMOID, SNN_LIF_ATAN };
enum { SNN_LIF_SOFT, SNN_LIF_HARD };

/* The leak: lam = 1 - 1/tau */
SNN_HD float
snn_lif_leak (float tau)
{
  return 1.0f - 1.0f / tau;
}

/* u[t] = lam * v[t-1] + x[t] */
SNN_HD float
snn_lif_charge (float lam, float v, float x)
{
  return lam * v + x;
}

SNN_HD float
snn_lif_fire (float u, float vth)
{
  return u >= vth ? 1.0f : 0.0f;
}

/* v[t] after the spike s of u[t]: hard sets to 0, soft subtracts vth. */
SNN_HD float
snn_lif_reset (int reset, float u, float s, float vth)
{
  return reset == SNN_LIF_HARD ? u * (1.0f - s) : u - vth * s;
}

/* ds/du of the spike function at x = u - vth; width g (rectangle,
 * triangle), sharpness a (sigmoid, atan). The factors in g are computed
 * whatever the branch, so that a loop over x computes them once and stays
 * free of branches (the CPU loops inline this with a constant shape). */
SNN_HD float
snn_lif_surrogate (int shape, float g, float a, float x)
{
  switch (shape)
    {
    case SNN_LIF_RECTANGLE:
      {
        const float inv = 1.0f / g;
        return fabsf (x) < 0.5f * g ? inv : 0.0f;
      }
    case SNN_LIF_TRIANGLE:
      {
        const float inv2 = 1.0f / (g * g), d = g - fabsf (x);
        return (d > 0.0f ? d : 0.0f) * inv2;
      }
    case SNN_LIF_SIGMOID:
      {
        float s = 1.0f / (1.0f + expf (-a * x));
        return a * s * (1.0f - s);
      }
    case SNN_LIF_ATAN:
      {
        float z = 1.57079632679489662f * a * x;
        return a / (2.0f * (1.0f + z * z));
      }
    default:
      return 0.0f;
    }
}

/* One step backward: dL/du[t] from ds = dL/ds[t], dv = dL/dv[t] (lam times
 * the next step's dL/du, 0 at the last step or without temporal routes) and
 * the surrogate sg at u[t]. detach: the reset passes no gradient. */
SNN_HD float
snn_lif_backward_step (int reset, int detach, float u, float vth, float ds, float dv, float sg)
{
  if (reset != SNN_LIF_HARD)
    return dv + (detach ? ds : ds - vth * dv) * sg;
  float s = snn_lif_fire (u, vth);
  return dv * (1.0f - s) + (detach ? ds : ds - u * dv) * sg;
}

/* du[t+1]/du[t] along the temporal route: lam through the leak, and
 * through the reset when it is not detached. */
SNN_HD float
snn_lif_epsilon_of (int reset, int detach, float lam, float u, float vth, float sg)
{
  if (reset != SNN_LIF_HARD)
    return detach ? lam : lam * (1.0f - vth * sg);
  float s = snn_lif_fire (u, vth);
  return detach ? lam * (1.0f - s) : lam * ((1.0f - s) - u * sg);
}
