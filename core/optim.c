#include "optim.h"
#include "snn-error.h"
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
  const SnnBackend *be = snn_net_backend (net);
  o->net = net;
  o->cfg = *cfg;
  o->m = g_new0 (float *, n);
  o->v = g_new0 (float *, n);
  for (int i = 0; i < n; i++)
    {
      SnnParam *p = snn_net_param (net, i);
      if (!p->grad)
        continue;
      /* Optimizer state lives where the parameters do. */
      o->m[i] = be->alloc (p->info.numel * sizeof (float));
      if (cfg->type == SNN_OPTIM_ADAM)
        o->v[i] = be->alloc (p->info.numel * sizeof (float));
    }
  return o;
}

void
snn_optim_free (SnnOptim *o)
{
  if (!o)
    return;
  const SnnBackend *be = snn_net_backend (o->net);
  for (int i = 0; i < snn_net_n_params (o->net); i++)
    {
      if (o->m[i])
        be->free (o->m[i]);
      if (o->v[i])
        be->free (o->v[i]);
    }
  g_free (o->m);
  g_free (o->v);
  g_free (o);
}

void
snn_optim_step (SnnOptim *o, double lr)
{
  const SnnBackend *be = snn_net_backend (o->net);
  const double t = (double) (o->steps + 1);
  for (int i = 0; i < snn_net_n_params (o->net); i++)
    {
      SnnParam *p = snn_net_param (o->net, i);
      if (!p->grad)
        continue;
      if (o->cfg.type == SNN_OPTIM_ADAM)
        be->adam_update (p->data, p->grad, o->m[i], o->v[i], p->info.numel, (float) lr, (float) o->cfg.beta1,
                         (float) o->cfg.beta2, (float) o->cfg.eps, (float) o->cfg.weight_decay,
                         1.0 - pow (o->cfg.beta1, t), 1.0 - pow (o->cfg.beta2, t));
      else
        be->sgd_update (p->data, p->grad, o->m[i], p->info.numel, (float) lr, (float) o->cfg.momentum,
                        (float) o->cfg.weight_decay, o->steps == 0);
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

void
snn_optim_save_state (SnnOptim *o, SnnNpz *npz)
{
  const SnnBackend *be = snn_net_backend (o->net);
  for (int i = 0; i < snn_net_n_params (o->net); i++)
    {
      SnnParam *p = snn_net_param (o->net, i);
      float *bufs[2] = { o->m[i], o->v[i] };
      for (int k = 0; k < 2; k++)
        if (bufs[k])
          {
            SnnArray *a = snn_array_new (SNN_DTYPE_F32, p->info.ndim, p->info.shape);
            be->download (a->data, bufs[k], p->info.numel * sizeof (float));
            g_autofree char *name = g_strdup_printf ("optim.%c.%s", "mv"[k], p->name);
            snn_npz_add (npz, name, a);
          }
    }
  int64_t one = 1;
  SnnArray *steps = snn_array_new (SNN_DTYPE_I64, 1, &one);
  ((int64_t *) steps->data)[0] = o->steps;
  snn_npz_add (npz, "optim.steps", steps);
}

gboolean
snn_optim_load_state (SnnOptim *o, const SnnNpz *npz, const char *source, GError **error)
{
  const SnnBackend *be = snn_net_backend (o->net);
  SnnArray *steps = snn_npz_get (npz, "optim.steps");
  if (!steps || steps->dtype != SNN_DTYPE_I64 || snn_array_numel (steps) != 1 || ((int64_t *) steps->data)[0] < 0)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_MISSING, "%s: 'optim.steps' is missing or not one int64", source);
      return FALSE;
    }
  for (int i = 0; i < snn_net_n_params (o->net); i++)
    {
      SnnParam *p = snn_net_param (o->net, i);
      float *bufs[2] = { o->m[i], o->v[i] };
      for (int k = 0; k < 2; k++)
        {
          if (!bufs[k])
            continue;
          g_autofree char *name = g_strdup_printf ("optim.%c.%s", "mv"[k], p->name);
          SnnArray *a = snn_npz_get (npz, name);
          if (!a || a->dtype != SNN_DTYPE_F32 || snn_array_numel (a) != p->info.numel)
            {
              g_set_error (error, SNN_IO_ERROR, SNN_ERROR_MISSING,
                           "%s: '%s' is missing or not %" G_GINT64_FORMAT " float32 values (another optimizer?)",
                           source, name, p->info.numel);
              return FALSE;
            }
          be->upload (bufs[k], a->data, p->info.numel * sizeof (float));
        }
    }
  o->steps = ((int64_t *) steps->data)[0];
  return TRUE;
}
