#define _GNU_SOURCE
#include "snnwb-offscreen.h"
#include "pool.h"
#include <sched.h>
#include <sys/resource.h>

/* A request still not drawn after this long means the render thread does
 * not get a core: the view then draws on the main thread. */
#define MAX_WAIT_US (250 * 1000)
/* ... and goes on doing so for this long before it tries again. */
#define LATE_US     (2 * G_USEC_PER_SEC)

typedef struct {
  cairo_surface_t *surface;
  guint64 gen;
  int width, height, scale;
} Picture;

/* Reference counted with g_atomic_rc_box: the widget holds one, and so
 * does each queued job and delivery. */
struct _SnnwbOffscreen {
  /* Main thread only. */
  GtkWidget *widget;             /* NULL once its widget let it go */
  guint64 gen;                   /* of the view's state */
  guint64 requested_gen;         /* the latest request handed to the thread */
  gint64 waiting_since;          /* of the oldest request not yet drawn; 0: none */
  gint64 late_until;             /* a request waited too long: draw here until then */
  guint watch_id;
  Picture picture;               /* the latest picture */
  /* Set once. */
  SnnwbPrepareFunc prepare;
  SnnwbPaintFunc paint;
  GDestroyNotify free_job;
  gpointer owner;
  /* Guarded by lock. */
  gboolean queued;
  gpointer job;
  guint64 job_gen;
  int job_width, job_height, job_scale;
};

typedef struct {
  SnnwbOffscreen *o;
  Picture picture;
} Delivery;

static GMutex lock;
static GCond cond;
static GQueue queue = G_QUEUE_INIT;
static GThread *thread;
static guint n_rendered;

static void
picture_clear (Picture *p)
{
  g_clear_pointer (&p->surface, cairo_surface_destroy);
}

/* The last reference goes on the main thread (a delivery or the widget). */
static void
offscreen_clear (gpointer data)
{
  SnnwbOffscreen *o = data;

  picture_clear (&o->picture);
  if (o->job)
    o->free_job (o->job);
}

static void
offscreen_unref (SnnwbOffscreen *o)
{
  g_atomic_rc_box_release_full (o, offscreen_clear);
}

static Picture
paint_picture (SnnwbOffscreen *o, gpointer job, guint64 gen, int width, int height, int scale)
{
  Picture p = { cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width * scale, height * scale), gen, width,
                height, scale };
  cairo_surface_set_device_scale (p.surface, scale, scale);
  cairo_t *cr = cairo_create (p.surface);
  o->paint (job, cr, width, height);
  cairo_destroy (cr);
  cairo_surface_flush (p.surface);
  return p;
}

/* Idle priority: the thread runs only on a core nobody else wants, and a
 * training thread that wakes up takes the core straight back. */
static void
become_idle (void)
{
#ifdef SCHED_IDLE
  struct sched_param sp = { 0 };
  if (sched_setscheduler (0, SCHED_IDLE, &sp) == 0)
    return;
#endif
  setpriority (PRIO_PROCESS, 0, 19);
}

static void
deliver (Delivery *d)
{
  SnnwbOffscreen *o = d->o;

  if (o->widget && (!o->picture.surface || d->picture.gen > o->picture.gen))
    {
      picture_clear (&o->picture);
      o->picture = d->picture;
      d->picture.surface = NULL;
      o->waiting_since = o->picture.gen >= o->requested_gen ? 0 : g_get_monotonic_time ();
      gtk_widget_queue_draw (o->widget);
    }
  picture_clear (&d->picture);
  offscreen_unref (o);
  g_free (d);
}

/* The pictures of one round, handed over together: they show in one
 * frame rather than one frame each. */
static gboolean
deliver_cb (gpointer data)
{
  g_slist_free_full (g_slist_reverse (data), (GDestroyNotify) deliver);
  return G_SOURCE_REMOVE;
}

static gpointer
render_thread (gpointer data)
{
  GSList *done = NULL;

  become_idle ();
  snn_pool_count_as_own ();
  g_mutex_lock (&lock);
  for (;;)
    {
      while (g_queue_is_empty (&queue))
        g_cond_wait (&cond, &lock);
      SnnwbOffscreen *o = g_queue_pop_head (&queue);  /* the queue's reference */
      gpointer job = g_steal_pointer (&o->job);
      guint64 gen = o->job_gen;
      int w = o->job_width, h = o->job_height, scale = o->job_scale;
      o->queued = FALSE;
      g_mutex_unlock (&lock);

      Delivery *d = g_new0 (Delivery, 1);
      d->o = o;
      d->picture = paint_picture (o, job, gen, w, h, scale);
      o->free_job (job);
      g_atomic_int_inc (&n_rendered);
      done = g_slist_prepend (done, d);
      g_mutex_lock (&lock);
      if (g_queue_is_empty (&queue))
        g_idle_add_full (G_PRIORITY_DEFAULT, deliver_cb, g_steal_pointer (&done), NULL);
    }
  return NULL;
}

