/* The class walk-through inside the workbench: a side-panel page of steps.
 * Each step says what to look at, and its button sets the window up for it
 * (loads the class experiment, trains runs with BPTT and SLTT at two T,
 * pauses, tries a what-if tau) through what a user can reach: actions,
 * settings and view controls. Played from the command line, the same
 * steps save a screenshot each for docs/walkthrough.md. */
#pragma once
#include "snnwb-window.h"

G_BEGIN_DECLS

#define SNNWB_TYPE_WALKTHROUGH (snnwb_walkthrough_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbWalkthrough, snnwb_walkthrough, SNNWB, WALKTHROUGH, GtkBox)

GtkWidget  *snnwb_walkthrough_new (SnnwbWindow *win);
guint       snnwb_walkthrough_get_n_steps (SnnwbWalkthrough *self);
guint       snnwb_walkthrough_get_step (SnnwbWalkthrough *self);
const char *snnwb_walkthrough_get_title (SnnwbWalkthrough *self);
void        snnwb_walkthrough_go_to (SnnwbWalkthrough *self, guint step);
/* As the step's button: sets the step up; FALSE if the step has nothing
 * to set up or one is being set up. */
gboolean    snnwb_walkthrough_set_up (SnnwbWalkthrough *self);
gboolean    snnwb_walkthrough_is_busy (SnnwbWalkthrough *self);
/* Iterations each run of a step trains (default 60). */
void        snnwb_walkthrough_set_iterations (SnnwbWalkthrough *self, int iterations);

/* Plays every step, saving walkthrough-N-*.png (and a few exported views)
 * to out_dir, then closes the window. */
void        snnwb_walkthrough_play (SnnwbWindow *win, const char *out_dir, int iterations);

G_END_DECLS
