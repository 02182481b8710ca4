#include "snnwb-chart-view.h"
#include <math.h>
#include <string.h>
#include "snnwb-offscreen.h"
#include "surrogate.h"
#include "viz.h"

struct _SnnwbChartView {
  GtkDrawingArea parent_instance;
  SnnwbChartKind kind;
  guint data_count;

  SnnwbProbe *probe;
  SnnwbEpsilon *epsilon;
  int lif_index;
  int neurons[16];
  int n_neurons;
  GPtrArray *runs;
  SnnLifParams surrogate;
  gboolean has_surrogate;
  SnnwbOffscreen *offscreen;
};

G_DEFINE_ENUM_TYPE (SnnwbChartKind, snnwb_chart_kind,
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_RASTER, "raster"),
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_TRACES, "traces"),
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_EPSILON, "epsilon"),
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_LOSS, "loss"),
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_ACCURACY, "accuracy"),
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_MEMORY, "memory"),
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_TIME, "time"),
  G_DEFINE_ENUM_VALUE (SNNWB_CHART_SURROGATE, "surrogate"))

G_DEFINE_FINAL_TYPE (SnnwbChartView, snnwb_chart_view, GTK_TYPE_DRAWING_AREA)

enum { PROP_0, PROP_KIND, N_PROPS };
static GParamSpec *props[N_PROPS];

static gpointer prepare_job (gpointer owner);
static void     paint_job (gpointer job, cairo_t *cr, int width, int height);
static void     free_job (gpointer job);

static void
draw_cb (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  SnnwbChartView *self = SNNWB_CHART_VIEW (area);

  snnwb_offscreen_draw (self->offscreen, cr, width, height);
}

static void
snnwb_chart_view_finalize (GObject *object)
{
  SnnwbChartView *self = SNNWB_CHART_VIEW (object);

  g_clear_pointer (&self->offscreen, snnwb_offscreen_free);
  g_clear_pointer (&self->probe, snnwb_probe_unref);
  g_clear_pointer (&self->epsilon, snnwb_epsilon_unref);
  g_clear_pointer (&self->runs, g_ptr_array_unref);
  G_OBJECT_CLASS (snnwb_chart_view_parent_class)->finalize (object);
}

static void
snnwb_chart_view_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  SnnwbChartView *self = SNNWB_CHART_VIEW (object);

  if (id == PROP_KIND)
    g_value_set_enum (value, self->kind);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
snnwb_chart_view_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  SnnwbChartView *self = SNNWB_CHART_VIEW (object);

  if (id == PROP_KIND)
    self->kind = g_value_get_enum (value);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
snnwb_chart_view_class_init (SnnwbChartViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = snnwb_chart_view_finalize;
  object_class->get_property = snnwb_chart_view_get_property;
  object_class->set_property = snnwb_chart_view_set_property;
  props[PROP_KIND] = g_param_spec_enum ("kind", NULL, NULL, SNNWB_TYPE_CHART_KIND, SNNWB_CHART_LOSS,
                                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);
  gtk_widget_class_set_css_name (GTK_WIDGET_CLASS (klass), "chartview");
}

static void
snnwb_chart_view_init (SnnwbChartView *self)
{
  gtk_drawing_area_set_draw_func (GTK_DRAWING_AREA (self), draw_cb, NULL, NULL);
  self->offscreen = snnwb_offscreen_new (GTK_WIDGET (self), prepare_job, paint_job, free_job, self);
  self->n_neurons = 4;
  for (int i = 0; i < 4; i++)
    self->neurons[i] = i;
}

GtkWidget *
snnwb_chart_view_new (SnnwbChartKind kind)
{
  return g_object_new (SNNWB_TYPE_CHART_VIEW, "kind", kind, NULL);
}

SnnwbChartKind
snnwb_chart_view_get_kind (SnnwbChartView *self)
{
  return self->kind;
}

const char *
snnwb_chart_view_get_name (SnnwbChartView *self)
{
  GEnumClass *klass = g_type_class_peek (SNNWB_TYPE_CHART_KIND);

  return g_enum_get_value (klass, self->kind)->value_nick;
}

