/* The workbench window: network editor and settings on the left, live
 * views and the run list on the right, training commands as actions. */
#pragma once
#include <gtk/gtk.h>
#include "experiment.h"
#include "snnwb-chart-view.h"
#include "snnwb-gradient-view.h"
#include "snnwb-layer-editor.h"
#include "snnwb-run.h"
#include "snnwb-settings-panel.h"

G_BEGIN_DECLS

#define SNNWB_TYPE_WINDOW (snnwb_window_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbWindow, snnwb_window, SNNWB, WINDOW, GtkApplicationWindow)

SnnwbWindow   *snnwb_window_new (GtkApplication *app);

/* A preset name or an experiment file; errors go to the window's message
 * bar and are returned. */
gboolean       snnwb_window_open_experiment (SnnwbWindow *self, const char *path_or_preset);
gboolean       snnwb_window_load_experiment (SnnwbWindow *self, const char *path_or_preset, GError **error);
gboolean       snnwb_window_save_experiment_to (SnnwbWindow *self, const char *path, GError **error);
/* The experiment being edited (the next run's settings). */
SnnExperiment *snnwb_window_get_experiment (SnnwbWindow *self);
/* Call after changing the experiment directly. */
void           snnwb_window_experiment_changed (SnnwbWindow *self);

SnnwbLayerEditor   *snnwb_window_get_layer_editor (SnnwbWindow *self);
SnnwbSettingsPanel *snnwb_window_get_settings_panel (SnnwbWindow *self);
SnnwbChartView     *snnwb_window_get_view (SnnwbWindow *self, const char *name);
SnnwbGradientView  *snnwb_window_get_gradient_view (SnnwbWindow *self);
/* As if typed into the traces view's neuron field ("0, 1, 2"). */
void                snnwb_window_set_traced_neurons (SnnwbWindow *self, const char *text);
GtkWidget          *snnwb_window_get_neurons_entry (SnnwbWindow *self);
/* Why the network cannot be edited now (a run is active), or NULL. */
const char         *snnwb_window_get_network_lock (SnnwbWindow *self);
GtkDropDown        *snnwb_window_get_preset_drop_down (SnnwbWindow *self);
/* Weights for the paused run, or for the next run when none is active;
 * checked against the network at once (errors also go to the message bar). */
gboolean            snnwb_window_load_weights (SnnwbWindow *self, const char *path, GError **error);

/* What the views and runs received, for tests and scripts. */
guint          snnwb_window_get_view_data_count (SnnwbWindow *self, const char *name);
guint          snnwb_window_get_n_runs (SnnwbWindow *self);
SnnwbRun      *snnwb_window_get_run (SnnwbWindow *self, guint index);
/* Iterations of the current run reported to the main loop. */
long           snnwb_window_get_reported_iters (SnnwbWindow *self);
/* State of the current run; SNNWB_RUN_STOPPED when there is none. */
SnnwbRunState  snnwb_window_get_run_state (SnnwbWindow *self);
void           snnwb_window_select_all_runs (SnnwbWindow *self);
/* Selects (overlays) the n newest runs. */
void           snnwb_window_select_last_runs (SnnwbWindow *self, guint n);
/* Scrolls the views to one of them ("memory", "gradients", ...). */
void           snnwb_window_show_view (SnnwbWindow *self, const char *name);
/* At most this many iterations a second (0: full speed), this run and the
 * next ones; the header's Pace drop-down sets it too. */
void           snnwb_window_set_pace (SnnwbWindow *self, double iterations_per_second);
double         snnwb_window_get_pace (SnnwbWindow *self);
/* The experiment a window opens with (the class preset where its data is
 * installed). */
char          *snnwb_window_default_preset (void);
/* The in-app walk-through (a page of the side panel). */
GtkWidget     *snnwb_window_get_walkthrough (SnnwbWindow *self);
GtkListBox    *snnwb_window_get_run_list (SnnwbWindow *self);
/* An empty name is refused with a message; a run that is training or
 * paused cannot be deleted (stop it first). */
gboolean       snnwb_window_rename_run (SnnwbWindow *self, SnnwbRun *run, const char *name);
gboolean       snnwb_window_delete_run (SnnwbWindow *self, SnnwbRun *run);
/* A stopped run whose folder keeps a checkpoint trains on from exactly
 * where it stopped, its curves going on (self NULL: whatever else runs). */
gboolean       snnwb_window_can_continue_run (SnnwbWindow *self, SnnwbRun *run);
gboolean       snnwb_window_continue_run (SnnwbWindow *self, SnnwbRun *run, GError **error);
/* The message shown in the message bar, or NULL. */
const char    *snnwb_window_get_message (SnnwbWindow *self);

/* Sessions: runs are written into a session folder as they go (a scratch
 * folder until one is chosen). Saving moves them into dir and keeps
 * writing there; opening adds the folder's runs and makes it the session. */
gboolean       snnwb_window_save_session_to (SnnwbWindow *self, const char *dir, GError **error);
gboolean       snnwb_window_open_session (SnnwbWindow *self, const char *dir, GError **error);
const char    *snnwb_window_get_session_dir (SnnwbWindow *self);
gboolean       snnwb_window_is_session_saved (SnnwbWindow *self);
/* The dialog asking whether to keep unsaved runs on close, or NULL. */
GtkWidget     *snnwb_window_get_quit_prompt (SnnwbWindow *self);
/* Scripts that close the window themselves say so: no question asked and
 * the scratch session goes. */
void           snnwb_window_set_ask_before_close (SnnwbWindow *self, gboolean ask);

/* Trains `iterations` iterations of `runs` runs (alternating the method),
 * saves a PNG of the window to path and quits. */
void           snnwb_window_run_screenshot (SnnwbWindow *self, const char *path, int iterations, int runs,
                                            const char *panel);
gboolean       snnwb_window_save_png (SnnwbWindow *self, const char *path, GError **error);

G_END_DECLS
