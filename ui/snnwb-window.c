#include "snnwb-window.h"
#include "atomic-file.h"
#include "snnwb-gradient-view.h"
#include "snnwb-resources.h"
#include "snnwb-session.h"
#include "snnwb-run-store.h"
#include "snnwb-walkthrough.h"
#include <glib/gstdio.h>
#include "data.h"
#include "export.h"
#include "backend.h"
#include "net.h"
#include <errno.h>
#include <math.h>
#include <string.h>

#define N_VIEWS (SNNWB_CHART_TIME + 1)

struct _SnnwbWindow {
  GtkApplicationWindow parent_instance;

  /* template */
  GtkDropDown *preset_dd;
  GtkDropDown *pace_dd;
  GtkLabel *title_label;
  GtkLabel *subtitle_label;
  GtkInfoBar *info_bar;
  GtkLabel *info_label;
  GtkStack *sidebar_stack;
  SnnwbLayerEditor *layer_editor;
  GtkRevealer *network_lock;
  GtkLabel *network_lock_label;
  SnnwbSettingsPanel *settings_panel;
  GtkFlowBox *cards;          /* every chart view, as many to a line as fit */
  GtkPaned *views_paned;
  GtkPaned *main_paned;
  GtkBox *analysis_row;
  GtkListBox *run_list;
  GtkInscription *status_label;

  SnnwbChartView *views[N_VIEWS];
  GtkDropDown *lif_dd;
  GtkEntry *neurons_entry;
  SnnwbGradientView *gradient_view;

  SnnExperiment *experiment;
  char *file_path;            /* where Save writes without asking */
  char **presets;
  gboolean loading_preset;
  char *message;
  char *pending_weights;      /* loaded before the next run's first iteration */

  GPtrArray *runs;            /* SnnwbRun, oldest first */
  int run_counter;
  SnnwbSession *session;      /* the current (latest) run */
  SnnwbProbe *shown_probe;
  SnnwbEpsilon *shown_epsilon;
  SnnwbGradient *shown_gradient;

  /* screenshot mode */
  char *screenshot_path;
  int screenshot_iters, screenshot_runs;
  gboolean screenshot_taken;
  gboolean disposed;
  gint64 row_refreshed;       /* when the current run's row was last updated */
  double pace;                /* iterations per second; 0: full speed */
  GtkWidget *walkthrough;

  /* Runs are written into session_dir as they go: a folder the user chose,
   * or until then a scratch folder that quitting asks about. */
  char *session_dir;
  gboolean session_chosen;
  gboolean save_failed;
  guint autosave_id, save_idle_id, show_run_id, cards_id;
  guint cards_per_line;
  gboolean ask_before_close;
  GtkWidget *quit_prompt;
};

G_DEFINE_FINAL_TYPE (SnnwbWindow, snnwb_window, GTK_TYPE_APPLICATION_WINDOW)

static const char *const view_names[N_VIEWS] = {
  "raster", "traces", "epsilon", "loss", "accuracy", "memory", "time",
};
static const char *const view_titles[N_VIEWS] = {
  "Spike raster", "Membrane traces", "Epsilon products", "Loss", "Accuracy",
  "Memory (log)", "Time per iteration",
};

static void update_actions (SnnwbWindow *self);
static void update_status (SnnwbWindow *self);
static void drop_session (SnnwbWindow *self);
static void select_preset_item (SnnwbWindow *self, const char *name);
static gboolean check_weights (SnnwbWindow *self, const char *path, GError **error);
static void neurons_changed_cb (SnnwbWindow *self);

/* Messages */

static void
show_message (SnnwbWindow *self, GtkMessageType type, const char *text)
{
  g_free (self->message);
  self->message = g_strdup (text);
  gtk_info_bar_set_message_type (self->info_bar, type);
  gtk_label_set_text (self->info_label, text);
  gtk_info_bar_set_revealed (self->info_bar, TRUE);
}

static void
show_error (SnnwbWindow *self, const char *what, const GError *error)
{
  g_autofree char *text = g_strdup_printf ("%s: %s", what, error->message);

  show_message (self, GTK_MESSAGE_ERROR, text);
}

static void
info_bar_response_cb (SnnwbWindow *self, int response)
{
  gtk_info_bar_set_revealed (self->info_bar, FALSE);
  g_clear_pointer (&self->message, g_free);
}

/* The experiment being edited */

static void
update_title (SnnwbWindow *self)
{
  const SnnExperiment *e = self->experiment;
  g_autofree char *base = self->file_path ? g_path_get_basename (self->file_path) : NULL;
  g_autofree char *sub = g_strdup_printf ("%s%s%s", e->name ? e->name : "experiment",
                                          base ? " — " : "", base ? base : "");

  gtk_label_set_text (self->subtitle_label, sub);
  if (self->session_chosen)
    {
      g_autofree char *folder = g_path_get_basename (self->session_dir);
      g_autofree char *title = g_strdup_printf ("SNN Workbench · %s", folder);

      gtk_label_set_text (self->title_label, title);
    }
}

static void
rebuild_lif_choices (SnnwbWindow *self, const SnnModel *model)
{
  g_autoptr (GtkStringList) list = gtk_string_list_new (NULL);
  guint keep = gtk_drop_down_get_selected (self->lif_dd);

  for (int l = 0; model && l < model->n_layers; l++)
    if (model->layers[l].type == SNN_LAYER_LIF)
      {
        g_autofree char *item = g_strdup_printf ("Layer %d (LIF)", l);

        gtk_string_list_append (list, item);
      }
  if (g_list_model_get_n_items (G_LIST_MODEL (list)) == 0)
    gtk_string_list_append (list, "No LIF layer");
  gtk_drop_down_set_model (self->lif_dd, G_LIST_MODEL (list));
  if (keep != GTK_INVALID_LIST_POSITION && keep < g_list_model_get_n_items (G_LIST_MODEL (list)))
    gtk_drop_down_set_selected (self->lif_dd, keep);
}

static void
set_experiment (SnnwbWindow *self, SnnExperiment *e, const char *file_path)
{
  SnnExperiment *old = self->experiment;

  self->experiment = e;
  g_free (self->file_path);
  self->file_path = g_strdup (file_path);
  snnwb_layer_editor_set_model (self->layer_editor, e->model);
  snnwb_layer_editor_set_run_size (self->layer_editor, e->batch_size, e->train.T);
  snnwb_settings_panel_set_experiment (self->settings_panel, e);
  if (!self->session)
    rebuild_lif_choices (self, e->model);
  snn_experiment_free (old);
  update_title (self);
  update_actions (self);
}

gboolean
snnwb_window_load_experiment (SnnwbWindow *self, const char *path_or_preset, GError **error)
{
  SnnExperiment *e = snn_experiment_load (path_or_preset, error);
  gboolean is_file;

  if (!e)
    return FALSE;
  /* Opening a file does not make it ours to overwrite: Save asks first. */
  is_file = g_file_test (path_or_preset, G_FILE_TEST_IS_REGULAR);
  set_experiment (self, e, NULL);
  if (!is_file)
    select_preset_item (self, path_or_preset);
  if (is_file)
    {
      g_autofree char *base = g_path_get_basename (path_or_preset);

      /* No preset is shown as picked, so picking any, the last one too,
       * loads it. */
      self->loading_preset = TRUE;
      gtk_drop_down_set_selected (self->preset_dd, GTK_INVALID_LIST_POSITION);
      self->loading_preset = FALSE;
      gtk_label_set_text (self->subtitle_label, base);
    }
  return TRUE;
}

gboolean
snnwb_window_open_experiment (SnnwbWindow *self, const char *path_or_preset)
{
  g_autoptr (GError) error = NULL;

  if (snnwb_window_load_experiment (self, path_or_preset, &error))
    return TRUE;
  show_error (self, "Could not open the experiment", error);
  return FALSE;
}

gboolean
snnwb_window_save_experiment_to (SnnwbWindow *self, const char *path, GError **error)
{
  if (!snn_experiment_save (self->experiment, path, error))
    return FALSE;
  g_free (self->file_path);
  self->file_path = g_strdup (path);
  update_title (self);
  return TRUE;
}

SnnExperiment *
snnwb_window_get_experiment (SnnwbWindow *self)
{
  return self->experiment;
}

void
snnwb_window_experiment_changed (SnnwbWindow *self)
{
  snnwb_layer_editor_refresh (self->layer_editor);
  snnwb_layer_editor_set_run_size (self->layer_editor, self->experiment->batch_size, self->experiment->train.T);
  snnwb_settings_panel_refresh (self->settings_panel);
  update_title (self);
  update_actions (self);
}

static void
model_changed_cb (SnnwbWindow *self)
{
  snnwb_settings_panel_refresh (self->settings_panel);
  if (!self->session)
    rebuild_lif_choices (self, self->experiment->model);
  update_actions (self);
}

static void
settings_changed_cb (SnnwbWindow *self)
{
  snnwb_layer_editor_set_run_size (self->layer_editor, self->experiment->batch_size, self->experiment->train.T);
  update_title (self);
  update_actions (self);
}

static void
settings_model_changed_cb (SnnwbWindow *self)
{
  snnwb_layer_editor_refresh (self->layer_editor);
}

static void
settings_live_changed_cb (SnnwbWindow *self)
{
  const SnnExperiment *e = self->experiment;

  if (!self->session || !snnwb_session_is_active (self->session) || !snnwb_session_is_paused (self->session))
    return;
  snnwb_session_set_method (self->session, e->train.method, e->train.K, e->train.recompute);
  snnwb_session_set_lr (self->session, e->optim.lr);
  update_status (self);
}

/* Pace */

static const double paces[] = { 0, 20, 5, 1, 1.0 / 3 };

static void
pace_selected_cb (SnnwbWindow *self)
{
  guint i = gtk_drop_down_get_selected (self->pace_dd);

  if (i >= G_N_ELEMENTS (paces))
    return;
  self->pace = paces[i];
  if (self->session)
    snnwb_session_set_pace (self->session, self->pace);
}

void
snnwb_window_set_pace (SnnwbWindow *self, double iterations_per_second)
{
  guint best = 0;

  /* The drop-down shows the nearest choice; the pace is as asked. */
  for (guint i = 1; i < G_N_ELEMENTS (paces); i++)
    if (iterations_per_second > 0 && fabs (log (paces[i] / iterations_per_second))
        < (best ? fabs (log (paces[best] / iterations_per_second)) : INFINITY))
      best = i;
  gtk_drop_down_set_selected (self->pace_dd, best);
  self->pace = MAX (iterations_per_second, 0.0);
  if (self->session)
    snnwb_session_set_pace (self->session, self->pace);
}

double
snnwb_window_get_pace (SnnwbWindow *self)
{
  return self->pace;
}

