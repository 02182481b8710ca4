/* The gradient view: for one LIF layer, the spatial and temporal parts of
 * dL/du per time step as stacked bars, with their cosine per step and the
 * BPTT-vs-spatial weight-gradient cosine of the layer feeding it; beside
 * them, that cosine per linear/conv layer and its mean over the iterations
 * of a run (Fig. 3 of the SLTT paper). A tau slider asks for the analysis
 * again with a what-if membrane time constant. */
#pragma once
#include <gtk/gtk.h>
#include "snnwb-run.h"
#include "snnwb-session.h"

G_BEGIN_DECLS

#define SNNWB_TYPE_GRADIENT_VIEW (snnwb_gradient_view_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbGradientView, snnwb_gradient_view, SNNWB, GRADIENT_VIEW, GtkBox)

GtkWidget     *snnwb_gradient_view_new (void);

/* The run whose cosine curve is shown (its model names the layers). */
void           snnwb_gradient_view_set_run (SnnwbGradientView *self, SnnwbRun *run);
/* The latest decomposition; also redraws the curve of the run. */
void           snnwb_gradient_view_set_gradient (SnnwbGradientView *self, SnnwbGradient *grad);
SnnwbGradient *snnwb_gradient_view_get_gradient (SnnwbGradientView *self);
/* Index among the LIF layers. */
void           snnwb_gradient_view_set_lif_index (SnnwbGradientView *self, int index);

/* The slider only asks for what-if analyses while the model is not
 * training; when disabled it goes back to the model's tau. */
void           snnwb_gradient_view_set_tau_enabled (SnnwbGradientView *self, gboolean enabled);
/* As if the user moved the slider or the spin button. */
void           snnwb_gradient_view_set_tau (SnnwbGradientView *self, double tau);
double         snnwb_gradient_view_get_tau (SnnwbGradientView *self);
void           snnwb_gradient_view_set_interval (SnnwbGradientView *self, int every);
int            snnwb_gradient_view_get_interval (SnnwbGradientView *self);
GtkMenuButton *snnwb_gradient_view_get_menu_button (SnnwbGradientView *self);

/* Decompositions received, and points of the cosine curve shown. */
guint          snnwb_gradient_view_get_data_count (SnnwbGradientView *self);
guint          snnwb_gradient_view_get_n_points (SnnwbGradientView *self);

/* Both charts as one PNG, SVG or PDF by the file's extension. */
gboolean       snnwb_gradient_view_export (SnnwbGradientView *self, const char *path, GError **error);
/* The cosine curves as CSV. */
gboolean       snnwb_gradient_view_export_csv (SnnwbGradientView *self, const char *path, GError **error);

/* What the view draws, its formulas and units (Pango markup). */
const char    *snnwb_gradient_view_info_markup (void);
/* The hover read-out at (x, y) on the canvas; NULL: nothing under it. */
void           snnwb_gradient_view_hover (SnnwbGradientView *self, double x, double y);
const char    *snnwb_gradient_view_get_readout (SnnwbGradientView *self);

/* Repaints with snnwb_view_style () (presentation mode switched). */
void snnwb_gradient_view_restyle (SnnwbGradientView *self);

G_END_DECLS
