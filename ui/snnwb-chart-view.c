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

  gboolean hovering;
  double hover_x, hover_y;
  char *readout;
  int zoom_first, zoom_count;  /* raster neurons shown; count 0: all */
  int traced[16];              /* traces in the latest preparation */
  int n_traced;
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

enum { NEURON_PICKED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void draw_readout (SnnwbChartView *self, cairo_t *cr, int width, int height);

static gpointer prepare_job (gpointer owner);
static void     add_controllers (SnnwbChartView *self);
static void     paint_job (gpointer job, cairo_t *cr, int width, int height);
static void     free_job (gpointer job);

static void
draw_cb (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  SnnwbChartView *self = SNNWB_CHART_VIEW (area);

  snnwb_offscreen_draw (self->offscreen, cr, width, height);
  draw_readout (self, cr, width, height);
}

static void
snnwb_chart_view_finalize (GObject *object)
{
  SnnwbChartView *self = SNNWB_CHART_VIEW (object);

  g_clear_pointer (&self->offscreen, snnwb_offscreen_free);
  g_clear_pointer (&self->probe, snnwb_probe_unref);
  g_clear_pointer (&self->epsilon, snnwb_epsilon_unref);
  g_clear_pointer (&self->runs, g_ptr_array_unref);
  g_clear_pointer (&self->readout, g_free);
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
  /* The raster was clicked on this neuron. */
  signals[NEURON_PICKED] = g_signal_new ("neuron-picked", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT);
  gtk_widget_class_set_css_name (GTK_WIDGET_CLASS (klass), "chartview");
}

static void
snnwb_chart_view_init (SnnwbChartView *self)
{
  gtk_drawing_area_set_draw_func (GTK_DRAWING_AREA (self), draw_cb, NULL, NULL);
  self->offscreen = snnwb_offscreen_new (GTK_WIDGET (self), prepare_job, paint_job, free_job, self);
  add_controllers (self);
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

/* The style the views draw with: the light style, or the same with larger
 * lettering in presentation mode. Two fixed styles and an atomic choice,
 * as the render thread reads it while the main thread may switch. */
static VizStyle view_styles[2];
static gint view_style_large;

static void
init_view_styles (void)
{
  static gsize done;
  if (g_once_init_enter (&done))
    {
      view_styles[0] = view_styles[1] = *viz_style_light ();
      view_styles[1].font_size *= 1.4;
      g_once_init_leave (&done, 1);
    }
}

const VizStyle *
snnwb_view_style (void)
{
  init_view_styles ();
  return &view_styles[g_atomic_int_get (&view_style_large) ? 1 : 0];
}

void
snnwb_view_style_set_large (gboolean large)
{
  init_view_styles ();
  g_atomic_int_set (&view_style_large, large ? 1 : 0);
}

void
snnwb_chart_view_restyle (SnnwbChartView *self)
{
  snnwb_offscreen_invalidate (self->offscreen);
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
  GArray *info;               /* SeriesInfo per series, for the read-out */
  GArray *legend;             /* VizLegendEntry */
  GArray *marks;              /* VizMark */
  GPtrArray *owned;           /* buffers freed with the preparation */
} Prepared;

/* What a series shows, for the hover read-out. */
typedef struct {
  SnnwbRun *run;              /* NULL: not a run's */
  const char *what;
  const char *unit;
} SeriesInfo;

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

  *c = viz_style_series_color (snnwb_view_style (), index);
  return c;
}

static void
add_series_info (Prepared *p, const double *x, const double *y, int n, const char *label,
                 gboolean dashed, gboolean markers, VizColor *color, SnnwbRun *run,
                 const char *what, const char *unit)
{
  VizSeries s = { x, y, n, label ? own (p, g_strdup (label)) : NULL, dashed, markers, color };
  SeriesInfo info = { run, what, unit };

  g_array_append_val (p->series, s);
  g_array_append_val (p->info, info);
}

static void
add_series (Prepared *p, const double *x, const double *y, int n, const char *label,
            gboolean dashed, gboolean markers, VizColor *color)
{
  add_series_info (p, x, y, n, label, dashed, markers, color, NULL, label, "");
}

static void
add_legend (Prepared *p, char *label, const VizColor *color, gboolean dashed)
{
  VizLegendEntry e = { own (p, label), color, dashed };

  g_array_append_val (p->legend, e);
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
    int T = self->probe->T;
    int first = CLAMP (self->zoom_first, 0, pl->neurons - 1);
    int count = self->zoom_count > 0 ? MIN (self->zoom_count, pl->neurons - first) : pl->neurons - first;
    guint8 *spikes = own (p, g_new (guint8, (gsize) T * count));

    for (int t = 0; t < T; t++)
      for (int i = 0; i < count; i++)
        spikes[(gsize) t * count + i] = pl->spikes[(gsize) t * pl->neurons + first + i] > 0.5f;
    r->spikes = spikes;
    r->n_neurons = count;
    r->neuron_first = first;
    r->T = T;
    r->marked_steps = marked_steps (p, self->probe);
    if (count < pl->neurons)
      r->title = own (p, g_strdup_printf ("neurons %d–%d of %d", first, first + count - 1,
                                          pl->neurons));
  }
}

