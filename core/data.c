/* Datasets: IDX files (MNIST family), the synthetic temporal set,
 * normalisation, subsets and batching. */
#include "data.h"
#include "snn-error.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

void
snn_dataset_free (SnnDataset *ds)
{
  if (!ds)
    return;
  g_free (ds->name);
  g_free (ds->x);
  g_free (ds->y);
  g_free (ds);
}

static size_t
dataset_values_per_sample (const SnnDataset *ds)
{
  return (size_t) MAX (ds->seq_T, 1) * ds->sample_size;
}

/* A dataset with allocated, zeroed storage; NULL if memory runs out. */
static SnnDataset *
dataset_new (const char *name, int n, int seq_T, int ndim, const int *shape, int num_classes)
{
  SnnDataset *ds = g_new0 (SnnDataset, 1);
  ds->name = g_strdup (name);
  ds->n = n;
  ds->seq_T = seq_T;
  ds->sample_ndim = ndim;
  ds->sample_size = 1;
  for (int i = 0; i < ndim; i++)
    {
      ds->sample_shape[i] = shape[i];
      ds->sample_size *= shape[i];
    }
  ds->num_classes = num_classes;
  ds->norm_std = 1.0f;
  ds->x = g_try_malloc0_n ((size_t) n * dataset_values_per_sample (ds) + 1, sizeof (float));
  ds->y = g_try_malloc0_n ((size_t) n + 1, sizeof (int32_t));
  if (!ds->x || !ds->y)
    {
      snn_dataset_free (ds);
      return NULL;
    }
  return ds;
}

/* ------------------------------------------------------------------ IDX */

/* Labels beyond this are taken as a sign of a corrupt or mismatched file:
 * the MNIST family has at most 62 classes (EMNIST by_class). */
#define IDX_MAX_CLASSES 100

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u

/* An open IDX file, raw or gzip-compressed; zlib's gzread passes raw files
 * through unchanged, so one reader serves both. */
typedef struct {
  const char *path;
  gzFile gz;
  gboolean compressed;
  guint64 offset; /* bytes of (decompressed) content consumed */
} IdxFile;

static gboolean
idx_open (IdxFile *f, const char *path, GError **error)
{
  f->path = path;
  f->offset = 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, SNN_DATA_ERROR, e == ENOENT ? SNN_ERROR_MISSING : SNN_ERROR_INVALID,
                   "%s: cannot open: %s", path, g_strerror (e));
      return FALSE;
    }
  struct stat st;
  if (fstat (fd, &st) == 0 && S_ISDIR (st.st_mode))
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: is a folder, not a file", path);
      close (fd);
      return FALSE;
    }
  guint8 magic[2] = { 0, 0 };
  f->compressed = pread (fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  f->gz = gzdopen (fd, "rb");
  if (!f->gz)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: cannot open: out of memory", path);
      close (fd);
      return FALSE;
    }
  gzbuffer (f->gz, 1 << 17);
  return TRUE;
}

static void
idx_close (IdxFile *f)
{
  if (f->gz)
    gzclose (f->gz);
  f->gz = NULL;
}

/* Reads len bytes, fewer only at the end of the data; what counts as
 * "truncated" is the caller's to say, since only it knows what the bytes were
 * for. Returns the number read, or -1 after setting error for a damaged gzip
 * stream or a read error. */
static gint64
idx_read (IdxFile *f, void *buf, size_t len, GError **error)
{
  size_t got = 0;
  while (got < len)
    {
      int n = gzread (f->gz, (char *) buf + got, (unsigned) MIN (len - got, (size_t) 1 << 30));
      int code = Z_OK;
      const char *msg = n <= 0 ? gzerror (f->gz, &code) : NULL;
      /* A cut gzip stream reads as a short read with the error kept aside. */
      if (code != Z_OK)
        {
          if (g_str_has_prefix (msg, "<fd:") && strstr (msg, ": "))
            msg = strstr (msg, ": ") + 2;
          g_set_error (error, SNN_DATA_ERROR, code == Z_BUF_ERROR ? SNN_ERROR_TRUNCATED : SNN_ERROR_PARSE,
                       "%s: %s (%s) after %" G_GUINT64_FORMAT " decompressed bytes", f->path,
                       code == Z_BUF_ERROR ? "gzip data is truncated" : code == Z_ERRNO ? "read error"
                                                                      : "gzip data is corrupt", msg, f->offset + got);
          return -1;
        }
      if (n == 0)
        break;
      got += n;
    }
  f->offset += got;
  return (gint64) got;
}

