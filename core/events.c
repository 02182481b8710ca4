/* Event streams: readers, integration into frames, resizing, the frame
 * cache, the synthetic event set and event-frame augmentation. */
#include "events.h"
#include "atomic-file.h"
#include "pool.h"
#include "snn-error.h"
#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------- event lists */

SnnEvents *
snn_events_new (void)
{
  return g_new0 (SnnEvents, 1);
}

void
snn_events_free (SnnEvents *ev)
{
  if (!ev)
    return;
  g_free (ev->x);
  g_free (ev->y);
  g_free (ev->p);
  g_free (ev->t);
  g_free (ev);
}

static void
events_reserve (SnnEvents *ev, gsize cap)
{
  if (cap <= ev->cap)
    return;
  cap = MAX (cap, ev->cap * 2);
  ev->x = g_renew (guint16, ev->x, cap);
  ev->y = g_renew (guint16, ev->y, cap);
  ev->p = g_renew (guint8, ev->p, cap);
  ev->t = g_renew (gint64, ev->t, cap);
  ev->cap = cap;
}

void
snn_events_append (SnnEvents *ev, int x, int y, int p, gint64 t)
{
  events_reserve (ev, MAX (ev->n + 1, 1024));
  ev->x[ev->n] = (guint16) x;
  ev->y[ev->n] = (guint16) y;
  ev->p[ev->n] = (guint8) (p != 0);
  ev->t[ev->n] = t;
  ev->n++;
}

/* -------------------------------------------------------------- readers */

static gboolean
read_whole_file (const char *path, guint8 **data, gsize *len, GError **error)
{
  GError *local = NULL;
  if (g_file_get_contents (path, (char **) data, len, &local))
    return TRUE;
  g_set_error (error, SNN_DATA_ERROR,
               g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? SNN_ERROR_MISSING : SNN_ERROR_INVALID,
               "%s", local->message);
  g_error_free (local);
  return FALSE;
}

static guint32
le32 (const guint8 *p)
{
  return (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

static guint32
be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

/* Skips the text header: every line that starts with '#'. Returns the
 * offset of the first data byte, or -1 (error set) for a header cut short. */
static gssize
skip_header (const char *path, const guint8 *data, gsize len, GError **error)
{
  gsize pos = 0;
  while (pos < len && data[pos] == '#')
    {
      const guint8 *nl = memchr (data + pos, '\n', len - pos);
      if (!nl)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                       "%s: file is truncated at byte offset %zu (inside the header line starting at byte offset %zu)",
                       path, len, pos);
          return -1;
        }
      pos = nl - data + 1;
    }
  return (gssize) pos;
}

/* The version line says which AEDAT format a file is; reading one as the
 * other would give garbage rather than an error. */
static gboolean
check_version (const char *path, const guint8 *data, gsize len, gboolean want_v3, GError **error)
{
  gboolean v3 = len >= 10 && memcmp (data, "#!AER-DAT3", 10) == 0;
  if (v3 == want_v3)
    return TRUE;
  g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_PARSE, "%s: not an AEDAT %s file (first line \"%.*s\")", path,
               want_v3 ? "3.x" : "2.0", (int) MIN (len, 12), (const char *) data);
  return FALSE;
}

static gboolean
check_xy (const char *path, gsize offset, int x, int y, int width, int height, GError **error)
{
  if (x < width && y < height)
    return TRUE;
  g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID,
               "%s: event at byte offset %zu is at (%d, %d), outside the %d x %d sensor; the file is corrupt", path,
               offset, x, y, width, height);
  return FALSE;
}

/* AEDAT 3.1: packets of a 28-byte header (type u16 @0, event size u32 @4,
 * timestamp overflow u32 @12, capacity u32 @16, number of events u32 @20;
 * little-endian) and capacity x size bytes of events. Polarity events
 * (type 1) are a data word (bit 0 valid, bit 1 polarity, y in bits 2-16,
 * x in bits 17-31) and a 32-bit timestamp that the overflow count
 * extends. Other packet types are skipped, as are invalidated events. */
#define AEDAT3_PACKET_HEADER 28

static gboolean
aedat3_packet (const char *path, const guint8 *data, gsize pos, int width, int height, SnnEvents *ev,
               GError **error)
{
  const guint8 *h = data + pos;
  guint32 size = le32 (h + 4), overflow = le32 (h + 12), capacity = le32 (h + 16), number = le32 (h + 20);
  if (size < 8 || number > capacity)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_PARSE,
                   "%s: polarity packet at byte offset %zu is corrupt (event size %u, %u events, capacity %u)", path,
                   pos, size, number, capacity);
      return FALSE;
    }
  events_reserve (ev, ev->n + number);
  for (guint32 i = 0; i < number; i++)
    {
      gsize at = pos + AEDAT3_PACKET_HEADER + (gsize) i * size;
      guint32 d = le32 (data + at), ts = le32 (data + at + 4);
      if (!(d & 1))
        continue;
      int x = (d >> 17) & 0x7FFF, y = (d >> 2) & 0x7FFF;
      if (!check_xy (path, at, x, y, width, height, error))
        return FALSE;
      snn_events_append (ev, x, y, (d >> 1) & 1, (gint64) ts | (gint64) overflow << 31);
    }
  return TRUE;
}