/* Presentation mode: every text larger, for a projector. */
static void
presentation_change_state (GSimpleAction *action, GVariant *value, gpointer user_data)
{
  GtkSettings *settings = gtk_widget_get_settings (GTK_WIDGET (user_data));
  static int normal_dpi = -1;
  int dpi;

  g_object_get (settings, "gtk-xft-dpi", &dpi, NULL);
  if (normal_dpi < 0)
    normal_dpi = dpi > 0 ? dpi : 96 * 1024;
  g_object_set (settings, "gtk-xft-dpi", g_variant_get_boolean (value) ? normal_dpi * 3 / 2 : normal_dpi, NULL);
  /* The charts' own lettering (axes, legends, read-outs) grows too. */
  SnnwbWindow *self = SNNWB_WINDOW (user_data);
  snnwb_view_style_set_large (g_variant_get_boolean (value));
  for (int k = 0; k < N_VIEWS; k++)
    if (self->views[k])
      snnwb_chart_view_restyle (self->views[k]);
  if (self->gradient_view)
    snnwb_gradient_view_restyle (self->gradient_view);
  if (g_variant_get_boolean (value))
    gtk_widget_add_css_class (GTK_WIDGET (user_data), "presentation");
  else
    {
      gtk_widget_remove_css_class (GTK_WIDGET (user_data), "presentation");
      /* The side panel grew with its text; it goes back too. */
      gtk_paned_set_position (SNNWB_WINDOW (user_data)->main_paned, 370);
    }
  g_simple_action_set_state (action, value);
}

/* Presets */

char *
snnwb_window_default_preset (void)
{
  const char *env = g_getenv ("SNNWB_DEFAULT_PRESET");
  g_autofree char *gz = g_build_filename (SNN_FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz", NULL);
  g_autofree char *raw = g_build_filename (SNN_FASHION_MNIST_DIR, "train-images-idx3-ubyte", NULL);

  if (env && *env)
    return g_strdup (env);
  if (g_file_test (gz, G_FILE_TEST_EXISTS) || g_file_test (raw, G_FILE_TEST_EXISTS))
    return g_strdup ("class-conv");
  /* Without Fashion-MNIST the synthetic temporal set still trains. */
  return g_strdup ("temporal-mlp");
}

static void
select_preset_item (SnnwbWindow *self, const char *name)
{
  self->loading_preset = TRUE;
  for (guint i = 0; self->presets && self->presets[i]; i++)
    if (g_str_equal (self->presets[i], name))
      gtk_drop_down_set_selected (self->preset_dd, i);
  self->loading_preset = FALSE;
}

static void
preset_selected_cb (SnnwbWindow *self)
{
  guint i = gtk_drop_down_get_selected (self->preset_dd);

  if (self->loading_preset || !self->presets || i == GTK_INVALID_LIST_POSITION)
    return;
  snnwb_window_open_experiment (self, self->presets[i]);
}

static void
setup_presets (SnnwbWindow *self)
{
  g_autoptr (GtkStringList) list = NULL;

  self->presets = snn_preset_list ();
  list = gtk_string_list_new ((const char *const *) self->presets);
  self->loading_preset = TRUE;
  gtk_drop_down_set_model (self->preset_dd, G_LIST_MODEL (list));
  self->loading_preset = FALSE;
}

/* Views */

static GMenuModel *
make_view_menu (const char *name, gboolean curves)
{
  GMenu *menu = g_menu_new ();
  g_autofree char *image = g_strdup_printf ("win.export-view('%s')", name);
  g_autofree char *csv = g_strdup_printf ("win.export-csv('%s')", name);

  g_menu_append (menu, "Export Image (PNG, SVG, PDF)…", image);
  if (curves)
    g_menu_append (menu, "Export Curves as CSV…", csv);
  return G_MENU_MODEL (menu);
}

static GtkWidget *
make_card_menu (SnnwbChartKind kind)
{
  g_autoptr (GMenuModel) menu = make_view_menu (view_names[kind], kind >= SNNWB_CHART_LOSS);
  GtkWidget *button = gtk_menu_button_new ();

  gtk_menu_button_set_menu_model (GTK_MENU_BUTTON (button), menu);
  gtk_menu_button_set_icon_name (GTK_MENU_BUTTON (button), "view-more-symbolic");
  gtk_menu_button_set_has_frame (GTK_MENU_BUTTON (button), FALSE);
  gtk_widget_set_tooltip_text (button, "Export");
  return button;
}

static GtkWidget *
make_card (SnnwbWindow *self, SnnwbChartKind kind, GtkWidget *extra)
{
  GtkWidget *card = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkWidget *header = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *title = gtk_label_new (view_titles[kind]);
  GtkWidget *view = snnwb_chart_view_new (kind);

  gtk_widget_add_css_class (title, "heading");
  gtk_label_set_xalign (GTK_LABEL (title), 0);
  gtk_label_set_ellipsize (GTK_LABEL (title), PANGO_ELLIPSIZE_END);
  gtk_widget_set_hexpand (title, TRUE);
  gtk_box_append (GTK_BOX (header), title);
  if (extra)
    gtk_box_append (GTK_BOX (header), extra);
  gtk_box_append (GTK_BOX (header), snnwb_chart_view_make_info_button (kind));
  gtk_box_append (GTK_BOX (header), make_card_menu (kind));
  gtk_widget_add_css_class (view, "chart-frame");
  gtk_widget_set_vexpand (view, TRUE);
  gtk_widget_set_hexpand (view, TRUE);
  gtk_widget_set_size_request (view, 160, 120);
  gtk_box_append (GTK_BOX (card), header);
  gtk_box_append (GTK_BOX (card), view);
  self->views[kind] = SNNWB_CHART_VIEW (view);
  return card;
}

/* A click on the raster adds the neuron to the traced ones. */
static void
neuron_picked_cb (SnnwbChartView *view, int neuron, SnnwbWindow *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->neurons_entry));
  g_autofree char *more = *text ? g_strdup_printf ("%s, %d", text, neuron) : g_strdup_printf ("%d", neuron);

  gtk_editable_set_text (GTK_EDITABLE (self->neurons_entry), more);
}

static void
lif_selected_cb (SnnwbWindow *self)
{
  guint i = gtk_drop_down_get_selected (self->lif_dd);

  if (i == GTK_INVALID_LIST_POSITION)
    return;
  for (int k = SNNWB_CHART_RASTER; k <= SNNWB_CHART_EPSILON; k++)
    snnwb_chart_view_set_lif_index (self->views[k], (int) i);
  snnwb_gradient_view_set_lif_index (self->gradient_view, (int) i);
  if (self->neurons_entry)
    neurons_changed_cb (self);
}

/* Neurons in the LIF layer the views show, or -1 when unknown. */
static long
shown_lif_neurons (SnnwbWindow *self)
{
  const SnnModel *m = self->session ? snnwb_run_get_experiment (snnwb_session_get_run (self->session))->model
                                    : self->experiment ? self->experiment->model : NULL;
  guint want = gtk_drop_down_get_selected (self->lif_dd), seen = 0;

  for (int l = 0; m && l < m->n_layers; l++)
    if (m->layers[l].type == SNN_LAYER_LIF && seen++ == want)
      return (long) snn_shape_numel (&m->layers[l].out_shape);
  return -1;
}

/* Entries that are no neuron of the layer are named in the field's
 * tooltip and the field turns red; the others are traced. */
static void
neurons_changed_cb (SnnwbWindow *self)
{
  GtkWidget *entry = GTK_WIDGET (self->neurons_entry);
  g_auto (GStrv) parts = g_strsplit_set (gtk_editable_get_text (GTK_EDITABLE (self->neurons_entry)), ", ;", -1);
  long limit = shown_lif_neurons (self);
  g_autoptr (GString) bad = g_string_new (NULL);
  int neurons[16], n = 0;

  for (int i = 0; parts[i]; i++)
    {
      char *end;
      gint64 v;

      if (!*parts[i])
        continue;
      v = g_ascii_strtoll (parts[i], &end, 10);
      if (*end != '\0' || v < 0 || (limit >= 0 && v >= limit))
        g_string_append_printf (bad, "%s%s", bad->len ? ", " : "", parts[i]);
      else if (n < (int) G_N_ELEMENTS (neurons))
        neurons[n++] = (int) v;
    }
  if (bad->len)
    {
      g_autofree char *tip = limit >= 0
        ? g_strdup_printf ("Not neurons of this layer (0 to %ld): %s", limit - 1, bad->str)
        : g_strdup_printf ("Not neuron numbers: %s", bad->str);

      gtk_widget_add_css_class (entry, "error");
      gtk_entry_set_icon_from_icon_name (self->neurons_entry, GTK_ENTRY_ICON_SECONDARY, "dialog-warning-symbolic");
      gtk_entry_set_icon_tooltip_text (self->neurons_entry, GTK_ENTRY_ICON_SECONDARY, tip);
      gtk_widget_set_tooltip_text (entry, tip);
    }
  else
    {
      gtk_widget_remove_css_class (entry, "error");
      gtk_entry_set_icon_from_icon_name (self->neurons_entry, GTK_ENTRY_ICON_SECONDARY, NULL);
      gtk_widget_set_tooltip_text (entry, "Neurons to trace, separated by commas");
    }
  snnwb_chart_view_set_neurons (self->views[SNNWB_CHART_TRACES], neurons, n);
}

/* What-if tau from the gradient view: taken only while not training. */
static gboolean
tau_requested_cb (SnnwbGradientView *view, double tau, SnnwbWindow *self)
{
  return self->session && snnwb_session_request_tau (self->session, tau);
}

static void
interval_changed_cb (SnnwbGradientView *view, int every, SnnwbWindow *self)
{
  if (self->session)
    snnwb_session_set_analysis_interval (self->session, every);
}

static void
build_gradient_view (SnnwbWindow *self)
{
  g_autoptr (GMenuModel) menu = make_view_menu ("gradients", TRUE);

  self->gradient_view = SNNWB_GRADIENT_VIEW (snnwb_gradient_view_new ());
  gtk_widget_set_hexpand (GTK_WIDGET (self->gradient_view), TRUE);
  gtk_menu_button_set_menu_model (snnwb_gradient_view_get_menu_button (self->gradient_view), menu);
  g_signal_connect (self->gradient_view, "tau-requested", G_CALLBACK (tau_requested_cb), self);
  g_signal_connect (self->gradient_view, "interval-changed", G_CALLBACK (interval_changed_cb), self);
  /* Its own horizontal scrolling: at narrow widths it scrolls while the
   * other views reflow into fewer columns. */
  {
    GtkWidget *scroll = gtk_scrolled_window_new ();

    gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroll), GTK_POLICY_AUTOMATIC, GTK_POLICY_NEVER);
    gtk_scrolled_window_set_propagate_natural_height (GTK_SCROLLED_WINDOW (scroll), TRUE);
    gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), GTK_WIDGET (self->gradient_view));
    gtk_widget_set_hexpand (scroll, TRUE);
    gtk_box_append (self->analysis_row, scroll);
  }
}

#define CARD_WIDTH 280   /* below it a card's axes get cramped */

static gboolean
set_cards_per_line_cb (gpointer data)
{
  SnnwbWindow *self = data;

  self->cards_id = 0;
  gtk_flow_box_set_min_children_per_line (self->cards, self->cards_per_line);
  return G_SOURCE_REMOVE;
}

