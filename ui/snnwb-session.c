#include "snnwb-session.h"
#include <math.h>
#include <string.h>
#include "analysis.h"

/* Views refresh at least 11 times a second while training: results go to
 * the main thread when the next iteration would end more than this long
 * after the last hand-over. Every refresh costs the main thread a frame,
 * taken from the training threads' cores, so no more often. Probing costs a
 * copy of one sample of every LIF layer; it runs at about 15 Hz. */
#define DISPATCH_INTERVAL_US (90 * 1000)
#define PROBE_INTERVAL_US    (66 * 1000)
#define PEAK_INTERVAL_US     (50 * 1000)
/* The analysis runs a BPTT and an SLTT pass on a small probe batch, about
 * one training iteration of a batch of 16 plus a fixed cost that dominates
 * for tiny networks; the automatic interval keeps it near this share. */
#define ANALYSIS_BATCH       8
#define AUTO_SHARE           0.025

struct _SnnwbSession {
  GObject parent_instance;
  SnnwbRun *run;
  SnnExperiment *experiment;   /* the worker's own copy */
  GMainContext *context;
  GThread *thread;

  GMutex lock;
  GCond cond;
  /* requests, guarded by lock */
  gboolean paused, stop;
  int step_budget;
  gboolean method_pending, lr_pending;
  SnnMethod method;
  int K;
  gboolean recompute;
  double lr;
  int analysis_every;
  double pace;                    /* iterations per second; 0: as fast as it goes */
  double tau_request;
  gboolean tau_pending;
  /* worker state, guarded by lock */
  SnnTrainer *trainer;
  gboolean in_step;
  SnnwbRunState state;
  GArray *pending_iters, *pending_epochs;
  SnnwbProbe *pending_probe;
  SnnwbEpsilon *pending_epsilon;
  SnnwbGradient *pending_gradient;
  GArray *pending_cosines;
  guint tau_served;
  gboolean override_shown;        /* the views show a what-if tau */
  gboolean worker_done;
  gboolean helper_running;
  GThread *helper;                /* what-if analyses after the worker ended */
  long last_iter;
  long total_iters;
  gboolean dispatch_pending;
  gint64 last_dispatch;
  GError *error;

  /* worker only */
  SnnwbProbe *building;
  gint64 last_probe, last_peak;
  int since_analysis;
  gint64 train_us, analysis_us;   /* while training; single steps excluded */
  long n_trained, n_analyses;
  gint64 start_time;              /* of the first iteration; paused time and test evaluations excluded */
  double peak_bytes;
  char *initial_weights;
  char *run_dir;                  /* checkpoints go here (guarded by lock); NULL: none */
  gboolean resume;                /* the trainer comes from run_dir's checkpoint */
  gboolean resumed_first;         /* main thread: the first hand-over of a resumed run is due */
  SnnAnalyzer *analyzer;         /* worker's, or the helper's once the worker ended */
  float *analysis_x;
  int32_t *analysis_y;
  gboolean analysis_sequence;
  gboolean analysis_failed;
  gboolean analysis_warm;         /* the first analysis (with its set-up) is done */

  /* main thread only */
  SnnwbRunState reported_state;
  long reported_iters;
  double base_lr;                 /* the schedule's base as last requested */
  SnnwbProbe *probe;
  SnnwbEpsilon *epsilon;
  SnnwbGradient *gradient;
  guint tau_results;
};

G_DEFINE_FINAL_TYPE (SnnwbSession, snnwb_session, G_TYPE_OBJECT)

