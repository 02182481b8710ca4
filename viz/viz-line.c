/* Line chart: loss and accuracy curves, memory and time against T, cosine
 * curves, the surrogate derivative. */
#include "viz-private.h"
#include <math.h>

typedef struct {
  VizFrame f;
  VizLegendItem *legend;
  gboolean has_data;
} LineLayout;

static double
point_x (const VizSeries *s, int i)
{
  return s->x ? s->x[i] : i;
}

/* A point is drawn when both coordinates are finite and fit the axes; a
 * negative log_y flag stands for a log x axis too (see axes_flag). */
static gboolean
point_ok (const VizSeries *s, int i, int log_axes)
{
  double x = point_x (s, i), y = s->y[i];
  return isfinite (x) && isfinite (y) && (!(log_axes & 1) || y > 0) && (!(log_axes & 2) || x > 0);
}

/* Bit 0: log y, bit 1: log x. */
static int
axes_flag (const VizLineChart *d)
{
  return (d->log_y ? 1 : 0) | (d->log_x ? 2 : 0);
}

int
viz_series_nearest (const VizSeries *s, double x)
{
  int best = -1;
  double dist = INFINITY;
  for (int i = 0; s && s->y && i < s->n; i++)
    if (point_ok (s, i, 0) && fabs (point_x (s, i) - x) < dist)
      {
        dist = fabs (point_x (s, i) - x);
        best = i;
      }
  return best;
}

static gboolean
data_range (const VizLineChart *d, double *x0, double *x1, double *y0, double *y1)
{
  *x0 = *y0 = INFINITY;
  *x1 = *y1 = -INFINITY;
  for (int k = 0; d && d->series && k < d->n_series; k++)
    {
      const VizSeries *s = &d->series[k];
      for (int i = 0; s->y && i < s->n; i++)
        if (point_ok (s, i, axes_flag (d)))
          {
            *x0 = MIN (*x0, point_x (s, i)), *x1 = MAX (*x1, point_x (s, i));
            *y0 = MIN (*y0, s->y[i]), *y1 = MAX (*y1, s->y[i]);
          }
    }
  return *x1 >= *x0;
}

/* Dots at the ends would be cut in half by the plot's edge. */
static gboolean
any_markers (const VizLineChart *d)
{
  for (int k = 0; k < d->n_series; k++)
    if (d->series[k].markers)
      return TRUE;
  return FALSE;
}

static VizColor
series_color (const VizLineChart *d, int k, const VizStyle *style)
{
  const VizSeries *s = &d->series[k];
  return s->color ? *s->color : viz_style_series_color (style, k);
}

static void
make_legend (LineLayout *L, const VizLineChart *d, const VizStyle *style)
{
  L->legend = g_new0 (VizLegendItem, MAX (MAX (d->n_series, d->n_legend), 1));
  int n = 0;
  for (int k = 0; d->legend && k < d->n_legend; k++)
    if (d->legend[k].label && *d->legend[k].label)
      L->legend[n++] = (VizLegendItem) { d->legend[k].label,
                                         d->legend[k].color ? *d->legend[k].color : style->foreground,
                                         d->legend[k].dashed ? VIZ_LEGEND_DASHED : VIZ_LEGEND_LINE };
  for (int k = 0; d->n_legend == 0 && k < d->n_series; k++)
    if (d->series[k].label && *d->series[k].label)
      L->legend[n++] = (VizLegendItem) { d->series[k].label, series_color (d, k, style),
                                         d->series[k].dashed ? VIZ_LEGEND_DASHED : VIZ_LEGEND_LINE };
  L->f.legend = L->legend;
  L->f.n_legend = n;
}

