/* The viz renderers, checked by reading back pixels of what a reader relies
 * on: spike marks in their cells, the threshold line where it belongs, the
 * ends of the heat map ramp, "no data" instead of a crash, and exports that
 * are real files and never clobber one on failure.
 *
 * With VIZ_PREVIEW_DIR set, /viz/preview also writes every view in both
 * styles there as PNG for a look by eye. */
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include "viz.h"
#include "viz-private.h"

/* ---- Pixels --------------------------------------------------------- */

typedef struct {
  cairo_surface_t *surface;
  cairo_t *cr;
  int width, height;
  const VizStyle *style;
} Canvas;

static void
canvas_setup (Canvas *c, gconstpointer style)
{
  c->width = 640;
  c->height = 400;
  c->style = style;
  c->surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, c->width, c->height);
  c->cr = cairo_create (c->surface);
}

static void
canvas_teardown (Canvas *c, gconstpointer style)
{
  cairo_destroy (c->cr);
  cairo_surface_destroy (c->surface);
}

typedef struct {
  int r, g, b;
} Px;

static Px
pixel (Canvas *c, double x, double y)
{
  cairo_surface_flush (c->surface);
  int ix = CLAMP ((int) floor (x), 0, c->width - 1), iy = CLAMP ((int) floor (y), 0, c->height - 1);
  const guint8 *data = cairo_image_surface_get_data (c->surface);
  guint32 p = *(const guint32 *) (data + (gsize) iy * cairo_image_surface_get_stride (c->surface) + ix * 4);
  /* Every view paints an opaque background, so no unpremultiplying. */
  return (Px) { p >> 16 & 0xff, p >> 8 & 0xff, p & 0xff };
}

static gboolean
same_color (Px p, const VizColor *c, int tol)
{
  return abs (p.r - (int) lround (c->r * 255)) <= tol
         && abs (p.g - (int) lround (c->g * 255)) <= tol
         && abs (p.b - (int) lround (c->b * 255)) <= tol;
}

/* Pixels in the rectangle that differ from the background. */
static int
count_drawn (Canvas *c, double x0, double y0, double x1, double y1)
{
  int n = 0;
  for (int y = MAX (0, (int) y0); y < MIN (c->height, (int) y1); y++)
    for (int x = MAX (0, (int) x0); x < MIN (c->width, (int) x1); x++)
      if (!same_color (pixel (c, x, y), &c->style->background, 2))
        n++;
  return n;
}

/* ---- Data ----------------------------------------------------------- */

enum { R_T = 8, R_N = 12 };

static gboolean
pattern_spike (int t, int i)
{
  return (t * 3 + i * 5) % 7 == 0 || (i == 4 && t >= 2);
}

static void
fill_pattern (guint8 *spikes)
{
  for (int t = 0; t < R_T; t++)
    for (int i = 0; i < R_N; i++)
      spikes[t * R_N + i] = pattern_spike (t, i);
}

static const gboolean r_marked[R_T] = { 0, 0, 0, 0, 0, 1, 1, 1 };

enum { TR_N = 3, TR_T = 24 };

/* Leaky integrate-and-fire with hard reset, so traces look like the real
 * thing: rising, crossing the threshold, dropping. */
static void
fill_traces (double *u, guint8 *s)
{
  const double drive[TR_N] = { 0.32, 0.45, 0.2 };
  for (int i = 0; i < TR_N; i++)
    {
      double v = 0;
      for (int t = 0; t < TR_T; t++)
        {
          v = 0.7 * v + drive[i] * (1 + 0.5 * sin (t * 0.9 + i));
          u[i * TR_T + t] = v;
          s[i * TR_T + t] = v >= 1.0;
          if (v >= 1.0)
            v = 0;
        }
    }
}

enum { H_T = 6 };

/* Epsilon products over spans: upper triangle, NaN below the diagonal. */
static void
fill_heat (double *m)
{
  for (int t = 0; t < H_T; t++)
    for (int u = 0; u < H_T; u++)
      m[t * H_T + u] = u < t ? NAN : pow (0.55, u - t) * (1 - 0.05 * t);
}

/* ---- Raster --------------------------------------------------------- */

static void
check_raster_cells (Canvas *c, const VizRaster *r)
{
  for (int t = 0; t < R_T; t++)
    for (int i = 0; i < R_N; i++)
      {
        VizRect cell;
        g_assert_true (viz_raster_cell_rect (c->width, c->height, r, c->style, t, i, &cell));
        g_assert_cmpfloat (cell.width, >=, 4);
        g_assert_cmpfloat (cell.height, >=, 4);
        Px p = pixel (c, cell.x + cell.width / 2, cell.y + cell.height / 2);
        const VizColor *want = pattern_spike (t, i) ? &c->style->foreground
                               : r->marked_steps && r->marked_steps[t] ? &c->style->highlight
                               : &c->style->background;
        if (!same_color (p, want, 2))
          g_error ("cell t=%d neuron=%d: pixel %d,%d,%d is not the %s colour", t, i, p.r, p.g, p.b,
                   pattern_spike (t, i) ? "mark" : "empty cell");
      }
}

static void
test_raster_cells (Canvas *c, gconstpointer style)
{
  guint8 spikes[R_T * R_N];
  fill_pattern (spikes);
  VizRaster r = { .spikes = spikes, .n_neurons = R_N, .T = R_T, .title = "Layer 1", .show_caption = TRUE };
  viz_raster_draw (c->cr, c->width, c->height, &r, c->style);
  check_raster_cells (c, &r);
  /* Neuron 0 is the bottom row, time runs left to right. */
  VizRect a, b;
  viz_raster_cell_rect (c->width, c->height, &r, c->style, 0, 0, &a);
  viz_raster_cell_rect (c->width, c->height, &r, c->style, 1, 1, &b);
  g_assert_cmpfloat (b.x, >, a.x);
  g_assert_cmpfloat (b.y, <, a.y);
  g_assert_false (viz_raster_cell_rect (c->width, c->height, &r, c->style, R_T, 0, &a));
}

static void
test_raster_marked_rate (Canvas *c, gconstpointer style)
{
  guint8 spikes[R_T * R_N];
  fill_pattern (spikes);
  VizRaster r = { .spikes = spikes, .n_neurons = R_N, .T = R_T, .marked_steps = r_marked,
                  .show_rate = TRUE, .show_caption = TRUE, .title = "Layer 1" };
  viz_raster_draw (c->cr, c->width, c->height, &r, c->style);
  check_raster_cells (c, &r);
  /* Neuron 4 fires most: its rate bar lies right of the raster. */
  VizRect cell;
  viz_raster_cell_rect (c->width, c->height, &r, c->style, R_T - 1, 4, &cell);
  VizColor bar = viz_style_series_color (c->style, 0);
  gboolean found = FALSE;
  for (double x = cell.x + cell.width + 2; x < c->width && !found; x++)
    found = same_color (pixel (c, x, cell.y + cell.height / 2), &bar, 2);
  g_assert_true (found);
}

