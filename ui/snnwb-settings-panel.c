#include "snnwb-settings-panel.h"
#include "snnwb-resources.h"
#include "snnwb-chart-view.h"

struct _SnnwbSettingsPanel {
  GtkBox parent_instance;

  GtkGrid *grid;
  GtkEntry *name_entry;
  GtkDropDown *method_dd;
  GtkSpinButton *k_spin;
  GtkSwitch *recompute_switch;
  GtkSpinButton *t_spin;
  GtkSpinButton *batch_spin;
  GtkSpinButton *epochs_spin;
  GtkSpinButton *seed_spin;
  GtkDropDown *optimizer_dd;
  GtkSpinButton *lr_spin;
  GtkSpinButton *momentum_spin;
  GtkSpinButton *wd_spin;
  GtkSwitch *cosine_switch;
  GtkDropDown *dataset_dd;
  GtkButton *folder_button;
  GtkLabel *folder_label;
  GtkSpinButton *train_subset_spin;
  GtkSpinButton *test_subset_spin;
  GtkDropDown *surrogate_dd;
  GtkSpinButton *width_spin;
  GtkSpinButton *alpha_spin;
  GtkSpinButton *tau_spin;
  GtkSpinButton *vth_spin;
  GtkDropDown *reset_dd;
  GtkDropDown *backend_dd;   /* 0 cpu, 1 cuda */
  SnnwbChartView *surrogate_view;

  SnnExperiment *experiment;
  SnnLifParams lif_shown;     /* what the neuron widgets were loaded with */
  gboolean loading;
  gboolean active, paused;
};

G_DEFINE_FINAL_TYPE (SnnwbSettingsPanel, snnwb_settings_panel, GTK_TYPE_BOX)