static void
line_layout (LineLayout *L, double width, double height, const VizLineChart *d,
             const VizStyle *style)
{
  style = viz_style_or_default (style);
  VizFrame *f = &L->f;
  viz_frame_init (f);
  L->legend = NULL;
  double x0, x1, y0, y1;
  L->has_data = data_range (d, &x0, &x1, &y0, &y1);
  if (!d)
    {
      viz_frame_layout (f, width, height, style);
      return;
    }
  f->title = d->title;
  f->x_title = d->x_title;
  f->y_title = d->y_title;
  if ((d->series && d->n_series > 0) || d->n_legend > 0)
    make_legend (L, d, style);
  f->x.integer = d->x_integer && !d->log_x;
  if (d->fix_x && d->x_max > d->x_min && (!d->log_x || d->x_min > 0))
    viz_scale_set (&f->x, d->x_min, d->x_max, 0, d->log_x);
  else if (L->has_data)
    viz_scale_set (&f->x, x0, x1, any_markers (d) ? 0.03 : 0, d->log_x);
  else
    viz_scale_set (&f->x, d->log_x ? 1 : 0, d->log_x ? 10 : 1, 0, d->log_x);
  gboolean fixed_y = d->fix_y && d->y_max > d->y_min && (!d->log_y || d->y_min > 0);
  if (fixed_y)
    viz_scale_set (&f->y, d->y_min, d->y_max, 0, d->log_y);
  else if (L->has_data)
    viz_scale_set (&f->y, y0, y1, 0.05, d->log_y);
  else
    viz_scale_set (&f->y, d->log_y ? 1 : 0, d->log_y ? 10 : 1, 0, d->log_y);
  viz_frame_layout (f, width, height, style);
}

gboolean
viz_line_chart_layout (double width, double height, const VizLineChart *data,
                       const VizStyle *style, VizPlotMap *map)
{
  if (!viz_size_ok (width, height))
    return FALSE;
  LineLayout L;
  line_layout (&L, width, height, data, style);
  viz_frame_map (&L.f, map);
  g_free (L.legend);
  return L.f.ok;
}

/* Long series are drawn per column of half a unit (a device pixel even at
 * scale 2) rather than point by point: a solid series as the band each
 * column's points span (joined to the column before), one line width wide,
 * which covers the pixels the whole stroke would; a dashed one as a line
 * through the middle of each column's span, so its dashes stay. Stroking
 * tens of thousands of zigzag segments cost milliseconds a frame, and the
 * cost now follows the plot's width, not the run's length. */
#define COLUMN 0.5

typedef struct {
  double col;                 /* column index; NAN: none open */
  double lo, hi;              /* screen y span of its points */
  double last;                /* y of its last point */
} Column;

static gboolean
thinned (const VizFrame *f, const VizSeries *s)
{
  if (s->n <= 8 * MAX (f->area.width, 1.0))
    return FALSE;
  for (int i = 1; i < s->n; i++)
    if (point_x (s, i) < point_x (s, i - 1))
      return FALSE;
  return TRUE;
}

static void
column_emit (cairo_t *cr, const Column *c, gboolean dashed, gboolean *pen, double lw)
{
  double x = (c->col + 0.5) * COLUMN;
  if (dashed)
    viz_path_to (cr, pen, x, (c->lo + c->hi) / 2);
  else
    cairo_rectangle (cr, x - lw / 2, c->lo - lw / 2, lw, c->hi - c->lo + lw);
}

/* Builds the band (to fill) or the middle line (to stroke). */
static void
path_thinned (cairo_t *cr, const VizFrame *f, const VizSeries *s, int log_y, double lw)
{
  Column c = { NAN, 0, 0, 0 };
  gboolean pen = FALSE;
  for (int i = 0; i < s->n; i++)
    {
      if (!point_ok (s, i, log_y))
        {
          if (!isnan (c.col))
            column_emit (cr, &c, s->dashed, &pen, lw);
          c.col = NAN;
          pen = FALSE;
          continue;
        }
      double x = viz_frame_x (f, point_x (s, i)), y = viz_frame_y (f, s->y[i]);
      double col = floor (x / COLUMN);
      if (col != c.col)
        {
          /* A band starts at the previous column's last point, if any. */
          gboolean joined = !isnan (c.col) && !s->dashed;
          double from = joined ? c.last : y;
          if (!isnan (c.col))
            column_emit (cr, &c, s->dashed, &pen, lw);
          c.col = col;
          c.lo = MIN (y, from);
          c.hi = MAX (y, from);
        }
      c.lo = MIN (c.lo, y);
      c.hi = MAX (c.hi, y);
      c.last = y;
    }
  if (!isnan (c.col))
    column_emit (cr, &c, s->dashed, &pen, lw);
}