/* Up to four neurons that fire, from the busiest down through the
 * quieter ones, so the traces show different behaviour; silent neurons
 * (a corner of an image) only when too few fire. */
static int
firing_neurons (const SnnwbProbeLayer *pl, int T, int *out, int max)
{
  g_autofree int *count = g_new0 (int, pl->neurons);
  g_autofree int *order = g_new (int, pl->neurons);
  int n_firing = 0, n = 0;

  for (int t = 0; t < T; t++)
    for (int i = 0; i < pl->neurons; i++)
      count[i] += pl->spikes[(gsize) t * pl->neurons + i] > 0.5f;
  /* Most spikes first, ties by index: a counting sort on the spike count
   * (at most T), as a large layer has tens of thousands of neurons firing. */
  g_autofree int *start = g_new0 (int, T + 2);
  for (int i = 0; i < pl->neurons; i++)
    if (count[i] > 0)
      start[T - MIN (count[i], T) + 1]++, n_firing++;
  for (int c = 1; c <= T + 1; c++)
    start[c] += start[c - 1];
  for (int i = 0; i < pl->neurons; i++)
    if (count[i] > 0)
      order[start[T - MIN (count[i], T)]++] = i;
  for (int k = 0; k < max && k < n_firing; k++)
    out[n++] = order[(gint64) k * n_firing / MIN (max, n_firing)];
  for (int i = 0; n < max && i < pl->neurons; i++)
    if (count[i] == 0)
      out[n++] = i;
  return n;
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
  tr->y_title = "membrane u";
  if (!pl)
    return;
  T = self->probe->T;
  {
    int want[16], n_want = self->n_neurons;

    memcpy (want, self->neurons, sizeof want);
    if (n_want == 0)
      n_want = firing_neurons (pl, T, want, 4);
  u = own (p, g_new (double, (gsize) T * MAX (n_want, 1)));
  spikes = own (p, g_new (guint8, (gsize) T * MAX (n_want, 1)));
  ids = own (p, g_new (int, MAX (n_want, 1)));
  for (int i = 0; i < n_want; i++)
    {
      int id = want[i];

      if (id < 0 || id >= pl->neurons)
        continue;
      for (int t = 0; t < T; t++)
        {
          u[(gsize) n * T + t] = pl->u[(gsize) t * pl->neurons + id];
          spikes[(gsize) n * T + t] = pl->spikes[(gsize) t * pl->neurons + id] > 0.5f;
        }
      ids[n++] = id;
    }
  }
  memcpy (self->traced, ids, sizeof (int) * n);
  self->n_traced = n;
  tr->y_title = "membrane u";
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

/* "SLTT → BPTT (stored)": every method the run trained with. */
static char *
methods_text (SnnwbRun *run)
{
  guint n;
  const SnnwbMethodChange *h = snnwb_run_get_method_history (run, &n);
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < n; i++)
    {
      if (i > 0 && n > 3 && i < n - 1)
        {
          if (i == 1)
            g_string_append (s, " → …");
          continue;
        }
      g_string_append_printf (s, "%s%s", i ? " → " : "", h[i].label);
    }
  return g_string_free (s, FALSE);
}

/* The method a run trained iteration `iter` (0-based) with. */
static const char *
method_at (SnnwbRun *run, long iter)
{
  guint n;
  const SnnwbMethodChange *h = snnwb_run_get_method_history (run, &n);
  const char *label = n ? h[0].label : "";

  for (guint i = 0; i < n; i++)
    if (h[i].iter <= iter)
      label = h[i].label;
  return label;
}