SnnEvents *
snn_events_read_aedat3 (const char *path, int width, int height, GError **error)
{
  g_autofree guint8 *data = NULL;
  gsize len;
  if (!read_whole_file (path, &data, &len, error))
    return NULL;
  gssize start = check_version (path, data, len, TRUE, error) ? skip_header (path, data, len, error) : -1;
  if (start < 0)
    return NULL;
  SnnEvents *ev = snn_events_new ();
  for (gsize pos = start; pos < len;)
    {
      if (len - pos < AEDAT3_PACKET_HEADER)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                       "%s: file is truncated at byte offset %zu (packet header at byte offset %zu has %zu of %d bytes)",
                       path, len, pos, len - pos, AEDAT3_PACKET_HEADER);
          goto fail;
        }
      guint64 body = (guint64) le32 (data + pos + 16) * le32 (data + pos + 4);
      if (body > len - pos - AEDAT3_PACKET_HEADER)
        {
          g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                       "%s: file is truncated at byte offset %zu (packet at byte offset %zu declares %" G_GUINT64_FORMAT
                       " bytes of events)", path, len, pos, body);
          goto fail;
        }
      guint16 type = data[pos] | data[pos + 1] << 8;
      if (type == 1 && !aedat3_packet (path, data, pos, width, height, ev, error))
        goto fail;
      pos += AEDAT3_PACKET_HEADER + body;
    }
  return ev;
fail:
  snn_events_free (ev);
  return NULL;
}

/* AEDAT 2.0 (CIFAR10-DVS): big-endian (address, timestamp) u32 pairs after
 * the header; x = bits 1-7, y = bits 8-14, polarity = bit 0. */
SnnEvents *
snn_events_read_aedat2 (const char *path, int width, int height, GError **error)
{
  g_autofree guint8 *data = NULL;
  gsize len;
  if (!read_whole_file (path, &data, &len, error))
    return NULL;
  gssize start = check_version (path, data, len, FALSE, error) ? skip_header (path, data, len, error) : -1;
  if (start < 0)
    return NULL;
  if ((len - start) % 8 != 0)
    {
      gsize last = len - (len - start) % 8;
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                   "%s: file is truncated at byte offset %zu (the event at byte offset %zu has %zu of 8 bytes)", path,
                   len, last, len - last);
      return NULL;
    }
  SnnEvents *ev = snn_events_new ();
  events_reserve (ev, (len - start) / 8);
  for (gsize at = start; at < len; at += 8)
    {
      guint32 a = be32 (data + at);
      int x = (a & 0xFE) >> 1, y = (a & 0x7F00) >> 8;
      if (!check_xy (path, at, x, y, width, height, error))
        {
          snn_events_free (ev);
          return NULL;
        }
      snn_events_append (ev, x, y, a & 1, be32 (data + at + 4));
    }
  return ev;
}

/* N-MNIST: 5 bytes per event: x, y, then polarity in bit 7 of byte 2 and
 * the time in µs in the remaining 23 bits (big-endian). */
SnnEvents *
snn_events_read_nmnist (const char *path, int width, int height, GError **error)
{
  g_autofree guint8 *data = NULL;
  gsize len;
  if (!read_whole_file (path, &data, &len, error))
    return NULL;
  if (len % 5 != 0)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_TRUNCATED,
                   "%s: file is truncated at byte offset %zu (the event at byte offset %zu has %zu of 5 bytes)", path,
                   len, len - len % 5, len % 5);
      return NULL;
    }
  SnnEvents *ev = snn_events_new ();
  events_reserve (ev, len / 5);
  for (gsize at = 0; at < len; at += 5)
    {
      const guint8 *e = data + at;
      if (!check_xy (path, at, e[0], e[1], width, height, error))
        {
          snn_events_free (ev);
          return NULL;
        }
      snn_events_append (ev, e[0], e[1], e[2] >> 7, (gint64) (e[2] & 0x7F) << 16 | e[3] << 8 | e[4]);
    }
  return ev;
}

/* ---------------------------------------------------------- integration */

/* Number split, as in the reference (SpikingJelly): with di = floor(n / T),
 * frame i < T - 1 takes events [i * di, (i + 1) * di) and the last frame
 * takes [(T - 1) * di, n), i.e. all of the remainder. With n < T every
 * frame but the last is empty. */
void
snn_events_number_bounds (gsize n, int T, int i, gsize *lo, gsize *hi)
{
  gsize di = n / T;
  *lo = (gsize) i * di;
  *hi = i == T - 1 ? n : (gsize) (i + 1) * di;
}

static void
count_event (const SnnEvents *ev, gsize k, int frame, int height, int width, float *frames)
{
  size_t plane = (size_t) height * width;
  frames[((size_t) frame * 2 + ev->p[k]) * plane + (size_t) ev->y[k] * width + ev->x[k]] += 1.0f;
}

/* Time split, as in the reference: with t0 and t1 the first and last
 * times and dt = floor((t1 - t0) / T), frame i takes the events with
 * t0 + i dt <= t < t0 + (i + 1) dt, and the last frame every event from
 * t0 + (T - 1) dt on, t1 included. When the span is shorter than T µs
 * (dt = 0), frames are 1 µs long and the last takes the rest. */
static int
time_frame (gint64 t, gint64 t0, gint64 dt, int T)
{
  gint64 f = dt > 0 ? (t - t0) / dt : t - t0;
  return (int) MIN (f, (gint64) T - 1);
}

void
snn_events_integrate (const SnnEvents *ev, SnnSplitMode split, int T, int height, int width, float *frames)
{
  memset (frames, 0, (size_t) T * 2 * height * width * sizeof (float));
  if (ev->n == 0)
    return;
  if (split == SNN_SPLIT_NUMBER)
    {
      for (int i = 0; i < T; i++)
        {
          gsize lo, hi;
          snn_events_number_bounds (ev->n, T, i, &lo, &hi);
          for (gsize k = lo; k < hi; k++)
            count_event (ev, k, i, height, width, frames);
        }
      return;
    }
  /* First and last by value, which equal the first and last in order for
   * the time-ordered streams of the formats read here. */
  gint64 t0 = ev->t[0], t1 = ev->t[0];
  for (gsize k = 1; k < ev->n; k++)
    {
      t0 = MIN (t0, ev->t[k]);
      t1 = MAX (t1, ev->t[k]);
    }
  gint64 dt = (t1 - t0) / T;
  for (gsize k = 0; k < ev->n; k++)
    count_event (ev, k, time_frame (ev->t[k], t0, dt, T), height, width, frames);
}