static void
draw_series (cairo_t *cr, const VizFrame *f, const VizSeries *s, const VizColor *c, int log_y)
{
  double dash[] = { 6, 4 };
  const double lw = 1.75;
  cairo_save (cr);
  viz_set_color (cr, c);
  cairo_set_line_width (cr, lw);
  if (s->dashed)
    cairo_set_dash (cr, dash, 2, 0);
  if (thinned (f, s))
    {
      path_thinned (cr, f, s, log_y, lw);
      if (s->dashed)
        cairo_stroke (cr);
      else
        cairo_fill (cr);
    }
  else
    {
      gboolean pen = FALSE;
      for (int i = 0; i < s->n; i++)
        {
          if (!point_ok (s, i, log_y))
            {
              pen = FALSE;
              continue;
            }
          viz_path_to (cr, &pen, viz_frame_x (f, point_x (s, i)), viz_frame_y (f, s->y[i]));
        }
      cairo_stroke (cr);
    }
  /* A point with no neighbour would draw nothing as a line. */
  for (int i = 0; i < s->n; i++)
    {
      if (!point_ok (s, i, log_y))
        continue;
      gboolean alone = (i == 0 || !point_ok (s, i - 1, log_y)) && (i == s->n - 1 || !point_ok (s, i + 1, log_y));
      if (!s->markers && !alone)
        continue;
      cairo_new_sub_path (cr);
      cairo_arc (cr, viz_frame_x (f, point_x (s, i)), viz_frame_y (f, s->y[i]), 2.75, 0, 2 * G_PI);
    }
  cairo_fill (cr);
  cairo_restore (cr);
}

/* Dashed vertical lines, their labels just inside the top of the plot,
 * moved down a row when they would overlap the one before. */
static void
draw_marks (cairo_t *cr, const VizFrame *f, const VizLineChart *d, const VizStyle *style)
{
  double dash[] = { 3, 3 }, last_end = -INFINITY;
  int row = 0;
  for (int i = 0; d->marks && i < d->n_marks; i++)
    {
      const VizMark *mk = &d->marks[i];
      if (!isfinite (mk->x) || (d->log_x && mk->x <= 0))
        continue;
      double fx = viz_scale_frac (&f->x, mk->x);
      if (fx < 0 || fx > 1)
        continue;
      double x = floor (f->area.x + fx * f->area.width) + 0.5;
      const VizColor *c = mk->color ? mk->color : &style->axis;
      cairo_save (cr);
      viz_set_color (cr, c);
      cairo_set_line_width (cr, 1.25);
      cairo_set_dash (cr, dash, 2, 0);
      cairo_move_to (cr, x, f->area.y);
      cairo_line_to (cr, x, f->area.y + f->area.height);
      cairo_stroke (cr);
      cairo_restore (cr);
      if (!mk->label || !*mk->label)
        continue;
      double w = viz_est_width (mk->label, f->m.tick_fs);
      gboolean left = x + 3 + w > f->area.x + f->area.width;
      double x0 = left ? x - 3 - w : x + 3;
      row = x0 < last_end + 4 ? (row + 1) % 3 : 0;
      last_end = x0 + w;
      viz_text (cr, style, c, f->m.tick_fs, FALSE, left ? x - 3 : x + 3,
                f->area.y + 2 + row * f->m.tick_fs * 1.2, 0,
                left ? VIZ_ALIGN_END : VIZ_ALIGN_START, VIZ_ALIGN_START, 0, mk->label);
    }
}

void
viz_line_chart_draw (cairo_t *cr, double width, double height, const VizLineChart *data,
                     const VizStyle *style)
{
  if (!viz_begin (cr, width, height, style))
    return;
  style = viz_style_or_default (style);
  LineLayout L;
  line_layout (&L, width, height, data, style);
  const VizFrame *f = &L.f;
  viz_frame_draw_header (cr, f, style);
  if (f->ok)
    {
      viz_frame_draw_grid (cr, f, style);
      if (L.has_data)
        {
          cairo_save (cr);
          viz_frame_clip (cr, f);
          for (int k = 0; k < data->n_series; k++)
            if (data->series[k].y)
              {
                VizColor c = series_color (data, k, style);
                draw_series (cr, f, &data->series[k], &c, axes_flag (data));
              }
          cairo_restore (cr);
          draw_marks (cr, f, data, style);
        }
      else
        viz_draw_note (cr, style, &f->area, "no data");
      viz_frame_draw_axes (cr, f, style);
    }
  g_free (L.legend);
  viz_end (cr);
}

void
viz_draw_line_chart (cairo_t *cr, double width, double height, gconstpointer data,
                     const VizStyle *style)
{
  viz_line_chart_draw (cr, width, height, data, style);
}