static gboolean
idx_read_exact (IdxFile *f, void *buf, size_t len, const char *what, GError **error)
{
  guint64 at = f->offset;
  gint64 got = idx_read (f, buf, len, error);
  if (got < 0)
    return FALSE;
  if ((size_t) got < len)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                   "%s: file is truncated at byte offset %" G_GUINT64_FORMAT " (expected %zu bytes of %s, found %"
                   G_GINT64_FORMAT ")%s", f->path, at + got, len, what, got,
                   f->compressed ? " in the decompressed data" : "");
      return FALSE;
    }
  return TRUE;
}

static guint32
be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

/* Reads the magic and the dimensions of an IDX header. */
static gboolean
idx_header (IdxFile *f, guint32 want_magic, int ndims, guint32 *dims, GError **error)
{
  guint8 hdr[16];
  const char *kind = want_magic == IDX_IMAGES_MAGIC ? "image" : "label";
  /* The magic first: a wrong kind of file deserves that message, not
   * a complaint about the length of its header. */
  if (!idx_read_exact (f, hdr, 4, "IDX header", error))
    return FALSE;
  guint32 magic = be32 (hdr);
  if (magic != want_magic)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_PARSE,
                   "%s: not an IDX %s file (magic number 0x%08x, expected 0x%08x)%s", f->path, kind, magic,
                   want_magic, magic == IDX_IMAGES_MAGIC ? "; this is an image file"
                               : magic == IDX_LABELS_MAGIC ? "; this is a label file" : "");
      return FALSE;
    }
  if (!idx_read_exact (f, hdr + 4, 4 * ndims, "IDX header", error))
    return FALSE;
  for (int i = 0; i < ndims; i++)
    dims[i] = be32 (hdr + 4 + 4 * i);
  return TRUE;
}

/* Reads `total` pixel bytes. The buffer grows with the data actually
 * present, so a header that claims a huge count costs no memory before the
 * file proves it. */
static guint8 *
idx_read_pixels (IdxFile *f, guint64 total, GError **error)
{
  guint64 done = 0, cap = 0, at = f->offset;
  guint8 *buf = NULL;
  while (done < total)
    {
      if (done == cap)
        {
          cap = MIN (total, MAX (cap * 2, (guint64) 1 << 20));
          guint8 *grown = g_try_realloc (buf, cap);
          if (!grown)
            {
              g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: not enough memory for %" G_GUINT64_FORMAT
                           " bytes of pixels", f->path, total);
              g_free (buf);
              return NULL;
            }
          buf = grown;
        }
      guint64 want = cap - done;
      gint64 got = idx_read (f, buf + done, want, error);
      if (got < 0)
        {
          g_free (buf);
          return NULL;
        }
      done += got;
      if ((guint64) got < want)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                       "%s: file is truncated at byte offset %" G_GUINT64_FORMAT " (expected %" G_GUINT64_FORMAT
                       " bytes of pixels, found %" G_GUINT64_FORMAT ")%s", f->path, at + done, total, done,
                       f->compressed ? " in the decompressed data" : "");
          g_free (buf);
          return NULL;
        }
    }
  return buf;
}

static gboolean
idx_check_image_dims (const char *path, const guint32 *d, GError **error)
{
  /* Bounds keep n * H * W well inside memory and int arithmetic. */
  if (d[0] == 0 || d[0] > G_MAXINT / 2 || d[1] == 0 || d[2] == 0 || d[1] > 4096 || d[2] > 4096
      || (guint64) d[0] * d[1] * d[2] > ((guint64) 1 << 36))
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID,
                   "%s: implausible IDX image dimensions %u x %u x %u", path, d[0], d[1], d[2]);
      return FALSE;
    }
  return TRUE;
}

