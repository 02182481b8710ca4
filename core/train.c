#include "train.h"
#include "snn-error.h"
#include <math.h>
#include <string.h>

static const char *method_names[SNN_METHOD_N] = { "bptt", "sltt", "sltt_k" };

const char *
snn_method_name (SnnMethod m)
{
  return m < SNN_METHOD_N ? method_names[m] : "?";
}

gboolean
snn_method_from_name (const char *name, SnnMethod *out)
{
  for (int i = 0; i < SNN_METHOD_N; i++)
    if (g_strcmp0 (name, method_names[i]) == 0 || (i == SNN_METHOD_SLTT_K && g_strcmp0 (name, "sltt-k") == 0))
      {
        *out = (SnnMethod) i;
        return TRUE;
      }
  return FALSE;
}

void
snn_train_config_init (SnnTrainConfig *cfg)
{
  cfg->method = SNN_METHOD_SLTT;
  cfg->T = 4;
  cfg->K = 2;
  cfg->lambda = 0.0f;
  cfg->mse_onehot = FALSE;
  cfg->mse_target = 1.0f;
  cfg->recompute = TRUE;
}

double
snn_step_loss (const SnnTrainConfig *cfg, const float *o, const int32_t *y, int batch, int classes,
               float *dout)
{
  const double lam = cfg->lambda, invT = 1.0 / cfg->T;
  double ce = 0, mse = 0;
  for (int b = 0; b < batch; b++)
    {
      const float *ob = o + (size_t) b * classes;
      float *db = dout ? dout + (size_t) b * classes : NULL;
      double mx = ob[0];
      for (int c = 1; c < classes; c++)
        mx = MAX (mx, ob[c]);
      double z = 0;
      for (int c = 0; c < classes; c++)
        z += exp (ob[c] - mx);
      double logz = mx + log (z);
      ce += logz - ob[y[b]];
      for (int c = 0; c < classes; c++)
        {
          double target = cfg->mse_onehot ? (c == y[b]) : cfg->mse_target;
          double diff = ob[c] - target;
          mse += diff * diff;
          if (db)
            {
              double p = exp (ob[c] - logz) - (c == y[b]);
              db[c] = (float) (invT * ((1 - lam) * p / batch + lam * 2.0 * diff / ((double) batch * classes)));
            }
        }
    }
  return (1 - lam) * ce / batch + lam * mse / ((double) batch * classes);
}

static void
count_correct (const float *o, int T, int batch, int classes, const int32_t *y, SnnBatchResult *res)
{
  for (int b = 0; b < batch; b++)
    {
      int best = 0;
      double best_v = -INFINITY;
      for (int c = 0; c < classes; c++)
        {
          double s = 0;
          for (int t = 0; t < T; t++)
            s += o[((size_t) t * batch + b) * classes + c];
          if (s > best_v)
            {
              best_v = s;
              best = c;
            }
        }
      res->correct += best == y[b];
    }
  res->count += batch;
}

/* Which steps to backpropagate: all for BPTT/SLTT, K drawn (or given) for SLTT-K. */
static void
choose_steps (const SnnTrainConfig *cfg, const int *k_steps, int n_k, SnnRng *rng, gboolean *bp, SnnBatchResult *res)
{
  int T = cfg->T;
  res->n_k_steps = 0;
  for (int t = 0; t < T; t++)
    bp[t] = cfg->method != SNN_METHOD_SLTT_K;
  if (cfg->method == SNN_METHOD_SLTT_K)
    {
      if (k_steps)
        for (int i = 0; i < n_k; i++)
          bp[k_steps[i]] = TRUE;
      else
        {
          int perm[T];
          snn_rng_permutation (rng, perm, T);
          for (int i = 0; i < MIN (cfg->K, T); i++)
            bp[perm[i]] = TRUE;
        }
    }
  for (int t = 0; t < T && res->n_k_steps < (int) G_N_ELEMENTS (res->k_steps); t++)
    if (bp[t])
      res->k_steps[res->n_k_steps++] = t;
}

static const float *
step_input (const float *x, gboolean sequence, int t, size_t step_floats)
{
  return sequence ? x + (size_t) t * step_floats : x;
}

