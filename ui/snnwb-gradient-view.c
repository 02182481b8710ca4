#include "snnwb-gradient-view.h"
#include <math.h>
#include <string.h>
#include "snnwb-chart-view.h"
#include "snnwb-offscreen.h"
#include "snnwb-resources.h"
#include "viz.h"

struct _SnnwbGradientView {
  GtkBox parent_instance;

  /* template */
  GtkAdjustment *interval_adjustment;
  GtkAdjustment *tau_adjustment;
  GtkScale *tau_scale;
  GtkLabel *tau_label;
  GtkLabel *cost_label;
  GtkButton *reset_button;
  GtkMenuButton *menu_button;
  GtkDrawingArea *canvas;

  SnnwbRun *run;
  SnnwbGradient *gradient;
  int lif_index;
  guint data_count;
  gboolean tau_enabled;
  gboolean updating;          /* the slider is moved by the view itself */
  double requested_tau;       /* what-if asked for and not shown yet; 0: none */
  guint n_cosines_shown;      /* cosine records in the latest picture */
  SnnwbOffscreen *offscreen;  /* pictures of the canvas */
  gboolean hovering;
  double hover_x, hover_y;
  char *readout;
};

static void redraw (SnnwbGradientView *self);

G_DEFINE_FINAL_TYPE (SnnwbGradientView, snnwb_gradient_view, GTK_TYPE_BOX)

enum { TAU_REQUESTED, INTERVAL_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* The shown layer */

static const SnnwbGradientLif *
shown_lif (SnnwbGradientView *self)
{
  const SnnwbGradient *g = self->gradient;

  if (!g || g->n_lif == 0)
    return NULL;
  return &g->lif[MIN (self->lif_index, g->n_lif - 1)];
}

/* The tau the model itself gives the shown LIF layer, or NaN. */
static double
model_tau (SnnwbGradientView *self)
{
  const SnnModel *m = self->run ? snnwb_run_get_experiment (self->run)->model : NULL;
  int seen = 0;

  for (int l = 0; m && l < m->n_layers; l++)
    if (m->layers[l].type == SNN_LAYER_LIF && seen++ == self->lif_index)
      return m->layers[l].lif.tau;
  return NAN;
}

/* The linear or conv layer whose output the LIF layer integrates: the
 * nearest one before it. */
static const SnnwbGradientAffine *
feeding_affine (const SnnwbGradient *g, const SnnwbGradientLif *gl)
{
  const SnnwbGradientAffine *best = NULL;

  for (int i = 0; i < g->n_affine; i++)
    if (g->affine[i].layer < gl->layer && (!best || g->affine[i].layer > best->layer))
      best = &g->affine[i];
  return best;
}

static const char *
layer_type_name (SnnwbGradientView *self, int layer)
{
  const SnnModel *m = self->run ? snnwb_run_get_experiment (self->run)->model : NULL;

  if (!m || layer < 0 || layer >= m->n_layers)
    return "layer";
  return snn_layer_type_name (m->layers[layer].type);
}

/* Slider and label */

static void
move_slider (SnnwbGradientView *self, double tau)
{
  if (!isfinite (tau))
    return;
  self->updating = TRUE;
  gtk_adjustment_set_value (self->tau_adjustment, tau);
  self->updating = FALSE;
}

static void
update_tau_label (SnnwbGradientView *self)
{
  const SnnwbGradientLif *gl = shown_lif (self);
  g_autofree char *text = NULL;

  if (self->requested_tau > 0)
    text = g_strdup_printf ("τ %.2f · computing…", self->requested_tau);
  else if (!gl)
    text = g_strdup ("τ —");
  else
    text = g_strdup_printf ("τ %.2f · %s", gl->tau, self->gradient->tau_override > 0 ? "what-if" : "model");
  gtk_label_set_text (self->tau_label, text);
  gtk_widget_set_sensitive (GTK_WIDGET (self->reset_button),
                            self->tau_enabled && self->gradient && self->gradient->tau_override > 0);
}

static void
request_tau (SnnwbGradientView *self, double tau)
{
  gboolean accepted = FALSE;

  g_signal_emit (self, signals[TAU_REQUESTED], 0, tau, &accepted);
  /* The label says "computing" until the answer for this tau arrives. */
  self->requested_tau = accepted ? (tau > 0 ? tau : -1) : 0;
  update_tau_label (self);
}

static void
tau_changed_cb (SnnwbGradientView *self)
{
  if (self->updating || !self->tau_enabled)
    return;
  request_tau (self, gtk_adjustment_get_value (self->tau_adjustment));
}

static void
reset_clicked_cb (SnnwbGradientView *self)
{
  move_slider (self, model_tau (self));
  request_tau (self, 0);
}

/* 0 reads "auto". */
static gboolean
interval_output_cb (GtkSpinButton *spin, gpointer data)
{
  int every = (int) gtk_adjustment_get_value (gtk_spin_button_get_adjustment (spin));
  g_autofree char *text = every > 0 ? g_strdup_printf ("%d", every) : g_strdup ("auto");

  if (!g_str_equal (text, gtk_editable_get_text (GTK_EDITABLE (spin))))
    gtk_editable_set_text (GTK_EDITABLE (spin), text);
  return TRUE;
}

static int
interval_input_cb (GtkSpinButton *spin, double *value, gpointer data)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (spin));
  char *end;
  gint64 v;

  if (g_ascii_strncasecmp (text, "auto", 4) == 0)
    {
      *value = 0;
      return TRUE;
    }
  v = g_ascii_strtoll (text, &end, 10);
  if (end == text || *end != '\0' || v < 0)
    return GTK_INPUT_ERROR;
  *value = (double) v;
  return TRUE;
}

