/* Spike raster: one mark per (time step, neuron) cell that spiked, with an
 * optional firing-rate panel and shading of the SLTT-K steps. */
#include "viz-private.h"
#include <math.h>

typedef struct {
  VizFrame f;
  VizLegendItem legend[1];
  char caption[128];
  gboolean has_data;
  VizRect panel;            /* rate panel, when shown */
  VizScale rate;
} RasterLayout;

static gboolean
raster_has_data (const VizRaster *d)
{
  return d && d->spikes && d->T > 0 && d->n_neurons > 0;
}

static gboolean
any_marked (const VizRaster *d)
{
  for (int t = 0; d->marked_steps && t < d->T; t++)
    if (d->marked_steps[t])
      return TRUE;
  return FALSE;
}

static void
count_spikes (const VizRaster *d, int *per_neuron, long *total)
{
  *total = 0;
  for (int i = 0; i < d->n_neurons; i++)
    per_neuron[i] = 0;
  for (int t = 0; t < d->T; t++)
    for (int i = 0; i < d->n_neurons; i++)
      if (d->spikes[(gsize) t * d->n_neurons + i])
        per_neuron[i]++, (*total)++;
}

/* Caption and rate range need the spike counts; both are cheap next to
 * drawing, and computing them here keeps the layout self-contained. */
static void
raster_layout (RasterLayout *L, double width, double height, const VizRaster *d,
               const VizStyle *style)
{
  VizFrame *f = &L->f;
  viz_frame_init (f);
  L->has_data = raster_has_data (d);
  f->title = d ? d->title : NULL;
  f->x_title = d && d->x_title ? d->x_title : "time step t";
  f->y_title = d && d->y_title ? d->y_title : "neuron";
  f->x_grid = f->y_grid = FALSE;
  f->x.integer = f->y.integer = TRUE;
  f->y.name_first = d ? d->neuron_first : 0;
  double max_rate = 0;
  if (L->has_data)
    {
      viz_scale_set (&f->x, -0.5, d->T - 0.5, 0, FALSE);
      viz_scale_set (&f->y, -0.5, d->n_neurons - 0.5, 0, FALSE);
      g_autofree int *per = g_new (int, d->n_neurons);
      long total;
      count_spikes (d, per, &total);
      for (int i = 0; i < d->n_neurons; i++)
        max_rate = MAX (max_rate, (double) per[i] / d->T);
      double cells = (double) d->T * d->n_neurons;
      if (d->show_caption)
        g_snprintf (L->caption, sizeof L->caption, "firing rate %.1f%% \u00b7 %ld spikes in %.0f cells",
                    100.0 * total / cells, total, cells);
      f->caption = d->show_caption ? L->caption : NULL;
      if (any_marked (d))
        {
          style = viz_style_or_default (style);
          L->legend[0] = (VizLegendItem) { d->marked_label ? d->marked_label : "SLTT-K steps",
                                           style->highlight, VIZ_LEGEND_BOX };
          f->legend = L->legend;
          f->n_legend = 1;
        }
    }
  VizMetrics m;
  viz_metrics (style, &m);
  double panel_w = 0, panel_gap = m.fs * 1.5;
  if (d && d->show_rate)
    {
      panel_w = CLAMP (width * 0.14, m.fs * 5, m.fs * 9);
      f->extra_right = panel_w + panel_gap;
    }
  viz_frame_layout (f, width, height, style);
  L->panel = (VizRect) { f->area.x + f->area.width + panel_gap, f->area.y, round (panel_w), f->area.height };
  /* Rates start at zero; a little room past the busiest neuron. */
  L->rate = (VizScale) { .lo = 0, .hi = max_rate > 0 ? max_rate * 1.05 : 1 };
  viz_scale_make_ticks (&L->rate, L->panel.width, TRUE, &m);
}

static void
cell_rect (const VizFrame *f, const VizRaster *d, int t, int neuron, VizRect *r)
{
  double cw = f->area.width / d->T, ch = f->area.height / d->n_neurons;
  double x0 = viz_snap_edge (f->area.x + t * cw, cw);
  double x1 = viz_snap_edge (f->area.x + (t + 1) * cw, cw);
  double bottom = f->area.y + f->area.height;
  double y0 = viz_snap_edge (bottom - (neuron + 1) * ch, ch);
  double y1 = viz_snap_edge (bottom - neuron * ch, ch);
  *r = (VizRect) { x0, y0, x1 - x0, y1 - y0 };
}