static void
test_raster_large (Canvas *c, gconstpointer style)
{
  enum { N = 800, T = 30 };
  g_autofree guint8 *spikes = g_new0 (guint8, N * T);
  GRand *rand = g_rand_new_with_seed (7);
  for (int i = 0; i < N * T; i++)
    spikes[i] = g_rand_double (rand) < 0.08;
  g_rand_free (rand);
  VizRaster r = { .spikes = spikes, .n_neurons = N, .T = T, .show_rate = TRUE, .show_caption = TRUE };
  viz_raster_draw (c->cr, c->width, c->height, &r, c->style);
  VizRect lo, hi;
  g_assert_true (viz_raster_cell_rect (c->width, c->height, &r, c->style, 0, 0, &lo));
  g_assert_true (viz_raster_cell_rect (c->width, c->height, &r, c->style, T - 1, N - 1, &hi));
  g_assert_cmpfloat (lo.height, <, 1);
  g_assert_cmpint (count_drawn (c, lo.x, hi.y, hi.x + hi.width, lo.y + lo.height), >, 1000);
}

/* ---- Traces --------------------------------------------------------- */

static void
test_traces_threshold (Canvas *c, gconstpointer style)
{
  double u[TR_N * TR_T];
  guint8 s[TR_N * TR_T];
  fill_traces (u, s);
  const int ids[TR_N] = { 3, 17, 42 };
  VizTraces d = { .u = u, .spikes = s, .n_traces = TR_N, .T = TR_T, .vth = 1.0, .neuron_ids = ids,
                  .marked_steps = NULL, .title = "Membrane" };
  viz_traces_draw (c->cr, c->width, c->height, &d, c->style);
  VizPlotMap map;
  g_assert_true (viz_traces_layout (c->width, c->height, &d, c->style, &map));
  double y = viz_plot_map_y (&map, 1.0);
  g_assert_cmpfloat (y, >, map.area.y);
  g_assert_cmpfloat (y, <, map.area.y + map.area.height);
  int on = 0, near = 0, n = 0;
  for (double x = map.area.x + 1; x < map.area.x + map.area.width - 1; x++, n++)
    {
      on += same_color (pixel (c, x, y), &c->style->axis, 2);
      near += same_color (pixel (c, x, y - 4), &c->style->axis, 2)
              + same_color (pixel (c, x, y + 4), &c->style->axis, 2);
    }
  /* A dashed line 6 on, 4 off covers about 60% of the row. */
  g_assert_cmpint (on, >, n * 0.4);
  g_assert_cmpint (near, <, n * 0.05);
  /* Time maps left to right onto the plot. */
  g_assert_cmpfloat (viz_plot_map_x (&map, 0), <, viz_plot_map_x (&map, TR_T - 1));
  g_assert_cmpfloat (viz_plot_map_x (&map, 0), >, map.area.x);
}

/* ---- Heat map ------------------------------------------------------- */

static void
test_heatmap_ramp (Canvas *c, gconstpointer style)
{
  double m[H_T * H_T];
  fill_heat (m);
  VizHeatmap h = { .values = m, .rows = H_T, .cols = H_T, .title = "epsilon products",
                   .row_title = "t", .col_title = "t'", .scale_title = "product" };
  viz_heatmap_draw (c->cr, c->width, c->height, &h, c->style);
  double lo = INFINITY, hi = -INFINITY;
  int lo_at = 0, hi_at = 0;
  for (int i = 0; i < H_T * H_T; i++)
    if (!isnan (m[i]))
      {
        if (m[i] < lo)
          lo = m[i], lo_at = i;
        if (m[i] > hi)
          hi = m[i], hi_at = i;
      }
  VizColor top = viz_ramp (1), bottom = viz_ramp (0);
  VizRect r;
  g_assert_true (viz_heatmap_cell_rect (c->width, c->height, &h, c->style, hi_at / H_T, hi_at % H_T, &r));
  g_assert_true (same_color (pixel (c, r.x + r.width / 2, r.y + r.height / 2), &top, 2));
  g_assert_true (viz_heatmap_cell_rect (c->width, c->height, &h, c->style, lo_at / H_T, lo_at % H_T, &r));
  g_assert_true (same_color (pixel (c, r.x + r.width / 2, r.y + r.height / 2), &bottom, 2));
  for (int t = 1; t < H_T; t++)
    {
      g_assert_true (viz_heatmap_cell_rect (c->width, c->height, &h, c->style, t, t - 1, &r));
      g_assert_true (same_color (pixel (c, r.x + r.width / 2, r.y + r.height / 2), &c->style->masked, 2));
    }
  /* Row 0 on top, columns left to right. */
  VizRect a, b;
  viz_heatmap_cell_rect (c->width, c->height, &h, c->style, 0, 0, &a);
  viz_heatmap_cell_rect (c->width, c->height, &h, c->style, 1, 1, &b);
  g_assert_cmpfloat (b.y, >, a.y);
  g_assert_cmpfloat (b.x, >, a.x);
  VizColor v = viz_heatmap_value_color (&h, c->style, hi);
  g_assert_cmpfloat (fabs (v.g - top.g), <, 1e-9);
}

static void
test_heatmap_square_log (Canvas *c, gconstpointer style)
{
  double m[H_T * H_T];
  fill_heat (m);
  m[0 * H_T + 5] = 0;     /* not shown on a log scale */
  VizHeatmap h = { .values = m, .rows = H_T, .cols = H_T, .log_scale = TRUE, .square_cells = TRUE,
                   .show_values = TRUE, .title = "log scale" };
  viz_heatmap_draw (c->cr, c->width, c->height, &h, c->style);
  VizRect r;
  g_assert_true (viz_heatmap_cell_rect (c->width, c->height, &h, c->style, 2, 3, &r));
  g_assert_cmpfloat (fabs (r.width - r.height), <=, 1);
  g_assert_true (viz_heatmap_cell_rect (c->width, c->height, &h, c->style, 0, 5, &r));
  /* The masked cell is plain: its centre shows no number either. */
  g_assert_true (same_color (pixel (c, r.x + 2, r.y + 2), &c->style->masked, 2));
}

/* ---- Line chart and bars -------------------------------------------- */

static void
test_line_chart (Canvas *c, gconstpointer style)
{
  double x[50], a[50], b[50];
  for (int i = 0; i < 50; i++)
    x[i] = i * 10, a[i] = 2.3 * exp (-i / 15.0) + 0.1, b[i] = i == 20 ? NAN : 2.3 * exp (-i / 25.0) + 0.2;
  VizSeries s[] = {
    { .x = x, .y = a, .n = 50, .label = "BPTT" },
    { .x = x, .y = b, .n = 50, .label = "SLTT", .dashed = TRUE },
  };
  VizLineChart d = { .series = s, .n_series = 2, .title = "Loss", .x_title = "iteration", .y_title = "loss" };
  viz_line_chart_draw (c->cr, c->width, c->height, &d, c->style);
  VizPlotMap map;
  g_assert_true (viz_line_chart_layout (c->width, c->height, &d, c->style, &map));
  /* Both curves pass through the first point's neighbourhood. */
  VizColor blue = viz_style_series_color (c->style, 0);
  double px = viz_plot_map_x (&map, x[5]), py = viz_plot_map_y (&map, a[5]);
  gboolean hit = FALSE;
  for (int dy = -2; dy <= 2 && !hit; dy++)
    hit = same_color (pixel (c, px, py + dy), &blue, 40);
  g_assert_true (hit);
  g_assert_cmpfloat (map.y_min, <=, 0.1);
  g_assert_cmpfloat (map.y_max, >=, 2.4);
  d.log_y = TRUE;
  viz_line_chart_draw (c->cr, c->width, c->height, &d, c->style);
  g_assert_true (viz_line_chart_layout (c->width, c->height, &d, c->style, &map));
  g_assert_true (map.log_y);
  g_assert_cmpfloat (map.y_min, >, 0);
}

