/* CIFAR-10 and CIFAR-100 (binary versions), per-channel normalisation and
 * the augmentations of static images. */
#include "data.h"
#include "snn-error.h"
#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#define CIFAR_PIXELS (SNN_CIFAR_CHANNELS * SNN_CIFAR_SIZE * SNN_CIFAR_SIZE)

static const char *const cifar10_train[] = {
  "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", NULL
};
static const char *const cifar10_test[] = { "test_batch.bin", NULL };
static const char *const cifar100_train[] = { "train.bin", NULL };
static const char *const cifar100_test[] = { "test.bin", NULL };

static SnnDataset *
cifar_dataset_new (int classes, int n)
{
  SnnDataset *ds = g_new0 (SnnDataset, 1);
  ds->name = g_strdup (classes == 10 ? "cifar10" : "cifar100");
  ds->n = n;
  ds->sample_ndim = 3;
  ds->sample_shape[0] = SNN_CIFAR_CHANNELS;
  ds->sample_shape[1] = ds->sample_shape[2] = SNN_CIFAR_SIZE;
  ds->sample_size = CIFAR_PIXELS;
  ds->num_classes = classes;
  ds->norm_std = 1.0f;
  ds->x = g_try_malloc_n ((size_t) n * CIFAR_PIXELS + 1, sizeof (float));
  ds->y = g_try_malloc_n ((size_t) n + 1, sizeof (int32_t));
  if (!ds->x || !ds->y)
    g_clear_pointer (&ds, snn_dataset_free);
  return ds;
}

/* The folder that holds the first file: dir itself or the sub-folder the
 * archives unpack to. */
static char *
cifar_find_dir (const char *dir, int classes, const char *first)
{
  const char *sub = classes == 10 ? "cifar-10-batches-bin" : "cifar-100-binary";
  g_autofree char *nested = g_build_filename (dir, sub, NULL);
  const char *candidates[] = { dir, nested };
  for (int i = 0; i < 2; i++)
    {
      g_autofree char *p = g_build_filename (candidates[i], first, NULL);
      if (g_file_test (p, G_FILE_TEST_IS_REGULAR))
        return g_strdup (candidates[i]);
    }
  return NULL;
}

/* Checks a whole file's size: CIFAR files have no header, so a size that is
 * not a whole number of records is the only sign of a cut file. */
static gboolean
cifar_check_size (const char *path, gsize len, int record, GError **error)
{
  if (len == 0)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED, "%s: file is empty", path);
      return FALSE;
    }
  if (len % record != 0)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                   "%s: file is truncated at byte offset %zu (the record starting at byte offset %zu has %zu of "
                   "%d bytes)", path, len, len - len % record, len % record, record);
      return FALSE;
    }
  return TRUE;
}

/* Copies the records of one file into ds from sample `at` on. */
static gboolean
cifar_decode (const char *path, const guint8 *data, gsize n, int classes, SnnDataset *ds, int at, GError **error)
{
  int label_bytes = classes == 10 ? 1 : 2;
  int record = label_bytes + CIFAR_PIXELS;
  for (gsize i = 0; i < n; i++)
    {
      const guint8 *r = data + i * record;
      /* CIFAR-100 records carry the coarse label (20 classes) first. */
      if (classes == 100 && r[0] >= 20)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID,
                       "%s: coarse label %d of record %zu (byte offset %zu) is out of range (20 classes)", path,
                       r[0], i, i * record);
          return FALSE;
        }
      int label = r[label_bytes - 1];
      if (label >= classes)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID,
                       "%s: label %d of record %zu (byte offset %zu) is out of range (%d classes)", path, label, i,
                       i * record + label_bytes - 1, classes);
          return FALSE;
        }
      ds->y[at + i] = label;
      float *x = ds->x + (size_t) (at + i) * CIFAR_PIXELS;
      for (int j = 0; j < CIFAR_PIXELS; j++)
        x[j] = r[label_bytes + j] / 255.0f;
    }
  return TRUE;
}

static int
cifar_record_len (int classes)
{
  return (classes == 10 ? 1 : 2) + CIFAR_PIXELS;
}

