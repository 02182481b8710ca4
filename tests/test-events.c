/* Event streams: the three file formats read back exactly, integration by
 * count and by time into exact cells, resizing, the frame cache (hits,
 * stale and damaged files), clear errors for damaged files, the synthetic
 * event set and event-frame augmentation. */
#include "events.h"
#include "snn-error.h"
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "test-files.h"

static char *
in_dir (const char *dir, const char *rel)
{
  char *p = g_build_filename (dir, rel, NULL);
  g_autofree char *parent = g_path_get_dirname (p);
  g_mkdir_with_parents (parent, 0755);
  return p;
}

static void
put_file (const char *path, const void *data, gsize len)
{
  GError *error = NULL;
  g_file_set_contents (path, data, len, &error);
  g_assert_no_error (error);
}

#define assert_error_names(e, code, name, also) assert_error_mentions (e, SNN_DATA_ERROR, code, name, also)

static void
put_le32 (GByteArray *b, guint32 v)
{
  guint8 p[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
  g_byte_array_append (b, p, 4);
}

static void
put_be32 (GByteArray *b, guint32 v)
{
  guint8 p[4] = { v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff };
  g_byte_array_append (b, p, 4);
}

/* ------------------------------------------------- a known event stream */

typedef struct {
  int x, y, p;
  gint64 t;
} Ev;

/* Ten events; with T = 4 the number split gives frames {0,1} {2,3} {4,5}
 * {6,7,8,9} (di = 2, the last frame takes the remainder) and the time
 * split (t0 = 1000, dt = 500) gives {0,1,2} {3,4} {5,6} {7,8,9}. */
static const Ev known[10] = {
  { 1, 2, 0, 1000 }, { 3, 4, 1, 1010 }, { 1, 2, 0, 1020 }, { 5, 6, 1, 1500 }, { 7, 8, 0, 1600 },
  { 9, 9, 1, 2000 }, { 1, 2, 1, 2100 }, { 3, 4, 0, 2500 }, { 5, 6, 0, 2900 }, { 7, 8, 1, 3000 },
};
static const int known_number_frame[10] = { 0, 0, 1, 1, 2, 2, 3, 3, 3, 3 };
static const int known_time_frame[10] = { 0, 0, 0, 1, 1, 2, 2, 3, 3, 3 };

static void
assert_events (const SnnEvents *ev, const Ev *want, int n, gint64 t_offset)
{
  g_assert_cmpuint (ev->n, ==, n);
  for (int i = 0; i < n; i++)
    {
      g_assert_cmpint (ev->x[i], ==, want[i].x);
      g_assert_cmpint (ev->y[i], ==, want[i].y);
      g_assert_cmpint (ev->p[i], ==, want[i].p);
      g_assert_cmpint (ev->t[i], ==, want[i].t + t_offset);
    }
}

/* The frames [T][2][H][W] the known events give for a frame assignment,
 * checked cell by cell against `frames`. */
static void
assert_known_frames (const float *frames, const int *frame_of, int T, int H, int W)
{
  g_autofree float *want = g_new0 (float, (size_t) T * 2 * H * W);
  for (int i = 0; i < 10; i++)
    want[((size_t) (frame_of[i] * 2 + known[i].p) * H + known[i].y) * W + known[i].x] += 1.0f;
  for (size_t k = 0; k < (size_t) T * 2 * H * W; k++)
    if (frames[k] != want[k])
      g_error ("cell %zu (frame %zu, channel %zu, y %zu, x %zu): %g, expected %g", k, k / (2 * H * W),
               k / (H * W) % 2, k / W % H, k % W, frames[k], want[k]);
}

static SnnEvents *
known_events (void)
{
  SnnEvents *ev = snn_events_new ();
  for (int i = 0; i < 10; i++)
    snn_events_append (ev, known[i].x, known[i].y, known[i].p, known[i].t);
  return ev;
}

static void
test_bounds (void)
{
  gsize lo, hi;
  /* N = 10, T = 3: di = 3, frames [0,3) [3,6) [6,10). */
  const gsize want3[3][2] = { { 0, 3 }, { 3, 6 }, { 6, 10 } };
  for (int i = 0; i < 3; i++)
    {
      snn_events_number_bounds (10, 3, i, &lo, &hi);
      g_assert_cmpuint (lo, ==, want3[i][0]);
      g_assert_cmpuint (hi, ==, want3[i][1]);
    }
  /* N = 10, T = 4: floor(N / T) = 2 per frame, not floor(i N / T). */
  snn_events_number_bounds (10, 4, 2, &lo, &hi);
  g_assert_cmpuint (lo, ==, 4);
  g_assert_cmpuint (hi, ==, 6);
  snn_events_number_bounds (10, 4, 3, &lo, &hi);
  g_assert_cmpuint (lo, ==, 6);
  g_assert_cmpuint (hi, ==, 10);
  /* Fewer events than frames: all in the last. */
  snn_events_number_bounds (3, 5, 0, &lo, &hi);
  g_assert_cmpuint (hi - lo, ==, 0);
  snn_events_number_bounds (3, 5, 4, &lo, &hi);
  g_assert_cmpuint (lo, ==, 0);
  g_assert_cmpuint (hi, ==, 3);
}

static void
test_integrate (void)
{
  SnnEvents *ev = known_events ();
  float frames[4 * 2 * 10 * 10];
  snn_events_integrate (ev, SNN_SPLIT_NUMBER, 4, 10, 10, frames);
  assert_known_frames (frames, known_number_frame, 4, 10, 10);
  /* Events 0 and 2 share a cell (channel 0, y 2, x 1) but not a frame. */
  g_assert_cmpfloat (frames[(0 * 2 + 0) * 100 + 2 * 10 + 1], ==, 1.0f);
  g_assert_cmpfloat (frames[(1 * 2 + 0) * 100 + 2 * 10 + 1], ==, 1.0f);
  snn_events_integrate (ev, SNN_SPLIT_TIME, 4, 10, 10, frames);
  assert_known_frames (frames, known_time_frame, 4, 10, 10);
  g_assert_cmpfloat (frames[(0 * 2 + 0) * 100 + 2 * 10 + 1], ==, 2.0f);
  /* The last event (t = t1) lands in the last frame. */
  g_assert_cmpfloat (frames[(3 * 2 + 1) * 100 + 8 * 10 + 7], ==, 1.0f);
  /* No events: empty frames. */
  SnnEvents *none = snn_events_new ();
  frames[5] = 3.0f;
  snn_events_integrate (none, SNN_SPLIT_TIME, 4, 10, 10, frames);
  for (int i = 0; i < 800; i++)
    g_assert_cmpfloat (frames[i], ==, 0.0f);
  snn_events_free (none);
  snn_events_free (ev);
}

static void
test_resize (void)
{
  /* Area 4x4 -> 2x2 averages each 2x2 block. */
  float src[16], dst[4];
  for (int i = 0; i < 16; i++)
    src[i] = (float) i;
  snn_frames_resize (src, 1, 4, 4, dst, 2, 2, SNN_RESIZE_AREA);
  g_assert_cmpfloat_with_epsilon (dst[0], (0 + 1 + 4 + 5) / 4.0f, 1e-6);
  g_assert_cmpfloat_with_epsilon (dst[3], (10 + 11 + 14 + 15) / 4.0f, 1e-6);
  /* Area 128 -> 48 keeps the mean (the sum scales by (48/128)^2). */
  g_autofree float *big = g_new0 (float, 2 * 128 * 128);
  g_autofree float *small = g_new (float, 2 * 48 * 48);
  double sum = 0, rsum = 0;
  SnnRng rng;
  snn_rng_seed (&rng, 5);
  for (int i = 0; i < 2 * 128 * 128; i++)
    sum += big[i] = (float) snn_rng_below (&rng, 4);
  snn_frames_resize (big, 2, 128, 128, small, 48, 48, SNN_RESIZE_AREA);
  for (int i = 0; i < 2 * 48 * 48; i++)
    rsum += small[i];
  g_assert_cmpfloat_with_epsilon (rsum, sum * (48.0 * 48.0) / (128.0 * 128.0), 1e-3 * sum);
  /* A single count lands inside its area with the right weight. */
  memset (big, 0, 2 * 128 * 128 * sizeof (float));
  big[128 * 128 + 64 * 128 + 64] = 1.0f;
  snn_frames_resize (big, 2, 128, 128, small, 48, 48, SNN_RESIZE_AREA);
  /* Input pixel 64 covers [64, 65) * 0.375 = [24, 24.375) in the output. */
  g_assert_cmpfloat_with_epsilon (small[48 * 48 + 24 * 48 + 24], 0.375f * 0.375f, 1e-6);
  /* Bilinear 2x2 -> 4x4 at pixel centres; a constant stays constant. */
  float two[4] = { 0, 4, 8, 12 }, four[16];
  snn_frames_resize (two, 1, 2, 2, four, 4, 4, SNN_RESIZE_BILINEAR);
  g_assert_cmpfloat_with_epsilon (four[0], 0.0f, 1e-6);
  g_assert_cmpfloat_with_epsilon (four[1], 1.0f, 1e-6);  /* x = 0.25 */
  g_assert_cmpfloat_with_epsilon (four[2], 3.0f, 1e-6);  /* x = 0.75 */
  g_assert_cmpfloat_with_epsilon (four[5], 3.0f, 1e-6);  /* (0.25, 0.25) */
  g_assert_cmpfloat_with_epsilon (four[15], 12.0f, 1e-6);
  for (int i = 0; i < 2 * 128 * 128; i++)
    big[i] = 2.5f;
  snn_frames_resize (big, 2, 128, 128, small, 48, 48, SNN_RESIZE_BILINEAR);
  for (int i = 0; i < 2 * 48 * 48; i++)
    g_assert_cmpfloat_with_epsilon (small[i], 2.5f, 1e-5);
}

/* ---------------------------------------------------------- AEDAT 3.1 */

static const char aedat3_header[] = "#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n";

static void
aedat3_packet (GByteArray *b, guint16 type, guint32 overflow, const Ev *ev, int n, gboolean invalid_first)
{
  guint8 h[4] = { type & 0xff, type >> 8, 1, 0 }; /* type, source */
  g_byte_array_append (b, h, 4);
  put_le32 (b, 8);               /* event size */
  put_le32 (b, 4);               /* timestamp offset */
  put_le32 (b, overflow);
  put_le32 (b, n);               /* capacity */
  put_le32 (b, n);               /* number */
  put_le32 (b, n - (invalid_first ? 1 : 0)); /* valid */
  for (int i = 0; i < n; i++)
    {
      guint32 valid = invalid_first && i == 0 ? 0 : 1;
      put_le32 (b, (guint32) ev[i].x << 17 | (guint32) ev[i].y << 2 | (guint32) ev[i].p << 1 | valid);
      put_le32 (b, (guint32) (ev[i].t & 0x7FFFFFFF));
    }
}

/* The known events in two polarity packets (the second with overflow 1,
 * shifted back by 2^31 so its times stay in order after the extension),
 * between them a special-event packet whose words would be out of range
 * as polarity events, and an invalidated event first. */
static GByteArray *
aedat3_known (const Ev *evs, int n, gboolean with_noise)
{
  GByteArray *b = g_byte_array_new ();
  g_byte_array_append (b, (const guint8 *) aedat3_header, strlen (aedat3_header));
  Ev bogus[2] = { { 5000, 5000, 1, 7 }, { 6000, 1, 0, 8 } };
  int half = n / 2;
  Ev first[16];
  first[0] = bogus[0];
  memcpy (first + 1, evs, half * sizeof (Ev));
  if (with_noise)
    aedat3_packet (b, 1, 0, first, half + 1, TRUE);
  else
    aedat3_packet (b, 1, 0, evs, half, FALSE);
  if (with_noise)
    aedat3_packet (b, 2, 0, bogus, 2, FALSE);
  aedat3_packet (b, 1, 0, evs + half, n - half, FALSE);
  return b;
}

static void
test_aedat3 (Fixture *f, gconstpointer d)
{
  GByteArray *b = aedat3_known (known, 10, TRUE);
  /* Extend the second packet's timestamps: overflow 1 adds 2^31. */
  guint8 *second = b->data + b->len - (28 + 5 * 8);
  second[12] = 1;
  g_autofree char *path = in_dir (f->dir, "rec.aedat");
  put_file (path, b->data, b->len);
  GError *error = NULL;
  SnnEvents *ev = snn_events_read_aedat3 (path, 128, 128, &error);
  g_assert_no_error (error);
  assert_events (&(SnnEvents) { 5, 0, ev->x, ev->y, ev->p, ev->t }, known, 5, 0);
  assert_events (&(SnnEvents) { 5, 0, ev->x + 5, ev->y + 5, ev->p + 5, ev->t + 5 }, known + 5, 5, (gint64) 1 << 31);
  g_assert_cmpuint (ev->n, ==, 10);
  snn_events_free (ev);

  /* Cut inside the last packet. */
  gsize cut = b->len - 3;
  put_file (path, b->data, cut);
  g_assert_null (snn_events_read_aedat3 (path, 128, 128, &error));
  g_autofree char *at = g_strdup_printf ("byte offset %zu", cut);
  g_autofree char *pkt = g_strdup_printf ("byte offset %u", b->len - (28 + 5 * 8));
  assert_error_names (error, SNN_ERROR_TRUNCATED, path, at);
  g_assert_nonnull (strstr (error->message, pkt));
  g_clear_error (&error);
  /* Cut inside a packet header. */
  put_file (path, b->data, strlen (aedat3_header) + 10);
  g_assert_null (snn_events_read_aedat3 (path, 128, 128, &error));
  assert_error_names (error, SNN_ERROR_TRUNCATED, path, "packet header");
  g_clear_error (&error);
  /* Cut inside the header. */
  put_file (path, b->data, 20);
  g_assert_null (snn_events_read_aedat3 (path, 128, 128, &error));
  assert_error_names (error, SNN_ERROR_TRUNCATED, path, "byte offset 20");
  g_clear_error (&error);
  /* An event outside the sensor: the third event of the first packet. */
  gsize ev_at = strlen (aedat3_header) + 28 + 2 * 8;
  b->data[ev_at + 3] = 0xF0;
  put_file (path, b->data, b->len);
  g_assert_null (snn_events_read_aedat3 (path, 128, 128, &error));
  g_autofree char *ev_off = g_strdup_printf ("byte offset %zu", ev_at);
  assert_error_names (error, SNN_ERROR_INVALID, path, ev_off);
  g_clear_error (&error);
  g_byte_array_unref (b);
  /* The other AEDAT version. */
  g_assert_null (snn_events_read_aedat2 (path, 128, 128, &error));
  assert_error_names (error, SNN_ERROR_PARSE, path, "not an AEDAT 2.0 file");
  g_clear_error (&error);
  /* Missing. */
  g_autofree char *nothing = g_build_filename (f->dir, "nothing.aedat", NULL);
  g_assert_null (snn_events_read_aedat3 (nothing, 128, 128, &error));
  assert_error_names (error, SNN_ERROR_MISSING, nothing, NULL);
  g_clear_error (&error);
}

/* A Gesture folder: two training trials and one test trial. Trial A holds
 * the known events with windows [1000, 1600) (class 3) and [1600, 3001)
 * (class 11); trial B one window over all of them (class 1). */
static void
write_gesture (const char *root)
{
  GByteArray *b = aedat3_known (known, 10, TRUE);
  const char *trials[] = { "user01_fluorescent", "user02_led", "user03_natural" };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *rel = g_strconcat (trials[i], ".aedat", NULL);
      g_autofree char *p = in_dir (root, rel);
      put_file (p, b->data, b->len);
    }
  g_byte_array_unref (b);
  const char *csv_a = "class,startTime_usec,endTime_usec\r\n3,1000,1600\r\n11,1600,3001\r\n";
  const char *csv_b = "class,startTime_usec,endTime_usec\n1,0,5000\n";
  const char *csvs[] = { csv_a, csv_b, csv_a };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *rel = g_strconcat (trials[i], "_labels.csv", NULL);
      g_autofree char *p = in_dir (root, rel);
      put_file (p, csvs[i], strlen (csvs[i]));
    }
  g_autofree char *train = in_dir (root, "trials_to_train.txt");
  g_autofree char *test = in_dir (root, "trials_to_test.txt");
  const char *tr = "user01_fluorescent.aedat\nuser02_led.aedat\n\n", *te = "user03_natural.aedat\n";
  put_file (train, tr, strlen (tr));
  put_file (test, te, strlen (te));
}