static void
test_bars (Canvas *c, gconstpointer style)
{
  const double norms[2 * 6] = { 1.0, 0.9, 0.8, 0.7, 0.6, 0.5,
                                0.0, 0.4, 0.5, 0.55, 0.6, 0.62 };
  const char *labels[] = { "spatial", "temporal" };
  VizBars d = { .values = norms, .n_series = 2, .n_groups = 6, .series_labels = labels,
                .title = "dL/du per step", .x_title = "time step t", .y_title = "L2 norm" };
  viz_bars_draw (c->cr, c->width, c->height, &d, c->style);
  VizPlotMap map;
  g_assert_true (viz_bars_layout (c->width, c->height, &d, c->style, &map));
  /* Stack of group 3: spatial below, temporal on top. */
  VizColor c0 = viz_style_series_color (c->style, 0), c1 = viz_style_series_color (c->style, 1);
  double x = viz_plot_map_x (&map, 3);
  g_assert_true (same_color (pixel (c, x, viz_plot_map_y (&map, 0.35)), &c0, 2));
  g_assert_true (same_color (pixel (c, x, viz_plot_map_y (&map, 0.7 + 0.27)), &c1, 2));
  g_assert_true (same_color (pixel (c, x, viz_plot_map_y (&map, 1.3)), &c->style->background, 2)
                 || same_color (pixel (c, x, viz_plot_map_y (&map, 1.3)), &c->style->grid, 2));
  /* Side by side: group 0 has spatial on the left only. */
  d.mode = VIZ_BARS_GROUPED;
  viz_bars_draw (c->cr, c->width, c->height, &d, c->style);
  double left = viz_plot_map_x (&map, 0) - (map.area.width / 6) * 0.2;
  g_assert_true (same_color (pixel (c, left, viz_plot_map_y (&map, 0.5)), &c0, 2));
}

/* ---- Degenerate input ----------------------------------------------- */

static void
assert_note (Canvas *c)
{
  /* Axes and the note: something drawn around the middle of the canvas,
   * where the plot area is. */
  g_assert_cmpint (count_drawn (c, c->width * 0.3, c->height * 0.35, c->width * 0.7, c->height * 0.65), >, 20);
  g_assert_cmpint (count_drawn (c, 0, 0, c->width, c->height), >, 200);
}

static void
test_no_data (Canvas *c, gconstpointer style)
{
  double nans[4] = { NAN, NAN, INFINITY, -INFINITY };
  guint8 none[4] = { 0 };
  VizSeries empty = { .y = NULL, .n = 0, .label = "empty" };
  VizSeries allnan = { .y = nans, .n = 4, .label = "nan" };
  VizLineChart lines[] = {
    { .series = NULL, .n_series = 0, .title = "Nothing" },
    { .series = &empty, .n_series = 1, .x_title = "x", .y_title = "y" },
    { .series = &allnan, .n_series = 1, .log_y = TRUE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (lines); i++)
    {
      viz_line_chart_draw (c->cr, c->width, c->height, &lines[i], c->style);
      assert_note (c);
    }
  /* No data struct at all. */
  VizDrawFunc views[] = { viz_draw_raster, viz_draw_traces, viz_draw_line_chart, viz_draw_bars,
                          viz_draw_heatmap };
  for (guint i = 0; i < G_N_ELEMENTS (views); i++)
    {
      views[i] (c->cr, c->width, c->height, NULL, c->style);
      assert_note (c);
    }
  VizColor masked = viz_heatmap_value_color (NULL, c->style, NAN);
  g_assert_true (masked.r == c->style->masked.r);
  VizRaster r0 = { .spikes = none, .n_neurons = 0, .T = 4, .show_rate = TRUE };
  viz_raster_draw (c->cr, c->width, c->height, &r0, c->style);
  assert_note (c);
  VizTraces t0 = { .u = nans, .n_traces = 1, .T = 4, .vth = 1 };
  viz_traces_draw (c->cr, c->width, c->height, &t0, c->style);
  assert_note (c);
  VizBars b0 = { .values = nans, .n_series = 2, .n_groups = 2 };
  viz_bars_draw (c->cr, c->width, c->height, &b0, c->style);
  assert_note (c);
  VizHeatmap h0 = { .values = nans, .rows = 2, .cols = 2 };
  viz_heatmap_draw (c->cr, c->width, c->height, &h0, c->style);
  assert_note (c);
  VizHeatmap h1 = { 0 };
  viz_heatmap_draw (c->cr, c->width, c->height, &h1, c->style);
  assert_note (c);
  g_assert_cmpint (cairo_status (c->cr), ==, CAIRO_STATUS_SUCCESS);
}

/* Every view at sizes from none to a few pixels, on surfaces that have no
 * pixels at all: nothing may crash or put cairo in an error state. */
static void
draw_all (cairo_t *cr, double w, double h)
{
  guint8 spikes[R_T * R_N];
  fill_pattern (spikes);
  double u[TR_N * TR_T], m[H_T * H_T];
  guint8 s[TR_N * TR_T];
  fill_traces (u, s);
  fill_heat (m);
  VizRaster r = { .spikes = spikes, .n_neurons = R_N, .T = R_T, .show_rate = TRUE, .show_caption = TRUE,
                  .marked_steps = r_marked, .title = "raster" };
  VizTraces t = { .u = u, .spikes = s, .n_traces = TR_N, .T = TR_T, .vth = 1, .title = "traces" };
  VizSeries ser = { .y = u, .n = TR_T, .label = "u", .markers = TRUE };
  VizLineChart l = { .series = &ser, .n_series = 1, .title = "line", .x_title = "x", .y_title = "y" };
  const double v[4] = { 1, 2, 3, 4 };
  VizBars b = { .values = v, .n_series = 2, .n_groups = 2, .show_values = TRUE };
  VizHeatmap hm = { .values = m, .rows = H_T, .cols = H_T, .show_values = TRUE, .square_cells = TRUE };
  const VizStyle *styles[] = { NULL, viz_style_light (), viz_style_dark () };
  for (guint i = 0; i < G_N_ELEMENTS (styles); i++)
    {
      viz_raster_draw (cr, w, h, &r, styles[i]);
      viz_traces_draw (cr, w, h, &t, styles[i]);
      viz_line_chart_draw (cr, w, h, &l, styles[i]);
      viz_bars_draw (cr, w, h, &b, styles[i]);
      viz_heatmap_draw (cr, w, h, &hm, styles[i]);
    }
}

static void
test_sizes (void)
{
  const double sizes[][2] = {
    { 0, 0 }, { 0, 100 }, { 100, 0 }, { -5, 50 }, { NAN, 10 }, { 10, INFINITY },
    { 1, 1 }, { 3, 3 }, { 30, 20 }, { 80, 60 }, { 2000, 15 }, { 15, 2000 },
  };
  int surf[][2] = { { 0, 0 }, { 1, 1 }, { 64, 48 } };
  for (guint k = 0; k < G_N_ELEMENTS (surf); k++)
    {
      cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, surf[k][0], surf[k][1]);
      cairo_t *cr = cairo_create (surface);
      for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
        draw_all (cr, sizes[i][0], sizes[i][1]);
      g_assert_cmpint (cairo_status (cr), ==, CAIRO_STATUS_SUCCESS);
      cairo_destroy (cr);
      cairo_surface_destroy (surface);
    }
  VizRect cell;
  guint8 spikes[R_T * R_N] = { 0 };
  VizRaster r = { .spikes = spikes, .n_neurons = R_N, .T = R_T };
  g_assert_false (viz_raster_cell_rect (0, 0, &r, NULL, 0, 0, &cell));
  g_assert_false (viz_raster_cell_rect (NAN, 100, &r, NULL, 0, 0, &cell));
  VizPlotMap map;
  g_assert_false (viz_traces_layout (0, 0, NULL, NULL, &map));
}

