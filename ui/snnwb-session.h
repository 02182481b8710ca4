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
  double tau_override;       /* > 0: computed with this tau, not the model's */
} SnnwbEpsilon;

SnnwbEpsilon *snnwb_epsilon_ref (SnnwbEpsilon *eps);
void          snnwb_epsilon_unref (SnnwbEpsilon *eps);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SnnwbEpsilon, snnwb_epsilon_unref)

/* The split of dL/du into its spatial and temporal parts on the probe
 * batch (core/analysis.h), per LIF layer and step, and how far the spatial
 * weight gradients (SLTT) are from BPTT's per linear or conv layer. */
typedef struct {
  int layer;                 /* index in the model */
  double tau;                /* as run */
  double *spatial_norm;      /* [T] */
  double *temporal_norm;     /* [T]; zero at tau 1 */
  double *cosine_du;         /* [T]; NaN where either part is zero */
} SnnwbGradientLif;

typedef struct {
  int layer;
  double cosine;
} SnnwbGradientAffine;

typedef struct {
  long iter;                 /* last trained iteration; -1 before the first */
  int T;
  double tau_override;       /* > 0: a what-if tau, not the model's own */
  int n_lif;
  SnnwbGradientLif *lif;
  int n_affine;
  SnnwbGradientAffine *affine;
  double cosine_mean;
  double cost_share;         /* analysis time over training time, so far */
  int every;                 /* iterations between analyses when it was made */
  char *error;               /* the analysis failed: nothing above is set */
} SnnwbGradient;

SnnwbGradient *snnwb_gradient_ref (SnnwbGradient *grad);
void           snnwb_gradient_unref (SnnwbGradient *grad);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SnnwbGradient, snnwb_gradient_unref)

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
void          snnwb_session_set_method (SnnwbSession *self, SnnMethod method, int K, gboolean recompute);
void          snnwb_session_set_lr (SnnwbSession *self, double lr);

/* At most this many iterations a second (0: as fast as it goes). Slow
 * enough, every iteration is shown, as single steps are, and at 5 a second
 * or slower each is analysed too. */
void          snnwb_session_set_pace (SnnwbSession *self, double iterations_per_second);

/* Iterations reported to the main loop so far. */
long          snnwb_session_get_reported_iters (SnnwbSession *self);
SnnwbProbe   *snnwb_session_get_probe (SnnwbSession *self);
SnnwbEpsilon *snnwb_session_get_epsilon (SnnwbSession *self);
SnnwbGradient *snnwb_session_get_gradient (SnnwbSession *self);

/* The probe batch is analysed every `every` iterations while training (and
 * after each single step); 0 picks the interval from the measured times so
 * the analysis costs about 5% of the training time. */
#define SNNWB_DEFAULT_ANALYSIS_INTERVAL 0
void          snnwb_session_set_analysis_interval (SnnwbSession *self, int every);
int           snnwb_session_get_analysis_interval (SnnwbSession *self);
/* Recomputes the analysis with every LIF layer at this tau (<= 0: the
 * model's own), off the main thread. Only while paused or after the run
 * ended with a model; FALSE otherwise. Requests made while one is computed
 * replace each other: only the latest is computed next. */
gboolean      snnwb_session_request_tau (SnnwbSession *self, double tau);
/* What-if analyses handed to the main loop so far. */
guint         snnwb_session_get_tau_results (SnnwbSession *self);

/* Weights loaded into the network before the first iteration. */
void          snnwb_session_set_initial_weights (SnnwbSession *self, const char *npz_path);
/* The run's folder: the worker keeps a checkpoint there (snn_trainer_save_run)
 * at each epoch's end and when stopped, and holds the folder's lock. May
 * change while training (the folder moved). */
void          snnwb_session_set_run_dir (SnnwbSession *self, const char *dir);
/* Before start: the trainer continues from the run folder's checkpoint,
 * and the run's curves go on from its position. */
void          snnwb_session_set_resume (SnnwbSession *self);

/* The trainer at the last finished iteration, or NULL while the worker is
 * inside an iteration or still loading. Release with unlock_trainer. */
SnnTrainer   *snnwb_session_lock_trainer (SnnwbSession *self);
void          snnwb_session_unlock_trainer (SnnwbSession *self);

const GError *snnwb_session_get_error (SnnwbSession *self);

G_END_DECLS
