/* Styles, text, scales and the chart frame shared by all views. */
#include "viz-private.h"
#include <math.h>
#include <string.h>

#define RGB(hex) { ((hex) >> 16 & 0xff) / 255.0, ((hex) >> 8 & 0xff) / 255.0, ((hex) & 0xff) / 255.0, 1.0 }

/* The two palettes share hue order (blue, orange, green, red, purple,
 * brown, pink, teal), so a run keeps its colour across styles; the light
 * one is deeper and the dark one lighter, for contrast on each background. */
static const VizStyle style_light = {
  .background = RGB (0xffffff),
  .foreground = RGB (0x1f2328),
  .muted = RGB (0x5b636d),
  .grid = RGB (0xe6e8eb),
  .axis = RGB (0x6b7280),
  .highlight = RGB (0xfcefc7),
  .masked = RGB (0xeef0f2),
  .palette = {
    RGB (0x1f6fb8), RGB (0xd4600c), RGB (0x23883b), RGB (0xc62f2f),
    RGB (0x7a4bb0), RGB (0x8a5a2c), RGB (0xc0378c), RGB (0x0b8585),
  },
  .font_size = 12,
  .font_family = "Sans",
};

static const VizStyle style_dark = {
  .background = RGB (0x1e1f22),
  .foreground = RGB (0xe8e9eb),
  .muted = RGB (0xa3a8b0),
  .grid = RGB (0x34373c),
  .axis = RGB (0x8d939c),
  .highlight = RGB (0x41381f),
  .masked = RGB (0x2c2f34),
  .palette = {
    RGB (0x5fa8f0), RGB (0xffa24f), RGB (0x6acd72), RGB (0xff6f66),
    RGB (0xb794f2), RGB (0xd4a574), RGB (0xf37ecb), RGB (0x4fd0c8),
  },
  .font_size = 12,
  .font_family = "Sans",
};

const VizStyle *
viz_style_light (void)
{
  return &style_light;
}

const VizStyle *
viz_style_dark (void)
{
  return &style_dark;
}

const VizStyle *
viz_style_or_default (const VizStyle *style)
{
  return style ? style : &style_light;
}

VizColor
viz_style_series_color (const VizStyle *style, int index)
{
  style = viz_style_or_default (style);
  int i = index % VIZ_PALETTE_SIZE;
  return style->palette[i < 0 ? i + VIZ_PALETTE_SIZE : i];
}

void
viz_set_color (cairo_t *cr, const VizColor *c)
{
  cairo_set_source_rgba (cr, c->r, c->g, c->b, c->a);
}

/* Viridis sampled at nine points; linear in between is close enough to the
 * original to stay perceptually ordered. */
static const guint32 ramp_stops[] = {
  0x440154, 0x482878, 0x3e4989, 0x31688e, 0x26828e,
  0x1f9e89, 0x35b779, 0x6ece58, 0xfde725,
};

VizColor
viz_ramp (double f)
{
  const int n = G_N_ELEMENTS (ramp_stops);
  if (!(f > 0))
    f = 0;
  if (f > 1)
    f = 1;
  double pos = f * (n - 1);
  int i = MIN ((int) pos, n - 2);
  double t = pos - i;
  VizColor a = RGB (ramp_stops[i]), b = RGB (ramp_stops[i + 1]);
  return (VizColor) { a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t, 1 };
}

void
viz_metrics (const VizStyle *style, VizMetrics *m)
{
  double fs = viz_style_or_default (style)->font_size;
  if (!(fs >= 4 && fs <= 200))
    fs = 12;
  m->fs = fs;
  m->tick_fs = fs * 0.92;
  m->title_fs = fs * 1.25;
  m->pad = round (fs * 0.9);
  m->tick_len = round (fs * 0.35);
  m->gap = round (fs * 0.3);
}

gboolean
viz_size_ok (double width, double height)
{
  return isfinite (width) && isfinite (height) && width >= 1 && height >= 1;
}

/* Saves the caller's state and paints the background; FALSE: draw nothing. */
gboolean
viz_begin (cairo_t *cr, double width, double height, const VizStyle *style)
{
  if (!cr || cairo_status (cr) != CAIRO_STATUS_SUCCESS || !viz_size_ok (width, height))
    return FALSE;
  style = viz_style_or_default (style);
  cairo_save (cr);
  cairo_rectangle (cr, 0, 0, width, height);
  cairo_clip (cr);
  viz_set_color (cr, &style->background);
  cairo_paint (cr);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_BUTT);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  return TRUE;
}

void
viz_end (cairo_t *cr)
{
  cairo_restore (cr);
}

double
viz_snap_edge (double v, double cell)
{
  return fabs (cell) >= 2 ? round (v) : v;
}