/* Caller's cairo state survives a draw: views save and restore it. */
static void
test_state_kept (Canvas *c, gconstpointer style)
{
  cairo_set_line_width (c->cr, 7);
  cairo_translate (c->cr, 10, 20);
  draw_all (c->cr, 300, 200);
  g_assert_cmpfloat (cairo_get_line_width (c->cr), ==, 7);
  cairo_matrix_t mat;
  cairo_get_matrix (c->cr, &mat);
  g_assert_cmpfloat (mat.x0, ==, 10);
  g_assert_cmpfloat (mat.y0, ==, 20);
}

/* ---- Helpers -------------------------------------------------------- */

static void
test_nice_step (void)
{
  g_assert_cmpfloat (viz_nice_step (10, 5), ==, 2);
  g_assert_cmpfloat (viz_nice_step (10, 10), ==, 1);
  g_assert_cmpfloat (viz_nice_step (1, 3), ==, 0.5);
  g_assert_cmpfloat (fabs (viz_nice_step (0.07, 7) - 0.01), <, 1e-15);
  g_assert_cmpfloat (viz_nice_step (730, 5), ==, 200);
  g_assert_cmpfloat (viz_nice_step (0, 5), ==, 0);
  g_assert_cmpfloat (viz_nice_step (NAN, 5), ==, 0);
  for (double span = 1e-3; span < 1e6; span *= 1.37)
    {
      double step = viz_nice_step (span, 6);
      double mant = step / pow (10, floor (log10 (step) + 1e-9));
      g_assert_true (fabs (mant - 1) < 1e-9 || fabs (mant - 2) < 1e-9 || fabs (mant - 5) < 1e-9);
      g_assert_cmpfloat (span / step, <=, 6 + 1e-9);
    }
}

static double
luminance (const VizColor *c)
{
  double ch[3] = { c->r, c->g, c->b };
  for (int i = 0; i < 3; i++)
    ch[i] = ch[i] <= 0.03928 ? ch[i] / 12.92 : pow ((ch[i] + 0.055) / 1.055, 2.4);
  return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
}

static double
contrast (const VizColor *a, const VizColor *b)
{
  double la = luminance (a), lb = luminance (b);
  return (MAX (la, lb) + 0.05) / (MIN (la, lb) + 0.05);
}

/* Text reads at 4.5:1 (WCAG AA) and series stand out at 3:1 on each style. */
static void
test_styles (void)
{
  const VizStyle *styles[] = { viz_style_light (), viz_style_dark () };
  for (guint i = 0; i < G_N_ELEMENTS (styles); i++)
    {
      const VizStyle *s = styles[i];
      g_assert_cmpfloat (contrast (&s->foreground, &s->background), >=, 7);
      g_assert_cmpfloat (contrast (&s->muted, &s->background), >=, 4.5);
      g_assert_cmpfloat (contrast (&s->axis, &s->background), >=, 3);
      for (int k = 0; k < VIZ_PALETTE_SIZE; k++)
        {
          VizColor c = viz_style_series_color (s, k);
          g_assert_cmpfloat (contrast (&c, &s->background), >=, 3);
        }
      VizColor wrap = viz_style_series_color (s, -1);
      g_assert_cmpfloat (wrap.r, ==, s->palette[VIZ_PALETTE_SIZE - 1].r);
    }
  /* The ramp runs dark to light. */
  VizColor lo = viz_ramp (0), mid = viz_ramp (0.5), hi = viz_ramp (1);
  g_assert_cmpfloat (luminance (&lo), <, luminance (&mid));
  g_assert_cmpfloat (luminance (&mid), <, luminance (&hi));
}

/* ---- Export --------------------------------------------------------- */

static char *
read_all (const char *path, gsize *len)
{
  char *data = NULL;
  GError *error = NULL;
  g_assert_true (g_file_get_contents (path, &data, len, &error));
  g_assert_no_error (error);
  return data;
}

static void
test_export (void)
{
  GError *error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-viz-XXXXXX", &error);
  g_assert_no_error (error);
  double m[H_T * H_T];
  fill_heat (m);
  VizHeatmap h = { .values = m, .rows = H_T, .cols = H_T, .title = "export" };
  struct { const char *name, *magic; } cases[] = {
    { "map.png", "\x89PNG" }, { "map.svg", "<svg" }, { "map.pdf", "%PDF" }, { "MAP.PNG", "\x89PNG" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_build_filename (dir, cases[i].name, NULL);
      g_assert_true (viz_export (path, 320, 240, viz_draw_heatmap, &h, viz_style_dark (), &error));
      g_assert_no_error (error);
      gsize len;
      g_autofree char *data = read_all (path, &len);
      g_assert_cmpuint (len, >, 100);
      if (cases[i].magic[0] == '<')
        g_assert_nonnull (g_strstr_len (data, len, cases[i].magic));
      else
        g_assert_cmpmem (data, strlen (cases[i].magic), cases[i].magic, strlen (cases[i].magic));
      g_remove (path);
    }

  /* An unknown type is refused by name and the file there stays as it was. */
  g_autofree char *keep = g_build_filename (dir, "chart.jpg", NULL);
  g_assert_true (g_file_set_contents (keep, "precious", -1, NULL));
  g_assert_false (viz_export (keep, 320, 240, viz_draw_heatmap, &h, NULL, &error));
  g_assert_error (error, VIZ_ERROR, VIZ_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "chart.jpg"));
  g_clear_error (&error);
  gsize len;
  g_autofree char *kept = read_all (keep, &len);
  g_assert_cmpstr (kept, ==, "precious");

  g_autofree char *noext = g_build_filename (dir, "chart", NULL);
  g_assert_false (viz_export (noext, 320, 240, viz_draw_heatmap, &h, NULL, &error));
  g_assert_error (error, VIZ_ERROR, VIZ_ERROR_FORMAT);
  g_clear_error (&error);

  /* A size cairo cannot make leaves the existing file alone. */
  g_autofree char *png = g_build_filename (dir, "keep.png", NULL);
  g_assert_true (g_file_set_contents (png, "precious", -1, NULL));
  g_assert_false (viz_export (png, 0, 240, viz_draw_heatmap, &h, NULL, &error));
  g_assert_error (error, VIZ_ERROR, VIZ_ERROR_SIZE);
  g_assert_nonnull (strstr (error->message, "keep.png"));
  g_clear_error (&error);
  g_autofree char *kept2 = read_all (png, &len);
  g_assert_cmpstr (kept2, ==, "precious");

  /* A folder that does not exist: a write error naming the file. */
  g_autofree char *missing = g_build_filename (dir, "no-such-dir", "out.svg", NULL);
  g_assert_false (viz_export (missing, 320, 240, viz_draw_heatmap, &h, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "out.svg"));
  g_clear_error (&error);

  /* Nothing left behind but the two files put there. */
  GDir *d = g_dir_open (dir, 0, NULL);
  int n = 0;
  for (const char *name; (name = g_dir_read_name (d)); n++)
    {
      g_autofree char *left = g_build_filename (dir, name, NULL);
      g_remove (left);
    }
  g_dir_close (d);
  g_assert_cmpint (n, ==, 2);
  g_rmdir (dir);
}

