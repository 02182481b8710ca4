#include "trainer.h"
#include "atomic-file.h"
#include "events.h"
#include "snn-error.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

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
  gboolean probe_first_sample;
  GArray *history;           /* SnnEpochInfo of every finished epoch */
  /* The last finite weights (all parameters, host memory), and a spare
   * buffer the next copy goes to before it is checked. */
  float *good, *spare;
  gboolean good_stale, diverged;
  int lock_fd;               /* the run folder's, -1: none */
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
  /* A network that cannot fit is refused before anything is allocated:
   * the command line and the workbench alike. */
  if (!snn_experiment_check_memory (e, error))
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
  /* Drawn at each epoch's start; a checkpoint before that holds this. */
  for (int i = 0; i < tr->train->n; i++)
    tr->order[i] = i;
  tr->iters_per_epoch = (tr->train->n + tr->e->batch_size - 1) / tr->e->batch_size;
  int steps = MAX (tr->train->seq_T, 1);
  tr->xbuf = g_new (float, (size_t) steps * tr->e->batch_size * tr->train->sample_size);
  tr->ybuf = g_new (int32_t, tr->e->batch_size);
  tr->lr_override = -1;
  tr->history = g_array_new (FALSE, TRUE, sizeof (SnnEpochInfo));
  int64_t values = 0;
  for (int i = 0; i < snn_net_n_params (tr->net); i++)
    values += snn_net_param (tr->net, i)->info.numel;
  tr->good = g_new (float, MAX (values, 1));
  tr->spare = g_new (float, MAX (values, 1));
  tr->good_stale = TRUE;
  tr->lock_fd = -1;
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
  g_free (tr->good);
  g_free (tr->spare);
  if (tr->lock_fd >= 0)
    close (tr->lock_fd);
  if (tr->history)
    g_array_unref (tr->history);
  g_free (tr);
}

SnnNet *snn_trainer_net (SnnTrainer *tr) { return tr->net; }

