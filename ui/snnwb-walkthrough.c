#include "snnwb-walkthrough.h"
#include <math.h>

/* Each stage waits for what the previous one started (a number of
 * iterations, a pause, an analysis) by polling, as a user watching the
 * window would; none of it blocks the main loop. */
#define POLL_MS        100
#define STAGE_TIMEOUT  (180 * G_USEC_PER_SEC)
#define WHAT_IF_TAU    4.0

typedef struct {
  SnnwbWindow *win;
  char *dir;
  int iterations;
  guint stage;
  gint64 stage_start;
  gint64 settle_until;
  gboolean failed;
} Walk;

typedef gboolean (*StageFunc) (Walk *w);

static void
walk_free (Walk *w)
{
  g_object_unref (w->win);
  g_free (w->dir);
  g_free (w);
}

static void
fail (Walk *w, const char *what)
{
  g_printerr ("walk-through: %s\n", what);
  w->failed = TRUE;
}

static void
activate (Walk *w, const char *action, GVariant *param)
{
  g_action_group_activate_action (G_ACTION_GROUP (w->win), action, param);
}

/* TRUE once the views had ms to draw what they last received. */
static gboolean
settled (Walk *w, int ms)
{
  gint64 now = g_get_monotonic_time ();

  if (w->settle_until == 0)
    w->settle_until = now + ms * 1000;
  if (now < w->settle_until)
    return FALSE;
  w->settle_until = 0;
  return TRUE;
}

static void
shoot (Walk *w, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (w->dir, name, NULL);

  if (!snnwb_window_save_png (w->win, path, &error))
    fail (w, error->message);
  else
    g_print ("Saved %s\n", path);
}

static void
export_view (Walk *w, const char *view, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (w->dir, name, NULL);
  gboolean ok;

  if (g_str_equal (view, "gradients"))
    ok = snnwb_gradient_view_export (snnwb_window_get_gradient_view (w->win), path, &error);
  else
    ok = snnwb_chart_view_export (snnwb_window_get_view (w->win, view), path, &error);
  if (!ok)
    fail (w, error->message);
  else
    g_print ("Saved %s\n", path);
}

/* Stages */

/* conv 1→8 k3 pad 1, LIF, average pooling 2, flatten, linear 1568→10,
 * added through the Add menu's action; sizes the editor cannot guess are
 * set as the fields would set them. */
static gboolean
assemble (Walk *w)
{
  static const char *const layers[] = { "conv", "lif", "avgpool", "flatten", "linear" };
  g_autoptr (GError) error = NULL;
  SnnwbLayerEditor *editor = snnwb_window_get_layer_editor (w->win);
  SnnExperiment *e;

  /* The conv-small preset brings Fashion-MNIST with a [1, 28, 28] input. */
  if (!snnwb_window_load_experiment (w->win, "conv-small", &error))
    {
      fail (w, error->message);
      return TRUE;
    }
  e = snnwb_window_get_experiment (w->win);
  while (e->model->n_layers > 0)
    {
      snnwb_layer_editor_select (editor, 0);
      snnwb_layer_editor_remove_selected (editor);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (layers); i++)
    activate (w, "add-layer", g_variant_new_string (layers[i]));
  e->model->layers[0].out_ch = 8;
  e->model->layers[0].k = 3;
  e->model->layers[0].pad = 1;
  e->model->layers[4].in = 8 * 14 * 14;
  e->model->layers[4].out = 10;
  g_free (e->name);
  e->name = g_strdup ("conv-class");
  e->train.T = 6;
  e->train.method = SNN_METHOD_BPTT;
  /* BPTT as the paper measures it: every activation stored. */
  e->train.recompute = FALSE;
  e->train_subset = 2048;
  e->test_subset = 256;
  e->batch_size = 32;
  e->epochs = 5;
  e->seed = 2022;
  snnwb_window_experiment_changed (w->win);
  snnwb_layer_editor_select (editor, 0);
  if (!snnwb_layer_editor_is_valid (editor))
    fail (w, snnwb_layer_editor_get_problem (editor));
  return TRUE;
}

static gboolean
shoot_assembled (Walk *w)
{
  if (!settled (w, 600))
    return FALSE;
  shoot (w, "walkthrough-1-assemble.png");
  return TRUE;
}

static gboolean
train_bptt (Walk *w)
{
  if (snnwb_window_get_run_state (w->win) < SNNWB_RUN_STOPPED)
    return FALSE;
  snnwb_settings_panel_set_method (snnwb_window_get_settings_panel (w->win), SNN_METHOD_BPTT, 1);
  activate (w, "train", NULL);
  /* Central pixels of the first four channels, where the image is. */
  snnwb_window_set_traced_neurons (w->win, "406, 1190, 1974, 2758");
  return TRUE;
}

static gboolean
trained (Walk *w)
{
  return snnwb_window_get_reported_iters (w->win) >= w->iterations
         && snnwb_window_get_run_state (w->win) == SNNWB_RUN_RUNNING;
}

static gboolean
stop_bptt (Walk *w)
{
  if (!trained (w))
    return FALSE;
  activate (w, "stop", NULL);
  return TRUE;
}

