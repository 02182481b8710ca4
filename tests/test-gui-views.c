/* The views as a reader meets them: hover read-outs with the values under
 * the pointer, legends that name every run and its methods even in small
 * cards, the editor's memory table, and the raster under the pointer
 * (a click traces the neuron). Runs under Xvfb. */
#include <gtk/gtk.h>
#include <math.h>
#include <string.h>
#include "net.h"
#include "snnwb-chart-view.h"
#include "snnwb-gradient-view.h"
#include "snnwb-layer-editor.h"
#include "snnwb-window.h"
#include "test-gui-util.h"

static gboolean
allocated (gpointer widget)
{
  return gtk_widget_get_width (widget) > 0 && gtk_widget_get_height (widget) > 0;
}

/* Three runs of 60 iterations with known figures: iteration i (0-based)
 * of run r holds (i + 1) MiB for backward and 100 (r + 1) MiB of arena,
 * takes r + 1 ms forward; run 2 switches from SLTT to BPTT (stored) after
 * iteration 29. */
static GPtrArray *
make_runs (int n_runs)
{
  g_autoptr (GError) error = NULL;
  SnnExperiment *e = snn_experiment_load ("temporal-mlp", &error);
  GPtrArray *runs = g_ptr_array_new_with_free_func (g_object_unref);

  g_assert_no_error (error);
  e->train.method = SNN_METHOD_SLTT;
  for (int r = 0; r < n_runs; r++)
    {
      SnnwbRun *run = snnwb_run_new (e, r + 1);

      for (int i = 0; i < 60; i++)
        {
          SnnwbIterRecord rec = {
            .iter = i, .loss = 2.0 - i * 0.01 - r * 0.1, .acc = 0.5, .forward_ms = r + 1, .backward_ms = 2 * (r + 1),
            .held_bytes = (i + 1) * 1048576.0, .arena_bytes = 100.0 * (r + 1) * 1048576.0, .wall_s = i * 0.01,
          };

          if (r == 1 && i == 30)
            snnwb_run_set_method (run, SNN_METHOD_BPTT, 1, FALSE);
          snnwb_run_append_iter (run, &rec);
        }
      g_ptr_array_add (runs, run);
    }
  snn_experiment_free (e);
  return runs;
}

typedef struct {
  GtkWidget *window;
  SnnwbChartView *views[4];     /* loss, accuracy, memory, time */
} Cards;

/* The four curve views at the size of a card at 1024x700. */
static void
cards_setup (Cards *c, GPtrArray *runs)
{
  GtkWidget *grid = gtk_grid_new ();

  c->window = gtk_window_new ();
  gtk_window_set_resizable (GTK_WINDOW (c->window), FALSE);
  for (int k = 0; k < 4; k++)
    {
      GtkWidget *v = snnwb_chart_view_new (SNNWB_CHART_LOSS + k);

      gtk_widget_set_size_request (v, 230, 160);
      gtk_grid_attach (GTK_GRID (grid), v, k, 0, 1, 1);
      c->views[k] = SNNWB_CHART_VIEW (v);
      snnwb_chart_view_set_runs (c->views[k], runs);
      snnwb_chart_view_runs_updated (c->views[k]);
    }
  gtk_window_set_child (GTK_WINDOW (c->window), grid);
  gtk_window_present (GTK_WINDOW (c->window));
  for (int k = 0; k < 4; k++)
    iterate_until (allocated, c->views[k], 10, "the views' allocation");
}