gboolean
snn_trainer_load_weights (SnnTrainer *tr, const char *path, GError **error)
{
  tr->good_stale = TRUE;
  return snn_net_load_npz (tr->net, path, error);
}

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
snn_trainer_set_probe (SnnTrainer *tr, SnnProbeFunc probe, gpointer data, gboolean first_sample)
{
  tr->probe = probe;
  tr->probe_data = data;
  tr->probe_first_sample = first_sample;
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
  g_array_append_val (tr->history, *ep);
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

/* ---- the last finite weights ---- */

/* Every parameter into dst (host); FALSE with the first non-finite one in
 * *bad if there is one. */
static gboolean
params_to_host (SnnTrainer *tr, float *dst, SnnParam **bad)
{
  const SnnBackend *be = snn_net_backend (tr->net);
  for (int i = 0; i < snn_net_n_params (tr->net); i++)
    {
      SnnParam *p = snn_net_param (tr->net, i);
      /* In pieces that stay in cache between the copy and the check. */
      for (int64_t at = 0; at < p->info.numel; at += 8192)
        {
          int64_t n = MIN (8192, p->info.numel - at);
          be->download (dst, p->data + at, n * sizeof (float));
          gboolean finite = TRUE;
          for (int64_t j = 0; j < n; j++)
            finite &= isfinite (dst[j]);
          if (!finite)
            {
              *bad = p;
              return FALSE;
            }
          dst += n;
        }
    }
  return TRUE;
}

static void
params_from_host (SnnTrainer *tr, const float *src)
{
  const SnnBackend *be = snn_net_backend (tr->net);
  for (int i = 0; i < snn_net_n_params (tr->net); i++)
    {
      SnnParam *p = snn_net_param (tr->net, i);
      be->upload (p->data, src, p->info.numel * sizeof (float));
      src += p->info.numel;
    }
}

/* Keeps the net's weights as the last good ones if they are finite. */
static gboolean
keep_good (SnnTrainer *tr, SnnParam **bad)
{
  if (!params_to_host (tr, tr->spare, bad))
    return FALSE;
  float *t = tr->good;
  tr->good = tr->spare;
  tr->spare = t;
  tr->good_stale = FALSE;
  return TRUE;
}

static void
append_message (GError *err, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
append_message (GError *err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *more = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  char *m = g_strconcat (err->message, more, NULL);
  g_free (err->message);
  err->message = m;
}

/* The batch diverged: replays it from the last finite weights with every
 * layer's output and gradient checked, says where the first NaN or
 * infinity appeared, and leaves the last finite weights in the net.
 * after_step: forward and backward passed, the optimizer step did not. */
static void
diverge (SnnTrainer *tr, const SnnRng *rng_before, int n, gboolean after_step, GError *err)
{
  tr->diverged = TRUE;
  params_from_host (tr, tr->good);
  SnnRng rng = *rng_before;
  SnnBatchResult res;
  snn_net_set_check_finite (tr->net, TRUE);
  snn_net_zero_grad (tr->net);
  snn_train_batch (tr->net, &tr->e->train, tr->xbuf, tr->train->seq_T > 0, n, tr->ybuf, NULL, 0, &rng, NULL, NULL,
                   NULL, &res, NULL);
  const SnnNonFinite *nf = snn_net_first_nonfinite (tr->net);
  if (nf->found)
    append_message (err, "; the first %s appeared in the %s pass of layer %s (%s) at step %d", isnan (nf->value) ? "NaN" : "infinity",
                    nf->backward ? "backward" : "forward", nf->node, nf->type, nf->step + 1);
  else
    append_message (err, after_step ? "; every layer's output and gradient was finite: the optimizer step made it so"
                                    : "; every layer's output was finite: it arose in the loss");
  snn_net_set_check_finite (tr->net, FALSE);
  params_from_host (tr, tr->good);
  snn_net_zero_grad (tr->net);
}

gboolean
snn_trainer_diverged (SnnTrainer *tr)
{
  return tr->diverged;
}

gboolean
snn_trainer_save_last_good (SnnTrainer *tr, const char *path, GError **error)
{
  SnnNpz *npz = snn_npz_new ();
  const float *src = tr->good;
  for (int i = 0; i < snn_net_n_params (tr->net); i++)
    {
      SnnParam *p = snn_net_param (tr->net, i);
      snn_npz_add (npz, p->name, snn_array_new_f32 (p->info.ndim, p->info.shape, src));
      src += p->info.numel;
    }
  gboolean ok = snn_npz_save (path, npz, error);
  snn_npz_free (npz);
  return ok;
}

/* ---- one iteration ---- */

/* The batch in xbuf/ybuf: forward, backward, optimizer step, and the new
 * weights kept as the last finite ones, or the divergence explained. */
static gboolean
train_and_update (SnnTrainer *tr, int n, double lr, SnnBatchResult *res, GError **error)
{
  SnnExperiment *e = tr->e;
  SnnParam *bad = NULL;
  snn_net_zero_grad (tr->net);
  SnnRng rng_before = tr->train_rng;
  GError *local = NULL;
  SnnTrainConfig cfg = e->train;
  cfg.probe_first_sample = tr->probe_first_sample;
  gboolean ok = snn_train_batch (tr->net, &cfg, tr->xbuf, tr->train->seq_T > 0, n, tr->ybuf, NULL, 0,
                                 &tr->train_rng, tr->probe, tr->probe_data, NULL, res, &local);
  if (!ok && local->code == SNN_ERROR_NONFINITE)
    diverge (tr, &rng_before, n, FALSE, local);
  if (ok)
    {
      snn_optim_step (tr->opt, lr);
      if (!keep_good (tr, &bad))
        {
          local = g_error_new (SNN_TRAIN_ERROR, SNN_ERROR_NONFINITE,
                               "parameter '%s' is not finite after the optimizer step (learning rate %g): training "
                               "diverged (try a smaller learning rate)", bad->name, lr);
          diverge (tr, &rng_before, n, TRUE, local);
          ok = FALSE;
        }
    }
  if (!ok)
    {
      g_prefix_error (&local, "%s: epoch %d, iteration %d: ", e->source, tr->epoch + 1, tr->iter_in_epoch + 1);
      g_propagate_error (error, local);
    }
  return ok;
}

gboolean
snn_trainer_step (SnnTrainer *tr, SnnIterInfo *info, GError **error)
{
  g_return_val_if_fail (!snn_trainer_finished (tr), FALSE);
  SnnExperiment *e = tr->e;
  int B = e->batch_size;
  SnnParam *bad = NULL;
  if (tr->diverged)
    {
      g_set_error (error, SNN_TRAIN_ERROR, SNN_ERROR_NONFINITE, "%s: training diverged; start again with a smaller learning rate",
                   e->source);
      return FALSE;
    }
  if (tr->good_stale && !keep_good (tr, &bad))
    {
      g_set_error (error, SNN_TRAIN_ERROR, SNN_ERROR_NONFINITE, "%s: parameter '%s' is not finite", e->source, bad->name);
      return FALSE;
    }
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
  if (!train_and_update (tr, n, lr, &info->batch, error))
    return FALSE;
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

/* ---- metrics, checkpoints and run folders ---- */

const SnnEpochInfo *
snn_trainer_history (SnnTrainer *tr, int *n_epochs)
{
  *n_epochs = tr->history->len;
  return (const SnnEpochInfo *) tr->history->data;
}

void
snn_trainer_position (SnnTrainer *tr, int *epoch, int *iteration)
{
  *epoch = tr->epoch + 1;
  *iteration = tr->iter_in_epoch + 1;
}

char *
snn_trainer_metrics_csv (SnnTrainer *tr)
{
  GString *csv = g_string_new ("epoch,train_loss,train_acc,test_acc,ms_per_iter,forward_ms,backward_ms,"
                               "peak_held_bytes,process_peak_bytes,seconds\n");
  for (guint i = 0; i < tr->history->len; i++)
    {
      const SnnEpochInfo *ep = &g_array_index (tr->history, SnnEpochInfo, i);
      g_string_append_printf (csv, "%d,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%.3f\n",
                              ep->epoch, ep->train_loss, ep->train_acc, ep->test_acc, ep->ms_per_iter, ep->forward_ms,
                              ep->backward_ms, ep->peak_held_bytes, ep->process_peak_bytes, ep->seconds);
    }
  return g_string_free (csv, FALSE);
}

enum { CK_VERSION = 1, CK_PROGRESS = 8, CK_SUMS = 5, CK_METRICS = 11 };

static void
add_i64 (SnnNpz *ck, const char *name, const int64_t *v, int64_t n)
{
  SnnArray *a = snn_array_new (SNN_DTYPE_I64, 1, &n);
  memcpy (a->data, v, n * sizeof *v);
  snn_npz_add (ck, name, a);
}

static void
add_f64 (SnnNpz *ck, const char *name, const double *v, int ndim, const int64_t *shape)
{
  SnnArray *a = snn_array_new (SNN_DTYPE_F64, ndim, shape);
  memcpy (a->data, v, snn_array_numel (a) * sizeof *v);
  snn_npz_add (ck, name, a);
}

static void
add_rng (SnnNpz *ck, const char *name, const SnnRng *rng)
{
  int64_t s[4];
  memcpy (s, rng->s, sizeof s);
  add_i64 (ck, name, s, 4);
}

static void
epoch_to_row (const SnnEpochInfo *ep, double *r)
{
  double row[CK_METRICS] = { ep->epoch, ep->train_loss, ep->train_acc, ep->test_acc, ep->ms_per_iter,
                             ep->forward_ms, ep->backward_ms, (double) ep->peak_held_bytes,
                             (double) ep->process_peak_bytes, ep->seconds, ep->eval_seconds };
  memcpy (r, row, sizeof row);
}

static void
row_to_epoch (const double *r, SnnEpochInfo *ep)
{
  ep->epoch = (int) r[0];
  ep->train_loss = r[1], ep->train_acc = r[2], ep->test_acc = r[3];
  ep->ms_per_iter = r[4], ep->forward_ms = r[5], ep->backward_ms = r[6];
  ep->peak_held_bytes = (int64_t) r[7], ep->process_peak_bytes = (int64_t) r[8];
  ep->seconds = r[9], ep->eval_seconds = r[10];
}

SnnNpz *
snn_trainer_checkpoint (SnnTrainer *tr)
{
  SnnNpz *ck = snn_net_to_npz (tr->net, FALSE);
  snn_optim_save_state (tr->opt, ck);
  int64_t version = CK_VERSION;
  add_i64 (ck, "checkpoint.version", &version, 1);
  g_autofree char *json = snn_experiment_to_json (tr->e);
  int64_t len = strlen (json);
  SnnArray *text = snn_array_new (SNN_DTYPE_U8, 1, &len);
  memcpy (text->data, json, len);
  snn_npz_add (ck, "checkpoint.experiment", text);
  add_rng (ck, "rng.data", &tr->data_rng);
  add_rng (ck, "rng.train", &tr->train_rng);
  add_rng (ck, "rng.aug", &tr->aug_rng);
  int64_t n = tr->train->n;
  SnnArray *order = snn_array_new (SNN_DTYPE_I32, 1, &n);
  memcpy (order->data, tr->order, n * sizeof (int));
  snn_npz_add (ck, "data.order", order);
  int64_t progress[CK_PROGRESS] = { tr->epoch, tr->iter_in_epoch, tr->global_iter, tr->iters_per_epoch,
                                    tr->sum_correct, tr->sum_count, tr->peak_held, tr->train->n };
  add_i64 (ck, "progress", progress, CK_PROGRESS);
  double elapsed = tr->iter_in_epoch ? (g_get_monotonic_time () - tr->epoch_start) / 1e6 : 0;
  double sums[CK_SUMS] = { tr->sum_loss, tr->sum_fwd, tr->sum_bwd, elapsed, tr->lr_override };
  int64_t sums_shape = CK_SUMS;
  add_f64 (ck, "epoch.sums", sums, 1, &sums_shape);
  int64_t mshape[2] = { tr->history->len, CK_METRICS };
  double *rows = g_new0 (double, mshape[0] * CK_METRICS + 1);
  for (guint i = 0; i < tr->history->len; i++)
    epoch_to_row (&g_array_index (tr->history, SnnEpochInfo, i), rows + i * CK_METRICS);
  add_f64 (ck, "metrics", rows, 2, mshape);
  g_free (rows);
  return ck;
}

/* An entry of the expected type and size, or an error naming it. */
static SnnArray *
ck_get (const SnnNpz *ck, const char *name, SnnDType dtype, int64_t numel, const char *source, GError **error)
{
  SnnArray *a = snn_npz_get (ck, name);
  if (!a || a->dtype != dtype || (numel >= 0 && snn_array_numel (a) != numel))
    {
      g_set_error (error, SNN_IO_ERROR, a ? SNN_ERROR_SHAPE : SNN_ERROR_MISSING,
                   "%s: checkpoint entry '%s' is %s", source, name, a ? "of the wrong type or size" : "missing");
      return NULL;
    }
  return a;
}

static gboolean
ck_bad (const char *source, const char *what, GError **error)
{
  g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: the checkpoint does not fit its run: %s", source, what);
  return FALSE;
}

/* The parameters among a checkpoint's entries. */
static SnnNpz *
ck_weights (const SnnNpz *ck, SnnNet *net)
{
  SnnNpz *w = snn_npz_new ();
  for (int i = 0; i < snn_net_n_params (net); i++)
    {
      const char *name = snn_net_param (net, i)->name;
      SnnArray *a = snn_npz_get (ck, name);
      if (a)
        {
          SnnArray *c = snn_array_new (a->dtype, a->ndim, a->shape);
          memcpy (c->data, a->data, snn_array_numel (a) * snn_dtype_size (a->dtype));
          snn_npz_add (w, name, c);
        }
    }
  return w;
}

static gboolean
restore_progress (SnnTrainer *tr, const SnnNpz *ck, const char *source, GError **error)
{
  SnnArray *pa, *sa, *oa, *ma, *ra[3];
  const char *rng_names[3] = { "rng.data", "rng.train", "rng.aug" };
  if (!(pa = ck_get (ck, "progress", SNN_DTYPE_I64, CK_PROGRESS, source, error))
      || !(sa = ck_get (ck, "epoch.sums", SNN_DTYPE_F64, CK_SUMS, source, error))
      || !(oa = ck_get (ck, "data.order", SNN_DTYPE_I32, tr->train->n, source, error))
      || !(ma = ck_get (ck, "metrics", SNN_DTYPE_F64, -1, source, error)))
    return FALSE;
  for (int k = 0; k < 3; k++)
    if (!(ra[k] = ck_get (ck, rng_names[k], SNN_DTYPE_I64, 4, source, error)))
      return FALSE;
  const int64_t *p = pa->data;
  if (p[7] != tr->train->n || p[3] != tr->iters_per_epoch)
    return ck_bad (source, "the training set has another size", error);
  if (p[0] < 0 || p[0] > tr->e->epochs || p[1] < 0 || p[1] >= tr->iters_per_epoch
      || p[2] != p[0] * tr->iters_per_epoch + p[1])
    return ck_bad (source, "the position is out of range", error);
  if (ma->ndim != 2 || ma->shape[0] != p[0] || ma->shape[1] != CK_METRICS)
    return ck_bad (source, "the metrics do not have one row per finished epoch", error);
  const int32_t *order = oa->data;
  g_autofree guint8 *seen = g_new0 (guint8, tr->train->n);
  for (int i = 0; i < tr->train->n; i++)
    {
      if (order[i] < 0 || order[i] >= tr->train->n || seen[order[i]])
        return ck_bad (source, "the data order is not a permutation of the training set", error);
      seen[order[i]] = 1;
    }
  tr->epoch = (int) p[0];
  tr->iter_in_epoch = (int) p[1];
  tr->global_iter = p[2];
  tr->sum_correct = p[4], tr->sum_count = p[5], tr->peak_held = p[6];
  memcpy (tr->order, order, tr->train->n * sizeof (int));
  const double *sums = sa->data;
  tr->sum_loss = sums[0], tr->sum_fwd = sums[1], tr->sum_bwd = sums[2];
  tr->epoch_start = g_get_monotonic_time () - (gint64) (sums[3] * 1e6);
  tr->lr_override = sums[4];
  SnnRng *rngs[3] = { &tr->data_rng, &tr->train_rng, &tr->aug_rng };
  for (int k = 0; k < 3; k++)
    memcpy (rngs[k]->s, ra[k]->data, sizeof rngs[k]->s);
  for (int i = 0; i < p[0]; i++)
    {
      SnnEpochInfo ep = { 0 };
      row_to_epoch ((const double *) ma->data + i * CK_METRICS, &ep);
      g_array_append_val (tr->history, ep);
      tr->last = ep;
    }
  return TRUE;
}

SnnTrainer *
snn_trainer_new_from_checkpoint (const SnnNpz *ck, const char *source, GError **error)
{
  SnnArray *v = ck_get (ck, "checkpoint.version", SNN_DTYPE_I64, 1, source, error), *text;
  if (!v || !(text = ck_get (ck, "checkpoint.experiment", SNN_DTYPE_U8, -1, source, error)))
    return NULL;
  if (((int64_t *) v->data)[0] != CK_VERSION)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_UNSUPPORTED, "%s: checkpoint version %" G_GINT64_FORMAT " (this build reads %d)",
                   source, ((int64_t *) v->data)[0], CK_VERSION);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (source);
  SnnExperiment *e = snn_experiment_parse (text->data, snn_array_numel (text), source, dir, error);
  if (!e)
    return NULL;
  SnnTrainer *tr = snn_trainer_new (e, error);
  snn_experiment_free (e);
  if (!tr)
    return NULL;
  SnnNpz *w = ck_weights (ck, tr->net);
  gboolean ok = snn_net_set_from_npz (tr->net, w, source, error) && snn_optim_load_state (tr->opt, ck, source, error)
                && restore_progress (tr, ck, source, error);
  snn_npz_free (w);
  if (!ok)
    g_clear_pointer (&tr, snn_trainer_free);
  return tr;
}

/* checkpoint.npz first: it alone is enough to make the others again. */
gboolean
snn_trainer_save_run (SnnTrainer *tr, const char *dir, GError **error)
{
  if (tr->diverged)
    {
      g_autofree char *good = g_build_filename (dir, "weights-last-good.npz", NULL);
      return snn_trainer_save_last_good (tr, good, error);
    }
  g_autofree char *ck_path = g_build_filename (dir, "checkpoint.npz", NULL);
  g_autofree char *w_path = g_build_filename (dir, "weights.npz", NULL);
  g_autofree char *csv_path = g_build_filename (dir, "metrics.csv", NULL);
  g_autofree char *csv = snn_trainer_metrics_csv (tr);
  SnnNpz *ck = snn_trainer_checkpoint (tr);
  gboolean ok = snn_npz_save (ck_path, ck, error) && snn_net_save_npz (tr->net, w_path, error)
                && snn_file_write_atomic (csv_path, csv, -1, error);
  snn_npz_free (ck);
  return ok;
}

gboolean
snn_trainer_lock_run (SnnTrainer *tr, const char *dir, GError **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_MISSING, "%s: cannot open the folder: %s", dir, g_strerror (errno));
      return FALSE;
    }
  if (flock (fd, LOCK_EX | LOCK_NB) != 0)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: another trainer is writing this run", dir);
      close (fd);
      return FALSE;
    }
  if (tr->lock_fd >= 0)
    close (tr->lock_fd);
  tr->lock_fd = fd;
  return TRUE;
}

SnnTrainer *
snn_trainer_open_run (const char *dir, GError **error)
{
  g_autofree char *ck_path = g_build_filename (dir, "checkpoint.npz", NULL);
  if (!g_file_test (ck_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_MISSING, "%s: no checkpoint.npz here; not a run folder (or one "
                   "from before checkpoints)", dir);
      return NULL;
    }
  SnnNpz *ck = snn_npz_load (ck_path, error);
  if (!ck)
    return NULL;
  SnnTrainer *tr = snn_trainer_new_from_checkpoint (ck, ck_path, error);
  snn_npz_free (ck);
  if (tr && (!snn_trainer_lock_run (tr, dir, error) || !snn_trainer_save_run (tr, dir, error)))
    g_clear_pointer (&tr, snn_trainer_free);
  return tr;
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
