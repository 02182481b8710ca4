/* The experiment file: model, data, method and optimisation of a run. */
#pragma once
#include <glib.h>
#include "model.h"
#include "optim.h"
#include "train.h"

G_BEGIN_DECLS

typedef enum {
  SNN_DATASET_FASHION_MNIST,
  SNN_DATASET_MNIST,
  SNN_DATASET_SYNTHETIC,         /* the built-in temporal set */
  SNN_DATASET_CIFAR10,
  SNN_DATASET_CIFAR100,
  SNN_DATASET_DVS_GESTURE,
  SNN_DATASET_CIFAR10_DVS,
  SNN_DATASET_NMNIST,
  SNN_DATASET_SYNTHETIC_EVENTS,  /* the built-in moving-blob event set */
  SNN_DATASET_N_KINDS
} SnnDatasetKind;

typedef struct {
  char *name;
  char *model_ref;        /* preset name or path, as written (NULL when inline) */
  SnnModel *model;        /* resolved */
  SnnDatasetKind dataset;
  char *dataset_path;     /* folder for (fashion-)mnist; NULL: the default */
  int train_subset, test_subset;  /* 0: all */
  gboolean normalize;
  /* event datasets: frames of frame_size^2 (0: the sensor's size, 48 for
   * CIFAR10-DVS), split by event count (or time), cached on disk */
  int frame_size;
  gboolean frame_split_time, frame_resize_bilinear, frame_cache;
  gboolean augment;               /* crop/flip/cutout (images), flip/roll (events) */
  SnnTrainConfig train;
  SnnOptimConfig optim;
  int batch_size, epochs;
  guint64 seed;
  char *backend;          /* "cpu" or "cuda" (default: $SNNWB_BACKEND, or cpu) */
  char *source;
} SnnExperiment;

void           snn_experiment_init_defaults (SnnExperiment *e);
SnnExperiment *snn_experiment_new_default (void);
void           snn_experiment_free (SnnExperiment *e);
SnnExperiment *snn_experiment_copy (const SnnExperiment *e);

/* A path, or the name of a preset in the models folder ("mlp"). */
SnnExperiment *snn_experiment_load (const char *path_or_preset, GError **error);
SnnExperiment *snn_experiment_parse (const char *json, gssize len, const char *source, const char *base_dir,
                                     GError **error);
char          *snn_experiment_to_json (const SnnExperiment *e);  /* the model inline */
gboolean       snn_experiment_save (const SnnExperiment *e, const char *path, GError **error);

/* "key=value" overrides from the command line: T, method, K, lr, epochs,
 * batch_size, seed, train_subset, test_subset, lambda, mse_target, optimizer,
 * momentum, weight_decay, dataset, dataset_path, schedule, backend. */
gboolean       snn_experiment_apply_override (SnnExperiment *e, const char *kv, GError **error);

/* Refuses, before anything is allocated, an experiment whose network
 * (parameters, optimizer state and activations at its batch size and T)
 * would take more memory than is available; the message gives the bytes. */
gboolean       snn_experiment_check_memory (const SnnExperiment *e, GError **error);
/* The folders searched for presets: $SNNWB_MODELS_DIR, the source tree, the installed data. */
char          *snn_preset_find (const char *name, const char *suffix);
char         **snn_preset_list (void);  /* names of presets that have an experiment */
const char    *snn_dataset_kind_name (SnnDatasetKind k);
gboolean       snn_dataset_kind_from_name (const char *name, SnnDatasetKind *out);
gboolean       snn_dataset_kind_is_events (SnnDatasetKind k);

G_END_DECLS