/* ------------------------------------------------------------- resizing */

/* For each output index, the input indices [first, first + count) and their
 * weights (at most MAX_TAPS of them). */
#define MAX_TAPS 64

typedef struct {
  int first, count;
  float w[MAX_TAPS];
} Taps;

static void
taps_area (int in, int out, Taps *taps)
{
  double scale = (double) in / out;
  for (int o = 0; o < out; o++)
    {
      double lo = o * scale, hi = (o + 1) * scale;
      int first = (int) floor (lo), last = MIN ((int) ceil (hi), in);
      taps[o].first = first;
      taps[o].count = MIN (last - first, MAX_TAPS);
      for (int k = 0; k < taps[o].count; k++)
        {
          double a = MAX (lo, first + k), b = MIN (hi, first + k + 1);
          taps[o].w[k] = (float) (MAX (b - a, 0.0) / scale);
        }
    }
}

/* Pixel-centre sampling (half-pixel offsets), clamped at the borders. */
static void
taps_bilinear (int in, int out, Taps *taps)
{
  double scale = (double) in / out;
  for (int o = 0; o < out; o++)
    {
      double src = CLAMP ((o + 0.5) * scale - 0.5, 0.0, in - 1.0);
      int i0 = (int) floor (src);
      float f = (float) (src - i0);
      taps[o].first = i0;
      taps[o].count = i0 + 1 < in ? 2 : 1;
      taps[o].w[0] = taps[o].count == 2 ? 1.0f - f : 1.0f;
      taps[o].w[1] = f;
    }
}

static void
make_taps (int in, int out, SnnResizeMode mode, Taps *taps)
{
  /* The area of a source pixel wider than MAX_TAPS outputs would be cut
   * short, so such extreme reductions fall back to sampling. */
  if (mode == SNN_RESIZE_AREA && in <= out * (MAX_TAPS - 1))
    taps_area (in, out, taps);
  else
    taps_bilinear (in, out, taps);
}

void
snn_frames_resize (const float *src, int planes, int h, int w, float *dst, int oh, int ow, SnnResizeMode mode)
{
  Taps *th = g_new (Taps, oh), *tw = g_new (Taps, ow);
  make_taps (h, oh, mode, th);
  make_taps (w, ow, mode, tw);
  float *rows = g_new (float, (size_t) h * ow);
  for (int p = 0; p < planes; p++)
    {
      const float *s = src + (size_t) p * h * w;
      for (int y = 0; y < h; y++)
        for (int x = 0; x < ow; x++)
          {
            float acc = 0.0f;
            for (int k = 0; k < tw[x].count; k++)
              acc += tw[x].w[k] * s[(size_t) y * w + tw[x].first + k];
            rows[(size_t) y * ow + x] = acc;
          }
      float *d = dst + (size_t) p * oh * ow;
      for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
          {
            float acc = 0.0f;
            for (int k = 0; k < th[y].count; k++)
              acc += th[y].w[k] * rows[(size_t) (th[y].first + k) * ow + x];
            d[(size_t) y * ow + x] = acc;
          }
    }
  g_free (rows);
  g_free (th);
  g_free (tw);
}

/* ------------------------------------------------------------- datasets */

void
snn_event_frame_options_init (SnnEventFrameOptions *opts)
{
  memset (opts, 0, sizeof *opts);
  opts->T = 10;
  opts->split = SNN_SPLIT_NUMBER;
  opts->resize = SNN_RESIZE_AREA;
}

char *
snn_events_default_cache_dir (void)
{
  return g_build_filename (g_get_user_cache_dir (), "snn-workbench", "frames", NULL);
}

typedef enum { EV_AEDAT3, EV_AEDAT2, EV_NMNIST } EvFormat;

typedef struct {
  char *path;
  char *rel;          /* path below the dataset folder, for the cache key */
  int label;
  gint64 start, end;  /* the sample's events have start <= t < end; end < 0: the whole file */
} EvSample;

/* What a dataset is made of, before any event is read. */
typedef struct {
  const char *name;
  const char *part; /* "train" or "test" */
  char *root;
  EvFormat format;
  int width, height, classes;
  GArray *samples; /* EvSample */
  GString *extra;  /* further content of the cache key */
} EvPlan;

static void
ev_sample_clear (gpointer p)
{
  EvSample *s = p;
  g_free (s->path);
  g_free (s->rel);
}

static void
plan_init (EvPlan *plan, const char *name, gboolean train, const char *root, EvFormat format, int size,
           int classes)
{
  plan->name = name;
  plan->part = train ? "train" : "test";
  plan->root = g_canonicalize_filename (root, NULL);
  plan->format = format;
  plan->width = plan->height = size;
  plan->classes = classes;
  plan->samples = g_array_new (FALSE, TRUE, sizeof (EvSample));
  g_array_set_clear_func (plan->samples, ev_sample_clear);
  plan->extra = g_string_new (NULL);
}

static void
plan_clear (EvPlan *plan)
{
  g_free (plan->root);
  g_array_unref (plan->samples);
  g_string_free (plan->extra, TRUE);
}

static void
plan_add (EvPlan *plan, const char *rel, int label, gint64 start, gint64 end)
{
  EvSample s = { g_build_filename (plan->root, rel, NULL), g_strdup (rel), label, start, end };
  g_array_append_val (plan->samples, s);
}

static SnnEvents *
plan_read (const EvPlan *plan, const char *path, GError **error)
{
  switch (plan->format)
    {
    case EV_AEDAT3:
      return snn_events_read_aedat3 (path, plan->width, plan->height, error);
    case EV_AEDAT2:
      return snn_events_read_aedat2 (path, plan->width, plan->height, error);
    default:
      return snn_events_read_nmnist (path, plan->width, plan->height, error);
    }
}