static void
got_data (SnnwbChartView *self)
{
  self->data_count++;
  snnwb_offscreen_invalidate (self->offscreen);
}

void
snnwb_chart_view_set_probe (SnnwbChartView *self, SnnwbProbe *probe)
{
  g_clear_pointer (&self->probe, snnwb_probe_unref);
  self->probe = probe ? snnwb_probe_ref (probe) : NULL;
  got_data (self);
}

void
snnwb_chart_view_set_lif_index (SnnwbChartView *self, int index)
{
  self->lif_index = MAX (index, 0);
  snnwb_offscreen_invalidate (self->offscreen);
}

void
snnwb_chart_view_set_neurons (SnnwbChartView *self, const int *neurons, int n)
{
  self->n_neurons = MIN (n, (int) G_N_ELEMENTS (self->neurons));
  for (int i = 0; i < self->n_neurons; i++)
    self->neurons[i] = neurons[i];
  snnwb_offscreen_invalidate (self->offscreen);
}

void
snnwb_chart_view_set_epsilon (SnnwbChartView *self, SnnwbEpsilon *eps)
{
  g_clear_pointer (&self->epsilon, snnwb_epsilon_unref);
  self->epsilon = eps ? snnwb_epsilon_ref (eps) : NULL;
  got_data (self);
}

void
snnwb_chart_view_set_runs (SnnwbChartView *self, GPtrArray *runs)
{
  g_clear_pointer (&self->runs, g_ptr_array_unref);
  self->runs = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; runs && i < runs->len; i++)
    g_ptr_array_add (self->runs, g_object_ref (runs->pdata[i]));
  snnwb_offscreen_invalidate (self->offscreen);
}

void
snnwb_chart_view_runs_updated (SnnwbChartView *self)
{
  got_data (self);
}

void
snnwb_chart_view_set_surrogate (SnnwbChartView *self, const SnnLifParams *p)
{
  self->surrogate = *p;
  self->has_surrogate = TRUE;
  got_data (self);
}

guint
snnwb_chart_view_get_n_runs (SnnwbChartView *self)
{
  return self->runs ? self->runs->len : 0;
}

gboolean
snnwb_chart_view_shows_latest (SnnwbChartView *self)
{
  return snnwb_offscreen_is_current (self->offscreen);
}

guint
snnwb_chart_view_get_data_count (SnnwbChartView *self)
{
  return self->data_count;
}

/* Drawing: each view turns its data into one of the viz structs; the same
 * preparation serves the widget, the image export and the CSV export. */

typedef struct {
  VizDrawFunc draw;
  gconstpointer data;
  union {
    VizRaster raster;
    VizTraces traces;
    VizLineChart chart;
    VizHeatmap heatmap;
  } u;
  GArray *series;             /* VizSeries of a line chart */
  GPtrArray *owned;           /* buffers freed with the preparation */
} Prepared;

static gpointer
own (Prepared *p, gpointer mem)
{
  g_ptr_array_add (p->owned, mem);
  return mem;
}

static VizColor *
own_color (Prepared *p, int index)
{
  VizColor *c = own (p, g_new (VizColor, 1));

  *c = viz_style_series_color (viz_style_light (), index);
  return c;
}

static void
add_series (Prepared *p, const double *x, const double *y, int n, const char *label,
            gboolean dashed, gboolean markers, VizColor *color)
{
  VizSeries s = { x, y, n, label ? own (p, g_strdup (label)) : NULL, dashed, markers, color };

  g_array_append_val (p->series, s);
}

static gboolean *
marked_steps (Prepared *p, const SnnwbProbe *probe)
{
  gboolean *marks;

  if (probe->method != SNN_METHOD_SLTT_K || probe->n_k_steps == 0)
    return NULL;
  marks = own (p, g_new0 (gboolean, probe->T));
  for (int i = 0; i < probe->n_k_steps; i++)
    if (probe->k_steps[i] >= 0 && probe->k_steps[i] < probe->T)
      marks[probe->k_steps[i]] = TRUE;
  return marks;
}

