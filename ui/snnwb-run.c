#include "snnwb-run.h"
#include <math.h>
#include <stdlib.h>
#include "net.h"

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
  GArray *methods;           /* SnnwbMethodChange */
  double peak_held, peak_arena;
  double median_ms;          /* cached for median_len iterations */
  guint median_len;
  char *folder, *weights;
  guint64 changes, saved_changes;
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
  g_array_unref (self->methods);
  g_free (self->folder);
  g_free (self->weights);
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
  self->methods = g_array_new (FALSE, FALSE, sizeof (SnnwbMethodChange));
}

void
snnwb_method_label (const SnnModel *model, SnnMethod method, int K, gboolean recompute, char *out, gsize size)
{
  /* A network that cannot rebuild its activations stores them whatever
   * the switch says: the label tells what runs. */
  gboolean recomputes = recompute && (!model || snn_model_can_recompute (model));

  if (method == SNN_METHOD_SLTT_K)
    g_snprintf (out, size, "SLTT-K (K %d)", K);
  else if (method == SNN_METHOD_BPTT)
    g_snprintf (out, size, recomputes ? "BPTT (recompute)" : "BPTT (stored)");
  else
    g_snprintf (out, size, "%s", "SLTT");
}

static void
push_method (SnnwbRun *run, long iter)
{
  const SnnTrainConfig *t = &run->experiment->train;
  SnnwbMethodChange c = { .iter = iter, .method = t->method, .K = t->K };
  SnnwbMethodChange *last = run->methods->len ? &g_array_index (run->methods, SnnwbMethodChange, run->methods->len - 1) : NULL;

  c.recompute = t->recompute && (!run->experiment->model || snn_model_can_recompute (run->experiment->model));
  snnwb_method_label (run->experiment->model, t->method, t->K, t->recompute, c.label, sizeof c.label);
  if (last && g_str_equal (last->label, c.label))
    return;
  /* Changed twice before the next iteration: only the last one ran. */
  if (last && last->iter >= iter)
    {
      g_array_set_size (run->methods, run->methods->len - 1);
      push_method (run, iter);
      return;
    }
  g_array_append_val (run->methods, c);
}

SnnwbRun *
snnwb_run_new (const SnnExperiment *e, int number)
{
  SnnwbRun *self = g_object_new (SNNWB_TYPE_RUN, NULL);

  self->experiment = snn_experiment_copy (e);
  self->number = number;
  self->name = g_strdup_printf ("Run %d · %s", number, e->name ? e->name : "experiment");
  push_method (self, 0);
  return self;
}

gboolean
snnwb_run_set_name (SnnwbRun *run, const char *name)
{
  g_autofree char *clean = g_strstrip (g_strdup (name ? name : ""));

  if (!*clean)
    return FALSE;
  g_free (run->name);
  run->name = g_steal_pointer (&clean);
  run->changes++;
  g_signal_emit (run, signals[CHANGED], 0);
  return TRUE;
}

int
snnwb_run_get_number (SnnwbRun *run)
{
  return run->number;
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
  push_method (run, run->iters->len ? g_array_index (run->iters, SnnwbIterRecord, run->iters->len - 1).iter + 1 : 0);
  run->changes++;
  g_signal_emit (run, signals[CHANGED], 0);
}

const char *
snnwb_run_get_method_label (SnnwbRun *run)
{
  return g_array_index (run->methods, SnnwbMethodChange, run->methods->len - 1).label;
}

char *
snnwb_run_describe_method (SnnwbRun *run)
{
  return g_strdup (snnwb_run_get_method_label (run));
}

const SnnwbMethodChange *
snnwb_run_get_method_history (SnnwbRun *run, guint *n)
{
  *n = run->methods->len;
  return (const SnnwbMethodChange *) run->methods->data;
}

char *
snnwb_run_describe_history (SnnwbRun *run)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < run->methods->len; i++)
    {
      const SnnwbMethodChange *c = &g_array_index (run->methods, SnnwbMethodChange, i);

      if (i == 0)
        g_string_append (s, c->label);
      else
        g_string_append_printf (s, " → %s at %ld", c->label, c->iter + 1);
    }
  return g_string_free (s, FALSE);
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
  run->changes++;
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
  run->changes++;
  run->peak_held = MAX (run->peak_held, rec->held_bytes);
  run->peak_arena = MAX (run->peak_arena, rec->arena_bytes);
}

double
snnwb_run_get_peak_held_bytes (SnnwbRun *run)
{
  return run->peak_held;
}