/* The number of records of a file, from its size, before reading it: a
 * cut file is reported without reading the others. */
static gboolean
cifar_count (const char *path, int classes, gsize *n, GError **error)
{
  GStatBuf st;
  if (g_stat (path, &st) != 0)
    {
      int e = errno;
      g_set_error (error, SNN_DATA_ERROR, e == ENOENT ? SNN_ERROR_MISSING : SNN_ERROR_INVALID, "%s: cannot open: %s",
                   path, g_strerror (e));
      return FALSE;
    }
  if (!cifar_check_size (path, st.st_size, cifar_record_len (classes), error))
    return FALSE;
  *n = st.st_size / cifar_record_len (classes);
  return TRUE;
}

/* Reads the n records of one file into ds from sample `at` on. */
static gboolean
cifar_load_file (const char *path, int classes, gsize n, SnnDataset *ds, int at, GError **error)
{
  g_autofree guint8 *data = NULL;
  gsize len = 0;
  GError *local = NULL;
  if (!g_file_get_contents (path, (char **) &data, &len, &local))
    {
      g_set_error (error, SNN_DATA_ERROR,
                   g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? SNN_ERROR_MISSING : SNN_ERROR_INVALID,
                   "%s", local->message);
      g_error_free (local);
      return FALSE;
    }
  /* The file may have changed since it was sized. */
  if (!cifar_check_size (path, len, cifar_record_len (classes), error))
    return FALSE;
  if (len / cifar_record_len (classes) != n)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: changed while being read", path);
      return FALSE;
    }
  return cifar_decode (path, data, n, classes, ds, at, error);
}

/* Sizes all files, then reads them into one dataset. */
static SnnDataset *
cifar_load_files (const char *root, const char *const *files, int classes, GError **error)
{
  int nfiles = g_strv_length ((char **) files);
  gsize counts[8], total = 0;
  g_auto (GStrv) paths = g_new0 (char *, nfiles + 1);
  for (int i = 0; i < nfiles; i++)
    {
      paths[i] = g_build_filename (root, files[i], NULL);
      if (!cifar_count (paths[i], classes, &counts[i], error))
        return NULL;
      total += counts[i];
    }
  if (total > G_MAXINT / CIFAR_PIXELS)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: too many records (%zu)", root, total);
      return NULL;
    }
  SnnDataset *ds = cifar_dataset_new (classes, (int) total);
  if (!ds)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: not enough memory for %zu images", root, total);
      return NULL;
    }
  for (int i = 0, at = 0; i < nfiles; at += counts[i], i++)
    if (!cifar_load_file (paths[i], classes, counts[i], ds, at, error))
      {
        snn_dataset_free (ds);
        return NULL;
      }
  return ds;
}

SnnDataset *
snn_dataset_load_cifar (const char *dir, int classes, gboolean train, GError **error)
{
  if (classes != 10 && classes != 100)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "CIFAR has 10 or 100 classes, not %d", classes);
      return NULL;
    }
  const char *const *files = classes == 10 ? (train ? cifar10_train : cifar10_test)
                                           : (train ? cifar100_train : cifar100_test);
  g_autofree char *root = cifar_find_dir (dir, classes, files[0]);
  if (!root)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING, "%s: no %s found in this folder or in %s/%s", dir,
                   files[0], dir, classes == 10 ? "cifar-10-batches-bin" : "cifar-100-binary");
      return NULL;
    }
  return cifar_load_files (root, files, classes, error);
}

void
snn_cifar_norm_constants (int classes, float mean[3], float std[3])
{
  static const float m10[3] = { 0.4914f, 0.4822f, 0.4465f }, s10[3] = { 0.2023f, 0.1994f, 0.2010f };
  static const float m100[3] = { 0.5071f, 0.4865f, 0.4409f }, s100[3] = { 0.2673f, 0.2564f, 0.2762f };
  memcpy (mean, classes == 100 ? m100 : m10, sizeof m10);
  memcpy (std, classes == 100 ? s100 : s10, sizeof s10);
}

