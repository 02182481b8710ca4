/* The workbench window driven through its actions: train, pause, change the
 * method, step, resume, stop, compare runs, save and reopen, and an invalid
 * network that disables Train. Runs under Xvfb. */
#include <gtk/gtk.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include "snnwb-offscreen.h"
#include "snnwb-window.h"
#include "snnwb-application.h"
#include "snnwb-walkthrough.h"
#include <gdk/x11/gdkx.h>
#include "optim.h"
#include "trainer.h"
#include "snnwb-run-store.h"
#include "test-gui-util.h"

static SnnwbWindow *win;
static char *tmpdir;

static gboolean
never (gpointer data)
{
  return FALSE;
}

static void
iterate_for (double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  guint tick = g_timeout_add (10, tgu_wake_up, NULL);

  while (g_get_monotonic_time () < end && !never (NULL))
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
}

static gboolean
iters_reached (gpointer data)
{
  return snnwb_window_get_reported_iters (win) >= GPOINTER_TO_INT (data);
}

static gboolean
state_is (gpointer data)
{
  return snnwb_window_get_run_state (win) == (SnnwbRunState) GPOINTER_TO_INT (data);
}

static void
activate (const char *action)
{
  g_assert_true (g_action_group_get_action_enabled (G_ACTION_GROUP (win), action));
  g_action_group_activate_action (G_ACTION_GROUP (win), action, NULL);
}

static gboolean
enabled (const char *action)
{
  return g_action_group_get_action_enabled (G_ACTION_GROUP (win), action);
}

/* A fast experiment: the synthetic temporal set with tiny subsets, more
 * epochs than the test needs so a run never finishes by itself. */
static void
use_fast_experiment (void)
{
  g_autoptr (GError) error = NULL;
  SnnExperiment *e;

  g_assert_true (snnwb_window_load_experiment (win, "temporal-mlp", &error));
  g_assert_no_error (error);
  e = snnwb_window_get_experiment (win);
  e->dataset = SNN_DATASET_SYNTHETIC;
  e->train_subset = 256;
  e->test_subset = 64;
  e->batch_size = 16;
  e->epochs = 200;
  e->train.method = SNN_METHOD_SLTT;
  snnwb_window_experiment_changed (win);
}

static void
test_open (void)
{
  win = snnwb_window_new (NULL);
  gtk_window_present (GTK_WINDOW (win));
  iterate_for (0.2);
  g_assert_nonnull (snnwb_window_get_experiment (win));
  g_assert_nonnull (snnwb_window_get_experiment (win)->model);
  use_fast_experiment ();
  g_assert_cmpstr (snnwb_window_get_experiment (win)->name, ==, "temporal-mlp");
  g_assert_true (snnwb_layer_editor_is_valid (snnwb_window_get_layer_editor (win)));
  g_assert_true (enabled ("train"));
  g_assert_false (enabled ("pause"));
  g_assert_false (enabled ("stop"));
}

static double
last_held_bytes (void)
{
  guint n;
  const SnnwbIterRecord *it = snnwb_run_get_iters (snnwb_window_get_run (win, snnwb_window_get_n_runs (win) - 1), &n);

  g_assert_cmpuint (n, >, 0);
  return it[n - 1].held_bytes;
}

/* The run keeps what the views and the run list show: each method it
 * trained with and from which iteration, memory peaks and median time. */
static void
check_run_record (SnnwbRun *run, long paused_at)
{
  const SnnwbMethodChange *h;
  g_autofree char *history = snnwb_run_describe_history (run);
  g_autofree char *summary = snnwb_run_describe_summary (run);
  guint n;

  h = snnwb_run_get_method_history (run, &n);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmpstr (h[0].label, ==, "SLTT");
  g_assert_cmpint (h[0].iter, ==, 0);
  g_assert_cmpstr (h[1].label, ==, "BPTT (recompute)");
  g_assert_cmpint (h[1].iter, ==, paused_at);
  g_assert_true (h[1].recompute);
  g_assert_cmpstr (h[2].label, ==, "BPTT (stored)");
  g_assert_cmpint (h[2].iter, ==, paused_at + 1);
  g_assert_cmpstr (snnwb_run_get_method_label (run), ==, "BPTT (stored)");
  g_assert_nonnull (strstr (history, "SLTT → BPTT (recompute) at"));
  g_assert_cmpfloat (snnwb_run_get_peak_held_bytes (run), ==, last_held_bytes ());
  g_assert_cmpfloat (snnwb_run_get_peak_arena_bytes (run), >, snnwb_run_get_peak_held_bytes (run));
  g_assert_cmpfloat (snnwb_run_get_median_ms (run), >, 0);
  g_assert_nonnull (strstr (summary, "BPTT (stored)"));
  g_assert_nonnull (strstr (summary, "arena"));
}

static void
test_train_pause_method_stop (void)
{
  long paused_at;
  double sltt_bytes;
  const SnnExperiment *e;
  SnnwbRun *run;
  g_autofree char *method = NULL;

  activate ("train");
  g_assert_false (enabled ("train"));
  iterate_until (iters_reached, GINT_TO_POINTER (20), 60, "20 iterations");
  g_assert_cmpint (snnwb_window_get_run_state (win), ==, SNNWB_RUN_RUNNING);

  activate ("pause");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_PAUSED), 30, "the pause");
  paused_at = snnwb_window_get_reported_iters (win);
  iterate_for (0.3);
  g_assert_cmpint (snnwb_window_get_reported_iters (win), ==, paused_at);
  sltt_bytes = last_held_bytes ();

  /* BPTT holds every step for backward: recomputing (the default), the
   * input and spike bits of every step; storing, every activation, more
   * than SLTT's one step. */
  e = snnwb_window_get_experiment (win);
  snnwb_settings_panel_set_method (snnwb_window_get_settings_panel (win), SNN_METHOD_BPTT, 1);
  activate ("step");
  iterate_until (iters_reached, GINT_TO_POINTER (paused_at + 1), 30, "one step");
  iterate_for (0.1);
  g_assert_cmpint (snnwb_window_get_reported_iters (win), ==, paused_at + 1);
  g_assert_cmpfloat (last_held_bytes (), ==, snn_model_train_held_bytes (e->model, snn_backend_get (NULL, NULL), e->batch_size, e->train.T, FALSE, TRUE));
  run = snnwb_window_get_run (win, 0);
  method = snnwb_run_describe_method (run);
  g_assert_cmpstr (method, ==, "BPTT (recompute)");
  snnwb_settings_panel_set_recompute (snnwb_window_get_settings_panel (win), FALSE);
  activate ("step");
  iterate_until (iters_reached, GINT_TO_POINTER (paused_at + 2), 30, "one step");
  iterate_for (0.1);
  g_assert_cmpfloat (last_held_bytes (), ==, snn_model_train_held_bytes (e->model, snn_backend_get (NULL, NULL), e->batch_size, e->train.T, FALSE, FALSE));
  g_assert_cmpfloat (last_held_bytes (), >, sltt_bytes);
  g_free (method);
  method = snnwb_run_describe_method (run);
  g_assert_cmpstr (method, ==, "BPTT (stored)");
  check_run_record (run, paused_at);

  activate ("pause");   /* resume */
  iterate_until (iters_reached, GINT_TO_POINTER (paused_at + 32), 60, "30 more iterations");
  activate ("stop");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_STOPPED), 30, "the stop");
  g_assert_true (enabled ("train"));
  g_assert_false (enabled ("stop"));
}