static void
test_csv (void)
{
  double x[3] = { 0, 10, 20 }, a[3] = { 1.5, NAN, 0.25 }, b[3] = { 2, 3, 4 }, x2[2] = { 1, 2 };
  VizSeries shared[] = {
    { .x = x, .y = a, .n = 3, .label = "BPTT" },
    { .x = x, .y = b, .n = 3, .label = "SLTT, K=2" },
  };
  g_autofree char *csv = viz_series_to_csv (shared, 2, "iteration");
  g_assert_cmpstr (csv, ==, "iteration,BPTT,\"SLTT, K=2\"\n0,1.5,2\n10,,3\n20,0.25,4\n");
  VizSeries apart[] = {
    { .x = x, .y = a, .n = 3, .label = "a" },
    { .x = x2, .y = b, .n = 2 },
  };
  g_autofree char *csv2 = viz_series_to_csv (apart, 2, NULL);
  g_assert_cmpstr (csv2, ==, "a x,a,series 2 x,series 2\n0,1.5,1,2\n10,,2,3\n20,0.25,,\n");
  g_autofree char *csv3 = viz_series_to_csv (NULL, 0, "t");
  g_assert_cmpstr (csv3, ==, "t\n");

  GError *error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-viz-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *path = g_build_filename (dir, "curves.csv", NULL);
  g_assert_true (viz_series_write_csv (path, shared, 2, "iteration", &error));
  g_assert_no_error (error);
  gsize len;
  g_autofree char *back = read_all (path, &len);
  g_assert_cmpstr (back, ==, csv);
  g_remove (path);
  g_rmdir (dir);
}

/* ---- Preview -------------------------------------------------------- */

static void
preview (const char *dir, const char *name, VizDrawFunc draw, gconstpointer data, int w, int h)
{
  const VizStyle *styles[] = { viz_style_light (), viz_style_dark () };
  const char *suffix[] = { "light", "dark" };
  for (int i = 0; i < 2; i++)
    {
      g_autofree char *file = g_strdup_printf ("%s/%s-%s.png", dir, name, suffix[i]);
      GError *error = NULL;
      g_assert_true (viz_export (file, w, h, draw, data, styles[i], &error));
      g_assert_no_error (error);
    }
}

static void
test_preview (void)
{
  const char *dir = g_getenv ("VIZ_PREVIEW_DIR");
  g_mkdir_with_parents (dir, 0755);
  guint8 spikes[R_T * R_N];
  fill_pattern (spikes);
  VizRaster r = { .spikes = spikes, .n_neurons = R_N, .T = R_T, .marked_steps = r_marked,
                  .show_rate = TRUE, .show_caption = TRUE, .title = "Spikes \u00b7 layer 2 (lif)" };
  preview (dir, "raster", viz_draw_raster, &r, 720, 420);

  enum { N = 800, T = 30 };
  g_autofree guint8 *big = g_new0 (guint8, N * T);
  GRand *rand = g_rand_new_with_seed (7);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i++)
      big[t * N + i] = g_rand_double (rand) < 0.02 + 0.1 * (i % 100) / 100.0 * (t > 3);
  g_rand_free (rand);
  gboolean marked[T] = { 0 };
  for (int t = T - 6; t < T; t++)
    marked[t] = TRUE;
  VizRaster rb = { .spikes = big, .n_neurons = N, .T = T, .show_rate = TRUE, .show_caption = TRUE,
                   .marked_steps = marked, .title = "Spikes \u00b7 layer 1 (800 neurons)" };
  preview (dir, "raster-800", viz_draw_raster, &rb, 720, 420);

  double u[TR_N * TR_T];
  guint8 s[TR_N * TR_T];
  fill_traces (u, s);
  const int ids[TR_N] = { 3, 17, 42 };
  gboolean tm[TR_T] = { 0 };
  for (int t = 18; t < TR_T; t++)
    tm[t] = TRUE;
  VizTraces tr = { .u = u, .spikes = s, .n_traces = TR_N, .T = TR_T, .vth = 1.0, .neuron_ids = ids,
                   .marked_steps = tm, .title = "Membrane potential \u00b7 layer 2" };
  preview (dir, "traces", viz_draw_traces, &tr, 720, 420);

  double x[200], y1[200], y2[200], y3[200];
  for (int i = 0; i < 200; i++)
    {
      x[i] = i * 5;
      y1[i] = 2.3 * exp (-i / 40.0) + 0.12 + 0.05 * sin (i * 0.7);
      y2[i] = 2.3 * exp (-i / 55.0) + 0.15 + 0.05 * cos (i * 0.5);
      y3[i] = 2.3 * exp (-i / 50.0) + 0.14 + 0.04 * sin (i * 0.3);
    }
  VizSeries ls[] = {
    { .x = x, .y = y1, .n = 200, .label = "run 1 \u00b7 BPTT" },
    { .x = x, .y = y2, .n = 200, .label = "run 2 \u00b7 SLTT" },
    { .x = x, .y = y3, .n = 200, .label = "run 3 \u00b7 SLTT-K (K=2)", .dashed = TRUE },
  };
  VizLineChart lc = { .series = ls, .n_series = 3, .title = "Training loss", .x_title = "iteration",
                      .y_title = "loss", .x_integer = TRUE };
  preview (dir, "line", viz_draw_line_chart, &lc, 720, 420);
  lc.log_y = TRUE;
  lc.title = "Training loss (log)";
  preview (dir, "line-log", viz_draw_line_chart, &lc, 720, 420);

  double Ts[6] = { 2, 4, 6, 8, 10, 12 }, mb[6], ms[6];
  for (int i = 0; i < 6; i++)
    mb[i] = 120 + 95 * Ts[i], ms[i] = 180;
  VizSeries mem[] = {
    { .x = Ts, .y = mb, .n = 6, .label = "BPTT", .markers = TRUE },
    { .x = Ts, .y = ms, .n = 6, .label = "SLTT", .markers = TRUE, .dashed = TRUE },
  };
  VizLineChart mc = { .series = mem, .n_series = 2, .title = "Peak memory", .x_title = "time steps T",
                      .y_title = "MiB", .x_integer = TRUE };
  preview (dir, "memory", viz_draw_line_chart, &mc, 560, 360);

  double sx[241], sy[241];
  for (int i = 0; i <= 240; i++)
    {
      sx[i] = -1 + i / 80.0;
      double z = 4 * (sx[i] - 1);
      sy[i] = 4 * exp (-z) / ((1 + exp (-z)) * (1 + exp (-z)));
    }
  VizSeries sg = { .x = sx, .y = sy, .n = 241, .label = "sigmoid, \u03b1 = 4" };
  VizLineChart sc = { .series = &sg, .n_series = 1, .title = "Surrogate derivative",
                      .x_title = "membrane potential u", .y_title = "\u2202s/\u2202u" };
  preview (dir, "surrogate", viz_draw_line_chart, &sc, 560, 360);

  const double norms[2 * 8] = { 1.0, 0.92, 0.85, 0.8, 0.71, 0.64, 0.6, 0.55,
                                0.0, 0.41, 0.52, 0.58, 0.6, 0.62, 0.63, 0.64 };
  const char *nl[] = { "spatial", "temporal" };
  VizBars bs = { .values = norms, .n_series = 2, .n_groups = 8, .series_labels = nl,
                 .title = "dL/du by component", .x_title = "time step t", .y_title = "L2 norm" };
  preview (dir, "bars-stacked", viz_draw_bars, &bs, 640, 400);
  const double ms2[2 * 3] = { 12.4, 11.9, 12.1, 31.5, 18.2, 9.7 };
  const char *fb[] = { "forward", "backward" }, *meth[] = { "BPTT", "SLTT", "SLTT-K" };
  VizBars bg = { .values = ms2, .n_series = 2, .n_groups = 3, .series_labels = fb, .group_labels = meth,
                 .mode = VIZ_BARS_GROUPED, .show_values = TRUE, .title = "Time per iteration",
                 .y_title = "ms" };
  preview (dir, "bars-grouped", viz_draw_bars, &bg, 560, 360);

  double hm[H_T * H_T];
  fill_heat (hm);
  VizHeatmap h = { .values = hm, .rows = H_T, .cols = H_T, .square_cells = TRUE, .show_values = TRUE,
                   .title = "\u03b5 products over spans \u00b7 layer 2", .row_title = "t", .col_title = "t'",
                   .scale_title = "mean product" };
  preview (dir, "heatmap", viz_draw_heatmap, &h, 560, 440);
  h.log_scale = TRUE;
  h.show_values = FALSE;
  h.square_cells = FALSE;
  h.title = "\u03b5 products (log scale)";
  preview (dir, "heatmap-log", viz_draw_heatmap, &h, 640, 360);

  VizLineChart none = { .title = "Accuracy", .x_title = "iteration", .y_title = "accuracy" };
  preview (dir, "empty", viz_draw_line_chart, &none, 480, 300);
  preview (dir, "small", viz_draw_traces, &tr, 220, 140);
}

