/* Bars per group: stacked (spatial and temporal norm per step) or side by
 * side (forward and backward time per method). */
#include "viz-private.h"
#include <math.h>

typedef struct {
  VizFrame f;
  VizLegendItem *legend;
  gboolean has_data;
} BarsLayout;

static double
value (const VizBars *d, int s, int g)
{
  return d->values[(gsize) s * d->n_groups + g];
}

static gboolean
bars_valid (const VizBars *d)
{
  return d && d->values && d->n_series > 0 && d->n_groups > 0;
}

/* The y extent of what is drawn: stacks add up positive and negative parts
 * separately, side by side bars are the values themselves. */
static gboolean
bars_range (const VizBars *d, double *lo, double *hi)
{
  *lo = 0, *hi = 0;
  gboolean any = FALSE;
  for (int g = 0; bars_valid (d) && g < d->n_groups; g++)
    {
      double pos = 0, neg = 0;
      for (int s = 0; s < d->n_series; s++)
        {
          double v = value (d, s, g);
          if (!isfinite (v))
            continue;
          any = TRUE;
          if (d->mode == VIZ_BARS_STACKED)
            v >= 0 ? (pos += v) : (neg += v);
          else
            pos = MAX (pos, v), neg = MIN (neg, v);
        }
      *hi = MAX (*hi, pos), *lo = MIN (*lo, neg);
    }
  return any;
}

static void
bars_layout (BarsLayout *L, double width, double height, const VizBars *d, const VizStyle *style)
{
  style = viz_style_or_default (style);
  VizFrame *f = &L->f;
  viz_frame_init (f);
  L->legend = NULL;
  double lo, hi;
  L->has_data = bars_range (d, &lo, &hi);
  f->x_grid = FALSE;
  f->x.integer = TRUE;
  if (d)
    {
      f->title = d->title;
      f->x_title = d->x_title;
      f->y_title = d->y_title;
      f->x.names = d->group_labels;
      f->x.n_names = d->group_labels ? d->n_groups : 0;
      f->x.name_first = d->group_first;
    }
  if (bars_valid (d))
    {
      viz_scale_set (&f->x, -0.5, d->n_groups - 0.5, 0, FALSE);
      L->legend = g_new0 (VizLegendItem, d->n_series);
      for (int s = 0; d->series_labels && s < d->n_series; s++)
        if (d->series_labels[s])
          L->legend[f->n_legend++] = (VizLegendItem) { d->series_labels[s],
                                                       viz_style_series_color (style, s), VIZ_LEGEND_BOX };
      f->legend = L->legend;
    }
  if (L->has_data)
    {
      viz_scale_set (&f->y, lo, hi, 0, FALSE);
      /* Bars grow from zero: room only beyond the ends, more for numbers. */
      double span = f->y.hi - f->y.lo, room = d->show_values ? 0.12 : 0.05;
      if (hi > 0 || lo == 0)
        f->y.hi += span * room;
      if (lo < 0)
        f->y.lo -= span * room;
    }
  viz_frame_layout (f, width, height, style);
}

gboolean
viz_bars_layout (double width, double height, const VizBars *data, const VizStyle *style,
                 VizPlotMap *map)
{
  if (!viz_size_ok (width, height))
    return FALSE;
  BarsLayout L;
  bars_layout (&L, width, height, data, style);
  viz_frame_map (&L.f, map);
  g_free (L.legend);
  return L.f.ok;
}

static void
value_label (cairo_t *cr, const VizFrame *f, const VizStyle *style, double cx, double bar_w,
             double v, double y_end)
{
  char buf[32];
  g_ascii_formatd (buf, sizeof buf, "%.3g", v);
  if (viz_est_width (buf, f->m.tick_fs * 0.9) > bar_w + f->m.gap * 2)
    return;
  gboolean up = v >= 0;
  viz_text (cr, style, &style->foreground, f->m.tick_fs * 0.9, FALSE, cx,
            up ? y_end - f->m.gap : y_end + f->m.gap, 0, VIZ_ALIGN_CENTER,
            up ? VIZ_ALIGN_END : VIZ_ALIGN_START, 0, buf);
}