static SnnDataset *
frames_dataset_new (const char *name, int n, int T, int height, int width, int classes)
{
  SnnDataset *ds = g_new0 (SnnDataset, 1);
  ds->name = g_strdup (name);
  ds->n = n;
  ds->seq_T = T;
  ds->sample_ndim = 3;
  ds->sample_shape[0] = 2;
  ds->sample_shape[1] = height;
  ds->sample_shape[2] = width;
  ds->sample_size = 2 * height * width;
  ds->num_classes = classes;
  ds->norm_std = 1.0f;
  ds->x = g_try_malloc0_n ((size_t) n * T * ds->sample_size + 1, sizeof (float));
  ds->y = g_try_malloc0_n ((size_t) n + 1, sizeof (int32_t));
  if (!ds->x || !ds->y)
    g_clear_pointer (&ds, snn_dataset_free);
  return ds;
}

/* The events of a sample's time window. */
static SnnEvents *
events_window (const SnnEvents *ev, gint64 start, gint64 end)
{
  SnnEvents *out = snn_events_new ();
  for (gsize k = 0; k < ev->n; k++)
    if (ev->t[k] >= start && ev->t[k] < end)
      snn_events_append (out, ev->x[k], ev->y[k], ev->p[k], ev->t[k]);
  return out;
}

/* Integrates one sample's events at the sensor size and resizes them into
 * out ([T][2][oh][ow]); scratch holds T x 2 sensor-sized planes. */
static void
events_to_frames (const SnnEvents *ev, const SnnEventFrameOptions *opts, int h, int w, int oh, int ow,
                  float *scratch, float *out)
{
  if (oh == h && ow == w)
    {
      snn_events_integrate (ev, opts->split, opts->T, h, w, out);
      return;
    }
  snn_events_integrate (ev, opts->split, opts->T, h, w, scratch);
  snn_frames_resize (scratch, opts->T * 2, h, w, out, oh, ow, opts->resize);
}

/* Integrates samples [first, last), which share one event file, into
 * their places in ds. */
static gboolean
plan_integrate_file (const EvPlan *plan, const SnnEventFrameOptions *opts, int first, int last, SnnDataset *ds,
                     float *scratch, GError **error)
{
  const EvSample *s0 = &g_array_index (plan->samples, EvSample, first);
  SnnEvents *ev = plan_read (plan, s0->path, error);
  if (!ev)
    return FALSE;
  size_t per = (size_t) opts->T * ds->sample_size;
  for (int i = first; i < last; i++)
    {
      const EvSample *s = &g_array_index (plan->samples, EvSample, i);
      SnnEvents *win = s->end >= 0 ? events_window (ev, s->start, s->end) : NULL;
      events_to_frames (win ? win : ev, opts, plan->height, plan->width, ds->sample_shape[1], ds->sample_shape[2],
                        scratch, ds->x + i * per);
      snn_events_free (win);
      ds->y[i] = s->label;
    }
  snn_events_free (ev);
  return TRUE;
}

/* Starts of the runs of consecutive samples that share a file (Gesture
 * trials hold many samples; the other sets one a file), plus the end. */
static GArray *
plan_runs (const EvPlan *plan)
{
  GArray *runs = g_array_new (FALSE, FALSE, sizeof (int));
  for (guint i = 0; i < plan->samples->len; i++)
    if (i == 0 || strcmp (g_array_index (plan->samples, EvSample, i).path,
                          g_array_index (plan->samples, EvSample, i - 1).path) != 0)
      g_array_append_val (runs, i);
  int end = plan->samples->len;
  g_array_append_val (runs, end);
  return runs;
}

typedef struct {
  const EvPlan *plan;
  const SnnEventFrameOptions *opts;
  GArray *runs;
  SnnDataset *ds;
  GError **errors;
  size_t scratch_len;
} IntegrateJob;

/* Run r of the samples (one file), on a thread of the pool. */
static void
integrate_run (void *data, int r, int runs)
{
  const IntegrateJob *j = data;
  float *scratch = g_new (float, j->scratch_len);
  plan_integrate_file (j->plan, j->opts, g_array_index (j->runs, int, r), g_array_index (j->runs, int, r + 1), j->ds,
                       scratch, &j->errors[r]);
  g_free (scratch);
}

/* Reads every file and integrates its samples, files in parallel; the
 * first failing file (in list order) gives the error. */
static SnnDataset *
plan_integrate (const EvPlan *plan, const SnnEventFrameOptions *opts, int oh, int ow, GError **error)
{
  int n = plan->samples->len;
  SnnDataset *ds = frames_dataset_new (plan->name, n, opts->T, oh, ow, plan->classes);
  if (!ds)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "%s: not enough memory for %d samples of %d frames",
                   plan->root, n, opts->T);
      return NULL;
    }
  GArray *runs = plan_runs (plan);
  int nruns = runs->len - 1;
  GError **errors = g_new0 (GError *, MAX (nruns, 1));
  IntegrateJob job = { plan, opts, runs, ds, errors, (size_t) opts->T * 2 * plan->height * plan->width };
  snn_pool_run (nruns, integrate_run, &job);
  for (int r = 0; r < nruns; r++)
    if (errors[r])
      {
        if (ds)
          g_propagate_error (error, g_steal_pointer (&errors[r]));
        g_clear_error (&errors[r]);
        g_clear_pointer (&ds, snn_dataset_free);
      }
  g_free (errors);
  g_array_unref (runs);
  return ds;
}

/* ---------------------------------------------------------------- cache
 *
 * One file per dataset and settings: an 8-byte magic, the key (u32 length
 * and text), u32 n, T, C, H, W and classes, the u64 payload length, the
 * CRC-32 of the payload, then the payload: the frames (float32) and the
 * labels (int32), in host byte order. The key says everything the frames
 * depend on, including the list of samples; a file whose header, length
 * or checksum does not match is rebuilt. Event files are taken to be
 * immutable under their names: delete the cache folder after editing one. */

