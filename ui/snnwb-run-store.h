/* Runs kept in a session folder: one sub-folder per run with its settings
 * (experiment.json), what it recorded (run.json, iters-NNNN.csv,
 * epochs.csv, cosines.csv) and its weights (weights.npz). Every file is
 * written to a temporary name, synced and renamed, so a crash leaves the
 * previous version, never half a file. Errors name the file. */
#pragma once
#include "snnwb-run.h"
#include "trainer.h"

G_BEGIN_DECLS

#define SNNWB_STORE_ERROR (snnwb_store_error_quark ())
GQuark     snnwb_store_error_quark (void);

/* Iteration records go to files of this many rows; only the last one is
 * rewritten as a run goes on. */
#define SNNWB_STORE_CHUNK 4096

/* Writes what changed since the last save into the run's folder, which is
 * picked under session_dir the first time (run-001, run-002, ...). net:
 * the run's weights now, or NULL to keep those saved last. */
gboolean   snnwb_store_save_run (SnnwbRun *run, const char *session_dir, SnnNet *net, GError **error);
/* The runs of a session folder, oldest first (SnnwbRun). A run folder that
 * cannot be read is an error naming it. */
GPtrArray *snnwb_store_load_session (const char *session_dir, GError **error);
/* Removes a run's folder (its files only; nothing else). */
gboolean   snnwb_store_delete_run (SnnwbRun *run, GError **error);
/* temp file + fsync + rename. */
gboolean   snnwb_store_write_atomic (const char *path, const char *data, gsize len, GError **error);

G_END_DECLS
