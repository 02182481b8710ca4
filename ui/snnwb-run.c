#include "snnwb-run.h"

struct _SnnwbRun {
  GObject parent_instance;
  char *name;
  SnnExperiment *experiment;
  int number;
  SnnwbRunState state;
  long total_iters;
  GArray *iters;
  GArray *epochs;
  GArray *cosines;
};

G_DEFINE_FINAL_TYPE (SnnwbRun, snnwb_run, G_TYPE_OBJECT)

enum { CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
snnwb_run_finalize (GObject *object)
{
  SnnwbRun *self = SNNWB_RUN (object);

  g_free (self->name);
  snn_experiment_free (self->experiment);
  g_array_unref (self->iters);
  g_array_unref (self->epochs);
  g_array_unref (self->cosines);
  G_OBJECT_CLASS (snnwb_run_parent_class)->finalize (object);
}

static void
snnwb_run_class_init (SnnwbRunClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = snnwb_run_finalize;

  /* Emitted on the main thread when the state or the summary changes
   * (not for every recorded iteration). */
  signals[CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                   0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
snnwb_run_init (SnnwbRun *self)
{
  self->iters = g_array_new (FALSE, FALSE, sizeof (SnnwbIterRecord));
  self->epochs = g_array_new (FALSE, FALSE, sizeof (SnnwbEpochRecord));
  self->cosines = g_array_new (FALSE, FALSE, sizeof (SnnwbCosineRecord));
}

SnnwbRun *
snnwb_run_new (const SnnExperiment *e, int number)
{
  SnnwbRun *self = g_object_new (SNNWB_TYPE_RUN, NULL);

  self->experiment = snn_experiment_copy (e);
  self->number = number;
  self->name = g_strdup_printf ("Run %d · %s", number, e->name ? e->name : "experiment");
  return self;
}

const char *
snnwb_run_get_name (SnnwbRun *run)
{
  return run->name;
}

const SnnExperiment *
snnwb_run_get_experiment (SnnwbRun *run)
{
  return run->experiment;
}

void
snnwb_run_set_method (SnnwbRun *run, SnnMethod method, int K, gboolean recompute)
{
  run->experiment->train.method = method;
  run->experiment->train.K = K;
  run->experiment->train.recompute = recompute;
  g_signal_emit (run, signals[CHANGED], 0);
}

char *
snnwb_run_describe_method (SnnwbRun *run)
{
  const SnnTrainConfig *t = &run->experiment->train;

  if (t->method == SNN_METHOD_SLTT_K)
    return g_strdup_printf ("SLTT-%d", t->K);
  if (t->method == SNN_METHOD_BPTT && !t->recompute)
    return g_strdup ("BPTT (stored)");
  return g_ascii_strup (snn_method_name (t->method), -1);
}

int
snnwb_run_get_color_index (SnnwbRun *run)
{
  return run->number - 1;
}

SnnwbRunState
snnwb_run_get_state (SnnwbRun *run)
{
  return run->state;
}

void
snnwb_run_set_state (SnnwbRun *run, SnnwbRunState state)
{
  if (run->state == state)
    return;
  run->state = state;
  g_signal_emit (run, signals[CHANGED], 0);
}

const char *
snnwb_run_state_name (SnnwbRunState state)
{
  static const char *const names[] = { "loading data", "training", "paused", "stopped", "finished", "failed" };

  return names[state];
}

void
snnwb_run_append_iter (SnnwbRun *run, const SnnwbIterRecord *rec)
{
  g_array_append_val (run->iters, *rec);
}

void
snnwb_run_append_epoch (SnnwbRun *run, const SnnwbEpochRecord *rec)
{
  g_array_append_val (run->epochs, *rec);
  g_signal_emit (run, signals[CHANGED], 0);
}

const SnnwbIterRecord *
snnwb_run_get_iters (SnnwbRun *run, guint *n)
{
  *n = run->iters->len;
  return (const SnnwbIterRecord *) run->iters->data;
}

const SnnwbEpochRecord *
snnwb_run_get_epochs (SnnwbRun *run, guint *n)
{
  *n = run->epochs->len;
  return (const SnnwbEpochRecord *) run->epochs->data;
}

double
snnwb_run_get_final_accuracy (SnnwbRun *run)
{
  if (run->epochs->len == 0)
    return -1.0;
  return g_array_index (run->epochs, SnnwbEpochRecord, run->epochs->len - 1).test_acc;
}

long
snnwb_run_get_total_iters (SnnwbRun *run)
{
  return run->total_iters;
}

void
snnwb_run_set_total_iters (SnnwbRun *run, long total)
{
  run->total_iters = total;
}

double
snnwb_run_get_throughput (SnnwbRun *run)
{
  const SnnwbIterRecord *last;

  if (run->iters->len < 2)
    return 0.0;
  last = &g_array_index (run->iters, SnnwbIterRecord, run->iters->len - 1);
  return last->wall_s > 0 ? run->iters->len / last->wall_s : 0.0;
}

void
snnwb_run_append_cosine (SnnwbRun *run, const SnnwbCosineRecord *rec)
{
  g_array_append_val (run->cosines, *rec);
}

const SnnwbCosineRecord *
snnwb_run_get_cosines (SnnwbRun *run, guint *n)
{
  *n = run->cosines->len;
  return (const SnnwbCosineRecord *) run->cosines->data;
}
