/* A network at run time: parameters, one activation arena, and forward and
 * backward over a chunk of time steps. BPTT runs one chunk of T steps with
 * the temporal routes; SLTT runs T chunks of one step without them, so what
 * it holds for backward does not grow with T. */
#pragma once
#include <glib.h>
#include <stdint.h>
#include "backend.h"
#include "model.h"
#include "npy.h"
#include "rng.h"

G_BEGIN_DECLS

typedef struct {
  char name[48];        /* "<layer>.<name>", e.g. "0.weight" */
  int layer;
  SnnParamInfo info;
  float *data;          /* backend memory */
  float *grad;          /* NULL for buffers (running statistics) */
} SnnParam;

typedef struct SnnNet SnnNet;

/* At most this many lanes to a batch (see snn_net_lanes). */
#define SNN_NET_MAX_LANES 16

/* Called after a LIF layer's backward over a chunk: u (before reset), ds
 * (dL/ds from the layer above at the same step) and du (dL/du, including
 * temporal routes when they are followed), each [steps][batch][neurons] in
 * backend memory. */
typedef void (*SnnLifBackwardHook) (SnnNet *net, int layer, int first_step, int steps,
                                    const float *u, const float *ds, const float *du,
                                    gpointer user_data);

SnnNet         *snn_net_new (const SnnModel *model, const SnnBackend *backend);
void            snn_net_free (SnnNet *net);
const SnnModel *snn_net_model (const SnnNet *net);
const SnnBackend *snn_net_backend (const SnnNet *net);

int             snn_net_n_params (const SnnNet *net);
SnnParam       *snn_net_param (SnnNet *net, int i);
SnnParam       *snn_net_find_param (SnnNet *net, const char *name);

/* PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
 * linear and conv weights and biases; BN weight 1, bias 0, running stats 0/1;
 * WS gain 1. */
void            snn_net_init_default (SnnNet *net, uint64_t seed);
/* Every parameter must be present with its exact shape; messages name the
 * file and the parameter. */
gboolean        snn_net_load_npz (SnnNet *net, const char *path, GError **error);
gboolean        snn_net_set_from_npz (SnnNet *net, const SnnNpz *npz, const char *source, GError **error);
gboolean        snn_net_save_npz (SnnNet *net, const char *path, GError **error);
SnnNpz         *snn_net_to_npz (SnnNet *net, gboolean grads);

/* Sizes the arena for batches of `batch` samples and chunks of up to
 * `chunk_steps` steps. Cheap when nothing changed. */
void            snn_net_configure (SnnNet *net, int batch, int chunk_steps);
int             snn_net_batch (const SnnNet *net);

/* Starts a new input sequence: LIF state to 0, dropout masks drawn (one per
 * sample, kept for all steps), WS weights computed. */
void            snn_net_begin_sequence (SnnNet *net, gboolean training, SnnRng *rng);
/* A static input is the same at every step (direct encoding): forward then
 * takes x as [batch][input] and runs the layers before the first LIF layer
 * once per sequence. Set before snn_net_begin_sequence. */
void            snn_net_set_static_input (SnnNet *net, gboolean is_static);
/* x is host memory [steps][batch][input] (or [batch][input] for a static
 * input). keep: hold what backward needs. */
void            snn_net_forward (SnnNet *net, const float *x, int steps, gboolean keep);
/* The readout of the last forward, [steps][batch][classes], host memory. */
const float    *snn_net_output (SnnNet *net);
/* dout: host [steps][batch][classes] for the steps of the last forward.
 * Parameter gradients accumulate. */
void            snn_net_backward (SnnNet *net, const float *dout, gboolean temporal);
/* Finishes the gradients of the sequence (weight standardisation). */
void            snn_net_end_sequence (SnnNet *net);
void            snn_net_zero_grad (SnnNet *net);

/* Copies a LIF layer's u (before reset) or spikes of the last forward into
 * host memory [steps][batch][neurons]. When recomputing, only valid inside
 * the forward hook (later segments reuse the memory). */
