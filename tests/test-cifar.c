/* CIFAR-10 and CIFAR-100 binary files read back exactly, clear errors for
 * damaged files, per-channel normalisation and image augmentation. */
#include "data.h"
#include "snn-error.h"
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#define REC_PIXELS 3072

#include "test-files.h"

#define assert_error_names(e, code, name, also) assert_error_mentions (e, SNN_DATA_ERROR, code, name, also)

/* The pixel byte of record r at position j, distinct enough to catch any
 * mix-up of records, channels or rows. */
static guint8
pixel (int file, int r, int j)
{
  return (guint8) (j * 7 + r * 13 + file * 31);
}

/* A file of n records; labels are (file + r) % classes, CIFAR-100 coarse
 * labels fine / 5. */
static void
write_cifar (const char *path, int file, int n, int classes, gsize cut)
{
  int lb = classes == 10 ? 1 : 2;
  GByteArray *b = g_byte_array_new ();
  for (int r = 0; r < n; r++)
    {
      guint8 fine = (guint8) ((file + r) % classes);
      if (lb == 2)
        {
          guint8 coarse = fine / 5;
          g_byte_array_append (b, &coarse, 1);
        }
      g_byte_array_append (b, &fine, 1);
      for (int j = 0; j < REC_PIXELS; j++)
        {
          guint8 v = pixel (file, r, j);
          g_byte_array_append (b, &v, 1);
        }
    }
  GError *error = NULL;
  g_file_set_contents (path, (const char *) b->data, b->len - cut, &error);
  g_assert_no_error (error);
  g_byte_array_unref (b);
}

static char *
write_cifar10 (Fixture *f, gboolean nested)
{
  char *dir = nested ? g_build_filename (f->dir, "cifar-10-batches-bin", NULL) : g_strdup (f->dir);
  g_mkdir_with_parents (dir, 0755);
  for (int i = 1; i <= 5; i++)
    {
      g_autofree char *name = g_strdup_printf ("data_batch_%d.bin", i);
      g_autofree char *p = g_build_filename (dir, name, NULL);
      write_cifar (p, i, 3, 10, 0);
    }
  g_autofree char *p = g_build_filename (dir, "test_batch.bin", NULL);
  write_cifar (p, 0, 4, 10, 0);
  return dir;
}

static void
check_records (const SnnDataset *ds, int file, int first, int n, int classes)
{
  for (int r = 0; r < n; r++)
    {
      g_assert_cmpint (ds->y[first + r], ==, (file + r) % classes);
      const float *x = ds->x + (size_t) (first + r) * REC_PIXELS;
      for (int j = 0; j < REC_PIXELS; j += 97)
        g_assert_cmpfloat (x[j], ==, pixel (file, r, j) / 255.0f);
    }
}

static void
test_cifar10 (Fixture *f, gconstpointer nested)
{
  g_autofree char *dir = write_cifar10 (f, GPOINTER_TO_INT (nested));
  GError *error = NULL;
  SnnDataset *ds = snn_dataset_load_cifar (f->dir, 10, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 15);
  g_assert_cmpint (ds->sample_ndim, ==, 3);
  g_assert_cmpint (ds->sample_shape[0], ==, 3);
  g_assert_cmpint (ds->sample_shape[1], ==, 32);
  g_assert_cmpint (ds->sample_shape[2], ==, 32);
  g_assert_cmpint (ds->seq_T, ==, 0);
  g_assert_cmpint (ds->num_classes, ==, 10);
  for (int i = 1; i <= 5; i++)
    check_records (ds, i, (i - 1) * 3, 3, 10);
  /* R plane first: pixel (c, y, x) is byte c * 1024 + y * 32 + x. */
  g_assert_cmpfloat (ds->x[1024 + 33], ==, pixel (1, 0, 1024 + 33) / 255.0f);
  snn_dataset_free (ds);

  ds = snn_dataset_load_cifar (f->dir, 10, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 4);
  check_records (ds, 0, 0, 4, 10);
  snn_dataset_free (ds);
}

static void
test_cifar100 (Fixture *f, gconstpointer d)
{
  g_autofree char *dir = g_build_filename (f->dir, "cifar-100-binary", NULL);
  g_mkdir (dir, 0755);
  g_autofree char *train = g_build_filename (dir, "train.bin", NULL);
  g_autofree char *test = g_build_filename (dir, "test.bin", NULL);
  write_cifar (train, 95, 9, 100, 0);
  write_cifar (test, 3, 2, 100, 0);
  GError *error = NULL;
  SnnDataset *ds = snn_dataset_load_cifar (f->dir, 100, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 9);
  g_assert_cmpint (ds->num_classes, ==, 100);
  g_assert_cmpstr (ds->name, ==, "cifar100");
  check_records (ds, 95, 0, 9, 100); /* fine labels 95..99, 0..3 */
  snn_dataset_free (ds);
  ds = snn_dataset_load_cifar (dir, 100, FALSE, &error);
  g_assert_no_error (error);
  check_records (ds, 3, 0, 2, 100);
  snn_dataset_free (ds);
}

