/* Subcommands of the snnwb command line. Each returns the process exit
 * status: 0 success, 1 failure while running, 2 bad input or usage. */
#pragma once
#include <glib.h>
#include "experiment.h"
#include "npy.h"

int snnwb_cmd_train (int argc, char **argv);
int snnwb_cmd_eval (int argc, char **argv);
int snnwb_cmd_grad (int argc, char **argv);
int snnwb_cmd_analyze (int argc, char **argv);
int snnwb_cmd_reproduce (int argc, char **argv);
int snnwb_cmd_bench (int argc, char **argv);
int snnwb_cmd_export (int argc, char **argv);
int snnwb_cmd_frames (int argc, char **argv);

/* --backend NAME, the same on every command that computes. */
#define SNNWB_BACKEND_OPTION(var) \
  { "backend", 0, 0, G_OPTION_ARG_STRING, &(var), "Backend: cpu or cuda [$SNNWB_BACKEND, else cpu]", "NAME" }

/* EXPERIMENT (argv[1], a file or a preset), the key=value overrides of
 * argv[2..], and --backend when given (NULL: the experiment's own). */
SnnExperiment *snnwb_load_experiment (int argc, char **argv, const char *backend, GError **error);
/* Prints "snnwb: <message>" to stderr and returns 2 (bad input) or 1. */
int snnwb_fail (GError *error);
/* Refuses to replace a file the user already has. */
gboolean snnwb_check_new_file (const char *path, gboolean force, GError **error);
/* An output folder must be new or empty: a run never writes over another. */
gboolean snnwb_check_new_dir (const char *dir, GError **error);
/* x is float32: every value must be finite (the message gives the first that is not). */
gboolean snnwb_check_finite (const SnnArray *x, const char *path, GError **error);
