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

/* A point is drawn when both coordinates are finite and y fits the axis. */
static gboolean
point_ok (const VizSeries *s, int i, gboolean log_y)
{
  double x = point_x (s, i), y = s->y[i];
  return isfinite (x) && isfinite (y) && (!log_y || y > 0);
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
        if (point_ok (s, i, d->log_y))
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
  L->legend = g_new0 (VizLegendItem, MAX (d->n_series, 1));
  int n = 0;
  for (int k = 0; k < d->n_series; k++)
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
  f->x.integer = d->x_integer;
  if (d->series && d->n_series > 0)
    make_legend (L, d, style);
  if (d->fix_x && d->x_max > d->x_min)
    viz_scale_set (&f->x, d->x_min, d->x_max, 0, FALSE);
  else if (L->has_data)
    viz_scale_set (&f->x, x0, x1, any_markers (d) ? 0.03 : 0, FALSE);
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

/* Long series are thinned per column of half a unit (a device pixel even
 * at scale 2): each column keeps its first, lowest, highest and last point
 * in their order, so the stroke covers the pixels the whole series would,
 * and drawing a run of a million iterations costs the plot's width. */
typedef struct {
  cairo_t *cr;
  gboolean pen;
  double col;                 /* the column being gathered; NAN: none */
  int n;                      /* points gathered: first, low, high, last */
  double x[4], y[4];
  int idx[4];
} Thinner;

static void
thinner_emit (Thinner *t, double x, double y)
{
  if (t->pen)
    cairo_line_to (t->cr, x, y);
  else
    cairo_move_to (t->cr, x, y);
  t->pen = TRUE;
}

static void
thinner_flush (Thinner *t)
{
  int order[4] = { 0, 1, 2, 3 };
  int n = t->n;
  /* by index, duplicates dropped */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && t->idx[order[j]] < t->idx[order[j - 1]]; j--)
      {
        int k = order[j];
        order[j] = order[j - 1], order[j - 1] = k;
      }
  for (int i = 0; i < n; i++)
    if (i == 0 || t->idx[order[i]] != t->idx[order[i - 1]])
      thinner_emit (t, t->x[order[i]], t->y[order[i]]);
  t->n = 0;
  t->col = NAN;
}

static void
thinner_add (Thinner *t, double x, double y, int i)
{
  double col = floor (x * 2);
  if (t->n && col != t->col)
    thinner_flush (t);
  if (!t->n)
    {
      t->col = col;
      for (int k = 0; k < 4; k++)
        t->x[k] = x, t->y[k] = y, t->idx[k] = i;
      t->n = 4;
      return;
    }
  /* y grows downwards; low and high are on the screen */
  if (y < t->y[1])
    t->x[1] = x, t->y[1] = y, t->idx[1] = i;
  if (y > t->y[2])
    t->x[2] = x, t->y[2] = y, t->idx[2] = i;
  t->x[3] = x, t->y[3] = y, t->idx[3] = i;
}

static gboolean
x_sorted (const VizSeries *s)
{
  for (int i = 1; i < s->n; i++)
    if (point_x (s, i) < point_x (s, i - 1))
      return FALSE;
  return TRUE;
}

static void
path_series (cairo_t *cr, const VizFrame *f, const VizSeries *s, gboolean log_y)
{
  gboolean thin = s->n > 8 * MAX (f->area.width, 1.0) && x_sorted (s);
  Thinner t = { cr, FALSE, NAN, 0 };
  for (int i = 0; i < s->n; i++)
    {
      if (!point_ok (s, i, log_y))
        {
          thinner_flush (&t);
          t.pen = FALSE;
          continue;
        }
      double x = viz_frame_x (f, point_x (s, i)), y = viz_frame_y (f, s->y[i]);
      if (thin)
        thinner_add (&t, x, y, i);
      else
        thinner_emit (&t, x, y);
    }
  thinner_flush (&t);
}

static void
draw_series (cairo_t *cr, const VizFrame *f, const VizSeries *s, const VizColor *c, gboolean log_y)
{
  double dash[] = { 6, 4 };
  cairo_save (cr);
  viz_set_color (cr, c);
  cairo_set_line_width (cr, 1.75);
  if (s->dashed)
    cairo_set_dash (cr, dash, 2, 0);
  path_series (cr, f, s, log_y);
  cairo_stroke (cr);
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
                draw_series (cr, f, &data->series[k], &c, data->log_y);
              }
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
viz_draw_line_chart (cairo_t *cr, double width, double height, gconstpointer data,
                     const VizStyle *style)
{
  viz_line_chart_draw (cr, width, height, data, style);
}
