/* The three training methods of one batch, and the loss of Eq. (14)/(S13). */
#pragma once
#include <glib.h>
#include "net.h"

G_BEGIN_DECLS

typedef enum { SNN_METHOD_BPTT, SNN_METHOD_SLTT, SNN_METHOD_SLTT_K, SNN_METHOD_N } SnnMethod;

const char *snn_method_name (SnnMethod m);
gboolean    snn_method_from_name (const char *name, SnnMethod *out);

typedef struct {
  SnnMethod method;
  int T;
  int K;                /* SLTT-K: steps backpropagated per iteration */
  float lambda;         /* weight of the MSE term */
  gboolean mse_onehot;  /* target one-hot instead of a constant */
  float mse_target;     /* the constant target (usually vth) */
  gboolean recompute;   /* BPTT: keep spike bits, recompute the rest in backward */
  /* The probe reads sample 0 alone (snn_net_read_lif_sample), so the batch
   * may still be split into lanes: lane 0, which holds sample 0, calls it. */
  gboolean probe_first_sample;
} SnnTrainConfig;

void snn_train_config_init (SnnTrainConfig *cfg);

typedef struct {
  double loss;            /* L of the batch (all T steps, also under SLTT-K) */
  int correct, count;     /* argmax of sum_t o[t] against the labels */
  double forward_ms, backward_ms;
  int64_t peak_held_bytes;
  int k_steps[64];        /* the steps backpropagated (SLTT-K: drawn) */
  int n_k_steps;
} SnnBatchResult;

/* Called after each top-level LIF layer's forward over a chunk (first
 * step, steps) so a caller can read its state with snn_net_read_lif. */
typedef SnnLifForwardHook SnnProbeFunc;

/* Every top-level LIF layer's spikes and membrane potentials u over one
 * batch, each a [T][B][layer shape] array: pass snn_lif_record_probe and
 * the record to snn_train_batch or snn_eval_batch. */
typedef struct {
  int n_layers, T, batch;
  SnnArray **spikes, **u;  /* per layer, NULL for layers that are not LIF */
} SnnLifRecord;

SnnLifRecord *snn_lif_record_new (const SnnModel *model, int T, int batch);
void          snn_lif_record_probe (SnnNet *net, int layer, int first_step, int steps, gpointer record);
/* Moves the arrays into npz as "spikes.L" and "v.L" (L the layer index). */
void          snn_lif_record_move_to_npz (SnnLifRecord *r, SnnNpz *npz);
void          snn_lif_record_free (SnnLifRecord *r);

/* One batch: x is host memory, static [B][input] or a sequence [T][B][input].
 * Split into lanes where snn_net_lanes says so (see net.h), run side by side
 * on the thread pool.
 * Gradients accumulate into the parameters' grad (zero them first). k_steps
 * (SLTT-K) lists the steps to backpropagate; NULL draws K without replacement
 * from rng. o (optional) receives [T][B][C]. Fails on a NaN/inf loss. */
gboolean snn_train_batch (SnnNet *net, const SnnTrainConfig *cfg, const float *x, gboolean sequence,
                          int batch, const int32_t *y, const int *k_steps, int n_k_steps, SnnRng *rng,
                          SnnProbeFunc probe, gpointer probe_data, float *o, SnnBatchResult *res,
                          GError **error);

/* Inference: forward only, evaluation mode (running BN statistics, no dropout). */
void     snn_eval_batch (SnnNet *net, int T, const float *x, gboolean sequence, int batch,
                         const int32_t *y, SnnProbeFunc probe, gpointer probe_data, float *o,
                         SnnBatchResult *res);

/* The loss of one step's output o [B][C] and its gradient scaled by 1/T into
 * dout (may be NULL). Returns the per-step loss (not divided by T). */
double   snn_step_loss (const SnnTrainConfig *cfg, const float *o, const int32_t *y, int batch,
                        int classes, float *dout);

G_END_DECLS