static void
update_cost_label (SnnwbGradientView *self)
{
  const SnnwbGradient *g = self->gradient;
  g_autofree char *text = NULL;

  /* What-if analyses are not part of training: the last share stays. */
  if (!g || g->every <= 0 || !isfinite (g->cost_share))
    return;
  text = g_strdup_printf ("· every %d · %.1f %%", g->every, g->cost_share * 100);
  gtk_label_set_text (self->cost_label, text);
}

static void
interval_changed_cb (SnnwbGradientView *self)
{
  g_signal_emit (self, signals[INTERVAL_CHANGED], 0, (int) gtk_adjustment_get_value (self->interval_adjustment));
  redraw (self);
}

/* Drawing: the figure is prepared from the view's data, so the widget and
 * the exports draw the same thing. */

typedef struct {
  VizBars bars;
  VizLineChart chart;
  const double *cosine_du;    /* [T] or NULL */
  const char *caption;
  GArray *series;             /* VizSeries of the chart */
  GPtrArray *owned;
} Figure;

static gpointer
own (Figure *f, gpointer mem)
{
  g_ptr_array_add (f->owned, mem);
  return mem;
}

static char *
weight_caption (SnnwbGradientView *self, const SnnwbGradientLif *gl)
{
  const SnnwbGradientAffine *a = feeding_affine (self->gradient, gl);

  if (!a)
    return g_strdup ("No linear or conv layer feeds this LIF layer");
  return g_strdup_printf ("cos(BPTT's ∂L/∂W, SLTT's ∂L/∂W) of layer %d (%s): %.3f",
                          a->layer, layer_type_name (self, a->layer), a->cosine);
}

static void
prepare_bars (SnnwbGradientView *self, Figure *f)
{
  static const char *const labels[] = { "spatial (SLTT keeps)", "temporal (BPTT only)" };
  const SnnwbGradientLif *gl = shown_lif (self);
  const SnnwbGradient *g = self->gradient;
  VizBars *b = &f->bars;
  double *values;

  b->mode = VIZ_BARS_STACKED;
  b->n_series = 2;
  b->series_labels = labels;
  b->x_title = "time step t";
  b->y_title = "‖∂L/∂u[t]‖";
  if (g && g->error)
    f->caption = own (f, g_strdup_printf ("The analysis failed: %s", g->error));
  if (!gl)
    return;
  values = own (f, g_new (double, 2 * g->T));
  memcpy (values, gl->spatial_norm, sizeof (double) * g->T);
  memcpy (values + g->T, gl->temporal_norm, sizeof (double) * g->T);
  b->values = values;
  b->n_groups = g->T;
  b->title = own (f, g_strdup_printf ("Layer %d (LIF) · τ %.2f%s · iteration %ld", gl->layer, gl->tau,
                                      g->tau_override > 0 ? " (what-if)" : "", g->iter + 1));
  /* A copy: the picture may be drawn on another thread. */
  f->cosine_du = own (f, g_memdup2 (gl->cosine_du, sizeof (double) * g->T));
  f->caption = own (f, weight_caption (self, gl));
}