static const SnnwbProbeLayer *
probe_layer (SnnwbChartView *self)
{
  if (!self->probe || self->probe->n_layers == 0)
    return NULL;
  return &self->probe->layers[MIN (self->lif_index, self->probe->n_layers - 1)];
}

static void
prepare_raster (SnnwbChartView *self, Prepared *p)
{
  const SnnwbProbeLayer *pl = probe_layer (self);
  VizRaster *r = &p->u.raster;

  p->draw = viz_draw_raster;
  r->show_rate = TRUE;
  r->show_caption = TRUE;
  if (!pl)
    return;
  {
    gsize n = (gsize) self->probe->T * pl->neurons;
    guint8 *spikes = own (p, g_new (guint8, n));

    for (gsize i = 0; i < n; i++)
      spikes[i] = pl->spikes[i] > 0.5f;
    r->spikes = spikes;
    r->n_neurons = pl->neurons;
    r->T = self->probe->T;
    r->marked_steps = marked_steps (p, self->probe);
  }
}

static void
prepare_traces (SnnwbChartView *self, Prepared *p)
{
  const SnnwbProbeLayer *pl = probe_layer (self);
  VizTraces *tr = &p->u.traces;
  int T, n = 0;
  double *u;
  guint8 *spikes;
  int *ids;

  p->draw = viz_draw_traces;
  tr->vth = NAN;
  if (!pl)
    return;
  T = self->probe->T;
  u = own (p, g_new (double, (gsize) T * MAX (self->n_neurons, 1)));
  spikes = own (p, g_new (guint8, (gsize) T * MAX (self->n_neurons, 1)));
  ids = own (p, g_new (int, MAX (self->n_neurons, 1)));
  for (int i = 0; i < self->n_neurons; i++)
    {
      int id = self->neurons[i];

      if (id < 0 || id >= pl->neurons)
        continue;
      for (int t = 0; t < T; t++)
        {
          u[(gsize) n * T + t] = pl->u[(gsize) t * pl->neurons + id];
          spikes[(gsize) n * T + t] = pl->spikes[(gsize) t * pl->neurons + id] > 0.5f;
        }
      ids[n++] = id;
    }
  tr->u = u;
  tr->spikes = spikes;
  tr->n_traces = n;
  tr->T = T;
  tr->vth = pl->vth;
  tr->neuron_ids = ids;
  tr->marked_steps = marked_steps (p, self->probe);
}

static void
prepare_epsilon (SnnwbChartView *self, Prepared *p)
{
  VizHeatmap *h = &p->u.heatmap;
  const SnnwbEpsilonLayer *el;

  p->draw = viz_draw_heatmap;
  h->row_title = "t";
  h->col_title = "t'";
  h->scale_title = "mean product of ε over [t, t')";
  h->fix_range = TRUE;
  h->v_min = 0;
  h->v_max = 1;
  h->square_cells = FALSE;
  if (!self->epsilon || self->epsilon->n_layers == 0)
    return;
  el = &self->epsilon->layers[MIN (self->lif_index, self->epsilon->n_layers - 1)];
  /* A copy: the picture may be drawn on another thread. */
  h->values = own (p, g_memdup2 (el->prod_mean, sizeof (double) * self->epsilon->T * self->epsilon->T));
  h->rows = h->cols = self->epsilon->T;
  h->show_values = self->epsilon->T <= 8;
  if (self->epsilon->tau_override > 0)
    h->title = own (p, g_strdup_printf ("iteration %ld · what-if τ %.2f", self->epsilon->iter + 1,
                                        self->epsilon->tau_override));
  else
    h->title = own (p, g_strdup_printf ("iteration %ld · gradient cosine %.3f", self->epsilon->iter + 1,
                                        self->epsilon->cosine_mean));
}

/* A trailing mean: per-iteration values are noisy. */
static double *
smooth (Prepared *p, const SnnwbIterRecord *it, guint n, gsize offset, int window)
{
  double *out = own (p, g_new (double, MAX (n, 1)));
  double sum = 0;

  for (guint i = 0; i < n; i++)
    {
      sum += G_STRUCT_MEMBER (double, &it[i], offset);
      if (i >= (guint) window)
        sum -= G_STRUCT_MEMBER (double, &it[i - window], offset);
      out[i] = sum / MIN (i + 1, (guint) window);
    }
  return out;
}