static void
gesture_options (SnnEventFrameOptions *opts, int T, SnnSplitMode split, const char *cache)
{
  snn_event_frame_options_init (opts);
  opts->T = T;
  opts->split = split;
  opts->cache_dir = cache;
}

static void
test_gesture (Fixture *f, gconstpointer d)
{
  g_autofree char *root = g_build_filename (f->dir, "DvsGesture", NULL);
  write_gesture (root);
  SnnEventFrameOptions opts;
  gesture_options (&opts, 4, SNN_SPLIT_NUMBER, NULL);
  GError *error = NULL;
  gboolean hit = TRUE;
  SnnDataset *ds = snn_dataset_load_dvs_gesture (f->dir, TRUE, &opts, &hit, &error);
  g_assert_no_error (error);
  g_assert_false (hit);
  g_assert_cmpint (ds->n, ==, 3);
  g_assert_cmpint (ds->seq_T, ==, 4);
  g_assert_cmpint (ds->num_classes, ==, 11);
  g_assert_cmpint (ds->sample_shape[0], ==, 2);
  g_assert_cmpint (ds->sample_shape[1], ==, 128);
  g_assert_cmpint (ds->sample_shape[2], ==, 128);
  g_assert_cmpint (ds->y[0], ==, 2);
  g_assert_cmpint (ds->y[1], ==, 10);
  g_assert_cmpint (ds->y[2], ==, 0);
  /* Sample 2 is the whole stream, so its frames are the known ones. */
  size_t per = (size_t) 4 * ds->sample_size;
  assert_known_frames (ds->x + 2 * per, known_number_frame, 4, 128, 128);
  /* Sample 0 holds events 0..3 (1000 <= t < 1600): di = 1, frames {0} {1}
   * {2} {3}. */
  const float *s0 = ds->x;
  g_assert_cmpfloat (s0[(0 * 2 + 0) * 16384 + 2 * 128 + 1], ==, 1.0f);
  g_assert_cmpfloat (s0[(1 * 2 + 1) * 16384 + 4 * 128 + 3], ==, 1.0f);
  g_assert_cmpfloat (s0[(2 * 2 + 0) * 16384 + 2 * 128 + 1], ==, 1.0f);
  g_assert_cmpfloat (s0[(3 * 2 + 1) * 16384 + 6 * 128 + 5], ==, 1.0f);
  double total = 0;
  for (size_t k = 0; k < per; k++)
    total += s0[k];
  g_assert_cmpfloat (total, ==, 4.0);
  snn_dataset_free (ds);

  /* Time split of the test trial's first window [1000, 1600): events
   * 0..3, t0 = 1000, t1 = 1500, dt = 125: frames {0,1,2} {} {} {3}. */
  gesture_options (&opts, 4, SNN_SPLIT_TIME, NULL);
  ds = snn_dataset_load_dvs_gesture (root, FALSE, &opts, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 2);
  g_assert_cmpint (ds->y[0], ==, 2);
  s0 = ds->x;
  g_assert_cmpfloat (s0[(0 * 2 + 0) * 16384 + 2 * 128 + 1], ==, 2.0f);
  g_assert_cmpfloat (s0[(0 * 2 + 1) * 16384 + 4 * 128 + 3], ==, 1.0f);
  g_assert_cmpfloat (s0[(3 * 2 + 1) * 16384 + 6 * 128 + 5], ==, 1.0f);
  total = 0;
  for (size_t k = 0; k < per; k++)
    total += s0[k];
  g_assert_cmpfloat (total, ==, 4.0);
  snn_dataset_free (ds);

  /* A bad label row names the csv and the offset of the row. */
  g_autofree char *csv = g_build_filename (root, "user02_led_labels.csv", NULL);
  const char *bad = "class,startTime_usec,endTime_usec\n12,0,5000\n";
  put_file (csv, bad, strlen (bad));
  g_assert_null (snn_dataset_load_dvs_gesture (root, TRUE, &opts, NULL, &error));
  assert_error_names (error, SNN_ERROR_PARSE, csv, "byte offset 34");
  g_clear_error (&error);
  /* No trial lists. */
  g_autofree char *empty = g_build_filename (f->dir, "empty", NULL);
  g_mkdir (empty, 0755);
  g_assert_null (snn_dataset_load_dvs_gesture (empty, TRUE, &opts, NULL, &error));
  assert_error_names (error, SNN_ERROR_MISSING, empty, "trials_to_train.txt");
  g_clear_error (&error);
}

