/* Surrogate derivatives ds/du of the spike function, x = u - vth: the
 * formulas live in lif-math.h, shared with the device kernels. */
#pragma once
#include "model.h"
#include "lif-math.h"

G_STATIC_ASSERT ((int) SNN_SURROGATE_RECTANGLE == SNN_LIF_RECTANGLE && (int) SNN_SURROGATE_TRIANGLE == SNN_LIF_TRIANGLE
                 && (int) SNN_SURROGATE_SIGMOID == SNN_LIF_SIGMOID && (int) SNN_SURROGATE_ATAN == SNN_LIF_ATAN);
G_STATIC_ASSERT ((int) SNN_RESET_SOFT == SNN_LIF_SOFT && (int) SNN_RESET_HARD == SNN_LIF_HARD);

static inline float
snn_surrogate_grad (const SnnLifParams *p, float x)
{
  return snn_lif_surrogate (p->surrogate, p->width, p->alpha, x);
}

/* Samples the derivative on [x0, x1] for plots. */
void snn_surrogate_curve (const SnnLifParams *p, double x0, double x1, int n, double *xs, double *ys);
