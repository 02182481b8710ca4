/* Datasets: IDX files (raw and gzip) read back exactly, clear errors for
 * damaged files, the synthetic temporal set's properties, subsets and
 * batching layouts. */
#include "data.h"
#include "snn-error.h"
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "test-files.h"

#define assert_error_names(e, code, name, also) assert_error_mentions (e, SNN_DATA_ERROR, code, name, also)

/* ------------------------------------------------------------------ IDX */

static void
put_be32 (GByteArray *b, guint32 v)
{
  guint8 p[4] = { v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff };
  g_byte_array_append (b, p, 4);
}

static GByteArray *
idx_images (guint32 magic, guint32 n, guint32 h, guint32 w, guint seed)
{
  GByteArray *b = g_byte_array_new ();
  put_be32 (b, magic);
  put_be32 (b, n);
  put_be32 (b, h);
  put_be32 (b, w);
  for (guint32 i = 0; i < n * h * w; i++)
    {
      guint8 v = (guint8) (i * 37 + seed);
      g_byte_array_append (b, &v, 1);
    }
  return b;
}

static GByteArray *
idx_labels (guint32 n, int max_label)
{
  GByteArray *b = g_byte_array_new ();
  put_be32 (b, 0x00000801);
  put_be32 (b, n);
  for (guint32 i = 0; i < n; i++)
    {
      guint8 v = (guint8) (i * 7 % (max_label + 1));
      g_byte_array_append (b, &v, 1);
    }
  return b;
}

/* Writes raw bytes, or gzip-compressed ones through zlib's gz writer;
 * keeps only the first `keep` bytes of the result when keep >= 0. */
static void
write_file (const char *path, const GByteArray *b, gboolean gz, gssize keep)
{
  if (gz)
    {
      gzFile g = gzopen (path, "wb9");
      g_assert_nonnull (g);
      g_assert_cmpint (gzwrite (g, b->data, b->len), ==, b->len);
      g_assert_cmpint (gzclose (g), ==, Z_OK);
    }
  else
    g_assert_true (g_file_set_contents (path, (const char *) b->data, b->len, NULL));
  if (keep >= 0)
    g_assert_cmpint (truncate (path, keep), ==, 0);
}

static void
check_idx (const SnnDataset *ds, const GByteArray *img, const GByteArray *lab, int h, int w)
{
  int n = (int) (lab->len - 8);
  g_assert_cmpint (ds->n, ==, n);
  g_assert_cmpint (ds->sample_ndim, ==, 3);
  g_assert_cmpint (ds->sample_shape[0], ==, 1);
  g_assert_cmpint (ds->sample_shape[1], ==, h);
  g_assert_cmpint (ds->sample_shape[2], ==, w);
  g_assert_cmpint (ds->sample_size, ==, h * w);
  g_assert_cmpint (ds->seq_T, ==, 0);
  for (int i = 0; i < n * h * w; i++)
    g_assert_cmpfloat (ds->x[i], ==, img->data[16 + i] / 255.0f);
  for (int i = 0; i < n; i++)
    g_assert_cmpint (ds->y[i], ==, lab->data[8 + i]);
}

static void
test_idx_roundtrip (Fixture *f, gconstpointer d)
{
  GByteArray *img = idx_images (0x803, 6, 5, 3, 1), *lab = idx_labels (6, 9);
  g_autofree char *ip = tmp_path (f, "images.gz"), *lp = tmp_path (f, "labels.gz");
  for (int gz = 0; gz < 2; gz++)
    {
      write_file (ip, img, gz, -1);
      write_file (lp, lab, !gz, -1); /* mixed: detection is per file */
      GError *error = NULL;
      SnnDataset *ds = snn_dataset_load_idx (ip, lp, &error);
      g_assert_no_error (error);
      check_idx (ds, img, lab, 5, 3);
      g_assert_cmpint (ds->num_classes, ==, 10);
      snn_dataset_free (ds);
    }
  /* More than ten classes widen num_classes. */
  g_byte_array_unref (lab);
  lab = idx_labels (6, 12);
  lab->data[8 + 5] = 12;
  write_file (lp, lab, TRUE, -1);
  SnnDataset *ds = snn_dataset_load_idx (ip, lp, NULL);
  check_idx (ds, img, lab, 5, 3);
  g_assert_cmpint (ds->num_classes, ==, 13);
  snn_dataset_free (ds);
  g_byte_array_unref (img);
  g_byte_array_unref (lab);
}