static const char *
only_file (const char *dir)
{
  static char *path;
  g_clear_pointer (&path, g_free);
  GDir *d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  const char *name;
  int count = 0;
  while ((name = g_dir_read_name (d)))
    {
      count++;
      path = g_build_filename (dir, name, NULL);
    }
  g_dir_close (d);
  g_assert_cmpint (count, ==, 1);
  return path;
}

static void
assert_same_dataset (const SnnDataset *a, const SnnDataset *b)
{
  g_assert_cmpint (a->n, ==, b->n);
  g_assert_cmpint (a->seq_T, ==, b->seq_T);
  g_assert_cmpint (a->sample_size, ==, b->sample_size);
  g_assert_cmpint (a->num_classes, ==, b->num_classes);
  g_assert_cmpmem (a->y, a->n * sizeof (int32_t), b->y, b->n * sizeof (int32_t));
  g_assert_cmpmem (a->x, (size_t) a->n * a->seq_T * a->sample_size * sizeof (float), b->x,
                   (size_t) b->n * b->seq_T * b->sample_size * sizeof (float));
}

/* The second load comes from the cache, even once the event files are
 * gone; other settings make another cache file. */
static void
test_cache_hit (Fixture *f, gconstpointer d)
{
  g_autofree char *root = g_build_filename (f->dir, "gesture", NULL);
  g_autofree char *cache = g_build_filename (f->dir, "cache", "snn-workbench", NULL);
  write_gesture (root);
  SnnEventFrameOptions opts;
  gesture_options (&opts, 4, SNN_SPLIT_NUMBER, cache);
  opts.size = 32;
  GError *error = NULL;
  gboolean hit = TRUE;
  SnnDataset *first = snn_dataset_load_dvs_gesture (root, TRUE, &opts, &hit, &error);
  g_assert_no_error (error);
  g_assert_false (hit);
  g_assert_cmpint (first->sample_shape[1], ==, 32);
  only_file (cache);
  SnnDataset *second = snn_dataset_load_dvs_gesture (root, TRUE, &opts, &hit, &error);
  g_assert_no_error (error);
  g_assert_true (hit);
  assert_same_dataset (first, second);
  snn_dataset_free (second);

  /* Other settings are another key. */
  opts.T = 2;
  second = snn_dataset_load_dvs_gesture (root, TRUE, &opts, &hit, &error);
  g_assert_no_error (error);
  g_assert_false (hit);
  snn_dataset_free (second);
  opts.T = 4;

  /* Without the event files the cached frames still load. */
  const char *trials[] = { "user01_fluorescent.aedat", "user02_led.aedat", "user03_natural.aedat" };
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *p = g_build_filename (root, trials[i], NULL);
      g_assert_cmpint (g_unlink (p), ==, 0);
    }
  second = snn_dataset_load_dvs_gesture (root, TRUE, &opts, &hit, &error);
  g_assert_no_error (error);
  g_assert_true (hit);
  assert_same_dataset (first, second);
  snn_dataset_free (second);
  /* ... and a setting not in the cache needs them. */
  opts.split = SNN_SPLIT_TIME;
  g_assert_null (snn_dataset_load_dvs_gesture (root, TRUE, &opts, &hit, &error));
  assert_error_names (error, SNN_ERROR_MISSING, "user01_fluorescent.aedat", NULL);
  g_clear_error (&error);
  snn_dataset_free (first);
}