/* The same experiment, seed included, with only the method changed. */
static gboolean
train_sltt (Walk *w)
{
  if (snnwb_window_get_run_state (w->win) < SNNWB_RUN_STOPPED)
    return FALSE;
  snnwb_settings_panel_set_method (snnwb_window_get_settings_panel (w->win), SNN_METHOD_SLTT, 1);
  activate (w, "train", NULL);
  return TRUE;
}

static gboolean
pause_sltt (Walk *w)
{
  if (!trained (w))
    return FALSE;
  activate (w, "pause", NULL);
  return TRUE;
}

static gboolean
compare (Walk *w)
{
  if (snnwb_window_get_run_state (w->win) != SNNWB_RUN_PAUSED)
    return FALSE;
  snnwb_window_select_all_runs (w->win);
  return TRUE;
}

static gboolean
shoot_compared (Walk *w)
{
  if (!settled (w, 800))
    return FALSE;
  shoot (w, "walkthrough-2-bptt-vs-sltt.png");
  export_view (w, "raster", "walkthrough-raster.svg");
  export_view (w, "gradients", "walkthrough-3-gradients.png");
  return TRUE;
}

static gboolean
move_tau (Walk *w)
{
  snnwb_gradient_view_set_tau (snnwb_window_get_gradient_view (w->win), WHAT_IF_TAU);
  return TRUE;
}

static gboolean
shoot_what_if (Walk *w)
{
  SnnwbGradient *g = snnwb_gradient_view_get_gradient (snnwb_window_get_gradient_view (w->win));

  if (!g || fabs (g->tau_override - WHAT_IF_TAU) > 1e-4 || !settled (w, 800))
    return FALSE;
  shoot (w, "walkthrough-4-what-if-tau.png");
  export_view (w, "gradients", "walkthrough-5-gradients-tau4.png");
  activate (w, "stop", NULL);
  return TRUE;
}

/* Twice the time steps, both methods again: BPTT holds twice as much for
 * backward, SLTT the same. */
static gboolean
double_steps (Walk *w)
{
  if (snnwb_window_get_run_state (w->win) < SNNWB_RUN_STOPPED)
    return FALSE;
  snnwb_window_get_experiment (w->win)->train.T = 12;
  snnwb_window_experiment_changed (w->win);
  return TRUE;
}

static gboolean
overlay_all (Walk *w)
{
  if (snnwb_window_get_run_state (w->win) < SNNWB_RUN_STOPPED)
    return FALSE;
  snnwb_window_select_all_runs (w->win);
  return TRUE;
}

static gboolean
shoot_memory (Walk *w)
{
  if (!settled (w, 800))
    return FALSE;
  shoot (w, "walkthrough-6-memory-vs-T.png");
  export_view (w, "memory", "walkthrough-memory.png");
  return TRUE;
}

static gboolean
stop_run (Walk *w)
{
  if (!trained (w))
    return FALSE;
  activate (w, "stop", NULL);
  return TRUE;
}

static const struct {
  const char *name;
  StageFunc func;
} stages[] = {
  { "assemble the network", assemble },
  { "the assembled network", shoot_assembled },
  { "start BPTT", train_bptt },
  { "BPTT iterations", stop_bptt },
  { "start SLTT", train_sltt },
  { "SLTT iterations", pause_sltt },
  { "the pause", compare },
  { "the comparison", shoot_compared },
  { "the tau slider", move_tau },
  { "the what-if analysis", shoot_what_if },
  { "the stop", double_steps },
  { "start BPTT at T 12", train_bptt },
  { "BPTT iterations at T 12", stop_bptt },
  { "start SLTT at T 12", train_sltt },
  { "SLTT iterations at T 12", stop_run },
  { "the last stop", overlay_all },
  { "the memory comparison", shoot_memory },
};

static gboolean
tick (gpointer data)
{
  Walk *w = data;
  gint64 now = g_get_monotonic_time ();

  if (!w->failed && snnwb_window_get_run_state (w->win) == SNNWB_RUN_FAILED)
    fail (w, snnwb_window_get_message (w->win) ? snnwb_window_get_message (w->win) : "training failed");
  if (!w->failed && now - w->stage_start > STAGE_TIMEOUT)
    {
      g_autofree char *what = g_strdup_printf ("timed out waiting for %s", stages[w->stage].name);

      fail (w, what);
    }
  while (!w->failed && w->stage < G_N_ELEMENTS (stages) && stages[w->stage].func (w))
    {
      w->stage++;
      w->stage_start = now;
    }
  if (!w->failed && w->stage < G_N_ELEMENTS (stages))
    return G_SOURCE_CONTINUE;
  gtk_window_close (GTK_WINDOW (w->win));
  return G_SOURCE_REMOVE;
}

void
snnwb_walkthrough_start (SnnwbWindow *win, const char *out_dir, int iterations)
{
  Walk *w = g_new0 (Walk, 1);

  w->win = g_object_ref (win);
  snnwb_window_set_ask_before_close (win, FALSE);
  w->dir = g_strdup (out_dir);
  w->iterations = MAX (iterations, 1);
  w->stage_start = g_get_monotonic_time ();
  g_mkdir_with_parents (out_dir, 0755);
  g_timeout_add_full (G_PRIORITY_DEFAULT, POLL_MS, tick, w, (GDestroyNotify) walk_free);
}
