/* The network editor: the layer list with live shapes, parameter counts and
 * memory predictions, and an editor for every field of the selected layer.
 * It edits the model it is given in place. */
#pragma once
#include <gtk/gtk.h>
#include "model.h"

G_BEGIN_DECLS

#define SNNWB_TYPE_LAYER_EDITOR (snnwb_layer_editor_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbLayerEditor, snnwb_layer_editor, SNNWB, LAYER_EDITOR, GtkBox)

GtkWidget  *snnwb_layer_editor_new (void);
/* model is borrowed; it must outlive its use here. */
void        snnwb_layer_editor_set_model (SnnwbLayerEditor *self, SnnModel *model);
/* Batch size and T of the memory predictions. */
void        snnwb_layer_editor_set_run_size (SnnwbLayerEditor *self, int batch, int T);
/* Re-reads the model after someone else changed it. */
void        snnwb_layer_editor_refresh (SnnwbLayerEditor *self);

gboolean    snnwb_layer_editor_is_valid (SnnwbLayerEditor *self);
/* The reason the network is invalid, or NULL. */
const char *snnwb_layer_editor_get_problem (SnnwbLayerEditor *self);
int         snnwb_layer_editor_get_bad_layer (SnnwbLayerEditor *self);
int         snnwb_layer_editor_get_selected (SnnwbLayerEditor *self);
void        snnwb_layer_editor_select (SnnwbLayerEditor *self, int index);

void        snnwb_layer_editor_add_layer (SnnwbLayerEditor *self, SnnLayerType type);
void        snnwb_layer_editor_remove_selected (SnnwbLayerEditor *self);
void        snnwb_layer_editor_move_selected (SnnwbLayerEditor *self, int delta);

/* The memory table as text: a line per method, "name: held · arena";
 * NULL while the network is invalid. */
char      *snnwb_layer_editor_describe_memory (SnnwbLayerEditor *self);

G_END_DECLS