/* ------------------------------------------------------------- N-MNIST */

static GByteArray *
nmnist_bytes (const Ev *evs, int n)
{
  GByteArray *b = g_byte_array_new ();
  for (int i = 0; i < n; i++)
    {
      guint8 e[5] = { evs[i].x, evs[i].y, (guint8) (evs[i].p << 7 | (evs[i].t >> 16 & 0x7F)), (evs[i].t >> 8) & 0xff,
                      evs[i].t & 0xff };
      g_byte_array_append (b, e, 5);
    }
  return b;
}

/* Digit d's folder holds d + 1 files (train) or one (test); file k holds
 * the known events with x shifted by k, except that the test files have
 * their times raised by 2^22 to use the 23rd bit. */
static void
write_nmnist (const char *root)
{
  for (int d = 0; d < 10; d++)
    for (int k = 0; k <= d; k++)
      {
        Ev evs[10];
        memcpy (evs, known, sizeof known);
        for (int i = 0; i < 10; i++)
          evs[i].x += k;
        GByteArray *b = nmnist_bytes (evs, 10);
        g_autofree char *rel = g_strdup_printf ("Train/%d/%05d.bin", d, k * 7 + d);
        g_autofree char *p = in_dir (root, rel);
        put_file (p, b->data, b->len);
        g_byte_array_unref (b);
      }
  for (int d = 0; d < 10; d++)
    {
      Ev evs[10];
      memcpy (evs, known, sizeof known);
      for (int i = 0; i < 10; i++)
        evs[i].t += 1 << 22;
      GByteArray *b = nmnist_bytes (evs, 10);
      g_autofree char *rel = g_strdup_printf ("Test/%d/%05d.bin", d, d);
      g_autofree char *p = in_dir (root, rel);
      put_file (p, b->data, b->len);
      g_byte_array_unref (b);
    }
}