/* Where the method changed: a dashed line in the run's colour. */
static void
add_method_marks (Prepared *p, SnnwbRun *run, VizColor *color)
{
  guint n;
  const SnnwbMethodChange *h = snnwb_run_get_method_history (run, &n);

  for (guint i = 1; i < n; i++)
    {
      VizMark m = { h[i].iter + 1, own (p, g_strdup_printf ("→ %s", h[i].label)), color };

      g_array_append_val (p->marks, m);
    }
}

/* Per run: a solid and, for two quantities, a dashed series in the run's
 * colour. The legend names each run with its methods and, apart, what the
 * solid and dashed lines are, so it stays short with many runs. */
static void
prepare_run_series (SnnwbChartView *self, Prepared *p, SnnwbRun *run, const char *common)
{
  guint n, n_ep;
  const SnnwbIterRecord *it = snnwb_run_get_iters (run, &n);
  const SnnwbEpochRecord *ep = snnwb_run_get_epochs (run, &n_ep);
  VizColor *color = own_color (p, snnwb_run_get_color_index (run));
  double *x = own (p, g_new (double, MAX (n, 1)));
  const char *who = snnwb_run_get_name (run);
#define LABEL(what) own (p, g_strdup_printf ("%s %s", who, what))

  for (guint i = 0; i < n; i++)
    x[i] = it[i].iter + 1;
  {
    /* "Run 2 · conv-small" reads "Run 2" when every run shown is conv-small. */
    g_autofree char *suffix = common ? g_strdup_printf (" · %s", common) : NULL;
    g_autofree char *name = g_strdup (who);

    if (suffix && g_str_has_suffix (name, suffix))
      name[strlen (name) - strlen (suffix)] = '\0';
    add_legend (p, g_strdup_printf ("%s · %s", name, (char *) own (p, methods_text (run))), color, FALSE);
  }
  add_method_marks (p, run, color);
  switch (self->kind)
    {
    case SNNWB_CHART_LOSS:
      add_series_info (p, x, column (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, loss), 1), n,
                       LABEL ("loss"), FALSE, FALSE, color, run, "loss", "");
      break;
    case SNNWB_CHART_ACCURACY:
      {
        double *ex = own (p, g_new (double, MAX (n_ep, 1))), *ey = own (p, g_new (double, MAX (n_ep, 1)));

        for (guint i = 0; i < n_ep; i++)
          {
            ex[i] = ep[i].end_iter + 1;
            ey[i] = ep[i].test_acc * 100;
          }
        add_series_info (p, x, percent (p, smooth (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, acc), 20), n),
                         n, LABEL ("train"), FALSE, FALSE, color, run, "train (mean of 20)", "%");
        add_series_info (p, ex, ey, n_ep, LABEL ("test"), TRUE, TRUE, color, run, "test", "%");
      }
      break;
    case SNNWB_CHART_MEMORY:
      add_series_info (p, x, column (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, held_bytes), 1.0 / (1 << 20)), n,
                       LABEL ("held for backward"), FALSE, FALSE, color, run, "held for backward", "MiB");
      add_series_info (p, x, column (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, arena_bytes), 1.0 / (1 << 20)),
                       n, LABEL ("arena"), TRUE, FALSE, color, run, "arena (working memory)", "MiB");
      break;
    case SNNWB_CHART_TIME:
      add_series_info (p, x, smooth (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, backward_ms), 20), n,
                       LABEL ("backward"), FALSE, FALSE, color, run, "backward (mean of 20)", "ms");
      add_series_info (p, x, smooth (p, it, n, G_STRUCT_OFFSET (SnnwbIterRecord, forward_ms), 20), n,
                       LABEL ("forward"), TRUE, FALSE, color, run, "forward (mean of 20)", "ms");
      break;
    default:
      break;
    }
#undef LABEL
}

