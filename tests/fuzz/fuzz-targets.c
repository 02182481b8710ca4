/* The fuzz targets: one per reader. Readers that take a path get the bytes
 * as a file in a scratch folder; what a reader accepts is used a little
 * further (converted, integrated, written and read back) so that a value a
 * reader lets through but cannot hold shows up here too. */
#include "fuzz-targets.h"
#include "data.h"
#include "events.h"
#include "experiment.h"
#include "model.h"
#include "npy.h"
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char *scratch;        /* a private folder, removed at exit */
static char *cache_dir;      /* the frame-cache target's cache */
static char *cache_file;     /* ... and the one file in it */
static char *nmnist_dir;     /* a tiny N-MNIST test set */

static void
quiet_log (const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
  /* Criticals and warnings are findings: a reader must report problems as
   * GErrors, not as GLib warnings. */
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_ERROR))
    {
      fprintf (stderr, "%s: %s\n", domain ? domain : "", message);
      abort ();
    }
}

static char *
scratch_path (const char *name)
{
  return g_build_filename (scratch, name, NULL);
}

static void
put (const char *path, const void *data, size_t size)
{
  if (!g_file_set_contents (path, data, (gssize) size, NULL))
    abort ();
}

/* gzip-compressed bytes (as gzip(1) writes them). */
static void
put_gzip (const char *path, const uint8_t *data, size_t size)
{
  gzFile gz = gzopen (path, "wb");
  if (!gz || (size && gzwrite (gz, data, (unsigned) size) != (int) size) || gzclose (gz) != Z_OK)
    abort ();
}