static void
test_nmnist (Fixture *f, gconstpointer d)
{
  write_nmnist (f->dir);
  GError *error = NULL;
  g_autofree char *one = g_build_filename (f->dir, "Test", "3", "00003.bin", NULL);
  SnnEvents *ev = snn_events_read_nmnist (one, 34, 34, &error);
  g_assert_no_error (error);
  assert_events (ev, known, 10, 1 << 22);
  snn_events_free (ev);

  SnnEventFrameOptions opts;
  gesture_options (&opts, 4, SNN_SPLIT_TIME, NULL);
  SnnDataset *ds = snn_dataset_load_nmnist (f->dir, FALSE, &opts, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 10);
  g_assert_cmpint (ds->sample_shape[1], ==, 34);
  for (int i = 0; i < 10; i++)
    {
      g_assert_cmpint (ds->y[i], ==, i);
      assert_known_frames (ds->x + (size_t) i * 4 * ds->sample_size, known_time_frame, 4, 34, 34);
    }
  snn_dataset_free (ds);
  opts.split = SNN_SPLIT_NUMBER;
  ds = snn_dataset_load_nmnist (f->dir, TRUE, &opts, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 55);
  g_assert_cmpint (ds->y[0], ==, 0);
  g_assert_cmpint (ds->y[1], ==, 1);
  g_assert_cmpint (ds->y[54], ==, 9);
  /* Digit 9's last file (k = 9) has x shifted by 9. */
  const float *last = ds->x + (size_t) 54 * 4 * ds->sample_size;
  g_assert_cmpfloat (last[(0 * 2 + 0) * 34 * 34 + 2 * 34 + 1 + 9], ==, 1.0f);
  g_assert_cmpfloat (last[(3 * 2 + 1) * 34 * 34 + 8 * 34 + 7 + 9], ==, 1.0f);
  snn_dataset_free (ds);

  /* Truncated: 12 bytes is two events and two bytes of a third. */
  GByteArray *b = nmnist_bytes (known, 3);
  put_file (one, b->data, 12);
  g_assert_null (snn_events_read_nmnist (one, 34, 34, &error));
  assert_error_names (error, SNN_ERROR_TRUNCATED, one, "byte offset 12");
  g_assert_nonnull (strstr (error->message, "at byte offset 10"));
  g_clear_error (&error);
  /* Corrupt: the second event at x = 40 on a 34 x 34 sensor. */
  b->data[5] = 40;
  put_file (one, b->data, b->len);
  g_assert_null (snn_dataset_load_nmnist (f->dir, FALSE, &opts, NULL, &error));
  assert_error_names (error, SNN_ERROR_INVALID, one, "byte offset 5");
  g_clear_error (&error);
  g_byte_array_unref (b);
  /* A missing digit folder. */
  g_autofree char *nine = g_build_filename (f->dir, "Test", "9", "00009.bin", NULL);
  g_autofree char *nine_dir = g_path_get_dirname (nine);
  g_unlink (nine);
  g_rmdir (nine_dir);
  g_assert_null (snn_dataset_load_nmnist (f->dir, FALSE, &opts, NULL, &error));
  assert_error_names (error, SNN_ERROR_MISSING, nine_dir, NULL);
  g_clear_error (&error);
}