/* ---- Text ----------------------------------------------------------- */

double
viz_est_width (const char *text, double size)
{
  if (!text)
    return 0;
  /* DejaVu Sans averages about 0.6 em per character for labels. */
  return g_utf8_strlen (text, -1) * size * 0.6;
}

/* text, or a prefix of it with an ellipsis, no wider than max_width. */
static char *
fit_text (cairo_t *cr, const char *text, double max_width)
{
  cairo_text_extents_t ext;
  cairo_text_extents (cr, text, &ext);
  if (max_width <= 0 || ext.x_advance <= max_width)
    return g_strdup (text);
  glong n = g_utf8_strlen (text, -1);
  while (n > 0)
    {
      n--;
      const char *end = g_utf8_offset_to_pointer (text, n);
      char *s = g_strdup_printf ("%.*s\u2026", (int) (end - text), text);
      cairo_text_extents (cr, s, &ext);
      if (ext.x_advance <= max_width)
        return s;
      g_free (s);
    }
  return g_strdup ("");
}

void
viz_text (cairo_t *cr, const VizStyle *style, const VizColor *color, double size,
          gboolean bold, double x, double y, double angle, VizAlign halign,
          VizAlign valign, double max_width, const char *text)
{
  if (!text || !*text || !(size > 0))
    return;
  style = viz_style_or_default (style);
  cairo_save (cr);
  cairo_select_font_face (cr, style->font_family ? style->font_family : "Sans",
                          CAIRO_FONT_SLANT_NORMAL,
                          bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, size);
  g_autofree char *s = fit_text (cr, text, max_width);
  cairo_text_extents_t ext;
  cairo_text_extents (cr, s, &ext);
  double dx = halign == VIZ_ALIGN_START ? 0 : halign == VIZ_ALIGN_CENTER ? -ext.x_advance / 2 : -ext.x_advance;
  /* Fixed fractions of the size (cap height, descent) rather than the
   * font's extents, which include room for accents and look off-centre. */
  double dy = valign == VIZ_ALIGN_START ? size * 0.76 : valign == VIZ_ALIGN_CENTER ? size * 0.36 : -size * 0.22;
  cairo_translate (cr, x, y);
  cairo_rotate (cr, angle);
  cairo_move_to (cr, dx, dy);
  viz_set_color (cr, color);
  cairo_show_text (cr, s);
  cairo_new_path (cr);
  cairo_restore (cr);
}

/* ---- Scales --------------------------------------------------------- */

double
viz_nice_step (double span, int max_ticks)
{
  if (!(span > 0) || !isfinite (span) || max_ticks <= 0)
    return 0;
  double raw = span / max_ticks;
  double p = pow (10, floor (log10 (raw)));
  static const double mant[] = { 1, 2, 5, 10 };
  for (guint i = 0; i < G_N_ELEMENTS (mant); i++)
    if (mant[i] * p >= raw * (1 - 1e-9))
      return mant[i] * p;
  return 10 * p;
}

static double
next_nice (double step)
{
  double p = pow (10, floor (log10 (step) + 1e-9));
  double m = step / p;
  return m < 1.5 ? 2 * p : m < 3.5 ? 5 * p : 10 * p;
}

void
viz_scale_set (VizScale *s, double lo, double hi, double pad_frac, gboolean log)
{
  s->log = log;
  if (log)
    {
      if (!(lo > 0 && hi >= lo && isfinite (hi)))
        lo = 1, hi = 10;
      double L = log10 (lo), H = log10 (hi);
      if (H - L < 1e-9)
        L -= 0.5, H += 0.5;
      double d = (H - L) * pad_frac;
      s->lo = pow (10, L - d);
      s->hi = pow (10, H + d);
      return;
    }
  if (!(isfinite (lo) && isfinite (hi) && hi >= lo))
    lo = 0, hi = 1;
  if (hi - lo <= 1e-12 * MAX (1, fabs (lo)))
    {
      double d = lo == 0 ? 1 : fabs (lo) * 0.1;
      lo -= d, hi += d;
    }
  double d = (hi - lo) * pad_frac;
  s->lo = lo - d;
  s->hi = hi + d;
}

double
viz_scale_frac (const VizScale *s, double v)
{
  double f = s->log ? (log10 (v) - log10 (s->lo)) / (log10 (s->hi) - log10 (s->lo))
                    : (v - s->lo) / (s->hi - s->lo);
  return s->reversed ? 1 - f : f;
}