double
snnwb_run_get_peak_arena_bytes (SnnwbRun *run)
{
  return run->peak_arena;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

double
snnwb_run_get_median_ms (SnnwbRun *run)
{
  guint n = run->iters->len;
  g_autofree double *ms = NULL;

  if (n == 0)
    return NAN;
  if (n == run->median_len)
    return run->median_ms;
  ms = g_new (double, n);
  for (guint i = 0; i < n; i++)
    {
      const SnnwbIterRecord *r = &g_array_index (run->iters, SnnwbIterRecord, i);

      ms[i] = r->forward_ms + r->backward_ms;
    }
  qsort (ms, n, sizeof *ms, cmp_double);
  run->median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  run->median_len = n;
  return run->median_ms;
}

char *
snnwb_run_describe_summary (SnnwbRun *run)
{
  const SnnExperiment *e = run->experiment;
  g_autofree char *history = snnwb_run_describe_history (run);
  g_autofree char *held = g_format_size ((guint64) run->peak_held);
  g_autofree char *arena = g_format_size ((guint64) run->peak_arena);
  double acc = snnwb_run_get_final_accuracy (run), ms = snnwb_run_get_median_ms (run);
  g_autofree char *acc_text = acc >= 0 ? g_strdup_printf ("%.1f %%", acc * 100) : g_strdup ("not tested yet");
  g_autofree char *ms_text = isnan (ms) ? g_strdup ("—") : g_strdup_printf ("%.2f ms", ms);

  return g_strdup_printf ("%s\n"
                          "Method: %s\n"
                          "T %d · batch %d · seed %" G_GUINT64_FORMAT " · %u iterations · %s\n"
                          "Test accuracy: %s\n"
                          "Peak held for backward: %s · activation arena: %s\n"
                          "Median time per iteration: %s",
                          run->name, history, e->train.T, e->batch_size, e->seed, run->iters->len,
                          snnwb_run_state_name (run->state), acc_text, held, arena, ms_text);
}

void
snnwb_run_append_epoch (SnnwbRun *run, const SnnwbEpochRecord *rec)
{
  g_array_append_val (run->epochs, *rec);
  run->changes++;
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
  run->changes++;
}

void
snnwb_run_truncate (SnnwbRun *run, long iter)
{
  guint n = run->iters->len, e = run->epochs->len, c = run->cosines->len;

  while (n > 0 && g_array_index (run->iters, SnnwbIterRecord, n - 1).iter >= iter)
    n--;
  while (e > 0 && g_array_index (run->epochs, SnnwbEpochRecord, e - 1).end_iter >= iter)
    e--;
  while (c > 0 && g_array_index (run->cosines, SnnwbCosineRecord, c - 1).iter >= iter)
    c--;
  if (n == run->iters->len && e == run->epochs->len && c == run->cosines->len)
    return;
  g_array_set_size (run->iters, n);
  g_array_set_size (run->epochs, e);
  g_array_set_size (run->cosines, c);
  run->changes++;
  g_signal_emit (run, signals[CHANGED], 0);
}

const SnnwbCosineRecord *
snnwb_run_get_cosines (SnnwbRun *run, guint *n)
{
  *n = run->cosines->len;
  return (const SnnwbCosineRecord *) run->cosines->data;
}

const char *
snnwb_run_get_folder (SnnwbRun *run)
{
  return run->folder;
}

void
snnwb_run_set_folder (SnnwbRun *run, const char *folder)
{
  g_free (run->folder);
  run->folder = g_strdup (folder);
}

guint64
snnwb_run_get_changes (SnnwbRun *run)
{
  return run->changes;
}

void
snnwb_run_mark_saved (SnnwbRun *run, guint64 changes)
{
  run->saved_changes = changes;
}

gboolean
snnwb_run_is_saved (SnnwbRun *run)
{
  return run->folder && run->saved_changes == run->changes;
}

void
snnwb_run_restore (SnnwbRun *run, SnnwbRunState state, long total_iters, const SnnwbMethodChange *history,
                   guint n_history)
{
  run->state = state;
  run->total_iters = total_iters;
  if (n_history > 0)
    {
      g_array_set_size (run->methods, 0);
      g_array_append_vals (run->methods, history, n_history);
    }
  run->changes++;
}

const char *
snnwb_run_get_weights_path (SnnwbRun *run)
{
  return run->weights;
}

void
snnwb_run_set_weights_path (SnnwbRun *run, const char *path)
{
  g_free (run->weights);
  run->weights = g_strdup (path);
}