void            snn_net_read_lif (SnnNet *net, int layer, gboolean spikes, float *dst);
/* The same for one sample: [steps][neurons]. */
void            snn_net_read_lif_sample (SnnNet *net, int layer, gboolean spikes, int sample, float *dst);
int64_t         snn_net_layer_size (const SnnNet *net, int layer); /* output numel per sample */

/* Lanes: a batch of a model whose samples train independently (no batch
 * statistics, no dropout) may be split into lanes of a few samples, each
 * run by a network of its own, side by side on the host's threads; a lane's
 * activations stay in one core's caches, and a lane is work enough for one
 * thread, so lanes keep both cores busy where a thread is preempted. How
 * many lanes, and so every result's bits, depends on the model, the backend
 * and the batch alone, never on the number of threads.
 *
 * snn_model_lanes: the lanes training splits a batch of `batch` into on
 * backend be (1: no split). snn_net_lanes: the same for this network now (1
 * while a backward hook or the non-finite scan is on). */
int             snn_model_lanes (const SnnModel *model, const SnnBackend *be, int batch);
int             snn_net_lanes (const SnnNet *net, int batch);
/* The samples [lo, hi) of lane k of `lanes` (an even split). */
static inline void
snn_lane_range (int batch, int lanes, int k, int *lo, int *hi)
{
  *lo = (int) ((int64_t) batch * k / lanes);
  *hi = (int) ((int64_t) batch * (k + 1) / lanes);
}
/* Bytes held for backward as snn_train_batch holds them on backend be:
 * snn_model_held_bytes_full summed over the lanes of the batch. */
int64_t         snn_model_train_held_bytes (const SnnModel *model, const SnnBackend *be, int batch, int steps,
                                            gboolean static_input, gboolean recompute);
/* Before a batch in `lanes` lanes: makes the lanes not made yet (each the
 * same model, reading this network's parameters, with gradients of its
 * own) and gives them this network's LIF settings. */
void            snn_net_lanes_begin (SnnNet *net, int lanes);
/* Lane k, made by snn_net_lanes_begin. */
SnnNet         *snn_net_lane (SnnNet *net, int k);
/* After lanes 0..lanes-1 ran a batch: adds their gradients into this
 * network's, in lane order (grads: after training), and takes their memory
 * figures as its own (held bytes summed over the lanes, the arena including
 * theirs). */
void            snn_net_lanes_finish (SnnNet *net, int lanes, gboolean grads);

/* Host memory of at least `floats` floats owned by the net, for the loss
 * and its gradient: it grows only when a larger batch or T first appears,
 * so the training loop does not allocate. */
float          *snn_net_host_scratch (SnnNet *net, size_t floats);

void            snn_net_set_lif_hook (SnnNet *net, SnnLifBackwardHook hook, gpointer user_data);

/* Called right after each top-level LIF layer's forward over a chunk: while
 * it runs, snn_net_read_lif reads that layer's u and spikes. */
typedef void (*SnnLifForwardHook) (SnnNet *net, int layer, int first_step, int steps, gpointer user_data);
void            snn_net_set_lif_forward_hook (SnnNet *net, SnnLifForwardHook hook, gpointer user_data);

/* Recomputing: forward keeps each LIF layer's spikes as bits and backward
 * rebuilds the rest, one segment between LIF layers at a time (exact; one
 * more forward pass of work). For BPTT, whose chunk starts each sequence;
 * ignored where the network does not allow it. Takes effect at the next
 * snn_net_configure. */
void            snn_net_set_recompute (SnnNet *net, gboolean recompute);
gboolean        snn_net_recomputes (const SnnNet *net);

/* The run-time LIF parameters of a top-level LIF layer (analysis). */
SnnLifParams   *snn_net_lif_params (SnnNet *net, int layer);
/* Calls fn on the run-time parameters of every LIF layer, those inside
 * residual blocks too, with the layer's name ("3.main.1"); returns the count. */
typedef void (*SnnNetLifFunc) (const char *name, SnnLifParams *p, gpointer user_data);
int             snn_net_foreach_lif (SnnNet *net, SnnNetLifFunc fn, gpointer user_data);
/* Sets tau of every LIF layer, those inside residual blocks too. */
void            snn_net_set_tau (SnnNet *net, float tau);