static SnnDataset *
idx_load_images (const char *path, GError **error)
{
  IdxFile f = { 0 };
  guint32 d[3];
  SnnDataset *ds = NULL;
  if (!idx_open (&f, path, error))
    return NULL;
  if (idx_header (&f, IDX_IMAGES_MAGIC, 3, d, error) && idx_check_image_dims (path, d, error))
    {
      guint64 total = (guint64) d[0] * d[1] * d[2];
      g_autofree guint8 *pixels = idx_read_pixels (&f, total, error);
      int shape[3] = { 1, (int) d[1], (int) d[2] };
      g_autofree char *dir = g_path_get_dirname (path);
      g_autofree char *name = g_path_get_basename (dir);
      if (pixels && !(ds = dataset_new (name, (int) d[0], 0, 3, shape, 10)))
        g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: not enough memory for %u images", path, d[0]);
      for (guint64 i = 0; ds && i < total; i++)
        ds->x[i] = pixels[i] / 255.0f;
    }
  idx_close (&f);
  return ds;
}

static gboolean
idx_check_labels (const char *path, const guint8 *labels, guint32 n, int *num_classes, GError **error)
{
  int max = 0;
  for (guint32 i = 0; i < n; i++)
    {
      if (labels[i] >= IDX_MAX_CLASSES)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID,
                       "%s: label %d of sample %u is out of range (at most %d classes)", path, labels[i], i,
                       IDX_MAX_CLASSES);
          return FALSE;
        }
      max = MAX (max, labels[i]);
    }
  *num_classes = MAX (10, max + 1);
  return TRUE;
}

/* Reads n labels into ds->y; the count must match the image file's. */
static gboolean
idx_load_labels (const char *path, const char *images_path, SnnDataset *ds, GError **error)
{
  IdxFile f = { 0 };
  guint32 n;
  gboolean ok = FALSE;
  if (!idx_open (&f, path, error))
    return FALSE;
  if (idx_header (&f, IDX_LABELS_MAGIC, 1, &n, error))
    {
      if (n != (guint32) ds->n)
        g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_SHAPE, "%s has %d images but %s has %u labels",
                     images_path, ds->n, path, n);
      else
        {
          g_autofree guint8 *labels = g_malloc (n);
          ok = idx_read_exact (&f, labels, n, "labels", error)
               && idx_check_labels (path, labels, n, &ds->num_classes, error);
          for (guint32 i = 0; ok && i < n; i++)
            ds->y[i] = labels[i];
        }
    }
  idx_close (&f);
  return ok;
}

SnnDataset *
snn_dataset_load_idx (const char *images_path, const char *labels_path, GError **error)
{
  SnnDataset *ds = idx_load_images (images_path, error);
  if (ds && !idx_load_labels (labels_path, images_path, ds, error))
    g_clear_pointer (&ds, snn_dataset_free);
  return ds;
}

/* DIR/BASE.gz if it exists, else DIR/BASE if it exists, else NULL. */
static char *
find_idx_file (const char *dir, const char *base)
{
  g_autofree char *gz = g_strconcat (base, ".gz", NULL);
  const char *names[] = { gz, base };
  for (int i = 0; i < 2; i++)
    {
      char *p = g_build_filename (dir, names[i], NULL);
      if (g_file_test (p, G_FILE_TEST_IS_REGULAR))
        return p;
      g_free (p);
    }
  return NULL;
}

SnnDataset *
snn_dataset_load_mnist_dir (const char *dir, gboolean train, GError **error)
{
  const char *split = train ? "train" : "t10k";
  g_autofree char *ibase = g_strdup_printf ("%s-images-idx3-ubyte", split);
  g_autofree char *lbase = g_strdup_printf ("%s-labels-idx1-ubyte", split);
  g_autofree char *images = find_idx_file (dir, ibase);
  g_autofree char *labels = find_idx_file (dir, lbase);
  if (!images || !labels)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING, "%s: no %s[.gz] found in this folder%s", dir,
                   images ? lbase : ibase,
                   g_file_test (dir, G_FILE_TEST_IS_DIR) ? "" : " (the folder does not exist)");
      return NULL;
    }
  SnnDataset *ds = snn_dataset_load_idx (images, labels, error);
  if (ds)
    {
      g_free (ds->name);
      ds->name = g_path_get_basename (dir);
    }
  return ds;
}