static void
prepare_runs (SnnwbChartView *self, Prepared *p)
{
  static const char *const y_titles[] = { "loss", "accuracy (%)", "MiB (log scale)", "ms / iteration" };
  static const char *const solid[] = { NULL, "train", "held", "backward" };
  static const char *const dashed[] = { NULL, "test (per epoch)", "arena", "forward" };
  VizLineChart *c = &p->u.chart;
  guint n_runs = self->runs ? self->runs->len : 0;
  int k = self->kind - SNNWB_CHART_LOSS;

  const char *common = NULL;

  p->draw = viz_draw_line_chart;
  for (guint i = 0; i < n_runs; i++)
    {
      const char *name = snnwb_run_get_experiment (self->runs->pdata[i])->name;

      common = i == 0 ? name : (common && name && g_str_equal (common, name) ? common : NULL);
    }
  for (guint i = 0; i < n_runs; i++)
    prepare_run_series (self, p, self->runs->pdata[i], n_runs > 1 ? common : NULL);
  if (n_runs > 0 && solid[k])
    {
      static const VizColor grey = { 0.36, 0.39, 0.43, 1 };

      add_legend (p, g_strdup (solid[k]), &grey, FALSE);
      add_legend (p, g_strdup (dashed[k]), &grey, TRUE);
    }
  c->series = (const VizSeries *) p->series->data;
  c->n_series = p->series->len;
  c->legend = (const VizLegendEntry *) p->legend->data;
  c->n_legend = p->legend->len;
  c->marks = (const VizMark *) p->marks->data;
  c->n_marks = p->marks->len;
  c->x_title = "iteration";
  c->y_title = y_titles[k];
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
  p->info = g_array_new (FALSE, TRUE, sizeof (SeriesInfo));
  p->legend = g_array_new (FALSE, TRUE, sizeof (VizLegendEntry));
  p->marks = g_array_new (FALSE, TRUE, sizeof (VizMark));
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
  g_array_unref (p->info);
  g_array_unref (p->legend);
  g_array_unref (p->marks);
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

  p->draw (cr, width, height, p->data, snnwb_view_style ());
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
  VizColor c = viz_style_series_color (snnwb_view_style (), index);

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
  ok = viz_export (path, w, h, p.draw, p.data, viz_style_light (), error); /* files keep the normal size */
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

/* What each view is: shown by its info button. */

static const char *const info_markup[] = {
  [SNNWB_CHART_RASTER] =
    "<b>Spike raster</b> of one probed sample, for the LIF layer picked above.\n"
    "A mark at (t, i) means neuron i fired at time step t: s<sub>i</sub>[t] = H(u<sub>i</sub>[t] − V<sub>th</sub>) = 1.\n"
    "With more neurons than pixel rows, each row is shaded by the share of its\n"
    "neurons that fired (darkest: the busiest row), not painted solid.\n"
    "Side panel: firing rate per neuron, spikes / T. Shaded columns: the steps SLTT-K\n"
    "backpropagates.\n\n"
    "<b>Click</b> a neuron to trace it. <b>Scroll</b> to zoom into the neurons,\n"
    "<b>double-click</b> to show the whole layer.\n"
    "Units: none (spikes are 0 or 1; rates are spikes per step).",
  [SNNWB_CHART_TRACES] =
    "<b>Membrane potential</b> u[t] of the traced neurons, before the reset (Eq. 3):\n"
    "u[t] = (1 − 1/τ)(u[t−1] − V<sub>th</sub> s[t−1]) + W s<sup>l−1</sup>[t]\n"
    "Dotted line: the threshold V<sub>th</sub>; dots: spikes (u crossed V<sub>th</sub>).\n"
    "With no neurons entered, the traces show neurons that fire, from the busiest\n"
    "down. Click the raster to add one.\n"
    "Units: those of the input current (dimensionless); t in time steps.",
  [SNNWB_CHART_EPSILON] =
    "<b>ε heat map</b>: how much of ∂L/∂u[t'] still reaches u[t] through time.\n"
    "ε[t] = ∂u[t+1]/∂u[t] + ∂u[t+1]/∂s[t] · ∂s[t]/∂u[t]   (Eq. 8)\n"
    "Cell (t, t'): the mean over neurons and the batch of ∏ ε over [t, t'), the factor\n"
    "of the temporal terms of Eq. 9–10.\n"
    "With the rectangle surrogate (width V<sub>th</sub>), ε is 0 for ½V<sub>th</sub> &lt; u &lt; 3⁄2V<sub>th</sub> and\n"
    "1 − 1/τ otherwise (Eq. 11): the products fade fast, which is why SLTT can drop\n"
    "the temporal part. Small τ: darker, faster fading.\n"
    "Units: none (a ratio, 0 to 1).",
  [SNNWB_CHART_LOSS] =
    "<b>Training loss</b> of each batch, per iteration, for every run shown.\n"
    "L = (1/T) Σ<sub>t</sub> ℓ(o[t], y): the loss at each step, averaged over the T steps.\n"
    "Legend: each run with the methods it trained with; dashed vertical lines\n"
    "mark where a run's method changed. Hover for the values.\n"
    "Units: none.",
  [SNNWB_CHART_ACCURACY] =
    "<b>Accuracy</b>: solid, the training batches (mean of the last 20);\n"
    "dashed with dots, the test set at the end of each epoch.\n"
    "A sample is right when its output summed over the T steps picks its class.\n"
    "Dashed vertical lines mark where a run's method changed.\n"
    "Units: per cent.",
  [SNNWB_CHART_MEMORY] =
    "<b>Memory</b> per iteration, on a log scale, two figures per run:\n"
    "solid, the bytes <b>held for backward</b> (what backpropagation keeps from the\n"
    "forward pass: BPTT over all T steps, SLTT over one step);\n"
    "dashed, the <b>arena</b>: the whole working memory of a training step\n"
    "(activations, gradients and scratch), allocated once up front.\n"
    "BPTT with Recompute keeps only spike bits for backward but still works on all\n"
    "T steps at once, so its arena grows with T; SLTT's does not.\n"
    "Units: MiB (2<sup>20</sup> bytes).",
  [SNNWB_CHART_TIME] =
    "<b>Time</b> per iteration: solid, backward; dashed, forward\n"
    "(each the mean of the last 20 iterations).\n"
    "SLTT-K backpropagates only K of the T steps, so its backward is shorter.\n"
    "Dashed vertical lines mark where a run's method changed.\n"
    "Units: milliseconds.",
  [SNNWB_CHART_SURROGATE] =
    "<b>Surrogate derivative</b> ∂s/∂u used in backward in place of the\n"
    "Heaviside step's derivative, against u − V<sub>th</sub>.\n"
    "Units: per unit of u.",
};

const char *
snnwb_chart_view_info_markup (SnnwbChartKind kind)
{
  return kind < G_N_ELEMENTS (info_markup) ? info_markup[kind] : "";
}

GtkWidget *
snnwb_chart_view_make_info_button (SnnwbChartKind kind)
{
  return snnwb_info_button_new (snnwb_chart_view_info_markup (kind));
}

GtkWidget *
snnwb_info_button_new (const char *markup)
{
  GtkWidget *button = gtk_menu_button_new ();
  GtkWidget *popover = gtk_popover_new ();
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_markup (GTK_LABEL (label), markup);
  gtk_label_set_selectable (GTK_LABEL (label), FALSE);
  gtk_widget_set_margin_start (label, 6);
  gtk_widget_set_margin_end (label, 6);
  gtk_widget_set_margin_top (label, 6);
  gtk_widget_set_margin_bottom (label, 6);
  gtk_popover_set_child (GTK_POPOVER (popover), label);
  gtk_menu_button_set_popover (GTK_MENU_BUTTON (button), popover);
  gtk_menu_button_set_icon_name (GTK_MENU_BUTTON (button), "dialog-information-symbolic");
  gtk_menu_button_set_has_frame (GTK_MENU_BUTTON (button), FALSE);
  gtk_widget_set_tooltip_text (button, "What this view shows");
  gtk_widget_add_css_class (button, "view-info");
  return button;
}

/* Hover read-outs: the view is prepared again on the main thread (cheap
 * next to drawing) and what lies under the pointer is written out. */

static void
format_value (GString *s, double v, const char *unit)
{
  if (!isfinite (v))
    g_string_append (s, "—");
  else if (fabs (v) >= 100 || v == 0)
    g_string_append_printf (s, "%.1f", v);
  else
    g_string_append_printf (s, "%.3g", v);
  if (unit && *unit)
    g_string_append_printf (s, g_str_equal (unit, "%") ? "%s" : " %s", unit);
}

/* "Run 2 · conv-small" without its experiment's name: "Run 2". */
static char *
short_run_name (SnnwbRun *run)
{
  const char *exp = snnwb_run_get_experiment (run)->name;
  g_autofree char *suffix = exp ? g_strdup_printf (" · %s", exp) : NULL;
  char *name = g_strdup (snnwb_run_get_name (run));

  if (suffix && g_str_has_suffix (name, suffix) && strlen (name) > strlen (suffix))
    name[strlen (name) - strlen (suffix)] = '\0';
  return name;
}

static char *
readout_chart (SnnwbChartView *self, Prepared *p, int w, int h)
{
  VizPlotMap map;
  GString *s;
  double x;
  int lines = 0;
  SnnwbRun *last_run = NULL;

  if (!viz_line_chart_layout (w, h, &p->u.chart, snnwb_view_style (), &map)
      || self->hover_x < map.area.x || self->hover_x > map.area.x + map.area.width
      || self->hover_y < map.area.y || self->hover_y > map.area.y + map.area.height)
    return NULL;
  x = viz_plot_map_unx (&map, self->hover_x);
  s = g_string_new (NULL);
  if (self->kind == SNNWB_CHART_SURROGATE)
    g_string_append_printf (s, "u − Vth %.3f", x);
  else
    g_string_append_printf (s, "iteration %.0f", round (x));
  for (guint k = 0; k < p->series->len && lines < 10; k++)
    {
      const VizSeries *ser = &g_array_index (p->series, VizSeries, k);
      const SeriesInfo *info = &g_array_index (p->info, SeriesInfo, k);
      int i = viz_series_nearest (ser, x);
      double sx;

      if (i < 0)
        continue;
      sx = ser->x ? ser->x[i] : i;
      /* Points further than a few pixels away belong to another stretch. */
      if (fabs (viz_plot_map_x (&map, sx) - self->hover_x) > 12)
        continue;
      /* A line per run (its method at that iteration), then its figures:
       * short lines fit a small view. */
      if (info->run && info->run != last_run)
        {
          g_autofree char *name = short_run_name (info->run);

          g_string_append_printf (s, "\n%s · %s", name, method_at (info->run, (long) sx - 1));
          last_run = info->run;
        }
      g_string_append_printf (s, "\n%s%s: ", info->run ? "  " : "", info->what ? info->what : "value");
      format_value (s, ser->y[i], info->unit);
      lines++;
    }
  if (lines == 0)
    return g_string_free (s, TRUE), NULL;
  return g_string_free (s, FALSE);
}

static char *
readout_raster (SnnwbChartView *self, Prepared *p, int w, int h)
{
  const VizRaster *r = &p->u.raster;
  VizRect c0, c1;
  int t, i, fired = 0;

  if (!r->spikes || !viz_raster_cell_rect (w, h, r, snnwb_view_style (), 0, 0, &c0)
      || !viz_raster_cell_rect (w, h, r, snnwb_view_style (), r->T - 1, r->n_neurons - 1, &c1))
    return NULL;
  t = (int) floor ((self->hover_x - c0.x) / ((c1.x + c1.width - c0.x) / r->T));
  i = (int) floor ((c0.y + c0.height - self->hover_y) / ((c0.y + c0.height - c1.y) / r->n_neurons));
  if (t < 0 || t >= r->T || i < 0 || i >= r->n_neurons)
    return NULL;
  for (int k = 0; k < r->T; k++)
    fired += r->spikes[(gsize) k * r->n_neurons + i] != 0;
  return g_strdup_printf ("neuron %d · t %d\n%s at t %d · rate %.2f (%d of %d steps)\nclick to trace it",
                          r->neuron_first + i, t, r->spikes[(gsize) t * r->n_neurons + i] ? "spike" : "no spike",
                          t, (double) fired / r->T, fired, r->T);
}

static char *
readout_traces (SnnwbChartView *self, Prepared *p, int w, int h)
{
  const VizTraces *tr = &p->u.traces;
  VizPlotMap map;
  GString *s;
  int t;

  if (!tr->u || !viz_traces_layout (w, h, tr, snnwb_view_style (), &map)
      || self->hover_x < map.area.x || self->hover_x > map.area.x + map.area.width)
    return NULL;
  t = (int) round (viz_plot_map_unx (&map, self->hover_x));
  if (t < 0 || t >= tr->T)
    return NULL;
  s = g_string_new (NULL);
  g_string_append_printf (s, "t %d · Vth %.2f", t, tr->vth);
  for (int k = 0; k < tr->n_traces; k++)
    g_string_append_printf (s, "\nneuron %d: u %.3f%s", tr->neuron_ids[k], tr->u[(gsize) k * tr->T + t],
                            tr->spikes && tr->spikes[(gsize) k * tr->T + t] ? " · spike" : "");
  return g_string_free (s, FALSE);
}

static char *
readout_heatmap (SnnwbChartView *self, Prepared *p, int w, int h)
{
  const VizHeatmap *hm = &p->u.heatmap;
  VizRect c0, c1;
  int row, col;
  double v;

  if (!hm->values || !viz_heatmap_cell_rect (w, h, hm, snnwb_view_style (), 0, 0, &c0)
      || !viz_heatmap_cell_rect (w, h, hm, snnwb_view_style (), hm->rows - 1, hm->cols - 1, &c1))
    return NULL;
  col = (int) floor ((self->hover_x - c0.x) / ((c1.x + c1.width - c0.x) / hm->cols));
  row = (int) floor ((self->hover_y - c0.y) / ((c1.y + c1.height - c0.y) / hm->rows));
  if (row < 0 || row >= hm->rows || col < 0 || col >= hm->cols)
    return NULL;
  v = hm->values[(gsize) row * hm->cols + col];
  if (!isfinite (v))
    return g_strdup_printf ("t %d · t' %d\nno value (t' ≤ t)", row, col);
  return g_strdup_printf ("t %d · t' %d\nmean ∏ ε over [%d, %d): %.3f", row, col, row, col, v);
}

static char *
make_readout (SnnwbChartView *self)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self)), h = gtk_widget_get_height (GTK_WIDGET (self));
  Prepared p;
  char *text = NULL;

  if (w <= 0 || h <= 0 || !snnwb_chart_view_has_data (self))
    return NULL;
  prepare (self, &p);
  switch (self->kind)
    {
    case SNNWB_CHART_RASTER:
      text = readout_raster (self, &p, w, h);
      break;
    case SNNWB_CHART_TRACES:
      text = readout_traces (self, &p, w, h);
      break;
    case SNNWB_CHART_EPSILON:
      text = readout_heatmap (self, &p, w, h);
      break;
    default:
      text = readout_chart (self, &p, w, h);
      break;
    }
  prepared_clear (&p);
  return text;
}

