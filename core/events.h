/* Event streams of neuromorphic sensors: readers for DVS128 Gesture
 * (AEDAT 3.1), CIFAR10-DVS (AEDAT 2.0) and N-MNIST (.bin), integration into
 * frames, resizing, an on-disk cache of integrated frames, a built-in
 * synthetic event set and the augmentations of event frames. */
#pragma once
#include <glib.h>
#include <stdint.h>
#include "data.h"
#include "rng.h"

G_BEGIN_DECLS

/* Events in file order (which is time order for all three formats). */
typedef struct {
  gsize n, cap;
  guint16 *x, *y;
  guint8 *p;     /* polarity: 0 OFF, 1 ON */
  gint64 *t;     /* microseconds */
} SnnEvents;

SnnEvents  *snn_events_new (void);
void        snn_events_free (SnnEvents *ev);
void        snn_events_append (SnnEvents *ev, int x, int y, int p, gint64 t);

/* Readers. Coordinates at or beyond the sensor size (width x height) mark a
 * corrupt file. Errors (SNN_DATA_ERROR) name the file and the byte offset. */
SnnEvents  *snn_events_read_aedat3 (const char *path, int width, int height, GError **error);
SnnEvents  *snn_events_read_aedat2 (const char *path, int width, int height, GError **error);
SnnEvents  *snn_events_read_nmnist (const char *path, int width, int height, GError **error);

typedef enum {
  SNN_SPLIT_NUMBER, /* frames of (about) equal event counts */
  SNN_SPLIT_TIME,   /* frames of equal duration */
} SnnSplitMode;

typedef enum {
  SNN_RESIZE_AREA,     /* each output pixel averages the input area it covers */
  SNN_RESIZE_BILINEAR, /* samples at output pixel centres */
} SnnResizeMode;

/* The events [lo, hi) that frame i of T takes under SNN_SPLIT_NUMBER. */
void        snn_events_number_bounds (gsize n, int T, int i, gsize *lo, gsize *hi);

/* Counts the events into frames [T][2][height][width] (zeroed first);
 * channel 0 holds the events with p == 0. */
void        snn_events_integrate (const SnnEvents *ev, SnnSplitMode split, int T, int height, int width,
                                  float *frames);

/* Resizes `planes` planes of h x w into oh x ow. */
void        snn_frames_resize (const float *src, int planes, int h, int w, float *dst, int oh, int ow,
                               SnnResizeMode mode);

typedef struct {
  int T;                /* frames per sample */
  SnnSplitMode split;
  int size;             /* output frames are size x size; 0: the sensor's size */
  SnnResizeMode resize;
  const char *cache_dir; /* where integrated frames are kept; NULL: no cache */
} SnnEventFrameOptions;

/* T = 10, number split, sensor size, area resize, no cache. */
void        snn_event_frame_options_init (SnnEventFrameOptions *opts);

/* $XDG_CACHE_HOME/snn-workbench/frames (newly allocated). */
char       *snn_events_default_cache_dir (void);

/* Event datasets as frame sequences: seq_T = opts->T, sample shape
 * [2, H, W]. *from_cache (may be NULL) says whether the frames came from
 * the cache, which is keyed by the dataset, its folder, the options and
 * the list of samples; a stale or damaged cache file is rebuilt. */

/* DVS128 Gesture: `dir` (or dir/DvsGesture) holds trials_to_train.txt,
 * trials_to_test.txt, the listed .aedat files and their _labels.csv files.
 * 11 classes, 128 x 128. */
SnnDataset *snn_dataset_load_dvs_gesture (const char *dir, gboolean train, const SnnEventFrameOptions *opts,
                                          gboolean *from_cache, GError **error);

/* CIFAR10-DVS: `dir` holds one folder per class (in alphabetical order:
 * airplane ... truck) of AEDAT 2.0 files. Files are ordered by the number in
 * their name; the first 90% of each class (0-899 of 1000) are the training
 * set, the rest the test set. 10 classes, 128 x 128 (48 x 48 is usual). */
SnnDataset *snn_dataset_load_cifar10_dvs (const char *dir, gboolean train, const SnnEventFrameOptions *opts,
                                          gboolean *from_cache, GError **error);

/* N-MNIST: dir/Train/<digit>/<number>.bin and dir/Test/<digit>/<number>.bin for digits 0-9. 34 x 34. */
SnnDataset *snn_dataset_load_nmnist (const char *dir, gboolean train, const SnnEventFrameOptions *opts,
                                     gboolean *from_cache, GError **error);

#define SNN_DVS_GESTURE_CLASSES 11
#define SNN_DVS_GESTURE_SIZE 128
#define SNN_CIFAR10_DVS_SIZE 128
#define SNN_NMNIST_SIZE 34

/* Built-in synthetic event set: a bright disc crosses a 32 x 32 sensor in
 * one of four directions (right, down, left, up = classes 0..3), rendered
 * as ON events on its leading edge and OFF events on its trailing edge plus
 * uniform noise. Every sample has the same number of events of each
 * polarity in every time slice, so only where the events are, and how that
 * moves, tells the classes apart. Integrated by event count into T frames
 * and resized to size x size (0: 32). Deterministic in (n, T, size, seed);
 * labels balanced and shuffled. */
SnnDataset *snn_dataset_synthetic_events (int n, int T, int size, uint64_t seed, GError **error);
/* The event stream of one synthetic sample, before integration. */
SnnEvents  *snn_synthetic_events_sample (int label, SnnRng *rng);

#define SNN_SYNTHETIC_EVENT_SENSOR 32
#define SNN_SYNTHETIC_EVENT_CLASSES 4

/* Augmentation of event frames, in place on a gathered batch
 * x[T][B][C][H][W]: per sample, a horizontal flip with chance 1/2 (when
 * flip) and a circular roll by up to max_roll pixels along each axis, the
 * same for all frames of the sample. */
void        snn_augment_event_frames (float *x, int T, int B, int C, int H, int W, int max_roll, gboolean flip,
                                      SnnRng *rng);

G_END_DECLS