#define CACHE_MAGIC "SNNFRM1\n"

/* What the frames depend on besides the events: the cache file's name
 * comes from it, so that a changed list of samples replaces its stale file
 * instead of leaving it behind. */
static char *
plan_slot (const EvPlan *plan, const SnnEventFrameOptions *opts, int oh, int ow)
{
  return g_strdup_printf ("dataset=%s\npart=%s\nroot=%s\nT=%d\nsplit=%s\nsize=%dx%d\nresize=%s\n", plan->name,
                          plan->part, plan->root, opts->T, opts->split == SNN_SPLIT_TIME ? "time" : "number", oh, ow,
                          opts->resize == SNN_RESIZE_BILINEAR ? "bilinear" : "area");
}

/* The slot and the list of samples. */
static char *
plan_key (const EvPlan *plan, const char *slot)
{
  GChecksum *list = g_checksum_new (G_CHECKSUM_SHA256);
  for (guint i = 0; i < plan->samples->len; i++)
    {
      const EvSample *s = &g_array_index (plan->samples, EvSample, i);
      g_autofree char *line = g_strdup_printf ("%s\t%d\t%" G_GINT64_FORMAT "\t%" G_GINT64_FORMAT "\n", s->rel,
                                               s->label, s->start, s->end);
      g_checksum_update (list, (const guchar *) line, -1);
    }
  char *key = g_strdup_printf ("%ssamples=%u\nlist=%s\n%s", slot, plan->samples->len, g_checksum_get_string (list),
                               plan->extra->str);
  g_checksum_free (list);
  return key;
}

static char *
cache_path (const char *dir, const EvPlan *plan, const char *slot)
{
  g_autofree char *sum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, slot, -1);
  g_autofree char *base = g_strdup_printf ("%s-%s-%.16s.frames", plan->name, plan->part, sum);
  return g_build_filename (dir, base, NULL);
}

static guint32
payload_crc (const SnnDataset *ds)
{
  uLong crc = crc32_z (0L, Z_NULL, 0);
  crc = crc32_z (crc, (const Bytef *) ds->x, (size_t) ds->n * ds->seq_T * ds->sample_size * sizeof (float));
  return (guint32) crc32_z (crc, (const Bytef *) ds->y, (size_t) ds->n * sizeof (int32_t));
}

static guint64
payload_len (int n, int T, int C, int H, int W)
{
  return (guint64) n * T * C * H * W * sizeof (float) + (guint64) n * sizeof (int32_t);
}

static gboolean
read_exact (FILE *f, void *buf, size_t len)
{
  return fread (buf, 1, len, f) == len;
}

/* The header matches the key and the expected shape, and the file has
 * exactly the payload the header announces. */
static gboolean
cache_header_ok (FILE *f, const char *key, const guint32 *want, guint32 *crc)
{
  char magic[8];
  guint32 key_len, dims[6];
  guint64 plen;
  if (!read_exact (f, magic, 8) || memcmp (magic, CACHE_MAGIC, 8) != 0 || !read_exact (f, &key_len, 4)
      || key_len != strlen (key))
    return FALSE;
  g_autofree char *stored = g_malloc (key_len);
  if (!read_exact (f, stored, key_len) || memcmp (stored, key, key_len) != 0 || !read_exact (f, dims, sizeof dims)
      || memcmp (dims, want, sizeof dims) != 0 || !read_exact (f, &plen, 8) || !read_exact (f, crc, 4)
      || plen != payload_len (want[0], want[1], want[2], want[3], want[4]))
    return FALSE;
  long here = ftell (f);
  return fseek (f, 0, SEEK_END) == 0 && (guint64) ftell (f) == here + plen && fseek (f, here, SEEK_SET) == 0;
}

static SnnDataset *
cache_load (const char *path, const char *key, const EvPlan *plan, int T, int oh, int ow)
{
  FILE *f = g_fopen (path, "rb");
  if (!f)
    return NULL;
  guint32 want[6] = { plan->samples->len, T, 2, oh, ow, plan->classes }, crc;
  SnnDataset *ds = NULL;
  if (cache_header_ok (f, key, want, &crc) && (ds = frames_dataset_new (plan->name, want[0], T, oh, ow, plan->classes)))
    {
      size_t nx = (size_t) ds->n * T * ds->sample_size;
      if (!read_exact (f, ds->x, nx * sizeof (float)) || !read_exact (f, ds->y, (size_t) ds->n * sizeof (int32_t))
          || payload_crc (ds) != crc)
        g_clear_pointer (&ds, snn_dataset_free);
      for (int i = 0; ds && i < ds->n; i++)
        if (ds->y[i] < 0 || ds->y[i] >= plan->classes)
          g_clear_pointer (&ds, snn_dataset_free);
    }
  fclose (f);
  if (!ds)
    g_message ("%s: frame cache is stale or damaged; rebuilding it", path);
  return ds;
}

/* Written through the atomic writer, so that a reader never sees half a
 * file. A cache that cannot be written is only a lost speed-up, so
 * failures are reported and otherwise ignored. */