void
snnwb_chart_view_hover (SnnwbChartView *self, double x, double y)
{
  self->hovering = TRUE;
  self->hover_x = x;
  self->hover_y = y;
  g_free (self->readout);
  self->readout = make_readout (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
snnwb_chart_view_leave (SnnwbChartView *self)
{
  self->hovering = FALSE;
  g_clear_pointer (&self->readout, g_free);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

const char *
snnwb_chart_view_get_readout (SnnwbChartView *self)
{
  return self->readout;
}

static void
draw_readout (SnnwbChartView *self, cairo_t *cr, int width, int height)
{
  VizPlotMap map;
  gboolean line = FALSE;

  if (!self->hovering || !self->readout)
    return;
  if (self->kind >= SNNWB_CHART_LOSS && self->kind != SNNWB_CHART_EPSILON)
    {
      /* Only the frame's geometry is needed: an empty chart of the same
       * kind would lay out differently, so take the plot from a prepared one. */
      Prepared p;

      prepare (self, &p);
      line = viz_line_chart_layout (width, height, &p.u.chart, snnwb_view_style (), &map);
      prepared_clear (&p);
    }
  viz_draw_readout (cr, width, height, snnwb_view_style (), line ? &map.area : NULL,
                    self->hover_x, self->hover_y, self->readout);
}

static void
motion_cb (GtkEventControllerMotion *c, double x, double y, SnnwbChartView *self)
{
  snnwb_chart_view_hover (self, x, y);
}

static void
leave_cb (GtkEventControllerMotion *c, SnnwbChartView *self)
{
  snnwb_chart_view_leave (self);
}

/* The raster neuron under (x, y), or -1. */
static int
raster_neuron_at (SnnwbChartView *self, double x, double y)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self)), h = gtk_widget_get_height (GTK_WIDGET (self));
  Prepared p;
  VizRect c0, c1;
  int i = -1;

  prepare (self, &p);
  if (p.u.raster.spikes && viz_raster_cell_rect (w, h, &p.u.raster, snnwb_view_style (), 0, 0, &c0)
      && viz_raster_cell_rect (w, h, &p.u.raster, snnwb_view_style (), p.u.raster.T - 1, p.u.raster.n_neurons - 1, &c1)
      && x >= c0.x && x <= c1.x + c1.width)
    {
      int n = p.u.raster.n_neurons;

      i = (int) floor ((c0.y + c0.height - y) / ((c0.y + c0.height - c1.y) / n));
      i = i >= 0 && i < n ? p.u.raster.neuron_first + i : -1;
    }
  prepared_clear (&p);
  return i;
}