static void
add_series (Figure *f, const double *x, const double *y, int n, char *label, gboolean dashed, int color)
{
  VizColor *c = own (f, g_new (VizColor, 1));
  VizSeries s = { x, y, n, own (f, label), dashed, n <= 40, c };

  *c = color < 0 ? snnwb_view_style ()->foreground : viz_style_series_color (snnwb_view_style (), color);
  g_array_append_val (f->series, s);
}

static double
lowest_cosine (const SnnwbCosineRecord *rec, guint n)
{
  double lo = 1.0;

  for (guint i = 0; i < n; i++)
    for (int k = 0; k < rec[i].n; k++)
      if (isfinite (rec[i].cosine[k]))
        lo = MIN (lo, rec[i].cosine[k]);
  return lo;
}

static void
prepare_chart (SnnwbGradientView *self, Figure *f)
{
  VizLineChart *c = &f->chart;
  guint n = 0;
  const SnnwbCosineRecord *rec = self->run ? snnwb_run_get_cosines (self->run, &n) : NULL;
  int n_layers = n ? rec[n - 1].n : 0;
  double *x = own (f, g_new (double, MAX (n, 1)));
  const SnnwbGradient *g = self->gradient;

  for (guint i = 0; i < n; i++)
    x[i] = rec[i].iter + 1;
  for (int k = 0; k < n_layers; k++)
    {
      double *y = own (f, g_new (double, n));
      int layer = g && k < g->n_affine ? g->affine[k].layer : -1;

      for (guint i = 0; i < n; i++)
        y[i] = k < rec[i].n ? rec[i].cosine[k] : NAN;
      add_series (f, x, y, n, layer >= 0 ? g_strdup_printf ("layer %d · %s", layer, layer_type_name (self, layer))
                                         : g_strdup_printf ("layer %d", k + 1), FALSE, k);
    }
  if (n_layers > 0)
    {
      double *y = own (f, g_new (double, n));

      for (guint i = 0; i < n; i++)
        y[i] = rec[i].mean;
      add_series (f, x, y, n, g_strdup ("mean"), TRUE, -1);
    }
  c->series = (const VizSeries *) f->series->data;
  c->n_series = f->series->len;
  c->x_title = "iteration";
  c->y_title = "cosine";
  c->x_integer = TRUE;
  c->fix_y = TRUE;
  /* Room below the lowest cosine, in tenths, so small drifts stay visible;
   * a little above 1, so a cosine of 1 is not hidden by the frame. */
  c->y_min = MIN (0.5, floor ((lowest_cosine (rec, n) - 0.05) * 10) / 10);
  c->y_max = 1.0 + 0.04 * (1.0 - c->y_min);
  c->title = "cos(BPTT's ∂L/∂W, SLTT's ∂L/∂W) per layer";
}

static void
figure_prepare (SnnwbGradientView *self, Figure *f)
{
  memset (f, 0, sizeof *f);
  f->owned = g_ptr_array_new_with_free_func (g_free);
  f->series = g_array_new (FALSE, TRUE, sizeof (VizSeries));
  prepare_bars (self, f);
  prepare_chart (self, f);
}

static void
figure_clear (Figure *f)
{
  g_ptr_array_unref (f->owned);
  g_array_unref (f->series);
}

static void
set_font (cairo_t *cr, const VizStyle *style, double size)
{
  cairo_select_font_face (cr, style->font_family ? style->font_family : "sans-serif",
                          CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, size);
}

/* Text centred on x (align 0.5) or starting at it (align 0), shortened
 * from the end while wider than max_width. */
static void
show_text (cairo_t *cr, const char *text, double x, double y, double align, double max_width)
{
  g_autofree char *buf = g_strdup (text);
  cairo_text_extents_t ext;
  glong len = g_utf8_strlen (buf, -1);

  cairo_text_extents (cr, buf, &ext);
  while (ext.x_advance > max_width && len > 2)
    {
      g_autofree char *cut = g_utf8_substring (text, 0, --len - 1);

      g_free (buf);
      buf = g_strconcat (cut, "…", NULL);
      cairo_text_extents (cr, buf, &ext);
    }
  cairo_move_to (cr, x - align * ext.x_advance, y);
  cairo_show_text (cr, buf);
}

