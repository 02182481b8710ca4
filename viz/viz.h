/* Cairo renderers for the workbench views.
 *
 * Each view draws from a plain data struct into any cairo_t of a given size,
 * so the same call paints a GTK widget, a PNG, an SVG or a PDF. Only cairo's
 * toy text API is used, to keep the library free of GTK and Pango.
 *
 * Every draw function accepts any size (zero, negative, NaN: nothing is
 * drawn), empty or all-NaN data (the axes and a "no data" note), and a NULL
 * style (the light one). Data is borrowed for the duration of the call.
 *
 * Layout depends only on the size, the data and the style (text widths are
 * estimated from the font size, not measured), so the geometry helpers below
 * return exactly what a draw call of the same size uses. */
#pragma once
#include <cairo.h>
#include <glib.h>

G_BEGIN_DECLS

/* ---- Style ---------------------------------------------------------- */

typedef struct {
  double r, g, b, a;
} VizColor;

#define VIZ_PALETTE_SIZE 8

typedef struct {
  VizColor background;
  VizColor foreground;   /* text, raster spike marks */
  VizColor muted;        /* secondary text: captions, notes */
  VizColor grid;
  VizColor axis;         /* spines, ticks, the threshold line */
  VizColor highlight;    /* shading of marked steps */
  VizColor masked;       /* heat map cells without a value */
  VizColor palette[VIZ_PALETTE_SIZE];   /* series colours, in order */
  double font_size;      /* of tick labels and legends, in user units */
  const char *font_family;
} VizStyle;

/* Static styles; copy one to change a field. */
const VizStyle *viz_style_light (void);
const VizStyle *viz_style_dark (void);
/* palette[index mod VIZ_PALETTE_SIZE]; negative indices wrap too. */
VizColor        viz_style_series_color (const VizStyle *style, int index);

void            viz_set_color (cairo_t *cr, const VizColor *color);

/* The heat map ramp (viridis-like): f in [0, 1], clamped; NaN gives the
 * bottom. */
VizColor        viz_ramp (double f);

/* ---- Geometry ------------------------------------------------------- */

typedef struct {
  double x, y, width, height;
} VizRect;

/* The plot area of a chart and the data range it shows. */
typedef struct {
  VizRect area;
  double x_min, x_max;
  double y_min, y_max;
  gboolean log_y;
  gboolean log_x;
  int n_legend;                   /* legend entries drawn (0: dropped for room) */
  VizRect legend_box;             /* where they are (never over area) */
} VizPlotMap;

double viz_plot_map_x (const VizPlotMap *map, double x);
double viz_plot_map_y (const VizPlotMap *map, double y);

/* A 1-2-5 step (1, 2 or 5 times a power of ten) no smaller than span /
 * max_ticks; 0 when span or max_ticks is not positive and finite. */
double viz_nice_step (double span, int max_ticks);

/* ---- 1. Spike raster ------------------------------------------------ */

/* The spikes of one layer for one sample. Cell (t, neuron) spans one time
 * step on x and one neuron on y; neuron 0 is at the bottom. With more
 * neurons than pixel rows, each row of pixels shades its step by the share
 * of its neurons that fired (darkest: the busiest row). */
typedef struct {
  const guint8 *spikes;           /* [T][n_neurons], nonzero = spike */
  int n_neurons;
  int T;
  const gboolean *marked_steps;   /* [T] or NULL: steps to shade */
  const char *marked_label;       /* legend of the shading; NULL: "SLTT-K steps" */
  gboolean show_rate;             /* side panel: firing rate per neuron */
  gboolean show_caption;          /* overall rate and spike count */
  const char *title;
  const char *x_title;            /* NULL: "time step t" */
  const char *y_title;            /* NULL: "neuron" */
  int neuron_first;               /* label of row 0 (a zoomed slice of a layer) */
} VizRaster;