/* "1e-05" -> "1e-5", "1e+06" -> "1e6". */
static void
tidy_exponent (char *buf)
{
  char *e = strchr (buf, 'e');
  if (!e)
    return;
  char *src = e + 1, *dst = e + 1;
  if (*src == '+')
    src++;
  else if (*src == '-')
    *dst++ = *src++;
  while (*src == '0' && src[1])
    src++;
  memmove (dst, src, strlen (src) + 1);
}

void
viz_scale_label (const VizScale *s, double v, char *buf, gsize n)
{
  if (s->integer && !s->log)
    {
      long i = lround (v);
      if (s->names && i >= 0 && i < s->n_names && s->names[i])
        g_strlcpy (buf, s->names[i], n);
      else
        g_snprintf (buf, n, "%ld", (long) s->name_first + i);
      return;
    }
  if (v == 0 || fabs (v) < fabs (s->step) * 1e-9)
    v = 0;
  double big = MAX (fabs (s->lo), fabs (s->hi));
  if (s->log || big >= 1e6 || (s->step > 0 && s->step < 1e-4))
    g_ascii_formatd (buf, n, s->log ? "%.6g" : "%.3g", v);
  else
    {
      int dec = s->step >= 1 || s->step <= 0 ? 0 : (int) ceil (-log10 (s->step) - 1e-9);
      char fmt[16];
      g_snprintf (fmt, sizeof fmt, "%%.%df", CLAMP (dec, 0, 12));
      g_ascii_formatd (buf, n, fmt, v);
    }
  tidy_exponent (buf);
}

double
viz_scale_max_label_width (const VizScale *s, double size)
{
  double w = 0;
  char buf[64];
  for (int i = 0; i < s->n_ticks; i++)
    {
      viz_scale_label (s, s->ticks[i], buf, sizeof buf);
      w = MAX (w, viz_est_width (buf, size));
    }
  return w;
}

/* Ticks at multiples of step in [lo, hi]; -1 if there would be too many. */
static int
fill_linear (VizScale *s, double step)
{
  double k0 = ceil (s->lo / step - 1e-9), k1 = floor (s->hi / step + 1e-9);
  if (k1 - k0 >= VIZ_MAX_TICKS)
    return -1;
  s->n_ticks = 0;
  s->step = step;
  for (double k = k0; k <= k1; k++)
    {
      double v = k * step;
      s->ticks[s->n_ticks++] = fabs (v) < step * 1e-9 ? 0 : v;
    }
  return s->n_ticks;
}

static double
tick_room (const VizScale *s, gboolean horizontal, const VizMetrics *m)
{
  /* Labels need room to breathe, and few ticks read faster than many. */
  return horizontal ? MAX (viz_scale_max_label_width (s, m->tick_fs) + m->fs * 1.6, m->fs * 4)
                    : m->tick_fs * 1.8;
}

static void
linear_ticks (VizScale *s, double len, gboolean horizontal, const VizMetrics *m)
{
  double span = s->hi - s->lo;
  double step = viz_nice_step (span, VIZ_MAX_TICKS - 4);
  if (s->integer && step < 1)
    step = 1;
  for (int iter = 0; iter < 200 && step > 0 && isfinite (step); iter++, step = next_nice (step))
    {
      int n = fill_linear (s, step);
      if (n < 0)
        continue;
      double px = len * step / span;
      if (px >= tick_room (s, horizontal, m))
        return;
      if (n <= 2)
        {
          /* Even two labels collide: keep one so the axis still reads. */
          s->n_ticks = MIN (n, 1);
          return;
        }
    }
  s->n_ticks = 0;
}

static gboolean
ticks_fit (const VizScale *s, double len, gboolean horizontal, const VizMetrics *m)
{
  double room = tick_room (s, horizontal, m);
  for (int i = 1; i < s->n_ticks; i++)
    if (len * fabs (viz_scale_frac (s, s->ticks[i]) - viz_scale_frac (s, s->ticks[i - 1])) < room)
      return FALSE;
  return TRUE;
}

/* 1, 2 and 5 times each power of ten in range. */
static void
log_ticks_125 (VizScale *s, int d0, int d1)
{
  static const double mant[] = { 1, 2, 5 };
  s->n_ticks = 0;
  for (int d = d0 - 1; d <= d1 + 1; d++)
    for (int i = 0; i < 3; i++)
      {
        double v = mant[i] * pow (10, d);
        if (v >= s->lo * (1 - 1e-9) && v <= s->hi * (1 + 1e-9) && s->n_ticks < VIZ_MAX_TICKS)
          s->ticks[s->n_ticks++] = v;
      }
}