static void
test_views_received_data (void)
{
  static const char *const views[] = { "raster", "traces", "epsilon", "loss", "accuracy", "memory", "time" };

  for (gsize i = 0; i < G_N_ELEMENTS (views); i++)
    {
      SnnwbChartView *view = snnwb_window_get_view (win, views[i]);

      if (snnwb_window_get_view_data_count (win, views[i]) == 0 || !snnwb_chart_view_has_data (view))
        g_error ("view %s received no data", views[i]);
    }
}

static gboolean
views_show_latest (gpointer data)
{
  const char *const *views = data;

  for (gsize i = 0; views[i]; i++)
    if (!snnwb_chart_view_shows_latest (snnwb_window_get_view (win, views[i])))
      return FALSE;
  return TRUE;
}

/* The pictures of the views are drawn off the main thread while training,
 * and once the data stop changing every view shows its latest data. */
static void
test_pictures_settle (void)
{
  static const char *const views[] = { "raster", "traces", "epsilon", "loss", "accuracy", "memory", "time", NULL };

  g_assert_cmpuint (snnwb_offscreen_get_n_rendered (), >, 0);
  iterate_until (views_show_latest, (gpointer) views, 10, "the latest pictures");
}

static SnnwbGradient *
shown_gradient (void)
{
  return snnwb_gradient_view_get_gradient (snnwb_window_get_gradient_view (win));
}

static gboolean
points_reached (gpointer data)
{
  return snnwb_gradient_view_get_n_points (snnwb_window_get_gradient_view (win)) >= GPOINTER_TO_UINT (data);
}

/* While training, the probe batch is analysed every few iterations: the
 * bars get fresh decompositions and the cosine curve grows. */
static void
test_gradients_live (void)
{
  SnnwbGradientView *view = snnwb_window_get_gradient_view (win);
  SnnwbGradient *g;
  guint points, count;

  snnwb_gradient_view_set_interval (view, 2);
  activate ("train");
  iterate_until (points_reached, GUINT_TO_POINTER (3), 60, "3 cosine points");
  g_assert_cmpint (snnwb_window_get_run_state (win), ==, SNNWB_RUN_RUNNING);
  points = snnwb_gradient_view_get_n_points (view);
  count = snnwb_window_get_view_data_count (win, "gradients");
  iterate_until (points_reached, GUINT_TO_POINTER (points + 3), 60, "3 more cosine points");
  g_assert_cmpuint (snnwb_window_get_view_data_count (win, "gradients"), >, count);

  g = shown_gradient ();
  g_assert_nonnull (g);
  g_assert_null (g->error);
  g_assert_cmpfloat (g->tau_override, <=, 0);
  g_assert_cmpint (g->T, ==, snnwb_window_get_experiment (win)->train.T);
  g_assert_cmpint (g->n_lif, ==, 1);
  g_assert_cmpint (g->n_affine, ==, 2);
  g_assert_cmpfloat (g->lif[0].spatial_norm[0], >, 0);
  g_assert_true (g->cosine_mean > -1.0001 && g->cosine_mean < 1.0001);
  g_assert_true (g->cost_share >= 0);
}

static gboolean
tau_shown (gpointer data)
{
  SnnwbGradient *g = shown_gradient ();
  double tau = *(double *) data;

  return g && (tau > 0 ? fabs (g->tau_override - tau) < 1e-4 : g->tau_override <= 0);
}

static void
wait_for_tau (double tau)
{
  g_autofree char *what = g_strdup_printf ("the analysis at tau %g", tau);

  iterate_until (tau_shown, &tau, 30, what);
  g_assert_null (shown_gradient ()->error);
}

static double
temporal_sum (const SnnwbGradient *g)
{
  double sum = 0;

  for (int i = 0; i < g->n_lif; i++)
    for (int t = 0; t < g->T; t++)
      sum += g->lif[i].temporal_norm[t];
  return sum;
}

/* Paused, the slider recomputes the split with a what-if tau: none of the
 * gradient flows back in time at tau 1, some does above it. Rapid moves
 * are coalesced; resuming goes back to the model's own tau. */
static void
test_tau_what_if (void)
{
  SnnwbGradientView *view = snnwb_window_get_gradient_view (win);
  g_autoptr (SnnwbGradient) at_one = NULL;
  double model_tau;
  guint count;

  activate ("pause");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_PAUSED), 30, "the pause");
  model_tau = shown_gradient ()->lif[0].tau;

  snnwb_gradient_view_set_tau (view, 1.0);
  wait_for_tau (1.0);
  at_one = snnwb_gradient_ref (shown_gradient ());
  g_assert_cmpfloat (at_one->lif[0].tau, ==, 1.0);
  g_assert_cmpfloat (temporal_sum (at_one), ==, 0.0);
  g_assert_cmpfloat (at_one->lif[0].spatial_norm[0], >, 0);

  count = snnwb_window_get_view_data_count (win, "gradients");
  for (int i = 2; i <= 6; i++)
    snnwb_gradient_view_set_tau (view, i);
  wait_for_tau (6.0);
  g_assert_cmpuint (snnwb_window_get_view_data_count (win, "gradients") - count, <, 5);
  g_assert_cmpfloat (shown_gradient ()->lif[0].tau, ==, 6.0);
  g_assert_cmpfloat (temporal_sum (shown_gradient ()), >, 0.0);
  g_assert_cmpfloat (shown_gradient ()->lif[0].temporal_norm[0], !=, at_one->lif[0].temporal_norm[0]);

  activate ("pause");   /* resume */
  wait_for_tau (0);
  g_assert_cmpfloat (shown_gradient ()->lif[0].tau, ==, model_tau);
  g_assert_cmpfloat (snnwb_gradient_view_get_tau (view), ==, model_tau);
  activate ("stop");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_STOPPED), 30, "the stop");

  /* A stopped run keeps its model: the what-if still works. */
  snnwb_gradient_view_set_tau (view, 3.0);
  wait_for_tau (3.0);
  g_assert_cmpfloat (temporal_sum (shown_gradient ()), >, 0.0);
}

static void
test_compare_runs (void)
{
  activate ("train");
  iterate_until (iters_reached, GINT_TO_POINTER (10), 60, "10 iterations of run 2");
  activate ("stop");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_STOPPED), 30, "the stop of run 2");
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, 2);
  snnwb_window_select_all_runs (win);
  g_assert_cmpuint (snnwb_chart_view_get_n_runs (snnwb_window_get_view (win, "loss")), ==, 2);
  g_assert_cmpuint (snnwb_chart_view_get_n_runs (snnwb_window_get_view (win, "memory")), ==, 2);
}

static void
test_step_from_idle (void)
{
  guint runs = snnwb_window_get_n_runs (win);

  activate ("step");
  iterate_until (iters_reached, GINT_TO_POINTER (1), 60, "a single step");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_PAUSED), 30, "the pause after a step");
  g_assert_cmpint (snnwb_window_get_reported_iters (win), ==, 1);
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, runs + 1);
  activate ("stop");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_STOPPED), 30, "the stop after a step");
}

