/* A live view: a drawing area that hands plain data to the viz renderers.
 * One kind per view: the probed sample's spike raster or membrane traces,
 * the epsilon heat map, run curves (loss, accuracy, memory, time) overlaid
 * across runs, or the surrogate derivative. */
#pragma once
#include <gtk/gtk.h>
#include "snnwb-run.h"
#include "snnwb-session.h"
#include "viz.h"

G_BEGIN_DECLS

typedef enum {
  SNNWB_CHART_RASTER,
  SNNWB_CHART_TRACES,
  SNNWB_CHART_EPSILON,
  SNNWB_CHART_LOSS,
  SNNWB_CHART_ACCURACY,
  SNNWB_CHART_MEMORY,
  SNNWB_CHART_TIME,
  SNNWB_CHART_SURROGATE,
} SnnwbChartKind;

GType snnwb_chart_kind_get_type (void);
#define SNNWB_TYPE_CHART_KIND (snnwb_chart_kind_get_type ())

#define SNNWB_TYPE_CHART_VIEW (snnwb_chart_view_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbChartView, snnwb_chart_view, SNNWB, CHART_VIEW, GtkDrawingArea)

GtkWidget     *snnwb_chart_view_new (SnnwbChartKind kind);
/* The style every view draws with on screen; larger lettering in
 * presentation mode (exports keep the normal style). Views repaint on
 * snnwb_chart_view_restyle. */
const VizStyle *snnwb_view_style (void);
void           snnwb_view_style_set_large (gboolean large);
void           snnwb_chart_view_restyle (SnnwbChartView *self);
SnnwbChartKind snnwb_chart_view_get_kind (SnnwbChartView *self);
const char    *snnwb_chart_view_get_name (SnnwbChartView *self);   /* "raster", "loss", ... */

/* Raster and traces. */
void           snnwb_chart_view_set_probe (SnnwbChartView *self, SnnwbProbe *probe);
/* Which LIF layer (index among the probed LIF layers) raster, traces and
 * epsilon show. */
void           snnwb_chart_view_set_lif_index (SnnwbChartView *self, int index);
/* n 0: neurons that fire, picked from the probe. */
void           snnwb_chart_view_set_neurons (SnnwbChartView *self, const int *neurons, int n);
/* Epsilon heat map. */
void           snnwb_chart_view_set_epsilon (SnnwbChartView *self, SnnwbEpsilon *eps);
/* Run curves: the runs overlaid (borrowed array of SnnwbRun). */
void           snnwb_chart_view_set_runs (SnnwbChartView *self, GPtrArray *runs);
/* New iterations were recorded in the runs shown. */
void           snnwb_chart_view_runs_updated (SnnwbChartView *self);
/* Surrogate derivative of these neuron parameters. */
void           snnwb_chart_view_set_surrogate (SnnwbChartView *self, const SnnLifParams *p);

/* The colour of the run with this index in every chart and the run list. */
void           snnwb_chart_view_run_color (int index, GdkRGBA *color);

/* How many times the view received new data. */
guint          snnwb_chart_view_get_n_runs (SnnwbChartView *self);
guint          snnwb_chart_view_get_data_count (SnnwbChartView *self);
/* Whether the picture on screen shows the view's latest data. */
gboolean       snnwb_chart_view_shows_latest (SnnwbChartView *self);
gboolean       snnwb_chart_view_has_data (SnnwbChartView *self);

/* What a view draws, its formula and units (Pango markup), and a button
 * that shows it in a popover. */
const char    *snnwb_chart_view_info_markup (SnnwbChartKind kind);
GtkWidget     *snnwb_chart_view_make_info_button (SnnwbChartKind kind);
/* The info button of a view's header: its popover shows markup. */
GtkWidget     *snnwb_info_button_new (const char *markup);

/* The hover read-out: what the pointer at (x, y) (widget coordinates)
 * points at, as shown beside it; NULL when nothing is under it. The motion
 * controller calls hover; leave clears it. */
void           snnwb_chart_view_hover (SnnwbChartView *self, double x, double y);
void           snnwb_chart_view_leave (SnnwbChartView *self);
const char    *snnwb_chart_view_get_readout (SnnwbChartView *self);
/* The legend's labels as drawn at the view's present size (empty when the
 * legend had no room). */
GStrv          snnwb_chart_view_dup_legend (SnnwbChartView *self);

/* Raster: the neurons shown, first and count (count 0: the whole layer).
 * Scrolling zooms around the pointer, a double click shows all; a click
 * emits "neuron-picked" with the neuron under the pointer. */
void           snnwb_chart_view_zoom_neurons (SnnwbChartView *self, int first, int count);
void           snnwb_chart_view_pick (SnnwbChartView *self, double x, double y);
/* Traces: the neurons traced in the latest picture (the ones asked for,
 * or with none asked for, neurons that fire). */
int            snnwb_chart_view_get_traced (SnnwbChartView *self, int *out, int max);

/* PNG, SVG or PDF by the file's extension. */
gboolean       snnwb_chart_view_export (SnnwbChartView *self, const char *path, GError **error);
/* The curves shown, as CSV. */
gboolean       snnwb_chart_view_export_csv (SnnwbChartView *self, const char *path, GError **error);

G_END_DECLS