enum { CHANGED, MODEL_CHANGED, LIVE_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
note_first_lif (SnnLayerSpec *lif, const char *path, gpointer data)
{
  const SnnLifParams **first = data;
  if (!*first)
    *first = &lif->lif;
}

static const SnnLifParams *
first_lif (const SnnModel *m)
{
  const SnnLifParams *first = NULL;
  if (m)
    snn_model_foreach_lif ((SnnModel *) m, note_first_lif, &first);
  return first;
}

/* What changed between the shown and the new settings goes to every LIF
 * layer, those inside residual blocks too. */
typedef struct {
  const SnnLifParams *now, *old;
  gboolean changed;
} LifApply;

static void
apply_lif (SnnLayerSpec *lif, const char *path, gpointer data)
{
  LifApply *a = data;
  SnnLifParams *p = &lif->lif;
#define APPLY(f) if (a->now->f != a->old->f) { p->f = a->now->f; a->changed = TRUE; }
  APPLY (surrogate) APPLY (width) APPLY (alpha) APPLY (tau) APPLY (vth) APPLY (reset)
#undef APPLY
}

static void
read_lif_widgets (SnnwbSettingsPanel *self, SnnLifParams *p)
{
  p->surrogate = gtk_drop_down_get_selected (self->surrogate_dd);
  p->width = (float) gtk_spin_button_get_value (self->width_spin);
  p->alpha = (float) gtk_spin_button_get_value (self->alpha_spin);
  p->tau = (float) gtk_spin_button_get_value (self->tau_spin);
  p->vth = (float) gtk_spin_button_get_value (self->vth_spin);
  p->reset = gtk_drop_down_get_selected (self->reset_dd);
}

static void
update_sensitivity (SnnwbSettingsPanel *self)
{
  gboolean editable = !self->active;
  gboolean live = !self->active || self->paused;
  gboolean sgd = gtk_drop_down_get_selected (self->optimizer_dd) == SNN_OPTIM_SGD;
  guint ds = gtk_drop_down_get_selected (self->dataset_dd);
  gboolean folder = ds != SNN_DATASET_SYNTHETIC && ds != SNN_DATASET_SYNTHETIC_EVENTS;

  for (GtkWidget *w = gtk_widget_get_first_child (GTK_WIDGET (self->grid)); w; w = gtk_widget_get_next_sibling (w))
    if (!GTK_IS_LABEL (w))
      gtk_widget_set_sensitive (w, editable);
  gtk_widget_set_sensitive (GTK_WIDGET (self->method_dd), live);
  gtk_widget_set_sensitive (GTK_WIDGET (self->lr_spin), live);
  gtk_widget_set_sensitive (GTK_WIDGET (self->k_spin),
                            live && gtk_drop_down_get_selected (self->method_dd) == SNN_METHOD_SLTT_K);
  gtk_widget_set_sensitive (GTK_WIDGET (self->recompute_switch),
                            live && gtk_drop_down_get_selected (self->method_dd) == SNN_METHOD_BPTT);
  gtk_widget_set_sensitive (GTK_WIDGET (self->momentum_spin), editable && sgd);
  gtk_widget_set_sensitive (GTK_WIDGET (self->folder_button), editable && folder);
}

static void
update_folder_label (SnnwbSettingsPanel *self)
{
  const SnnExperiment *e = self->experiment;
  const char *text = e->dataset_path;

  if (e->dataset == SNN_DATASET_SYNTHETIC || e->dataset == SNN_DATASET_SYNTHETIC_EVENTS)
    text = "Built in";
  else if (!text)
    text = e->dataset == SNN_DATASET_FASHION_MNIST ? "/usr/share/datasets/fashion-mnist" : "Choose a folder…";
  gtk_label_set_text (self->folder_label, text);
}

static void
load_widgets (SnnwbSettingsPanel *self)
{
  const SnnExperiment *e = self->experiment;
  const SnnLifParams *lif = first_lif (e->model);
  SnnLifParams defaults;

  self->loading = TRUE;
  gtk_editable_set_text (GTK_EDITABLE (self->name_entry), e->name ? e->name : "");
  gtk_drop_down_set_selected (self->method_dd, e->train.method);
  gtk_spin_button_set_range (self->k_spin, 1, MAX (e->train.T, 1));
  gtk_spin_button_set_value (self->k_spin, e->train.K);
  gtk_switch_set_active (self->recompute_switch, e->train.recompute);
  gtk_spin_button_set_value (self->t_spin, e->train.T);
  gtk_spin_button_set_value (self->batch_spin, e->batch_size);
  gtk_spin_button_set_value (self->epochs_spin, e->epochs);
  gtk_spin_button_set_value (self->seed_spin, (double) e->seed);
  gtk_drop_down_set_selected (self->optimizer_dd, e->optim.type);
  gtk_spin_button_set_value (self->lr_spin, e->optim.lr);
  gtk_spin_button_set_value (self->momentum_spin, e->optim.momentum);
  gtk_spin_button_set_value (self->wd_spin, e->optim.weight_decay);
  gtk_switch_set_active (self->cosine_switch, e->optim.cosine);
  gtk_drop_down_set_selected (self->dataset_dd, e->dataset);
  gtk_spin_button_set_value (self->train_subset_spin, e->train_subset);
  gtk_spin_button_set_value (self->test_subset_spin, e->test_subset);
  gtk_drop_down_set_selected (self->backend_dd, g_strcmp0 (e->backend, "cuda") == 0);
  update_folder_label (self);

  if (!lif)
    {
      snn_lif_params_init (&defaults);
      lif = &defaults;
    }
  self->lif_shown = *lif;
  gtk_drop_down_set_selected (self->surrogate_dd, lif->surrogate);
  gtk_spin_button_set_value (self->width_spin, lif->width);
  gtk_spin_button_set_value (self->alpha_spin, lif->alpha);
  gtk_spin_button_set_value (self->tau_spin, lif->tau);
  gtk_spin_button_set_value (self->vth_spin, lif->vth);
  gtk_drop_down_set_selected (self->reset_dd, lif->reset);
  snnwb_chart_view_set_surrogate (self->surrogate_view, lif);
  self->loading = FALSE;
  update_sensitivity (self);
}

/* Applies only the neuron fields the user changed, so per-layer values set
 * in the network editor survive edits of other fields. */
static gboolean
store_lif (SnnwbSettingsPanel *self)
{
  SnnLifParams now, *old = &self->lif_shown;
  gboolean changed = FALSE;
  SnnModel *m = self->experiment->model;

  read_lif_widgets (self, &now);
  snnwb_chart_view_set_surrogate (self->surrogate_view, &now);
  LifApply apply = { &now, old, FALSE };
  if (m)
    snn_model_foreach_lif (m, apply_lif, &apply);
  changed = apply.changed;
  self->lif_shown = now;
  return changed;
}

static gboolean
store_live (SnnwbSettingsPanel *self)
{
  SnnExperiment *e = self->experiment;
  SnnMethod method = gtk_drop_down_get_selected (self->method_dd);
  int K = gtk_spin_button_get_value_as_int (self->k_spin);
  double lr = gtk_spin_button_get_value (self->lr_spin);
  gboolean recompute = gtk_switch_get_active (self->recompute_switch);
  gboolean changed = method != e->train.method || K != e->train.K || lr != e->optim.lr || recompute != e->train.recompute;

  e->train.method = method;
  e->train.K = K;
  e->train.recompute = recompute;
  e->optim.lr = lr;
  return changed;
}

static void
store_widgets (SnnwbSettingsPanel *self)
{
  SnnExperiment *e = self->experiment;

  g_free (e->name);
  e->name = g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->name_entry)));
  e->train.T = gtk_spin_button_get_value_as_int (self->t_spin);
  gtk_spin_button_set_range (self->k_spin, 1, e->train.T);
  e->batch_size = gtk_spin_button_get_value_as_int (self->batch_spin);
  e->epochs = gtk_spin_button_get_value_as_int (self->epochs_spin);
  e->seed = (guint64) gtk_spin_button_get_value (self->seed_spin);
  e->optim.type = gtk_drop_down_get_selected (self->optimizer_dd);
  e->optim.momentum = gtk_spin_button_get_value (self->momentum_spin);
  e->optim.weight_decay = gtk_spin_button_get_value (self->wd_spin);
  e->optim.cosine = gtk_switch_get_active (self->cosine_switch);
  e->dataset = gtk_drop_down_get_selected (self->dataset_dd);
  e->train_subset = gtk_spin_button_get_value_as_int (self->train_subset_spin);
  e->test_subset = gtk_spin_button_get_value_as_int (self->test_subset_spin);
  g_free (e->backend);
  e->backend = g_strdup (gtk_drop_down_get_selected (self->backend_dd) ? "cuda" : "cpu");
  update_folder_label (self);
}