static void
expect_idx_error (const char *ip, const char *lp, int code, const char *name, const char *also)
{
  GError *error = NULL;
  g_assert_null (snn_dataset_load_idx (ip, lp, &error));
  assert_error_names (error, code, name, also);
  g_error_free (error);
}

static void
test_idx_errors (Fixture *f, gconstpointer d)
{
  g_autofree char *ip = tmp_path (f, "img-idx3-ubyte"), *lp = tmp_path (f, "lab-idx1-ubyte");
  GByteArray *img = idx_images (0x803, 4, 6, 6, 3), *lab = idx_labels (4, 9);
  write_file (lp, lab, FALSE, -1);

  GByteArray *wrong = idx_images (0x802, 4, 6, 6, 3);
  write_file (ip, wrong, FALSE, -1);
  expect_idx_error (ip, lp, SNN_ERROR_PARSE, "img-idx3-ubyte", "magic number 0x00000802");
  write_file (ip, lab, FALSE, -1);
  expect_idx_error (ip, lp, SNN_ERROR_PARSE, "img-idx3-ubyte", "label file");
  write_file (ip, img, FALSE, -1);
  expect_idx_error (ip, ip, SNN_ERROR_PARSE, "img-idx3-ubyte", "expected 0x00000801");

  /* Truncated pixels, raw and within a complete gzip stream. */
  write_file (ip, img, FALSE, 16 + 100);
  expect_idx_error (ip, lp, SNN_ERROR_TRUNCATED, "img-idx3-ubyte",
                    "truncated at byte offset 116 (expected 144 bytes of pixels, found 100)");
  g_autofree char *gzp = tmp_path (f, "img.gz");
  GByteArray *short_img = g_byte_array_new ();
  g_byte_array_append (short_img, img->data, 16 + 100);
  write_file (gzp, short_img, TRUE, -1);
  expect_idx_error (gzp, lp, SNN_ERROR_TRUNCATED, "img.gz", "byte offset 116");
  write_file (ip, img, FALSE, 10);
  expect_idx_error (ip, lp, SNN_ERROR_TRUNCATED, "img-idx3-ubyte", "IDX header");

  /* A gzip stream cut short. */
  GByteArray *big = idx_images (0x803, 50, 28, 28, 5);
  write_file (gzp, big, TRUE, -1);
  GStatBuf st;
  g_stat (gzp, &st);
  write_file (gzp, big, TRUE, st.st_size / 2);
  expect_idx_error (gzp, lp, SNN_ERROR_TRUNCATED, "img.gz", "truncated");
  g_byte_array_unref (big);

  /* Counts that disagree, labels out of range, missing files. */
  write_file (ip, img, FALSE, -1);
  GByteArray *lab5 = idx_labels (5, 9);
  write_file (lp, lab5, FALSE, -1);
  expect_idx_error (ip, lp, SNN_ERROR_SHAPE, "lab-idx1-ubyte", "4 images");
  lab->data[8 + 2] = 200;
  write_file (lp, lab, FALSE, -1);
  expect_idx_error (ip, lp, SNN_ERROR_INVALID, "lab-idx1-ubyte", "label 200 of sample 2 is out of range");
  g_autofree char *missing = tmp_path (f, "missing");
  expect_idx_error (missing, lp, SNN_ERROR_MISSING, "missing", NULL);
  GByteArray *huge = idx_images (0x803, 0, 100000, 100000, 0);
  write_file (ip, huge, FALSE, -1);
  expect_idx_error (ip, lp, SNN_ERROR_INVALID, "img-idx3-ubyte", "implausible");

  g_byte_array_unref (huge);
  g_byte_array_unref (lab5);
  g_byte_array_unref (short_img);
  g_byte_array_unref (wrong);
  g_byte_array_unref (img);
  g_byte_array_unref (lab);
}