static void
cache_save (const char *path, const char *key, const SnnDataset *ds)
{
  g_autofree char *dir = g_path_get_dirname (path);
  GError *error = NULL;
  SnnAtomicFile *af = NULL;
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_message ("%s: cannot write the frame cache: %s", path, g_strerror (errno));
      return;
    }
  if (!(af = snn_atomic_file_open (path, &error)))
    {
      g_message ("%s", error->message);
      g_error_free (error);
      return;
    }
  guint32 key_len = strlen (key), crc = payload_crc (ds);
  guint32 dims[6] = { ds->n, ds->seq_T, ds->sample_shape[0], ds->sample_shape[1], ds->sample_shape[2],
                      ds->num_classes };
  guint64 plen = payload_len (ds->n, ds->seq_T, 2, ds->sample_shape[1], ds->sample_shape[2]);
  gboolean ok = snn_atomic_file_write (af, CACHE_MAGIC, 8, &error) && snn_atomic_file_write (af, &key_len, 4, &error)
                && snn_atomic_file_write (af, key, key_len, &error) && snn_atomic_file_write (af, dims, sizeof dims, &error)
                && snn_atomic_file_write (af, &plen, 8, &error) && snn_atomic_file_write (af, &crc, 4, &error)
                && snn_atomic_file_write (af, ds->x, sizeof (float) * (size_t) ds->n * ds->seq_T * ds->sample_size, &error)
                && snn_atomic_file_write (af, ds->y, sizeof (int32_t) * (size_t) ds->n, &error);
  if (!ok)
    snn_atomic_file_abort (af);
  if (!ok || !snn_atomic_file_commit (af, &error))
    {
      g_message ("%s: the frame cache is not written: %s", path, error->message);
      g_error_free (error);
    }
}

static gboolean
check_options (const SnnEventFrameOptions *opts, GError **error)
{
  if (opts->T >= 1 && opts->T <= 100000 && opts->size >= 0 && opts->size <= 4096)
    return TRUE;
  g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "invalid frame settings: T = %d, size = %d", opts->T,
               opts->size);
  return FALSE;
}

/* Frames of a planned dataset, from the cache when it holds them. */
static SnnDataset *
plan_build (const EvPlan *plan, const SnnEventFrameOptions *opts, gboolean *from_cache, GError **error)
{
  int oh = opts->size > 0 ? opts->size : plan->height, ow = opts->size > 0 ? opts->size : plan->width;
  g_autofree char *slot = plan_slot (plan, opts, oh, ow);
  g_autofree char *key = plan_key (plan, slot);
  g_autofree char *path = opts->cache_dir ? cache_path (opts->cache_dir, plan, slot) : NULL;
  SnnDataset *ds = path ? cache_load (path, key, plan, opts->T, oh, ow) : NULL;
  if (from_cache)
    *from_cache = ds != NULL;
  if (ds)
    return ds;
  ds = plan_integrate (plan, opts, oh, ow, error);
  if (ds && path)
    cache_save (path, key, ds);
  return ds;
}

/* ------------------------------------------------------- DVS128 Gesture */

/* dir itself, or the sub-folder `sub`, whichever holds `marker`. */
static char *
find_root (const char *dir, const char *sub, const char *marker)
{
  g_autofree char *nested = g_build_filename (dir, sub, NULL);
  const char *candidates[] = { dir, nested };
  for (int i = 0; i < 2; i++)
    {
      g_autofree char *p = g_build_filename (candidates[i], marker, NULL);
      if (g_file_test (p, G_FILE_TEST_EXISTS))
        return g_strdup (candidates[i]);
    }
  return NULL;
}

/* One "class,start,end" row of a _labels.csv; FALSE with error set for a
 * malformed row. Header and blank lines are skipped (*skip). */
static gboolean
gesture_parse_row (const char *csv, const char *line, gsize offset, int *label, gint64 *start, gint64 *end,
                   gboolean *skip, GError **error)
{
  g_autofree char *trimmed = g_strstrip (g_strdup (line));
  int cls;
  char tail;
  *skip = trimmed[0] == '\0' || g_ascii_isalpha (trimmed[0]);
  if (*skip)
    return TRUE;
  if (sscanf (trimmed, "%d,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "%c", &cls, start, end, &tail) != 3
      || cls < 1 || cls > SNN_DVS_GESTURE_CLASSES || *end < *start || *start < 0)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_PARSE,
                   "%s: bad row at byte offset %zu: \"%s\" (expected class 1-%d, start and end in µs)", csv, offset,
                   trimmed, SNN_DVS_GESTURE_CLASSES);
      return FALSE;
    }
  *label = cls - 1;
  return TRUE;
}

/* Adds the labelled windows of one trial; the csv's content is part of the
 * cache key, since it decides what the samples are. */
static gboolean
gesture_add_trial (EvPlan *plan, const char *trial, GError **error)
{
  g_autofree char *stem = g_str_has_suffix (trial, ".aedat") ? g_strndup (trial, strlen (trial) - 6) : g_strdup (trial);
  g_autofree char *csv_rel = g_strconcat (stem, "_labels.csv", NULL);
  g_autofree char *csv = g_build_filename (plan->root, csv_rel, NULL);
  g_autofree char *text = NULL;
  gsize len;
  if (!read_whole_file (csv, (guint8 **) &text, &len, error))
    return FALSE;
  g_autofree char *sum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, text, len);
  g_string_append_printf (plan->extra, "%s=%s\n", csv_rel, sum);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  gsize offset = 0;
  for (int i = 0; lines[i]; offset += strlen (lines[i]) + 1, i++)
    {
      int label;
      gint64 start, end;
      gboolean skip;
      if (!gesture_parse_row (csv, lines[i], offset, &label, &start, &end, &skip, error))
        return FALSE;
      if (!skip)
        plan_add (plan, trial, label, start, end);
    }
  return TRUE;
}

