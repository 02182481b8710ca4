#include "surrogate.h"

void
snn_surrogate_curve (const SnnLifParams *p, double x0, double x1, int n, double *xs, double *ys)
{
  for (int i = 0; i < n; i++)
    {
      double x = n > 1 ? x0 + (x1 - x0) * i / (n - 1) : x0;
      xs[i] = x;
      ys[i] = snn_surrogate_grad (p, (float) x);
    }
}
