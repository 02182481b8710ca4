#include "trainer.h"
#include "events.h"
#include "snn-error.h"
#include <math.h>
#include <string.h>

struct SnnTrainer {
  SnnExperiment *e;
  SnnDataset *train, *test;
  SnnNet *net;
  SnnOptim *opt;
  SnnRng data_rng, train_rng, aug_rng;
  int *order;
  int epoch, iter_in_epoch, iters_per_epoch;
  long global_iter;
  float *xbuf;
  int32_t *ybuf;
  double lr_override;
  /* running sums of the epoch */
  double sum_loss, sum_fwd, sum_bwd;
  long sum_correct, sum_count;
  int64_t peak_held;
  gint64 epoch_start;
  SnnEpochInfo last;
  SnnProbeFunc probe;
  gpointer probe_data;
};

int64_t
snn_process_peak_bytes (void)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0;
  const char *p = strstr (status, "VmHWM:");
  return p ? g_ascii_strtoll (p + 6, NULL, 10) * 1024 : 0;
}

/* An event dataset integrated into T frames (cached on disk when asked). */
static SnnDataset *
load_events (const SnnExperiment *e, gboolean train, int subset, GError **error)
{
  if (e->dataset == SNN_DATASET_SYNTHETIC_EVENTS)
    {
      int n = subset > 0 ? subset : (train ? 2000 : 500);
      return snn_dataset_synthetic_events (n, e->train.T, e->frame_size > 0 ? e->frame_size : 32,
                                           e->seed * 2 + (train ? 0 : 1), error);
    }
  if (!e->dataset_path)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING, "%s: %s needs the folder of its files (dataset path)",
                   e->source, snn_dataset_kind_name (e->dataset));
      return NULL;
    }
  SnnEventFrameOptions o;
  snn_event_frame_options_init (&o);
  o.T = e->train.T;
  o.split = e->frame_split_time ? SNN_SPLIT_TIME : SNN_SPLIT_NUMBER;
  o.resize = e->frame_resize_bilinear ? SNN_RESIZE_BILINEAR : SNN_RESIZE_AREA;
  o.size = e->frame_size > 0 ? e->frame_size : (e->dataset == SNN_DATASET_CIFAR10_DVS ? 48 : 0);
  g_autofree char *cache = e->frame_cache ? snn_events_default_cache_dir () : NULL;
  o.cache_dir = cache;
  gboolean hit = FALSE;
  switch (e->dataset)
    {
    case SNN_DATASET_DVS_GESTURE:
      return snn_dataset_load_dvs_gesture (e->dataset_path, train, &o, &hit, error);
    case SNN_DATASET_CIFAR10_DVS:
      return snn_dataset_load_cifar10_dvs (e->dataset_path, train, &o, &hit, error);
    default:
      return snn_dataset_load_nmnist (e->dataset_path, train, &o, &hit, error);
    }
}

static SnnDataset *
load_cifar (const SnnExperiment *e, gboolean train, GError **error)
{
  int classes = e->dataset == SNN_DATASET_CIFAR100 ? 100 : 10;
  if (!e->dataset_path)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING, "%s: %s needs the folder of its binary files (dataset path)",
                   e->source, snn_dataset_kind_name (e->dataset));
      return NULL;
    }
  SnnDataset *ds = snn_dataset_load_cifar (e->dataset_path, classes, train, error);
  if (ds && e->normalize)
    {
      float mean[3], std[3];
      snn_cifar_norm_constants (classes, mean, std);
      snn_dataset_normalize_channels (ds, mean, std);
    }
  return ds;
}

static SnnDataset *
load_mnist (const SnnExperiment *e, gboolean train, const float *norm, GError **error)
{
  const char *dir = e->dataset_path;
  if (!dir && e->dataset == SNN_DATASET_FASHION_MNIST)
    dir = SNN_FASHION_MNIST_DIR;
  if (!dir)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING, "%s: MNIST needs the folder of its IDX files (dataset path)",
                   e->source);
      return NULL;
    }
  SnnDataset *ds = snn_dataset_load_mnist_dir (dir, train, error);
  if (ds && e->normalize)
    {
      /* Both splits take the statistics of the training split. */
      float mean, std;
      if (norm)
        mean = norm[0], std = norm[1];
      else
        snn_dataset_stats (ds, &mean, &std);
      ds->norm_mean = mean;
      ds->norm_std = std > 0 ? std : 1.0f;
      snn_dataset_normalize (ds, ds->norm_mean, ds->norm_std);
    }
  return ds;
}