/* Under the bars: the cosine between the two parts at each step, aligned
 * with its bar, then the caption. */
static void
draw_caption (cairo_t *cr, const Figure *f, const VizBars *bars, const VizStyle *style, double w, double bars_h,
              double line)
{
  VizPlotMap map;
  double fs = style->font_size;
  int every = 1;

  viz_set_color (cr, &style->muted);
  set_font (cr, style, fs);
  if (f->cosine_du && viz_bars_layout (w, bars_h, bars, style, &map))
    {
      double pitch = map.area.width / MAX (f->bars.n_groups, 1);

      /* Every step while the numbers fit, else every other or fewer. */
      while (pitch * every < fs * 2.8 && every < f->bars.n_groups)
        every++;
      show_text (cr, "cos", map.area.x - fs * 0.6, bars_h + line, 1.0, map.area.x);
      show_text (cr, "↑ cos(spatial, temporal part of ∂L/∂u[t]) at each step", fs, bars_h + 2.1 * line, 0.0, w - 2 * fs);
      for (int t = 0; t < f->bars.n_groups; t += every)
        {
          char buf[16];

          if (isfinite (f->cosine_du[t]))
            g_snprintf (buf, sizeof buf, "%.2f", f->cosine_du[t]);
          else
            g_strlcpy (buf, "—", sizeof buf);
          show_text (cr, buf, viz_plot_map_x (&map, t), bars_h + line, 0.5, pitch * every);
        }
    }
  if (f->caption)
    show_text (cr, f->caption, fs, bars_h + 3.2 * line, 0.0, w - 2 * fs);
}

/* Where the bars and the chart go: the bars are bw x (bh - strip), the
 * chart right of them (wide) or below. */
typedef struct {
  gboolean wide;
  double bw, bh, strip, line;
  double cx, cy, cw, ch;
} Geometry;

static void
geometry (double width, double height, const VizStyle *style, Geometry *g)
{
  g->wide = width >= 1.4 * height;
  g->bw = g->wide ? floor (width * 0.46) : width;
  g->bh = g->wide ? height : floor (height * 0.55);
  g->line = style->font_size * 1.5;
  g->strip = 3.7 * g->line;
  g->cx = g->wide ? g->bw : 0;
  g->cy = g->wide ? 0 : g->bh;
  g->cw = g->wide ? width - g->bw : width;
  g->ch = g->wide ? height : height - g->bh;
}

static void
draw_figure (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style)
{
  const Figure *f = data;
  Geometry g;
  VizBars bars;

  geometry (width, height, style, &g);
  gboolean wide = g.wide;
  double bw = g.bw, bh = g.bh, line = g.line, strip = g.strip;
  if (!(width > 0 && height > 0))
    return;
  viz_set_color (cr, &style->background);
  cairo_paint (cr);
  /* A short canvas keeps the legend rather than the x title: the cosine
   * row under the bars already counts the steps. */
  bars = f->bars;
  if (bh - strip < 16 * style->font_size)
    bars.x_title = NULL;
  viz_bars_draw (cr, bw, bh - strip, &bars, style);
  draw_caption (cr, f, &bars, style, bw, bh - strip, line);
  cairo_save (cr);
  cairo_translate (cr, wide ? bw : 0, wide ? 0 : bh);
  viz_line_chart_draw (cr, wide ? width - bw : width, wide ? height : height - bh, &f->chart, style);
  cairo_restore (cr);
}

/* The offscreen's jobs: a figure owns everything it points to. */
static gpointer
prepare_job (gpointer owner)
{
  SnnwbGradientView *self = owner;
  Figure *f = g_new (Figure, 1);

  figure_prepare (self, f);
  if (self->run)
    snnwb_run_get_cosines (self->run, &self->n_cosines_shown);
  return f;
}

static void
paint_job (gpointer job, cairo_t *cr, int width, int height)
{
  draw_figure (cr, width, height, job, snnwb_view_style ());
}

static void
free_job (gpointer job)
{
  figure_clear (job);
  g_free (job);
}

