/* The settings of an experiment: method, time steps, optimizer, data and
 * the neuron parameters shared by every LIF layer. It edits the experiment
 * it is given in place. */
#pragma once
#include <gtk/gtk.h>
#include "experiment.h"

G_BEGIN_DECLS

#define SNNWB_TYPE_SETTINGS_PANEL (snnwb_settings_panel_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbSettingsPanel, snnwb_settings_panel, SNNWB, SETTINGS_PANEL, GtkBox)

GtkWidget *snnwb_settings_panel_new (void);
/* e is borrowed; it must outlive its use here. */
void       snnwb_settings_panel_set_experiment (SnnwbSettingsPanel *self, SnnExperiment *e);
/* Re-reads the experiment after someone else changed it. */
void       snnwb_settings_panel_refresh (SnnwbSettingsPanel *self);
/* While a run is active only the method and the learning rate stay
 * editable, and only while it is paused. */
void       snnwb_settings_panel_set_training (SnnwbSettingsPanel *self, gboolean active, gboolean paused);

/* As if the user chose them (a paused run takes them). */
void       snnwb_settings_panel_set_method (SnnwbSettingsPanel *self, SnnMethod method, int K);
void       snnwb_settings_panel_set_recompute (SnnwbSettingsPanel *self, gboolean recompute);
void       snnwb_settings_panel_set_lr (SnnwbSettingsPanel *self, double lr);
GtkWidget *snnwb_settings_panel_get_method_widget (SnnwbSettingsPanel *self);

G_END_DECLS
