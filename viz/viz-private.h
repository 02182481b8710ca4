/* Shared pieces of the views: text, scales with 1-2-5 ticks, and the frame
 * (title, caption, legend, plot area, axes) common to the charts. */
#pragma once
#include "viz.h"

G_BEGIN_DECLS

#define VIZ_MAX_TICKS 64

/* Sizes derived from the style's font size, so everything scales with it. */
typedef struct {
  double fs;          /* legends, axis titles */
  double tick_fs;     /* tick labels */
  double title_fs;
  double pad;         /* outer margin */
  double tick_len;
  double gap;         /* between a label and what it labels */
} VizMetrics;

void     viz_metrics (const VizStyle *style, VizMetrics *m);
const VizStyle *viz_style_or_default (const VizStyle *style);
gboolean viz_size_ok (double width, double height);
gboolean viz_begin (cairo_t *cr, double width, double height, const VizStyle *style);
void     viz_end (cairo_t *cr);

/* ---- Text ----------------------------------------------------------- */

typedef enum {
  VIZ_ALIGN_START,
  VIZ_ALIGN_CENTER,
  VIZ_ALIGN_END,
} VizAlign;

/* Layout reserves room from this estimate, so geometry needs no cairo_t. */
double viz_est_width (const char *text, double size);

/* Draws text anchored at (x, y); angle in radians (-G_PI / 2 reads upward).
 * Text wider than max_width (> 0) is shortened with an ellipsis. */
void   viz_text (cairo_t *cr, const VizStyle *style, const VizColor *color,
                 double size, gboolean bold, double x, double y, double angle,
                 VizAlign halign, VizAlign valign, double max_width, const char *text);

/* ---- Scales --------------------------------------------------------- */

typedef struct {
  double lo, hi;              /* the range shown */
  gboolean log;               /* lo, hi > 0; mapped by log10 */
  gboolean integer;           /* ticks at whole numbers */
  gboolean reversed;          /* lo at the top (rows of a matrix) */
  const char * const *names;  /* categorical labels for integer ticks, or NULL */
  int n_names;
  int name_first;             /* label of tick v is name_first + v without names */
  double step;                /* linear tick step */
  int n_ticks;
  double ticks[VIZ_MAX_TICKS];
} VizScale;

/* Sets the range from data bounds: non-finite or empty bounds give 0..1,
 * a single value is widened, pad_frac adds room on both ends. */
void   viz_scale_set (VizScale *s, double lo, double hi, double pad_frac, gboolean log);
/* Picks ticks so that labels on an axis of len pixels do not collide. */
void   viz_scale_make_ticks (VizScale *s, double len, gboolean horizontal, const VizMetrics *m);
void   viz_scale_label (const VizScale *s, double v, char *buf, gsize n);
double viz_scale_max_label_width (const VizScale *s, double size);
/* Fraction 0..1 of the range (not clamped). */
double viz_scale_frac (const VizScale *s, double v);

/* ---- Legend --------------------------------------------------------- */

typedef enum {
  VIZ_LEGEND_LINE,
  VIZ_LEGEND_DASHED,
  VIZ_LEGEND_BOX,
} VizLegendKind;

typedef struct {
  const char *label;
  VizColor color;
  VizLegendKind kind;
} VizLegendItem;

/* ---- Frame ---------------------------------------------------------- */

typedef struct {
  /* in */
  const char *title;
  const char *caption;        /* muted, right of the title or below it */
  const char *x_title;
  const char *y_title;
  const VizLegendItem *legend;
  int n_legend;
  double extra_top;           /* room between the legend and the plot */
  double extra_right;         /* room right of the plot */
  gboolean x_grid, y_grid;
  VizScale x, y;              /* ranges set; ticks are made by the layout */
  /* out */
  VizMetrics m;
  double width, height;
  VizRect area;
  double title_y;             /* vertical centre of the title line */
  double caption_y;           /* vertical centre of the caption */
  gboolean caption_own_line;
  double legend_y;            /* top of the first legend row */
  double legend_row_h;
  gboolean legend_side;       /* no room above the plot: a column right of it */
  double legend_side_w;       /* that column's width */
  gboolean ok;                /* room for a plot */
} VizFrame;

void viz_frame_init (VizFrame *f);
void viz_frame_layout (VizFrame *f, double width, double height, const VizStyle *style);
void viz_frame_map (const VizFrame *f, VizPlotMap *map);
double viz_frame_x (const VizFrame *f, double x);
double viz_frame_y (const VizFrame *f, double y);

void viz_frame_draw_header (cairo_t *cr, const VizFrame *f, const VizStyle *style);
void viz_frame_draw_grid (cairo_t *cr, const VizFrame *f, const VizStyle *style);
void viz_frame_draw_axes (cairo_t *cr, const VizFrame *f, const VizStyle *style);
void viz_frame_clip (cairo_t *cr, const VizFrame *f);
/* Extends a polyline to (x, y), or starts one there when *pen is FALSE
 * (the first point, or after a break); sets *pen. */
void viz_path_to (cairo_t *cr, gboolean *pen, double x, double y);

/* Draws one axis with ticks and labels (used by the side panels too). */
void viz_draw_x_axis (cairo_t *cr, const VizStyle *style, const VizMetrics *m,
                      const VizScale *s, const VizRect *area, const char *title,
                      double title_y);
void viz_draw_y_axis (cairo_t *cr, const VizStyle *style, const VizMetrics *m,
                      const VizScale *s, const VizRect *area, const char *title,
                      double title_x);

/* Centered muted note in a rectangle, e.g. "no data". */
void viz_draw_note (cairo_t *cr, const VizStyle *style, const VizRect *area, const char *text);

/* Legend swatch of one kind, w wide, centred on y. */
void viz_draw_swatch (cairo_t *cr, const VizLegendItem *item, double x, double y,
                      double w, double h);

/* Rounds edges to whole device pixels when cells are at least 2 wide, so
 * marks come out crisp; thinner cells keep their exact (blended) edges. */
double viz_snap_edge (double v, double cell);

G_END_DECLS