/* A damaged cache file (a flipped payload byte, a cut file, a header for
 * other settings) is rebuilt, gives the same frames and is then hit. */
static void
test_cache_damaged (Fixture *f, gconstpointer d)
{
  g_autofree char *root = g_build_filename (f->dir, "nmnist", NULL);
  g_autofree char *cache = g_build_filename (f->dir, "cache", NULL);
  write_nmnist (root);
  SnnEventFrameOptions opts;
  gesture_options (&opts, 3, SNN_SPLIT_NUMBER, cache);
  GError *error = NULL;
  gboolean hit;
  SnnDataset *ref = snn_dataset_load_nmnist (root, TRUE, &opts, &hit, &error);
  g_assert_no_error (error);
  g_assert_false (hit);
  g_autofree char *path = g_strdup (only_file (cache));
  g_autofree char *good = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (path, &good, &len, NULL));
  for (int damage = 0; damage < 4; damage++)
    {
      g_autofree char *bad = g_memdup2 (good, len);
      gsize bad_len = len;
      if (damage == 0)
        bad[len - 4 * 55 - 100] ^= 0x40;         /* a frame value */
      else if (damage == 1)
        bad_len = len - 1000;                    /* cut */
      else if (damage == 2)
        bad[20] ^= 1;                            /* the key */
      else
        bad[len - 1] = 99;                       /* a label */
      put_file (path, bad, bad_len);
      SnnDataset *ds = snn_dataset_load_nmnist (root, TRUE, &opts, &hit, &error);
      g_assert_no_error (error);
      g_assert_false (hit);
      assert_same_dataset (ref, ds);
      snn_dataset_free (ds);
      g_autofree char *rebuilt = NULL;
      gsize rebuilt_len;
      g_assert_true (g_file_get_contents (only_file (cache), &rebuilt, &rebuilt_len, NULL));
      g_assert_cmpmem (rebuilt, rebuilt_len, good, len);
      ds = snn_dataset_load_nmnist (root, TRUE, &opts, &hit, &error);
      g_assert_true (hit);
      snn_dataset_free (ds);
    }
  snn_dataset_free (ref);

  /* A new event file makes the cache stale: it is rebuilt in place. */
  g_autofree char *extra = g_build_filename (root, "Train", "0", "99999.bin", NULL);
  GByteArray *b = nmnist_bytes (known, 10);
  put_file (extra, b->data, b->len);
  g_byte_array_unref (b);
  SnnDataset *ds = snn_dataset_load_nmnist (root, TRUE, &opts, &hit, &error);
  g_assert_no_error (error);
  g_assert_false (hit);
  g_assert_cmpint (ds->n, ==, 56);
  g_assert_cmpstr (only_file (cache), ==, path);
  snn_dataset_free (ds);
  ds = snn_dataset_load_nmnist (root, TRUE, &opts, &hit, &error);
  g_assert_true (hit);
  g_assert_cmpint (ds->n, ==, 56);
  snn_dataset_free (ds);
}

/* --------------------------------------------------------- CIFAR10-DVS */

static const char aedat2_header[] = "#!AER-DAT2.0\r\n# This is a raw AE data file\r\n# created Sat Jan 1 2000\r\n";

static GByteArray *
aedat2_bytes (const Ev *evs, int n)
{
  GByteArray *b = g_byte_array_new ();
  g_byte_array_append (b, (const guint8 *) aedat2_header, strlen (aedat2_header));
  for (int i = 0; i < n; i++)
    {
      put_be32 (b, (guint32) evs[i].y << 8 | (guint32) evs[i].x << 1 | evs[i].p);
      put_be32 (b, (guint32) evs[i].t);
    }
  return b;
}

/* Two class folders of 11 files, numbered 0..10 so that the numeric order
 * differs from the alphabetical; file k of class c holds the first k + 1
 * known events with y shifted by 10 c. */
static void
write_cifar10_dvs (const char *root)
{
  const char *classes[] = { "airplane", "automobile" };
  for (int c = 0; c < 2; c++)
    for (int k = 0; k <= 10; k++)
      {
        Ev evs[10];
        memcpy (evs, known, sizeof known);
        for (int i = 0; i < 10; i++)
          evs[i].y += 10 * c;
        GByteArray *b = aedat2_bytes (evs, MIN (k + 1, 10));
        g_autofree char *rel = g_strdup_printf ("%s/cifar10_%s_%d.aedat", classes[c], classes[c], k);
        g_autofree char *p = in_dir (root, rel);
        put_file (p, b->data, b->len);
        g_byte_array_unref (b);
      }
}