void
snnwb_chart_view_pick (SnnwbChartView *self, double x, double y)
{
  int i = self->kind == SNNWB_CHART_RASTER ? raster_neuron_at (self, x, y) : -1;

  if (i >= 0)
    g_signal_emit (self, signals[NEURON_PICKED], 0, i);
}

void
snnwb_chart_view_zoom_neurons (SnnwbChartView *self, int first, int count)
{
  self->zoom_first = MAX (first, 0);
  self->zoom_count = MAX (count, 0);
  snnwb_offscreen_invalidate (self->offscreen);
  if (self->hovering)
    snnwb_chart_view_hover (self, self->hover_x, self->hover_y);
}

static void
pressed_cb (GtkGestureClick *g, int n_press, double x, double y, SnnwbChartView *self)
{
  if (self->kind != SNNWB_CHART_RASTER)
    return;
  if (n_press == 2)
    snnwb_chart_view_zoom_neurons (self, 0, 0);
  else if (n_press == 1)
    snnwb_chart_view_pick (self, x, y);
}

/* Each notch halves (or doubles) the neurons shown, around the pointer. */
static gboolean
scroll_cb (GtkEventControllerScroll *c, double dx, double dy, SnnwbChartView *self)
{
  const SnnwbProbeLayer *pl = probe_layer (self);
  int total, count, centre, first;

  if (self->kind != SNNWB_CHART_RASTER || !pl || dy == 0)
    return FALSE;
  total = pl->neurons;
  count = self->zoom_count > 0 ? self->zoom_count : total;
  centre = raster_neuron_at (self, self->hover_x, self->hover_y);
  if (centre < 0)
    centre = self->zoom_first + count / 2;
  count = dy < 0 ? MAX (count / 2, 8) : MIN (count * 2, total);
  first = CLAMP (centre - count / 2, 0, MAX (total - count, 0));
  snnwb_chart_view_zoom_neurons (self, first, count >= total ? 0 : count);
  return TRUE;
}

