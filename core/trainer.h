/* A training run of an experiment, one iteration at a time, so that the
 * command line and the workbench (on its worker thread) drive it alike. */
#pragma once
#include <glib.h>
#include "data.h"
#include "experiment.h"
#include "net.h"
#include "optim.h"
#include "train.h"

G_BEGIN_DECLS

typedef struct {
  int epoch;                 /* 0-based */
  int iter_in_epoch, iters_per_epoch;
  long global_iter, total_iters;
  double lr;
  SnnBatchResult batch;
  gboolean epoch_done;       /* this iteration ended an epoch (see last_epoch) */
} SnnIterInfo;

typedef struct {
  int epoch;                 /* 1-based, as printed */
  double train_loss, train_acc, test_acc;
  double ms_per_iter, forward_ms, backward_ms;  /* means per iteration */
  int64_t peak_held_bytes;
  int64_t process_peak_bytes;
  double seconds;            /* wall time of the epoch's training */
  double eval_seconds;       /* wall time of the test evaluation after it */
} SnnEpochInfo;

typedef struct SnnTrainer SnnTrainer;

/* Loads the data, builds the network and initialises it from the seed. */
SnnTrainer       *snn_trainer_new (const SnnExperiment *e, GError **error);
void              snn_trainer_free (SnnTrainer *tr);
SnnNet           *snn_trainer_net (SnnTrainer *tr);
/* Loads weights into the net (snn_net_load_npz); the next step takes them
 * as the last finite weights. */
gboolean          snn_trainer_load_weights (SnnTrainer *tr, const char *path, GError **error);
SnnExperiment    *snn_trainer_experiment (SnnTrainer *tr);   /* live settings */
const SnnDataset *snn_trainer_train_set (SnnTrainer *tr);
const SnnDataset *snn_trainer_test_set (SnnTrainer *tr);
gboolean          snn_trainer_finished (SnnTrainer *tr);

/* One iteration (one batch, one optimizer step). At an epoch's end it also
 * evaluates on the test set and sets info->epoch_done. On a NaN or
 * infinity (SNN_ERROR_NONFINITE) the message says where it first appeared
 * (layer, step, forward or backward, or the optimizer step), the net holds
 * the last finite weights, and the trainer takes no more steps. */
gboolean          snn_trainer_step (SnnTrainer *tr, SnnIterInfo *info, GError **error);
const SnnEpochInfo *snn_trainer_last_epoch (SnnTrainer *tr);

/* Accuracy on a dataset in evaluation mode; the first sample of the first
 * batch can be probed. */
double            snn_trainer_evaluate (SnnTrainer *tr, const SnnDataset *ds, SnnProbeFunc probe, gpointer data);

/* Changes taking effect at the next iteration (while paused). */
void              snn_trainer_set_method (SnnTrainer *tr, SnnMethod method, int K, gboolean recompute);
void              snn_trainer_set_lr (SnnTrainer *tr, double lr);
/* The probe of every training batch; first_sample: it reads sample 0 alone
 * (see SnnTrainConfig), which lets the batch train in lanes. */
void              snn_trainer_set_probe (SnnTrainer *tr, SnnProbeFunc probe, gpointer data, gboolean first_sample);

/* The first batch of the training set (fixed), for probes and analysis. */
void              snn_trainer_probe_batch (SnnTrainer *tr, int batch, float **x, int32_t **y, gboolean *sequence);

/* The metrics of every finished epoch, in order; and as metrics.csv text. */
const SnnEpochInfo *snn_trainer_history (SnnTrainer *tr, int *n_epochs);
char             *snn_trainer_metrics_csv (SnnTrainer *tr);
/* The epoch and iteration (1-based) of the next step, as messages print them. */
void              snn_trainer_position (SnnTrainer *tr, int *epoch, int *iteration);

/* Checkpoints: everything the run needs to go on exactly as if it had not
 * stopped: the live experiment, weights and BN running statistics,
 * optimizer state, the RNG states, the data order and position in it, the
 * sums of the epoch so far and the metrics of finished epochs (see
 * docs/formats.md). Taken between iterations, mid-epoch too. */
SnnNpz           *snn_trainer_checkpoint (SnnTrainer *tr);
/* A trainer built from a checkpoint; it continues bit for bit where the
 * checkpointed run was. source names the file in messages. */
SnnTrainer       *snn_trainer_new_from_checkpoint (const SnnNpz *ck, const char *source, GError **error);

/* A run folder: checkpoint.npz, weights.npz and metrics.csv, written in
 * that order, each whole or not at all. checkpoint.npz holds all of it,
 * so a folder left by a kill between two of the files is made to agree
 * again by snn_trainer_open_run. After a divergence only
 * weights-last-good.npz is written; the files of the last good state stay. */
gboolean          snn_trainer_save_run (SnnTrainer *tr, const char *dir, GError **error);
/* Continues the run saved in dir (its checkpoint.npz); rewrites
 * weights.npz and metrics.csv from the checkpoint so that they agree.
 * Holds the folder's lock (below). */
SnnTrainer       *snn_trainer_open_run (const char *dir, GError **error);
/* Makes tr the only writer of dir until it is freed (an advisory lock on
 * the folder, which other processes and trainers respect). */
gboolean          snn_trainer_lock_run (SnnTrainer *tr, const char *dir, GError **error);

/* After snn_trainer_step failed on a NaN or infinity: the last weights
 * that were finite (those before the step that diverged). */
gboolean          snn_trainer_diverged (SnnTrainer *tr);
gboolean          snn_trainer_save_last_good (SnnTrainer *tr, const char *path, GError **error);

/* Loads the dataset an experiment names (train or test split, subset and
 * normalisation applied); checks it against the model's input. norm is the
 * training split's {mean, std} for the test split (NULL: its own). */
SnnDataset       *snn_experiment_load_dataset (const SnnExperiment *e, gboolean train, const float *norm,
                                               GError **error);

/* The process's peak resident memory in bytes (VmHWM), 0 if unknown. */
int64_t           snn_process_peak_bytes (void);

G_END_DECLS