gboolean
viz_raster_cell_rect (double width, double height, const VizRaster *data, const VizStyle *style,
                      int t, int neuron, VizRect *cell)
{
  if (!viz_size_ok (width, height) || !raster_has_data (data)
      || t < 0 || t >= data->T || neuron < 0 || neuron >= data->n_neurons)
    return FALSE;
  RasterLayout L;
  raster_layout (&L, width, height, data, style);
  if (!L.f.ok)
    return FALSE;
  cell_rect (&L.f, data, t, neuron, cell);
  return TRUE;
}

/* Cells thinner than a pixel get a mark one pixel thick around their
 * centre: a faint sliver per spike would read as grey noise. */
static void
at_least_a_pixel (VizRect *r)
{
  if (r->width < 1)
    r->x += r->width / 2 - 0.5, r->width = 1;
  if (r->height < 1)
    r->y += r->height / 2 - 0.5, r->height = 1;
}

/* Inset so neighbouring marks stay apart once cells are big enough. */
static double
mark_inset (double cell)
{
  return cell >= 5 ? MIN (3, floor (cell * 0.12)) : 0;
}

static void
draw_marked (cairo_t *cr, const RasterLayout *L, const VizRaster *d, const VizStyle *style)
{
  if (!d->marked_steps)
    return;
  viz_set_color (cr, &style->highlight);
  for (int t = 0; t < d->T; t++)
    if (d->marked_steps[t])
      {
        VizRect r;
        cell_rect (&L->f, d, t, 0, &r);
        cairo_rectangle (cr, r.x, L->f.area.y, r.width, L->f.area.height);
      }
  cairo_fill (cr);
}

/* With more neurons than pixel rows, one mark per row and step, shaded by
 * the share of the row's neurons that fired relative to the busiest row:
 * marking any spike would paint a conv layer solid. Drawing stays cheap
 * enough to refresh many times a second. */
static int
bin_count (const guint8 *st, int lo, int hi)
{
  int n = 0;
  for (int i = lo; i < hi; i++)
    n += st[i] != 0;
  return n;
}

static gboolean
draw_marks_binned (cairo_t *cr, const RasterLayout *L, const VizRaster *d, const VizStyle *style)
{
  int rows = (int) floor (L->f.area.height);
  if (rows < 1 || d->n_neurons <= 2 * rows)
    return FALSE;
  double ix = mark_inset (L->f.area.width / d->T), h = L->f.area.height / d->n_neurons;
  double top = 0;
  for (int t = 0; t < d->T; t++)
    for (int r = 0; r < rows; r++)
      {
        int lo = (int) ((gint64) d->n_neurons * r / rows), hi = (int) ((gint64) d->n_neurons * (r + 1) / rows);
        if (hi > lo)
          top = MAX (top, (double) bin_count (d->spikes + (gsize) t * d->n_neurons, lo, hi) / (hi - lo));
      }
  for (int t = 0; t < d->T && top > 0; t++)
    {
      const guint8 *st = d->spikes + (gsize) t * d->n_neurons;
      for (int r = 0; r < rows; r++)
        {
          int lo = (int) ((gint64) d->n_neurons * r / rows), hi = (int) ((gint64) d->n_neurons * (r + 1) / rows);
          int n = hi > lo ? bin_count (st, lo, hi) : 0;
          if (!n)
            continue;
          VizRect c;
          cell_rect (&L->f, d, t, lo, &c);
          /* Neuron 0 is the bottom row: the bin spans lo..hi-1 upwards. */
          VizRect m = { c.x + ix, c.y + c.height - (hi - lo) * h, c.width - 2 * ix, (hi - lo) * h };
          at_least_a_pixel (&m);
          VizColor col = style->foreground;
          /* A lone spike stays visible. */
          col.a = 0.12 + 0.88 * ((double) n / (hi - lo)) / top;
          viz_set_color (cr, &col);
          cairo_rectangle (cr, m.x, m.y, m.width, m.height);
          cairo_fill (cr);
        }
    }
  return TRUE;
}