/* Finding where a NaN or infinity first appears: while on, every node's
 * output (forward) and input gradient (backward) is scanned after it runs,
 * and the first non-finite value is recorded. Slow; for a diagnostic
 * replay of a batch that diverged. Turning it on clears the record. */
typedef struct {
  gboolean found;
  gboolean backward;
  char node[40];           /* "3" or "3.main.1", as parameter names begin */
  const char *type;        /* the layer type's name */
  int step;                /* time step within the sequence */
  float value;
} SnnNonFinite;

void            snn_net_set_check_finite (SnnNet *net, gboolean on);
const SnnNonFinite *snn_net_first_nonfinite (const SnnNet *net);

/* Bookkeeping for the memory and time charts. */
typedef struct {
  int64_t held_bytes;        /* bytes now held for backward */
  int64_t peak_held_bytes;   /* their peak since the last reset */
  int64_t arena_bytes;       /* the whole activation arena */
  int64_t param_bytes;       /* parameters, gradients */
  double forward_ms, backward_ms; /* since the last reset */
} SnnNetStats;

const SnnNetStats *snn_net_stats (const SnnNet *net);
void            snn_net_reset_stats (SnnNet *net);
/* Whether backward can rebuild the network's activations from spike bits
 * (a chain of layers with at least one LIF layer; no residual blocks). */
gboolean        snn_model_can_recompute (const SnnModel *model);
/* Bytes held for backward by one chunk of `steps` steps at `batch`, without
 * running anything (for the model editor's predictions); recompute: as
 * BPTT holds them on a network that allows it. */
int64_t         snn_model_held_bytes_full (const SnnModel *model, int batch, int steps, gboolean static_input,
                                           gboolean recompute);
/* What BPTT (one chunk of T steps) or SLTT (chunks of one step) holds for
 * a static input (direct encoding, the usual case). */
int64_t         snn_model_held_bytes (const SnnModel *model, int batch, int T, gboolean bptt);

/* The activation arena snn_net_configure allocates for these settings,
 * without allocating it. */
int64_t         snn_model_arena_bytes (const SnnModel *model, int batch, int chunk_steps, gboolean recompute);

/* What each method holds and works in, as training runs it (static input). */
typedef enum {
  SNN_PREDICT_BPTT_STORED,
  SNN_PREDICT_BPTT_RECOMPUTE,   /* as stored where the network cannot recompute */
  SNN_PREDICT_SLTT,
  SNN_PREDICT_SLTT_K,
  SNN_PREDICT_N,
} SnnPredictMethod;

typedef struct {
  int64_t held_bytes;           /* peak held for backward */
  int64_t arena_bytes;          /* the whole working memory of a step */
  gboolean recomputes;
} SnnMemoryPrediction;

/* As snn_train_batch runs each method on the default backend ($SNNWB_BACKEND
 * or the CPU), lanes included. */
void            snn_model_predict_memory (const SnnModel *model, int batch, int T,
                                          SnnMemoryPrediction out[SNN_PREDICT_N]);

/* What a network of the model takes, parameters and activation arena, for
 * batches of `batch` samples and chunks of `steps` steps, without
 * allocating anything: parameters, gradients, `optim_states` optimizer
 * buffers per trainable value and the work buffers of every layer (those in
 * residual blocks too), for the layout without recomputing (the larger),
 * and the gradients of the lanes where training splits the batch (on the
 * default backend). Computed in double and saturated, so no size overflows. */
int64_t         snn_model_predict_bytes (const SnnModel *model, int batch, int steps, int optim_states);
/* Memory this process can still take: MemAvailable of /proc/meminfo and,
 * when set, what RLIMIT_AS leaves above the present address space;
 * G_MAXINT64 when neither is known. */
int64_t         snn_memory_available (void);
/* An SNN_MODEL_ERROR naming `what` and both figures when bytes (and a
 * quarter more, to spare) exceed the memory available. */
gboolean        snn_memory_check (int64_t bytes, const char *what, GError **error);

G_END_DECLS