/* ---- Main ----------------------------------------------------------- */

/* A long run is drawn per pixel column: the picture is the one of every
 * point (drawn here unthinned as short pieces), and a lone outlier still
 * shows. */
static void
test_line_long (Canvas *c, gconstpointer style)
{
  enum { N = 60000, PIECE = 1000 };
  double *y = g_new (double, N);
  for (int i = 0; i < N; i++)
    {
      guint32 h = (guint32) i * 2654435761u;
      y[i] = sin (i / 3000.0) + 0.6 * ((h >> 8) / 16777216.0 - 0.5);
    }
  y[31337] = 5.0;
  y[45000] = -4.0;
  VizColor ink = viz_style_series_color (c->style, 0);
  VizSeries whole = { .y = y, .n = N, .color = &ink };
  VizLineChart d = { .series = &whole, .n_series = 1, .title = "Loss", .x_title = "iteration", .y_title = "loss" };
  viz_line_chart_draw (c->cr, c->width, c->height, &d, c->style);

  int n_pieces = (N + PIECE - 1) / PIECE;
  VizSeries *pieces = g_new0 (VizSeries, n_pieces);
  double *x = g_new (double, N);
  for (int i = 0; i < N; i++)
    x[i] = i;
  for (int k = 0; k < n_pieces; k++)
    {
      int lo = MAX (0, k * PIECE - 1), hi = MIN (N, (k + 1) * PIECE);
      pieces[k] = (VizSeries) { .x = x + lo, .y = y + lo, .n = hi - lo, .color = &ink };
    }
  Canvas ref = *c;
  ref.surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, c->width, c->height);
  ref.cr = cairo_create (ref.surface);
  VizLineChart dr = d;
  dr.series = pieces;
  dr.n_series = n_pieces;
  viz_line_chart_draw (ref.cr, c->width, c->height, &dr, c->style);

  /* Antialiased edges may differ a little; a pixel of another colour
   * (more than a quarter of the range in a channel) may not. */
  int drawn = 0, drawn_ref = 0, differ = 0;
  for (int py = 0; py < c->height; py++)
    for (int px = 0; px < c->width; px++)
      {
        Px a = pixel (c, px, py), b = pixel (&ref, px, py);
        drawn += !same_color (a, &c->style->background, 2);
        drawn_ref += !same_color (b, &c->style->background, 2);
        differ += MAX (abs (a.r - b.r), MAX (abs (a.g - b.g), abs (a.b - b.b))) > 64;
      }
  g_assert_cmpint (drawn_ref, >, 1000);
  g_assert_cmpint (abs (drawn - drawn_ref), <, drawn_ref / 20);
  g_assert_cmpint (differ, <, drawn_ref / 100);

  VizPlotMap map;
  g_assert_true (viz_line_chart_layout (c->width, c->height, &d, c->style, &map));
  double sx = viz_plot_map_x (&map, 31337), top = viz_plot_map_y (&map, 5.0);
  double dx = viz_plot_map_x (&map, 45000), bottom = viz_plot_map_y (&map, -4.0);
  gboolean spike = FALSE, dip = FALSE;
  for (int ox = -1; ox <= 1; ox++)
    for (int oy = -1; oy <= 1; oy++)
      {
        spike |= same_color (pixel (c, sx + ox, top + oy), &ink, 60);
        dip |= same_color (pixel (c, dx + ox, bottom + oy), &ink, 60);
      }
  g_assert_true (spike);
  g_assert_true (dip);
  cairo_destroy (ref.cr);
  cairo_surface_destroy (ref.surface);
  g_free (pieces);
  g_free (x);
  g_free (y);
}

/* ---- Legends, marks, log axes, read-outs ----------------------------- */

static int
px_luminance (Px p)
{
  return (p.r * 299 + p.g * 587 + p.b * 114) / 1000;
}