enum { UPDATED, STATE_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* Probes */

static SnnwbProbe *
probe_new (const SnnModel *model, int T)
{
  SnnwbProbe *p = g_atomic_rc_box_new0 (SnnwbProbe);
  int n = 0;

  for (int l = 0; l < model->n_layers; l++)
    n += model->layers[l].type == SNN_LAYER_LIF;
  p->T = T;
  p->layers = g_new0 (SnnwbProbeLayer, MAX (n, 1));
  for (int l = 0; l < model->n_layers; l++)
    {
      const SnnLayerSpec *spec = &model->layers[l];
      SnnwbProbeLayer *pl;

      if (spec->type != SNN_LAYER_LIF)
        continue;
      pl = &p->layers[p->n_layers++];
      pl->layer = l;
      pl->neurons = (int) snn_shape_numel (&spec->out_shape);
      pl->vth = spec->lif.vth;
      pl->spikes = g_new0 (float, (gsize) T * pl->neurons);
      pl->u = g_new0 (float, (gsize) T * pl->neurons);
    }
  return p;
}

static void
probe_clear (gpointer data)
{
  SnnwbProbe *p = data;

  for (int i = 0; i < p->n_layers; i++)
    {
      g_free (p->layers[i].spikes);
      g_free (p->layers[i].u);
    }
  g_free (p->layers);
}

SnnwbProbe *
snnwb_probe_ref (SnnwbProbe *probe)
{
  return g_atomic_rc_box_acquire (probe);
}

void
snnwb_probe_unref (SnnwbProbe *probe)
{
  g_atomic_rc_box_release_full (probe, probe_clear);
}

static void
epsilon_clear (gpointer data)
{
  SnnwbEpsilon *e = data;

  for (int i = 0; i < e->n_layers; i++)
    {
      g_free (e->layers[i].prod_mean);
      g_free (e->layers[i].step_mean);
    }
  g_free (e->layers);
}

SnnwbEpsilon *
snnwb_epsilon_ref (SnnwbEpsilon *eps)
{
  return g_atomic_rc_box_acquire (eps);
}

void
snnwb_epsilon_unref (SnnwbEpsilon *eps)
{
  g_atomic_rc_box_release_full (eps, epsilon_clear);
}

static SnnwbEpsilon *
epsilon_from_analysis (const SnnAnalysis *a, long iter, double tau_override)
{
  SnnwbEpsilon *e = g_atomic_rc_box_new0 (SnnwbEpsilon);
  int T = a->T;

  e->iter = iter;
  e->T = T;
  e->cosine_mean = a->cosine_mean;
  e->tau_override = tau_override;
  e->n_layers = a->n_lif;
  e->layers = g_new0 (SnnwbEpsilonLayer, MAX (a->n_lif, 1));
  for (int i = 0; i < a->n_lif; i++)
    {
      e->layers[i].layer = a->lif[i].layer;
      e->layers[i].prod_mean = g_memdup2 (a->lif[i].eps_prod_mean, sizeof (double) * T * T);
      e->layers[i].step_mean = g_memdup2 (a->lif[i].eps_mean, sizeof (double) * T);
    }
  return e;
}

static void
gradient_clear (gpointer data)
{
  SnnwbGradient *g = data;

  for (int i = 0; i < g->n_lif; i++)
    {
      g_free (g->lif[i].spatial_norm);
      g_free (g->lif[i].temporal_norm);
      g_free (g->lif[i].cosine_du);
    }
  g_free (g->lif);
  g_free (g->affine);
  g_free (g->error);
}

SnnwbGradient *
snnwb_gradient_ref (SnnwbGradient *grad)
{
  return g_atomic_rc_box_acquire (grad);
}

void
snnwb_gradient_unref (SnnwbGradient *grad)
{
  g_atomic_rc_box_release_full (grad, gradient_clear);
}

static SnnwbGradient *
gradient_new (long iter, int T, double tau_override)
{
  SnnwbGradient *g = g_atomic_rc_box_new0 (SnnwbGradient);

  g->iter = iter;
  g->T = T;
  g->tau_override = tau_override;
  g->cosine_mean = NAN;
  g->cost_share = NAN;
  return g;
}

static SnnwbGradient *
gradient_from_analysis (const SnnAnalysis *a, long iter, double tau_override)
{
  SnnwbGradient *g = gradient_new (iter, a->T, tau_override);
  gsize bytes = sizeof (double) * a->T;

  g->cosine_mean = a->cosine_mean;
  g->n_lif = a->n_lif;
  g->lif = g_new0 (SnnwbGradientLif, MAX (a->n_lif, 1));
  for (int i = 0; i < a->n_lif; i++)
    {
      SnnwbGradientLif *gl = &g->lif[i];

      gl->layer = a->lif[i].layer;
      gl->tau = a->lif[i].lif.tau;
      gl->spatial_norm = g_memdup2 (a->lif[i].spatial_norm, bytes);
      gl->temporal_norm = g_memdup2 (a->lif[i].temporal_norm, bytes);
      gl->cosine_du = g_memdup2 (a->lif[i].cosine_du, bytes);
    }
  g->n_affine = a->n_affine;
  g->affine = g_new0 (SnnwbGradientAffine, MAX (a->n_affine, 1));
  for (int i = 0; i < a->n_affine; i++)
    g->affine[i] = (SnnwbGradientAffine) { a->affine[i].layer, a->affine[i].cosine };
  return g;
}

static void
cosine_record (const SnnAnalysis *a, long iter, SnnwbCosineRecord *rec)
{
  memset (rec, 0, sizeof *rec);
  rec->iter = iter;
  rec->mean = a->cosine_mean;
  rec->n = MIN (a->n_affine, SNNWB_MAX_AFFINE);
  for (int i = 0; i < rec->n; i++)
    rec->cosine[i] = a->affine[i].cosine;
}

/* Called by the trainer after each LIF layer's forward chunk: on the
 * session's worker thread, or, when the batch trains in lanes, on the pool
 * thread that runs lane 0 (which holds sample 0) while the worker waits in
 * snn_trainer_step. */
static void
probe_chunk (SnnNet *net, int layer, int first_step, int steps, gpointer user_data)
{
  SnnwbSession *self = user_data;
  SnnwbProbe *p = self->building;

  if (!p || first_step + steps > p->T)
    return;
  /* Only the probed sample is copied: the views show one. */
  for (int i = 0; i < p->n_layers; i++)
    {
      SnnwbProbeLayer *pl = &p->layers[i];

      if (pl->layer != layer)
        continue;
      snn_net_read_lif_sample (net, layer, FALSE, 0, pl->u + (gsize) first_step * pl->neurons);
      snn_net_read_lif_sample (net, layer, TRUE, 0, pl->spikes + (gsize) first_step * pl->neurons);
    }
}

/* Handing results to the main loop */

static gboolean
dispatch_cb (gpointer user_data)
{
  SnnwbSession *self = user_data;
  g_autoptr (GArray) iters = NULL;
  g_autoptr (GArray) epochs = NULL;
  SnnwbProbe *probe;
  SnnwbEpsilon *epsilon;
  SnnwbGradient *gradient;
  g_autoptr (GArray) cosines = NULL;
  SnnwbRunState state;
  guint tau_served;

  g_mutex_lock (&self->lock);
  iters = self->pending_iters;
  epochs = self->pending_epochs;
  self->pending_iters = g_array_new (FALSE, FALSE, sizeof (SnnwbIterRecord));
  self->pending_epochs = g_array_new (FALSE, FALSE, sizeof (SnnwbEpochRecord));
  probe = g_steal_pointer (&self->pending_probe);
  epsilon = g_steal_pointer (&self->pending_epsilon);
  gradient = g_steal_pointer (&self->pending_gradient);
  cosines = self->pending_cosines;
  self->pending_cosines = g_array_new (FALSE, FALSE, sizeof (SnnwbCosineRecord));
  tau_served = self->tau_served;
  state = self->state;
  snnwb_run_set_total_iters (self->run, self->total_iters);
  self->dispatch_pending = FALSE;
  g_mutex_unlock (&self->lock);

  /* A run killed after its last checkpoint recorded iterations that are
   * trained again now: the curves go on from the checkpoint. */
  if (self->resumed_first && iters->len)
    {
      snnwb_run_truncate (self->run, g_array_index (iters, SnnwbIterRecord, 0).iter);
      self->resumed_first = FALSE;
    }
  for (guint i = 0; i < iters->len; i++)
    snnwb_run_append_iter (self->run, &g_array_index (iters, SnnwbIterRecord, i));
  for (guint i = 0; i < epochs->len; i++)
    snnwb_run_append_epoch (self->run, &g_array_index (epochs, SnnwbEpochRecord, i));
  self->reported_iters += iters->len;
  if (probe)
    {
      g_clear_pointer (&self->probe, snnwb_probe_unref);
      self->probe = probe;
    }
  if (epsilon)
    {
      g_clear_pointer (&self->epsilon, snnwb_epsilon_unref);
      self->epsilon = epsilon;
    }
  if (gradient)
    {
      g_clear_pointer (&self->gradient, snnwb_gradient_unref);
      self->gradient = gradient;
    }
  for (guint i = 0; i < cosines->len; i++)
    snnwb_run_append_cosine (self->run, &g_array_index (cosines, SnnwbCosineRecord, i));
  self->tau_results = tau_served;
  if (iters->len || epochs->len || probe || epsilon || gradient)
    g_signal_emit (self, signals[UPDATED], 0);
  if (state != self->reported_state)
    {
      self->reported_state = state;
      snnwb_run_set_state (self->run, state);
      g_signal_emit (self, signals[STATE_CHANGED], 0);
    }
  return G_SOURCE_REMOVE;
}

/* Called with the lock held. At most one hand-over waits in the main loop
 * at a time; later results join it. */
static void
schedule_dispatch_locked (SnnwbSession *self)
{
  GSource *source;

  self->last_dispatch = g_get_monotonic_time ();
  if (self->dispatch_pending)
    return;
  self->dispatch_pending = TRUE;
  /* An idle source attached to the main context, never a direct call: the
   * worker must not run main-thread code even when the context is free. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, dispatch_cb, g_object_ref (self), g_object_unref);
  g_source_set_static_name (source, "[snnwb] training results");
  g_source_attach (source, self->context);
  g_source_unref (source);
}

static void
set_state_locked (SnnwbSession *self, SnnwbRunState state)
{
  self->state = state;
  schedule_dispatch_locked (self);
}

/* The worker */

static void
record_iteration_locked (SnnwbSession *self, SnnTrainer *tr, const SnnIterInfo *info)
{
  const SnnBatchResult *b = &info->batch;
  gint64 now = g_get_monotonic_time ();
  SnnwbIterRecord rec;

  /* The training clock leaves out the test evaluation at an epoch's end,
   * as snnwb train's ms per iteration does. */
  if (info->epoch_done)
    self->start_time += (gint64) (snn_trainer_last_epoch (tr)->eval_seconds * 1e6);
  rec = (SnnwbIterRecord) {
    .iter = info->global_iter,
    .epoch = info->epoch,
    .loss = b->loss,
    .acc = b->count ? (double) b->correct / b->count : 0.0,
    .forward_ms = b->forward_ms,
    .backward_ms = b->backward_ms,
    .held_bytes = (double) b->peak_held_bytes,
    .lr = info->lr,
    .wall_s = (now - self->start_time) / 1e6,
    .arena_bytes = (double) snn_net_stats (snn_trainer_net (tr))->arena_bytes,
  };

  /* Reading /proc costs more than a small iteration; sample it. */
  if (now - self->last_peak >= PEAK_INTERVAL_US)
    {
      self->peak_bytes = (double) snn_process_peak_bytes ();
      self->last_peak = now;
    }
  rec.process_peak_bytes = self->peak_bytes;
  g_array_append_val (self->pending_iters, rec);
  self->total_iters = info->total_iters;
  self->last_iter = info->global_iter;

  if (info->epoch_done)
    {
      const SnnEpochInfo *ep = snn_trainer_last_epoch (tr);
      SnnwbEpochRecord er = {
        .epoch = ep->epoch,
        .end_iter = info->global_iter,
        .train_loss = ep->train_loss,
        .train_acc = ep->train_acc,
        .test_acc = ep->test_acc,
        .ms_per_iter = ep->ms_per_iter,
      };
      g_array_append_val (self->pending_epochs, er);
    }
}

static void
finish_probe (SnnwbSession *self, const SnnIterInfo *info)
{
  SnnwbProbe *p = g_steal_pointer (&self->building);

  p->iter = info->global_iter;
  p->method = self->experiment->train.method;
  p->n_k_steps = MIN (info->batch.n_k_steps, (int) G_N_ELEMENTS (p->k_steps));
  memcpy (p->k_steps, info->batch.k_steps, p->n_k_steps * sizeof (int));
  g_clear_pointer (&self->pending_probe, snnwb_probe_unref);
  self->pending_probe = p;
}

static void serve_tau_locked (SnnwbSession *self);

/* Waits while paused, answering what-if requests meanwhile; returns FALSE
 * when asked to stop. Lock held. */
static gboolean
wait_for_go_locked (SnnwbSession *self)
{
  gint64 wait_start = g_get_monotonic_time ();

  while (self->paused && self->step_budget == 0 && !self->stop)
    {
      if (self->state != SNNWB_RUN_PAUSED)
        set_state_locked (self, SNNWB_RUN_PAUSED);
      if (self->tau_pending)
        serve_tau_locked (self);
      else
        g_cond_wait (&self->cond, &self->lock);
    }
  /* Time spent paused does not count against the run's throughput. */
  if (self->start_time == 0)
    self->start_time = g_get_monotonic_time ();
  else
    self->start_time += g_get_monotonic_time () - wait_start;
  if (self->stop)
    return FALSE;
  if (self->step_budget > 0)
    self->step_budget--;
  if (self->state != SNNWB_RUN_RUNNING)
    set_state_locked (self, SNNWB_RUN_RUNNING);
  return TRUE;
}

static void
apply_changes_locked (SnnwbSession *self, SnnTrainer *tr)
{
  if (self->method_pending)
    {
      snn_trainer_set_method (tr, self->method, self->K, self->recompute);
      self->experiment->train.method = self->method;
      self->experiment->train.K = self->K;
      self->experiment->train.recompute = self->recompute;
      self->method_pending = FALSE;
    }
  /* A new learning rate is the schedule's new base: the schedule goes on
   * from where it is, scaled, rather than holding one value. */
  if (self->lr_pending)
    {
      snn_trainer_experiment (tr)->optim.lr = self->lr;
      self->experiment->optim.lr = self->lr;
      self->lr_pending = FALSE;
    }
}

/* Analysis */

/* On the worker or the helper thread, never the main one, with the trainer
 * between iterations. A failed analysis (a diverged network) yields a
 * gradient that carries the message and no epsilon. */
static void
run_analysis (SnnwbSession *self, SnnTrainer *tr, double tau_override, long iter,
              SnnwbEpsilon **eps, SnnwbGradient **grad, SnnwbCosineRecord *rec)
{
  g_autoptr (GError) error = NULL;
  SnnAnalysisOptions opt;
  SnnAnalysis *a;

  snn_analysis_options_init (&opt);
  opt.tau_override = (float) MAX (tau_override, 0.0);
  if (!self->analysis_x)
    snn_trainer_probe_batch (tr, ANALYSIS_BATCH, &self->analysis_x, &self->analysis_y, &self->analysis_sequence);
  if (!self->analyzer)
    self->analyzer = snn_analyzer_new ();
  a = snn_analyzer_run (self->analyzer, snn_trainer_net (tr), &self->experiment->train, self->analysis_x,
                        self->analysis_sequence, MIN (ANALYSIS_BATCH, snn_trainer_train_set (tr)->n),
                        self->analysis_y, &opt, &error);
  *eps = NULL;
  if (!a)
    {
      *grad = gradient_new (iter, self->experiment->train.T, tau_override);
      (*grad)->error = g_strdup (error->message);
      return;
    }
  *eps = epsilon_from_analysis (a, iter, tau_override);
  *grad = gradient_from_analysis (a, iter, tau_override);
  if (rec)
    cosine_record (a, iter, rec);
  snn_analysis_free (a);
}

/* Takes ownership of eps and grad. Lock held. */
static void
post_analysis_locked (SnnwbSession *self, SnnwbEpsilon *eps, SnnwbGradient *grad)
{
  if (eps)
    {
      g_clear_pointer (&self->pending_epsilon, snnwb_epsilon_unref);
      self->pending_epsilon = eps;
    }
  g_clear_pointer (&self->pending_gradient, snnwb_gradient_unref);
  self->pending_gradient = grad;
}

/* The interval that keeps the analysis near AUTO_SHARE of the time. */
static int
auto_interval (SnnwbSession *self)
{
  double iter_us, every;

  if (self->n_analyses == 0 || self->n_trained == 0 || self->train_us <= 0)
    return 1;
  iter_us = (double) self->train_us / self->n_trained;
  every = ceil ((double) self->analysis_us / self->n_analyses / (AUTO_SHARE * iter_us));
  return (int) CLAMP (every, 1, 10000);
}

/* Worker only; the trainer is between iterations. Every `analysis_every`
 * iterations, after a single step, and right after the views showed a
 * what-if tau, so they go back to the model's own as training resumes. */
static void
maybe_analyze (SnnwbSession *self, SnnTrainer *tr, const SnnIterInfo *info, gboolean single)
{
  SnnwbEpsilon *eps;
  SnnwbGradient *grad;
  SnnwbCosineRecord rec;
  gboolean force;
  int every;
  gint64 start;

  g_mutex_lock (&self->lock);
  every = self->analysis_every;
  force = self->override_shown;
  g_mutex_unlock (&self->lock);
  if (every <= 0)
    every = auto_interval (self);
  if (self->analysis_failed)
    return;
  if (!single && !force && ++self->since_analysis < every)
    return;
  self->since_analysis = 0;
  start = g_get_monotonic_time ();
  run_analysis (self, tr, 0, info->global_iter, &eps, &grad, &rec);
  /* The first one also sets the analysis up (probe batch, buffers): timed,
   * it would space the next ones out by far too much on a small network. */
  if (!single && self->analysis_warm)
    {
      self->analysis_us += g_get_monotonic_time () - start;
      self->n_analyses++;
    }
  self->analysis_warm = TRUE;
  grad->every = every;
  /* A diverged network cannot be analysed; the views keep the last data. */
  self->analysis_failed = grad->error != NULL;
  if (self->train_us > 0)
    grad->cost_share = (double) self->analysis_us / self->train_us;

  g_mutex_lock (&self->lock);
  if (!grad->error)
    g_array_append_val (self->pending_cosines, rec);
  post_analysis_locked (self, eps, grad);
  self->override_shown = FALSE;
  g_mutex_unlock (&self->lock);
}

/* Computes the latest what-if request. Lock held; released meanwhile, with
 * the trainer marked busy so nobody else touches it. */
static void
serve_tau_locked (SnnwbSession *self)
{
  SnnTrainer *tr = self->trainer;
  double tau = self->tau_request;
  long iter = self->last_iter;
  SnnwbEpsilon *eps;
  SnnwbGradient *grad;

  self->tau_pending = FALSE;
  self->in_step = TRUE;
  g_mutex_unlock (&self->lock);
  run_analysis (self, tr, tau, iter, &eps, &grad, NULL);
  g_mutex_lock (&self->lock);
  self->in_step = FALSE;
  self->tau_served++;
  self->override_shown = tau > 0;
  post_analysis_locked (self, eps, grad);
  schedule_dispatch_locked (self);
}

static gpointer
helper (gpointer data)
{
  SnnwbSession *self = data;

  g_mutex_lock (&self->lock);
  while (self->tau_pending)
    serve_tau_locked (self);
  self->helper_running = FALSE;
  g_mutex_unlock (&self->lock);
  g_object_unref (self);
  return NULL;
}

/* After the worker ended, what-if requests get a thread of their own. */
static void
start_helper_locked (SnnwbSession *self)
{
  if (self->helper_running || !self->trainer)
    return;
  /* A previous helper has released the lock for good; joining is quick. */
  if (self->helper)
    g_thread_join (self->helper);
  self->helper_running = TRUE;
  self->helper = g_thread_new ("snnwb-analysis", helper, g_object_ref (self));
}

/* Paced, the worker waits out the rest of each iteration's slot, answering
 * pause, stop and what-if requests meanwhile. Lock held. */
static void
wait_for_slot_locked (SnnwbSession *self, gint64 started)
{
  while (self->pace > 0 && !self->stop && !self->paused)
    {
      gint64 end = started + (gint64) (G_USEC_PER_SEC / self->pace);

      if (g_get_monotonic_time () >= end)
        break;
      if (self->tau_pending)
        serve_tau_locked (self);
      else
        g_cond_wait_until (&self->cond, &self->lock, end);
    }
}

/* Worker only, the trainer marked busy or not yet shared: a checkpoint in
 * the run's folder (after a divergence, its last finite weights). */
static gboolean
save_checkpoint (SnnwbSession *self, SnnTrainer *tr, GError **error)
{
  g_autofree char *dir = NULL;

  g_mutex_lock (&self->lock);
  dir = g_strdup (self->run_dir);
  g_mutex_unlock (&self->lock);
  return !dir || snn_trainer_save_run (tr, dir, error);
}

static gboolean
run_one_iteration (SnnwbSession *self, SnnTrainer *tr)
{
  g_autoptr (GError) error = NULL;
  SnnIterInfo info;
  gboolean single, paced, ok;
  gint64 now, start, step_us;

  g_mutex_lock (&self->lock);
  if (!wait_for_go_locked (self))
    {
      g_mutex_unlock (&self->lock);
      return FALSE;
    }
  apply_changes_locked (self, tr);
  single = self->paused;
  /* A slow pace shows every iteration, like single steps. */
  paced = self->pace > 0 && self->pace <= 1e6 / DISPATCH_INTERVAL_US;
  self->in_step = TRUE;
  g_mutex_unlock (&self->lock);

  start = now = g_get_monotonic_time ();
  if (single || paced || now - self->last_probe >= PROBE_INTERVAL_US)
    {
      self->building = probe_new (snn_net_model (snn_trainer_net (tr)), self->experiment->train.T);
      self->last_probe = now;
    }
  now = g_get_monotonic_time ();
  ok = snn_trainer_step (tr, &info, &error);
  step_us = g_get_monotonic_time () - now;
  if (!single)
    {
      self->train_us += step_us;
      self->n_trained++;
    }
  if (ok)
    maybe_analyze (self, tr, &info, single || (paced && self->pace <= 5));
  /* A checkpoint at each epoch's end, so a killed run loses at most one. */
  if (ok && info.epoch_done)
    ok = save_checkpoint (self, tr, &error);

  g_mutex_lock (&self->lock);
  self->in_step = FALSE;
  if (ok)
    {
      record_iteration_locked (self, tr, &info);
      if (self->building)
        finish_probe (self, &info);
    }
  else
    {
      g_clear_pointer (&self->building, snnwb_probe_unref);
      self->error = g_steal_pointer (&error);
    }
  now = g_get_monotonic_time ();
  /* The step just taken predicts the next one. */
  if (single || paced || info.epoch_done || now - self->last_dispatch + step_us >= DISPATCH_INTERVAL_US)
    schedule_dispatch_locked (self);
  if (ok && !single)
    wait_for_slot_locked (self, start);
  g_mutex_unlock (&self->lock);
  return ok && !snn_trainer_finished (tr);
}

/* A new trainer, or the one the run's checkpoint holds; either one owns
 * the run's folder while it lives. */
static SnnTrainer *
open_trainer (SnnwbSession *self, GError **error)
{
  SnnTrainer *tr;

  if (self->resume)
    return snn_trainer_open_run (self->run_dir, error);
  tr = snn_trainer_new (self->experiment, error);
  if (tr && self->initial_weights && !snn_trainer_load_weights (tr, self->initial_weights, error))
    g_clear_pointer (&tr, snn_trainer_free);
  /* A checkpoint before the first iteration: Continue works from the start. */
  if (tr && self->run_dir
      && (!snn_trainer_lock_run (tr, self->run_dir, error) || !save_checkpoint (self, tr, error)))
    g_clear_pointer (&tr, snn_trainer_free);
  return tr;
}

/* On Stop, window close or divergence, the state the run ended in. */
static void
save_final (SnnwbSession *self, SnnTrainer *tr)
{
  GError *error = NULL;

  g_mutex_lock (&self->lock);
  self->in_step = TRUE;
  g_mutex_unlock (&self->lock);
  if (!save_checkpoint (self, tr, &error) && !self->error)
    self->error = error;
  else
    g_clear_error (&error);
  g_mutex_lock (&self->lock);
  self->in_step = FALSE;
  g_mutex_unlock (&self->lock);
}

static gpointer
worker (gpointer data)
{
  SnnwbSession *self = data;
  GError *error = NULL;
  SnnTrainer *tr = open_trainer (self, &error);
  SnnwbRunState end = SNNWB_RUN_FAILED;

  if (tr)
    {
      snn_trainer_set_probe (tr, probe_chunk, self, TRUE);
      g_mutex_lock (&self->lock);
      self->trainer = tr;
      g_mutex_unlock (&self->lock);
      while (run_one_iteration (self, tr))
        ;
      if (!snn_trainer_finished (tr))
        save_final (self, tr);
    }

  g_mutex_lock (&self->lock);
  if (error)
    self->error = error;
  if (!tr)
    self->trainer = NULL;
  if (tr && !self->error)
    end = snn_trainer_finished (tr) ? SNNWB_RUN_FINISHED : SNNWB_RUN_STOPPED;
  self->worker_done = TRUE;
  /* A request that came in while stopping is still answered. */
  if (self->tau_pending)
    start_helper_locked (self);
  set_state_locked (self, end);
  g_mutex_unlock (&self->lock);
  g_object_unref (self);
  return NULL;
}

/* GObject */

static void
snnwb_session_finalize (GObject *object)
{
  SnnwbSession *self = SNNWB_SESSION (object);

  /* The worker drops its reference last only when nobody joined it. */
  if (self->thread && self->thread != g_thread_self ())
    g_thread_join (self->thread);
  /* The helper holds a reference while it runs: it is done or is us. */
  if (self->helper && self->helper != g_thread_self ())
    g_thread_join (self->helper);
  else if (self->helper)
    g_thread_unref (self->helper);
  snn_analyzer_free (self->analyzer);
  snn_trainer_free (self->trainer);
  snn_experiment_free (self->experiment);
  g_clear_object (&self->run);
  g_array_unref (self->pending_iters);
  g_array_unref (self->pending_epochs);
  g_clear_pointer (&self->pending_probe, snnwb_probe_unref);
  g_clear_pointer (&self->probe, snnwb_probe_unref);
  g_clear_pointer (&self->pending_epsilon, snnwb_epsilon_unref);
  g_clear_pointer (&self->epsilon, snnwb_epsilon_unref);
  g_clear_pointer (&self->pending_gradient, snnwb_gradient_unref);
  g_clear_pointer (&self->gradient, snnwb_gradient_unref);
  g_array_unref (self->pending_cosines);
  g_free (self->initial_weights);
  g_free (self->run_dir);
  g_free (self->analysis_x);
  g_free (self->analysis_y);
  g_clear_error (&self->error);
  g_main_context_unref (self->context);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (snnwb_session_parent_class)->finalize (object);
}

static void
snnwb_session_class_init (SnnwbSessionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = snnwb_session_finalize;

  signals[UPDATED] = g_signal_new ("updated", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                   0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[STATE_CHANGED] = g_signal_new ("state-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
snnwb_session_init (SnnwbSession *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->pending_iters = g_array_new (FALSE, FALSE, sizeof (SnnwbIterRecord));
  self->pending_epochs = g_array_new (FALSE, FALSE, sizeof (SnnwbEpochRecord));
  self->pending_cosines = g_array_new (FALSE, FALSE, sizeof (SnnwbCosineRecord));
  self->context = g_main_context_ref_thread_default ();
  self->analysis_every = SNNWB_DEFAULT_ANALYSIS_INTERVAL;
  /* The first iteration is analysed, so the views fill at once. */
  self->since_analysis = G_MAXINT / 2;
  self->last_iter = -1;
}

SnnwbSession *
snnwb_session_new (SnnwbRun *run)
{
  SnnwbSession *self = g_object_new (SNNWB_TYPE_SESSION, NULL);

  self->run = g_object_ref (run);
  self->experiment = snn_experiment_copy (snnwb_run_get_experiment (run));
  self->base_lr = self->experiment->optim.lr;
  return self;
}

SnnwbRun *
snnwb_session_get_run (SnnwbSession *self)
{
  return self->run;
}

void
snnwb_session_start (SnnwbSession *self, gboolean paused)
{
  g_return_if_fail (self->thread == NULL);

  self->paused = paused;
  self->state = self->reported_state = SNNWB_RUN_LOADING;
  snnwb_run_set_state (self->run, SNNWB_RUN_LOADING);
  self->thread = g_thread_new ("snnwb-train", worker, g_object_ref (self));
}

static void
request (SnnwbSession *self, gboolean paused, int steps, gboolean stop)
{
  g_mutex_lock (&self->lock);
  self->paused = paused;
  self->step_budget += steps;
  self->stop |= stop;
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);
}

void
snnwb_session_pause (SnnwbSession *self)
{
  request (self, TRUE, 0, FALSE);
}

void
snnwb_session_resume (SnnwbSession *self)
{
  request (self, FALSE, 0, FALSE);
}

void
snnwb_session_step (SnnwbSession *self)
{
  request (self, TRUE, 1, FALSE);
}

void
snnwb_session_stop (SnnwbSession *self)
{
  request (self, self->paused, 0, TRUE);
}

void
snnwb_session_join (SnnwbSession *self)
{
  if (!self->thread)
    return;
  snnwb_session_stop (self);
  g_thread_join (self->thread);
  self->thread = NULL;
  dispatch_cb (self);
}

gboolean
snnwb_session_is_active (SnnwbSession *self)
{
  return self->thread != NULL && self->reported_state <= SNNWB_RUN_PAUSED;
}

gboolean
snnwb_session_is_paused (SnnwbSession *self)
{
  gboolean paused;

  g_mutex_lock (&self->lock);
  paused = self->paused;
  g_mutex_unlock (&self->lock);
  return paused;
}

SnnwbRunState
snnwb_session_get_state (SnnwbSession *self)
{
  return self->reported_state;
}

void
snnwb_session_set_method (SnnwbSession *self, SnnMethod method, int K, gboolean recompute)
{
  g_mutex_lock (&self->lock);
  self->method = method;
  self->K = K;
  self->recompute = recompute;
  self->method_pending = TRUE;
  g_mutex_unlock (&self->lock);
  snnwb_run_set_method (self->run, method, K, recompute);
}

void
snnwb_session_set_lr (SnnwbSession *self, double lr)
{
  /* Other live settings changing must not touch the schedule. */
  if (lr == self->base_lr)
    return;
  self->base_lr = lr;
  g_mutex_lock (&self->lock);
  self->lr = lr;
  self->lr_pending = TRUE;
  g_mutex_unlock (&self->lock);
}

long
snnwb_session_get_reported_iters (SnnwbSession *self)
{
  return self->reported_iters;
}

SnnwbProbe *
snnwb_session_get_probe (SnnwbSession *self)
{
  return self->probe;
}

SnnwbEpsilon *
snnwb_session_get_epsilon (SnnwbSession *self)
{
  return self->epsilon;
}

void
snnwb_session_set_initial_weights (SnnwbSession *self, const char *npz_path)
{
  g_return_if_fail (self->thread == NULL);
  g_free (self->initial_weights);
  self->initial_weights = g_strdup (npz_path);
}

void
snnwb_session_set_run_dir (SnnwbSession *self, const char *dir)
{
  g_mutex_lock (&self->lock);
  g_free (self->run_dir);
  self->run_dir = g_strdup (dir);
  g_mutex_unlock (&self->lock);
}

void
snnwb_session_set_resume (SnnwbSession *self)
{
  g_return_if_fail (self->thread == NULL && self->run_dir != NULL);
  self->resume = TRUE;
  self->resumed_first = TRUE;
}

SnnTrainer *
snnwb_session_lock_trainer (SnnwbSession *self)
{
  g_mutex_lock (&self->lock);
  if (self->trainer && !self->in_step)
    return self->trainer;
  g_mutex_unlock (&self->lock);
  return NULL;
}

void
snnwb_session_unlock_trainer (SnnwbSession *self)
{
  g_mutex_unlock (&self->lock);
}

const GError *
snnwb_session_get_error (SnnwbSession *self)
{
  return self->reported_state == SNNWB_RUN_FAILED ? self->error : NULL;
}

SnnwbGradient *
snnwb_session_get_gradient (SnnwbSession *self)
{
  return self->gradient;
}

void
snnwb_session_set_analysis_interval (SnnwbSession *self, int every)
{
  g_mutex_lock (&self->lock);
  self->analysis_every = MAX (every, 0);
  g_mutex_unlock (&self->lock);
}

int
snnwb_session_get_analysis_interval (SnnwbSession *self)
{
  int every;

  g_mutex_lock (&self->lock);
  every = self->analysis_every;
  g_mutex_unlock (&self->lock);
  return every;
}

gboolean
snnwb_session_request_tau (SnnwbSession *self, double tau)
{
  gboolean ok;

  g_mutex_lock (&self->lock);
  ok = self->trainer != NULL && (self->worker_done || (self->paused && self->step_budget == 0 && !self->stop));
  if (ok)
    {
      self->tau_request = tau;
      self->tau_pending = TRUE;
      if (self->worker_done)
        start_helper_locked (self);
      else
        g_cond_signal (&self->cond);
    }
  g_mutex_unlock (&self->lock);
  return ok;
}

guint
snnwb_session_get_tau_results (SnnwbSession *self)
{
  return self->tau_results;
}

void
snnwb_session_set_pace (SnnwbSession *self, double iterations_per_second)
{
  g_mutex_lock (&self->lock);
  self->pace = MAX (iterations_per_second, 0.0);
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);
}
