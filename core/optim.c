#include "optim.h"
#include <math.h>

struct SnnOptim {
  SnnNet *net;
  SnnOptimConfig cfg;
  float **m, **v;   /* momentum buffers / Adam moments, per parameter */
  long steps;
};

void
snn_optim_config_init (SnnOptimConfig *cfg)
{
  cfg->type = SNN_OPTIM_SGD;
  cfg->lr = 0.1;
  cfg->momentum = 0.9;
  cfg->weight_decay = 0.0;
  cfg->beta1 = 0.9;
  cfg->beta2 = 0.999;
  cfg->eps = 1e-8;
  cfg->cosine = TRUE;
}

SnnOptim *
snn_optim_new (SnnNet *net, const SnnOptimConfig *cfg)
{
  SnnOptim *o = g_new0 (SnnOptim, 1);
  int n = snn_net_n_params (net);
  o->net = net;
  o->cfg = *cfg;
  o->m = g_new0 (float *, n);
  o->v = g_new0 (float *, n);
  for (int i = 0; i < n; i++)
    {
      SnnParam *p = snn_net_param (net, i);
      if (!p->grad)
        continue;
      o->m[i] = g_new0 (float, p->info.numel);
      if (cfg->type == SNN_OPTIM_ADAM)
        o->v[i] = g_new0 (float, p->info.numel);
    }
  return o;
}

void
snn_optim_free (SnnOptim *o)
{
  if (!o)
    return;
  for (int i = 0; i < snn_net_n_params (o->net); i++)
    {
      g_free (o->m[i]);
      g_free (o->v[i]);
    }
  g_free (o->m);
  g_free (o->v);
  g_free (o);
}

/* The CPU backend keeps parameters in host memory, so the update runs here;
 * another backend would add an update kernel to its table. */
static void
sgd_update (SnnOptim *o, float *w, const float *g, float *buf, int64_t n, double lr)
{
  const float mom = (float) o->cfg.momentum, wd = (float) o->cfg.weight_decay;
  const gboolean first = o->steps == 0;
  for (int64_t j = 0; j < n; j++)
    {
      float d = g[j] + wd * w[j];
      if (mom != 0.0f)
        {
          buf[j] = first ? d : mom * buf[j] + d;
          d = buf[j];
        }
      w[j] -= (float) lr * d;
    }
}

static void
adam_update (SnnOptim *o, float *w, const float *g, float *m, float *v, int64_t n, double lr)
{
  const double b1 = o->cfg.beta1, b2 = o->cfg.beta2, t = (double) (o->steps + 1);
  const double c1 = 1.0 - pow (b1, t), c2 = 1.0 - pow (b2, t);
  const float wd = (float) o->cfg.weight_decay;
  for (int64_t j = 0; j < n; j++)
    {
      float d = g[j] + wd * w[j];
      m[j] = (float) (b1 * m[j] + (1 - b1) * d);
      v[j] = (float) (b2 * v[j] + (1 - b2) * d * d);
      double mh = m[j] / c1, vh = v[j] / c2;
      w[j] -= (float) (lr * mh / (sqrt (vh) + o->cfg.eps));
    }
}

void
snn_optim_step (SnnOptim *o, double lr)
{
  for (int i = 0; i < snn_net_n_params (o->net); i++)
    {
      SnnParam *p = snn_net_param (o->net, i);
      if (!p->grad)
        continue;
      if (o->cfg.type == SNN_OPTIM_ADAM)
        adam_update (o, p->data, p->grad, o->m[i], o->v[i], p->info.numel, lr);
      else
        sgd_update (o, p->data, p->grad, o->m[i], p->info.numel, lr);
    }
  o->steps++;
}

double
snn_optim_lr_at (const SnnOptimConfig *cfg, long iter, long total)
{
  if (!cfg->cosine || total <= 0)
    return cfg->lr;
  return 0.5 * cfg->lr * (1.0 + cos (M_PI * (double) MIN (iter, total) / (double) total));
}