/* A column of the plot at x holds the mark's colour along much of it. */
static void
test_line_marks (Canvas *c, gconstpointer style)
{
  double x[40], y[40];
  for (int i = 0; i < 40; i++)
    x[i] = i + 1, y[i] = 1.0 / (i + 1);
  VizColor red = { 0.9, 0.1, 0.1, 1 };
  VizSeries s = { .x = x, .y = y, .n = 40, .label = "loss" };
  VizMark mk = { 20.5, "→ BPTT", &red };
  VizLineChart d = { .series = &s, .n_series = 1, .x_title = "iteration", .y_title = "loss",
                     .marks = &mk, .n_marks = 1 };
  viz_line_chart_draw (c->cr, c->width, c->height, &d, c->style);
  VizPlotMap map;
  g_assert_true (viz_line_chart_layout (c->width, c->height, &d, c->style, &map));
  double mx = floor (viz_plot_map_x (&map, 20.5)) + 0.5;
  int hits = 0;
  for (int yy = (int) map.area.y; yy < map.area.y + map.area.height; yy++)
    hits += same_color (pixel (c, mx, yy), &red, 60);
  g_assert_cmpint (hits, >, map.area.height * 0.3);
  /* Not at another x. */
  hits = 0;
  for (int yy = (int) map.area.y + 30; yy < map.area.y + map.area.height; yy++)
    hits += same_color (pixel (c, mx + 40, yy), &red, 60);
  g_assert_cmpint (hits, ==, 0);
}

/* A small chart with several runs keeps its legend (beside the plot);
 * a tiny one drops it rather than hide the data under it. */
static void
test_line_legend_kept (Canvas *c, gconstpointer style)
{
  double x[30], y[3][30];
  for (int i = 0; i < 30; i++)
    for (int k = 0; k < 3; k++)
      x[i] = i + 1, y[k][i] = (k + 1) * 10.0 + i;
  VizColor col[3];
  VizSeries s[3];
  VizLegendEntry e[5];
  for (int k = 0; k < 3; k++)
    {
      col[k] = viz_style_series_color (c->style, k);
      s[k] = (VizSeries) { .x = x, .y = y[k], .n = 30, .color = &col[k] };
    }
  e[0] = (VizLegendEntry) { "Run 1 · SLTT", &col[0], FALSE };
  e[1] = (VizLegendEntry) { "Run 2 · BPTT", &col[1], FALSE };
  e[2] = (VizLegendEntry) { "Run 3 · SLTT-K", &col[2], FALSE };
  e[3] = (VizLegendEntry) { "held", NULL, FALSE };
  e[4] = (VizLegendEntry) { "arena", NULL, TRUE };
  VizLineChart d = { .series = s, .n_series = 3, .x_title = "iteration", .y_title = "MiB",
                     .legend = e, .n_legend = 5, .log_y = TRUE };
  VizPlotMap map;
  g_assert_true (viz_line_chart_layout (640, 400, &d, c->style, &map));
  g_assert_cmpint (map.n_legend, ==, 5);
  g_assert_true (viz_line_chart_layout (240, 170, &d, c->style, &map));
  g_assert_cmpint (map.n_legend, ==, 5);
  /* Drawn: the first entry's swatch in its colour right of the plot. */
  viz_line_chart_draw (c->cr, 240, 170, &d, c->style);
  int hits = 0;
  for (int yy = (int) map.area.y; yy < map.area.y + 20; yy++)
    for (int xx = (int) (map.area.x + map.area.width); xx < 240; xx++)
      hits += same_color (pixel (c, xx, yy), &col[0], 40);
  g_assert_cmpint (hits, >, 5);
  g_assert_true (viz_line_chart_layout (150, 90, &d, c->style, &map));
  g_assert_cmpint (map.n_legend, ==, 0);
}

/* Log x: a decade takes the same width anywhere; points at x <= 0 are left
 * out of the range rather than breaking it. */
static void
test_line_log_x (Canvas *c, gconstpointer style)
{
  double x[] = { 0, 1, 10, 100, 1000 }, y[] = { 5, 1, 2, 3, 4 };
  VizSeries s = { .x = x, .y = y, .n = 5, .label = "BPTT", .markers = TRUE };
  VizLineChart d = { .series = &s, .n_series = 1, .x_title = "T", .y_title = "accuracy", .log_x = TRUE };
  VizPlotMap map;
  g_assert_true (viz_line_chart_layout (c->width, c->height, &d, c->style, &map));
  g_assert_true (map.log_x);
  g_assert_cmpfloat (map.x_min, >, 0);
  double d1 = viz_plot_map_x (&map, 10) - viz_plot_map_x (&map, 1);
  double d2 = viz_plot_map_x (&map, 1000) - viz_plot_map_x (&map, 100);
  g_assert_cmpfloat (fabs (d1 - d2), <, 0.5);
  g_assert_cmpfloat (fabs (viz_plot_map_unx (&map, viz_plot_map_x (&map, 37)) - 37), <, 1e-6);
  viz_line_chart_draw (c->cr, c->width, c->height, &d, c->style);
  VizColor blue = viz_style_series_color (c->style, 0);
  g_assert_true (same_color (pixel (c, viz_plot_map_x (&map, 10), viz_plot_map_y (&map, 2)), &blue, 40));
}

static gboolean
in_rect (const VizRect *r, double x, double y, double margin)
{
  return x >= r->x - margin && x < r->x + r->width + margin
         && y >= r->y - margin && y < r->y + r->height + margin;
}

/* A card-sized chart comparing four runs: the legend is drawn, and no data
 * point's pixel lies in its box; each point shows its own series' colour. */
static void
test_line_legend_clear_of_data (Canvas *c, gconstpointer style)
{
  double x[40], y[4][40];
  const char *labels[4] = { "Run 2 · BPTT (stored)", "Run 3 · SLTT", "Run 4 · BPTT (stored)", "Run 5 · SLTT" };
  VizColor col[4];
  VizSeries s[4];
  for (int k = 0; k < 4; k++)
    {
      for (int i = 0; i < 40; i++)
        x[i] = i + 1, y[k][i] = 2.5 - 0.04 * i + 0.1 * k;   /* highest at the top left */
      col[k] = viz_style_series_color (c->style, k);
      s[k] = (VizSeries) { .x = x, .y = y[k], .n = 40, .label = labels[k], .color = &col[k] };
    }
  VizLineChart d = { .series = s, .n_series = 4, .x_title = "iteration", .y_title = "loss" };
  VizPlotMap map;
  g_assert_true (viz_line_chart_layout (280, 120, &d, c->style, &map));
  g_assert_cmpint (map.n_legend, ==, 4);
  viz_line_chart_draw (c->cr, 280, 120, &d, c->style);
  int legend_px = 0;
  for (int yy = (int) map.legend_box.y; yy < map.legend_box.y + map.legend_box.height; yy++)
    for (int xx = (int) map.legend_box.x; xx < map.legend_box.x + map.legend_box.width; xx++)
      legend_px += same_color (pixel (c, xx, yy), &col[0], 40);
  g_assert_cmpint (legend_px, >, 3);
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < 40; i++)
      {
        double px = viz_plot_map_x (&map, x[i]), py = viz_plot_map_y (&map, y[k][i]);
        g_assert_false (in_rect (&map.legend_box, px, py, 1));
      }
  /* The top series' first point is its own colour, not a legend's box. */
  Px p = pixel (c, viz_plot_map_x (&map, x[0]), viz_plot_map_y (&map, y[3][0]));
  g_assert_true (same_color (p, &col[3], 60));
}

