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

/* ---------------------------------------------------------------- CIFAR
 * The binary versions: CIFAR-10 data_batch_{1..5}.bin / test_batch.bin
 * (records of 1 label byte and 3072 pixel bytes) and CIFAR-100
 * train.bin / test.bin (coarse and fine label bytes, then 3072 pixel
 * bytes); pixels are the R, G and B planes of a 32 x 32 image. `dir` may
 * also be the folder above cifar-10-batches-bin/ or cifar-100-binary/.
 * Samples have shape [3, 32, 32] in [0, 1]; CIFAR-100 uses the fine
 * labels. Errors name the file and the byte offset of a cut or bad record. */
SnnDataset *snn_dataset_load_cifar (const char *dir, int classes, gboolean train, GError **error);

#define SNN_CIFAR_CHANNELS 3
#define SNN_CIFAR_SIZE 32

/* The usual per-channel constants of the training sets (classes 10 or 100). */
void        snn_cifar_norm_constants (int classes, float mean[3], float std[3]);

/* x[c] = (x[c] - mean[c]) / std[c] for each of the sample_shape[0]
 * channels of every sample (and every frame of a sequence), in place. */
void        snn_dataset_normalize_channels (SnnDataset *ds, const float *mean, const float *std);

/* Augmentation of static images, in place on a gathered batch
 * [B][C][H][W]: random crop with zero padding, then a random-erasing
 * cutout, then a horizontal flip, as in the usual CIFAR recipe. */
typedef struct {
  int pad;                  /* crop padding in pixels (4); 0: no crop */
  double cutout_p;          /* chance of one erased rectangle (0.5); 0: none */
  gboolean flip;            /* horizontal flip with chance 1/2 */
  const float *mean, *std;  /* per-channel normalisation already applied to x,
                             * so padding and fill land at the right pixel
                             * values; NULL: x holds raw [0, 1] pixels */
} SnnImageAugment;

void        snn_image_augment_init (SnnImageAugment *aug);
void        snn_augment_images (float *x, int B, int C, int H, int W, const SnnImageAugment *aug, SnnRng *rng);

G_END_DECLS
