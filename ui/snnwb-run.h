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
  double arena_bytes;        /* the whole activation arena (working memory of a step) */
} SnnwbIterRecord;

/* The method a run trained with from iteration `iter` on; a run switched
 * while paused has several. label: "BPTT (recompute)", "BPTT (stored)",
 * "SLTT" or "SLTT-K (K 2)". */
typedef struct {
  long iter;
  SnnMethod method;
  int K;
  gboolean recompute;        /* as run: FALSE where the network cannot recompute */
  char label[24];
} SnnwbMethodChange;

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
/* Renaming emits "changed"; an empty name is refused. */
gboolean             snnwb_run_set_name (SnnwbRun *run, const char *name);
int                  snnwb_run_get_number (SnnwbRun *run);
const SnnExperiment *snnwb_run_get_experiment (SnnwbRun *run);
/* The method can change while paused: from the next iteration on, which
 * starts a new entry of the method history. */
void                 snnwb_run_set_method (SnnwbRun *run, SnnMethod method, int K, gboolean recompute);
/* The method now, as named in every label ("BPTT (recompute)"). */
const char          *snnwb_run_get_method_label (SnnwbRun *run);
char                *snnwb_run_describe_method (SnnwbRun *run);
/* Oldest first; never empty. */
const SnnwbMethodChange *snnwb_run_get_method_history (SnnwbRun *run, guint *n);
/* "SLTT → BPTT (stored) at 120 → SLTT-K (K 2) at 300" */
char                *snnwb_run_describe_history (SnnwbRun *run);
/* The label of a method as a run with this network trains it. */
void                 snnwb_method_label (const SnnModel *model, SnnMethod method, int K, gboolean recompute,
                                         char *out, gsize size);
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
/* Drops what was recorded from iteration `iter` on (a run continued from
 * an earlier checkpoint trains those again). */
void                 snnwb_run_truncate (SnnwbRun *run, long iter);
/* Test accuracy of the last finished epoch, or a negative value. */
double               snnwb_run_get_final_accuracy (SnnwbRun *run);
/* Iterations per second of wall time over the run so far. */
double               snnwb_run_get_throughput (SnnwbRun *run);
long                 snnwb_run_get_total_iters (SnnwbRun *run);
/* Peaks over the iterations so far (0 before the first): bytes held for
 * backward, and the activation arena. */
double               snnwb_run_get_peak_held_bytes (SnnwbRun *run);
double               snnwb_run_get_peak_arena_bytes (SnnwbRun *run);
/* Median of forward + backward ms over the iterations; NAN before the first. */
double               snnwb_run_get_median_ms (SnnwbRun *run);
/* Several lines: method history, T, seed, accuracy, memory, time. */
char                *snnwb_run_describe_summary (SnnwbRun *run);
void                 snnwb_run_set_total_iters (SnnwbRun *run, long total);

/* Keeping runs in a session folder (snnwb-run-store.c). Every change to a
 * run counts; a run is saved when its folder holds the latest. */
const char          *snnwb_run_get_folder (SnnwbRun *run);
void                 snnwb_run_set_folder (SnnwbRun *run, const char *folder);
guint64              snnwb_run_get_changes (SnnwbRun *run);
void                 snnwb_run_mark_saved (SnnwbRun *run, guint64 changes);
gboolean             snnwb_run_is_saved (SnnwbRun *run);
/* For a run read back from its folder. */
void                 snnwb_run_restore (SnnwbRun *run, SnnwbRunState state, long total_iters,
                                        const SnnwbMethodChange *history, guint n_history);
const char          *snnwb_run_get_weights_path (SnnwbRun *run);
void                 snnwb_run_set_weights_path (SnnwbRun *run, const char *path);

G_END_DECLS