static void
test_overlay_legends (void)
{
  for (int n_runs = 2; n_runs <= 3; n_runs++)
    {
      g_autoptr (GPtrArray) runs = make_runs (n_runs);
      Cards c;

      cards_setup (&c, runs);
      for (int k = 0; k < 4; k++)
        {
          g_auto (GStrv) legend = snnwb_chart_view_dup_legend (c.views[k]);
          g_autofree char *joined = g_strjoinv (" | ", legend);

          g_test_message ("%s, %d runs: %s", snnwb_chart_view_get_name (c.views[k]), n_runs, joined);
          /* Every run with its methods; solid and dashed named where both are drawn. */
          g_assert_cmpuint (g_strv_length (legend), ==, n_runs + (k == 0 ? 0 : 2));
          g_assert_cmpstr (legend[0], ==, "Run 1 · SLTT");
          /* SNNWB_VIEWS_PREVIEW=dir: the cards as PNG, for a look by eye. */
          if (g_getenv ("SNNWB_VIEWS_PREVIEW"))
            {
              g_autofree char *name = g_strdup_printf ("%s-%d-runs.png", snnwb_chart_view_get_name (c.views[k]), n_runs);
              g_autofree char *file = g_build_filename (g_getenv ("SNNWB_VIEWS_PREVIEW"), name, NULL);

              g_assert_true (snnwb_chart_view_export (c.views[k], file, NULL));
            }
          g_assert_cmpstr (legend[1], ==, "Run 2 · SLTT → BPTT (stored)");
          if (n_runs == 3)
            g_assert_cmpstr (legend[2], ==, "Run 3 · SLTT");
        }
      gtk_window_destroy (GTK_WINDOW (c.window));
    }
}

/* The read-out at the middle of the memory chart names each run, its
 * method at that iteration, and the figures recorded there. */
static void
test_hover_readout (void)
{
  g_autoptr (GPtrArray) runs = make_runs (2);
  Cards c;
  SnnwbChartView *mem;
  int w, h;
  long iter;
  const char *text;

  cards_setup (&c, runs);
  mem = c.views[2];
  w = gtk_widget_get_width (GTK_WIDGET (mem));
  h = gtk_widget_get_height (GTK_WIDGET (mem));
  snnwb_chart_view_hover (mem, w * 0.6, h * 0.6);
  text = snnwb_chart_view_get_readout (mem);
  g_assert_nonnull (text);
  g_test_message ("%s", text);
  g_assert_true (sscanf (text, "iteration %ld", &iter) == 1);
  g_assert_cmpint (iter, >=, 1);
  g_assert_cmpint (iter, <=, 60);
  {
    g_autofree char *held = g_strdup_printf ("Run 1 · SLTT\n  held for backward: %ld MiB\n  arena (working memory): 100.0 MiB", iter);
    g_autofree char *arena = g_strdup_printf ("Run 2 · %s\n  held for backward: %ld MiB\n  arena (working memory): 200.0 MiB",
                                              iter > 30 ? "BPTT (stored)" : "SLTT", iter);

    g_assert_nonnull (strstr (text, held));
    g_assert_nonnull (strstr (text, arena));
  }
  /* Off the plot: nothing. */
  snnwb_chart_view_hover (mem, 1, 1);
  g_assert_null (snnwb_chart_view_get_readout (mem));
  snnwb_chart_view_hover (c.views[3], gtk_widget_get_width (GTK_WIDGET (c.views[3])) * 0.6,
                          gtk_widget_get_height (GTK_WIDGET (c.views[3])) * 0.6);
  text = snnwb_chart_view_get_readout (c.views[3]);
  g_test_message ("%s", text);
  g_assert_nonnull (strstr (text, "Run 1 · SLTT\n  backward (mean of 20): 2 ms\n  forward (mean of 20): 1 ms"));
  g_assert_nonnull (strstr (text, "\n  backward (mean of 20): 4 ms\n  forward (mean of 20): 2 ms"));
  snnwb_chart_view_leave (mem);
  g_assert_null (snnwb_chart_view_get_readout (mem));
  gtk_window_destroy (GTK_WINDOW (c.window));
}

/* conv-small at T 16: BPTT with Recompute holds little for backward, but
 * its arena is about ten times SLTT's; both figures as a training step
 * really allocates them. */