static void
test_mnist_dir (Fixture *f, gconstpointer d)
{
  GByteArray *img = idx_images (0x803, 8, 4, 4, 2), *lab = idx_labels (8, 9);
  GByteArray *timg = idx_images (0x803, 3, 4, 4, 9), *tlab = idx_labels (3, 9);
  g_autofree char *a = tmp_path (f, "train-images-idx3-ubyte.gz"), *b = tmp_path (f, "train-labels-idx1-ubyte.gz");
  g_autofree char *c = tmp_path (f, "t10k-images-idx3-ubyte"), *e = tmp_path (f, "t10k-labels-idx1-ubyte");
  GError *error = NULL;
  g_assert_null (snn_dataset_load_mnist_dir (f->dir, TRUE, &error));
  assert_error_names (error, SNN_ERROR_MISSING, "train-images-idx3-ubyte", NULL);
  g_clear_error (&error);
  write_file (a, img, TRUE, -1);
  write_file (b, lab, TRUE, -1);
  write_file (c, timg, FALSE, -1);
  write_file (e, tlab, FALSE, -1);
  SnnDataset *tr = snn_dataset_load_mnist_dir (f->dir, TRUE, &error);
  g_assert_no_error (error);
  check_idx (tr, img, lab, 4, 4);
  g_autofree char *base = g_path_get_basename (f->dir);
  g_assert_cmpstr (tr->name, ==, base);
  SnnDataset *te = snn_dataset_load_mnist_dir (f->dir, FALSE, &error);
  g_assert_no_error (error);
  check_idx (te, timg, tlab, 4, 4);
  snn_dataset_free (tr);
  snn_dataset_free (te);
  g_byte_array_unref (img);
  g_byte_array_unref (lab);
  g_byte_array_unref (timg);
  g_byte_array_unref (tlab);
}