void     viz_raster_draw (cairo_t *cr, double width, double height,
                          const VizRaster *data, const VizStyle *style);
/* The rectangle of cell (t, neuron); FALSE when out of range or there is no
 * room for a plot. */
gboolean viz_raster_cell_rect (double width, double height, const VizRaster *data,
                               const VizStyle *style, int t, int neuron, VizRect *cell);

/* ---- 2. Membrane traces --------------------------------------------- */

typedef struct {
  const double *u;                /* [n_traces][T] membrane potential */
  const guint8 *spikes;           /* [n_traces][T] or NULL */
  int n_traces;
  int T;
  double vth;                     /* threshold; NaN: no line */
  const int *neuron_ids;          /* [n_traces] or NULL: legend "neuron <id>" */
  const char * const *labels;     /* [n_traces] or NULL: overrides neuron_ids */
  const gboolean *marked_steps;   /* [T] or NULL */
  const char *marked_label;       /* NULL: "SLTT-K steps" */
  const char *title;
  const char *x_title;            /* NULL: "time step t" */
  const char *y_title;            /* NULL: "membrane potential u" */
} VizTraces;

void     viz_traces_draw (cairo_t *cr, double width, double height,
                          const VizTraces *data, const VizStyle *style);
/* Plot area and ranges: the threshold is drawn at viz_plot_map_y (vth). */
gboolean viz_traces_layout (double width, double height, const VizTraces *data,
                            const VizStyle *style, VizPlotMap *map);

/* ---- 3. Line chart -------------------------------------------------- */

typedef struct {
  const double *x;                /* [n] or NULL: 0, 1, ..., n-1 */
  const double *y;                /* [n]; NaN, inf (and <= 0 on a log axis) break the line */
  int n;
  const char *label;              /* NULL: not in the legend */
  gboolean dashed;
  gboolean markers;               /* a dot at each point */
  const VizColor *color;          /* NULL: the palette colour of its position */
} VizSeries;

/* A vertical line across the plot at x, e.g. where a run's method changed. */
typedef struct {
  double x;
  const char *label;              /* short, at the top of the line; NULL: none */
  const VizColor *color;          /* NULL: the axis colour */
} VizMark;

/* A legend entry of its own: runs by colour, quantities by dash. */
typedef struct {
  const char *label;
  const VizColor *color;          /* NULL: the foreground */
  gboolean dashed;
} VizLegendEntry;

typedef struct {
  const VizSeries *series;
  int n_series;
  const char *title;
  const char *x_title;
  const char *y_title;
  gboolean log_y;
  gboolean log_x;                 /* x <= 0 breaks the line */
  gboolean x_integer;             /* ticks at whole numbers only */
  gboolean fix_x, fix_y;          /* use the ranges below instead of the data's */
  double x_min, x_max;
  double y_min, y_max;
  const VizMark *marks;           /* [n_marks] or NULL */
  int n_marks;
  const VizLegendEntry *legend;   /* [n_legend]: replaces the series' labels */
  int n_legend;
} VizLineChart;

void     viz_line_chart_draw (cairo_t *cr, double width, double height,
                              const VizLineChart *data, const VizStyle *style);
gboolean viz_line_chart_layout (double width, double height, const VizLineChart *data,
                                const VizStyle *style, VizPlotMap *map);
/* The index of the point of s nearest to x along x (finite points only),
 * or -1. */
int      viz_series_nearest (const VizSeries *s, double x);
/* Inverse of the map's x and y: the data coordinates under a pixel. */
double   viz_plot_map_unx (const VizPlotMap *map, double px);
double   viz_plot_map_uny (const VizPlotMap *map, double py);

/* ---- Hover read-out -------------------------------------------------- */

/* A boxed note of one or more lines ('\n') next to the pointer (px, py),
 * kept inside width x height; with a plot area, a thin vertical line at px
 * across it. */