/* 1 and 3 times each power of ten in range. */
static void
log_ticks_13 (VizScale *s, int d0, int d1)
{
  s->n_ticks = 0;
  for (int d = d0 - 1; d <= d1 + 1; d++)
    for (int i = 0; i < 2; i++)
      {
        double v = (i ? 3 : 1) * pow (10, d);
        if (v >= s->lo * (1 - 1e-9) && v <= s->hi * (1 + 1e-9) && s->n_ticks < VIZ_MAX_TICKS)
          s->ticks[s->n_ticks++] = v;
      }
}

/* 1-2-5 values while they fit (a decade or two), then 1-3, else every k-th
 * decade; less than a decade with no room for 1-2-5 reads better linear. */
static void
log_ticks (VizScale *s, double len, gboolean horizontal, const VizMetrics *m)
{
  double L = log10 (s->lo), H = log10 (s->hi);
  int d0 = (int) ceil (L - 1e-9), d1 = (int) floor (H + 1e-9);
  if (d1 - d0 < 6)
    {
      log_ticks_125 (s, d0, d1);
      if (s->n_ticks >= 2 && ticks_fit (s, len, horizontal, m))
        return;
      log_ticks_13 (s, d0, d1);
      if (s->n_ticks >= 3 && ticks_fit (s, len, horizontal, m))
        return;
    }
  if (d1 <= d0)
    {
      linear_ticks (s, len, horizontal, m);
      return;
    }
  static const int every[] = { 1, 2, 3, 5, 10, 20, 50, 100 };
  for (guint e = 0; e < G_N_ELEMENTS (every); e++)
    {
      int k = every[e];
      s->n_ticks = 0;
      for (int d = (int) ceil ((double) d0 / k) * k; d <= d1 && s->n_ticks < VIZ_MAX_TICKS; d += k)
        s->ticks[s->n_ticks++] = pow (10, d);
      if (s->n_ticks <= 2 || ticks_fit (s, len, horizontal, m))
        return;
    }
}

void
viz_scale_make_ticks (VizScale *s, double len, gboolean horizontal, const VizMetrics *m)
{
  s->n_ticks = 0;
  if (!(len > 0) || !(s->hi > s->lo))
    return;
  if (s->log)
    log_ticks (s, len, horizontal, m);
  else
    linear_ticks (s, len, horizontal, m);
}

/* ---- Geometry ------------------------------------------------------- */

static double
map_frac (double v, double lo, double hi, gboolean log)
{
  return log ? (log10 (v) - log10 (lo)) / (log10 (hi) - log10 (lo)) : (v - lo) / (hi - lo);
}

static double
map_unfrac (double f, double lo, double hi, gboolean log)
{
  return log ? pow (10, log10 (lo) + f * (log10 (hi) - log10 (lo))) : lo + f * (hi - lo);
}

double
viz_plot_map_x (const VizPlotMap *map, double x)
{
  return map->area.x + map_frac (x, map->x_min, map->x_max, map->log_x) * map->area.width;
}

double
viz_plot_map_y (const VizPlotMap *map, double y)
{
  return map->area.y + map->area.height * (1 - map_frac (y, map->y_min, map->y_max, map->log_y));
}

double
viz_plot_map_unx (const VizPlotMap *map, double px)
{
  return map_unfrac ((px - map->area.x) / map->area.width, map->x_min, map->x_max, map->log_x);
}

double
viz_plot_map_uny (const VizPlotMap *map, double py)
{
  return map_unfrac (1 - (py - map->area.y) / map->area.height, map->y_min, map->y_max, map->log_y);
}

/* ---- Frame ---------------------------------------------------------- */

void
viz_frame_init (VizFrame *f)
{
  memset (f, 0, sizeof *f);
  f->x_grid = f->y_grid = TRUE;
  viz_scale_set (&f->x, 0, 1, 0, FALSE);
  viz_scale_set (&f->y, 0, 1, 0, FALSE);
}

static gboolean
has_text (const char *s)
{
  return s && *s;
}

/* Beside the plot the legend packs tighter: shorter swatches, less space. */
static double
swatch_w (const VizFrame *f)
{
  return f->m.fs * (f->legend_side ? 1.2 : 1.8);
}

static double
item_space (const VizFrame *f)
{
  return f->m.fs * (f->legend_side ? 0.8 : 1.2);
}

static double
item_width (const VizFrame *f, const VizLegendItem *item)
{
  return swatch_w (f) + f->m.gap * 1.5 + viz_est_width (item->label, f->m.fs);
}

/* Greedy wrapping; row_of[i] receives each item's row when not NULL. */
static int
legend_rows (const VizFrame *f, double avail, int *row_of)
{
  int rows = 0;
  double x = 0;
  for (int i = 0; i < f->n_legend; i++)
    {
      double w = item_width (f, &f->legend[i]);
      if (rows == 0 || (x > 0 && x + w > avail))
        rows++, x = 0;
      if (row_of)
        row_of[i] = rows - 1;
      x += w + item_space (f);
    }
  return rows;
}

