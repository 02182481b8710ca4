/* The class walk-through, scripted: assembles a small conv network in the
 * layer editor, trains it with BPTT and then SLTT on the same seed,
 * overlays their memory curves, exports the raster as SVG, tries a what-if
 * tau in the gradient view, trains both again at twice the time steps, and
 * saves screenshots of each stage to a folder. It drives the window only through what a user can reach: its
 * actions, the editor, the settings and the view controls. */
#pragma once
#include "snnwb-window.h"

G_BEGIN_DECLS

/* Starts the script; the window closes itself at the end. iterations is
 * per run. */
void snnwb_walkthrough_start (SnnwbWindow *win, const char *out_dir, int iterations);

G_END_DECLS
