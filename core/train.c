#include "train.h"
#include "pool.h"
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
  cfg->probe_first_sample = FALSE;
}

/* The loss of samples of a batch of `denom` (all of them: batch == denom). */
static double
step_loss (const SnnTrainConfig *cfg, const float *o, const int32_t *y, int batch, int classes, float *dout, int denom)
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
              db[c] = (float) (invT * ((1 - lam) * p / denom + lam * 2.0 * diff / ((double) denom * classes)));
            }
        }
    }
  return (1 - lam) * ce / denom + lam * mse / ((double) denom * classes);
}

double
snn_step_loss (const SnnTrainConfig *cfg, const float *o, const int32_t *y, int batch, int classes,
               float *dout)
{
  return step_loss (cfg, o, y, batch, classes, dout, batch);
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

static gboolean finish_batch (const float *o_all, int T, int batch, int C, const int32_t *y, SnnBatchResult *res,
                              GError **error);

/* ---- lanes ---- */

typedef struct {
  SnnNet *net;
  const SnnTrainConfig *cfg; /* NULL: evaluation */
  int T;
  const float *x;
  gboolean sequence;
  int batch;
  const int32_t *y;
  const gboolean *bp;
  SnnProbeFunc probe;      /* lane 0 calls it */
  gpointer probe_data;
  float *o_all;            /* [T][batch][classes] */
  double loss[SNN_NET_MAX_LANES];
} LaneJob;

/* Lane k trains its samples [lo, hi) as snn_train_batch trains a batch; the
 * loss and its gradient are those of the whole batch (means over all of
 * its samples). */
static void
train_lane (void *data, int k, int lanes)
{
  LaneJob *j = data;
  SnnNet *net = snn_net_lane (j->net, k);
  const int T = j->T, C = snn_net_model (net)->num_classes;
  const size_t in = snn_shape_numel (&snn_net_model (net)->input_shape);
  const gboolean training = j->cfg != NULL, bptt = training && j->cfg->method == SNN_METHOD_BPTT;
  int lo, hi;
  snn_lane_range (j->batch, lanes, k, &lo, &hi);
  const int n = hi - lo;
  const size_t out_floats = (size_t) n * C;
  float *o = snn_net_host_scratch (net, 2 * T * out_floats + (j->sequence && bptt ? T * n * in : 0));
  float *dout = o + T * out_floats, *xs = dout + T * out_floats;
  const int32_t *y = j->y + lo;
  double loss = 0;

  if (training)
    {
      snn_net_zero_grad (net);
      snn_net_set_recompute (net, bptt && j->cfg->recompute);
    }
  snn_net_configure (net, n, bptt ? T : 1);
  snn_net_reset_stats (net);
  snn_net_set_static_input (net, !j->sequence);
  snn_net_begin_sequence (net, training, NULL);
  snn_net_set_lif_forward_hook (net, k == 0 ? j->probe : NULL, j->probe_data);
  if (!training)
    for (int t = 0; t < T; t++)
      {
        snn_net_forward (net, j->x + ((j->sequence ? (size_t) t * j->batch : 0) + lo) * in, 1, FALSE);
        memcpy (o + t * out_floats, snn_net_output (net), out_floats * sizeof (float));
      }
  else if (bptt)
    {
      const float *x = j->x + lo * in;
      if (j->sequence)
        {
          for (int t = 0; t < T; t++)
            memcpy (xs + t * n * in, j->x + ((size_t) t * j->batch + lo) * in, n * in * sizeof (float));
          x = xs;
        }
      snn_net_forward (net, x, T, TRUE);
      memcpy (o, snn_net_output (net), T * out_floats * sizeof (float));
      for (int t = 0; t < T; t++)
        loss += step_loss (j->cfg, o + t * out_floats, y, n, C, dout + t * out_floats, j->batch) / T;
      if (isfinite (loss))
        snn_net_backward (net, dout, TRUE);
    }
  else
    for (int t = 0; t < T; t++)
      {
        snn_net_forward (net, j->x + ((j->sequence ? (size_t) t * j->batch : 0) + lo) * in, 1, j->bp[t]);
        memcpy (o + t * out_floats, snn_net_output (net), out_floats * sizeof (float));
        loss += step_loss (j->cfg, o + t * out_floats, y, n, C, dout, j->batch) / T;
        if (j->bp[t] && isfinite (loss))
          snn_net_backward (net, dout, FALSE);
      }
  snn_net_set_lif_forward_hook (net, NULL, NULL);
  if (training)
    snn_net_end_sequence (net);
  for (int t = 0; t < T; t++)
    memcpy (j->o_all + ((size_t) t * j->batch + lo) * C, o + t * out_floats, out_floats * sizeof (float));
  j->loss[k] = loss;
}

/* The batch in lanes: the loss and gradients summed over them in lane
 * order; the forward and backward time split as the lanes spent it. */
static void
train_lanes (SnnNet *net, int lanes, LaneJob *j, SnnBatchResult *res)
{
  snn_net_lanes_begin (net, lanes);
  gint64 t0 = g_get_monotonic_time ();
  snn_pool_run_coarse (lanes, train_lane, j);
  double wall_ms = (g_get_monotonic_time () - t0) / 1000.0, fwd = 0, bwd = 0;
  for (int k = 0; k < lanes; k++)
    {
      res->loss += j->loss[k];
      fwd += snn_net_stats (snn_net_lane (net, k))->forward_ms;
      bwd += snn_net_stats (snn_net_lane (net, k))->backward_ms;
    }
  snn_net_lanes_finish (net, lanes, j->cfg != NULL);
  res->forward_ms = fwd + bwd > 0 ? wall_ms * fwd / (fwd + bwd) : wall_ms;
  res->backward_ms = wall_ms - res->forward_ms;
  res->peak_held_bytes = snn_net_stats (net)->peak_held_bytes;
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
  int lanes = probe && !cfg->probe_first_sample ? 1 : snn_net_lanes (net, batch);
  if (lanes > 1)
    {
      LaneJob j = { net, cfg, T, x, sequence, batch, y, bp, probe, probe_data, o_all, { 0 } };
      snn_net_reset_stats (net);
      train_lanes (net, lanes, &j, res);
      return finish_batch (o_all, T, batch, C, y, res, error);
    }

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
  const SnnNetStats *st = snn_net_stats (net);
  res->forward_ms = st->forward_ms;
  res->backward_ms = st->backward_ms;
  res->peak_held_bytes = st->peak_held_bytes;
  return finish_batch (o_all, T, batch, C, y, res, error);
}

static gboolean
finish_batch (const float *o_all, int T, int batch, int C, const int32_t *y, SnnBatchResult *res, GError **error)
{
  count_correct (o_all, T, batch, C, y, res);
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
  int lanes = probe ? 1 : snn_net_lanes (net, batch);
  if (lanes > 1)
    {
      LaneJob j = { net, NULL, T, x, sequence, batch, y, NULL, NULL, NULL, o_all, { 0 } };
      train_lanes (net, lanes, &j, res);
      memset (res, 0, sizeof *res);
      count_correct (o_all, T, batch, C, y, res);
      return;
    }
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