/* Runs can be renamed (not to nothing) and deleted once stopped. */
static void
test_rename_delete (void)
{
  guint n = snnwb_window_get_n_runs (win);
  SnnwbRun *first = snnwb_window_get_run (win, 0), *last = snnwb_window_get_run (win, n - 1);

  g_assert_true (snnwb_window_rename_run (win, first, "  wide tau  "));
  g_assert_cmpstr (snnwb_run_get_name (first), ==, "wide tau");
  g_assert_false (snnwb_window_rename_run (win, first, "   "));
  g_assert_cmpstr (snnwb_run_get_name (first), ==, "wide tau");
  g_assert_nonnull (snnwb_window_get_message (win));

  activate ("train");
  iterate_until (iters_reached, GINT_TO_POINTER (2), 60, "a new run");
  g_assert_false (snnwb_window_delete_run (win, snnwb_window_get_run (win, n)));
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, n + 1);
  activate ("stop");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_STOPPED), 30, "the stop");
  g_assert_true (snnwb_window_delete_run (win, snnwb_window_get_run (win, n)));
  g_assert_true (snnwb_window_delete_run (win, last));
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, n - 1);
  g_assert_true (snnwb_window_get_run (win, 0) == first);
}

static void
test_export (void)
{
  g_autoptr (GError) error = NULL;
  static const char *const files[] = { "loss.png", "raster.svg", "memory.pdf", "gradients.png", "gradients.svg" };

  for (gsize i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (tmpdir, files[i], NULL);
      g_autofree char *name = g_strndup (files[i], strchr (files[i], '.') - files[i]);

      if (g_str_equal (name, "gradients"))
        g_assert_true (snnwb_gradient_view_export (snnwb_window_get_gradient_view (win), path, &error));
      else
        g_assert_true (snnwb_chart_view_export (snnwb_window_get_view (win, name), path, &error));
      g_assert_no_error (error);
      g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
    }
  {
    g_autofree char *csv = g_build_filename (tmpdir, "loss.csv", NULL);
    g_autofree char *text = NULL;

    g_assert_true (snnwb_chart_view_export_csv (snnwb_window_get_view (win, "loss"), csv, &error));
    g_assert_no_error (error);
    g_assert_true (g_file_get_contents (csv, &text, NULL, NULL));
    g_assert_true (strchr (text, '\n') != NULL);
  }
  {
    g_autofree char *csv = g_build_filename (tmpdir, "gradients.csv", NULL);
    g_autofree char *text = NULL;

    g_assert_true (snnwb_gradient_view_export_csv (snnwb_window_get_gradient_view (win), csv, &error));
    g_assert_no_error (error);
    g_assert_true (g_file_get_contents (csv, &text, NULL, NULL));
    g_assert_nonnull (strstr (text, "mean"));
  }
}

static void
test_save_reopen (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (tmpdir, "saved.experiment.json", NULL);
  SnnExperiment *e = snnwb_window_get_experiment (win);
  int n_layers = e->model->n_layers;

  e->train.T = 6;
  e->seed = 7;
  e->optim.lr = 0.05;
  e->train.method = SNN_METHOD_SLTT_K;
  e->train.K = 3;
  snnwb_window_experiment_changed (win);
  g_assert_true (snnwb_window_save_experiment_to (win, path, &error));
  g_assert_no_error (error);

  g_assert_true (snnwb_window_load_experiment (win, "mlp", &error));
  g_assert_true (snnwb_window_load_experiment (win, path, &error));
  g_assert_no_error (error);
  e = snnwb_window_get_experiment (win);
  g_assert_cmpint (e->train.T, ==, 6);
  g_assert_cmpuint (e->seed, ==, 7);
  g_assert_cmpfloat_with_epsilon (e->optim.lr, 0.05, 1e-9);
  g_assert_cmpint (e->train.method, ==, SNN_METHOD_SLTT_K);
  g_assert_cmpint (e->train.K, ==, 3);
  g_assert_cmpint (e->model->n_layers, ==, n_layers);
  g_assert_cmpint (e->train_subset, ==, 256);
}

static void
test_open_error_is_shown (void)
{
  g_autofree char *path = g_build_filename (tmpdir, "broken.json", NULL);

  g_assert_true (g_file_set_contents (path, "{ not json", -1, NULL));
  g_assert_false (snnwb_window_open_experiment (win, path));
  g_assert_nonnull (snnwb_window_get_message (win));
  g_assert_nonnull (strstr (snnwb_window_get_message (win), "broken.json"));
}

static void
test_invalid_network_disables_train (void)
{
  SnnwbLayerEditor *editor = snnwb_window_get_layer_editor (win);

  use_fast_experiment ();
  g_assert_true (enabled ("train"));
  /* A convolution needs [C, H, W] but gets the linear layer's [128]. */
  snnwb_layer_editor_select (editor, 0);
  snnwb_layer_editor_add_layer (editor, SNN_LAYER_CONV);
  g_assert_false (snnwb_layer_editor_is_valid (editor));
  g_assert_cmpint (snnwb_layer_editor_get_bad_layer (editor), ==, 1);
  g_assert_nonnull (snnwb_layer_editor_get_problem (editor));
  g_assert_false (enabled ("train"));
  g_assert_false (enabled ("step"));

  snnwb_layer_editor_remove_selected (editor);
  g_assert_true (snnwb_layer_editor_is_valid (editor));
  g_assert_true (enabled ("train"));
}

/* Starts a fast run and pauses it after n iterations. */
static void
train_and_pause (int n)
{
  activate ("train");
  iterate_until (iters_reached, GINT_TO_POINTER (n), 60, "the first iterations");
  activate ("pause");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_PAUSED), 30, "the pause");
}

static void
stop_run (void)
{
  activate ("stop");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_STOPPED), 30, "the stop");
}

static const SnnwbIterRecord *
last_iter (void)
{
  guint n;
  const SnnwbIterRecord *it = snnwb_run_get_iters (snnwb_window_get_run (win, snnwb_window_get_n_runs (win) - 1), &n);

  return &it[n - 1];
}

/* Pausing, switching the method and going on keeps the schedule: the
 * learning rate is the cosine schedule's at that iteration, not its base.
 * A new learning rate while paused becomes the schedule's base. */
static void
test_lr_schedule_kept (void)
{
  SnnExperiment *e;
  const SnnwbIterRecord *r;
  SnnOptimConfig cfg;
  long total;

  use_fast_experiment ();
  e = snnwb_window_get_experiment (win);
  e->epochs = 4;
  snnwb_window_experiment_changed (win);
  cfg = e->optim;
  g_assert_true (cfg.cosine);
  /* Single steps: the whole run is over in a blink. */
  for (int i = 1; i <= 24; i++)
    {
      activate ("step");
      iterate_until (iters_reached, GINT_TO_POINTER (i), 30, "one step");
    }
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_PAUSED), 30, "the pause");
  total = snnwb_run_get_total_iters (snnwb_window_get_run (win, snnwb_window_get_n_runs (win) - 1));
  snnwb_settings_panel_set_method (snnwb_window_get_settings_panel (win), SNN_METHOD_BPTT, 1);
  activate ("step");
  iterate_until (iters_reached, GINT_TO_POINTER (snnwb_window_get_reported_iters (win) + 1), 30, "one step");
  r = last_iter ();
  g_assert_cmpfloat (r->lr, <, cfg.lr * 0.9);
  g_assert_cmpfloat_with_epsilon (r->lr, snn_optim_lr_at (&cfg, r->iter, total), 1e-12);

  snnwb_settings_panel_set_lr (snnwb_window_get_settings_panel (win), 0.05);
  cfg.lr = 0.05;
  activate ("step");
  iterate_until (iters_reached, GINT_TO_POINTER (snnwb_window_get_reported_iters (win) + 1), 30, "one step");
  r = last_iter ();
  g_assert_cmpfloat_with_epsilon (r->lr, snn_optim_lr_at (&cfg, r->iter, total), 1e-12);
  stop_run ();
  use_fast_experiment ();
}