/* While a request waits, checks that it does not wait too long. */
static gboolean
watch_cb (gpointer data)
{
  SnnwbOffscreen *o = data;

  if (!o->waiting_since)
    {
      o->watch_id = 0;
      return G_SOURCE_REMOVE;
    }
  gint64 now = g_get_monotonic_time ();
  if (now - o->waiting_since >= MAX_WAIT_US)
    {
      o->late_until = now + LATE_US;
      gtk_widget_queue_draw (o->widget);
    }
  return G_SOURCE_CONTINUE;
}

static void
submit (SnnwbOffscreen *o, int width, int height, int scale)
{
  gpointer job = o->prepare (o->owner), old = NULL;

  g_mutex_lock (&lock);
  if (!thread)
    thread = g_thread_new ("snnwb-render", render_thread, NULL);
  /* A request not started yet is replaced: only the latest state counts. */
  if (o->queued)
    old = o->job;
  else
    g_queue_push_tail (&queue, g_atomic_rc_box_acquire (o));
  o->queued = TRUE;
  o->job = job;
  o->job_gen = o->gen;
  o->job_width = width;
  o->job_height = height;
  o->job_scale = scale;
  g_cond_signal (&cond);
  g_mutex_unlock (&lock);
  if (old)
    o->free_job (old);

  o->requested_gen = o->gen;
  if (!o->waiting_since)
    o->waiting_since = g_get_monotonic_time ();
  if (!o->watch_id)
    o->watch_id = g_timeout_add (MAX_WAIT_US / 2000, watch_cb, o);
}

SnnwbOffscreen *
snnwb_offscreen_new (GtkWidget *widget, SnnwbPrepareFunc prepare, SnnwbPaintFunc paint, GDestroyNotify free_job,
                     gpointer owner)
{
  SnnwbOffscreen *o = g_atomic_rc_box_new0 (SnnwbOffscreen);

  o->widget = widget;
  o->prepare = prepare;
  o->paint = paint;
  o->free_job = free_job;
  o->owner = owner;
  return o;
}

void
snnwb_offscreen_free (SnnwbOffscreen *o)
{
  if (!o)
    return;
  o->widget = NULL;
  g_clear_handle_id (&o->watch_id, g_source_remove);
  /* A job still queued keeps it alive until the thread is done with it;
   * its picture is then dropped. */
  offscreen_unref (o);
}

void
snnwb_offscreen_invalidate (SnnwbOffscreen *o)
{
  GtkWidget *w = o->widget;
  int width = gtk_widget_get_width (w), height = gtk_widget_get_height (w);

  o->gen++;
  if (g_get_monotonic_time () < o->late_until || !gtk_widget_get_mapped (w) || width <= 0
      || height <= 0)
    {
      gtk_widget_queue_draw (w);
      return;
    }
  submit (o, width, height, gtk_widget_get_scale_factor (w));
}

void
snnwb_offscreen_draw (SnnwbOffscreen *o, cairo_t *cr, int width, int height)
{
  Picture *p = &o->picture;
  int scale = gtk_widget_get_scale_factor (o->widget);
  gboolean fits = p->surface && p->width == width && p->height == height && p->scale == scale;
  /* The latest picture, or one shown until the requested one arrives. */
  gboolean late = g_get_monotonic_time () < o->late_until;
  gboolean shown = fits && (p->gen == o->gen || (!late && o->requested_gen == o->gen));

  if (!shown)
    {
      gpointer job = o->prepare (o->owner);
      picture_clear (p);
      *p = paint_picture (o, job, o->gen, width, height, scale);
      o->free_job (job);
      if (p->gen >= o->requested_gen)
        o->waiting_since = 0;
    }
  cairo_set_source_surface (cr, p->surface, 0, 0);
  cairo_paint (cr);
}

gboolean
snnwb_offscreen_is_current (SnnwbOffscreen *o)
{
  return o->picture.surface && o->picture.gen == o->gen;
}

guint
snnwb_offscreen_get_n_rendered (void)
{
  return g_atomic_int_get (&n_rendered);
}
