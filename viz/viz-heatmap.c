/* Heat map of a matrix (e.g. epsilon products over spans [t][t']) with a
 * colour bar; NaN cells are masked. */
#include "viz-private.h"
#include <math.h>

typedef struct {
  VizFrame f;
  VizScale v;               /* value scale of the colours and the bar */
  VizRect bar;
  gboolean has_data;
} HeatLayout;

static gboolean
heat_valid (const VizHeatmap *d)
{
  return d && d->values && d->rows > 0 && d->cols > 0;
}

static gboolean
shown (const VizHeatmap *d, double v)
{
  return isfinite (v) && (!d || !d->log_scale || v > 0);
}

static gboolean
value_range (const VizHeatmap *d, double *lo, double *hi)
{
  *lo = INFINITY, *hi = -INFINITY;
  for (gsize i = 0; heat_valid (d) && i < (gsize) d->rows * d->cols; i++)
    if (shown (d, d->values[i]))
      *lo = MIN (*lo, d->values[i]), *hi = MAX (*hi, d->values[i]);
  return *hi >= *lo;
}

static void
set_value_scale (VizScale *v, const VizHeatmap *d, gboolean has_data, double lo, double hi)
{
  *v = (VizScale) { 0 };
  gboolean log = d && d->log_scale;
  if (d && d->fix_range && d->v_max > d->v_min && (!log || d->v_min > 0))
    viz_scale_set (v, d->v_min, d->v_max, 0, log);
  else if (has_data)
    viz_scale_set (v, lo, hi, 0, log);
  else
    viz_scale_set (v, log ? 1 : 0, log ? 10 : 1, 0, log);
}

/* Room right of the plot: gap, the bar, its tick labels and title. */
static double
bar_room (HeatLayout *L, const VizHeatmap *d, const VizMetrics *m, double guess_len)
{
  viz_scale_make_ticks (&L->v, guess_len, FALSE, m);
  return m->fs * 1.2 + m->fs * 1.1 + m->tick_len + m->gap
         + MAX (viz_scale_max_label_width (&L->v, m->tick_fs), m->fs * 2)
         + (d && d->scale_title && *d->scale_title ? m->fs * 1.7 : 0);
}

static void
square_up (VizFrame *f, int rows, int cols)
{
  double cell = MIN (f->area.width / cols, f->area.height / rows);
  double w = floor (cell * cols), h = floor (cell * rows);
  f->area.x = round (f->area.x + (f->area.width - w) / 2);
  f->area.width = w;
  f->area.height = h;
}

static void
heat_layout (HeatLayout *L, double width, double height, const VizHeatmap *d, const VizStyle *style)
{
  VizFrame *f = &L->f;
  viz_frame_init (f);
  double lo, hi;
  L->has_data = value_range (d, &lo, &hi);
  set_value_scale (&L->v, d, L->has_data, lo, hi);
  f->x_grid = f->y_grid = FALSE;
  f->x.integer = f->y.integer = TRUE;
  f->y.reversed = TRUE;
  if (d)
    {
      f->title = d->title;
      f->x_title = d->col_title;
      f->y_title = d->row_title;
      f->x.name_first = d->col_first;
      f->y.name_first = d->row_first;
    }
  if (heat_valid (d))
    {
      viz_scale_set (&f->x, -0.5, d->cols - 0.5, 0, FALSE);
      viz_scale_set (&f->y, -0.5, d->rows - 0.5, 0, FALSE);
    }
  VizMetrics m;
  viz_metrics (style, &m);
  f->extra_right = bar_room (L, d, &m, height * 0.6);
  viz_frame_layout (f, width, height, style);
  if (f->ok && heat_valid (d) && d->square_cells)
    {
      square_up (f, d->rows, d->cols);
      viz_scale_make_ticks (&f->x, f->area.width, TRUE, &f->m);
      viz_scale_make_ticks (&f->y, f->area.height, FALSE, &f->m);
    }
  L->bar = (VizRect) { f->area.x + f->area.width + round (m.fs * 1.2), f->area.y,
                       round (m.fs * 1.1), f->area.height };
  viz_scale_make_ticks (&L->v, L->bar.height, FALSE, &m);
}

static void
cell_rect (const VizFrame *f, int rows, int cols, int r, int c, VizRect *out)
{
  double cw = f->area.width / cols, ch = f->area.height / rows;
  double x0 = viz_snap_edge (f->area.x + c * cw, cw), x1 = viz_snap_edge (f->area.x + (c + 1) * cw, cw);
  double y0 = viz_snap_edge (f->area.y + r * ch, ch), y1 = viz_snap_edge (f->area.y + (r + 1) * ch, ch);
  *out = (VizRect) { x0, y0, x1 - x0, y1 - y0 };
}

gboolean
viz_heatmap_cell_rect (double width, double height, const VizHeatmap *data, const VizStyle *style,
                       int row, int col, VizRect *cell)
{
  if (!viz_size_ok (width, height) || !heat_valid (data)
      || row < 0 || row >= data->rows || col < 0 || col >= data->cols)
    return FALSE;
  HeatLayout L;
  heat_layout (&L, width, height, data, style);
  if (!L.f.ok)
    return FALSE;
  cell_rect (&L.f, data->rows, data->cols, row, col, cell);
  return TRUE;
}

static VizColor
color_of (const VizHeatmap *d, const VizScale *v, const VizStyle *style, double x)
{
  if (!shown (d, x))
    return style->masked;
  return viz_ramp (viz_scale_frac (v, x));
}