/* The column right of the plot: as wide as its widest entry, at most 40 %
 * of the chart (longer labels are shortened there). */
static double
side_width (const VizFrame *f, double width)
{
  double w = 0;
  for (int i = 0; i < f->n_legend; i++)
    w = MAX (w, item_width (f, &f->legend[i]));
  return MIN (w, width * 0.4);
}

static double
layout_header (VizFrame *f, double top)
{
  const VizMetrics *m = &f->m;
  gboolean title = has_text (f->title), caption = has_text (f->caption);
  if (!title && !caption)
    return top;
  double line_h = m->title_fs * 1.4;
  double inner = f->width - 2 * m->pad;
  f->title_y = top + line_h / 2;
  f->caption_own_line = title && caption
    && viz_est_width (f->title, m->title_fs * 1.1) + viz_est_width (f->caption, m->fs) + 2 * m->fs > inner;
  if (f->caption_own_line)
    {
      f->caption_y = top + line_h + m->fs * 0.7;
      return top + line_h + m->fs * 1.4 + m->gap;
    }
  f->caption_y = f->title_y;
  return top + line_h + m->gap;
}

static void
frame_layout_once (VizFrame *f, double width, double height, const VizStyle *style)
{
  VizMetrics *m = &f->m;
  viz_metrics (style, m);
  f->width = width;
  f->height = height;
  double top = layout_header (f, m->pad);
  f->legend_row_h = m->fs * (f->legend_side ? 1.2 : 1.5);
  f->legend_side_w = 0;
  if (f->n_legend > 0 && !f->legend_side)
    {
      f->legend_y = top;
      top += legend_rows (f, width - 2 * m->pad, NULL) * f->legend_row_h + m->gap;
    }
  if (f->n_legend > 0 && f->legend_side)
    f->legend_side_w = side_width (f, width);
  top += f->extra_top;
  double bottom = m->pad + m->tick_len + m->gap + m->tick_fs * 1.2
                  + (has_text (f->x_title) ? m->fs * 1.7 : 0);
  f->area.y = round (top);
  f->area.height = floor (height - bottom) - f->area.y;
  viz_scale_make_ticks (&f->y, f->area.height, FALSE, m);
  double left = m->pad + (has_text (f->y_title) ? m->fs * 1.7 : 0)
                + viz_scale_max_label_width (&f->y, m->tick_fs) + m->tick_len + m->gap;
  /* Half of the last x label may hang past the plot. */
  double right = m->pad + f->extra_right + m->fs + (f->legend_side_w > 0 ? f->legend_side_w + m->gap : 0);
  f->area.x = round (left);
  f->area.width = floor (width - right) - f->area.x;
  viz_scale_make_ticks (&f->x, f->area.width, TRUE, m);
  f->ok = f->area.width >= 4 && f->area.height >= 4;
  f->legend_y = f->legend_side ? f->area.y : f->legend_y;
}

static gboolean
roomy (const VizFrame *f)
{
  return f->area.height >= MAX (f->m.fs * 4, f->height * 0.35)
         && f->area.width >= MAX (f->m.fs * 6, f->width * 0.35);
}

/* When the plot would be squeezed, extras go first: the caption, the axis
 * titles; the legend (which says what is compared) then moves from above
 * the plot into a column right of it, one entry a row, never over the
 * data; then the title. */
static void
frame_layout_steps (VizFrame *f, double width, double height, const VizStyle *style)
{
  for (int step = 0; ; step++)
    {
      frame_layout_once (f, width, height, style);
      if (roomy (f))
        return;
      switch (step)
        {
        case 0: f->caption = NULL; break;
        case 1: f->x_title = f->y_title = NULL; break;
        case 2: f->legend_side = f->n_legend > 0; break;
        case 3: f->title = NULL; break;
        default: return;
        }
    }
}

/* The column runs from the plot's top down past its x labels; one taller
 * than that goes, and gives its width back. */
void
viz_frame_layout (VizFrame *f, double width, double height, const VizStyle *style)
{
  frame_layout_steps (f, width, height, style);
  if (f->legend_side && f->n_legend * f->legend_row_h > height - f->m.pad - f->area.y)
    {
      f->n_legend = 0;
      f->legend_side = FALSE;
      frame_layout_once (f, width, height, style);
    }
}

double
viz_frame_x (const VizFrame *f, double x)
{
  return f->area.x + viz_scale_frac (&f->x, x) * f->area.width;
}

double
viz_frame_y (const VizFrame *f, double y)
{
  return f->area.y + (1 - viz_scale_frac (&f->y, y)) * f->area.height;
}