static void
canvas_draw_cb (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  SnnwbGradientView *self = data;

  snnwb_offscreen_draw (self->offscreen, cr, width, height);
  if (self->hovering && self->readout)
    viz_draw_readout (cr, width, height, snnwb_view_style (), NULL, self->hover_x, self->hover_y, self->readout);
}

/* Hover read-outs: the step under the pointer in the bars, or the
 * iteration under it in the cosine chart. */
static char *
readout_bars (const Figure *f, const Geometry *g, const VizStyle *style, double x, double y)
{
  VizPlotMap map;
  int t, T = f->bars.n_groups;

  if (!f->bars.values || y > g->bh || !viz_bars_layout (g->bw, g->bh - g->strip, &f->bars, style, &map)
      || x < map.area.x || x > map.area.x + map.area.width)
    return NULL;
  t = (int) round (viz_plot_map_unx (&map, x));
  if (t < 0 || t >= T)
    return NULL;
  return g_strdup_printf ("t %d · ‖∂L/∂u[t]‖ parts\nspatial (SLTT keeps): %.4g\ntemporal (BPTT only): %.4g\n"
                          "cos(spatial, temporal): %.3f", t, f->bars.values[t], f->bars.values[T + t],
                          f->cosine_du ? f->cosine_du[t] : NAN);
}

static char *
readout_chart (const Figure *f, const Geometry *g, const VizStyle *style, double x, double y)
{
  VizPlotMap map;
  GString *s;
  double it;

  x -= g->cx;
  y -= g->cy;
  if (x < 0 || y < 0 || !viz_line_chart_layout (g->cw, g->ch, &f->chart, style, &map)
      || x < map.area.x || x > map.area.x + map.area.width || y < map.area.y || y > map.area.y + map.area.height)
    return NULL;
  it = viz_plot_map_unx (&map, x);
  s = g_string_new (NULL);
  for (int k = 0; k < f->chart.n_series; k++)
    {
      const VizSeries *ser = &f->chart.series[k];
      int i = viz_series_nearest (ser, it);

      if (i < 0)
        continue;
      if (s->len == 0)
        g_string_append_printf (s, "iteration %.0f · cos(BPTT, SLTT ∂L/∂W)", ser->x[i]);
      g_string_append_printf (s, "\n%s: %.4f", ser->label, ser->y[i]);
    }
  if (s->len == 0)
    return g_string_free (s, TRUE), NULL;
  return g_string_free (s, FALSE);
}

static void
hover (SnnwbGradientView *self, double x, double y)
{
  int w = gtk_widget_get_width (GTK_WIDGET (self->canvas)), h = gtk_widget_get_height (GTK_WIDGET (self->canvas));
  Figure f;
  Geometry g;

  self->hovering = TRUE;
  self->hover_x = x;
  self->hover_y = y;
  g_clear_pointer (&self->readout, g_free);
  if (w > 0 && h > 0)
    {
      figure_prepare (self, &f);
      geometry (w, h, snnwb_view_style (), &g);
      self->readout = readout_bars (&f, &g, snnwb_view_style (), x, y);
      if (!self->readout)
        self->readout = readout_chart (&f, &g, snnwb_view_style (), x, y);
      figure_clear (&f);
    }
  gtk_widget_queue_draw (GTK_WIDGET (self->canvas));
}

static void
motion_cb (GtkEventControllerMotion *c, double x, double y, SnnwbGradientView *self)
{
  hover (self, x, y);
}

static void
leave_cb (GtkEventControllerMotion *c, SnnwbGradientView *self)
{
  self->hovering = FALSE;
  g_clear_pointer (&self->readout, g_free);
  gtk_widget_queue_draw (GTK_WIDGET (self->canvas));
}

void
snnwb_gradient_view_hover (SnnwbGradientView *self, double x, double y)
{
  hover (self, x, y);
}

const char *
snnwb_gradient_view_get_readout (SnnwbGradientView *self)
{
  return self->readout;
}