static void
test_errors (Fixture *f, gconstpointer d)
{
  GError *error = NULL;
  /* Nothing there. */
  g_assert_null (snn_dataset_load_cifar (f->dir, 10, TRUE, &error));
  assert_error_names (error, SNN_ERROR_MISSING, f->dir, "data_batch_1.bin");
  g_clear_error (&error);
  g_assert_null (snn_dataset_load_cifar (f->dir, 7, TRUE, &error));
  g_assert_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID);
  g_clear_error (&error);

  /* A missing batch among the five. */
  g_autofree char *dir = write_cifar10 (f, FALSE);
  g_autofree char *b3 = g_build_filename (dir, "data_batch_3.bin", NULL);
  g_unlink (b3);
  g_assert_null (snn_dataset_load_cifar (dir, 10, TRUE, &error));
  assert_error_names (error, SNN_ERROR_MISSING, "data_batch_3.bin", NULL);
  g_clear_error (&error);

  /* A cut record: 2 whole records (6146 bytes), then 100 bytes. */
  write_cifar (b3, 3, 3, 10, 3073 - 100);
  g_assert_null (snn_dataset_load_cifar (dir, 10, TRUE, &error));
  assert_error_names (error, SNN_ERROR_TRUNCATED, "data_batch_3.bin", "byte offset 6246");
  g_assert_nonnull (strstr (error->message, "starting at byte offset 6146"));
  g_clear_error (&error);

  /* A label out of range in the second record. */
  write_cifar (b3, 3, 3, 10, 0);
  g_autofree char *data = NULL;
  gsize len;
  g_file_get_contents (b3, &data, &len, NULL);
  data[3073] = 10;
  g_file_set_contents (b3, data, len, NULL);
  g_assert_null (snn_dataset_load_cifar (dir, 10, TRUE, &error));
  assert_error_names (error, SNN_ERROR_INVALID, "data_batch_3.bin", "byte offset 3073");
  g_clear_error (&error);

  /* A CIFAR-100 fine label of 100 (record 0's second byte). */
  g_autofree char *train = g_build_filename (f->dir, "train.bin", NULL);
  write_cifar (train, 0, 2, 100, 0);
  g_clear_pointer (&data, g_free);
  g_file_get_contents (train, &data, &len, NULL);
  data[1] = 100;
  g_file_set_contents (train, data, len, NULL);
  g_assert_null (snn_dataset_load_cifar (f->dir, 100, TRUE, &error));
  assert_error_names (error, SNN_ERROR_INVALID, "train.bin", "byte offset 1");
  g_clear_error (&error);
}

static void
test_normalize (void)
{
  g_autofree char *dir = g_dir_make_tmp ("snn-cifar-XXXXXX", NULL);
  Fixture f = { g_strdup (dir) };
  g_free (write_cifar10 (&f, FALSE));
  GError *error = NULL;
  SnnDataset *ds = snn_dataset_load_cifar (dir, 10, FALSE, &error);
  g_assert_no_error (error);
  float mean[3], std[3];
  snn_cifar_norm_constants (10, mean, std);
  g_assert_cmpfloat_with_epsilon (mean[0], 0.4914f, 1e-6);
  g_assert_cmpfloat_with_epsilon (std[2], 0.2010f, 1e-6);
  float *raw = g_memdup2 (ds->x, (gsize) ds->n * ds->sample_size * sizeof (float));
  snn_dataset_normalize_channels (ds, mean, std);
  for (int i = 0; i < ds->n; i++)
    for (int c = 0; c < 3; c++)
      for (int j = 0; j < 1024; j += 51)
        {
          size_t k = (size_t) i * REC_PIXELS + c * 1024 + j;
          g_assert_cmpfloat_with_epsilon (ds->x[k], (raw[k] - mean[c]) / std[c], 1e-5);
        }
  snn_cifar_norm_constants (100, mean, std);
  g_assert_cmpfloat_with_epsilon (mean[1], 0.4865f, 1e-6);
  g_assert_cmpfloat_with_epsilon (std[1], 0.2564f, 1e-6);
  g_free (raw);
  snn_dataset_free (ds);
  remove_tree (dir);
  g_free (f.dir);
}

/* Augmentation: a crop with padding shifts the image and fills the border
 * with the padding value; a flip mirrors rows; every transform keeps the
 * batch in place and is reproducible from the seed. */
