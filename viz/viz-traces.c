/* Membrane traces: u[t] of a few neurons against the threshold, with their
 * spikes as ticks in a strip above the plot. */
#include "viz-private.h"
#include <math.h>

typedef struct {
  VizFrame f;
  VizLegendItem *legend;
  char (*names)[32];
  gboolean has_data;
  double strip_row;         /* height of one trace's row in the spike strip */
} TracesLayout;

static gboolean
any_marked (const gboolean *marked, int T)
{
  for (int t = 0; marked && t < T; t++)
    if (marked[t])
      return TRUE;
  return FALSE;
}

static gboolean
trace_range (const VizTraces *d, double *lo, double *hi)
{
  *lo = INFINITY, *hi = -INFINITY;
  if (!d || !d->u || d->n_traces <= 0 || d->T <= 0)
    return FALSE;
  for (gsize i = 0; i < (gsize) d->n_traces * d->T; i++)
    if (isfinite (d->u[i]))
      *lo = MIN (*lo, d->u[i]), *hi = MAX (*hi, d->u[i]);
  if (!(*hi >= *lo))
    return FALSE;
  if (isfinite (d->vth))
    *lo = MIN (*lo, d->vth), *hi = MAX (*hi, d->vth);
  return TRUE;
}

static void
make_legend (TracesLayout *L, const VizTraces *d, const VizStyle *style)
{
  int n = d->n_traces;
  L->legend = g_new0 (VizLegendItem, n + 1);
  L->names = g_malloc0_n (n, sizeof *L->names);
  for (int i = 0; i < n; i++)
    {
      const char *label = d->labels ? d->labels[i] : NULL;
      if (!label)
        {
          if (d->neuron_ids)
            g_snprintf (L->names[i], sizeof L->names[i], "neuron %d", d->neuron_ids[i]);
          else
            g_snprintf (L->names[i], sizeof L->names[i], "trace %d", i + 1);
          label = L->names[i];
        }
      L->legend[i] = (VizLegendItem) { label, viz_style_series_color (style, i), VIZ_LEGEND_LINE };
    }
  L->f.n_legend = n;
  if (any_marked (d->marked_steps, d->T))
    L->legend[L->f.n_legend++] = (VizLegendItem) {
      d->marked_label ? d->marked_label : "SLTT-K steps", style->highlight, VIZ_LEGEND_BOX };
  L->f.legend = L->legend;
}

static void
traces_layout (TracesLayout *L, double width, double height, const VizTraces *d,
               const VizStyle *style)
{
  style = viz_style_or_default (style);
  VizFrame *f = &L->f;
  viz_frame_init (f);
  L->legend = NULL;
  L->names = NULL;
  L->strip_row = 0;
  double lo, hi;
  L->has_data = trace_range (d, &lo, &hi);
  f->title = d ? d->title : NULL;
  f->x_title = d && d->x_title ? d->x_title : "time step t";
  f->y_title = d && d->y_title ? d->y_title : "membrane potential u";
  f->x.integer = TRUE;
  if (!L->has_data)
    {
      viz_frame_layout (f, width, height, style);
      return;
    }
  make_legend (L, d, style);
  viz_scale_set (&f->x, -0.5, d->T - 0.5, 0, FALSE);
  viz_scale_set (&f->y, lo, hi, 0.06, FALSE);
  if (d->spikes)
    {
      VizMetrics m;
      viz_metrics (style, &m);
      double strip = MIN (d->n_traces * CLAMP (m.fs * 0.85, 3, 12), height * 0.2);
      L->strip_row = strip / d->n_traces;
      f->extra_top = strip + m.gap * 2;
    }
  viz_frame_layout (f, width, height, style);
}

static void
traces_layout_clear (TracesLayout *L)
{
  g_free (L->legend);
  g_free (L->names);
}

gboolean
viz_traces_layout (double width, double height, const VizTraces *data, const VizStyle *style,
                   VizPlotMap *map)
{
  if (!viz_size_ok (width, height))
    return FALSE;
  TracesLayout L;
  traces_layout (&L, width, height, data, style);
  viz_frame_map (&L.f, map);
  traces_layout_clear (&L);
  return L.f.ok;
}

static void
draw_marked (cairo_t *cr, const VizFrame *f, const gboolean *marked, int T, const VizStyle *style)
{
  if (!marked)
    return;
  viz_set_color (cr, &style->highlight);
  double cw = f->area.width / T;
  for (int t = 0; t < T; t++)
    if (marked[t])
      {
        double x0 = viz_snap_edge (f->area.x + t * cw, cw), x1 = viz_snap_edge (f->area.x + (t + 1) * cw, cw);
        cairo_rectangle (cr, x0, f->area.y, x1 - x0, f->area.height);
      }
  cairo_fill (cr);
}

static void
draw_threshold (cairo_t *cr, const VizFrame *f, double vth, const VizStyle *style)
{
  if (!isfinite (vth))
    return;
  double y = floor (viz_frame_y (f, vth)) + 0.5;
  double dash[] = { 6, 4 };
  cairo_save (cr);
  viz_set_color (cr, &style->axis);
  cairo_set_line_width (cr, 1);
  cairo_set_dash (cr, dash, 2, 0);
  cairo_move_to (cr, f->area.x, y);
  cairo_line_to (cr, f->area.x + f->area.width, y);
  cairo_stroke (cr);
  cairo_restore (cr);
}