void
viz_frame_map (const VizFrame *f, VizPlotMap *map)
{
  map->area = f->area;
  map->x_min = f->x.lo;
  map->x_max = f->x.hi;
  map->y_min = f->y.lo;
  map->y_max = f->y.hi;
  map->log_y = f->y.log;
  map->log_x = f->x.log;
  map->n_legend = f->n_legend;
  map->legend_box = (VizRect) { 0, 0, 0, 0 };
  if (f->n_legend > 0 && f->legend_side)
    map->legend_box = (VizRect) { f->width - f->m.pad - f->legend_side_w, f->legend_y,
                                  f->legend_side_w, f->n_legend * f->legend_row_h };
  else if (f->n_legend > 0)
    map->legend_box = (VizRect) { f->m.pad, f->legend_y, f->width - 2 * f->m.pad,
                                  legend_rows (f, f->width - 2 * f->m.pad, NULL) * f->legend_row_h };
}

void
viz_draw_swatch (cairo_t *cr, const VizLegendItem *item, double x, double y, double w, double h)
{
  cairo_save (cr);
  viz_set_color (cr, &item->color);
  if (item->kind == VIZ_LEGEND_BOX)
    {
      cairo_rectangle (cr, round (x + w * 0.15), round (y - h / 2), round (w * 0.7), round (h));
      cairo_fill (cr);
    }
  else
    {
      double dash[] = { 4, 3 };
      if (item->kind == VIZ_LEGEND_DASHED)
        cairo_set_dash (cr, dash, 2, 0);
      cairo_set_line_width (cr, 2);
      cairo_move_to (cr, x, round (y));
      cairo_line_to (cr, x + w, round (y));
      cairo_stroke (cr);
    }
  cairo_restore (cr);
}

static void
draw_legend_at (cairo_t *cr, const VizFrame *f, const VizStyle *style, double x0, double y0, double avail)
{
  const VizMetrics *m = &f->m;
  g_autofree int *row_of = g_new (int, f->n_legend);
  legend_rows (f, avail, row_of);
  double x = x0;
  for (int i = 0; i < f->n_legend; i++)
    {
      if (i > 0 && row_of[i] != row_of[i - 1])
        x = x0;
      double cy = y0 + (row_of[i] + 0.5) * f->legend_row_h;
      double sw = swatch_w (f);
      viz_draw_swatch (cr, &f->legend[i], x, cy, sw, m->fs * 0.8);
      double tx = x + sw + m->gap * 1.5;
      viz_text (cr, style, &style->foreground, m->fs, FALSE, tx, cy, 0,
                VIZ_ALIGN_START, VIZ_ALIGN_CENTER, x0 + avail - tx, f->legend[i].label);
      x += item_width (f, &f->legend[i]) + item_space (f);
    }
}

static void
draw_legend (cairo_t *cr, const VizFrame *f, const VizStyle *style)
{
  draw_legend_at (cr, f, style, f->m.pad, f->legend_y, f->width - 2 * f->m.pad);
}

/* A label too long for its room keeps its first and last " · " parts (a
 * run's number and method), dropping those between; an ellipsis ends what
 * is still too long. */
static char *
short_label (const char *label, double room, double fs)
{
  const char *sep = " · ";
  const char *first = strstr (label, sep), *last = g_strrstr (label, sep);
  if (viz_est_width (label, fs) <= room || !first || first == last)
    return g_strdup (label);
  return g_strdup_printf ("%.*s%s", (int) (first - label), label, last);
}

/* Right of the plot, one entry a row from its top. */
static void
draw_legend_side (cairo_t *cr, const VizFrame *f, const VizStyle *style)
{
  const VizMetrics *m = &f->m;
  double x0 = f->width - m->pad - f->legend_side_w, sw = swatch_w (f);
  for (int i = 0; i < f->n_legend; i++)
    {
      double cy = f->legend_y + (i + 0.5) * f->legend_row_h;
      viz_draw_swatch (cr, &f->legend[i], x0, cy, sw, m->fs * 0.8);
      double tx = x0 + sw + m->gap * 1.5, room = x0 + f->legend_side_w - tx;
      g_autofree char *label = short_label (f->legend[i].label, room, m->fs);
      viz_text (cr, style, &style->foreground, m->fs, FALSE, tx, cy, 0,
                VIZ_ALIGN_START, VIZ_ALIGN_CENTER, room, label);
    }
}