static double *
column (Prepared *p, const SnnwbIterRecord *it, guint n, gsize offset, double scale)
{
  double *out = own (p, g_new (double, MAX (n, 1)));

  for (guint i = 0; i < n; i++)
    out[i] = G_STRUCT_MEMBER (double, &it[i], offset) * scale;
  return out;
}

static double *
percent (Prepared *p, double *values, guint n)
{
  for (guint i = 0; i < n; i++)
    values[i] *= 100;
  return values;
}

static void
prepare_run_series (SnnwbChartView *self, Prepared *p, SnnwbRun *run, gboolean several)
{
  guint n, n_ep;
  const SnnwbIterRecord *it = snnwb_run_get_iters (run, &n);
  const SnnwbEpochRecord *ep = snnwb_run_get_epochs (run, &n_ep);
  VizColor *color = own_color (p, snnwb_run_get_color_index (run));
  double *x = own (p, g_new (double, MAX (n, 1)));
  const char *name = snnwb_run_get_name (run);
  g_autofree char *short_name = g_strdup_printf ("Run %d", snnwb_run_get_color_index (run) + 1);
  const char *who = several ? short_name : NULL;
#define LABEL(what) (who ? own (p, g_strdup_printf ("%s %s", who, what)) : (what))

  for (guint i = 0; i < n; i++)
    x[i] = it[i].iter + 1;
  switch (self->kind)
    {
    case SNNWB_CHART_LOSS:
      add_series (p, x, column (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, loss), 1), n,
                  several ? name : NULL, FALSE, FALSE, color);
      break;
    case SNNWB_CHART_ACCURACY:
      {
        double *ex = own (p, g_new (double, MAX (n_ep, 1))), *ey = own (p, g_new (double, MAX (n_ep, 1)));

        for (guint i = 0; i < n_ep; i++)
          {
            ex[i] = ep[i].end_iter + 1;
            ey[i] = ep[i].test_acc * 100;
          }
        add_series (p, x, percent (p, smooth (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, acc), 20), n),
                    n, LABEL ("train"), FALSE, FALSE, color);
        add_series (p, ex, ey, n_ep, LABEL ("test"), TRUE, TRUE, color);
      }
      break;
    case SNNWB_CHART_MEMORY:
      add_series (p, x, column (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, held_bytes), 1.0 / (1 << 20)), n,
                  LABEL ("held for backward"), FALSE, FALSE, color);
      add_series (p, x, column (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, process_peak_bytes), 1.0 / (1 << 20)),
                  n, LABEL ("process peak"), TRUE, FALSE, color);
      break;
    case SNNWB_CHART_TIME:
      add_series (p, x, smooth (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, forward_ms), 20), n,
                  LABEL ("forward"), TRUE, FALSE, color);
      add_series (p, x, smooth (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, backward_ms), 20), n,
                  LABEL ("backward"), FALSE, FALSE, color);
      break;
    default:
      break;
    }
#undef LABEL
}

static void
prepare_runs (SnnwbChartView *self, Prepared *p)
{
  static const char *const y_titles[] = { "loss", "accuracy (%)", "MiB (log scale)", "ms per iteration" };
  VizLineChart *c = &p->u.chart;
  guint n_runs = self->runs ? self->runs->len : 0;

  p->draw = viz_draw_line_chart;
  for (guint i = 0; i < n_runs; i++)
    prepare_run_series (self, p, self->runs->pdata[i], n_runs > 1);
  c->series = (const VizSeries *) p->series->data;
  c->n_series = p->series->len;
  c->x_title = "iteration";
  c->y_title = y_titles[self->kind - SNNWB_CHART_LOSS];
  c->x_integer = TRUE;
  c->log_y = self->kind == SNNWB_CHART_MEMORY;
  if (self->kind == SNNWB_CHART_ACCURACY)
    {
      c->fix_y = TRUE;
      c->y_min = 0;
      c->y_max = 100;
    }
}