static void
draw_threshold_label (cairo_t *cr, const VizFrame *f, double vth, const VizStyle *style)
{
  if (!isfinite (vth))
    return;
  double y = floor (viz_frame_y (f, vth)) + 0.5;
  char label[48], num[32];
  g_ascii_formatd (num, sizeof num, "%.3g", vth);
  g_snprintf (label, sizeof label, "vth = %s", num);
  /* Above the line, unless that would leave the plot; on a plate of the
   * background so traces passing behind do not garble it. */
  double size = f->m.tick_fs, w = viz_est_width (label, size) + f->m.gap * 2, h = size * 1.3;
  gboolean below = y - f->m.gap - h < f->area.y;
  double x1 = f->area.x + f->area.width - f->m.gap;
  double yc = below ? y + 2 + h / 2 : y - 2 - h / 2;
  VizColor plate = style->background;
  plate.a = 0.85;
  viz_set_color (cr, &plate);
  cairo_rectangle (cr, x1 - w, yc - h / 2, w, h);
  cairo_fill (cr);
  viz_text (cr, style, &style->muted, size, FALSE, x1 - f->m.gap, yc, 0, VIZ_ALIGN_END,
            VIZ_ALIGN_CENTER, f->area.width / 2, label);
}

static void
draw_trace (cairo_t *cr, const VizFrame *f, const double *u, int T, const VizColor *c)
{
  gboolean dots = f->area.width / T >= 10;
  viz_set_color (cr, c);
  cairo_set_line_width (cr, 1.75);
  gboolean pen = FALSE;
  for (int t = 0; t < T; t++)
    {
      if (!isfinite (u[t]))
        {
          pen = FALSE;
          continue;
        }
      viz_path_to (cr, &pen, viz_frame_x (f, t), viz_frame_y (f, u[t]));
    }
  cairo_stroke (cr);
  for (int t = 0; dots && t < T; t++)
    if (isfinite (u[t]))
      {
        cairo_new_sub_path (cr);
        cairo_arc (cr, viz_frame_x (f, t), viz_frame_y (f, u[t]), 2.25, 0, 2 * G_PI);
      }
  cairo_fill (cr);
}

static void
draw_spike_strip (cairo_t *cr, const TracesLayout *L, const VizTraces *d, const VizStyle *style)
{
  const VizFrame *f = &L->f;
  double top = f->area.y - f->extra_top + f->m.gap;
  double cw = f->area.width / d->T;
  double tick_w = CLAMP (cw * 0.3, 1, 4);
  /* A faint baseline per row, so an empty row reads as "no spikes". */
  viz_set_color (cr, &style->grid);
  cairo_set_line_width (cr, 1);
  for (int i = 0; L->strip_row >= 4 && i < d->n_traces; i++)
    {
      double y = floor (top + (i + 0.9) * L->strip_row) + 0.5;
      cairo_move_to (cr, f->area.x, y);
      cairo_line_to (cr, f->area.x + f->area.width, y);
    }
  cairo_stroke (cr);
  for (int i = 0; i < d->n_traces; i++)
    {
      VizColor c = viz_style_series_color (style, i);
      viz_set_color (cr, &c);
      double y = top + i * L->strip_row;
      for (int t = 0; t < d->T; t++)
        if (d->spikes[(gsize) i * d->T + t])
          cairo_rectangle (cr, viz_frame_x (f, t) - tick_w / 2, y + L->strip_row * 0.1,
                           tick_w, L->strip_row * 0.8);
      cairo_fill (cr);
    }
  double room = f->area.x - f->m.tick_len - f->m.gap - f->m.pad;
  if (viz_est_width ("spikes", f->m.tick_fs) <= room)
    viz_text (cr, style, &style->muted, f->m.tick_fs, FALSE, f->area.x - f->m.tick_len - f->m.gap,
              top + d->n_traces * L->strip_row / 2, 0, VIZ_ALIGN_END, VIZ_ALIGN_CENTER, 0, "spikes");
}

void
viz_traces_draw (cairo_t *cr, double width, double height, const VizTraces *data,
                 const VizStyle *style)
{
  if (!viz_begin (cr, width, height, style))
    return;
  style = viz_style_or_default (style);
  TracesLayout L;
  traces_layout (&L, width, height, data, style);
  const VizFrame *f = &L.f;
  viz_frame_draw_header (cr, f, style);
  if (f->ok && L.has_data)
    {
      cairo_save (cr);
      viz_frame_clip (cr, f);
      draw_marked (cr, f, data->marked_steps, data->T, style);
      viz_frame_draw_grid (cr, f, style);
      draw_threshold (cr, f, data->vth, style);
      for (int i = 0; i < data->n_traces; i++)
        {
          VizColor c = viz_style_series_color (style, i);
          draw_trace (cr, f, data->u + (gsize) i * data->T, data->T, &c);
        }
      draw_threshold_label (cr, f, data->vth, style);
      cairo_restore (cr);
      if (data->spikes)
        draw_spike_strip (cr, &L, data, style);
    }
  else if (f->ok)
    {
      viz_frame_draw_grid (cr, f, style);
      viz_draw_note (cr, style, &f->area, "no data");
    }
  viz_frame_draw_axes (cr, f, style);
  traces_layout_clear (&L);
  viz_end (cr);
}

void
viz_draw_traces (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style)
{
  viz_traces_draw (cr, width, height, data, style);
}