/* Called while the window is laid out: the change waits for the next turn. */
static void
views_resized_cb (SnnwbWindow *self, GParamSpec *pspec, GtkAdjustment *adj)
{
  guint per = (guint) CLAMP ((gtk_adjustment_get_page_size (adj) + 8) / (CARD_WIDTH + 8), 1, 4);

  if (per == gtk_flow_box_get_min_children_per_line (self->cards) || self->disposed)
    return;
  self->cards_per_line = per;
  if (!self->cards_id)
    self->cards_id = g_idle_add (set_cards_per_line_cb, self);
}

static void
build_views (SnnwbWindow *self)
{
  GtkWidget *lif_box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);

  self->lif_dd = GTK_DROP_DOWN (gtk_drop_down_new (NULL, NULL));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->lif_dd), "The LIF layer shown by the raster, traces, epsilon and gradient views");
  g_signal_connect_swapped (self->lif_dd, "notify::selected", G_CALLBACK (lif_selected_cb), self);
  gtk_box_append (GTK_BOX (lif_box), GTK_WIDGET (self->lif_dd));

  self->neurons_entry = GTK_ENTRY (gtk_entry_new ());
  gtk_entry_set_placeholder_text (self->neurons_entry, "firing");
  gtk_editable_set_width_chars (GTK_EDITABLE (self->neurons_entry), 8);
  gtk_editable_set_max_width_chars (GTK_EDITABLE (self->neurons_entry), 8);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->neurons_entry), "Neurons to trace, separated by commas; empty: neurons that fire. Click the raster to add one.");
  g_signal_connect_swapped (self->neurons_entry, "changed", G_CALLBACK (neurons_changed_cb), self);

  gtk_flow_box_append (self->cards, make_card (self, SNNWB_CHART_RASTER, lif_box));
  gtk_flow_box_append (self->cards, make_card (self, SNNWB_CHART_TRACES, GTK_WIDGET (self->neurons_entry)));
  gtk_flow_box_append (self->cards, make_card (self, SNNWB_CHART_EPSILON, NULL));
  for (int k = SNNWB_CHART_LOSS; k <= SNNWB_CHART_TIME; k++)
    gtk_flow_box_append (self->cards, make_card (self, k, NULL));
  /* The flow box fits cards by their natural width, wider than they need
   * to be; how many go to a line follows the width the views have. */
  g_signal_connect_swapped (gtk_scrolled_window_get_hadjustment (
                              GTK_SCROLLED_WINDOW (gtk_widget_get_ancestor (GTK_WIDGET (self->cards), GTK_TYPE_SCROLLED_WINDOW))),
                            "notify::page-size", G_CALLBACK (views_resized_cb), self);
  /* Cards are not to be selected or focused as such. */
  for (GtkWidget *c = gtk_widget_get_first_child (GTK_WIDGET (self->cards)); c; c = gtk_widget_get_next_sibling (c))
    gtk_widget_set_focusable (c, FALSE);
  build_gradient_view (self);
  neurons_changed_cb (self);

  g_signal_connect (self->views[SNNWB_CHART_RASTER], "neuron-picked", G_CALLBACK (neuron_picked_cb), self);
}

SnnwbChartView *
snnwb_window_get_view (SnnwbWindow *self, const char *name)
{
  for (int k = 0; k < N_VIEWS; k++)
    if (g_str_equal (view_names[k], name))
      return self->views[k];
  return NULL;
}

/* Runs */

static GPtrArray *
shown_runs (SnnwbWindow *self)
{
  GPtrArray *runs = g_ptr_array_new ();
  GList *rows = gtk_list_box_get_selected_rows (self->run_list);

  for (GList *l = rows; l; l = l->next)
    g_ptr_array_add (runs, g_object_get_data (G_OBJECT (l->data), "run"));
  g_list_free (rows);
  if (runs->len == 0 && self->session)
    g_ptr_array_add (runs, snnwb_session_get_run (self->session));
  return runs;
}

static void
refresh_curve_views (SnnwbWindow *self)
{
  g_autoptr (GPtrArray) runs = shown_runs (self);

  for (int k = SNNWB_CHART_LOSS; k <= SNNWB_CHART_TIME; k++)
    snnwb_chart_view_set_runs (self->views[k], runs);
}

static void
run_selection_changed_cb (SnnwbWindow *self)
{
  /* Rows are unselected while the window is torn down. */
  if (self->disposed)
    return;
  refresh_curve_views (self);
}

static GtkWidget *
run_label (const char *text, gboolean expand, const char *css)
{
  GtkWidget *label = gtk_label_new (text);

  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_widget_set_hexpand (label, expand);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  if (css)
    gtk_widget_add_css_class (label, css);
  return label;
}

static void
draw_swatch (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  SnnwbRun *run = data;
  GdkRGBA color;

  snnwb_chart_view_run_color (snnwb_run_get_color_index (run), &color);
  /* A white ring keeps the colour visible on a selected row. */
  cairo_arc (cr, width / 2.0, height / 2.0, MIN (width, height) / 2.0 - 1, 0, 2 * G_PI);
  gdk_cairo_set_source_rgba (cr, &color);
  cairo_fill_preserve (cr);
  cairo_set_source_rgba (cr, 1, 1, 1, 0.9);
  cairo_set_line_width (cr, 1.5);
  cairo_stroke (cr);
}

static char *
run_detail_text (SnnwbRun *run)
{
  const SnnExperiment *e = snnwb_run_get_experiment (run);
  g_autofree char *history = snnwb_run_describe_history (run);
  double acc = snnwb_run_get_final_accuracy (run), ms = snnwb_run_get_median_ms (run);
  GString *s = g_string_new (history);

  g_string_append_printf (s, " · T %d · seed %" G_GUINT64_FORMAT, e->train.T, e->seed);
  if (acc >= 0)
    g_string_append_printf (s, " · test %.1f %%", acc * 100);
  if (snnwb_run_get_peak_held_bytes (run) > 0)
    {
      g_autofree char *held = g_format_size ((guint64) snnwb_run_get_peak_held_bytes (run));
      g_autofree char *arena = g_format_size ((guint64) snnwb_run_get_peak_arena_bytes (run));

      g_string_append_printf (s, " · held %s · arena %s", held, arena);
    }
  if (!isnan (ms))
    g_string_append_printf (s, " · %.2f ms/iteration", ms);
  return g_string_free (s, FALSE);
}

/* Labels of a row, updated in place so an open menu survives. */
typedef struct {
  GtkLabel *name, *state, *detail, *summary;
  GtkEntry *rename;
  GtkWidget *delete, *resume;
} RunRow;

static void
fill_run_row (GtkListBoxRow *row, SnnwbRun *run)
{
  RunRow *r = g_object_get_data (G_OBJECT (row), "labels");
  g_autofree char *detail = run_detail_text (run);
  g_autofree char *summary = snnwb_run_describe_summary (run);
  SnnwbRunState state = snnwb_run_get_state (run);

  gtk_label_set_text (r->name, snnwb_run_get_name (run));
  gtk_label_set_text (r->state, snnwb_run_state_name (state));
  gtk_label_set_text (r->detail, detail);
  gtk_label_set_text (r->summary, summary);
  gtk_widget_set_tooltip_text (GTK_WIDGET (row), summary);
  /* A run that is training or paused is deleted after it is stopped. */
  gtk_widget_set_sensitive (r->delete, state >= SNNWB_RUN_STOPPED);
  gtk_widget_set_visible (r->resume, snnwb_window_can_continue_run (NULL, run));
}

static void schedule_save (SnnwbWindow *self);

static void
run_changed_cb (SnnwbRun *run, GtkListBoxRow *row)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (row));

  fill_run_row (row, run);
  if (SNNWB_IS_WINDOW (root))
    schedule_save (SNNWB_WINDOW (root));
}

static void
rename_activated_cb (GtkWidget *widget, GtkListBoxRow *row)
{
  RunRow *r = g_object_get_data (G_OBJECT (row), "labels");
  SnnwbWindow *self = SNNWB_WINDOW (gtk_widget_get_root (GTK_WIDGET (row)));

  snnwb_window_rename_run (self, g_object_get_data (G_OBJECT (row), "run"),
                           gtk_editable_get_text (GTK_EDITABLE (r->rename)));
  gtk_popover_popdown (GTK_POPOVER (gtk_widget_get_ancestor (widget, GTK_TYPE_POPOVER)));
}

static void
delete_clicked_cb (GtkWidget *button, GtkListBoxRow *row)
{
  SnnwbWindow *self = SNNWB_WINDOW (gtk_widget_get_root (GTK_WIDGET (row)));
  SnnwbRun *run = g_object_get_data (G_OBJECT (row), "run");

  gtk_popover_popdown (GTK_POPOVER (gtk_widget_get_ancestor (button, GTK_TYPE_POPOVER)));
  snnwb_window_delete_run (self, run);
}

static void
continue_clicked_cb (GtkWidget *button, GtkListBoxRow *row)
{
  SnnwbWindow *self = SNNWB_WINDOW (gtk_widget_get_root (GTK_WIDGET (row)));
  g_autoptr (GError) error = NULL;

  gtk_popover_popdown (GTK_POPOVER (gtk_widget_get_ancestor (button, GTK_TYPE_POPOVER)));
  if (!snnwb_window_continue_run (self, g_object_get_data (G_OBJECT (row), "run"), &error))
    show_error (self, "Could not continue the run", error);
}

static void
menu_shown_cb (GtkPopover *popover, GtkListBoxRow *row)
{
  RunRow *r = g_object_get_data (G_OBJECT (row), "labels");
  SnnwbWindow *self = SNNWB_WINDOW (gtk_widget_get_root (GTK_WIDGET (row)));

  /* Another run may have started or stopped since the row was filled. */
  gtk_widget_set_sensitive (r->resume, snnwb_window_can_continue_run (self, g_object_get_data (G_OBJECT (row), "run")));

  gtk_editable_set_text (GTK_EDITABLE (r->rename),
                         snnwb_run_get_name (g_object_get_data (G_OBJECT (row), "run")));
}