/* ------------------------------------------------------- synthetic set
 *
 * F = 32 input neurons form 4 groups of 8 (group g = neurons 8g..8g+7).
 * Frames are split into 4 windows; class c fires the groups in the order
 * given by row c of the Latin square below, i.e. the group at position p
 * fires in window p. Because every group takes every position in exactly
 * one class, and every neuron fires the same number of spikes (K) in
 * whichever window it lands in, firing counts carry no class information:
 * only the timing does.
 *
 * Window p covers frames [floor(p T / 4), floor((p + 1) T / 4)), at least
 * one frame long. For T < 4 windows share frames (T = 2: positions 0 and 1
 * in frame 0, 2 and 3 in frame 1; T = 3: 0 and 1 in frame 0), which keeps
 * as much of the order as the frames can hold; T = 1 holds none.
 *
 * Each sample draws, per group, a shift of the window by up to a quarter of
 * the shortest window, and per neuron K distinct spike times inside the
 * shifted window (K = half the shortest window, at least 1). Each spike is
 * then dropped with probability SYN_P_DROP, and every (frame, neuron) gets a
 * spurious spike with probability SYN_P_NOISE. Labels are balanced (i % 4)
 * and shuffled. */

#define SYN_GROUPS 4
#define SYN_GROUP_SIZE (SNN_SYNTHETIC_FEATURES / SYN_GROUPS)
#define SYN_P_DROP 0.1
#define SYN_P_NOISE 0.02

static const int syn_order[SNN_SYNTHETIC_CLASSES][SYN_GROUPS] = {
  { 0, 1, 2, 3 },
  { 1, 3, 0, 2 },
  { 2, 0, 3, 1 },
  { 3, 2, 1, 0 },
};

typedef struct {
  int T;
  int start[SYN_GROUPS], end[SYN_GROUPS]; /* window of each position */
  int jitter;                             /* largest window shift */
  int k;                                  /* spikes per neuron */
} SynPlan;

static void
syn_plan (SynPlan *plan, int T)
{
  int shortest = T;
  plan->T = T;
  for (int p = 0; p < SYN_GROUPS; p++)
    {
      plan->start[p] = MIN (p * T / SYN_GROUPS, T - 1);
      plan->end[p] = MAX ((p + 1) * T / SYN_GROUPS, plan->start[p] + 1);
      shortest = MIN (shortest, plan->end[p] - plan->start[p]);
    }
  plan->jitter = shortest / 4;
  plan->k = MAX (1, shortest / 2);
}

/* K distinct frames in [lo, hi) (partial Fisher-Yates); hi - lo >= K. */
static void
syn_pick_frames (SnnRng *rng, int lo, int hi, int k, int *out)
{
  int n = hi - lo, pool[n];
  for (int i = 0; i < n; i++)
    pool[i] = lo + i;
  for (int i = 0; i < k; i++)
    {
      int j = i + (int) snn_rng_below (rng, (uint32_t) (n - i));
      int t = pool[i];
      pool[i] = pool[j];
      pool[j] = t;
      out[i] = pool[i];
    }
}

/* Fires the neurons of one group inside window p, shifted by a random
 * jitter and clipped to the frames. */
static void
syn_fire_group (const SynPlan *plan, SnnRng *rng, int group, int p, float *x)
{
  int F = SNN_SYNTHETIC_FEATURES;
  int shift = plan->jitter ? (int) snn_rng_below (rng, 2 * plan->jitter + 1) - plan->jitter : 0;
  int lo = CLAMP (plan->start[p] + shift, 0, plan->T - 1);
  int hi = CLAMP (plan->end[p] + shift, lo + 1, plan->T);
  int k = MIN (plan->k, hi - lo), frames[plan->T];
  for (int j = 0; j < SYN_GROUP_SIZE; j++)
    {
      int neuron = group * SYN_GROUP_SIZE + j;
      syn_pick_frames (rng, lo, hi, k, frames);
      for (int s = 0; s < k; s++)
        if (snn_rng_uniform (rng) >= SYN_P_DROP)
          x[(size_t) frames[s] * F + neuron] = 1.0f;
    }
}