static double
sample_sum (const SnnDataset *ds, int i)
{
  size_t per = (size_t) MAX (ds->seq_T, 1) * ds->sample_size;
  double s = 0;
  for (size_t k = 0; k < per; k++)
    s += ds->x[i * per + k];
  return s;
}

static void
test_cifar10_dvs (Fixture *f, gconstpointer d)
{
  write_cifar10_dvs (f->dir);
  GError *error = NULL;
  g_autofree char *one = g_build_filename (f->dir, "automobile", "cifar10_automobile_10.aedat", NULL);
  SnnEvents *ev = snn_events_read_aedat2 (one, 128, 128, &error);
  g_assert_no_error (error);
  Ev shifted[10];
  memcpy (shifted, known, sizeof known);
  for (int i = 0; i < 10; i++)
    shifted[i].y += 10;
  assert_events (ev, shifted, 10, 0);
  snn_events_free (ev);

  /* 11 files a class: 11 * 9 / 10 = 9 train (0..8), 2 test (9, 10). */
  SnnEventFrameOptions opts;
  gesture_options (&opts, 4, SNN_SPLIT_NUMBER, NULL);
  SnnDataset *ds = snn_dataset_load_cifar10_dvs (f->dir, FALSE, &opts, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 4);
  g_assert_cmpint (ds->num_classes, ==, 2);
  const int want_y[4] = { 0, 0, 1, 1 };
  const double want_sum[4] = { 10, 10, 10, 10 };
  for (int i = 0; i < 4; i++)
    {
      g_assert_cmpint (ds->y[i], ==, want_y[i]);
      g_assert_cmpfloat (sample_sum (ds, i), ==, want_sum[i]);
    }
  assert_known_frames (ds->x + (size_t) 1 * 4 * ds->sample_size, known_number_frame, 4, 128, 128);
  snn_dataset_free (ds);
  ds = snn_dataset_load_cifar10_dvs (f->dir, TRUE, &opts, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 18);
  for (int i = 0; i < 18; i++)
    {
      g_assert_cmpint (ds->y[i], ==, i / 9);
      g_assert_cmpfloat (sample_sum (ds, i), ==, i % 9 + 1);
    }
  snn_dataset_free (ds);

  /* Resized to 48 x 48 with area averaging: totals scale by (48/128)^2. */
  opts.size = 48;
  ds = snn_dataset_load_cifar10_dvs (f->dir, FALSE, &opts, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->sample_shape[1], ==, 48);
  g_assert_cmpint (ds->sample_size, ==, 2 * 48 * 48);
  g_assert_cmpfloat_with_epsilon (sample_sum (ds, 0), 10 * 0.375 * 0.375, 1e-5);
  snn_dataset_free (ds);

  /* Truncated: the last event loses 3 bytes. */
  GByteArray *b = aedat2_bytes (known, 10);
  put_file (one, b->data, b->len - 3);
  g_assert_null (snn_dataset_load_cifar10_dvs (f->dir, FALSE, &opts, NULL, &error));
  g_autofree char *at = g_strdup_printf ("byte offset %u", b->len - 8);
  assert_error_names (error, SNN_ERROR_TRUNCATED, one, at);
  g_clear_error (&error);
  /* Cut inside the header. */
  put_file (one, b->data, 30);
  g_assert_null (snn_events_read_aedat2 (one, 128, 128, &error));
  assert_error_names (error, SNN_ERROR_TRUNCATED, one, "byte offset 30");
  g_clear_error (&error);
  g_byte_array_unref (b);
  /* Read as the other version. */
  g_autofree char *other = g_build_filename (f->dir, "airplane", "cifar10_airplane_0.aedat", NULL);
  g_assert_null (snn_events_read_aedat3 (other, 128, 128, &error));
  assert_error_names (error, SNN_ERROR_PARSE, other, "not an AEDAT 3.x file");
  g_clear_error (&error);
  /* Not a dataset folder. */
  g_autofree char *absent = g_build_filename (f->dir, "absent", NULL);
  g_assert_null (snn_dataset_load_cifar10_dvs (absent, TRUE, &opts, NULL, &error));
  assert_error_names (error, SNN_ERROR_MISSING, absent, NULL);
  g_clear_error (&error);
}

/* ----------------------------------------------------------- synthetic */