static void
remove_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  if (d)
    {
      const char *n;
      while ((n = g_dir_read_name (d)))
        {
          g_autofree char *p = g_build_filename (path, n, NULL);
          remove_tree (p);
        }
      g_dir_close (d);
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

static void
cleanup (void)
{
  if (scratch)
    remove_tree (scratch);
}

static void
frame_options (SnnEventFrameOptions *o)
{
  snn_event_frame_options_init (o);
  o->T = 1;      /* the sensor's size: no resize, which would take most of the time */
  o->cache_dir = cache_dir;
}

/* Ten class folders, two recordings in all (each rebuild integrates and
 * resizes them, so fewer is faster), then one load that writes the cache. */
static void
setup_frame_cache (void)
{
  nmnist_dir = scratch_path ("nmnist");
  cache_dir = scratch_path ("cache");
  for (int c = 0; c < 10; c++)
    {
      g_autofree char *dir = g_strdup_printf ("%s/Test/%d", nmnist_dir, c);
      g_autofree char *file = g_build_filename (dir, "0.bin", NULL);
      uint8_t ev[4][5] = { { c, 1, 0x80, 0, 10 }, { 2, c, 0, 0, 20 }, { 30, 3, 0x80, 1, 0 }, { 4, 33, 0, 2, 0 } };
      g_mkdir_with_parents (dir, 0755);
      if (c == 3 || c == 7)
        put (file, ev, sizeof ev);
    }
  SnnEventFrameOptions o;
  frame_options (&o);
  SnnDataset *ds = snn_dataset_load_nmnist (nmnist_dir, FALSE, &o, NULL, NULL);
  GDir *d = g_dir_open (cache_dir, 0, NULL);
  const char *n = d ? g_dir_read_name (d) : NULL;
  if (!ds || !n)
    abort ();
  cache_file = g_build_filename (cache_dir, n, NULL);
  /* For the seed corpus: a copy of the cache file as the loader writes it. */
  if (g_getenv ("SNN_FUZZ_SAVE_CACHE"))
    {
      g_autofree char *bytes = NULL;
      gsize len;
      if (!g_file_get_contents (cache_file, &bytes, &len, NULL))
        abort ();
      put (g_getenv ("SNN_FUZZ_SAVE_CACHE"), bytes, len);
    }
  g_dir_close (d);
  snn_dataset_free (ds);
}

void
snn_fuzz_setup (void)
{
  if (scratch)
    return;
  g_log_set_default_handler (quiet_log, NULL);
  const char *base = g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir ();
  g_autofree char *tmpl = g_build_filename (base, "snn-fuzz-XXXXXX", NULL);
  scratch = g_strdup (g_mkdtemp (tmpl));
  if (!scratch)
    abort ();
  atexit (cleanup);
  setup_frame_cache ();
}

/* ------------------------------------------------------------- targets */

static void
fuzz_npy (const uint8_t *data, size_t size)
{
  g_autofree char *path = scratch_path ("a.npy");
  put (path, data, size);
  SnnArray *a = snn_npy_load (path, NULL);
  if (!a)
    return;
  /* What loads must convert and save again. */
  snn_array_free (snn_array_to_f32 (a));
  SnnArray *i = snn_array_to_i64 (a, NULL);
  snn_array_free (i);
  g_free (snn_array_shape_string (a));
  g_autofree char *out = scratch_path ("b.npy");
  if (!snn_npy_save (out, a, NULL))
    abort ();
  SnnArray *b = snn_npy_load (out, NULL);
  if (!b || b->ndim != a->ndim || snn_array_numel (b) != snn_array_numel (a))
    abort ();
  snn_array_free (b);
  snn_array_free (a);
}

static void
fuzz_npz (const uint8_t *data, size_t size)
{
  g_autofree char *path = scratch_path ("a.npz");
  put (path, data, size);
  SnnNpz *z = snn_npz_load (path, NULL);
  if (!z)
    return;
  for (guint i = 0; i < snn_npz_count (z); i++)
    snn_array_free (snn_array_to_f32 (snn_npz_get (z, snn_npz_name (z, i))));
  snn_npz_free (z);
}

static void
fuzz_model_json (const uint8_t *data, size_t size)
{
  SnnModel *m = snn_model_parse ((const char *) data, (gssize) size, "fuzz", NULL);
  if (!m)
    return;
  /* What parses must write as JSON that parses to the same parameter count. */
  g_autofree char *json = snn_model_to_json (m);
  SnnModel *again = snn_model_parse (json, -1, "again", NULL);
  if (!again || snn_model_param_count (again) != snn_model_param_count (m))
    abort ();
  snn_model_free (again);
  snn_model_free (m);
}

static void
fuzz_experiment_json (const uint8_t *data, size_t size)
{
  SnnExperiment *e = snn_experiment_parse ((const char *) data, (gssize) size, "fuzz", NULL, NULL);
  if (!e)
    return;
  g_autofree char *json = snn_experiment_to_json (e);
  SnnExperiment *again = snn_experiment_parse (json, -1, "again", NULL, NULL);
  if (!again || again->seed != e->seed || again->batch_size != e->batch_size)
    abort ();
  snn_experiment_free (again);
  snn_experiment_free (e);
}

/* A dataset a reader accepted has every label among its classes; frees it. */
static void
check_labels (SnnDataset *ds)
{
  if (!ds)
    return;
  for (int i = 0; i < ds->n; i++)
    if (ds->y[i] < 0 || ds->y[i] >= ds->num_classes)
      abort ();
  snn_dataset_free (ds);
}

/* Byte 0: bit 0 gzips the images, bit 1 the labels; bytes 1-2: the length
 * of the image file; the rest: the image file, then the label file. */
static void
fuzz_idx (const uint8_t *data, size_t size)
{
  if (size < 3)
    return;
  size_t n_img = MIN ((size_t) (data[1] | data[2] << 8), size - 3);
  const uint8_t *img = data + 3, *lab = data + 3 + n_img;
  size_t n_lab = size - 3 - n_img;
  g_autofree char *ip = scratch_path ("images-idx3-ubyte");
  g_autofree char *lp = scratch_path ("labels-idx1-ubyte");
  if (data[0] & 1)
    put_gzip (ip, img, n_img);
  else
    put (ip, img, n_img);
  if (data[0] & 2)
    put_gzip (lp, lab, n_lab);
  else
    put (lp, lab, n_lab);
  SnnDataset *ds = snn_dataset_load_idx (ip, lp, NULL);
  check_labels (ds);
}

/* Byte 0: bit 0 picks CIFAR-100 (test.bin) over CIFAR-10 (test_batch.bin). */
static void
fuzz_cifar (const uint8_t *data, size_t size)
{
  if (size < 1)
    return;
  int classes = data[0] & 1 ? 100 : 10;
  g_autofree char *dir = scratch_path ("cifar");
  g_autofree char *path = g_build_filename (dir, classes == 10 ? "test_batch.bin" : "test.bin", NULL);
  g_autofree char *other = g_build_filename (dir, classes == 10 ? "test.bin" : "test_batch.bin", NULL);
  g_mkdir_with_parents (dir, 0755);
  g_unlink (other);
  put (path, data + 1, size - 1);
  SnnDataset *ds = snn_dataset_load_cifar (dir, classes, FALSE, NULL);
  check_labels (ds);
}

/* Events a reader accepts are integrated both ways, as a dataset would. */
static void
integrate (SnnEvents *ev, int size)
{
  if (!ev)
    return;
  float *frames = g_new (float, 3 * 2 * size * size);
  snn_events_integrate (ev, SNN_SPLIT_NUMBER, 3, size, size, frames);
  snn_events_integrate (ev, SNN_SPLIT_TIME, 3, size, size, frames);
  g_free (frames);
  snn_events_free (ev);
}

static void
fuzz_events (const uint8_t *data, size_t size, const char *name,
             SnnEvents *(*read) (const char *, int, int, GError **), int sensor)
{
  g_autofree char *path = scratch_path (name);
  put (path, data, size);
  integrate (read (path, sensor, sensor, NULL), sensor);
}

static void
fuzz_aedat3 (const uint8_t *data, size_t size)
{
  fuzz_events (data, size, "a.aedat3", snn_events_read_aedat3, SNN_DVS_GESTURE_SIZE);
}

static void
fuzz_aedat2 (const uint8_t *data, size_t size)
{
  fuzz_events (data, size, "a.aedat", snn_events_read_aedat2, SNN_CIFAR10_DVS_SIZE);
}

static void
fuzz_nmnist (const uint8_t *data, size_t size)
{
  fuzz_events (data, size, "a.bin", snn_events_read_nmnist, SNN_NMNIST_SIZE);
}

/* The bytes replace the cache file of a tiny N-MNIST set: the load must
 * take them only when whole and right, and rebuild the frames otherwise. */
static void
fuzz_frame_cache (const uint8_t *data, size_t size)
{
  put (cache_file, data, size);
  SnnEventFrameOptions o;
  frame_options (&o);
  gboolean from_cache = FALSE;
  SnnDataset *ds = snn_dataset_load_nmnist (nmnist_dir, FALSE, &o, &from_cache, NULL);
  if (!ds || ds->n != 2 || ds->y[0] != 3 || ds->y[1] != 7)
    abort ();
  snn_dataset_free (ds);
}

const SnnFuzzTarget snn_fuzz_targets[] = {
  { "npy", fuzz_npy },
  { "npz", fuzz_npz },
  { "model-json", fuzz_model_json },
  { "experiment-json", fuzz_experiment_json },
  { "idx", fuzz_idx },
  { "cifar", fuzz_cifar },
  { "aedat3", fuzz_aedat3 },
  { "aedat2", fuzz_aedat2 },
  { "nmnist", fuzz_nmnist },
  { "frame-cache", fuzz_frame_cache },
  { NULL, NULL },
};

const SnnFuzzTarget *
snn_fuzz_target_find (const char *name)
{
  for (const SnnFuzzTarget *t = snn_fuzz_targets; t->name; t++)
    if (g_str_equal (t->name, name))
      return t;
  return NULL;
}