static void
test_augment (void)
{
  enum { B = 64, C = 3, H = 8, W = 8 };
  static float x[B * C * H * W], y[B * C * H * W];
  for (int i = 0; i < B * C * H * W; i++)
    x[i] = 1.0f + (float) i;
  SnnImageAugment aug;
  snn_image_augment_init (&aug);
  aug.cutout_p = 0;
  aug.flip = FALSE;
  aug.pad = 2;
  float mean[3] = { 0.5f, 0.5f, 0.5f }, std[3] = { 0.25f, 0.25f, 0.25f };
  aug.mean = mean;
  aug.std = std;
  memcpy (y, x, sizeof x);
  SnnRng rng;
  snn_rng_seed (&rng, 3);
  snn_augment_images (y, B, C, H, W, &aug, &rng);
  /* Every image is its original shifted by one (dy, dx) in [-2, 2]^2, with
   * padded pixels at (0 - 0.5) / 0.25 = -2. */
  int shifted = 0;
  for (int b = 0; b < B; b++)
    {
      const float *o = x + b * C * H * W, *a = y + b * C * H * W;
      int found = 0;
      for (int dy = -2; dy <= 2 && !found; dy++)
        for (int dx = -2; dx <= 2 && !found; dx++)
          {
            gboolean match = TRUE;
            for (int c = 0; c < C && match; c++)
              for (int yy = 0; yy < H && match; yy++)
                for (int xx = 0; xx < W && match; xx++)
                  {
                    int sy = yy + dy, sx = xx + dx;
                    float want = sy >= 0 && sy < H && sx >= 0 && sx < W ? o[(c * H + sy) * W + sx] : -2.0f;
                    match = a[(c * H + yy) * W + xx] == want;
                  }
            found = match;
            shifted += match && (dx || dy);
          }
      g_assert_true (found);
    }
  g_assert_cmpint (shifted, >, B / 2);

  /* Flip only: each image is the original or its mirror, both occur. */
  aug.pad = 0;
  aug.flip = TRUE;
  memcpy (y, x, sizeof x);
  snn_augment_images (y, B, C, H, W, &aug, &rng);
  int flipped = 0;
  for (int b = 0; b < B; b++)
    {
      const float *o = x + b * C * H * W, *a = y + b * C * H * W;
      gboolean same = memcmp (o, a, C * H * W * sizeof (float)) == 0, mirror = TRUE;
      for (int r = 0; r < C * H; r++)
        for (int xx = 0; xx < W; xx++)
          mirror = mirror && a[r * W + xx] == o[r * W + W - 1 - xx];
      g_assert_true (same || mirror);
      flipped += mirror;
    }
  g_assert_cmpint (flipped, >, 0);
  g_assert_cmpint (flipped, <, B);

  /* Cutout always: one rectangle of equal values (the same raw value in
   * each channel) and the rest unchanged. */
  aug.flip = FALSE;
  aug.cutout_p = 1.0;
  aug.mean = aug.std = NULL;
  memcpy (y, x, sizeof x);
  snn_augment_images (y, B, C, H, W, &aug, &rng);
  int erased = 0;
  for (int b = 0; b < B; b++)
    {
      int changed = 0;
      float v = NAN;
      for (int i = 0; i < C * H * W; i++)
        if (y[b * C * H * W + i] != x[b * C * H * W + i])
          {
            changed++;
            if (isnan (v))
              v = y[b * C * H * W + i];
            g_assert_cmpfloat (y[b * C * H * W + i], ==, v);
            g_assert_true (v >= 0.0f && v <= 1.0f);
          }
      g_assert_cmpint (changed % C, ==, 0);
      g_assert_cmpint (changed, <=, C * H * W * 2 / 5 + C);
      erased += changed > 0;
    }
  g_assert_cmpint (erased, >, B / 2);

  /* Reproducible. */
  snn_image_augment_init (&aug);
  static float z[B * C * H * W];
  memcpy (y, x, sizeof x);
  memcpy (z, x, sizeof x);
  snn_rng_seed (&rng, 11);
  snn_augment_images (y, B, C, H, W, &aug, &rng);
  snn_rng_seed (&rng, 11);
  snn_augment_images (z, B, C, H, W, &aug, &rng);
  g_assert_cmpmem (y, sizeof y, z, sizeof z);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/cifar/cifar10", Fixture, GINT_TO_POINTER (FALSE), setup, test_cifar10, teardown);
  g_test_add ("/cifar/cifar10-subfolder", Fixture, GINT_TO_POINTER (TRUE), setup, test_cifar10, teardown);
  g_test_add ("/cifar/cifar100", Fixture, NULL, setup, test_cifar100, teardown);
  g_test_add ("/cifar/errors", Fixture, NULL, setup, test_errors, teardown);
  g_test_add_func ("/cifar/normalize", test_normalize);
  g_test_add_func ("/cifar/augment", test_augment);
  return g_test_run ();
}