void
viz_frame_draw_header (cairo_t *cr, const VizFrame *f, const VizStyle *style)
{
  const VizMetrics *m = &f->m;
  double inner = f->width - 2 * m->pad;
  if (has_text (f->title))
    {
      double room = has_text (f->caption) && !f->caption_own_line
        ? inner - viz_est_width (f->caption, m->fs) - m->fs : inner;
      viz_text (cr, style, &style->foreground, m->title_fs, TRUE, m->pad, f->title_y, 0,
                VIZ_ALIGN_START, VIZ_ALIGN_CENTER, room, f->title);
    }
  if (has_text (f->caption))
    {
      gboolean right = has_text (f->title) && !f->caption_own_line;
      viz_text (cr, style, &style->muted, m->fs, FALSE, right ? f->width - m->pad : m->pad,
                f->caption_y, 0, right ? VIZ_ALIGN_END : VIZ_ALIGN_START, VIZ_ALIGN_CENTER,
                inner, f->caption);
    }
  if (f->n_legend > 0 && !f->legend_side)
    draw_legend (cr, f, style);
}

/* Lines one device pixel wide land on pixel centres. */
static double
crisp (double v)
{
  return floor (v) + 0.5;
}

void
viz_frame_draw_grid (cairo_t *cr, const VizFrame *f, const VizStyle *style)
{
  if (!f->ok)
    return;
  cairo_save (cr);
  viz_set_color (cr, &style->grid);
  cairo_set_line_width (cr, 1);
  const VizRect *a = &f->area;
  for (int i = 0; f->y_grid && i < f->y.n_ticks; i++)
    {
      double y = crisp (viz_frame_y (f, f->y.ticks[i]));
      cairo_move_to (cr, a->x, y);
      cairo_line_to (cr, a->x + a->width, y);
    }
  for (int i = 0; f->x_grid && i < f->x.n_ticks; i++)
    {
      double x = crisp (viz_frame_x (f, f->x.ticks[i]));
      cairo_move_to (cr, x, a->y);
      cairo_line_to (cr, x, a->y + a->height);
    }
  cairo_stroke (cr);
  cairo_restore (cr);
}

void
viz_draw_x_axis (cairo_t *cr, const VizStyle *style, const VizMetrics *m, const VizScale *s,
                 const VizRect *a, const char *title, double title_y)
{
  double y0 = a->y + a->height;
  cairo_save (cr);
  viz_set_color (cr, &style->axis);
  cairo_set_line_width (cr, 1);
  cairo_move_to (cr, a->x - 1, y0 + 0.5);
  cairo_line_to (cr, a->x + a->width, y0 + 0.5);
  char buf[64];
  for (int i = 0; i < s->n_ticks; i++)
    {
      double x = crisp (a->x + viz_scale_frac (s, s->ticks[i]) * a->width);
      cairo_move_to (cr, x, y0 + 1);
      cairo_line_to (cr, x, y0 + 1 + m->tick_len);
    }
  cairo_stroke (cr);
  for (int i = 0; i < s->n_ticks; i++)
    {
      double x = a->x + viz_scale_frac (s, s->ticks[i]) * a->width;
      viz_scale_label (s, s->ticks[i], buf, sizeof buf);
      viz_text (cr, style, &style->foreground, m->tick_fs, FALSE, x, y0 + 1 + m->tick_len + m->gap,
                0, VIZ_ALIGN_CENTER, VIZ_ALIGN_START, 0, buf);
    }
  if (has_text (title))
    viz_text (cr, style, &style->foreground, m->fs, FALSE, a->x + a->width / 2, title_y, 0,
              VIZ_ALIGN_CENTER, VIZ_ALIGN_CENTER, a->width + 2 * m->pad, title);
  cairo_restore (cr);
}

void
viz_draw_y_axis (cairo_t *cr, const VizStyle *style, const VizMetrics *m, const VizScale *s,
                 const VizRect *a, const char *title, double title_x)
{
  cairo_save (cr);
  viz_set_color (cr, &style->axis);
  cairo_set_line_width (cr, 1);
  cairo_move_to (cr, a->x - 0.5, a->y);
  cairo_line_to (cr, a->x - 0.5, a->y + a->height + 1);
  char buf[64];
  for (int i = 0; i < s->n_ticks; i++)
    {
      double y = crisp (a->y + (1 - viz_scale_frac (s, s->ticks[i])) * a->height);
      cairo_move_to (cr, a->x - 1, y);
      cairo_line_to (cr, a->x - 1 - m->tick_len, y);
    }
  cairo_stroke (cr);
  for (int i = 0; i < s->n_ticks; i++)
    {
      double y = a->y + (1 - viz_scale_frac (s, s->ticks[i])) * a->height;
      viz_scale_label (s, s->ticks[i], buf, sizeof buf);
      viz_text (cr, style, &style->foreground, m->tick_fs, FALSE, a->x - 1 - m->tick_len - m->gap,
                y, 0, VIZ_ALIGN_END, VIZ_ALIGN_CENTER, 0, buf);
    }
  if (has_text (title))
    viz_text (cr, style, &style->foreground, m->fs, FALSE, title_x, a->y + a->height / 2,
              -G_PI / 2, VIZ_ALIGN_CENTER, VIZ_ALIGN_CENTER,
              a->height + 2 * MIN (MAX (a->y, m->pad), 2.5 * m->pad), title);
  cairo_restore (cr);
}