/* The row's menu: the run's summary, renaming and deleting. */
static GtkWidget *
make_run_menu (GtkListBoxRow *row, RunRow *r)
{
  GtkWidget *button = gtk_menu_button_new ();
  GtkWidget *popover = gtk_popover_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 8);
  GtkWidget *name_box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 0);
  GtkWidget *ok = gtk_button_new_with_label ("Rename");

  r->summary = GTK_LABEL (gtk_label_new (NULL));
  gtk_label_set_xalign (r->summary, 0);
  gtk_widget_add_css_class (GTK_WIDGET (r->summary), "numeric");
  r->rename = GTK_ENTRY (gtk_entry_new ());
  gtk_widget_set_hexpand (GTK_WIDGET (r->rename), TRUE);
  gtk_widget_add_css_class (name_box, "linked");
  gtk_box_append (GTK_BOX (name_box), GTK_WIDGET (r->rename));
  gtk_box_append (GTK_BOX (name_box), ok);
  r->delete = gtk_button_new_with_label ("Delete Run");
  gtk_widget_add_css_class (r->delete, "destructive-action");
  gtk_widget_set_tooltip_text (r->delete, "Removes the run, and its folder in the session");
  r->resume = gtk_button_new_with_label ("Continue Training");
  gtk_widget_set_tooltip_text (r->resume, "Trains on from where the run stopped, exactly as if it had not");
  g_signal_connect (r->resume, "clicked", G_CALLBACK (continue_clicked_cb), row);
  g_signal_connect (r->rename, "activate", G_CALLBACK (rename_activated_cb), row);
  g_signal_connect (ok, "clicked", G_CALLBACK (rename_activated_cb), row);
  g_signal_connect (r->delete, "clicked", G_CALLBACK (delete_clicked_cb), row);
  g_signal_connect (popover, "show", G_CALLBACK (menu_shown_cb), row);
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (r->summary));
  gtk_box_append (GTK_BOX (box), name_box);
  gtk_box_append (GTK_BOX (box), r->resume);
  gtk_box_append (GTK_BOX (box), r->delete);
  gtk_popover_set_child (GTK_POPOVER (popover), box);
  gtk_menu_button_set_popover (GTK_MENU_BUTTON (button), popover);
  gtk_menu_button_set_icon_name (GTK_MENU_BUTTON (button), "view-more-symbolic");
  gtk_menu_button_set_has_frame (GTK_MENU_BUTTON (button), FALSE);
  gtk_widget_set_tooltip_text (button, "Summary, rename, delete");
  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  return button;
}

static void
build_run_row (GtkListBoxRow *row, SnnwbRun *run)
{
  RunRow *r = g_new0 (RunRow, 1);
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  GtkWidget *text = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  GtkWidget *top = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  GtkWidget *swatch = gtk_drawing_area_new ();

  g_object_set_data_full (G_OBJECT (row), "labels", r, g_free);
  gtk_drawing_area_set_content_width (GTK_DRAWING_AREA (swatch), 12);
  gtk_drawing_area_set_content_height (GTK_DRAWING_AREA (swatch), 12);
  gtk_widget_set_valign (swatch, GTK_ALIGN_CENTER);
  gtk_drawing_area_set_draw_func (GTK_DRAWING_AREA (swatch), draw_swatch, g_object_ref (run), g_object_unref);
  gtk_widget_set_margin_start (box, 8);
  gtk_widget_set_margin_end (box, 4);
  gtk_widget_set_margin_top (box, 2);
  gtk_widget_set_margin_bottom (box, 2);
  r->name = GTK_LABEL (run_label (NULL, TRUE, "run-name"));
  r->state = GTK_LABEL (run_label (NULL, FALSE, "dim-label"));
  r->detail = GTK_LABEL (run_label (NULL, TRUE, "run-detail"));
  gtk_widget_add_css_class (GTK_WIDGET (r->detail), "numeric");
  gtk_box_append (GTK_BOX (top), GTK_WIDGET (r->name));
  gtk_box_append (GTK_BOX (top), GTK_WIDGET (r->state));
  gtk_box_append (GTK_BOX (text), top);
  gtk_box_append (GTK_BOX (text), GTK_WIDGET (r->detail));
  gtk_widget_set_hexpand (text, TRUE);
  gtk_box_append (GTK_BOX (box), swatch);
  gtk_box_append (GTK_BOX (box), text);
  gtk_box_append (GTK_BOX (box), make_run_menu (row, r));
  gtk_list_box_row_set_child (row, box);
  fill_run_row (row, run);
}

static gboolean show_last_run_cb (gpointer data);

static GtkListBoxRow *
find_run_row (SnnwbWindow *self, SnnwbRun *run)
{
  for (GtkWidget *w = gtk_widget_get_first_child (GTK_WIDGET (self->run_list)); w; w = gtk_widget_get_next_sibling (w))
    if (GTK_IS_LIST_BOX_ROW (w) && g_object_get_data (G_OBJECT (w), "run") == run)
      return GTK_LIST_BOX_ROW (w);
  return NULL;
}

static void
add_run_row (SnnwbWindow *self, SnnwbRun *run, gboolean select)
{
  GtkWidget *row = gtk_list_box_row_new ();

  g_object_set_data_full (G_OBJECT (row), "run", g_object_ref (run), g_object_unref);
  build_run_row (GTK_LIST_BOX_ROW (row), run);
  g_signal_connect_object (run, "changed", G_CALLBACK (run_changed_cb), row, 0);
  gtk_list_box_append (self->run_list, row);
  if (!select)
    return;
  gtk_list_box_unselect_all (self->run_list);
  gtk_list_box_select_row (self->run_list, GTK_LIST_BOX_ROW (row));
  /* Once the list has its new height. */
  if (!self->show_run_id)
    self->show_run_id = g_timeout_add (200, show_last_run_cb, self);
}

gboolean
snnwb_window_rename_run (SnnwbWindow *self, SnnwbRun *run, const char *name)
{
  if (!snnwb_run_set_name (run, name))
    {
      show_message (self, GTK_MESSAGE_WARNING, "A run needs a name; it keeps its old one.");
      return FALSE;
    }
  refresh_curve_views (self);
  return TRUE;
}

gboolean
snnwb_window_delete_run (SnnwbWindow *self, SnnwbRun *run)
{
  GtkListBoxRow *row = find_run_row (self, run);
  g_autoptr (GError) error = NULL;

  if (snnwb_run_get_state (run) < SNNWB_RUN_STOPPED || !row)
    return FALSE;
  g_object_ref (run);
  if (self->session && snnwb_session_get_run (self->session) == run)
    drop_session (self);
  if (!snnwb_store_delete_run (run, &error))
    show_error (self, "Could not remove the run's folder", error);
  gtk_list_box_remove (self->run_list, GTK_WIDGET (row));
  g_ptr_array_remove (self->runs, run);
  g_object_unref (run);
  refresh_curve_views (self);
  update_actions (self);
  update_status (self);
  return TRUE;
}

void
snnwb_window_select_all_runs (SnnwbWindow *self)
{
  gtk_list_box_select_all (self->run_list);
}

/* Scrolls the views so this one (a chart's name or "gradients") is at the
 * top, as far as they scroll. */
void
snnwb_window_show_view (SnnwbWindow *self, const char *name)
{
  GtkWidget *view = g_str_equal (name, "gradients") ? GTK_WIDGET (self->gradient_view)
                                                   : GTK_WIDGET (snnwb_window_get_view (self, name));
  GtkWidget *scroll = gtk_widget_get_ancestor (GTK_WIDGET (self->cards), GTK_TYPE_SCROLLED_WINDOW);
  GtkWidget *content = gtk_widget_get_parent (GTK_WIDGET (self->cards));
  graphene_point_t p;

  if (!view || !gtk_widget_compute_point (gtk_widget_get_parent (view), content, &GRAPHENE_POINT_INIT (0, 0), &p))
    return;
  gtk_adjustment_set_value (gtk_scrolled_window_get_vadjustment (GTK_SCROLLED_WINDOW (scroll)), p.y - 4);
}

/* The newest runs at the bottom of the list, in view. */
static void
show_last_run (SnnwbWindow *self)
{
  GtkWidget *scroll = gtk_widget_get_ancestor (GTK_WIDGET (self->run_list), GTK_TYPE_SCROLLED_WINDOW);
  GtkAdjustment *adj = gtk_scrolled_window_get_vadjustment (GTK_SCROLLED_WINDOW (scroll));

  gtk_adjustment_set_value (adj, gtk_adjustment_get_upper (adj));
}

static gboolean
show_last_run_cb (gpointer data)
{
  SNNWB_WINDOW (data)->show_run_id = 0;
  show_last_run (data);
  return G_SOURCE_REMOVE;
}

void
snnwb_window_select_last_runs (SnnwbWindow *self, guint n)
{
  gtk_list_box_unselect_all (self->run_list);
  for (guint i = self->runs->len > n ? self->runs->len - n : 0; i < self->runs->len; i++)
    {
      GtkListBoxRow *row = find_run_row (self, self->runs->pdata[i]);

      if (row)
        gtk_list_box_select_row (self->run_list, row);
    }
  show_last_run (self);
}

/* Training */

static char *
format_status (SnnwbWindow *self, SnnwbRun *run)
{
  guint n;
  const SnnwbIterRecord *it = snnwb_run_get_iters (run, &n);
  const SnnExperiment *e = snnwb_run_get_experiment (run);
  g_autofree char *method = snnwb_run_describe_method (run);
  const char *state = snnwb_run_state_name (snnwb_run_get_state (run));
  long total = snnwb_run_get_total_iters (run);
  const SnnwbIterRecord *r;

  if (n == 0)
    return g_strdup_printf ("%s · %s · %s", snnwb_run_get_name (run), method, state);
  r = &it[n - 1];
  return g_strdup_printf ("%s · %s · %s · epoch %d/%d · iteration %ld/%ld · loss %.4f · batch accuracy %.1f %% · "
                          "forward %.2f ms, backward %.2f ms · %.0f iterations/s · lr %.4g",
                          snnwb_run_get_name (run), method, state, r->epoch + 1, e->epochs, r->iter + 1, total,
                          r->loss, r->acc * 100, r->forward_ms, r->backward_ms, snnwb_run_get_throughput (run),
                          r->lr);
}

static void
update_status (SnnwbWindow *self)
{
  g_autofree char *text = NULL;

  if (self->session)
    text = format_status (self, snnwb_session_get_run (self->session));
  else if (self->pending_weights)
    text = g_strdup_printf ("Ready · the next run starts from %s", self->pending_weights);
  else
    text = g_strdup ("Ready · press Train (Ctrl+Return) to start a run, or follow the steps of the Class page");
  gtk_inscription_set_text (self->status_label, text);
}

static void
maybe_finish_screenshot (SnnwbWindow *self);

/* Sessions kept on disk */

#define WEIGHTS_SAVED "snnwb-window-weights-iters"

/* Writes what changed; the current run's weights too when it is not
 * training and they moved since they were last written. */
static void
save_run (SnnwbWindow *self, SnnwbRun *run)
{
  g_autoptr (GError) error = NULL;
  SnnTrainer *tr = NULL;
  guint n;
  gboolean weights, ok;

  snnwb_run_get_iters (run, &n);
  weights = self->session && snnwb_session_get_run (self->session) == run && n > 0
            && snnwb_run_get_state (run) != SNNWB_RUN_RUNNING
            && GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (run), WEIGHTS_SAVED)) != n;
  if (snnwb_run_is_saved (run) && !weights)
    return;
  if (weights)
    tr = snnwb_session_lock_trainer (self->session);
  ok = snnwb_store_save_run (run, self->session_dir, tr ? snn_trainer_net (tr) : NULL, &error);
  if (tr)
    {
      snnwb_session_unlock_trainer (self->session);
      if (ok)
        g_object_set_data (G_OBJECT (run), WEIGHTS_SAVED, GUINT_TO_POINTER (n));
    }
  /* Said once, not at every autosave. */
  if (!ok && !self->save_failed)
    show_error (self, "Could not keep the run in the session folder", error);
  self->save_failed |= !ok;
}