static void
syn_sample (const SynPlan *plan, SnnRng *rng, int label, float *x)
{
  for (int p = 0; p < SYN_GROUPS; p++)
    syn_fire_group (plan, rng, syn_order[label][p], p, x);
  for (int i = 0; i < plan->T * SNN_SYNTHETIC_FEATURES; i++)
    if (snn_rng_uniform (rng) < SYN_P_NOISE)
      x[i] = 1.0f;
}

SnnDataset *
snn_dataset_synthetic_temporal (int n, int T, uint64_t seed)
{
  g_return_val_if_fail (n >= 0 && T >= 1, NULL);
  int shape[1] = { SNN_SYNTHETIC_FEATURES };
  SnnDataset *ds = dataset_new ("synthetic-temporal", n, T, 1, shape, SNN_SYNTHETIC_CLASSES);
  g_return_val_if_fail (ds != NULL, NULL);
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  int *perm = g_new (int, MAX (n, 1));
  snn_rng_permutation (&rng, perm, n);
  for (int i = 0; i < n; i++)
    ds->y[perm[i]] = i % SNN_SYNTHETIC_CLASSES;
  g_free (perm);
  SynPlan plan;
  syn_plan (&plan, T);
  for (int i = 0; i < n; i++)
    syn_sample (&plan, &rng, ds->y[i], ds->x + (size_t) i * T * SNN_SYNTHETIC_FEATURES);
  return ds;
}

/* ------------------------------------------------------------ utilities */

static size_t
dataset_numel (const SnnDataset *ds)
{
  return (size_t) ds->n * dataset_values_per_sample (ds);
}

void
snn_dataset_normalize (SnnDataset *ds, float mean, float std)
{
  float inv = 1.0f / std;
  size_t n = dataset_numel (ds);
  for (size_t i = 0; i < n; i++)
    ds->x[i] = (ds->x[i] - mean) * inv;
}

void
snn_dataset_stats (const SnnDataset *ds, float *mean, float *std)
{
  size_t n = dataset_numel (ds);
  double sum = 0.0, sq = 0.0;
  for (size_t i = 0; i < n; i++)
    sum += ds->x[i];
  double m = n ? sum / n : 0.0;
  /* Two passes: the one-pass formula loses precision when std << mean. */
  for (size_t i = 0; i < n; i++)
    sq += (ds->x[i] - m) * (ds->x[i] - m);
  *mean = (float) m;
  *std = (float) (n ? sqrt (sq / n) : 0.0);
}

SnnDataset *
snn_dataset_subset (const SnnDataset *ds, int n, uint64_t seed)
{
  g_return_val_if_fail (n >= 0, NULL);
  n = MIN (n, ds->n);
  SnnDataset *out = dataset_new (ds->name, n, ds->seq_T, ds->sample_ndim, ds->sample_shape, ds->num_classes);
  g_return_val_if_fail (out != NULL, NULL);
  int *perm = g_new (int, MAX (ds->n, 1));
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  snn_rng_permutation (&rng, perm, ds->n);
  size_t per = dataset_values_per_sample (ds);
  for (int i = 0; i < n; i++)
    {
      memcpy (out->x + i * per, ds->x + perm[i] * per, per * sizeof (float));
      out->y[i] = ds->y[perm[i]];
    }
  g_free (perm);
  return out;
}

void
snn_dataset_gather (const SnnDataset *ds, const int *idx, int bsz, float *x_out, int32_t *y_out)
{
  size_t S = ds->sample_size;
  for (int b = 0; b < bsz; b++)
    {
      y_out[b] = ds->y[idx[b]];
      if (ds->seq_T <= 0)
        {
          memcpy (x_out + b * S, ds->x + idx[b] * S, S * sizeof (float));
          continue;
        }
      /* [n][T][S] to [T][bsz][S]. */
      for (int t = 0; t < ds->seq_T; t++)
        memcpy (x_out + ((size_t) t * bsz + b) * S, ds->x + ((size_t) idx[b] * ds->seq_T + t) * S,
                S * sizeof (float));
    }
}