void
snn_dataset_normalize_channels (SnnDataset *ds, const float *mean, const float *std)
{
  int C = ds->sample_ndim > 1 ? ds->sample_shape[0] : 1;
  size_t plane = ds->sample_size / C;
  size_t frames = (size_t) ds->n * MAX (ds->seq_T, 1);
  for (size_t f = 0; f < frames; f++)
    for (int c = 0; c < C; c++)
      {
        float *x = ds->x + f * ds->sample_size + c * plane;
        float inv = 1.0f / std[c];
        for (size_t i = 0; i < plane; i++)
          x[i] = (x[i] - mean[c]) * inv;
      }
}

/* --------------------------------------------------------- augmentation */

void
snn_image_augment_init (SnnImageAugment *aug)
{
  memset (aug, 0, sizeof *aug);
  aug->pad = 4;
  aug->cutout_p = 0.5;
  aug->flip = TRUE;
}

/* The stored value of raw pixel value v in channel c. */
static float
aug_value (const SnnImageAugment *aug, int c, float v)
{
  return aug->mean ? (v - aug->mean[c]) / aug->std[c] : v;
}

/* Shifts the image by (dy, dx) with padding in view: out[y][x] =
 * in[y + dy][x + dx], and a zero pixel where that falls outside. This is
 * a crop of the padded image at offset (pad + dy, pad + dx). */
static void
aug_crop (float *img, int C, int H, int W, int dy, int dx, const SnnImageAugment *aug, float *tmp)
{
  for (int c = 0; c < C; c++)
    {
      float *p = img + (size_t) c * H * W;
      float fill = aug_value (aug, c, 0.0f);
      memcpy (tmp, p, (size_t) H * W * sizeof (float));
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
          {
            int sy = y + dy, sx = x + dx;
            p[y * W + x] = sy >= 0 && sy < H && sx >= 0 && sx < W ? tmp[sy * W + sx] : fill;
          }
    }
}

/* Random erasing: a rectangle of 2% to 40% of the image with aspect
 * ratio in [0.4, 2.5] takes one random pixel value in all channels. Draws
 * that do not fit are retried a few times, then given up. */
static void
aug_cutout (float *img, int C, int H, int W, const SnnImageAugment *aug, SnnRng *rng)
{
  for (int attempt = 0; attempt < 10; attempt++)
    {
      double area = snn_rng_uniform_range (rng, 0.02f, 0.4f) * H * W;
      double ratio = snn_rng_uniform_range (rng, 0.4f, 2.5f);
      int h = (int) sqrt (area * ratio), w = (int) sqrt (area / ratio);
      if (h <= 0 || w <= 0 || h >= H || w >= W)
        continue;
      int top = (int) snn_rng_below (rng, H - h + 1), left = (int) snn_rng_below (rng, W - w + 1);
      float v = (float) snn_rng_below (rng, 256) / 255.0f;
      for (int c = 0; c < C; c++)
        for (int y = top; y < top + h; y++)
          for (int x = left; x < left + w; x++)
            img[((size_t) c * H + y) * W + x] = aug_value (aug, c, v);
      return;
    }
}

static void
aug_hflip (float *img, int C, int H, int W)
{
  for (int r = 0; r < C * H; r++)
    {
      float *row = img + (size_t) r * W;
      for (int x = 0; x < W / 2; x++)
        {
          float t = row[x];
          row[x] = row[W - 1 - x];
          row[W - 1 - x] = t;
        }
    }
}

void
snn_augment_images (float *x, int B, int C, int H, int W, const SnnImageAugment *aug, SnnRng *rng)
{
  g_autofree float *tmp = g_new (float, (size_t) H * W);
  for (int b = 0; b < B; b++)
    {
      float *img = x + (size_t) b * C * H * W;
      if (aug->pad > 0)
        {
          int dy = (int) snn_rng_below (rng, 2 * aug->pad + 1) - aug->pad;
          int dx = (int) snn_rng_below (rng, 2 * aug->pad + 1) - aug->pad;
          aug_crop (img, C, H, W, dy, dx, aug, tmp);
        }
      if (aug->cutout_p > 0 && snn_rng_uniform (rng) < aug->cutout_p)
        aug_cutout (img, C, H, W, aug, rng);
      if (aug->flip && snn_rng_below (rng, 2))
        aug_hflip (img, C, H, W);
    }
}