static void
save_all (SnnwbWindow *self)
{
  for (guint i = 0; i < self->runs->len; i++)
    save_run (self, self->runs->pdata[i]);
}

static gboolean
autosave_cb (gpointer data)
{
  save_all (data);
  return G_SOURCE_CONTINUE;
}

static gboolean
save_idle_cb (gpointer data)
{
  SnnwbWindow *self = data;

  self->save_idle_id = 0;
  save_all (self);
  return G_SOURCE_REMOVE;
}

/* State changes, epochs and renames are written soon, coalesced. */
static void
schedule_save (SnnwbWindow *self)
{
  if (!self->save_idle_id && !self->disposed)
    self->save_idle_id = g_timeout_add (300, save_idle_cb, self);
}

static char *
scratch_session_dir (void)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y%m%d-%H%M%S");
  g_autofree char *name = g_strdup_printf ("unsaved-%s-%d", stamp, (int) getpid ());

  return g_build_filename (g_get_user_data_dir (), "snn-workbench", "sessions", name, NULL);
}

/* Moves a run's folder into dir (renamed; copied where rename cannot). */
static gboolean
move_run (SnnwbRun *run, const char *dir, GError **error)
{
  const char *old = snnwb_run_get_folder (run);
  g_autofree char *name = NULL;
  g_autofree char *target = NULL;

  if (!old)
    return TRUE;
  name = g_path_get_basename (old);
  target = g_build_filename (dir, name, NULL);
  for (int i = 1; g_file_test (target, G_FILE_TEST_EXISTS); i++)
    {
      g_free (target);
      target = g_strdup_printf ("%s/run-%03d", dir, i);
    }
  if (g_rename (old, target) == 0)
    {
      g_autofree char *w = g_build_filename (target, "weights.npz", NULL);

      snnwb_run_set_folder (run, target);
      if (snnwb_run_get_weights_path (run))
        snnwb_run_set_weights_path (run, w);
      return TRUE;
    }
  /* Another file system: written anew; the weights only where the run
   * still has them. */
  snnwb_run_set_folder (run, NULL);
  g_object_set_data (G_OBJECT (run), "snnwb-store-saved-iters", NULL);
  g_object_set_data (G_OBJECT (run), WEIGHTS_SAVED, NULL);
  snnwb_run_mark_saved (run, 0);
  return TRUE;
}

gboolean
snnwb_window_save_session_to (SnnwbWindow *self, const char *dir, GError **error)
{
  g_autofree char *old_dir = g_strdup (self->session_dir);

  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "%s: could not create the folder: %s", dir,
                   g_strerror (errno));
      return FALSE;
    }
  if (g_strcmp0 (old_dir, dir) != 0)
    for (guint i = 0; i < self->runs->len; i++)
      if (!move_run (self->runs->pdata[i], dir, error))
        return FALSE;
  /* The active run's checkpoints follow its folder (again below, where it
   * had to be written anew). */
  if (self->session && snnwb_run_get_folder (snnwb_session_get_run (self->session)))
    snnwb_session_set_run_dir (self->session, snnwb_run_get_folder (snnwb_session_get_run (self->session)));
  g_free (self->session_dir);
  self->session_dir = g_strdup (dir);
  self->session_chosen = TRUE;
  self->save_failed = FALSE;
  save_all (self);
  if (self->session)
    snnwb_session_set_run_dir (self->session, snnwb_run_get_folder (snnwb_session_get_run (self->session)));
  if (self->save_failed)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: could not write every run", dir);
      return FALSE;
    }
  /* The scratch folder is empty now. */
  if (old_dir && g_strcmp0 (old_dir, dir) != 0)
    g_rmdir (old_dir);
  update_title (self);
  return TRUE;
}

gboolean
snnwb_window_open_session (SnnwbWindow *self, const char *dir, GError **error)
{
  g_autoptr (GPtrArray) runs = NULL;

  /* Its runs are here already; twice would make two of each. */
  if (self->session_chosen && g_strcmp0 (self->session_dir, dir) == 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_EXIST, "%s: this session is open already", dir);
      return FALSE;
    }
  runs = snnwb_store_load_session (dir, error);
  if (!runs)
    return FALSE;
  /* Runs of this window go into the opened session too: nothing is lost. */
  if (!snnwb_window_save_session_to (self, dir, error))
    return FALSE;
  for (guint i = 0; i < runs->len; i++)
    {
      SnnwbRun *run = runs->pdata[i];

      self->run_counter = MAX (self->run_counter, snnwb_run_get_number (run));
      g_ptr_array_insert (self->runs, i, g_object_ref (run));
      add_run_row (self, run, FALSE);
    }
  refresh_curve_views (self);
  update_status (self);
  return TRUE;
}

const char *
snnwb_window_get_session_dir (SnnwbWindow *self)
{
  return self->session_dir;
}

gboolean
snnwb_window_is_session_saved (SnnwbWindow *self)
{
  return self->session_chosen;
}

/* Runs with something in them, only in the scratch folder. */
static guint
unsaved_runs (SnnwbWindow *self)
{
  guint count = 0;

  if (self->session_chosen)
    return 0;
  for (guint i = 0; i < self->runs->len; i++)
    {
      guint n;

      snnwb_run_get_iters (self->runs->pdata[i], &n);
      count += n > 0;
    }
  return count;
}

static void
discard_scratch (SnnwbWindow *self)
{
  if (self->session_chosen)
    return;
  for (guint i = 0; i < self->runs->len; i++)
    snnwb_store_delete_run (self->runs->pdata[i], NULL);
  if (self->session_dir)
    g_rmdir (self->session_dir);
}

/* Quitting */

/* Stops the run, writes what is left and, for a scratch session, removes
 * it: the user said so, or nothing in it was worth asking about. */
static void
finish_session (SnnwbWindow *self)
{
  if (self->session)
    {
      snnwb_session_stop (self->session);
      snnwb_session_join (self->session);
    }
  if (self->session_chosen)
    save_all (self);
  else
    discard_scratch (self);
}

static void session_folder_chosen (SnnwbWindow *self, const char *path, const char *then_close);
static void choose_session_folder (SnnwbWindow *self, const char *then_close);

static gboolean
close_later_cb (gpointer data)
{
  gtk_window_close (GTK_WINDOW (data));
  return G_SOURCE_REMOVE;
}

static void
quit_prompt_response_cb (GtkDialog *dialog, int response, SnnwbWindow *self)
{
  self->quit_prompt = NULL;
  gtk_window_destroy (GTK_WINDOW (dialog));
  /* The window goes after the dialog has, outside its signal. */
  if (response == GTK_RESPONSE_REJECT)
    {
      self->ask_before_close = FALSE;
      g_idle_add_full (G_PRIORITY_DEFAULT, close_later_cb, g_object_ref (self), g_object_unref);
    }
  else if (response == GTK_RESPONSE_ACCEPT)
    choose_session_folder (self, "close");
}

static void
show_quit_prompt (SnnwbWindow *self, guint n)
{
  GtkWidget *dialog = gtk_message_dialog_new (GTK_WINDOW (self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                              GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                              n == 1 ? "Keep the run of this session?" : "Keep the %u runs of this session?", n);

  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s",
                                            n == 1 ? "It was never saved in a session folder. Save it to reopen it later "
                                                     "with its settings, curves and weights; otherwise it is deleted."
                                                   : "They were never saved in a session folder. Save them to reopen them "
                                                     "later with their settings, curves and weights; otherwise they are "
                                                     "deleted.");
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), "_Delete Runs", GTK_RESPONSE_REJECT, "_Cancel", GTK_RESPONSE_CANCEL,
                          "_Save Session…", GTK_RESPONSE_ACCEPT, NULL);
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_ACCEPT);
  gtk_widget_add_css_class (gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog), GTK_RESPONSE_REJECT),
                            "destructive-action");
  gtk_widget_add_css_class (gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog), GTK_RESPONSE_ACCEPT),
                            "suggested-action");
  g_signal_connect (dialog, "response", G_CALLBACK (quit_prompt_response_cb), self);
  self->quit_prompt = dialog;
  gtk_window_present (GTK_WINDOW (dialog));
}

static gboolean
close_request_cb (SnnwbWindow *self)
{
  guint n;

  if (self->quit_prompt)
    return TRUE;
  n = unsaved_runs (self);
  if (self->ask_before_close && n > 0)
    {
      show_quit_prompt (self, n);
      return TRUE;
    }
  finish_session (self);
  return FALSE;
}

GtkWidget *
snnwb_window_get_quit_prompt (SnnwbWindow *self)
{
  return self->quit_prompt;
}

void
snnwb_window_set_ask_before_close (SnnwbWindow *self, gboolean ask)
{
  self->ask_before_close = ask;
}

static void
session_updated_cb (SnnwbSession *session, SnnwbWindow *self)
{
  SnnwbProbe *probe = snnwb_session_get_probe (session);
  SnnwbEpsilon *eps = snnwb_session_get_epsilon (session);
  SnnwbGradient *grad = snnwb_session_get_gradient (session);

  if (probe && probe != self->shown_probe)
    {
      self->shown_probe = probe;
      snnwb_chart_view_set_probe (self->views[SNNWB_CHART_RASTER], probe);
      snnwb_chart_view_set_probe (self->views[SNNWB_CHART_TRACES], probe);
    }
  if (eps && eps != self->shown_epsilon)
    {
      self->shown_epsilon = eps;
      snnwb_chart_view_set_epsilon (self->views[SNNWB_CHART_EPSILON], eps);
    }
  /* Also redraws the cosine curve, which may have new points. */
  self->shown_gradient = grad;
  snnwb_gradient_view_set_gradient (self->gradient_view, grad);
  for (int k = SNNWB_CHART_LOSS; k <= SNNWB_CHART_TIME; k++)
    snnwb_chart_view_runs_updated (self->views[k]);
  /* Peak memory and median time move with every iteration; the row
   * follows about once a second. */
  if (g_get_monotonic_time () - self->row_refreshed > G_USEC_PER_SEC)
    {
      GtkListBoxRow *row = find_run_row (self, snnwb_session_get_run (session));

      self->row_refreshed = g_get_monotonic_time ();
      if (row)
        fill_run_row (row, snnwb_session_get_run (session));
    }
  update_status (self);
  maybe_finish_screenshot (self);
}

static void
session_state_cb (SnnwbSession *session, SnnwbWindow *self)
{
  SnnwbRunState state = snnwb_session_get_state (session);
  const GError *error = snnwb_session_get_error (session);

  if (state >= SNNWB_RUN_STOPPED)
    snnwb_session_join (session);
  if (error)
    show_error (self, "Training failed", error);
  /* A run that failed before its first iteration has nothing to show: the
   * message says why, and the list keeps no empty failed run. */
  if (state == SNNWB_RUN_FAILED && snnwb_session_get_reported_iters (session) == 0)
    {
      SnnwbRun *run = snnwb_session_get_run (session);

      drop_session (self);
      snnwb_window_delete_run (self, run);
    }
  update_actions (self);
  update_status (self);
  maybe_finish_screenshot (self);
}