VizColor
viz_heatmap_value_color (const VizHeatmap *data, const VizStyle *style, double value)
{
  style = viz_style_or_default (style);
  VizScale v;
  double lo, hi;
  gboolean has = value_range (data, &lo, &hi);
  set_value_scale (&v, data, has, lo, hi);
  return color_of (data, &v, style, value);
}

static void
cell_value (cairo_t *cr, const VizFrame *f, const VizStyle *style, const VizRect *r,
            double v, const VizColor *bg)
{
  char buf[32];
  g_ascii_formatd (buf, sizeof buf, "%.2g", v);
  double size = f->m.tick_fs * 0.95;
  if (viz_est_width (buf, size) + 4 > r->width || size * 1.3 > r->height)
    return;
  /* Dark text on the light end of the ramp, light text on the dark end. */
  double lum = 0.2126 * bg->r + 0.7152 * bg->g + 0.0722 * bg->b;
  VizColor ink = lum > 0.45 ? (VizColor) { 0.1, 0.1, 0.1, 1 } : (VizColor) { 1, 1, 1, 1 };
  viz_text (cr, style, &ink, size, FALSE, r->x + r->width / 2, r->y + r->height / 2, 0,
            VIZ_ALIGN_CENTER, VIZ_ALIGN_CENTER, 0, buf);
}

static void
draw_cells (cairo_t *cr, const HeatLayout *L, const VizHeatmap *d, const VizStyle *style)
{
  for (int r = 0; r < d->rows; r++)
    for (int c = 0; c < d->cols; c++)
      {
        double v = d->values[(gsize) r * d->cols + c];
        VizRect rect;
        cell_rect (&L->f, d->rows, d->cols, r, c, &rect);
        VizColor col = color_of (d, &L->v, style, v);
        viz_set_color (cr, &col);
        cairo_rectangle (cr, rect.x, rect.y, rect.width, rect.height);
        cairo_fill (cr);
        if (d->show_values && shown (d, v))
          cell_value (cr, &L->f, style, &rect, v, &col);
      }
}

static void
draw_color_bar (cairo_t *cr, const HeatLayout *L, const VizHeatmap *d, const VizStyle *style)
{
  const VizRect *b = &L->bar;
  const VizMetrics *m = &L->f.m;
  cairo_pattern_t *pat = cairo_pattern_create_linear (0, b->y + b->height, 0, b->y);
  for (int i = 0; i <= 16; i++)
    {
      VizColor c = viz_ramp (i / 16.0);
      cairo_pattern_add_color_stop_rgb (pat, i / 16.0, c.r, c.g, c.b);
    }
  cairo_rectangle (cr, b->x, b->y, b->width, b->height);
  cairo_set_source (cr, pat);
  cairo_fill (cr);
  cairo_pattern_destroy (pat);
  viz_set_color (cr, &style->axis);
  cairo_set_line_width (cr, 1);
  cairo_rectangle (cr, b->x - 0.5, b->y - 0.5, b->width + 1, b->height + 1);
  char buf[64];
  double x1 = b->x + b->width + 0.5, lab_w = 0;
  for (int i = 0; i < L->v.n_ticks; i++)
    {
      double y = floor (b->y + (1 - viz_scale_frac (&L->v, L->v.ticks[i])) * b->height) + 0.5;
      cairo_move_to (cr, x1, y);
      cairo_line_to (cr, x1 + m->tick_len, y);
    }
  cairo_stroke (cr);
  for (int i = 0; i < L->v.n_ticks; i++)
    {
      double y = b->y + (1 - viz_scale_frac (&L->v, L->v.ticks[i])) * b->height;
      viz_scale_label (&L->v, L->v.ticks[i], buf, sizeof buf);
      lab_w = MAX (lab_w, viz_est_width (buf, m->tick_fs));
      viz_text (cr, style, &style->foreground, m->tick_fs, FALSE, x1 + m->tick_len + m->gap, y, 0,
                VIZ_ALIGN_START, VIZ_ALIGN_CENTER, 0, buf);
    }
  if (d && d->scale_title && *d->scale_title)
    viz_text (cr, style, &style->foreground, m->fs, FALSE,
              x1 + m->tick_len + m->gap + MAX (lab_w, m->fs * 2) + m->fs * 0.85,
              b->y + b->height / 2, -G_PI / 2, VIZ_ALIGN_CENTER, VIZ_ALIGN_CENTER,
              b->height, d->scale_title);
}

void
viz_heatmap_draw (cairo_t *cr, double width, double height, const VizHeatmap *data,
                  const VizStyle *style)
{
  if (!viz_begin (cr, width, height, style))
    return;
  style = viz_style_or_default (style);
  HeatLayout L;
  heat_layout (&L, width, height, data, style);
  const VizFrame *f = &L.f;
  viz_frame_draw_header (cr, f, style);
  if (f->ok)
    {
      if (L.has_data)
        {
          cairo_save (cr);
          viz_frame_clip (cr, f);
          draw_cells (cr, &L, data, style);
          cairo_restore (cr);
          draw_color_bar (cr, &L, data, style);
        }
      else
        viz_draw_note (cr, style, &f->area, "no data");
      viz_frame_draw_axes (cr, f, style);
    }
  viz_end (cr);
}

void
viz_draw_heatmap (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style)
{
  viz_heatmap_draw (cr, width, height, data, style);
}