void     viz_draw_readout (cairo_t *cr, double width, double height, const VizStyle *style,
                           const VizRect *area, double px, double py, const char *text);

/* ---- 4. Bars -------------------------------------------------------- */

typedef enum {
  VIZ_BARS_STACKED,               /* one bar per group, series stacked bottom up */
  VIZ_BARS_GROUPED,               /* series side by side within a group */
} VizBarsMode;

typedef struct {
  const double *values;           /* [n_series][n_groups]; NaN: no bar */
  int n_series;
  int n_groups;
  VizBarsMode mode;
  const char * const *series_labels;   /* [n_series] or NULL: legend */
  const char * const *group_labels;    /* [n_groups] or NULL: group_first + i */
  int group_first;
  gboolean show_values;           /* numbers above the bars where they fit */
  const char *title;
  const char *x_title;
  const char *y_title;
} VizBars;

void     viz_bars_draw (cairo_t *cr, double width, double height,
                        const VizBars *data, const VizStyle *style);
/* x is the group index (group g is centred on x = g). */
gboolean viz_bars_layout (double width, double height, const VizBars *data,
                          const VizStyle *style, VizPlotMap *map);

/* ---- 5. Heat map ---------------------------------------------------- */

typedef struct {
  const double *values;           /* [rows][cols]; NaN: masked cell */
  int rows;
  int cols;
  int row_first, col_first;       /* first row and column labels */
  gboolean log_scale;             /* values <= 0 are masked */
  gboolean fix_range;             /* use v_min, v_max instead of the data's */
  double v_min, v_max;
  gboolean square_cells;
  gboolean show_values;           /* numbers in the cells where they fit */
  const char *title;
  const char *row_title;          /* e.g. "t" */
  const char *col_title;          /* e.g. "t'" */
  const char *scale_title;        /* beside the colour bar */
} VizHeatmap;

void     viz_heatmap_draw (cairo_t *cr, double width, double height,
                           const VizHeatmap *data, const VizStyle *style);
/* Row 0 is at the top. */
gboolean viz_heatmap_cell_rect (double width, double height, const VizHeatmap *data,
                                const VizStyle *style, int row, int col, VizRect *cell);
/* The colour a value gets (the masked colour for NaN or out of a log scale). */
VizColor viz_heatmap_value_color (const VizHeatmap *data, const VizStyle *style, double value);

/* ---- Export --------------------------------------------------------- */

typedef void (*VizDrawFunc) (cairo_t *cr, double width, double height,
                             gconstpointer data, const VizStyle *style);

/* The views as VizDrawFunc. */
void viz_draw_raster (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style);
void viz_draw_traces (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style);
void viz_draw_line_chart (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style);
void viz_draw_bars (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style);
void viz_draw_heatmap (cairo_t *cr, double width, double height, gconstpointer data, const VizStyle *style);

#define VIZ_ERROR (viz_error_quark ())
typedef enum {
  VIZ_ERROR_FORMAT,               /* unknown file extension */
  VIZ_ERROR_SIZE,                 /* width or height out of range */
  VIZ_ERROR_RENDER,               /* cairo failed */
} VizError;
GQuark viz_error_quark (void);

/* Renders to path as PNG, SVG or PDF by its extension (any case). The file
 * is written next to path under a temporary name and renamed over it, so
 * path is left untouched on failure. Errors name the file. */
gboolean viz_export (const char *path, int width, int height, VizDrawFunc draw,
                     gconstpointer data, const VizStyle *style, GError **error);

/* The series as CSV: a header of x_title (NULL: "x") and the labels, then a
 * row per point. Series sharing the same x values share one x column;
 * otherwise each series gets its own "<label> <x_title>" column. Missing values
 * are empty cells. */
char    *viz_series_to_csv (const VizSeries *series, int n_series, const char *x_title);
gboolean viz_series_write_csv (const char *path, const VizSeries *series, int n_series,
                               const char *x_title, GError **error);

G_END_DECLS
