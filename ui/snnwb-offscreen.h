/* Pictures of a view drawn away from the main thread.
 *
 * While training, every view is redrawn ten to twenty times a second. Drawn
 * on the main thread, each frame takes a core from the training threads,
 * and those then wait on each other: a few per cent of drawing cost far more
 * of training. Here a view's picture is drawn on one shared thread of idle
 * priority, which runs when a core would otherwise wait and gives way as
 * soon as training wants it back; the main thread only copies the finished
 * picture. When nothing of idle priority gets to run for a while (another
 * program keeps every core busy), the view draws on the main thread again.
 */
#pragma once
#include <gtk/gtk.h>

G_BEGIN_DECLS

/* Main thread: turns the view's current state into a job that owns all its
 * data. Any thread: draws a job into a cairo_t of the given size. */
typedef gpointer (*SnnwbPrepareFunc) (gpointer owner);
typedef void     (*SnnwbPaintFunc)   (gpointer job, cairo_t *cr, int width, int height);

typedef struct _SnnwbOffscreen SnnwbOffscreen;

/* For a widget that draws with the functions given; owner is passed to
 * prepare (usually the widget). The widget must outlive nothing: free the
 * offscreen in its dispose or finalize. */
SnnwbOffscreen *snnwb_offscreen_new (GtkWidget *widget, SnnwbPrepareFunc prepare, SnnwbPaintFunc paint,
                                     GDestroyNotify free_job, gpointer owner);
void            snnwb_offscreen_free (SnnwbOffscreen *o);

/* The view's data or settings changed: a new picture is drawn (off the main
 * thread when the widget is shown at a known size) and the widget redrawn
 * once it is ready. */
void            snnwb_offscreen_invalidate (SnnwbOffscreen *o);

/* From the widget's draw function: paints the latest picture when it fits
 * the size, otherwise draws right here. */
void            snnwb_offscreen_draw (SnnwbOffscreen *o, cairo_t *cr, int width, int height);

/* Whether the latest picture shows the view's present state. */
gboolean        snnwb_offscreen_is_current (SnnwbOffscreen *o);

/* Pictures drawn off the main thread so far, for tests. */
guint           snnwb_offscreen_get_n_rendered (void);

G_END_DECLS