/* Presses a key on the window through the X server (XTEST), as a user
 * would; FALSE where that is not possible. */
static gboolean
press_key (const char *key)
{
  GdkSurface *surface = gtk_native_get_surface (GTK_NATIVE (win));
  g_autofree char *xdotool = g_find_program_in_path ("xdotool");
  g_autofree char *cmd = NULL;
  int status;

  if (!xdotool || !GDK_IS_X11_SURFACE (surface))
    return FALSE;
  cmd = g_strdup_printf ("%s windowfocus --sync %lu key %s", xdotool,
                         (unsigned long) gdk_x11_surface_get_xid (surface), key);
  if (!g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL) || !g_spawn_check_wait_status (status, NULL))
    return FALSE;
  iterate_for (0.3);
  return TRUE;
}

/* Space resumes even when the Method drop-down has focus (it used to open
 * the drop-down); in a text field it still types a space. */
static void
test_space_resumes (void)
{
  GtkWidget *method = snnwb_settings_panel_get_method_widget (snnwb_window_get_settings_panel (win));
  GtkWidget *entry = snnwb_window_get_neurons_entry (win);

  train_and_pause (5);
  g_action_group_activate_action (G_ACTION_GROUP (win), "show-panel", g_variant_new_string ("settings"));
  iterate_for (0.3);
  g_assert_true (gtk_widget_grab_focus (method));
  if (!press_key ("space"))
    {
      stop_run ();
      g_test_skip ("no X server with xdotool to press keys");
      return;
    }
  g_assert_cmpint (snnwb_window_get_run_state (win), ==, SNNWB_RUN_RUNNING);
  g_assert_false (snnwb_window_get_run_state (win) == SNNWB_RUN_PAUSED);
  press_key ("space");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_PAUSED), 30, "the pause by Space");

  snnwb_window_set_traced_neurons (win, "1,");
  g_assert_true (gtk_widget_grab_focus (entry));
  gtk_editable_set_position (GTK_EDITABLE (entry), -1);
  press_key ("space");
  g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (entry)), ==, "1, ");
  g_assert_cmpint (snnwb_window_get_run_state (win), ==, SNNWB_RUN_PAUSED);
  stop_run ();
  snnwb_window_set_traced_neurons (win, "0, 1, 2, 3");
}

/* Picking a preset after opening a file loads it, also the one that was
 * picked before the file. */
static void
test_same_preset_after_file (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (tmpdir, "other.experiment.json", NULL);
  GtkDropDown *dd = snnwb_window_get_preset_drop_down (win);
  GListModel *model = gtk_drop_down_get_model (dd);
  guint index = GTK_INVALID_LIST_POSITION;

  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    if (g_str_equal (gtk_string_list_get_string (GTK_STRING_LIST (model), i), "temporal-mlp"))
      index = i;
  g_assert_cmpuint (index, !=, GTK_INVALID_LIST_POSITION);
  gtk_drop_down_set_selected (dd, index);
  g_assert_cmpstr (snnwb_window_get_experiment (win)->name, ==, "temporal-mlp");
  g_free (snnwb_window_get_experiment (win)->name);
  snnwb_window_get_experiment (win)->name = g_strdup ("from-a-file");
  g_assert_true (snnwb_window_save_experiment_to (win, path, &error));
  g_assert_true (snnwb_window_load_experiment (win, path, &error));
  g_assert_cmpstr (snnwb_window_get_experiment (win)->name, ==, "from-a-file");

  gtk_drop_down_set_selected (dd, index);
  g_assert_cmpstr (snnwb_window_get_experiment (win)->name, ==, "temporal-mlp");
  use_fast_experiment ();
}

/* A paused run keeps the network it started with, so the editor refuses
 * edits while a run is active, and says why. */
static void
test_network_locked_while_active (void)
{
  GtkWidget *editor = GTK_WIDGET (snnwb_window_get_layer_editor (win));

  g_assert_true (gtk_widget_is_sensitive (editor));
  g_assert_null (snnwb_window_get_network_lock (win));
  train_and_pause (3);
  g_assert_false (gtk_widget_is_sensitive (editor));
  g_assert_nonnull (snnwb_window_get_network_lock (win));
  g_assert_nonnull (strstr (snnwb_window_get_network_lock (win), "Stop it"));
  stop_run ();
  g_assert_true (gtk_widget_is_sensitive (editor));
  g_assert_null (snnwb_window_get_network_lock (win));
}

/* Random bytes are refused when loaded, with the file named; no failed
 * run is left behind and the message goes when the next run starts. */
static void
test_bad_weights (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (tmpdir, "random.npz", NULL);
  guint8 bytes[4096];
  guint runs = snnwb_window_get_n_runs (win);

  for (gsize i = 0; i < sizeof bytes; i++)
    bytes[i] = (guint8) g_random_int ();
  g_assert_true (g_file_set_contents (path, (char *) bytes, sizeof bytes, NULL));
  g_assert_false (snnwb_window_load_weights (win, path, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "random.npz"));
  g_assert_nonnull (snnwb_window_get_message (win));
  g_assert_nonnull (strstr (snnwb_window_get_message (win), "random.npz"));
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, runs);

  activate ("train");
  iterate_until (iters_reached, GINT_TO_POINTER (2), 60, "a run after bad weights");
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, runs + 1);
  g_assert_null (snnwb_window_get_message (win));
  stop_run ();
}

/* Entries of the neuron list that are no neuron of the layer are marked. */
static void
test_invalid_neurons_marked (void)
{
  GtkWidget *entry = snnwb_window_get_neurons_entry (win);
  const char *tip;

  snnwb_window_set_traced_neurons (win, "abc, 999999, -3, 1");
  g_assert_true (gtk_widget_has_css_class (entry, "error"));
  tip = gtk_widget_get_tooltip_text (entry);
  g_assert_nonnull (tip);
  g_assert_nonnull (strstr (tip, "abc"));
  g_assert_nonnull (strstr (tip, "999999"));
  g_assert_nonnull (strstr (tip, "-3"));
  snnwb_window_set_traced_neurons (win, "0, 1, 2, 3");
  g_assert_false (gtk_widget_has_css_class (entry, "error"));
}

static gboolean
all_saved (gpointer data)
{
  for (guint i = 0; i < snnwb_window_get_n_runs (win); i++)
    if (!snnwb_run_is_saved (snnwb_window_get_run (win, i)))
      return FALSE;
  return TRUE;
}

static gboolean
is_null (gpointer data)
{
  return *(gpointer *) data == NULL;
}

/* Runs are kept in the session folder as they go; another window opening
 * the folder gets them back: settings, curves, method history, weights. */