static void
test_editor_memory (void)
{
  g_autofree char *path = snn_preset_find ("conv-small", ".json");
  SnnModel *m = snn_model_load_file (path, NULL);
  SnnwbLayerEditor *ed = SNNWB_LAYER_EDITOR (snnwb_layer_editor_new ());
  SnnMemoryPrediction p[SNN_PREDICT_N];
  g_autofree char *text = NULL;
  g_autofree char *rc = NULL, *sltt = NULL;

  g_object_ref_sink (ed);
  snnwb_layer_editor_set_model (ed, m);
  snnwb_layer_editor_set_run_size (ed, 64, 16);
  text = snnwb_layer_editor_describe_memory (ed);
  g_test_message ("%s", text);
  snn_model_predict_memory (m, 64, 16, p);
  g_assert_true (p[SNN_PREDICT_BPTT_RECOMPUTE].recomputes);
  g_assert_cmpint (p[SNN_PREDICT_BPTT_RECOMPUTE].held_bytes, <, 4000000);
  g_assert_cmpint (p[SNN_PREDICT_BPTT_RECOMPUTE].arena_bytes, >, 200000000);
  g_assert_cmpint (p[SNN_PREDICT_SLTT].arena_bytes, <, 25000000);
  {
    g_autofree char *h = g_format_size_full (p[SNN_PREDICT_BPTT_RECOMPUTE].held_bytes, G_FORMAT_SIZE_IEC_UNITS);
    g_autofree char *a = g_format_size_full (p[SNN_PREDICT_BPTT_RECOMPUTE].arena_bytes, G_FORMAT_SIZE_IEC_UNITS);
    g_autofree char *sh = g_format_size_full (p[SNN_PREDICT_SLTT].held_bytes, G_FORMAT_SIZE_IEC_UNITS);
    g_autofree char *sa = g_format_size_full (p[SNN_PREDICT_SLTT].arena_bytes, G_FORMAT_SIZE_IEC_UNITS);

    rc = g_strdup_printf ("\nBPTT (recompute): %s · %s", h, a);
    sltt = g_strdup_printf ("\nSLTT: %s · %s", sh, sa);
  }
  g_assert_nonnull (strstr (text, rc));
  g_assert_nonnull (strstr (text, sltt));
  g_assert_nonnull (strstr (text, "\nBPTT (stored): "));
  g_assert_nonnull (strstr (text, "\nSLTT-K: "));
  g_object_unref (ed);
  snn_model_free (m);   /* the editor shows a model it does not own */
}

/* In the window, after some training: the raster's read-out names the
 * neuron under the pointer, a click on it traces it, the default traces
 * fire, and the gradient view reads out its bars. */
static SnnwbWindow *win;

static gboolean
iters_reached (gpointer data)
{
  return snnwb_window_get_reported_iters (win) >= GPOINTER_TO_INT (data);
}

static gboolean
has_probe (gpointer view)
{
  return snnwb_chart_view_has_data (view) && snnwb_chart_view_shows_latest (view);
}

static int picked_neuron = -1;

static gboolean
traced (gpointer view)
{
  int ids[16], n = snnwb_chart_view_get_traced (view, ids, 16);

  for (int i = 0; i < n; i++)
    if (ids[i] == picked_neuron)
      return TRUE;
  return FALSE;
}

static gboolean
gradient_ready (gpointer view)
{
  return snnwb_gradient_view_get_gradient (view) != NULL;
}