SnnDataset *
snn_experiment_load_dataset (const SnnExperiment *e, gboolean train, const float *norm, GError **error)
{
  SnnDataset *ds = NULL;
  int subset = train ? e->train_subset : e->test_subset;
  if (e->dataset == SNN_DATASET_SYNTHETIC)
    {
      int n = subset > 0 ? subset : (train ? 2000 : 500);
      ds = snn_dataset_synthetic_temporal (n, e->train.T, e->seed * 2 + (train ? 0 : 1));
      subset = 0;
    }
  else if (snn_dataset_kind_is_events (e->dataset))
    {
      ds = load_events (e, train, subset, error);
      if (e->dataset == SNN_DATASET_SYNTHETIC_EVENTS)
        subset = 0;
    }
  else if (e->dataset == SNN_DATASET_CIFAR10 || e->dataset == SNN_DATASET_CIFAR100)
    ds = load_cifar (e, train, error);
  else
    ds = load_mnist (e, train, norm, error);
  if (!ds)
    return NULL;
  if (subset > 0 && subset < ds->n)
    {
      SnnDataset *s = snn_dataset_subset (ds, subset, e->seed + (train ? 11 : 13));
      s->norm_mean = ds->norm_mean;
      s->norm_std = ds->norm_std;
      snn_dataset_free (ds);
      ds = s;
    }
  const SnnModel *m = e->model;
  if (ds->sample_size != snn_shape_numel (&m->input_shape) || ds->num_classes > m->num_classes)
    {
      g_autofree char *ms = snn_shape_to_string (&m->input_shape);
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE,
                   "%s: the model takes inputs %s and %d classes, the dataset %s gives %d values and %d classes",
                   e->source, ms, m->num_classes, ds->name, ds->sample_size, ds->num_classes);
      snn_dataset_free (ds);
      return NULL;
    }
  if (ds->seq_T > 0 && ds->seq_T != e->train.T)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE, "%s: the dataset has %d frames per sample but T is %d",
                   e->source, ds->seq_T, e->train.T);
      snn_dataset_free (ds);
      return NULL;
    }
  return ds;
}

SnnTrainer *
snn_trainer_new (const SnnExperiment *e, GError **error)
{
  /* The backend first: a missing device fails before any data is read. */
  const SnnBackend *be = snn_backend_get (e->backend, error);
  if (!be)
    return NULL;
  SnnTrainer *tr = g_new0 (SnnTrainer, 1);
  tr->e = snn_experiment_copy (e);
  tr->train = snn_experiment_load_dataset (tr->e, TRUE, NULL, error);
  float norm[2] = { tr->train ? tr->train->norm_mean : 0, tr->train ? tr->train->norm_std : 1 };
  if (!tr->train || !(tr->test = snn_experiment_load_dataset (tr->e, FALSE, norm, error)))
    {
      snn_trainer_free (tr);
      return NULL;
    }
  tr->net = snn_net_new (tr->e->model, be);
  snn_net_init_default (tr->net, tr->e->seed);
  tr->opt = snn_optim_new (tr->net, &tr->e->optim);
  snn_rng_seed (&tr->data_rng, tr->e->seed + 1);
  snn_rng_seed (&tr->train_rng, tr->e->seed + 2);
  snn_rng_seed (&tr->aug_rng, tr->e->seed + 3);
  tr->order = g_new (int, tr->train->n);
  tr->iters_per_epoch = (tr->train->n + tr->e->batch_size - 1) / tr->e->batch_size;
  int steps = MAX (tr->train->seq_T, 1);
  tr->xbuf = g_new (float, (size_t) steps * tr->e->batch_size * tr->train->sample_size);
  tr->ybuf = g_new (int32_t, tr->e->batch_size);
  tr->lr_override = -1;
  return tr;
}