static void
drop_session (SnnwbWindow *self)
{
  if (!self->session)
    return;
  g_signal_handlers_disconnect_by_data (self->session, self);
  snnwb_session_join (self->session);
  g_clear_object (&self->session);
  self->shown_probe = NULL;
  self->shown_epsilon = NULL;
  self->shown_gradient = NULL;
}

static gboolean
session_active (SnnwbWindow *self)
{
  return self->session && snnwb_session_is_active (self->session);
}

/* Trains run on a new worker: from the start, or from the checkpoint in
 * its folder (resume). The previous run's weights go with it first. */
static void
begin_session (SnnwbWindow *self, SnnwbRun *run, gboolean paused, gboolean resume)
{
  /* A message about an earlier run does not stay up into this one. */
  if (self->message)
    info_bar_response_cb (self, GTK_RESPONSE_CLOSE);
  if (self->session)
    save_run (self, snnwb_session_get_run (self->session));
  drop_session (self);
  self->session = snnwb_session_new (run);
  if (self->pending_weights && !resume)
    snnwb_session_set_initial_weights (self->session, self->pending_weights);
  if (!resume)
    g_clear_pointer (&self->pending_weights, g_free);
  g_signal_connect (self->session, "updated", G_CALLBACK (session_updated_cb), self);
  g_signal_connect (self->session, "state-changed", G_CALLBACK (session_state_cb), self);
  snnwb_session_set_pace (self->session, self->pace);
  snnwb_session_set_analysis_interval (self->session, snnwb_gradient_view_get_interval (self->gradient_view));
  snnwb_gradient_view_set_run (self->gradient_view, run);
  rebuild_lif_choices (self, snnwb_run_get_experiment (run)->model);
  if (!resume)
    add_run_row (self, run, TRUE);
  /* The folder first: the worker keeps its checkpoints there. */
  save_run (self, run);
  snnwb_session_set_run_dir (self->session, snnwb_run_get_folder (run));
  if (resume)
    snnwb_session_set_resume (self->session);
  snnwb_session_start (self->session, paused);
  refresh_curve_views (self);
  update_actions (self);
  update_status (self);
}

static void
start_run (SnnwbWindow *self, gboolean paused)
{
  g_autoptr (SnnwbRun) run = NULL;
  g_autoptr (GError) error = NULL;

  if (!snnwb_layer_editor_is_valid (self->layer_editor) || session_active (self))
    return;
  /* The network may have changed since the weights were chosen. */
  if (self->pending_weights && !check_weights (self, self->pending_weights, &error))
    {
      show_error (self, "Could not start from the weights", error);
      return;
    }
  run = snnwb_run_new (self->experiment, ++self->run_counter);
  g_ptr_array_add (self->runs, g_object_ref (run));
  begin_session (self, run, paused, FALSE);
}

gboolean
snnwb_window_can_continue_run (SnnwbWindow *self, SnnwbRun *run)
{
  const char *dir = snnwb_run_get_folder (run);
  g_autofree char *ck = dir ? g_build_filename (dir, "checkpoint.npz", NULL) : NULL;

  if (self && session_active (self))
    return FALSE;
  return snnwb_run_get_state (run) == SNNWB_RUN_STOPPED && ck && g_file_test (ck, G_FILE_TEST_IS_REGULAR);
}

gboolean
snnwb_window_continue_run (SnnwbWindow *self, SnnwbRun *run, GError **error)
{
  if (session_active (self))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "%s: another run is training; stop it first",
                   snnwb_run_get_name (run));
      return FALSE;
    }
  if (!snnwb_window_can_continue_run (self, run))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: nothing to continue (the run finished, failed, "
                   "or its folder keeps no checkpoint.npz)", snnwb_run_get_name (run));
      return FALSE;
    }
  gtk_list_box_unselect_all (self->run_list);
  gtk_list_box_select_row (self->run_list, find_run_row (self, run));
  begin_session (self, run, FALSE, TRUE);
  return TRUE;
}

static void
train_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  start_run (SNNWB_WINDOW (user_data), FALSE);
}

static void
pause_change_state (GSimpleAction *action, GVariant *value, gpointer user_data)
{
  SnnwbWindow *self = user_data;

  if (!session_active (self))
    return;
  if (g_variant_get_boolean (value))
    snnwb_session_pause (self->session);
  else
    snnwb_session_resume (self->session);
  update_actions (self);
}

static void
step_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;

  if (!session_active (self))
    start_run (self, TRUE);
  if (self->session && snnwb_session_is_active (self->session))
    snnwb_session_step (self->session);
  update_actions (self);
}

static void
stop_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;

  if (self->session)
    snnwb_session_stop (self->session);
}

static void
set_enabled (SnnwbWindow *self, const char *name, gboolean enabled)
{
  GAction *action = g_action_map_lookup_action (G_ACTION_MAP (self), name);

  g_simple_action_set_enabled (G_SIMPLE_ACTION (action), enabled);
}

/* A what-if tau needs a model that is not training: a paused run, or one
 * that stopped or finished. */
static gboolean
what_if_allowed (SnnwbWindow *self)
{
  SnnwbRunState state;

  if (!self->session)
    return FALSE;
  state = snnwb_session_get_state (self->session);
  if (snnwb_session_is_active (self->session))
    return snnwb_session_is_paused (self->session) && state != SNNWB_RUN_LOADING;
  return state == SNNWB_RUN_STOPPED || state == SNNWB_RUN_FINISHED;
}

/* A run trains the network it started with: edits while it is active
 * would be silently ignored by it, so the editor refuses them and says so. */
static void
update_network_lock (SnnwbWindow *self, gboolean active)
{
  if (active)
    {
      g_autofree char *text = g_strdup_printf ("%s is using this network. Stop it to edit the network for a new run.",
                                               snnwb_run_get_name (snnwb_session_get_run (self->session)));

      gtk_label_set_text (self->network_lock_label, text);
    }
  gtk_widget_set_sensitive (GTK_WIDGET (self->layer_editor), !active);
  gtk_revealer_set_reveal_child (self->network_lock, active);
}

const char *
snnwb_window_get_network_lock (SnnwbWindow *self)
{
  return gtk_revealer_get_reveal_child (self->network_lock) ? gtk_label_get_text (self->network_lock_label) : NULL;
}

static void
update_actions (SnnwbWindow *self)
{
  gboolean valid = self->experiment && snnwb_layer_editor_is_valid (self->layer_editor);
  gboolean active = session_active (self);
  gboolean paused = active && snnwb_session_is_paused (self->session);
  GAction *pause = g_action_map_lookup_action (G_ACTION_MAP (self), "pause");

  if (!pause)
    return;
  set_enabled (self, "train", valid && !active);
  set_enabled (self, "pause", active);
  set_enabled (self, "step", (valid && !active) || paused);
  set_enabled (self, "stop", active);
  set_enabled (self, "save-weights", self->session != NULL);
  snnwb_gradient_view_set_tau_enabled (self->gradient_view, what_if_allowed (self));
  g_simple_action_set_state (G_SIMPLE_ACTION (pause), g_variant_new_boolean (paused));
  snnwb_settings_panel_set_training (self->settings_panel, active, paused);
  gtk_widget_set_sensitive (GTK_WIDGET (self->preset_dd), TRUE);
  update_network_lock (self, active);
}

/* Files */

typedef void (*FileChosenFunc) (SnnwbWindow *self, const char *path, const char *extra);

typedef struct {
  SnnwbWindow *self;
  FileChosenFunc func;
  char *extra;
} ChooserData;

static void
chooser_response_cb (GtkNativeDialog *dialog, int response, gpointer user_data)
{
  ChooserData *data = user_data;

  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);

      data->func (data->self, path, data->extra);
    }
  g_object_unref (data->self);
  g_free (data->extra);
  g_free (data);
  g_object_unref (dialog);
}

static void
add_filter (GtkFileChooser *chooser, const char *name, const char *pattern)
{
  g_autoptr (GtkFileFilter) filter = gtk_file_filter_new ();

  gtk_file_filter_set_name (filter, name);
  gtk_file_filter_add_pattern (filter, pattern);
  gtk_file_chooser_add_filter (chooser, filter);
}

/* The chooser of a save asks before replacing a file (GTK 4 always does). */
static void
choose_file (SnnwbWindow *self, const char *title, gboolean save, const char *suggested,
             const char *const *filters, FileChosenFunc func, const char *extra)
{
  GtkFileChooserNative *dialog =
    gtk_file_chooser_native_new (title, GTK_WINDOW (self),
                                 save ? GTK_FILE_CHOOSER_ACTION_SAVE
                                 : g_strcmp0 (extra, "folder") == 0 ? GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER
                                 : GTK_FILE_CHOOSER_ACTION_OPEN,
                                 save ? "_Save" : "_Open", "_Cancel");
  ChooserData *data = g_new0 (ChooserData, 1);

  for (int i = 0; filters && filters[i]; i += 2)
    add_filter (GTK_FILE_CHOOSER (dialog), filters[i], filters[i + 1]);
  if (suggested)
    gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (dialog), suggested);
  data->self = g_object_ref (self);
  data->func = func;
  data->extra = g_strdup (extra);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (dialog), TRUE);
  g_signal_connect (dialog, "response", G_CALLBACK (chooser_response_cb), data);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

static const char *const json_filters[] = { "Experiments (*.json)", "*.json", "All files", "*", NULL };
static const char *const npz_filters[] = { "Weights (*.npz)", "*.npz", "All files", "*", NULL };
static const char *const image_filters[] = { "PNG image", "*.png", "SVG image", "*.svg", "PDF document", "*.pdf", NULL };
static const char *const csv_filters[] = { "CSV (*.csv)", "*.csv", NULL };

static void
open_chosen (SnnwbWindow *self, const char *path, const char *extra)
{
  if (snnwb_window_open_experiment (self, path))
    info_bar_response_cb (self, 0);
}

static void
save_chosen (SnnwbWindow *self, const char *path, const char *extra)
{
  g_autoptr (GError) error = NULL;

  if (!snnwb_window_save_experiment_to (self, path, &error))
    show_error (self, "Could not save the experiment", error);
}

static void
open_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  choose_file (user_data, "Open Experiment", FALSE, NULL, json_filters, open_chosen, NULL);
}

static void
session_folder_chosen (SnnwbWindow *self, const char *path, const char *then_close)
{
  g_autoptr (GError) error = NULL;

  if (!snnwb_window_save_session_to (self, path, &error))
    {
      show_error (self, "Could not save the session", error);
      return;
    }
  if (then_close)
    gtk_window_close (GTK_WINDOW (self));
}

static void
open_session_chosen (SnnwbWindow *self, const char *path, const char *extra)
{
  g_autoptr (GError) error = NULL;

  if (!snnwb_window_open_session (self, path, &error))
    show_error (self, "Could not open the session", error);
}