static void
test_window_raster_and_gradients (void)
{
  g_autoptr (GError) error = NULL;
  SnnExperiment *e;
  SnnwbChartView *raster, *traces;
  SnnwbGradientView *grad;
  const char *text;
  int w, h, ids[16], n;

  win = snnwb_window_new (NULL);
  gtk_window_set_default_size (GTK_WINDOW (win), 1280, 720);
  gtk_window_present (GTK_WINDOW (win));
  g_assert_true (snnwb_window_load_experiment (win, "temporal-mlp", &error));
  e = snnwb_window_get_experiment (win);
  e->dataset = SNN_DATASET_SYNTHETIC;
  e->train_subset = 256;
  e->test_subset = 64;
  e->batch_size = 16;
  e->epochs = 200;
  snnwb_window_experiment_changed (win);
  g_action_group_activate_action (G_ACTION_GROUP (win), "train", NULL);
  iterate_until (iters_reached, GINT_TO_POINTER (40), 60, "40 iterations");
  g_action_group_activate_action (G_ACTION_GROUP (win), "pause", NULL);
  raster = snnwb_window_get_view (win, "raster");
  traces = snnwb_window_get_view (win, "traces");
  grad = snnwb_window_get_gradient_view (win);
  iterate_until (has_probe, raster, 30, "the raster's picture");
  iterate_until (has_probe, traces, 30, "the traces' picture");

  /* Default traces: neurons that fire, when any do. */
  n = snnwb_chart_view_get_traced (traces, ids, 16);
  g_assert_cmpint (n, >, 0);

  w = gtk_widget_get_width (GTK_WIDGET (raster));
  h = gtk_widget_get_height (GTK_WIDGET (raster));
  snnwb_chart_view_hover (raster, w * 0.4, h * 0.55);
  text = snnwb_chart_view_get_readout (raster);
  g_assert_nonnull (text);
  g_test_message ("%s", text);
  g_assert_true (sscanf (text, "neuron %d", &picked_neuron) == 1);
  g_assert_nonnull (strstr (text, "click to trace it"));
  snnwb_chart_view_pick (raster, w * 0.4, h * 0.55);
  iterate_until (traced, traces, 30, "the picked neuron's trace");

  /* Zoomed to neurons 20 to 29, the pointer finds one of those. */
  {
    int zoomed = -1;

    snnwb_chart_view_zoom_neurons (raster, 20, 10);
    snnwb_chart_view_hover (raster, w * 0.4, h * 0.55);
    text = snnwb_chart_view_get_readout (raster);
    g_assert_nonnull (text);
    g_assert_true (sscanf (text, "neuron %d", &zoomed) == 1);
    g_assert_cmpint (zoomed, >=, 20);
    g_assert_cmpint (zoomed, <, 30);
    snnwb_chart_view_zoom_neurons (raster, 0, 0);
  }

  iterate_until (gradient_ready, grad, 60, "a gradient analysis");
  {
    GtkWidget *canvas = gtk_widget_get_last_child (GTK_WIDGET (grad));
    int cw = gtk_widget_get_width (canvas), ch = gtk_widget_get_height (canvas);

    snnwb_gradient_view_hover (grad, cw * 0.2, ch * 0.4);
    text = snnwb_gradient_view_get_readout (grad);
    g_assert_nonnull (text);
    g_test_message ("%s", text);
    g_assert_nonnull (strstr (text, "spatial (SLTT keeps): "));
    g_assert_nonnull (strstr (text, "cos(spatial, temporal): "));
  }
  g_action_group_activate_action (G_ACTION_GROUP (win), "stop", NULL);
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_info_texts (void)
{
  for (int k = SNNWB_CHART_RASTER; k <= SNNWB_CHART_SURROGATE; k++)
    {
      const char *markup = snnwb_chart_view_info_markup (k);

      g_assert_true (pango_parse_markup (markup, -1, 0, NULL, NULL, NULL, NULL));
      g_assert_nonnull (strstr (markup, "Units"));
    }
  g_assert_nonnull (strstr (snnwb_chart_view_info_markup (SNNWB_CHART_EPSILON), "Eq. 8"));
  g_assert_nonnull (strstr (snnwb_chart_view_info_markup (SNNWB_CHART_EPSILON), "Eq. 11"));
  g_assert_true (pango_parse_markup (snnwb_gradient_view_info_markup (), -1, 0, NULL, NULL, NULL, NULL));
  g_assert_nonnull (strstr (snnwb_gradient_view_info_markup (), "Eq. 9–10"));
}

int
main (int argc, char **argv)
{
  g_setenv ("GTK_A11Y", "none", TRUE);
  g_setenv ("GSK_RENDERER", "cairo", FALSE);
  gtk_test_init (&argc, &argv, NULL);
  g_test_add_func ("/views/info-texts", test_info_texts);
  g_test_add_func ("/views/overlay-legends", test_overlay_legends);
  g_test_add_func ("/views/hover-readout", test_hover_readout);
  g_test_add_func ("/views/editor-memory", test_editor_memory);
  g_test_add_func ("/views/window-raster-gradients", test_window_raster_and_gradients);
  return g_test_run ();
}