void
snn_trainer_free (SnnTrainer *tr)
{
  if (!tr)
    return;
  snn_optim_free (tr->opt);
  snn_net_free (tr->net);
  snn_dataset_free (tr->train);
  snn_dataset_free (tr->test);
  snn_experiment_free (tr->e);
  g_free (tr->order);
  g_free (tr->xbuf);
  g_free (tr->ybuf);
  g_free (tr);
}

SnnNet *snn_trainer_net (SnnTrainer *tr) { return tr->net; }
SnnExperiment *snn_trainer_experiment (SnnTrainer *tr) { return tr->e; }
const SnnDataset *snn_trainer_train_set (SnnTrainer *tr) { return tr->train; }
const SnnDataset *snn_trainer_test_set (SnnTrainer *tr) { return tr->test; }
const SnnEpochInfo *snn_trainer_last_epoch (SnnTrainer *tr) { return &tr->last; }

gboolean
snn_trainer_finished (SnnTrainer *tr)
{
  return tr->epoch >= tr->e->epochs;
}

void
snn_trainer_set_method (SnnTrainer *tr, SnnMethod method, int K, gboolean recompute)
{
  tr->e->train.method = method;
  tr->e->train.K = CLAMP (K, 1, tr->e->train.T);
  tr->e->train.recompute = recompute;
}

void
snn_trainer_set_lr (SnnTrainer *tr, double lr)
{
  tr->lr_override = lr;
}

void
snn_trainer_set_probe (SnnTrainer *tr, SnnProbeFunc probe, gpointer data)
{
  tr->probe = probe;
  tr->probe_data = data;
}

double
snn_trainer_evaluate (SnnTrainer *tr, const SnnDataset *ds, SnnProbeFunc probe, gpointer data)
{
  int B = tr->e->batch_size, steps = MAX (ds->seq_T, 1);
  float *x = g_new (float, (size_t) steps * B * ds->sample_size);
  int32_t *y = g_new (int32_t, B);
  int *idx = g_new (int, B);
  long correct = 0;
  for (int start = 0; start < ds->n; start += B)
    {
      int n = MIN (B, ds->n - start);
      for (int i = 0; i < n; i++)
        idx[i] = start + i;
      snn_dataset_gather (ds, idx, n, x, y);
      SnnBatchResult r;
      snn_eval_batch (tr->net, tr->e->train.T, x, ds->seq_T > 0, n, y, start == 0 ? probe : NULL, data, NULL, &r);
      correct += r.correct;
    }
  g_free (x);
  g_free (y);
  g_free (idx);
  return ds->n ? (double) correct / ds->n : 0.0;
}

static void
finish_epoch (SnnTrainer *tr)
{
  int n = MAX (tr->iter_in_epoch, 1);
  SnnEpochInfo *ep = &tr->last;
  ep->epoch = tr->epoch + 1;
  ep->seconds = (g_get_monotonic_time () - tr->epoch_start) / 1e6;
  ep->train_loss = tr->sum_loss / n;
  ep->train_acc = tr->sum_count ? (double) tr->sum_correct / tr->sum_count : 0;
  ep->forward_ms = tr->sum_fwd / n;
  ep->backward_ms = tr->sum_bwd / n;
  ep->ms_per_iter = ep->seconds * 1000.0 / n;
  ep->peak_held_bytes = tr->peak_held;
  gint64 t0 = g_get_monotonic_time ();
  ep->test_acc = snn_trainer_evaluate (tr, tr->test, NULL, NULL);
  ep->eval_seconds = (g_get_monotonic_time () - t0) / 1e6;
  ep->process_peak_bytes = snn_process_peak_bytes ();
  tr->epoch++;
  tr->iter_in_epoch = 0;
}

/* Random crop, cutout and flip for images; flip and a roll of up to 5
 * pixels, the same for all frames of a sample, for event frames. */
