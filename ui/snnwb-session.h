/* A training run on a worker thread. The worker never touches widgets: it
 * records each iteration and hands copies to the main loop, coalesced so the
 * views refresh often without flooding it. Pause, step and stop go through
 * a mutex and a condition variable. */
#pragma once
#include <gtk/gtk.h>
#include "trainer.h"
#include "snnwb-run.h"

G_BEGIN_DECLS

/* What one LIF layer did for sample 0 of a batch: [T][neurons]. */
typedef struct {
  int layer;                 /* index in the model */
  int neurons;
  float vth;
  float *spikes;
  float *u;
} SnnwbProbeLayer;

/* A probed iteration, shared read-only once handed to the main loop. */
typedef struct {
  long iter;
  int T;
  int n_layers;
  SnnwbProbeLayer *layers;
  int k_steps[64];           /* steps backpropagated (SLTT-K) */
  int n_k_steps;
  SnnMethod method;
} SnnwbProbe;

SnnwbProbe *snnwb_probe_ref (SnnwbProbe *probe);
void        snnwb_probe_unref (SnnwbProbe *probe);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SnnwbProbe, snnwb_probe_unref)

/* Epsilon statistics of the probe batch (core/analysis.h), per LIF layer:
 * [T][T] products over spans and [T] per-step means. */
typedef struct {
  int layer;
  double *prod_mean;         /* [T][T]; NaN below the diagonal */
  double *step_mean;         /* [T] */
} SnnwbEpsilonLayer;

typedef struct {
  long iter;
  int T;
  int n_layers;
  SnnwbEpsilonLayer *layers;
  double cosine_mean;        /* BPTT against SLTT weight gradients */
} SnnwbEpsilon;

SnnwbEpsilon *snnwb_epsilon_ref (SnnwbEpsilon *eps);
void          snnwb_epsilon_unref (SnnwbEpsilon *eps);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SnnwbEpsilon, snnwb_epsilon_unref)

#define SNNWB_TYPE_SESSION (snnwb_session_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbSession, snnwb_session, SNNWB, SESSION, GObject)

SnnwbSession *snnwb_session_new (SnnwbRun *run);
SnnwbRun     *snnwb_session_get_run (SnnwbSession *self);

/* Starts the worker; paused: wait for resume or step before the first iteration. */
void          snnwb_session_start (SnnwbSession *self, gboolean paused);
void          snnwb_session_pause (SnnwbSession *self);
void          snnwb_session_resume (SnnwbSession *self);
void          snnwb_session_step (SnnwbSession *self);
void          snnwb_session_stop (SnnwbSession *self);
/* Waits for the worker to end (after stop); the trainer stays. */
void          snnwb_session_join (SnnwbSession *self);

gboolean      snnwb_session_is_active (SnnwbSession *self);  /* worker alive */
gboolean      snnwb_session_is_paused (SnnwbSession *self);  /* pause requested */
SnnwbRunState snnwb_session_get_state (SnnwbSession *self);

/* Applied before the next iteration. */
void          snnwb_session_set_method (SnnwbSession *self, SnnMethod method, int K);
void          snnwb_session_set_lr (SnnwbSession *self, double lr);

/* Iterations reported to the main loop so far. */
long          snnwb_session_get_reported_iters (SnnwbSession *self);
SnnwbProbe   *snnwb_session_get_probe (SnnwbSession *self);
SnnwbEpsilon *snnwb_session_get_epsilon (SnnwbSession *self);
/* Weights loaded into the network before the first iteration. */
void          snnwb_session_set_initial_weights (SnnwbSession *self, const char *npz_path);

/* The trainer at the last finished iteration, or NULL while the worker is
 * inside an iteration or still loading. Release with unlock_trainer. */
SnnTrainer   *snnwb_session_lock_trainer (SnnwbSession *self);
void          snnwb_session_unlock_trainer (SnnwbSession *self);

const GError *snnwb_session_get_error (SnnwbSession *self);

G_END_DECLS