static void
test_session_save_restore (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (tmpdir, "session", NULL);
  SnnwbWindow *other;
  guint n = snnwb_window_get_n_runs (win), n_iters, m_iters, n_hist, m_hist;
  SnnwbRun *a, *b = NULL;
  const SnnwbIterRecord *ia, *ib;
  const SnnwbMethodChange *ha, *hb;

  g_assert_cmpuint (n, >, 1);
  g_assert_false (snnwb_window_is_session_saved (win));
  g_assert_true (snnwb_window_save_session_to (win, dir, &error));
  g_assert_no_error (error);
  g_assert_true (snnwb_window_is_session_saved (win));
  /* A run trained after the save goes into the folder as it goes. */
  train_and_pause (3);
  snnwb_settings_panel_set_method (snnwb_window_get_settings_panel (win), SNN_METHOD_BPTT, 1);
  activate ("step");
  iterate_until (iters_reached, GINT_TO_POINTER (snnwb_window_get_reported_iters (win) + 1), 30, "one step");
  stop_run ();
  n = snnwb_window_get_n_runs (win);
  iterate_until (all_saved, NULL, 30, "the runs written");

  other = snnwb_window_new (NULL);
  g_assert_true (snnwb_window_open_session (other, dir, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (snnwb_window_get_n_runs (other), ==, n);
  for (guint i = 0; i < n; i++)
    {
      a = snnwb_window_get_run (win, i);
      b = snnwb_window_get_run (other, i);
      g_assert_cmpstr (snnwb_run_get_name (a), ==, snnwb_run_get_name (b));
      g_assert_cmpint (snnwb_run_get_experiment (a)->train.T, ==, snnwb_run_get_experiment (b)->train.T);
      ia = snnwb_run_get_iters (a, &n_iters);
      ib = snnwb_run_get_iters (b, &m_iters);
      g_assert_cmpuint (n_iters, ==, m_iters);
      g_assert_true (n_iters == 0 || (ia[n_iters - 1].loss == ib[n_iters - 1].loss
                                      && ia[n_iters - 1].arena_bytes == ib[n_iters - 1].arena_bytes));
      ha = snnwb_run_get_method_history (a, &n_hist);
      hb = snnwb_run_get_method_history (b, &m_hist);
      g_assert_cmpuint (n_hist, ==, m_hist);
      g_assert_cmpstr (ha[n_hist - 1].label, ==, hb[m_hist - 1].label);
      g_assert_cmpint (ha[n_hist - 1].iter, ==, hb[m_hist - 1].iter);
      g_assert_cmpint (snnwb_run_get_state (b), >=, SNNWB_RUN_STOPPED);
    }
  /* The last run was stopped, so its weights were written. */
  g_assert_nonnull (snnwb_run_get_weights_path (b));
  g_assert_true (g_file_test (snnwb_run_get_weights_path (b), G_FILE_TEST_IS_REGULAR));
  g_assert_cmpuint (snnwb_run_get_method_history (b, &m_hist)[m_hist - 1].method, ==, SNN_METHOD_BPTT);
  snnwb_window_set_ask_before_close (other, FALSE);
  gtk_window_destroy (GTK_WINDOW (other));
}

/* Closing with runs that were never saved asks first; Cancel keeps the
 * window, Delete Runs closes it and removes the scratch folder. A saved
 * session closes without a question. */
/* A window of its own on the synthetic temporal set, 64 / 32 samples;
 * *w is cleared when the window goes. */
static void
open_small_window (SnnwbWindow **w)
{
  *w = snnwb_window_new (NULL);
  g_object_add_weak_pointer (G_OBJECT (*w), (gpointer *) w);
  gtk_window_present (GTK_WINDOW (*w));
  g_assert_true (snnwb_window_load_experiment (*w, "temporal-mlp", NULL));
  snnwb_window_get_experiment (*w)->dataset = SNN_DATASET_SYNTHETIC;
  snnwb_window_get_experiment (*w)->train_subset = 64;
  snnwb_window_get_experiment (*w)->test_subset = 32;
  snnwb_window_experiment_changed (*w);
}

static void
test_quit_prompt (void)
{
  SnnwbWindow *w;
  GtkWidget *prompt;
  g_autofree char *scratch = NULL;

  open_small_window (&w);
  g_action_group_activate_action (G_ACTION_GROUP (w), "step", NULL);
  while (snnwb_window_get_reported_iters (w) < 1)
    g_main_context_iteration (NULL, TRUE);
  iterate_for (0.5);
  scratch = g_strdup (snnwb_window_get_session_dir (w));
  g_assert_true (g_file_test (scratch, G_FILE_TEST_IS_DIR));

  gtk_window_close (GTK_WINDOW (w));
  iterate_for (0.1);
  g_assert_nonnull (w);
  prompt = snnwb_window_get_quit_prompt (w);
  g_assert_nonnull (prompt);
  gtk_dialog_response (GTK_DIALOG (prompt), GTK_RESPONSE_CANCEL);
  iterate_for (0.1);
  g_assert_nonnull (w);
  g_assert_null (snnwb_window_get_quit_prompt (w));

  gtk_window_close (GTK_WINDOW (w));
  iterate_for (0.1);
  gtk_dialog_response (GTK_DIALOG (snnwb_window_get_quit_prompt (w)), GTK_RESPONSE_REJECT);
  iterate_until (is_null, &w, 30, "the window to close");
  g_assert_false (g_file_test (scratch, G_FILE_TEST_EXISTS));

  /* A window whose session was saved closes without a question. */
  open_small_window (&w);
  g_free (scratch);
  scratch = g_build_filename (tmpdir, "kept-session", NULL);
  g_assert_true (snnwb_window_save_session_to (w, scratch, NULL));
  g_action_group_activate_action (G_ACTION_GROUP (w), "step", NULL);
  while (snnwb_window_get_reported_iters (w) < 1)
    g_main_context_iteration (NULL, TRUE);
  gtk_window_close (GTK_WINDOW (w));
  iterate_until (is_null, &w, 30, "the window to close without a question");
  {
    g_autofree char *weights = g_build_filename (scratch, "run-001", "weights.npz", NULL);

    g_assert_true (g_file_test (weights, G_FILE_TEST_IS_REGULAR));
  }
}

/* The final weights an uninterrupted run of e ends with. */
static SnnNpz *
uninterrupted_weights (const SnnExperiment *e, double *final_test_acc)
{
  g_autoptr (GError) error = NULL;
  SnnTrainer *tr = snn_trainer_new (e, &error);
  SnnIterInfo info;
  SnnNpz *npz;
  int n;

  g_assert_no_error (error);
  while (!snn_trainer_finished (tr))
    {
      g_assert_true (snn_trainer_step (tr, &info, &error));
      g_assert_no_error (error);
    }
  *final_test_acc = snn_trainer_history (tr, &n)[n - 1].test_acc;
  npz = snn_net_to_npz (snn_trainer_net (tr), FALSE);
  snn_trainer_free (tr);
  return npz;
}

static void
assert_same_arrays (const SnnNpz *a, const SnnNpz *b)
{
  g_assert_cmpuint (snn_npz_count (a), ==, snn_npz_count (b));
  for (guint i = 0; i < snn_npz_count (a); i++)
    {
      SnnArray *x = snn_npz_get (a, snn_npz_name (a, i));
      SnnArray *y = snn_npz_get (b, snn_npz_name (a, i));

      g_assert_nonnull (y);
      g_assert_cmpint (x->dtype, ==, y->dtype);
      g_assert_cmpint (snn_array_numel (x), ==, snn_array_numel (y));
      g_assert_cmpmem (x->data, snn_array_numel (x) * snn_dtype_size (x->dtype), y->data,
                       snn_array_numel (y) * snn_dtype_size (y->dtype));
    }
}

/* As a workbench killed after the first epoch's checkpoint leaves the
 * run's folder: the curves recorded beyond it, the checkpoint behind. */
static void
put_first_epoch_checkpoint (const SnnExperiment *e, const char *run_dir)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tmp = g_build_filename (tmpdir, "epoch-1", NULL);
  g_autofree char *from = g_build_filename (tmp, "checkpoint.npz", NULL);
  g_autofree char *to = g_build_filename (run_dir, "checkpoint.npz", NULL);
  SnnTrainer *tr = snn_trainer_new (e, &error);
  SnnIterInfo info = { 0 };

  g_assert_no_error (error);
  while (!info.epoch_done)
    g_assert_true (snn_trainer_step (tr, &info, &error));
  g_assert_cmpint (g_mkdir_with_parents (tmp, 0755), ==, 0);
  g_assert_true (snn_trainer_save_run (tr, tmp, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_rename (from, to), ==, 0);
  snn_trainer_free (tr);
}

/* A run stopped mid-epoch (after a what-if tau while paused), its window
 * closed, continues in a new window from the session folder and ends with
 * the weights of a run that never stopped, bit for bit. killed: the folder
 * is left as a kill after the first epoch would leave it. */
static void
continue_after_restart (gboolean killed)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (tmpdir, killed ? "killed-session" : "resume-session", NULL);
  g_autofree char *weights = NULL;
  SnnExperiment *e;
  SnnwbWindow *main_win = win, *w;
  SnnwbRun *run;
  SnnNpz *expected, *got;
  const SnnwbEpochRecord *ep;
  const SnnwbIterRecord *it;
  double expected_acc;
  guint n_ep, n_it;
  long stopped_at;

  win = w = snnwb_window_new (NULL);
  g_object_add_weak_pointer (G_OBJECT (w), (gpointer *) &w);
  gtk_window_present (GTK_WINDOW (win));
  g_assert_true (snnwb_window_save_session_to (win, dir, &error));
  g_assert_no_error (error);
  use_fast_experiment ();
  snnwb_window_get_experiment (win)->train_subset = 64;
  snnwb_window_get_experiment (win)->test_subset = 32;
  snnwb_window_get_experiment (win)->epochs = 3;   /* 4 iterations each */
  snnwb_window_experiment_changed (win);
  e = snn_experiment_copy (snnwb_window_get_experiment (win));
  snnwb_window_set_pace (win, 10);
  activate ("train");
  iterate_until (iters_reached, GINT_TO_POINTER (6), 60, "6 iterations");
  activate ("pause");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_PAUSED), 30, "the pause");
  snnwb_gradient_view_set_tau (snnwb_window_get_gradient_view (win), 1.5);
  wait_for_tau (1.5);
  activate ("stop");
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_STOPPED), 30, "the stop");
  stopped_at = snnwb_window_get_reported_iters (win);
  g_assert_cmpint (stopped_at, <, 12);
  run = snnwb_window_get_run (win, 0);
  g_assert_true (snnwb_window_can_continue_run (win, run));
  snnwb_window_set_ask_before_close (win, FALSE);
  gtk_window_close (GTK_WINDOW (win));
  iterate_until (is_null, &w, 30, "the window to close");

  win = w = snnwb_window_new (NULL);
  g_object_add_weak_pointer (G_OBJECT (w), (gpointer *) &w);
  gtk_window_present (GTK_WINDOW (win));
  g_assert_true (snnwb_window_open_session (win, dir, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, 1);
  run = snnwb_window_get_run (win, 0);
  g_assert_cmpint (snnwb_run_get_state (run), ==, SNNWB_RUN_STOPPED);
  snnwb_run_get_iters (run, &n_it);
  g_assert_cmpint (n_it, ==, stopped_at);
  if (killed)
    put_first_epoch_checkpoint (e, snnwb_run_get_folder (run));
  snnwb_window_set_pace (win, 0);
  g_assert_true (snnwb_window_continue_run (win, run, &error));
  g_assert_no_error (error);
  iterate_until (state_is, GINT_TO_POINTER (SNNWB_RUN_FINISHED), 60, "the continued run to finish");
  iterate_until (all_saved, NULL, 30, "the run written");
  /* A finished run has nothing to continue. */
  g_assert_false (snnwb_window_can_continue_run (win, run));
  g_assert_false (snnwb_window_continue_run (win, run, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* The curves go on where they stopped: one record per iteration. */
  it = snnwb_run_get_iters (run, &n_it);
  g_assert_cmpuint (n_it, ==, 12);
  for (guint i = 0; i < n_it; i++)
    g_assert_cmpint (it[i].iter, ==, i);
  ep = snnwb_run_get_epochs (run, &n_ep);
  g_assert_cmpuint (n_ep, ==, 3);

  expected = uninterrupted_weights (e, &expected_acc);
  weights = g_build_filename (snnwb_run_get_folder (run), "weights.npz", NULL);
  got = snn_npz_load (weights, &error);
  g_assert_no_error (error);
  assert_same_arrays (expected, got);
  g_assert_cmpfloat (ep[n_ep - 1].test_acc, ==, expected_acc);
  snn_npz_free (expected);
  snn_npz_free (got);
  snn_experiment_free (e);
  /* The folder says the same once read again. */
  {
    g_autoptr (GPtrArray) runs = snnwb_store_load_session (dir, &error);

    g_assert_no_error (error);
    snnwb_run_get_iters (runs->pdata[0], &n_it);
    g_assert_cmpuint (n_it, ==, 12);
    g_assert_cmpint (snnwb_run_get_state (runs->pdata[0]), ==, SNNWB_RUN_FINISHED);
  }

  snnwb_window_set_ask_before_close (win, FALSE);
  gtk_window_close (GTK_WINDOW (win));
  iterate_until (is_null, &w, 30, "the window to close");
  win = main_win;
}

static void
test_continue_after_restart (void)
{
  continue_after_restart (FALSE);
}

static void
test_continue_after_kill (void)
{
  continue_after_restart (TRUE);
}

/* A pace of a few iterations a second holds training to it, and every
 * iteration reaches the views; full speed lets it go. */
static void
test_pacing (void)
{
  long before, paced;
  guint probes;

  use_fast_experiment ();
  snnwb_window_set_pace (win, 5);
  activate ("train");
  iterate_until (iters_reached, GINT_TO_POINTER (1), 60, "the first iteration");
  before = snnwb_window_get_reported_iters (win);
  probes = snnwb_window_get_view_data_count (win, "raster");
  iterate_for (2.0);
  paced = snnwb_window_get_reported_iters (win) - before;
  g_assert_cmpint (paced, >=, 5);
  g_assert_cmpint (paced, <=, 12);
  /* The raster got (about) every one of them. */
  g_assert_cmpuint (snnwb_window_get_view_data_count (win, "raster") - probes, >=, paced - 1);

  snnwb_window_set_pace (win, 0);
  before = snnwb_window_get_reported_iters (win);
  iterate_for (1.0);
  g_assert_cmpint (snnwb_window_get_reported_iters (win) - before, >, 3 * paced);
  stop_run ();
}

static long
held_of (guint index)
{
  return (long) snnwb_run_get_peak_held_bytes (snnwb_window_get_run (win, index));
}

static double
temporal_share (void)
{
  SnnwbGradient *g = shown_gradient ();
  double spatial = 0, temporal = 0;

  for (int t = 0; t < g->T; t++)
    {
      spatial += g->lif[0].spatial_norm[t];
      temporal += g->lif[0].temporal_norm[t];
    }
  return temporal / (spatial + temporal);
}

/* The walk-through's steps set the window up for what they say: four runs
 * where BPTT's memory doubles from T 4 to 8 and SLTT's does not, then the
 * temporal part of the gradient growing with tau. */
static void
test_walkthrough (void)
{
  SnnwbWalkthrough *w = SNNWB_WALKTHROUGH (snnwb_window_get_walkthrough (win));
  guint first;
  double share_low;

  use_fast_experiment ();
  g_assert_cmpuint (snnwb_walkthrough_get_n_steps (w), ==, 6);
  snnwb_walkthrough_go_to (w, 0);
  g_assert_cmpstr (snnwb_walkthrough_get_title (w), ==, "Watch a network learn");
  snnwb_walkthrough_set_iterations (w, 4);
  /* The class watches the first run at 20 iterations a second, whatever
   * the machine's speed. */
  g_assert_true (snnwb_walkthrough_set_up (w));
  while (snnwb_walkthrough_is_busy (w))
    iterate_for (0.1);
  g_assert_cmpfloat (snnwb_window_get_pace (win), ==, 20);

  snnwb_walkthrough_go_to (w, 2);
  first = snnwb_window_get_n_runs (win);
  g_assert_true (snnwb_walkthrough_set_up (w));
  g_assert_true (snnwb_walkthrough_is_busy (w));
  g_assert_false (snnwb_walkthrough_set_up (w));
  while (snnwb_walkthrough_is_busy (w))
    iterate_for (0.1);
  g_assert_cmpuint (snnwb_window_get_n_runs (win), ==, first + 4);
  g_assert_cmpstr (snnwb_run_get_method_label (snnwb_window_get_run (win, first)), ==, "BPTT (stored)");
  g_assert_cmpstr (snnwb_run_get_method_label (snnwb_window_get_run (win, first + 1)), ==, "SLTT");
  g_assert_cmpint (snnwb_run_get_experiment (snnwb_window_get_run (win, first + 2))->train.T, ==, 8);
  g_assert_cmpint (held_of (first + 2), >, held_of (first) * 3 / 2);
  g_assert_cmpint (held_of (first + 3), ==, held_of (first + 1));
  g_assert_cmpuint (snnwb_chart_view_get_n_runs (snnwb_window_get_view (win, "memory")), ==, 4);

  snnwb_walkthrough_go_to (w, 3);
  g_assert_true (snnwb_walkthrough_set_up (w));
  while (snnwb_walkthrough_is_busy (w))
    iterate_for (0.1);
  g_assert_cmpint (snnwb_window_get_run_state (win), ==, SNNWB_RUN_PAUSED);
  g_assert_cmpfloat_with_epsilon (shown_gradient ()->tau_override, 1.1, 1e-4);
  share_low = temporal_share ();
  snnwb_walkthrough_go_to (w, 4);
  g_assert_true (snnwb_walkthrough_set_up (w));
  while (snnwb_walkthrough_is_busy (w))
    iterate_for (0.1);
  g_assert_cmpfloat_with_epsilon (shown_gradient ()->tau_override, 4, 1e-4);
  g_assert_cmpfloat (temporal_share (), >, share_low);
  stop_run ();
  snnwb_window_get_experiment (win)->train.T = 8;
  snnwb_window_experiment_changed (win);
}

/* Presentation mode makes every text larger, and back. */
static void
test_presentation (void)
{
  GtkWidget *status = gtk_label_new ("Spike raster");
  int before, during, after;

  /* A label of the window, as every other. */
  gtk_box_append (GTK_BOX (snnwb_window_get_walkthrough (win)), status);
  iterate_for (0.2);
  gtk_widget_measure (status, GTK_ORIENTATION_VERTICAL, -1, &before, NULL, NULL, NULL);
  g_action_group_activate_action (G_ACTION_GROUP (win), "presentation", NULL);
  iterate_for (0.3);
  gtk_widget_measure (status, GTK_ORIENTATION_VERTICAL, -1, &during, NULL, NULL, NULL);
  g_assert_true (gtk_widget_has_css_class (GTK_WIDGET (win), "presentation"));
  g_action_group_activate_action (G_ACTION_GROUP (win), "presentation", NULL);
  iterate_for (0.3);
  gtk_widget_measure (status, GTK_ORIENTATION_VERTICAL, -1, &after, NULL, NULL, NULL);
  g_assert_cmpint (during, >, before * 5 / 4);
  g_assert_cmpint (after, ==, before);
  gtk_box_remove (GTK_BOX (snnwb_window_get_walkthrough (win)), status);
}

/* The widget's bounds in the window's coordinates. */
static graphene_rect_t
bounds_in (GtkWidget *widget, GtkWidget *target)
{
  graphene_rect_t r;

  g_assert_true (gtk_widget_compute_bounds (widget, target, &r));
  return r;
}

static void
assert_inside (const char *what, graphene_rect_t r, graphene_rect_t area)
{
  if (g_test_verbose ())
    g_printerr ("%s: %.0f,%.0f %.0fx%.0f in %.0f,%.0f %.0fx%.0f\n", what, r.origin.x, r.origin.y, r.size.width,
                r.size.height, area.origin.x, area.origin.y, area.size.width, area.size.height);
  if (r.origin.x < area.origin.x - 0.5 || r.origin.y < area.origin.y - 0.5
      || r.origin.x + r.size.width > area.origin.x + area.size.width + 0.5
      || r.origin.y + r.size.height > area.origin.y + area.size.height + 0.5)
    g_error ("%s (%.0f,%.0f %.0fx%.0f) is clipped by %.0f,%.0f %.0fx%.0f", what, r.origin.x, r.origin.y,
             r.size.width, r.size.height, area.origin.x, area.origin.y, area.size.width, area.size.height);
}

/* The view's scrolled window, whose content it is. */
static GtkScrolledWindow *
scroller_of (GtkWidget *w)
{
  GtkWidget *s = gtk_widget_get_ancestor (w, GTK_TYPE_SCROLLED_WINDOW);

  g_assert_nonnull (s);
  return GTK_SCROLLED_WINDOW (s);
}

/* Each view is as wide as the window allows and lies in its scrolled area
 * (reachable by scrolling, never cut by a parent); the run list and the
 * side panel are on screen. */
static void
check_layout (SnnwbWindow *w, int width, int height)
{
  static const char *const views[] = { "raster", "traces", "epsilon", "loss", "accuracy", "memory", "time" };
  GtkWidget *root = GTK_WIDGET (w);
  graphene_rect_t window = GRAPHENE_RECT_INIT (0, 0, gtk_widget_get_width (root), gtk_widget_get_height (root));
  GtkWidget *runs, *panel, *content;
  int min_w, min_h;

  gtk_widget_measure (root, GTK_ORIENTATION_HORIZONTAL, -1, &min_w, NULL, NULL, NULL);
  gtk_widget_measure (root, GTK_ORIENTATION_VERTICAL, width, &min_h, NULL, NULL, NULL);
  g_assert_cmpint (min_w, <=, width);
  g_assert_cmpint (min_h, <=, height);
  /* Client-side decorations take a few pixels of the size asked. */
  g_assert_cmpint (gtk_widget_get_width (root), >=, width - 24);
  g_assert_cmpint (gtk_widget_get_height (root), >=, height - 24);
  for (gsize i = 0; i <= G_N_ELEMENTS (views); i++)
    {
      GtkWidget *view = i < G_N_ELEMENTS (views) ? GTK_WIDGET (snnwb_window_get_view (w, views[i]))
                                                 : GTK_WIDGET (snnwb_window_get_gradient_view (w));
      GtkScrolledWindow *sw = scroller_of (view);
      GtkWidget *child;

      /* The gradient view scrolls sideways inside the views' area. */
      if (i == G_N_ELEMENTS (views))
        {
          GtkWidget *box = gtk_widget_get_parent (GTK_WIDGET (sw));

          assert_inside ("gradient scroller", bounds_in (GTK_WIDGET (sw), box), bounds_in (box, box));
          sw = scroller_of (box);
        }
      child = gtk_scrolled_window_get_child (sw);
      graphene_rect_t area;

      if (GTK_IS_VIEWPORT (child))
        child = gtk_viewport_get_child (GTK_VIEWPORT (child));
      area = bounds_in (child, child);

      assert_inside (i < G_N_ELEMENTS (views) ? views[i] : "gradients",
                     bounds_in (i < G_N_ELEMENTS (views) ? view : gtk_widget_get_parent (gtk_widget_get_parent (view)), child),
                     area);
      assert_inside ("views area", bounds_in (GTK_WIDGET (sw), root), window);
      g_assert_cmpint (gtk_widget_get_width (view), >=, 150);
      g_assert_cmpint (gtk_widget_get_height (view), >=, 100);
    }
  runs = gtk_widget_get_ancestor (GTK_WIDGET (snnwb_window_get_run_list (w)), GTK_TYPE_FRAME);
  assert_inside ("run list", bounds_in (runs, root), window);
  g_assert_cmpint (gtk_widget_get_height (runs), >=, 80);
  panel = GTK_WIDGET (snnwb_window_get_layer_editor (w));
  content = gtk_widget_get_parent (gtk_widget_get_parent (GTK_WIDGET (scroller_of (panel))));
  assert_inside ("side panel", bounds_in (content, root), window);
  /* It scrolls down, never sideways. */
  g_assert_cmpint (gtk_widget_get_width (panel), <=, gtk_widget_get_width (gtk_widget_get_parent (panel)));
}

static void
test_layout (void)
{
  static const int sizes[][2] = { { 1024, 700 }, { 1280, 720 }, { 1600, 1000 } };

  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      SnnwbWindow *w = snnwb_window_new (NULL);

      gtk_window_set_default_size (GTK_WINDOW (w), sizes[i][0], sizes[i][1]);
      gtk_window_present (GTK_WINDOW (w));
      iterate_for (0.5);
      check_layout (w, sizes[i][0], sizes[i][1]);
      g_action_group_activate_action (G_ACTION_GROUP (w), "show-panel", g_variant_new_string ("class"));
      iterate_for (0.2);
      assert_inside ("walk-through", bounds_in (snnwb_window_get_walkthrough (w), GTK_WIDGET (w)),
                     GRAPHENE_RECT_INIT (0, 0, sizes[i][0], sizes[i][1]));
      gtk_window_destroy (GTK_WINDOW (w));
      iterate_for (0.1);
    }
}

static void
test_close (void)
{
  gtk_window_destroy (GTK_WINDOW (win));
  iterate_for (0.1);
}

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *p = g_build_filename (path, name, NULL);

      if (g_file_test (p, G_FILE_TEST_IS_DIR) && !g_file_test (p, G_FILE_TEST_IS_SYMLINK))
        remove_tree (p);
      else
        g_unlink (p);
    }
  g_rmdir (path);
}