static void
draw_marks (cairo_t *cr, const RasterLayout *L, const VizRaster *d, const VizStyle *style)
{
  if (draw_marks_binned (cr, L, d, style))
    return;
  double ix = mark_inset (L->f.area.width / d->T), iy = mark_inset (L->f.area.height / d->n_neurons);
  viz_set_color (cr, &style->foreground);
  for (int t = 0; t < d->T; t++)
    for (int i = 0; i < d->n_neurons; i++)
      if (d->spikes[(gsize) t * d->n_neurons + i])
        {
          VizRect r;
          cell_rect (&L->f, d, t, i, &r);
          r = (VizRect) { r.x + ix, r.y + iy, r.width - 2 * ix, r.height - 2 * iy };
          at_least_a_pixel (&r);
          cairo_rectangle (cr, r.x, r.y, r.width, r.height);
        }
  cairo_fill (cr);
}

static void
draw_rate_panel (cairo_t *cr, const RasterLayout *L, const VizRaster *d, const VizStyle *style)
{
  const VizRect *p = &L->panel;
  const VizMetrics *m = &L->f.m;
  g_autofree int *per = g_new (int, d->n_neurons);
  long total;
  count_spikes (d, per, &total);
  double iy = mark_inset (p->height / d->n_neurons);
  VizColor c = viz_style_series_color (style, 0);
  viz_set_color (cr, &c);
  int rows = (int) floor (p->height);
  if (rows >= 1 && d->n_neurons > 2 * rows)
    {
      /* One bar per pixel row: the mean rate of its neurons. */
      double h = p->height / d->n_neurons;
      for (int r = 0; r < rows; r++)
        {
          int lo = (int) ((gint64) d->n_neurons * r / rows), hi = (int) ((gint64) d->n_neurons * (r + 1) / rows);
          long sum = 0;
          for (int i = lo; i < hi; i++)
            sum += per[i];
          if (!sum)
            continue;
          VizRect cell;
          cell_rect (&L->f, d, 0, lo, &cell);
          VizRect b = { p->x, cell.y + cell.height - (hi - lo) * h,
                        viz_scale_frac (&L->rate, (double) sum / ((double) (hi - lo) * d->T)) * p->width, (hi - lo) * h };
          at_least_a_pixel (&b);
          cairo_rectangle (cr, b.x, b.y, b.width, b.height);
        }
      rows = -1;
    }
  for (int i = 0; rows >= 0 && i < d->n_neurons; i++)
    {
      if (!per[i])
        continue;
      VizRect r;
      cell_rect (&L->f, d, 0, i, &r);
      r = (VizRect) { p->x, r.y + iy, viz_scale_frac (&L->rate, (double) per[i] / d->T) * p->width,
                      r.height - 2 * iy };
      at_least_a_pixel (&r);
      cairo_rectangle (cr, r.x, r.y, r.width, r.height);
    }
  cairo_fill (cr);
  VizScale none = { .lo = 0, .hi = 1 };
  double title_y = p->y + p->height + 1 + m->tick_len + m->gap + m->tick_fs * 1.2 + m->fs * 0.85;
  viz_draw_x_axis (cr, style, m, &L->rate, p, "rate", title_y);
  viz_draw_y_axis (cr, style, m, &none, p, NULL, 0);
}

void
viz_raster_draw (cairo_t *cr, double width, double height, const VizRaster *data,
                 const VizStyle *style)
{
  if (!viz_begin (cr, width, height, style))
    return;
  style = viz_style_or_default (style);
  RasterLayout L;
  raster_layout (&L, width, height, data, style);
  viz_frame_draw_header (cr, &L.f, style);
  if (L.f.ok)
    {
      if (L.has_data)
        {
          cairo_save (cr);
          viz_frame_clip (cr, &L.f);
          draw_marked (cr, &L, data, style);
          draw_marks (cr, &L, data, style);
          cairo_restore (cr);
          if (data->show_rate && L.panel.width >= 4)
            draw_rate_panel (cr, &L, data, style);
        }
      else
        viz_draw_note (cr, style, &L.f.area, "no data");
      viz_frame_draw_axes (cr, &L.f, style);
    }
  viz_end (cr);
}

void
viz_draw_raster (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style)
{
  viz_raster_draw (cr, width, height, data, style);
}