static void
choose_session_folder (SnnwbWindow *self, const char *then_close)
{
  choose_file (self, "Save Session in a Folder", TRUE, "snn-session", NULL, session_folder_chosen, then_close);
}

static void
save_session_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  choose_session_folder (user_data, NULL);
}

static void
open_session_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  choose_file (user_data, "Open Session Folder", FALSE, NULL, NULL, open_session_chosen, "folder");
}

static void
save_as_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;
  g_autofree char *name = g_strdup_printf ("%s.experiment.json", self->experiment->name ? self->experiment->name : "experiment");

  choose_file (self, "Save Experiment", TRUE, name, json_filters, save_chosen, NULL);
}

static void
save_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;

  /* Only a file this window saved through the chooser is written in place. */
  if (self->file_path)
    save_chosen (self, self->file_path, NULL);
  else
    save_as_activated (action, param, user_data);
}

static void
export_done_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnnwbWindow *self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_object_steal_data (G_OBJECT (self), "export-dir");

  if (snn_export_pytorch_finish (result, &error))
    {
      g_autofree char *text = g_strdup_printf ("Exported to PyTorch: %s (model.py, train.py, README.md)", dir);
      show_message (self, GTK_MESSAGE_INFO, text);
    }
  else
    show_error (self, "Could not export to PyTorch", error);
  g_object_unref (self);
}

/* The experiment and the current weights (or the seed's) are copied here;
 * the files are written on a worker thread. */
static void
export_chosen (SnnwbWindow *self, const char *path, const char *extra)
{
  SnnNpz *weights = NULL;

  if (self->session)
    {
      SnnTrainer *tr = snnwb_session_lock_trainer (self->session);

      if (!tr)
        {
          show_message (self, GTK_MESSAGE_WARNING, "Pause or stop training before exporting.");
          return;
        }
      weights = snn_net_to_npz (snn_trainer_net (tr), FALSE);
      snnwb_session_unlock_trainer (self->session);
    }
  g_object_set_data_full (G_OBJECT (self), "export-dir", g_strdup (path), g_free);
  snn_export_pytorch_async (snn_experiment_copy (self->experiment), weights, path, NULL, export_done_cb,
                            g_object_ref (self));
}

static void
export_pytorch_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;
  g_autofree char *name = g_strdup_printf ("%s-pytorch", self->experiment->name ? self->experiment->name : "experiment");

  choose_file (self, "Export to PyTorch (a new folder)", TRUE, name, NULL, export_chosen, NULL);
}

static void
save_weights_chosen (SnnwbWindow *self, const char *path, const char *extra)
{
  g_autoptr (GError) error = NULL;
  SnnTrainer *tr = self->session ? snnwb_session_lock_trainer (self->session) : NULL;
  g_autofree char *what = g_strdup_printf ("Could not save the weights to %s", path);

  if (!tr)
    {
      show_message (self, GTK_MESSAGE_WARNING, "Pause or stop training before saving the weights.");
      return;
    }
  if (!snn_net_save_npz (snn_trainer_net (tr), path, &error))
    show_error (self, what, error);
  snnwb_session_unlock_trainer (self->session);
}

static void
save_weights_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;
  g_autofree char *name = g_strdup_printf ("%s.npz", self->experiment->name ? self->experiment->name : "weights");

  choose_file (self, "Save Weights", TRUE, name, npz_filters, save_weights_chosen, NULL);
}

/* Loads the weights into a network built from the model being edited, so
 * a file that does not fit is refused when it is chosen, not at Train. */
static gboolean
check_weights (SnnwbWindow *self, const char *path, GError **error)
{
  SnnNet *net;
  gboolean ok;

  if (!snnwb_layer_editor_is_valid (self->layer_editor))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: the network has a problem; fix it before loading weights into it", path);
      return FALSE;
    }
  /* Checked on the host: the file is read the same whatever the backend. */
  const SnnBackend *cpu = snn_backend_get ("cpu", error);
  if (!cpu)
    return FALSE;
  net = snn_net_new (self->experiment->model, cpu);
  ok = snn_net_load_npz (net, path, error);
  snn_net_free (net);
  return ok;
}

static gboolean
load_weights (SnnwbWindow *self, const char *path, GError **error)
{
  SnnTrainer *tr;

  /* A paused run continues from the weights; otherwise the next run starts
   * from them. */
  if (session_active (self) && snnwb_session_is_paused (self->session)
      && (tr = snnwb_session_lock_trainer (self->session)))
    {
      gboolean ok = snn_trainer_load_weights (tr, path, error);

      snnwb_session_unlock_trainer (self->session);
      return ok;
    }
  if (session_active (self))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "%s: pause training before loading weights", path);
      return FALSE;
    }
  if (!check_weights (self, path, error))
    return FALSE;
  g_free (self->pending_weights);
  self->pending_weights = g_strdup (path);
  drop_session (self);
  update_status (self);
  update_actions (self);
  return TRUE;
}

gboolean
snnwb_window_load_weights (SnnwbWindow *self, const char *path, GError **error)
{
  GError *local = NULL;

  if (load_weights (self, path, &local))
    return TRUE;
  show_error (self, "Could not load the weights", local);
  g_propagate_error (error, local);
  return FALSE;
}

static void
load_weights_chosen (SnnwbWindow *self, const char *path, const char *extra)
{
  snnwb_window_load_weights (self, path, NULL);
}

static void
load_weights_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  choose_file (user_data, "Load Weights", FALSE, NULL, npz_filters, load_weights_chosen, NULL);
}

static void
export_view_chosen (SnnwbWindow *self, const char *path, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *full = strrchr (path, '.') > strrchr (path, '/') ? g_strdup (path) : g_strconcat (path, ".png", NULL);
  g_autofree char *what = g_strdup_printf ("Could not export the view to %s", full);

  if (g_str_equal (name, "gradients") ? !snnwb_gradient_view_export (self->gradient_view, full, &error)
                                      : !snnwb_chart_view_export (snnwb_window_get_view (self, name), full, &error))
    show_error (self, what, error);
}

static void
export_csv_chosen (SnnwbWindow *self, const char *path, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *what = g_strdup_printf ("Could not export the curves to %s", path);

  if (g_str_equal (name, "gradients") ? !snnwb_gradient_view_export_csv (self->gradient_view, path, &error)
                                      : !snnwb_chart_view_export_csv (snnwb_window_get_view (self, name), path, &error))
    show_error (self, what, error);
}

static void
export_view_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  const char *name = g_variant_get_string (param, NULL);
  g_autofree char *file = g_strdup_printf ("%s.png", name);

  if (snnwb_window_get_view (user_data, name) || g_str_equal (name, "gradients"))
    choose_file (user_data, "Export View", TRUE, file, image_filters, export_view_chosen, name);
}

static void
export_csv_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  const char *name = g_variant_get_string (param, NULL);
  g_autofree char *file = g_strdup_printf ("%s.csv", name);

  if (snnwb_window_get_view (user_data, name) || g_str_equal (name, "gradients"))
    choose_file (user_data, "Export Curves", TRUE, file, csv_filters, export_csv_chosen, name);
}

static void
show_panel_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;

  gtk_stack_set_visible_child_name (self->sidebar_stack, g_variant_get_string (param, NULL));
}

static void
add_layer_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SnnwbWindow *self = user_data;

  gtk_stack_set_visible_child_name (self->sidebar_stack, "network");
  gtk_widget_activate_action (GTK_WIDGET (self->layer_editor), "layer.add", "s", g_variant_get_string (param, NULL));
}

static const GActionEntry win_entries[] = {
  { .name = "train", .activate = train_activated },
  { .name = "pause", .state = "false", .change_state = pause_change_state },
  { .name = "step", .activate = step_activated },
  { .name = "stop", .activate = stop_activated },
  { .name = "open", .activate = open_activated },
  { .name = "open-session", .activate = open_session_activated },
  { .name = "save-session", .activate = save_session_activated },
  { .name = "save", .activate = save_activated },
  { .name = "save-as", .activate = save_as_activated },
  { .name = "save-weights", .activate = save_weights_activated },
  { .name = "export-pytorch", .activate = export_pytorch_activated },
  { .name = "load-weights", .activate = load_weights_activated },
  { .name = "export-view", .activate = export_view_activated, .parameter_type = "s" },
  { .name = "export-csv", .activate = export_csv_activated, .parameter_type = "s" },
  { .name = "show-panel", .activate = show_panel_activated, .parameter_type = "s" },
  { .name = "presentation", .state = "false", .change_state = presentation_change_state },
  { .name = "add-layer", .activate = add_layer_activated, .parameter_type = "s" },
};

/* Space pauses and resumes wherever the focus is, a drop-down or a button
 * included (it would open or press them), except where it types: text
 * fields and spin buttons, and menus that are open. */
static gboolean
space_pressed_cb (GtkEventControllerKey *controller, guint keyval, guint keycode, GdkModifierType state,
                  SnnwbWindow *self)
{
  GtkWidget *focus = gtk_root_get_focus (GTK_ROOT (self));

  if (keyval != GDK_KEY_space || (state & gtk_accelerator_get_default_mod_mask ()))
    return FALSE;
  if (focus && (GTK_IS_TEXT (focus) || GTK_IS_EDITABLE (focus) || gtk_widget_get_ancestor (focus, GTK_TYPE_POPOVER)))
    return FALSE;
  if (!g_action_group_get_action_enabled (G_ACTION_GROUP (self), "pause"))
    return FALSE;
  g_action_group_activate_action (G_ACTION_GROUP (self), "pause", NULL);
  return TRUE;
}

static void
add_space_shortcut (SnnwbWindow *self)
{
  GtkEventController *controller = gtk_event_controller_key_new ();

  gtk_event_controller_set_propagation_phase (controller, GTK_PHASE_CAPTURE);
  g_signal_connect (controller, "key-pressed", G_CALLBACK (space_pressed_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), controller);
}

/* Screenshots */

gboolean
snnwb_window_save_png (SnnwbWindow *self, const char *path, GError **error)
{
  GtkWidget *widget = GTK_WIDGET (self);
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  g_autoptr (GdkPaintable) paintable = gtk_widget_paintable_new (widget);
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  g_autoptr (GskRenderNode) node = NULL;
  g_autoptr (GdkTexture) texture = NULL;
  GskRenderer *renderer = gtk_native_get_renderer (GTK_NATIVE (self));

  gdk_paintable_snapshot (paintable, snapshot, w, h);
  node = gtk_snapshot_free_to_node (snapshot);
  if (!node || !renderer)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: the window has not been drawn yet", path);
      return FALSE;
    }
  texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, w, h));
  g_autoptr (GBytes) png = gdk_texture_save_to_png_bytes (texture);
  return snn_file_write_atomic (path, g_bytes_get_data (png, NULL), g_bytes_get_size (png), error);
}