static const char info_markup[] =
  "<b>Gradients</b> from an analysis of the probe batch, with BPTT's backward run\n"
  "beside training's own, every few iterations.\n\n"
  "<b>Bars</b>, per time step t: the norm of ∂L/∂u[t] of the picked LIF layer, split\n"
  "as in Eq. 9–10 into its <b>spatial</b> part (through the layer above at the same\n"
  "step: what SLTT keeps, blue) and its <b>temporal</b> part (the sum over later steps\n"
  "t' through ∏ ε, Eq. 8: what only BPTT follows, orange).\n"
  "<b>cos row</b>: the cosine between those two parts at each step.\n\n"
  "<b>Caption and chart</b>: a different cosine, between BPTT's and SLTT's weight\n"
  "gradients ∂L/∂W, per linear or conv layer, over training (Fig. 3 of the paper).\n"
  "Near 1, SLTT steps in nearly the direction BPTT would.\n\n"
  "<b>τ slider</b>: the analysis again with another membrane time constant\n"
  "(ε = 1 − 1/τ outside the surrogate's window, Eq. 11): a larger τ lets the\n"
  "temporal part grow.\n"
  "Units: norms of ∂L/∂u (loss per unit of u); cosines from −1 to 1.";

const char *
snnwb_gradient_view_info_markup (void)
{
  return info_markup;
}

static void
add_info_button (SnnwbGradientView *self)
{
  GtkWidget *menu = GTK_WIDGET (self->menu_button);
  GtkWidget *header = gtk_widget_get_parent (menu);
  GtkWidget *button = snnwb_info_button_new (info_markup);
  GtkEventController *motion = gtk_event_controller_motion_new ();

  gtk_box_insert_child_after (GTK_BOX (header), button, gtk_widget_get_prev_sibling (menu));

  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "enter", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self->canvas), motion);
}

static void
redraw (SnnwbGradientView *self)
{
  snnwb_offscreen_invalidate (self->offscreen);
}

void
snnwb_gradient_view_restyle (SnnwbGradientView *self)
{
  redraw (self);
}

/* GObject */

static void
snnwb_gradient_view_dispose (GObject *object)
{
  SnnwbGradientView *self = SNNWB_GRADIENT_VIEW (object);

  g_clear_pointer (&self->offscreen, snnwb_offscreen_free);
  g_clear_object (&self->run);
  g_clear_pointer (&self->gradient, snnwb_gradient_unref);
  g_clear_pointer (&self->readout, g_free);
  gtk_widget_dispose_template (GTK_WIDGET (self), SNNWB_TYPE_GRADIENT_VIEW);
  G_OBJECT_CLASS (snnwb_gradient_view_parent_class)->dispose (object);
}