/* The same for the bar chart's series legend in a card-sized chart. */
static void
test_bars_legend_clear_of_data (Canvas *c, gconstpointer style)
{
  double v[2 * 7];
  for (int g = 0; g < 7; g++)
    v[g] = 0.002, v[7 + g] = 0.0005;
  const char *labels[2] = { "spatial (SLTT keeps)", "temporal (BPTT only)" };
  VizBars d = { .values = v, .n_series = 2, .n_groups = 7, .series_labels = labels, .mode = VIZ_BARS_STACKED };
  VizPlotMap map;
  g_assert_true (viz_bars_layout (420, 90, &d, c->style, &map));
  g_assert_cmpint (map.n_legend, ==, 2);
  for (int g = 0; g < 7; g++)
    for (double yv = 0; yv <= 0.0025; yv += 0.00025)
      g_assert_false (in_rect (&map.legend_box, viz_plot_map_x (&map, g), viz_plot_map_y (&map, yv), 1));
}

/* Log ticks on a short axis: more than the two ends of a two-decade span. */
static void
test_log_ticks (void)
{
  VizMetrics m;
  VizScale s = { 0 };
  viz_metrics (viz_style_light (), &m);
  viz_scale_set (&s, 0.03, 2, 0.05, TRUE);
  viz_scale_make_ticks (&s, 110, FALSE, &m);
  g_assert_cmpint (s.n_ticks, >=, 4);
  for (int i = 1; i < s.n_ticks; i++)
    g_assert_cmpfloat (s.ticks[i], >, s.ticks[i - 1]);
  viz_scale_set (&s, 1, 300, 0.05, TRUE);
  viz_scale_make_ticks (&s, 140, FALSE, &m);
  g_assert_cmpint (s.n_ticks, >=, 3);
}

/* The read-out box sits beside the pointer, inside the view even at its
 * corner, with the vertical guide over the plot. */
static void
test_readout (Canvas *c, gconstpointer style)
{
  viz_set_color (c->cr, &c->style->background);
  cairo_paint (c->cr);
  VizRect area = { 50, 30, 500, 300 };
  viz_draw_readout (c->cr, c->width, c->height, c->style, &area, 300, 200, "iteration 12\nRun 1 · SLTT: 0.42");
  g_assert_cmpint (count_drawn (c, 310, 210, 460, 260), >, 200);
  g_assert_cmpint (count_drawn (c, 299, 40, 301, 190), >, 100);
  viz_set_color (c->cr, &c->style->background);
  cairo_paint (c->cr);
  viz_draw_readout (c->cr, c->width, c->height, c->style, NULL, c->width - 2, c->height - 2, "t 3\nneuron 5");
  g_assert_cmpint (count_drawn (c, c->width - 120, c->height - 70, c->width - 10, c->height - 10), >, 100);
  g_assert_cmpint (viz_series_nearest (&(VizSeries) { .y = (double[]) { 1, 2, 3 }, .n = 3 }, 1.4), ==, 1);
}

/* A large layer is shaded by how many fire, not painted solid: a band where
 * every neuron fires is darker than one where few do. */
static void
test_raster_large_shaded (Canvas *c, gconstpointer style)
{
  enum { N = 4000, T = 10 };
  g_autofree guint8 *spikes = g_new0 (guint8, N * T);
  GRand *rand = g_rand_new_with_seed (3);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i++)
      spikes[t * N + i] = i >= 3000 ? 1 : g_rand_double (rand) < 0.05;
  g_rand_free (rand);
  VizRaster r = { .spikes = spikes, .n_neurons = N, .T = T };
  viz_raster_draw (c->cr, c->width, c->height, &r, c->style);
  VizRect d0, d1, s0, s1;
  g_assert_true (viz_raster_cell_rect (c->width, c->height, &r, c->style, 4, 3100, &d0));
  g_assert_true (viz_raster_cell_rect (c->width, c->height, &r, c->style, 4, 3900, &d1));
  g_assert_true (viz_raster_cell_rect (c->width, c->height, &r, c->style, 4, 500, &s0));
  g_assert_true (viz_raster_cell_rect (c->width, c->height, &r, c->style, 4, 2500, &s1));
  /* Mean luminance over the middle of step 4's column in each band. */
  double x = d0.x + d0.width / 2, ld = 0, ls = 0;
  int nd = 0, ns = 0;
  for (int y = (int) d1.y; y <= (int) d0.y; y++, nd++)
    ld += px_luminance (pixel (c, x, y));
  for (int y = (int) s1.y; y <= (int) s0.y; y++, ns++)
    ls += px_luminance (pixel (c, x, y));
  ld /= nd, ls /= ns;
  double lb = px_luminance ((Px) { c->style->background.r * 255, c->style->background.g * 255, c->style->background.b * 255 });
  /* Both differ from the background; the dense band much more. */
  g_assert_cmpfloat (fabs (ls - lb), >, 3);
  g_assert_cmpfloat (fabs (ld - lb), >, 3 * fabs (ls - lb));
}

static void
add_styled (const char *path, void (*fn) (Canvas *, gconstpointer))
{
  g_autofree char *light = g_strconcat (path, "/light", NULL);
  g_autofree char *dark = g_strconcat (path, "/dark", NULL);
  g_test_add (light, Canvas, viz_style_light (), canvas_setup, fn, canvas_teardown);
  g_test_add (dark, Canvas, viz_style_dark (), canvas_setup, fn, canvas_teardown);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  add_styled ("/viz/raster/cells", test_raster_cells);
  add_styled ("/viz/raster/marked-rate", test_raster_marked_rate);
  add_styled ("/viz/raster/large", test_raster_large);
  add_styled ("/viz/traces/threshold", test_traces_threshold);
  add_styled ("/viz/heatmap/ramp", test_heatmap_ramp);
  add_styled ("/viz/heatmap/square-log", test_heatmap_square_log);
  add_styled ("/viz/line", test_line_chart);
  add_styled ("/viz/line/long", test_line_long);
  add_styled ("/viz/line/marks", test_line_marks);
  add_styled ("/viz/line/legend-kept", test_line_legend_kept);
  add_styled ("/viz/line/log-x", test_line_log_x);
  add_styled ("/viz/readout", test_readout);
  add_styled ("/viz/raster/large-shaded", test_raster_large_shaded);
  g_test_add_func ("/viz/log-ticks", test_log_ticks);
  add_styled ("/viz/line/legend-clear-of-data", test_line_legend_clear_of_data);
  add_styled ("/viz/bars/legend-clear-of-data", test_bars_legend_clear_of_data);
  add_styled ("/viz/bars", test_bars);
  add_styled ("/viz/no-data", test_no_data);
  add_styled ("/viz/state-kept", test_state_kept);
  g_test_add_func ("/viz/sizes", test_sizes);
  g_test_add_func ("/viz/nice-step", test_nice_step);
  g_test_add_func ("/viz/styles", test_styles);
  g_test_add_func ("/viz/export", test_export);
  g_test_add_func ("/viz/csv", test_csv);
  if (g_getenv ("VIZ_PREVIEW_DIR"))
    g_test_add_func ("/viz/preview", test_preview);
  return g_test_run ();
}