SnnDataset *
snn_dataset_load_dvs_gesture (const char *dir, gboolean train, const SnnEventFrameOptions *opts,
                              gboolean *from_cache, GError **error)
{
  const char *list_name = train ? "trials_to_train.txt" : "trials_to_test.txt";
  g_autofree char *root = find_root (dir, "DvsGesture", list_name);
  if (!check_options (opts, error))
    return NULL;
  if (!root)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING, "%s: no %s found in this folder or in %s/DvsGesture",
                   dir, list_name, dir);
      return NULL;
    }
  g_autofree char *list_path = g_build_filename (root, list_name, NULL);
  g_autofree char *text = NULL;
  gsize len;
  if (!read_whole_file (list_path, (guint8 **) &text, &len, error))
    return NULL;
  EvPlan plan;
  plan_init (&plan, "dvs-gesture", train, root, EV_AEDAT3, SNN_DVS_GESTURE_SIZE, SNN_DVS_GESTURE_CLASSES);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  gboolean ok = TRUE;
  for (int i = 0; ok && lines[i]; i++)
    {
      g_strstrip (lines[i]);
      if (lines[i][0] != '\0')
        ok = gesture_add_trial (&plan, lines[i], error);
    }
  SnnDataset *ds = ok ? plan_build (&plan, opts, from_cache, error) : NULL;
  plan_clear (&plan);
  return ds;
}

/* ------------------------------------------- folders of one file a sample */

/* The number in a file name (the last run of digits), for ordering
 * "x_2" before "x_10"; -1 if none. */
static gint64
name_number (const char *name)
{
  gint64 v = -1;
  for (const char *p = name; *p; p++)
    if (g_ascii_isdigit (*p))
      {
        v = 0;
        while (g_ascii_isdigit (*p))
          v = v * 10 + (*p++ - '0');
        p--;
      }
  return v;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  const char *x = *(const char *const *) a, *y = *(const char *const *) b;
  gint64 nx = name_number (x), ny = name_number (y);
  return nx != ny ? (nx < ny ? -1 : 1) : strcmp (x, y);
}

/* The entries of a folder that are folders (want_dirs) or files ending in
 * suffix, in natural order; NULL with error set if it cannot be read. */
static GPtrArray *
list_folder (const char *dir, gboolean want_dirs, const char *suffix, GError **error)
{
  GError *local = NULL;
  GDir *d = g_dir_open (dir, 0, &local);
  if (!d)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING, "%s", local->message);
      g_error_free (local);
      return NULL;
    }
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)))
    {
      g_autofree char *p = g_build_filename (dir, name, NULL);
      gboolean is_dir = g_file_test (p, G_FILE_TEST_IS_DIR);
      if (want_dirs ? is_dir : !is_dir && g_str_has_suffix (name, suffix))
        g_ptr_array_add (names, g_strdup (name));
    }
  g_dir_close (d);
  g_ptr_array_sort (names, compare_names);
  return names;
}

/* Adds the files of one class folder: those with index in [from, to) of
 * the ordered list, given as fractions of its length in tenths. */
static gboolean
plan_add_class (EvPlan *plan, const char *class_rel, int label, const char *suffix, int from10, int to10,
                GError **error)
{
  g_autofree char *dir = g_build_filename (plan->root, class_rel, NULL);
  GPtrArray *files = list_folder (dir, FALSE, suffix, error);
  if (!files)
    return FALSE;
  guint lo = files->len * from10 / 10, hi = files->len * to10 / 10;
  for (guint i = lo; i < hi; i++)
    {
      g_autofree char *rel = g_build_filename (class_rel, (char *) files->pdata[i], NULL);
      plan_add (plan, rel, label, 0, -1);
    }
  g_ptr_array_unref (files);
  return TRUE;
}

SnnDataset *
snn_dataset_load_cifar10_dvs (const char *dir, gboolean train, const SnnEventFrameOptions *opts,
                              gboolean *from_cache, GError **error)
{
  if (!check_options (opts, error))
    return NULL;
  GPtrArray *classes = list_folder (dir, TRUE, NULL, error);
  if (!classes)
    return NULL;
  if (classes->len < 2)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_MISSING,
                   "%s: expected one folder per class (airplane ... truck), found %u", dir, classes->len);
      g_ptr_array_unref (classes);
      return NULL;
    }
  /* Names without digits sort alphabetically, which for the class
   * folders is CIFAR-10's label order. */
  EvPlan plan;
  plan_init (&plan, "cifar10-dvs", train, dir, EV_AEDAT2, SNN_CIFAR10_DVS_SIZE, classes->len);
  gboolean ok = TRUE;
  for (guint c = 0; ok && c < classes->len; c++)
    ok = plan_add_class (&plan, classes->pdata[c], c, ".aedat", train ? 0 : 9, train ? 9 : 10, error);
  g_ptr_array_unref (classes);
  SnnDataset *ds = ok ? plan_build (&plan, opts, from_cache, error) : NULL;
  plan_clear (&plan);
  return ds;
}

SnnDataset *
snn_dataset_load_nmnist (const char *dir, gboolean train, const SnnEventFrameOptions *opts, gboolean *from_cache,
                         GError **error)
{
  if (!check_options (opts, error))
    return NULL;
  const char *split = train ? "Train" : "Test";
  EvPlan plan;
  plan_init (&plan, "n-mnist", train, dir, EV_NMNIST, SNN_NMNIST_SIZE, 10);
  gboolean ok = TRUE;
  for (int c = 0; ok && c < 10; c++)
    {
      g_autofree char *rel = g_strdup_printf ("%s/%d", split, c);
      ok = plan_add_class (&plan, rel, c, ".bin", 0, 10, error);
    }
  SnnDataset *ds = ok ? plan_build (&plan, opts, from_cache, error) : NULL;
  plan_clear (&plan);
  return ds;
}

/* ------------------------------------------------------ synthetic events
 *
 * A disc of radius SYN_R crosses the sensor along one of four directions
 * in SYN_STEPS time steps of SYN_DT µs, its centre travelling a random
 * length around the middle with a random sideways and lengthwise offset.
 * In each step it emits SYN_EDGE ON events on its leading half edge,
 * SYN_EDGE OFF events on its trailing half edge (at angles drawn with
 * density ∝ the cosine to the direction of motion, as the rate of
 * brightness change along a moving edge) and SYN_NOISE events of each
 * polarity at uniform pixels, in random order at evenly spaced times. So
 * every sample has the same number of events of each polarity in every
 * step, whatever its class. */