static void
test_fashion_mnist (void)
{
  if (!g_file_test (SNN_FASHION_MNIST_DIR, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("Fashion-MNIST is not installed at " SNN_FASHION_MNIST_DIR);
      return;
    }
  const int want[2] = { 10000, 60000 };
  for (int train = 0; train < 2; train++)
    {
      GError *error = NULL;
      SnnDataset *ds = snn_dataset_load_mnist_dir (SNN_FASHION_MNIST_DIR, train, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (ds->name, ==, "fashion-mnist");
      g_assert_cmpint (ds->n, ==, want[train]);
      g_assert_cmpint (ds->sample_shape[0], ==, 1);
      g_assert_cmpint (ds->sample_shape[1], ==, 28);
      g_assert_cmpint (ds->sample_shape[2], ==, 28);
      g_assert_cmpint (ds->num_classes, ==, 10);
      int per_class[10] = { 0 };
      for (int i = 0; i < ds->n; i++)
        per_class[ds->y[i]]++;
      for (int c = 0; c < 10; c++)
        g_assert_cmpint (per_class[c], ==, ds->n / 10);
      float mean, std;
      snn_dataset_stats (ds, &mean, &std);
      g_assert_cmpfloat (mean, >, 0.2f);
      g_assert_cmpfloat (mean, <, 0.4f);
      g_assert_cmpfloat (std, >, 0.2f);
      snn_dataset_free (ds);
    }
}

/* ------------------------------------------------------- synthetic set */

#define F SNN_SYNTHETIC_FEATURES
#define C SNN_SYNTHETIC_CLASSES

static void
test_synthetic_basic (void)
{
  const int Ts[] = { 1, 2, 3, 4, 7, 10, 16, 25 };
  for (guint k = 0; k < G_N_ELEMENTS (Ts); k++)
    {
      int T = Ts[k], n = 101;
      SnnDataset *a = snn_dataset_synthetic_temporal (n, T, 42);
      SnnDataset *b = snn_dataset_synthetic_temporal (n, T, 42);
      SnnDataset *c = snn_dataset_synthetic_temporal (n, T, 43);
      g_assert_cmpint (a->n, ==, n);
      g_assert_cmpint (a->seq_T, ==, T);
      g_assert_cmpint (a->sample_ndim, ==, 1);
      g_assert_cmpint (a->sample_shape[0], ==, F);
      g_assert_cmpint (a->sample_size, ==, F);
      g_assert_cmpint (a->num_classes, ==, C);
      g_assert_cmpmem (a->x, n * T * F * sizeof (float), b->x, n * T * F * sizeof (float));
      g_assert_cmpmem (a->y, n * sizeof (int32_t), b->y, n * sizeof (int32_t));
      g_assert_true (memcmp (a->x, c->x, n * T * F * sizeof (float)) != 0);
      int per_class[C] = { 0 };
      for (int i = 0; i < n; i++)
        per_class[a->y[i]]++;
      for (int cl = 0; cl < C; cl++)
        g_assert_cmpint (abs (per_class[cl] - n / C), <=, 1);
      for (int i = 0; i < n * T * F; i++)
        g_assert_true (a->x[i] == 0.0f || a->x[i] == 1.0f);
      snn_dataset_free (a);
      snn_dataset_free (b);
      snn_dataset_free (c);
    }
}

/* Per-class means of a feature map over samples [lo, hi). */
typedef void (*FeatureFn) (const SnnDataset *ds, int i, double *out);

static void
count_features (const SnnDataset *ds, int i, double *out)
{
  memset (out, 0, F * sizeof (double));
  for (int t = 0; t < ds->seq_T; t++)
    for (int j = 0; j < F; j++)
      out[j] += ds->x[((size_t) i * ds->seq_T + t) * F + j];
}

static void
timed_features (const SnnDataset *ds, int i, double *out)
{
  for (int k = 0; k < ds->seq_T * F; k++)
    out[k] = ds->x[(size_t) i * ds->seq_T * F + k];
}

static void
class_means (const SnnDataset *ds, FeatureFn fn, int dim, int lo, int hi, double *means)
{
  double feat[dim];
  int counts[C] = { 0 };
  memset (means, 0, C * dim * sizeof (double));
  for (int i = lo; i < hi; i++)
    {
      fn (ds, i, feat);
      counts[ds->y[i]]++;
      for (int k = 0; k < dim; k++)
        means[ds->y[i] * dim + k] += feat[k];
    }
  for (int c = 0; c < C; c++)
    for (int k = 0; k < dim; k++)
      means[c * dim + k] /= counts[c];
}

/* Accuracy on the second half of the set of the nearest class mean taken
 * over the first half. */
static double
nearest_centroid (const SnnDataset *ds, FeatureFn fn, int dim)
{
  double feat[dim], *centroids = g_new (double, C * dim);
  int half = ds->n / 2, correct = 0;
  class_means (ds, fn, dim, 0, half, centroids);
  for (int i = half; i < ds->n; i++)
    {
      fn (ds, i, feat);
      int best = 0;
      double best_d = INFINITY;
      for (int c = 0; c < C; c++)
        {
          double dd = 0;
          for (int k = 0; k < dim; k++)
            dd += (feat[k] - centroids[c * dim + k]) * (feat[k] - centroids[c * dim + k]);
          if (dd < best_d)
            {
              best_d = dd;
              best = c;
            }
        }
      correct += best == ds->y[i];
    }
  g_free (centroids);
  return (double) correct / (ds->n - half);
}

static double
max_centroid_gap (const double *centroids, int dim)
{
  double gap = 0;
  for (int a = 0; a < C; a++)
    for (int b = a + 1; b < C; b++)
      for (int k = 0; k < dim; k++)
        gap = MAX (gap, fabs (centroids[a * dim + k] - centroids[b * dim + k]));
  return gap;
}

/* Spike counts per neuron are the same for every class; only their timing
 * tells the classes apart. */
static void
test_synthetic_counts_hide_class (void)
{
  const int Ts[] = { 8, 16, 25 };
  for (guint k = 0; k < G_N_ELEMENTS (Ts); k++)
    {
      int T = Ts[k];
      SnnDataset *ds = snn_dataset_synthetic_temporal (8000, T, 7 + T);
      double *cm = g_new (double, C * F), *tm = g_new (double, C * T * F);
      class_means (ds, count_features, F, 0, ds->n, cm);
      class_means (ds, timed_features, T * F, 0, ds->n, tm);
      double count_gap = max_centroid_gap (cm, F), time_gap = max_centroid_gap (tm, T * F);
      double count_acc = nearest_centroid (ds, count_features, F);
      double time_acc = nearest_centroid (ds, timed_features, T * F);
      g_test_message ("T=%d: counts %.3f (gap %.3f), timed %.3f (gap %.3f)", T, count_acc, count_gap, time_acc,
                      time_gap);
      /* A neuron fires 1 to 3 times per sample, yet its mean count differs
       * between classes only by sampling noise (a few hundredths here)... */
      g_assert_cmpfloat (count_gap, <, 0.15);
      /* ...so counts classify at chance, */
      g_assert_cmpfloat (count_acc, <, 0.30);
      /* whereas the mean firing at a given frame differs strongly, */
      g_assert_cmpfloat (time_gap, >, 0.3);
      /* and timing classifies almost perfectly. */
      g_assert_cmpfloat (time_acc, >, 0.95);
      g_free (cm);
      g_free (tm);
      snn_dataset_free (ds);
    }
}

/* With T < 4 frames the windows share frames but keep what order they can. */
static void
test_synthetic_short (void)
{
  for (int T = 2; T <= 3; T++)
    {
      SnnDataset *ds = snn_dataset_synthetic_temporal (4000, T, 5);
      g_assert_cmpfloat (nearest_centroid (ds, count_features, F), <, 0.30);
      g_assert_cmpfloat (nearest_centroid (ds, timed_features, T * F), >, 0.9);
      snn_dataset_free (ds);
    }
}

/* ------------------------------------------------------------ utilities */

static SnnDataset *
small_static (void)
{
  SnnDataset *ds = g_new0 (SnnDataset, 1);
  ds->name = g_strdup ("small");
  ds->n = 10;
  ds->sample_ndim = 3;
  ds->sample_shape[0] = 1;
  ds->sample_shape[1] = 2;
  ds->sample_shape[2] = 3;
  ds->sample_size = 6;
  ds->num_classes = 10;
  ds->x = g_new (float, 60);
  ds->y = g_new (int32_t, 10);
  for (int i = 0; i < 60; i++)
    ds->x[i] = (float) i;
  for (int i = 0; i < 10; i++)
    ds->y[i] = 9 - i;
  return ds;
}

static void
test_stats_normalize (void)
{
  SnnDataset *ds = small_static ();
  float mean, std;
  snn_dataset_stats (ds, &mean, &std);
  /* 0..59: mean 29.5, population variance (60^2 - 1) / 12. */
  g_assert_cmpfloat_with_epsilon (mean, 29.5f, 1e-5f);
  g_assert_cmpfloat_with_epsilon (std, sqrtf (3599.0f / 12.0f), 1e-4f);
  snn_dataset_normalize (ds, mean, std);
  g_assert_cmpfloat_with_epsilon (ds->x[0], -29.5f / std, 1e-5f);
  snn_dataset_stats (ds, &mean, &std);
  g_assert_cmpfloat_with_epsilon (mean, 0.0f, 1e-5f);
  g_assert_cmpfloat_with_epsilon (std, 1.0f, 1e-5f);
  snn_dataset_free (ds);
}

static void
test_subset (void)
{
  SnnDataset *ds = small_static ();
  SnnDataset *a = snn_dataset_subset (ds, 6, 3), *b = snn_dataset_subset (ds, 6, 3);
  g_assert_cmpint (a->n, ==, 6);
  g_assert_cmpint (a->sample_size, ==, 6);
  g_assert_cmpint (a->num_classes, ==, 10);
  g_assert_cmpmem (a->x, 36 * sizeof (float), b->x, 36 * sizeof (float));
  gboolean seen[10] = { FALSE };
  for (int i = 0; i < 6; i++)
    {
      /* Each row is a whole original sample with its own label. */
      int src = (int) a->x[i * 6] / 6;
      g_assert_false (seen[src]);
      seen[src] = TRUE;
      g_assert_cmpint (a->y[i], ==, 9 - src);
      for (int k = 0; k < 6; k++)
        g_assert_cmpfloat (a->x[i * 6 + k], ==, src * 6 + k);
    }
  SnnDataset *all = snn_dataset_subset (ds, 10, 4);
  float total = 0;
  for (int i = 0; i < 60; i++)
    total += all->x[i];
  g_assert_cmpfloat (total, ==, 59 * 60 / 2);

  SnnDataset *seq = snn_dataset_synthetic_temporal (40, 5, 1);
  SnnDataset *ss = snn_dataset_subset (seq, 10, 2);
  g_assert_cmpint (ss->seq_T, ==, 5);
  g_assert_cmpstr (ss->name, ==, "synthetic-temporal");
  snn_dataset_free (seq);
  snn_dataset_free (ss);
  snn_dataset_free (all);
  snn_dataset_free (a);
  snn_dataset_free (b);
  snn_dataset_free (ds);
}

static void
test_gather (void)
{
  SnnDataset *ds = small_static ();
  int idx[3] = { 7, 0, 7 };
  float x[18];
  int32_t y[3];
  snn_dataset_gather (ds, idx, 3, x, y);
  for (int b = 0; b < 3; b++)
    {
      g_assert_cmpint (y[b], ==, 9 - idx[b]);
      for (int k = 0; k < 6; k++)
        g_assert_cmpfloat (x[b * 6 + k], ==, idx[b] * 6 + k);
    }
  snn_dataset_free (ds);

  /* Sequences come out time-major: [T][bsz][F]. */
  const int T = 6;
  SnnDataset *seq = snn_dataset_synthetic_temporal (20, T, 9);
  int sidx[4] = { 3, 19, 0, 3 };
  float *sx = g_new (float, T * 4 * F);
  int32_t sy[4];
  snn_dataset_gather (seq, sidx, 4, sx, sy);
  for (int b = 0; b < 4; b++)
    {
      g_assert_cmpint (sy[b], ==, seq->y[sidx[b]]);
      for (int t = 0; t < T; t++)
        g_assert_cmpmem (sx + (t * 4 + b) * F, F * sizeof (float), seq->x + (sidx[b] * T + t) * F, F * sizeof (float));
    }
  g_free (sx);
  snn_dataset_free (seq);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/data/idx/roundtrip", Fixture, NULL, setup, test_idx_roundtrip, teardown);
  g_test_add ("/data/idx/errors", Fixture, NULL, setup, test_idx_errors, teardown);
  g_test_add ("/data/idx/mnist-dir", Fixture, NULL, setup, test_mnist_dir, teardown);
  g_test_add_func ("/data/idx/fashion-mnist", test_fashion_mnist);
  g_test_add_func ("/data/synthetic/basic", test_synthetic_basic);
  g_test_add_func ("/data/synthetic/counts-hide-class", test_synthetic_counts_hide_class);
  g_test_add_func ("/data/synthetic/short", test_synthetic_short);
  g_test_add_func ("/data/stats-normalize", test_stats_normalize);
  g_test_add_func ("/data/subset", test_subset);
  g_test_add_func ("/data/gather", test_gather);
  return g_test_run ();
}
