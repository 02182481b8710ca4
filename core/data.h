/* Datasets: IDX files (MNIST family), a built-in synthetic temporal set,
 * normalisation, subsets and batching. */
#pragma once
#include <glib.h>
#include <stdint.h>
#include "rng.h"

G_BEGIN_DECLS

typedef struct {
  char *name;          /* "fashion-mnist", "mnist", "synthetic-temporal", ... */
  int n;               /* number of samples */
  int sample_ndim;     /* 1 for [F], 3 for [C,H,W] */
  int sample_shape[4];
  int sample_size;     /* product of sample_shape */
  int seq_T;           /* 0: static samples; > 0: each sample is a sequence of seq_T frames */
  int num_classes;
  float *x;            /* n * max(seq_T,1) * sample_size, layout [n][seq_T][sample] */
  int32_t *y;          /* n labels in [0, num_classes) */
  float norm_mean, norm_std; /* the normalisation applied (0 and 1 if none) */
} SnnDataset;

void        snn_dataset_free (SnnDataset *ds);

/* One IDX image file (ubyte, 3 dims) and its label file (ubyte, 1 dim), raw
 * or gzip-compressed (detected by magic bytes). Pixels are scaled to [0, 1];
 * samples have shape [1, H, W]. Errors name the file and the problem
 * (wrong magic, truncated at byte offset N, count mismatch). */
SnnDataset *snn_dataset_load_idx (const char *images_path, const char *labels_path, GError **error);

/* A folder in the MNIST layout: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. */
SnnDataset *snn_dataset_load_mnist_dir (const char *dir, gboolean train, GError **error);

/* Where Debian's dataset-fashion-mnist package puts its files. */
#define SNN_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Built-in synthetic temporal set: samples of shape [F] over T frames whose
 * classes have the same firing counts and differ only in the order in which
 * input groups fire, so only a network that uses time can tell them apart.
 * Deterministic in (n, T, seed). */
SnnDataset *snn_dataset_synthetic_temporal (int n, int T, uint64_t seed);
#define SNN_SYNTHETIC_FEATURES 32
#define SNN_SYNTHETIC_CLASSES 4

/* x = (x - mean) / std, in place. */
void        snn_dataset_normalize (SnnDataset *ds, float mean, float std);
/* Mean and population std over all values. */
void        snn_dataset_stats (const SnnDataset *ds, float *mean, float *std);
/* A new dataset of n samples: the first n of a seeded permutation (n <= ds->n). */
SnnDataset *snn_dataset_subset (const SnnDataset *ds, int n, uint64_t seed);

/* Gathers samples idx[0..bsz) into x_out and y_out. Static samples: x_out is
 * [bsz][sample]. Sequences: x_out is [seq_T][bsz][sample] (time-major, as the
 * network consumes it). */
void        snn_dataset_gather (const SnnDataset *ds, const int *idx, int bsz,
                                float *x_out, int32_t *y_out);

G_END_DECLS