static gboolean
screenshot_timeout_cb (gpointer user_data)
{
  SnnwbWindow *self = user_data;
  g_autoptr (GError) error = NULL;

  if (!snnwb_window_save_png (self, self->screenshot_path, &error))
    g_printerr ("%s\n", error->message);
  else
    {
      SnnwbRun *run = self->runs->pdata[self->runs->len - 1];
      guint n;

      snnwb_run_get_iters (run, &n);
      g_print ("Saved %s (%s)\n", self->screenshot_path, gtk_inscription_get_text (self->status_label));
      g_print ("Training throughput: %.2f iterations/s over %u iterations\n", snnwb_run_get_throughput (run), n);
    }
  gtk_window_close (GTK_WINDOW (self));
  return G_SOURCE_REMOVE;
}

static void
screenshot_next_run (SnnwbWindow *self)
{
  static const SnnMethod methods[] = { SNN_METHOD_SLTT, SNN_METHOD_BPTT, SNN_METHOD_SLTT_K };

  self->experiment->train.method = methods[self->run_counter % G_N_ELEMENTS (methods)];
  snnwb_settings_panel_refresh (self->settings_panel);
  start_run (self, FALSE);
}

/* Runs the screenshot plan: each run trains the given iterations, then the
 * next starts; after the last, the window is captured. */
static void
maybe_finish_screenshot (SnnwbWindow *self)
{
  SnnwbRunState state;

  if (!self->screenshot_path || self->screenshot_taken || !self->session)
    return;
  state = snnwb_session_get_state (self->session);
  if (snnwb_session_get_reported_iters (self->session) >= self->screenshot_iters && state == SNNWB_RUN_RUNNING)
    {
      if (self->run_counter < self->screenshot_runs)
        snnwb_session_stop (self->session);
      else
        snnwb_session_pause (self->session);
      return;
    }
  if (state >= SNNWB_RUN_STOPPED && self->run_counter < self->screenshot_runs)
    {
      screenshot_next_run (self);
      return;
    }
  if (state == SNNWB_RUN_PAUSED || state >= SNNWB_RUN_STOPPED)
    {
      self->screenshot_taken = TRUE;
      if (self->screenshot_runs > 1)
        snnwb_window_select_all_runs (self);
      update_actions (self);
      /* Let the views draw the last data first. */
      g_timeout_add (800, screenshot_timeout_cb, self);
    }
}

static gboolean
screenshot_start_cb (gpointer user_data)
{
  screenshot_next_run (user_data);
  return G_SOURCE_REMOVE;
}

void
snnwb_window_run_screenshot (SnnwbWindow *self, const char *path, int iterations, int runs, const char *panel)
{
  g_free (self->screenshot_path);
  self->screenshot_path = g_strdup (path);
  self->ask_before_close = FALSE;
  self->screenshot_iters = MAX (iterations, 1);
  self->screenshot_runs = MAX (runs, 1);
  if (panel)
    gtk_stack_set_visible_child_name (self->sidebar_stack, panel);
  g_timeout_add (300, screenshot_start_cb, self);
}

/* Accessors */

SnnwbLayerEditor *
snnwb_window_get_layer_editor (SnnwbWindow *self)
{
  return self->layer_editor;
}

SnnwbSettingsPanel *
snnwb_window_get_settings_panel (SnnwbWindow *self)
{
  return self->settings_panel;
}

guint
snnwb_window_get_view_data_count (SnnwbWindow *self, const char *name)
{
  SnnwbChartView *view = snnwb_window_get_view (self, name);

  if (g_str_equal (name, "gradients"))
    return snnwb_gradient_view_get_data_count (self->gradient_view);
  return view ? snnwb_chart_view_get_data_count (view) : 0;
}

void
snnwb_window_set_traced_neurons (SnnwbWindow *self, const char *text)
{
  gtk_editable_set_text (GTK_EDITABLE (self->neurons_entry), text);
}

GtkListBox *
snnwb_window_get_run_list (SnnwbWindow *self)
{
  return self->run_list;
}

GtkWidget *
snnwb_window_get_walkthrough (SnnwbWindow *self)
{
  return self->walkthrough;
}

GtkWidget *
snnwb_window_get_neurons_entry (SnnwbWindow *self)
{
  return GTK_WIDGET (self->neurons_entry);
}

GtkDropDown *
snnwb_window_get_preset_drop_down (SnnwbWindow *self)
{
  return self->preset_dd;
}

SnnwbGradientView *
snnwb_window_get_gradient_view (SnnwbWindow *self)
{
  return self->gradient_view;
}

guint
snnwb_window_get_n_runs (SnnwbWindow *self)
{
  return self->runs->len;
}

SnnwbRun *
snnwb_window_get_run (SnnwbWindow *self, guint index)
{
  return index < self->runs->len ? self->runs->pdata[index] : NULL;
}

long
snnwb_window_get_reported_iters (SnnwbWindow *self)
{
  return self->session ? snnwb_session_get_reported_iters (self->session) : 0;
}

SnnwbRunState
snnwb_window_get_run_state (SnnwbWindow *self)
{
  return self->session ? snnwb_session_get_state (self->session) : SNNWB_RUN_STOPPED;
}

const char *
snnwb_window_get_message (SnnwbWindow *self)
{
  return self->message;
}

/* GObject */

static void
snnwb_window_dispose (GObject *object)
{
  SnnwbWindow *self = SNNWB_WINDOW (object);

  self->disposed = TRUE;
  g_clear_handle_id (&self->autosave_id, g_source_remove);
  g_clear_handle_id (&self->save_idle_id, g_source_remove);
  g_clear_handle_id (&self->show_run_id, g_source_remove);
  g_clear_handle_id (&self->cards_id, g_source_remove);
  drop_session (self);
  /* Destroyed without the close question (by a script or a test): a
   * scratch session has no one left to keep it for. */
  if (self->runs)
    discard_scratch (self);
  G_OBJECT_CLASS (snnwb_window_parent_class)->dispose (object);
}

static void
snnwb_window_finalize (GObject *object)
{
  SnnwbWindow *self = SNNWB_WINDOW (object);

  snn_experiment_free (self->experiment);
  g_ptr_array_unref (self->runs);
  g_strfreev (self->presets);
  g_free (self->file_path);
  g_free (self->message);
  g_free (self->pending_weights);
  g_free (self->screenshot_path);
  g_free (self->session_dir);
  G_OBJECT_CLASS (snnwb_window_parent_class)->finalize (object);
}

static void
snnwb_window_class_init (SnnwbWindowClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  G_OBJECT_CLASS (klass)->dispose = snnwb_window_dispose;
  G_OBJECT_CLASS (klass)->finalize = snnwb_window_finalize;

  g_type_ensure (SNNWB_TYPE_LAYER_EDITOR);
  g_type_ensure (SNNWB_TYPE_SETTINGS_PANEL);
  /* Referencing the bundle links it (and its registration) in from the
   * static library. */
  snnwb_get_resource ();
  gtk_widget_class_set_template_from_resource (widget_class, "/org/snnworkbench/Workbench/snnwb-window.ui");
#define BIND(name) gtk_widget_class_bind_template_child (widget_class, SnnwbWindow, name)
  BIND (preset_dd); BIND (pace_dd); BIND (title_label); BIND (subtitle_label); BIND (info_bar); BIND (info_label);
  BIND (sidebar_stack); BIND (layer_editor); BIND (network_lock); BIND (network_lock_label); BIND (settings_panel); BIND (views_paned); BIND (main_paned); BIND (cards); BIND (analysis_row);
  BIND (run_list); BIND (status_label);
#undef BIND
  gtk_widget_class_bind_template_callback (widget_class, preset_selected_cb);
  gtk_widget_class_bind_template_callback (widget_class, pace_selected_cb);
  gtk_widget_class_bind_template_callback (widget_class, info_bar_response_cb);
  gtk_widget_class_bind_template_callback (widget_class, model_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, settings_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, settings_model_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, settings_live_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, run_selection_changed_cb);
}

static void
load_default_experiment (SnnwbWindow *self)
{
  g_autofree char *preset = snnwb_window_default_preset ();
  g_autoptr (GError) error = NULL;

  if (snnwb_window_load_experiment (self, preset, &error))
    {
      select_preset_item (self, preset);
      return;
    }
  show_error (self, "Could not load the default preset", error);
  set_experiment (self, snn_experiment_new_default (), NULL);
  self->experiment->model = snn_model_new (&(SnnShape) { 1, { 32 } }, 4);
  snnwb_window_experiment_changed (self);
}

/* The views take all the height the run list's minimum leaves them, as
 * the window is resized (a drag of the handle holds until the next one). */
static void
keep_run_list_cb (SnnwbWindow *self)
{
  int max;

  g_object_get (self->views_paned, "max-position", &max, NULL);
  gtk_paned_set_position (self->views_paned, max);
}

static void
snnwb_window_init (SnnwbWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->runs = g_ptr_array_new_with_free_func (g_object_unref);
  self->session_dir = scratch_session_dir ();
  self->ask_before_close = TRUE;
  self->autosave_id = g_timeout_add_seconds (5, autosave_cb, self);
  g_signal_connect (self, "close-request", G_CALLBACK (close_request_cb), NULL);
  g_action_map_add_action_entries (G_ACTION_MAP (self), win_entries, G_N_ELEMENTS (win_entries), self);
  add_space_shortcut (self);
  build_views (self);
  /* Set here: the builder resets them as it adds a paned's children. */
  gtk_paned_set_shrink_start_child (self->main_paned, FALSE);
  gtk_paned_set_resize_start_child (self->main_paned, FALSE);
  gtk_paned_set_shrink_start_child (self->views_paned, FALSE);
  gtk_paned_set_shrink_end_child (self->views_paned, FALSE);
  gtk_paned_set_resize_end_child (self->views_paned, FALSE);
  g_signal_connect_swapped (self->views_paned, "notify::max-position", G_CALLBACK (keep_run_list_cb), self);
  self->walkthrough = snnwb_walkthrough_new (self);
  gtk_stack_add_titled (self->sidebar_stack, self->walkthrough, "class", "Class");
  /* A new user starts with the walk-through: what to do, what to look at. */
  gtk_stack_set_visible_child_name (self->sidebar_stack, "class");
  setup_presets (self);
  load_default_experiment (self);
  update_status (self);
}

/* The default size, but never larger than the screen (a laptop's
 * 1024x700 included). */
static void
fit_default_size (SnnwbWindow *self)
{
  GListModel *monitors = gdk_display_get_monitors (gtk_widget_get_display (GTK_WIDGET (self)));
  g_autoptr (GdkMonitor) monitor = g_list_model_get_n_items (monitors) ? g_list_model_get_item (monitors, 0) : NULL;
  GdkRectangle area;
  int w, h;

  if (!monitor)
    return;
  gdk_monitor_get_geometry (monitor, &area);
  gtk_window_get_default_size (GTK_WINDOW (self), &w, &h);
  gtk_window_set_default_size (GTK_WINDOW (self), MIN (w, area.width), MIN (h, area.height));
}

SnnwbWindow *
snnwb_window_new (GtkApplication *app)
{
  SnnwbWindow *self = g_object_new (SNNWB_TYPE_WINDOW, "application", app, NULL);

  fit_default_size (self);
  return self;
}