static void
add_controllers (SnnwbChartView *self)
{
  GtkEventController *motion = gtk_event_controller_motion_new ();

  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "enter", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);
  /* The kind is not set yet (a construct property): the raster's handlers
   * check it and let other views' events through. */
  {
    GtkGesture *click = gtk_gesture_click_new ();
    GtkEventController *scroll = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_VERTICAL
                                                                  | GTK_EVENT_CONTROLLER_SCROLL_DISCRETE);

    g_signal_connect (click, "pressed", G_CALLBACK (pressed_cb), self);
    g_signal_connect (scroll, "scroll", G_CALLBACK (scroll_cb), self);
    gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (click));
    gtk_widget_add_controller (GTK_WIDGET (self), scroll);
  }
}

int
snnwb_chart_view_get_traced (SnnwbChartView *self, int *out, int max)
{
  int n = MIN (self->n_traced, max);

  memcpy (out, self->traced, sizeof (int) * n);
  return n;
}

GStrv
snnwb_chart_view_dup_legend (SnnwbChartView *self)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self)), h = gtk_widget_get_height (GTK_WIDGET (self));
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  Prepared p;
  VizPlotMap map = { 0 };

  prepare (self, &p);
  if (p.draw == viz_draw_line_chart && viz_line_chart_layout (w, h, &p.u.chart, snnwb_view_style (), &map))
    for (int i = 0; i < map.n_legend && i < (int) p.legend->len; i++)
      g_strv_builder_add (b, g_array_index (p.legend, VizLegendEntry, i).label);
  prepared_clear (&p);
  return g_strv_builder_end (b);
}