static void
widget_changed_cb (SnnwbSettingsPanel *self)
{
  gboolean live, lif;

  if (self->loading || !self->experiment)
    return;
  live = store_live (self);
  lif = store_lif (self);
  if (!self->active)
    store_widgets (self);
  update_sensitivity (self);
  if (live)
    g_signal_emit (self, signals[LIVE_CHANGED], 0);
  if (lif)
    g_signal_emit (self, signals[MODEL_CHANGED], 0);
  g_signal_emit (self, signals[CHANGED], 0);
}

static void
folder_response_cb (GtkNativeDialog *dialog, int response, SnnwbSettingsPanel *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));

      g_free (self->experiment->dataset_path);
      self->experiment->dataset_path = g_file_get_path (file);
      update_folder_label (self);
      g_signal_emit (self, signals[CHANGED], 0);
    }
  g_object_unref (dialog);
}

static void
folder_clicked_cb (SnnwbSettingsPanel *self)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  GtkFileChooserNative *dialog = gtk_file_chooser_native_new ("Dataset Folder", GTK_WINDOW (root),
                                                               GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
                                                               "_Select", "_Cancel");

  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (dialog), TRUE);
  g_signal_connect (dialog, "response", G_CALLBACK (folder_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

static void
snnwb_settings_panel_class_init (SnnwbSettingsPanelClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  signals[CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                   0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /* The neuron parameters of the model's layers changed. */
  signals[MODEL_CHANGED] = g_signal_new ("model-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /* The method, K, recomputing or the learning rate changed (a paused run takes them). */
  signals[LIVE_CHANGED] = g_signal_new ("live-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                        0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  g_type_ensure (SNNWB_TYPE_CHART_VIEW);
  /* Referencing the bundle links it (and its registration) in from the
   * static library. */
  snnwb_get_resource ();
  gtk_widget_class_set_template_from_resource (widget_class, "/org/snnworkbench/Workbench/snnwb-settings-panel.ui");
#define BIND(name) gtk_widget_class_bind_template_child (widget_class, SnnwbSettingsPanel, name)
  BIND (grid); BIND (name_entry); BIND (method_dd); BIND (k_spin); BIND (recompute_switch); BIND (t_spin); BIND (batch_spin);
  BIND (epochs_spin); BIND (seed_spin); BIND (optimizer_dd); BIND (lr_spin); BIND (momentum_spin);
  BIND (wd_spin); BIND (cosine_switch); BIND (dataset_dd); BIND (folder_button); BIND (folder_label);
  BIND (train_subset_spin); BIND (test_subset_spin); BIND (surrogate_dd); BIND (width_spin);
  BIND (alpha_spin); BIND (tau_spin); BIND (vth_spin); BIND (reset_dd); BIND (backend_dd); BIND (surrogate_view);
#undef BIND
  gtk_widget_class_bind_template_callback (widget_class, widget_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, folder_clicked_cb);
}

static void
snnwb_settings_panel_init (SnnwbSettingsPanel *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  g_autofree char *tip = g_strdup_printf ("Where training runs. Built here: %s", snn_backend_built ());
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->backend_dd), tip);
}

GtkWidget *
snnwb_settings_panel_new (void)
{
  return g_object_new (SNNWB_TYPE_SETTINGS_PANEL, NULL);
}

void
snnwb_settings_panel_set_experiment (SnnwbSettingsPanel *self, SnnExperiment *e)
{
  self->experiment = e;
  load_widgets (self);
}

void
snnwb_settings_panel_refresh (SnnwbSettingsPanel *self)
{
  if (self->experiment)
    load_widgets (self);
}

void
snnwb_settings_panel_set_training (SnnwbSettingsPanel *self, gboolean active, gboolean paused)
{
  self->active = active;
  self->paused = paused;
  update_sensitivity (self);
}

void
snnwb_settings_panel_set_method (SnnwbSettingsPanel *self, SnnMethod method, int K)
{
  gtk_spin_button_set_value (self->k_spin, K);
  gtk_drop_down_set_selected (self->method_dd, method);
}

void
snnwb_settings_panel_set_recompute (SnnwbSettingsPanel *self, gboolean recompute)
{
  gtk_switch_set_active (self->recompute_switch, recompute);
}

void
snnwb_settings_panel_set_lr (SnnwbSettingsPanel *self, double lr)
{
  gtk_spin_button_set_value (self->lr_spin, lr);
}

GtkWidget *
snnwb_settings_panel_get_method_widget (SnnwbSettingsPanel *self)
{
  return GTK_WIDGET (self->method_dd);
}