void
viz_frame_draw_axes (cairo_t *cr, const VizFrame *f, const VizStyle *style)
{
  if (!f->ok)
    return;
  const VizMetrics *m = &f->m;
  /* Titles follow the plot, which a view may have shrunk after layout. */
  double x_title_y = f->area.y + f->area.height + 1 + m->tick_len + m->gap + m->tick_fs * 1.2 + m->fs * 0.85;
  double y_title_x = f->area.x - 1 - m->tick_len - m->gap
                     - viz_scale_max_label_width (&f->y, m->tick_fs) - m->fs * 0.85;
  viz_draw_x_axis (cr, style, m, &f->x, &f->area, f->x_title, x_title_y);
  viz_draw_y_axis (cr, style, m, &f->y, &f->area, f->y_title, y_title_x);
  if (f->n_legend > 0 && f->legend_side)
    draw_legend_side (cr, f, style);
}

void
viz_frame_clip (cairo_t *cr, const VizFrame *f)
{
  cairo_rectangle (cr, f->area.x, f->area.y, f->area.width, f->area.height);
  cairo_clip (cr);
}

void
viz_path_to (cairo_t *cr, gboolean *pen, double x, double y)
{
  if (*pen)
    cairo_line_to (cr, x, y);
  else
    cairo_move_to (cr, x, y);
  *pen = TRUE;
}

void
viz_draw_note (cairo_t *cr, const VizStyle *style, const VizRect *a, const char *text)
{
  VizMetrics m;
  viz_metrics (style, &m);
  viz_text (cr, style, &style->muted, m.fs * 1.1, FALSE, a->x + a->width / 2, a->y + a->height / 2,
            0, VIZ_ALIGN_CENTER, VIZ_ALIGN_CENTER, a->width - m.gap * 2, text);
}

/* ---- Hover read-out -------------------------------------------------- */

void
viz_draw_readout (cairo_t *cr, double width, double height, const VizStyle *style,
                  const VizRect *area, double px, double py, const char *text)
{
  if (!cr || !text || !*text || !viz_size_ok (width, height))
    return;
  style = viz_style_or_default (style);
  VizMetrics m;
  viz_metrics (style, &m);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  int n = g_strv_length (lines);
  double w = 0, line_h = m.fs * 1.35;
  cairo_save (cr);
  cairo_select_font_face (cr, style->font_family ? style->font_family : "Sans",
                          CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, m.fs);
  for (int i = 0; i < n; i++)
    {
      cairo_text_extents_t ext;
      cairo_text_extents (cr, lines[i], &ext);
      w = MAX (w, ext.x_advance);
    }
  cairo_restore (cr);
  w += 2 * m.gap + m.fs * 0.6;
  double h = n * line_h + 2 * m.gap;
  cairo_save (cr);
  if (area && px >= area->x && px <= area->x + area->width)
    {
      viz_set_color (cr, &style->axis);
      cairo_set_line_width (cr, 1);
      cairo_move_to (cr, floor (px) + 0.5, area->y);
      cairo_line_to (cr, floor (px) + 0.5, area->y + area->height);
      cairo_stroke (cr);
    }
  /* Right of and below the pointer, flipped where it would leave the view. */
  double x = px + m.fs, y = py + m.fs;
  if (x + w > width)
    x = px - m.fs - w;
  if (y + h > height)
    y = py - m.fs - h;
  x = CLAMP (x, 0, MAX (width - w, 0));
  y = CLAMP (y, 0, MAX (height - h, 0));
  VizColor bg = style->background;
  bg.a = 0.94;
  viz_set_color (cr, &bg);
  cairo_rectangle (cr, round (x) + 0.5, round (y) + 0.5, round (w), round (h));
  cairo_fill_preserve (cr);
  viz_set_color (cr, &style->axis);
  cairo_set_line_width (cr, 1);
  cairo_stroke (cr);
  for (int i = 0; i < n; i++)
    viz_text (cr, style, &style->foreground, m.fs, i == 0, x + m.gap + m.fs * 0.3,
              y + m.gap + (i + 0.5) * line_h, 0, VIZ_ALIGN_START, VIZ_ALIGN_CENTER, 0, lines[i]);
  cairo_restore (cr);
}