#define SYN_R 4.0
#define SYN_STEPS 40
#define SYN_DT 2500
#define SYN_EDGE 6
#define SYN_NOISE 1
#define SYN_PER_STEP (2 * SYN_EDGE + 2 * SYN_NOISE)

typedef struct {
  int x, y, p;
} SynEvent;

static int
syn_pixel (double v)
{
  return CLAMP ((int) floor (v), 0, SNN_SYNTHETIC_EVENT_SENSOR - 1);
}

/* A point on the half edge facing `angle`. */
static SynEvent
syn_edge_event (SnnRng *rng, double cx, double cy, double angle, int p)
{
  double phi = angle + asin (2.0 * snn_rng_uniform (rng) - 1.0);
  SynEvent e = { syn_pixel (cx + SYN_R * cos (phi)), syn_pixel (cy + SYN_R * sin (phi)), p };
  return e;
}

static void
syn_step (SnnRng *rng, double cx, double cy, double angle, gint64 t0, SnnEvents *ev)
{
  SynEvent batch[SYN_PER_STEP];
  int k = 0;
  for (int i = 0; i < SYN_EDGE; i++)
    {
      batch[k++] = syn_edge_event (rng, cx, cy, angle, 1);
      batch[k++] = syn_edge_event (rng, cx, cy, angle + G_PI, 0);
    }
  for (int i = 0; i < 2 * SYN_NOISE; i++)
    {
      SynEvent e = { (int) snn_rng_below (rng, SNN_SYNTHETIC_EVENT_SENSOR),
                     (int) snn_rng_below (rng, SNN_SYNTHETIC_EVENT_SENSOR), i % 2 };
      batch[k++] = e;
    }
  int order[SYN_PER_STEP];
  snn_rng_permutation (rng, order, SYN_PER_STEP);
  for (int i = 0; i < SYN_PER_STEP; i++)
    {
      const SynEvent *e = &batch[order[i]];
      snn_events_append (ev, e->x, e->y, e->p, t0 + (gint64) i * SYN_DT / SYN_PER_STEP);
    }
}

SnnEvents *
snn_synthetic_events_sample (int label, SnnRng *rng)
{
  double angle = label * G_PI / 2; /* right, down, left, up in image coordinates */
  double dx = cos (angle), dy = sin (angle);
  double mid = SNN_SYNTHETIC_EVENT_SENSOR / 2.0;
  double side = snn_rng_uniform_range (rng, -2.0f, 2.0f), along = snn_rng_uniform_range (rng, -2.0f, 2.0f);
  double length = snn_rng_uniform_range (rng, 14.0f, 18.0f);
  SnnEvents *ev = snn_events_new ();
  for (int k = 0; k < SYN_STEPS; k++)
    {
      double s = along + length * ((double) k / (SYN_STEPS - 1) - 0.5);
      syn_step (rng, mid + s * dx - side * dy, mid + s * dy + side * dx, angle, (gint64) k * SYN_DT, ev);
    }
  return ev;
}

SnnDataset *
snn_dataset_synthetic_events (int n, int T, int size, uint64_t seed, GError **error)
{
  SnnEventFrameOptions opts;
  snn_event_frame_options_init (&opts);
  opts.T = T;
  opts.size = size;
  if (n < 0 || !check_options (&opts, error))
    return NULL;
  int S = SNN_SYNTHETIC_EVENT_SENSOR, out = size > 0 ? size : S;
  SnnDataset *ds = frames_dataset_new ("synthetic-events", n, T, out, out, SNN_SYNTHETIC_EVENT_CLASSES);
  if (!ds)
    {
      g_set_error (error, SNN_DATA_ERROR, SNN_ERROR_INVALID, "not enough memory for %d synthetic samples", n);
      return NULL;
    }
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  int *perm = g_new (int, MAX (n, 1));
  snn_rng_permutation (&rng, perm, n);
  for (int i = 0; i < n; i++)
    ds->y[perm[i]] = i % SNN_SYNTHETIC_EVENT_CLASSES;
  g_free (perm);
  g_autofree float *scratch = g_new (float, (size_t) T * 2 * S * S);
  for (int i = 0; i < n; i++)
    {
      SnnEvents *ev = snn_synthetic_events_sample (ds->y[i], &rng);
      events_to_frames (ev, &opts, S, S, out, out, scratch, ds->x + (size_t) i * T * ds->sample_size);
      snn_events_free (ev);
    }
  return ds;
}

/* --------------------------------------------------------- augmentation */

/* One plane, flipped and rolled circularly: out[y][x] = in[y - dy][x' - dx]
 * with x' the flipped column. */
static void
roll_plane (float *p, int H, int W, int dy, int dx, gboolean flip, float *tmp)
{
  memcpy (tmp, p, (size_t) H * W * sizeof (float));
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      {
        int sy = ((y - dy) % H + H) % H, sx = ((x - dx) % W + W) % W;
        p[(size_t) y * W + x] = tmp[(size_t) sy * W + (flip ? W - 1 - sx : sx)];
      }
}

void
snn_augment_event_frames (float *x, int T, int B, int C, int H, int W, int max_roll, gboolean flip, SnnRng *rng)
{
  g_autofree float *tmp = g_new (float, (size_t) H * W);
  size_t plane = (size_t) H * W;
  for (int b = 0; b < B; b++)
    {
      gboolean f = flip && snn_rng_below (rng, 2);
      int dy = max_roll > 0 ? (int) snn_rng_below (rng, 2 * max_roll + 1) - max_roll : 0;
      int dx = max_roll > 0 ? (int) snn_rng_below (rng, 2 * max_roll + 1) - max_roll : 0;
      if (!f && dx == 0 && dy == 0)
        continue;
      for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
          roll_plane (x + (((size_t) t * B + b) * C + c) * plane, H, W, dy, dx, f, tmp);
    }
}