static void
prepare_surrogate (SnnwbChartView *self, Prepared *p)
{
  enum { N = 201 };
  VizLineChart *c = &p->u.chart;
  double *xs = own (p, g_new (double, N)), *ys = own (p, g_new (double, N));
  double span = 2.0 * MAX (self->surrogate.vth, 0.5f);

  p->draw = viz_draw_line_chart;
  c->x_title = "u − Vth";
  c->y_title = "∂s/∂u";
  if (!self->has_surrogate)
    return;
  snn_surrogate_curve (&self->surrogate, -span, span, N, xs, ys);
  add_series (p, xs, ys, N, NULL, FALSE, FALSE, NULL);
  c->series = (const VizSeries *) p->series->data;
  c->n_series = p->series->len;
}

static void
prepare (SnnwbChartView *self, Prepared *p)
{
  memset (p, 0, sizeof *p);
  p->owned = g_ptr_array_new_with_free_func (g_free);
  p->series = g_array_new (FALSE, TRUE, sizeof (VizSeries));
  switch (self->kind)
    {
    case SNNWB_CHART_RASTER:
      prepare_raster (self, p);
      break;
    case SNNWB_CHART_TRACES:
      prepare_traces (self, p);
      break;
    case SNNWB_CHART_EPSILON:
      prepare_epsilon (self, p);
      break;
    case SNNWB_CHART_SURROGATE:
      prepare_surrogate (self, p);
      break;
    default:
      prepare_runs (self, p);
      break;
    }
  p->data = &p->u;
}

static void
prepared_clear (Prepared *p)
{
  g_ptr_array_unref (p->owned);
  g_array_unref (p->series);
}

/* The offscreen's jobs: a preparation owns everything it points to. */
static gpointer
prepare_job (gpointer owner)
{
  Prepared *p = g_new (Prepared, 1);

  prepare (owner, p);
  return p;
}

static void
paint_job (gpointer job, cairo_t *cr, int width, int height)
{
  Prepared *p = job;

  p->draw (cr, width, height, p->data, viz_style_light ());
}

static void
free_job (gpointer job)
{
  prepared_clear (job);
  g_free (job);
}

void
snnwb_chart_view_run_color (int index, GdkRGBA *color)
{
  VizColor c = viz_style_series_color (viz_style_light (), index);

  *color = (GdkRGBA) { c.r, c.g, c.b, c.a };
}

gboolean
snnwb_chart_view_has_data (SnnwbChartView *self)
{
  switch (self->kind)
    {
    case SNNWB_CHART_RASTER:
    case SNNWB_CHART_TRACES:
      return self->probe && self->probe->n_layers > 0;
    case SNNWB_CHART_EPSILON:
      return self->epsilon && self->epsilon->n_layers > 0;
    case SNNWB_CHART_SURROGATE:
      return self->has_surrogate;
    default:
      for (guint i = 0; self->runs && i < self->runs->len; i++)
        {
          guint n;

          snnwb_run_get_iters (self->runs->pdata[i], &n);
          if (n > 0)
            return TRUE;
        }
      return FALSE;
    }
}

gboolean
snnwb_chart_view_export (SnnwbChartView *self, const char *path, GError **error)
{
  int w = MAX (gtk_widget_get_width (GTK_WIDGET (self)), 800);
  int h = MAX (gtk_widget_get_height (GTK_WIDGET (self)), 500);
  Prepared p;
  gboolean ok;

  prepare (self, &p);
  ok = viz_export (path, w, h, p.draw, p.data, viz_style_light (), error);
  prepared_clear (&p);
  return ok;
}

gboolean
snnwb_chart_view_export_csv (SnnwbChartView *self, const char *path, GError **error)
{
  Prepared p;
  gboolean ok;

  if (self->kind < SNNWB_CHART_LOSS || self->kind > SNNWB_CHART_TIME)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "%s: only curves can be exported as CSV", path);
      return FALSE;
    }
  prepare (self, &p);
  ok = viz_series_write_csv (path, (const VizSeries *) p.series->data, p.series->len, "iteration", error);
  prepared_clear (&p);
  return ok;
}
