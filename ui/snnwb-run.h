/* One training run: its settings and the series recorded while it trained,
 * kept after it ends so runs can be compared. */
#pragma once
#include <gtk/gtk.h>
#include "experiment.h"

G_BEGIN_DECLS

typedef struct {
  long iter;                 /* global iteration, 0-based */
  int epoch;                 /* 0-based */
  double loss, acc;          /* of the batch */
  double forward_ms, backward_ms;
  double held_bytes;         /* peak bytes held for backward in the iteration */
  double process_peak_bytes; /* process VmHWM when the iteration was reported */
  double lr;
  double wall_s;             /* seconds since the first iteration started */
} SnnwbIterRecord;

typedef struct {
  int epoch;                 /* 1-based */
  long end_iter;             /* global iteration that ended it */
  double train_loss, train_acc, test_acc;
  double ms_per_iter;
} SnnwbEpochRecord;

/* Linear and conv layers followed by the gradient cosine view; later ones
 * only count in the mean. */
#define SNNWB_MAX_AFFINE 16

/* One gradient analysis of the probe batch during training: the cosine
 * between BPTT's weight gradient and the spatial (SLTT) one per linear or
 * conv layer, and their mean (Fig. 3 of the SLTT paper). */
typedef struct {
  long iter;
  double mean;
  int n;                          /* layers in cosine */
  double cosine[SNNWB_MAX_AFFINE];
} SnnwbCosineRecord;

typedef enum {
  SNNWB_RUN_LOADING,
  SNNWB_RUN_RUNNING,
  SNNWB_RUN_PAUSED,
  SNNWB_RUN_STOPPED,
  SNNWB_RUN_FINISHED,
  SNNWB_RUN_FAILED,
} SnnwbRunState;

#define SNNWB_TYPE_RUN (snnwb_run_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbRun, snnwb_run, SNNWB, RUN, GObject)

SnnwbRun            *snnwb_run_new (const SnnExperiment *e, int number);
const char          *snnwb_run_get_name (SnnwbRun *run);
const SnnExperiment *snnwb_run_get_experiment (SnnwbRun *run);
/* The method can change while paused; the run reports the latest. */
void                 snnwb_run_set_method (SnnwbRun *run, SnnMethod method, int K, gboolean recompute);
char                *snnwb_run_describe_method (SnnwbRun *run);
int                  snnwb_run_get_color_index (SnnwbRun *run);

SnnwbRunState        snnwb_run_get_state (SnnwbRun *run);
void                 snnwb_run_set_state (SnnwbRun *run, SnnwbRunState state);
const char          *snnwb_run_state_name (SnnwbRunState state);

void                 snnwb_run_append_iter (SnnwbRun *run, const SnnwbIterRecord *rec);
void                 snnwb_run_append_epoch (SnnwbRun *run, const SnnwbEpochRecord *rec);
const SnnwbIterRecord  *snnwb_run_get_iters (SnnwbRun *run, guint *n);
const SnnwbEpochRecord *snnwb_run_get_epochs (SnnwbRun *run, guint *n);
void                 snnwb_run_append_cosine (SnnwbRun *run, const SnnwbCosineRecord *rec);
const SnnwbCosineRecord *snnwb_run_get_cosines (SnnwbRun *run, guint *n);
/* Test accuracy of the last finished epoch, or a negative value. */
double               snnwb_run_get_final_accuracy (SnnwbRun *run);
/* Iterations per second of wall time over the run so far. */
double               snnwb_run_get_throughput (SnnwbRun *run);
long                 snnwb_run_get_total_iters (SnnwbRun *run);
void                 snnwb_run_set_total_iters (SnnwbRun *run, long total);

G_END_DECLS