static void
augment_batch (SnnTrainer *tr, int n)
{
  const SnnDataset *ds = tr->train;
  if (ds->sample_ndim != 3)
    return;
  int C = ds->sample_shape[0], H = ds->sample_shape[1], W = ds->sample_shape[2];
  if (ds->seq_T > 0)
    {
      snn_augment_event_frames (tr->xbuf, ds->seq_T, n, C, H, W, 5, TRUE, &tr->aug_rng);
      return;
    }
  SnnImageAugment aug;
  float mean[3], std[3];
  snn_image_augment_init (&aug);
  if (tr->e->normalize && C == 3 && (tr->e->dataset == SNN_DATASET_CIFAR10 || tr->e->dataset == SNN_DATASET_CIFAR100))
    {
      snn_cifar_norm_constants (tr->e->dataset == SNN_DATASET_CIFAR100 ? 100 : 10, mean, std);
      aug.mean = mean;
      aug.std = std;
    }
  snn_augment_images (tr->xbuf, n, C, H, W, &aug, &tr->aug_rng);
}

gboolean
snn_trainer_step (SnnTrainer *tr, SnnIterInfo *info, GError **error)
{
  g_return_val_if_fail (!snn_trainer_finished (tr), FALSE);
  SnnExperiment *e = tr->e;
  int B = e->batch_size;
  if (tr->iter_in_epoch == 0)
    {
      snn_rng_permutation (&tr->data_rng, tr->order, tr->train->n);
      tr->sum_loss = tr->sum_fwd = tr->sum_bwd = 0;
      tr->sum_correct = tr->sum_count = 0;
      tr->peak_held = 0;
      tr->epoch_start = g_get_monotonic_time ();
    }
  int start = tr->iter_in_epoch * B, n = MIN (B, tr->train->n - start);
  snn_dataset_gather (tr->train, tr->order + start, n, tr->xbuf, tr->ybuf);
  if (e->augment)
    augment_batch (tr, n);
  long total = (long) tr->iters_per_epoch * e->epochs;
  double lr = tr->lr_override > 0 ? tr->lr_override : snn_optim_lr_at (&e->optim, tr->global_iter, total);
  memset (info, 0, sizeof *info);
  snn_net_zero_grad (tr->net);
  if (!snn_train_batch (tr->net, &e->train, tr->xbuf, tr->train->seq_T > 0, n, tr->ybuf, NULL, 0, &tr->train_rng,
                        tr->probe, tr->probe_data, NULL, &info->batch, error))
    {
      g_prefix_error (error, "%s: epoch %d, iteration %d: ", e->source, tr->epoch + 1, tr->iter_in_epoch + 1);
      return FALSE;
    }
  snn_optim_step (tr->opt, lr);
  tr->sum_loss += info->batch.loss;
  tr->sum_correct += info->batch.correct;
  tr->sum_count += info->batch.count;
  tr->sum_fwd += info->batch.forward_ms;
  tr->sum_bwd += info->batch.backward_ms;
  tr->peak_held = MAX (tr->peak_held, info->batch.peak_held_bytes);
  info->epoch = tr->epoch;
  info->iter_in_epoch = tr->iter_in_epoch;
  info->iters_per_epoch = tr->iters_per_epoch;
  info->global_iter = tr->global_iter;
  info->total_iters = total;
  info->lr = lr;
  tr->iter_in_epoch++;
  tr->global_iter++;
  if (tr->iter_in_epoch >= tr->iters_per_epoch)
    {
      finish_epoch (tr);
      info->epoch_done = TRUE;
    }
  return TRUE;
}

void
snn_trainer_probe_batch (SnnTrainer *tr, int batch, float **x, int32_t **y, gboolean *sequence)
{
  const SnnDataset *ds = tr->train;
  int n = MIN (batch, ds->n), steps = MAX (ds->seq_T, 1);
  int *idx = g_new (int, n);
  for (int i = 0; i < n; i++)
    idx[i] = i;
  *x = g_new (float, (size_t) steps * n * ds->sample_size);
  *y = g_new (int32_t, n);
  snn_dataset_gather (ds, idx, n, *x, *y);
  *sequence = ds->seq_T > 0;
  g_free (idx);
}