static void
snnwb_gradient_view_class_init (SnnwbGradientViewClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  G_OBJECT_CLASS (klass)->dispose = snnwb_gradient_view_dispose;

  /* Returns whether the request was taken (only while not training). */
  signals[TAU_REQUESTED] = g_signal_new ("tau-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                         g_signal_accumulator_first_wins, NULL, NULL,
                                         G_TYPE_BOOLEAN, 1, G_TYPE_DOUBLE);
  signals[INTERVAL_CHANGED] = g_signal_new ("interval-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                            NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT);

  snnwb_get_resource ();
  gtk_widget_class_set_template_from_resource (widget_class, "/org/snnworkbench/Workbench/snnwb-gradient-view.ui");
#define BIND(name) gtk_widget_class_bind_template_child (widget_class, SnnwbGradientView, name)
  BIND (interval_adjustment); BIND (tau_adjustment); BIND (tau_scale); BIND (tau_label); BIND (cost_label);
  BIND (reset_button); BIND (menu_button); BIND (canvas);
#undef BIND
  gtk_widget_class_bind_template_callback (widget_class, tau_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, reset_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, interval_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, interval_output_cb);
  gtk_widget_class_bind_template_callback (widget_class, interval_input_cb);
}

static void
snnwb_gradient_view_init (SnnwbGradientView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  /* Before anything that redraws. */
  self->offscreen = snnwb_offscreen_new (GTK_WIDGET (self->canvas), prepare_job, paint_job, free_job, self);
  gtk_drawing_area_set_draw_func (self->canvas, canvas_draw_cb, self, NULL);
  gtk_adjustment_set_value (self->interval_adjustment, SNNWB_DEFAULT_ANALYSIS_INTERVAL);
  add_info_button (self);
}

GtkWidget *
snnwb_gradient_view_new (void)
{
  return g_object_new (SNNWB_TYPE_GRADIENT_VIEW, NULL);
}

/* Data */

void
snnwb_gradient_view_set_run (SnnwbGradientView *self, SnnwbRun *run)
{
  g_set_object (&self->run, run);
  g_clear_pointer (&self->gradient, snnwb_gradient_unref);
  self->requested_tau = 0;
  gtk_label_set_text (self->cost_label, "");
  move_slider (self, model_tau (self));
  update_tau_label (self);
  redraw (self);
}

static gboolean
answers_request (SnnwbGradientView *self, const SnnwbGradient *grad)
{
  if (self->requested_tau < 0)
    return grad->tau_override <= 0;
  return fabs (grad->tau_override - self->requested_tau) < 1e-4;
}

void
snnwb_gradient_view_set_gradient (SnnwbGradientView *self, SnnwbGradient *grad)
{
  guint n_cosines = 0;

  if (self->run)
    snnwb_run_get_cosines (self->run, &n_cosines);
  /* Called at every update of the run: nothing new, nothing to draw. */
  if (grad == self->gradient && n_cosines == self->n_cosines_shown)
    return;
  if (grad && grad != self->gradient)
    {
      g_clear_pointer (&self->gradient, snnwb_gradient_unref);
      self->gradient = snnwb_gradient_ref (grad);
      self->data_count++;
      if (self->requested_tau != 0 && answers_request (self, grad))
        self->requested_tau = 0;
      /* Training data is at the model's tau: the slider follows it. */
      if (grad->tau_override <= 0 && self->requested_tau == 0 && shown_lif (self))
        move_slider (self, shown_lif (self)->tau);
    }
  update_tau_label (self);
  update_cost_label (self);
  redraw (self);
}

SnnwbGradient *
snnwb_gradient_view_get_gradient (SnnwbGradientView *self)
{
  return self->gradient;
}

void
snnwb_gradient_view_set_lif_index (SnnwbGradientView *self, int index)
{
  self->lif_index = MAX (index, 0);
  update_tau_label (self);
  redraw (self);
}

void
snnwb_gradient_view_set_tau_enabled (SnnwbGradientView *self, gboolean enabled)
{
  if (self->tau_enabled == enabled)
    return;
  self->tau_enabled = enabled;
  gtk_widget_set_sensitive (GTK_WIDGET (self->tau_scale), enabled);
  if (!enabled)
    {
      self->requested_tau = 0;
      move_slider (self, model_tau (self));
    }
  update_tau_label (self);
}

void
snnwb_gradient_view_set_tau (SnnwbGradientView *self, double tau)
{
  gtk_adjustment_set_value (self->tau_adjustment, tau);
}

double
snnwb_gradient_view_get_tau (SnnwbGradientView *self)
{
  return gtk_adjustment_get_value (self->tau_adjustment);
}

void
snnwb_gradient_view_set_interval (SnnwbGradientView *self, int every)
{
  gtk_adjustment_set_value (self->interval_adjustment, every);
}

int
snnwb_gradient_view_get_interval (SnnwbGradientView *self)
{
  return (int) gtk_adjustment_get_value (self->interval_adjustment);
}

GtkMenuButton *
snnwb_gradient_view_get_menu_button (SnnwbGradientView *self)
{
  return self->menu_button;
}

guint
snnwb_gradient_view_get_data_count (SnnwbGradientView *self)
{
  return self->data_count;
}

guint
snnwb_gradient_view_get_n_points (SnnwbGradientView *self)
{
  guint n = 0;

  if (self->run)
    snnwb_run_get_cosines (self->run, &n);
  return n;
}

/* Export */

gboolean
snnwb_gradient_view_export (SnnwbGradientView *self, const char *path, GError **error)
{
  int w = MAX (gtk_widget_get_width (GTK_WIDGET (self->canvas)), 1200);
  int h = MAX (gtk_widget_get_height (GTK_WIDGET (self->canvas)), 420);
  Figure f;
  gboolean ok;

  figure_prepare (self, &f);
  ok = viz_export (path, w, h, draw_figure, &f, viz_style_light (), error); /* files keep the normal size */
  figure_clear (&f);
  return ok;
}

gboolean
snnwb_gradient_view_export_csv (SnnwbGradientView *self, const char *path, GError **error)
{
  Figure f;
  gboolean ok;

  figure_prepare (self, &f);
  ok = viz_series_write_csv (path, (const VizSeries *) f.series->data, f.series->len, "iteration", error);
  figure_clear (&f);
  return ok;
}