/* The centre of mass (x, y) of frame t of sample i, both channels. */
static void
centre_of_mass (const SnnDataset *ds, int i, int t, double *cx, double *cy)
{
  int H = ds->sample_shape[1], W = ds->sample_shape[2];
  const float *fr = ds->x + ((size_t) i * ds->seq_T + t) * ds->sample_size;
  double s = 0, sx = 0, sy = 0;
  for (int c = 0; c < 2; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        {
          double v = fr[(c * H + y) * W + x];
          s += v;
          sx += v * (x + 0.5);
          sy += v * (y + 0.5);
        }
  *cx = sx / s;
  *cy = sy / s;
}

static void
test_synthetic (void)
{
  enum { N = 200, T = 8 };
  GError *error = NULL;
  SnnDataset *a = snn_dataset_synthetic_events (N, T, 0, 42, &error);
  g_assert_no_error (error);
  SnnDataset *b = snn_dataset_synthetic_events (N, T, 0, 42, &error);
  SnnDataset *c = snn_dataset_synthetic_events (N, T, 0, 43, &error);
  g_assert_no_error (error);
  assert_same_dataset (a, b);
  g_assert_true (memcmp (a->x, c->x, (size_t) N * T * a->sample_size * sizeof (float)) != 0);
  g_assert_cmpint (a->seq_T, ==, T);
  g_assert_cmpint (a->sample_shape[0], ==, 2);
  g_assert_cmpint (a->sample_shape[1], ==, 32);
  g_assert_cmpint (a->num_classes, ==, 4);

  /* Balanced, and every sample has the same number of events of each
   * polarity in every frame: counts say nothing about the class. */
  int per_class[4] = { 0 };
  size_t plane = 32 * 32;
  double first = -1;
  for (int i = 0; i < N; i++)
    {
      per_class[a->y[i]]++;
      for (int t = 0; t < T; t++)
        for (int ch = 0; ch < 2; ch++)
          {
            const float *p = a->x + ((size_t) i * T + t) * a->sample_size + ch * plane;
            double s = 0;
            for (size_t k = 0; k < plane; k++)
              s += p[k];
            if (first < 0)
              first = s;
            g_assert_cmpfloat (s, ==, first);
          }
    }
  for (int k = 0; k < 4; k++)
    g_assert_cmpint (per_class[k], ==, N / 4);

  /* The motion tells them apart: the centre of mass travels right, down,
   * left or up from the first frame to the last. */
  const int sign_x[4] = { 1, 0, -1, 0 }, sign_y[4] = { 0, 1, 0, -1 };
  int right = 0;
  for (int i = 0; i < N; i++)
    {
      double x0, y0, x1, y1;
      centre_of_mass (a, i, 0, &x0, &y0);
      centre_of_mass (a, i, T - 1, &x1, &y1);
      double dx = x1 - x0, dy = y1 - y0;
      int guess = fabs (dx) > fabs (dy) ? (dx > 0 ? 0 : 2) : (dy > 0 ? 1 : 3);
      right += guess == a->y[i];
      g_assert_cmpfloat (dx * sign_x[a->y[i]] + dy * sign_y[a->y[i]], >, 5.0);
    }
  g_assert_cmpint (right, ==, N);

  /* The same path resized to 16 x 16. */
  SnnDataset *s = snn_dataset_synthetic_events (8, T, 16, 42, &error);
  g_assert_no_error (error);
  g_assert_cmpint (s->sample_shape[1], ==, 16);
  g_assert_cmpfloat_with_epsilon (sample_sum (s, 0), sample_sum (a, 0) / 4, 1e-3);
  snn_dataset_free (s);
  snn_dataset_free (a);
  snn_dataset_free (b);
  snn_dataset_free (c);

  /* One sample's stream is time-ordered. */
  SnnRng rng;
  snn_rng_seed (&rng, 1);
  SnnEvents *ev = snn_synthetic_events_sample (2, &rng);
  for (gsize k = 1; k < ev->n; k++)
    g_assert_cmpint (ev->t[k], >=, ev->t[k - 1]);
  snn_events_free (ev);
}

/* Flip and roll: each sample's frames move by one transform, |roll| <= 5. */
static void
test_augment_events (void)
{
  enum { T = 3, B = 16, C = 2, H = 12, W = 12 };
  static float x[T * B * C * H * W], y[T * B * C * H * W];
  SnnRng rng;
  snn_rng_seed (&rng, 9);
  for (size_t i = 0; i < G_N_ELEMENTS (x); i++)
    x[i] = (float) snn_rng_uniform (&rng);
  memcpy (y, x, sizeof x);
  snn_augment_event_frames (y, T, B, C, H, W, 5, TRUE, &rng);
  int moved = 0, flipped = 0;
  for (int b = 0; b < B; b++)
    {
      int found = 0;
      for (int f = 0; f < 2 && !found; f++)
        for (int dy = -5; dy <= 5 && !found; dy++)
          for (int dx = -5; dx <= 5 && !found; dx++)
            {
              gboolean match = TRUE;
              for (int t = 0; t < T && match; t++)
                for (int c = 0; c < C && match; c++)
                  for (int yy = 0; yy < H && match; yy++)
                    for (int xx = 0; xx < W && match; xx++)
                      {
                        int sy = ((yy - dy) % H + H) % H, sx = ((xx - dx) % W + W) % W;
                        if (f)
                          sx = W - 1 - sx;
                        size_t base = (((size_t) t * B + b) * C + c) * H * W;
                        match = y[base + yy * W + xx] == x[base + sy * W + sx];
                      }
              if (match)
                {
                  found = 1;
                  moved += dx || dy;
                  flipped += f;
                }
            }
      g_assert_true (found);
    }
  g_assert_cmpint (moved, >, B / 2);
  g_assert_cmpint (flipped, >, 0);
  g_assert_cmpint (flipped, <, B);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/events/number-bounds", test_bounds);
  g_test_add_func ("/events/integrate", test_integrate);
  g_test_add_func ("/events/resize", test_resize);
  g_test_add ("/events/aedat3", Fixture, NULL, setup, test_aedat3, teardown);
  g_test_add ("/events/dvs-gesture", Fixture, NULL, setup, test_gesture, teardown);
  g_test_add ("/events/nmnist", Fixture, NULL, setup, test_nmnist, teardown);
  g_test_add ("/events/cifar10-dvs", Fixture, NULL, setup, test_cifar10_dvs, teardown);
  g_test_add ("/events/cache-hit", Fixture, NULL, setup, test_cache_hit, teardown);
  g_test_add ("/events/cache-damaged", Fixture, NULL, setup, test_cache_damaged, teardown);
  g_test_add_func ("/events/synthetic", test_synthetic);
  g_test_add_func ("/events/augment", test_augment_events);
  return g_test_run ();
}