int
main (int argc, char **argv)
{
  int status;

  g_setenv ("GTK_A11Y", "none", TRUE);
  g_setenv ("GSK_RENDERER", "cairo", FALSE);
  gtk_test_init (&argc, &argv, NULL);
  snnwb_application_load_css ();
  tmpdir = g_dir_make_tmp ("snnwb-gui-XXXXXX", NULL);
  {
    /* Scratch sessions go under the test's own folder. */
    g_autofree char *data = g_build_filename (tmpdir, "data", NULL);

    g_setenv ("XDG_DATA_HOME", data, TRUE);
  }

  g_test_add_func ("/gui/open", test_open);
  g_test_add_func ("/gui/train-pause-method-stop", test_train_pause_method_stop);
  g_test_add_func ("/gui/views-received-data", test_views_received_data);
  g_test_add_func ("/gui/pictures-settle", test_pictures_settle);
  g_test_add_func ("/gui/compare-runs", test_compare_runs);
  g_test_add_func ("/gui/gradients-live", test_gradients_live);
  g_test_add_func ("/gui/tau-what-if", test_tau_what_if);
  g_test_add_func ("/gui/step-from-idle", test_step_from_idle);
  g_test_add_func ("/gui/rename-delete", test_rename_delete);
  g_test_add_func ("/gui/export", test_export);
  g_test_add_func ("/gui/save-reopen", test_save_reopen);
  g_test_add_func ("/gui/open-error", test_open_error_is_shown);
  g_test_add_func ("/gui/invalid-network", test_invalid_network_disables_train);
  g_test_add_func ("/gui/bug-lr-schedule-kept", test_lr_schedule_kept);
  g_test_add_func ("/gui/bug-space-resumes", test_space_resumes);
  g_test_add_func ("/gui/bug-same-preset-after-file", test_same_preset_after_file);
  g_test_add_func ("/gui/bug-network-locked-while-active", test_network_locked_while_active);
  g_test_add_func ("/gui/bug-bad-weights", test_bad_weights);
  g_test_add_func ("/gui/bug-invalid-neurons-marked", test_invalid_neurons_marked);
  g_test_add_func ("/gui/pacing", test_pacing);
  g_test_add_func ("/gui/presentation", test_presentation);
  g_test_add_func ("/gui/walkthrough", test_walkthrough);
  g_test_add_func ("/gui/session-save-restore", test_session_save_restore);
  g_test_add_func ("/gui/quit-prompt", test_quit_prompt);
  g_test_add_func ("/gui/continue-after-restart", test_continue_after_restart);
  g_test_add_func ("/gui/continue-after-kill", test_continue_after_kill);
  /* Other windows take the keyboard focus away: keys are pressed before. */
  g_test_add_func ("/gui/layout", test_layout);
  g_test_add_func ("/gui/close", test_close);
  status = g_test_run ();

  remove_tree (tmpdir);
  g_free (tmpdir);
  return status;
}
