/* Export to PyTorch: a folder with the network as a torch.nn.Module
 * (model.py), the experiment's training (train.py, also under torchrun),
 * the weights and a README, needing only PyTorch and numpy. */
#pragma once
#include <gio/gio.h>
#include "experiment.h"
#include "model.h"
#include "npy.h"

G_BEGIN_DECLS

/* Writes model.py, train.py, README.md, model.json, weights.npz and (with
 * an experiment) experiment.json into dir, which is created if needed.
 * e may be NULL (then model is the network); weights may be NULL (then
 * the weights are initialised from seed as training would). Refuses to
 * replace a file that is already there. */
gboolean snn_export_pytorch (const SnnExperiment *e, const SnnModel *model, const SnnNpz *weights, guint64 seed,
                             const char *dir, GError **error);

/* The same on a worker thread (for the workbench): takes e (a copy it
 * owns) and weights (owned, may be NULL); callback runs in the caller's
 * main context. */
void     snn_export_pytorch_async (SnnExperiment *e, SnnNpz *weights, const char *dir, GCancellable *cancellable,
                                   GAsyncReadyCallback callback, gpointer user_data);
gboolean snn_export_pytorch_finish (GAsyncResult *result, GError **error);

/* The Python code that builds a model with model.py's classes. */
char    *snn_export_model_code (const SnnModel *model);

G_END_DECLS