static void
fill_bar (cairo_t *cr, const VizFrame *f, double x0, double x1, double v0, double v1)
{
  double ya = round (viz_frame_y (f, v0)), yb = round (viz_frame_y (f, v1));
  cairo_rectangle (cr, round (x0), MIN (ya, yb), round (x1) - round (x0), fabs (yb - ya));
  cairo_fill (cr);
}

static void
draw_stacked (cairo_t *cr, const VizFrame *f, const VizBars *d, const VizStyle *style)
{
  double slot = f->area.width / d->n_groups, bw = slot * 0.7;
  for (int g = 0; g < d->n_groups; g++)
    {
      double cx = viz_frame_x (f, g), pos = 0, neg = 0;
      gboolean any = FALSE;
      for (int s = 0; s < d->n_series; s++)
        {
          double v = value (d, s, g);
          if (!isfinite (v))
            continue;
          VizColor c = viz_style_series_color (style, s);
          viz_set_color (cr, &c);
          double *base = v >= 0 ? &pos : &neg;
          fill_bar (cr, f, cx - bw / 2, cx + bw / 2, *base, *base + v);
          *base += v;
          any = TRUE;
        }
      if (d->show_values && any)
        value_label (cr, f, style, cx, bw, pos + neg, viz_frame_y (f, neg < 0 && pos == 0 ? neg : pos));
    }
}

static void
draw_grouped (cairo_t *cr, const VizFrame *f, const VizBars *d, const VizStyle *style)
{
  double slot = f->area.width / d->n_groups, sub = slot * 0.8 / d->n_series;
  for (int g = 0; g < d->n_groups; g++)
    for (int s = 0; s < d->n_series; s++)
      {
        double v = value (d, s, g);
        if (!isfinite (v))
          continue;
        double x0 = viz_frame_x (f, g) - slot * 0.4 + s * sub;
        double gap = sub >= 6 ? MAX (1, sub * 0.08) : 0;
        VizColor c = viz_style_series_color (style, s);
        viz_set_color (cr, &c);
        fill_bar (cr, f, x0 + gap, x0 + sub - gap, 0, v);
        if (d->show_values)
          value_label (cr, f, style, x0 + sub / 2, sub, v, viz_frame_y (f, v));
      }
}

static void
draw_zero_line (cairo_t *cr, const VizFrame *f, const VizStyle *style)
{
  if (!(f->y.lo < 0 && f->y.hi > 0))
    return;
  double y = floor (viz_frame_y (f, 0)) + 0.5;
  viz_set_color (cr, &style->axis);
  cairo_set_line_width (cr, 1);
  cairo_move_to (cr, f->area.x, y);
  cairo_line_to (cr, f->area.x + f->area.width, y);
  cairo_stroke (cr);
}

void
viz_bars_draw (cairo_t *cr, double width, double height, const VizBars *data, const VizStyle *style)
{
  if (!viz_begin (cr, width, height, style))
    return;
  style = viz_style_or_default (style);
  BarsLayout L;
  bars_layout (&L, width, height, data, style);
  const VizFrame *f = &L.f;
  viz_frame_draw_header (cr, f, style);
  if (f->ok)
    {
      viz_frame_draw_grid (cr, f, style);
      if (L.has_data)
        {
          cairo_save (cr);
          viz_frame_clip (cr, f);
          if (data->mode == VIZ_BARS_STACKED)
            draw_stacked (cr, f, data, style);
          else
            draw_grouped (cr, f, data, style);
          draw_zero_line (cr, f, style);
          cairo_restore (cr);
        }
      else
        viz_draw_note (cr, style, &f->area, "no data");
      viz_frame_draw_axes (cr, f, style);
    }
  g_free (L.legend);
  viz_end (cr);
}

void
viz_draw_bars (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style)
{
  viz_bars_draw (cr, width, height, data, style);
}
