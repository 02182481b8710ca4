/* Files written whole or not at all: every file the project writes goes
 * through here. The data goes to a temporary file in the target's folder,
 * is synced, renamed over the target, and the folder is synced, so that a
 * crash or kill -9 at any moment leaves either the old file or the new one.
 *
 * Temporary files are named ".snnwb-tmp.PID.XXXXXX.NAME"; opening a file
 * in a folder first removes those whose process is gone (left by a killed
 * writer). */
#pragma once
#include <glib.h>
#include <stdio.h>

G_BEGIN_DECLS

#define SNN_ATOMIC_TMP_PREFIX ".snnwb-tmp."

typedef struct SnnAtomicFile SnnAtomicFile;

/* Errors name the target path (SNN_IO_ERROR). */
SnnAtomicFile *snn_atomic_file_open (const char *path, GError **error);
gboolean       snn_atomic_file_write (SnnAtomicFile *af, const void *data, size_t len, GError **error);
/* The stream, for writers that use stdio or a library's stream callback;
 * check snn_atomic_file_commit's result, which sees write errors. */
FILE          *snn_atomic_file_stream (SnnAtomicFile *af);
guint64        snn_atomic_file_offset (const SnnAtomicFile *af);  /* bytes written so far */
/* Syncs, renames into place, syncs the folder and frees af (also on error). */
gboolean       snn_atomic_file_commit (SnnAtomicFile *af, GError **error);
/* Removes the temporary file and frees af; NULL is ignored. */
void           snn_atomic_file_abort (SnnAtomicFile *af);

/* The whole contents at once (len -1: a NUL-terminated string). */
gboolean       snn_file_write_atomic (const char *path, const void *data, gssize len, GError **error);

/* Removes stale temporary files in dir (those of processes that are gone);
 * returns how many. */
int            snn_atomic_sweep (const char *dir);

G_END_DECLS
