/* Surrogate derivatives ds/du of the spike function, x = u - vth. */
#pragma once
#include "model.h"
#include <math.h>

static inline float
snn_surrogate_grad (const SnnLifParams *p, float x)
{
  float g = p->width, a = p->alpha;
  switch (p->surrogate)
    {
    case SNN_SURROGATE_RECTANGLE:
      return fabsf (x) < 0.5f * g ? 1.0f / g : 0.0f;
    case SNN_SURROGATE_TRIANGLE:
      {
        float d = g - fabsf (x);
        return d > 0.0f ? d / (g * g) : 0.0f;
      }
    case SNN_SURROGATE_SIGMOID:
      {
        float s = 1.0f / (1.0f + expf (-a * x));
        return a * s * (1.0f - s);
      }
    case SNN_SURROGATE_ATAN:
      {
        float z = (float) M_PI_2 * a * x;
        return a / (2.0f * (1.0f + z * z));
      }
    default:
      return 0.0f;
    }
}

/* Samples the derivative on [x0, x1] for plots. */
void snn_surrogate_curve (const SnnLifParams *p, double x0, double x1, int n, double *xs, double *ys);