gboolean
snn_train_batch (SnnNet *net, const SnnTrainConfig *cfg, const float *x, gboolean sequence, int batch,
                 const int32_t *y, const int *k_steps, int n_k_steps, SnnRng *rng, SnnProbeFunc probe,
                 gpointer probe_data, float *o, SnnBatchResult *res, GError **error)
{
  const SnnModel *m = snn_net_model (net);
  const int T = cfg->T, C = m->num_classes;
  const size_t step_floats = (size_t) batch * snn_shape_numel (&m->input_shape);
  const size_t out_floats = (size_t) batch * C;
  gboolean bp[T];
  memset (res, 0, sizeof *res);
  choose_steps (cfg, k_steps, n_k_steps, rng, bp, res);
  float *scratch = snn_net_host_scratch (net, 2 * T * out_floats);
  float *o_all = o ? o : scratch, *dout = scratch + T * out_floats;
  gboolean bptt = cfg->method == SNN_METHOD_BPTT;

  /* BPTT keeps spike bits and recomputes the rest in backward; SLTT holds
   * one step, recomputing would only cost time. */
  snn_net_set_recompute (net, bptt && cfg->recompute);
  snn_net_configure (net, batch, bptt ? T : 1);
  snn_net_reset_stats (net);
  snn_net_set_static_input (net, !sequence);
  snn_net_begin_sequence (net, TRUE, rng);
  snn_net_set_lif_forward_hook (net, probe, probe_data);
  if (bptt)
    {
      /* One chunk of T steps. */
      snn_net_forward (net, x, T, TRUE);
      memcpy (o_all, snn_net_output (net), T * out_floats * sizeof (float));
      for (int t = 0; t < T; t++)
        res->loss += snn_step_loss (cfg, o_all + t * out_floats, y, batch, C, dout + t * out_floats) / T;
      if (isfinite (res->loss))
        snn_net_backward (net, dout, TRUE);
    }
  else
    for (int t = 0; t < T; t++)
      {
        /* SLTT: each step's loss is backpropagated right after its forward pass. */
        snn_net_forward (net, step_input (x, sequence, t, step_floats), 1, bp[t]);
        memcpy (o_all + t * out_floats, snn_net_output (net), out_floats * sizeof (float));
        res->loss += snn_step_loss (cfg, o_all + t * out_floats, y, batch, C, dout) / T;
        if (bp[t] && isfinite (res->loss))
          snn_net_backward (net, dout, FALSE);
      }
  snn_net_set_lif_forward_hook (net, NULL, NULL);
  snn_net_end_sequence (net);
  count_correct (o_all, T, batch, C, y, res);
  const SnnNetStats *st = snn_net_stats (net);
  res->forward_ms = st->forward_ms;
  res->backward_ms = st->backward_ms;
  res->peak_held_bytes = st->peak_held_bytes;
  if (!isfinite (res->loss))
    {
      g_set_error (error, SNN_TRAIN_ERROR, SNN_ERROR_NONFINITE,
                   "the loss is %s: training diverged (try a smaller learning rate)", isnan (res->loss) ? "NaN" : "infinite");
      return FALSE;
    }
  return TRUE;
}

void
snn_eval_batch (SnnNet *net, int T, const float *x, gboolean sequence, int batch, const int32_t *y,
                SnnProbeFunc probe, gpointer probe_data, float *o, SnnBatchResult *res)
{
  const SnnModel *m = snn_net_model (net);
  const int C = m->num_classes;
  const size_t step_floats = (size_t) batch * snn_shape_numel (&m->input_shape);
  const size_t out_floats = (size_t) batch * C;
  float *o_all = o ? o : snn_net_host_scratch (net, T * out_floats);
  memset (res, 0, sizeof *res);
  snn_net_configure (net, batch, 1);
  snn_net_set_static_input (net, !sequence);
  snn_net_begin_sequence (net, FALSE, NULL);
  snn_net_set_lif_forward_hook (net, probe, probe_data);
  for (int t = 0; t < T; t++)
    {
      snn_net_forward (net, step_input (x, sequence, t, step_floats), 1, FALSE);
      memcpy (o_all + t * out_floats, snn_net_output (net), out_floats * sizeof (float));
    }
  snn_net_set_lif_forward_hook (net, NULL, NULL);
  count_correct (o_all, T, batch, C, y, res);
}

SnnLifRecord *
snn_lif_record_new (const SnnModel *model, int T, int batch)
{
  SnnLifRecord *r = g_new0 (SnnLifRecord, 1);
  r->n_layers = model->n_layers, r->T = T, r->batch = batch;
  r->spikes = g_new0 (SnnArray *, model->n_layers);
  r->u = g_new0 (SnnArray *, model->n_layers);
  for (int l = 0; l < model->n_layers; l++)
    if (model->layers[l].type == SNN_LAYER_LIF)
      {
        const SnnShape *s = &model->layers[l].out_shape;
        int64_t shape[2 + G_N_ELEMENTS (s->d)];
        shape[0] = T, shape[1] = batch;
        for (int i = 0; i < s->ndim; i++)
          shape[2 + i] = s->d[i];
        r->spikes[l] = snn_array_new (SNN_DTYPE_F32, 2 + s->ndim, shape);
        r->u[l] = snn_array_new (SNN_DTYPE_F32, 2 + s->ndim, shape);
      }
  return r;
}

void
snn_lif_record_probe (SnnNet *net, int layer, int first_step, int steps, gpointer record)
{
  SnnLifRecord *r = record;
  if (!r->spikes[layer])
    return;
  size_t per_step = (size_t) r->batch * snn_net_layer_size (net, layer);
  snn_net_read_lif (net, layer, TRUE, (float *) r->spikes[layer]->data + first_step * per_step);
  snn_net_read_lif (net, layer, FALSE, (float *) r->u[layer]->data + first_step * per_step);
}

void
snn_lif_record_move_to_npz (SnnLifRecord *r, SnnNpz *npz)
{
  for (int l = 0; l < r->n_layers; l++)
    if (r->spikes[l])
      {
        g_autofree char *sn = g_strdup_printf ("spikes.%d", l);
        g_autofree char *vn = g_strdup_printf ("v.%d", l);
        snn_npz_add (npz, sn, r->spikes[l]);
        snn_npz_add (npz, vn, r->u[l]);
        r->spikes[l] = r->u[l] = NULL;
      }
}

void
snn_lif_record_free (SnnLifRecord *r)
{
  if (!r)
    return;
  for (int l = 0; l < r->n_layers; l++)
    {
      snn_array_free (r->spikes[l]);
      snn_array_free (r->u[l]);
    }
  g_free (r->spikes);
  g_free (r->u);
  g_free (r);
}
