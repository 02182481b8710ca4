#include "snnwb-layer-editor.h"
#include "snnwb-resources.h"
#include "snnwb-run.h"
#include "net.h"
#include <stddef.h>

typedef enum { FIELD_INT, FIELD_FLOAT, FIELD_BOOL, FIELD_RESET, FIELD_SURROGATE } FieldKind;

/* Every editable field of a layer spec, by the layer types that have it. */
typedef struct {
  guint types;          /* bit mask of SnnLayerType */
  const char *label;
  const char *tooltip;
  FieldKind kind;
  gsize offset;
  double min, max, step;
  int digits;
} FieldDesc;

#define T(x) (1u << SNN_LAYER_##x)
#define OFF(f) offsetof (SnnLayerSpec, f)

static const FieldDesc fields[] = {
  { T (LINEAR), "Inputs", NULL, FIELD_INT, OFF (in), 1, 1 << 20, 1, 0 },
  { T (LINEAR), "Outputs", NULL, FIELD_INT, OFF (out), 1, 1 << 20, 1, 0 },
  { T (CONV), "In channels", NULL, FIELD_INT, OFF (in_ch), 1, 4096, 1, 0 },
  { T (CONV), "Out channels", NULL, FIELD_INT, OFF (out_ch), 1, 4096, 1, 0 },
  { T (CONV), "Kernel", NULL, FIELD_INT, OFF (k), 1, 31, 1, 0 },
  { T (CONV), "Stride", NULL, FIELD_INT, OFF (stride), 1, 16, 1, 0 },
  { T (CONV), "Padding", NULL, FIELD_INT, OFF (pad), 0, 16, 1, 0 },
  { T (LINEAR) | T (CONV), "Bias", NULL, FIELD_BOOL, OFF (bias), 0, 0, 0, 0 },
  { T (LINEAR) | T (CONV), "Weight standardization", "Standardize weights (ws) before use", FIELD_BOOL, OFF (ws), 0, 0, 0, 0 },
  { T (LINEAR) | T (CONV), "WS gamma", "Initial gain of weight standardization", FIELD_FLOAT, OFF (ws_gamma), 0.001, 100, 0.1, 3 },
  { T (LINEAR) | T (CONV), "WS epsilon", NULL, FIELD_FLOAT, OFF (ws_eps), 1e-8, 1, 1e-4, 6 },
  { T (AVGPOOL), "Pool size", NULL, FIELD_INT, OFF (pool_k), 1, 16, 1, 0 },
  { T (AVGPOOL), "Pool stride", NULL, FIELD_INT, OFF (pool_stride), 1, 16, 1, 0 },
  { T (AVGPOOL), "Pool padding", "Zero padding; the divisor stays size x size", FIELD_INT, OFF (pool_pad), 0, 8, 1, 0 },
  { T (SCALE), "Factor", "Multiplies the input (2.74 after LIF in sWS networks)", FIELD_FLOAT, OFF (scale), -100, 100, 0.1, 3 },
  { T (BN_STEP), "Features", NULL, FIELD_INT, OFF (num_features), 1, 4096, 1, 0 },
  { T (BN_STEP), "Epsilon", NULL, FIELD_FLOAT, OFF (eps), 1e-8, 1, 1e-5, 6 },
  { T (BN_STEP), "Momentum", NULL, FIELD_FLOAT, OFF (momentum), 0, 1, 0.01, 3 },
  { T (LIF), "Tau", "Membrane time constant", FIELD_FLOAT, OFF (lif.tau), 1.0, 1000, 0.1, 2 },
  { T (LIF), "Threshold", "Firing threshold Vth", FIELD_FLOAT, OFF (lif.vth), 0.01, 100, 0.05, 2 },
  { T (LIF), "Reset", "Soft: subtract Vth; hard: set u to 0", FIELD_RESET, OFF (lif.reset), 0, 0, 0, 0 },
  { T (LIF), "Surrogate", "Shape of the surrogate derivative", FIELD_SURROGATE, OFF (lif.surrogate), 0, 0, 0, 0 },
  { T (LIF), "Width", "Width of the rectangle and triangle surrogates", FIELD_FLOAT, OFF (lif.width), 0.01, 10, 0.1, 2 },
  { T (LIF), "Alpha", "Steepness of the sigmoid and atan surrogates", FIELD_FLOAT, OFF (lif.alpha), 0.01, 100, 0.5, 2 },
  { T (LIF), "Detach reset", "Do not backpropagate through the reset", FIELD_BOOL, OFF (lif.detach_reset), 0, 0, 0, 0 },
  { T (DROPOUT), "Drop probability", NULL, FIELD_FLOAT, OFF (p), 0, 0.99, 0.05, 2 },
};

#undef T
#undef OFF

struct _SnnwbLayerEditor {
  GtkBox parent_instance;

  GtkLabel *input_label;
  GtkLabel *memory_label;
  GtkGrid *memory_grid;
  GtkListBox *list;
  GtkLabel *count_label;
  GtkLabel *field_title;
  GtkGrid *field_grid;

  SnnModel *model;
  int batch, T;
  int selected;
  int bad_layer;
  char *problem;
  gboolean rebuilding;
};

G_DEFINE_FINAL_TYPE (SnnwbLayerEditor, snnwb_layer_editor, GTK_TYPE_BOX)

enum { CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static const char *const type_titles[SNN_LAYER_N_TYPES] = {
  "Linear", "Convolution", "Average pooling", "Flatten", "Batch norm", "LIF neurons", "Dropout",
  "Residual block", "Scale", "Global average pooling",
};

/* Validation */

static void
validate (SnnwbLayerEditor *self)
{
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&self->problem, g_free);
  self->bad_layer = -2;
  if (!self->model)
    return;
  if (self->model->n_layers == 0)
    {
      self->problem = g_strdup ("The network has no layers");
      self->bad_layer = -1;
    }
  else if (!snn_model_infer_shapes (self->model, &self->bad_layer, &error))
    self->problem = g_strdup (error->message);
  else
    self->bad_layer = -2;
}

static char *
format_bytes (gint64 bytes)
{
  return g_format_size_full ((guint64) MAX (bytes, 0), G_FORMAT_SIZE_IEC_UNITS);
}

/* The four ways a step can run, as the run list names them. */
static void
method_name (const SnnModel *model, SnnPredictMethod i, char *out, gsize size)
{
  static const SnnMethod methods[SNN_PREDICT_N] = { SNN_METHOD_BPTT, SNN_METHOD_BPTT, SNN_METHOD_SLTT, SNN_METHOD_SLTT_K };

  if (i == SNN_PREDICT_SLTT_K)
    g_strlcpy (out, "SLTT-K", size);
  else
    snnwb_method_label (model, methods[i], 1, i == SNN_PREDICT_BPTT_RECOMPUTE, out, size);
}

/* Rows of the memory table: a network that cannot recompute has one BPTT. */
static gboolean
row_shown (const SnnMemoryPrediction *p, SnnPredictMethod i)
{
  return i != SNN_PREDICT_BPTT_RECOMPUTE || p[i].recomputes;
}

char *
snnwb_layer_editor_describe_memory (SnnwbLayerEditor *self)
{
  SnnMemoryPrediction p[SNN_PREDICT_N];
  GString *s;

  if (!self->model || self->problem)
    return NULL;
  snn_model_predict_memory (self->model, self->batch, self->T, p);
  s = g_string_new (NULL);
  g_string_append_printf (s, "batch %d, T %d: held for backward · arena", self->batch, self->T);
  for (int i = 0; i < SNN_PREDICT_N; i++)
    if (row_shown (p, i))
      {
        char name[32];
        g_autofree char *held = format_bytes (p[i].held_bytes);
        g_autofree char *arena = format_bytes (p[i].arena_bytes);

        method_name (self->model, i, name, sizeof name);
        g_string_append_printf (s, "\n%s: %s · %s", name, held, arena);
      }
  return g_string_free (s, FALSE);
}

static void
grid_text (GtkGrid *grid, int col, int row, const char *markup, float xalign, gboolean dim)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_markup (GTK_LABEL (label), markup);
  gtk_label_set_xalign (GTK_LABEL (label), xalign);
  if (dim)
    gtk_widget_add_css_class (label, "dim-label");
  gtk_grid_attach (grid, label, col, row, 1, 1);
}

/* Each method as it will run, with two figures: what backward keeps of the
 * forward pass, and the whole working memory of a step (the arena), which
 * is what the machine feels: recomputing keeps little for backward but
 * still works on all T steps at once. */
static void
fill_memory_grid (SnnwbLayerEditor *self)
{
  SnnMemoryPrediction p[SNN_PREDICT_N];
  GtkWidget *child;
  int row = 1;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->memory_grid))))
    gtk_grid_remove (self->memory_grid, child);
  gtk_widget_set_visible (GTK_WIDGET (self->memory_grid), self->problem == NULL);
  if (self->problem)
    return;
  snn_model_predict_memory (self->model, self->batch, self->T, p);
  grid_text (self->memory_grid, 0, 0, "", 0, TRUE);
  grid_text (self->memory_grid, 1, 0, "held for backward", 1, TRUE);
  grid_text (self->memory_grid, 2, 0, "arena", 1, TRUE);
  for (int i = 0; i < SNN_PREDICT_N; i++)
    if (row_shown (p, i))
      {
        char name[32];
        g_autofree char *held = format_bytes (p[i].held_bytes);
        g_autofree char *arena = format_bytes (p[i].arena_bytes);
        g_autofree char *bold = NULL;

        method_name (self->model, i, name, sizeof name);
        bold = g_markup_printf_escaped ("<b>%s</b>", name);
        grid_text (self->memory_grid, 0, row, bold, 0, FALSE);
        grid_text (self->memory_grid, 1, row, held, 1, FALSE);
        grid_text (self->memory_grid, 2, row, arena, 1, FALSE);
        row++;
      }
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->memory_grid),
                               "Predicted for one training step. Held for backward: what backpropagation keeps "
                               "of the forward pass. Arena: the whole working memory of the step (activations, "
                               "gradients, scratch), allocated once. BPTT works on all T steps at once, so its "
                               "arena grows with T even when recomputing; SLTT's does not.");
}

static void
update_summary (SnnwbLayerEditor *self)
{
  g_autofree char *in = snn_shape_to_string (&self->model->input_shape);
  g_autofree char *input = g_strdup_printf ("Input %s · %d classes", in, self->model->num_classes);
  g_autofree char *params = NULL;

  gtk_label_set_text (self->input_label, input);
  fill_memory_grid (self);
  if (self->problem)
    {
      g_autofree char *esc = g_markup_escape_text (self->problem, -1);
      g_autofree char *m = g_strdup_printf ("<span foreground=\"#c01c28\">⚠ %s</span>", esc);

      gtk_label_set_markup (self->memory_label, m);
      gtk_label_set_text (self->count_label, "");
      return;
    }
  {
    g_autofree char *m = g_strdup_printf ("Memory of a training step (batch %d, T %d)", self->batch, self->T);

    gtk_label_set_text (self->memory_label, m);
  }
  params = g_strdup_printf ("%'" G_GINT64_FORMAT " parameters", snn_model_param_count (self->model));
  gtk_label_set_text (self->count_label, params);
}

/* Rows */

static char *
layer_summary (const SnnLayerSpec *s)
{
  switch (s->type)
    {
    case SNN_LAYER_LINEAR:
      return g_strdup_printf ("%d → %d%s", s->in, s->out, s->ws ? ", ws" : "");
    case SNN_LAYER_CONV:
      return g_strdup_printf ("%d → %d, %d×%d/%d pad %d%s", s->in_ch, s->out_ch, s->k, s->k, s->stride, s->pad,
                              s->ws ? ", ws" : "");
    case SNN_LAYER_AVGPOOL:
      return g_strdup_printf ("%d×%d/%d", s->pool_k, s->pool_k, s->pool_stride);
    case SNN_LAYER_BN_STEP:
      return g_strdup_printf ("%d features", s->num_features);
    case SNN_LAYER_LIF:
      return g_strdup_printf ("τ %.3g, Vth %.3g, %s", s->lif.tau, s->lif.vth, snn_surrogate_name (s->lif.surrogate));
    case SNN_LAYER_DROPOUT:
      return g_strdup_printf ("p %.2g", s->p);
    case SNN_LAYER_SCALE:
      return g_strdup_printf ("× %.3g", s->scale);
    case SNN_LAYER_RESIDUAL:
      return g_strdup_printf ("%d pre, %d main, %s shortcut%s", s->block->pre.n, s->block->main.n,
                              s->block->shortcut.n ? "conv" : "identity", s->block->skipinit ? ", skipinit" : "");
    default:
      return g_strdup ("");
    }
}

static char *
row_detail (SnnwbLayerEditor *self, int i)
{
  const SnnLayerSpec *s = &self->model->layers[i];

  if (self->problem && i > self->bad_layer && self->bad_layer >= 0)
    return g_strdup ("→ ?");
  if (self->problem && i == self->bad_layer)
    return g_strdup (self->problem);
  {
    g_autofree char *shape = snn_shape_to_string (&s->out_shape);
    gint64 n = snn_layer_param_count (s);

    if (n == 0)
      return g_strdup_printf ("→ %s", shape);
    return g_strdup_printf ("→ %s · %'" G_GINT64_FORMAT " params", shape, n);
  }
}

static GtkWidget *
make_row (SnnwbLayerEditor *self, int i)
{
  const SnnLayerSpec *s = &self->model->layers[i];
  g_autofree char *summary = layer_summary (s);
  g_autofree char *title = g_strdup_printf ("%d  %s", i, type_titles[s->type]);
  g_autofree char *detail = row_detail (self, i);
  GtkWidget *row = gtk_list_box_row_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 1);
  GtkWidget *top = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  GtkWidget *title_label = gtk_label_new (title);
  GtkWidget *summary_label = gtk_label_new (summary);
  GtkWidget *detail_label = gtk_label_new (detail);

  gtk_widget_add_css_class (row, "layer-row");
  gtk_widget_add_css_class (title_label, "layer-title");
  gtk_widget_add_css_class (summary_label, "dim-label");
  gtk_widget_add_css_class (detail_label, "layer-detail");
  gtk_widget_add_css_class (detail_label, "numeric");
  gtk_label_set_xalign (GTK_LABEL (title_label), 0);
  gtk_label_set_xalign (GTK_LABEL (summary_label), 1);
  gtk_label_set_ellipsize (GTK_LABEL (summary_label), PANGO_ELLIPSIZE_END);
  gtk_widget_set_hexpand (summary_label, TRUE);
  gtk_label_set_xalign (GTK_LABEL (detail_label), 0);
  gtk_label_set_wrap (GTK_LABEL (detail_label), TRUE);
  gtk_box_append (GTK_BOX (top), title_label);
  gtk_box_append (GTK_BOX (top), summary_label);
  gtk_box_append (GTK_BOX (box), top);
  gtk_box_append (GTK_BOX (box), detail_label);
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  if (self->problem && i == self->bad_layer)
    {
      gtk_widget_add_css_class (row, "invalid");
      gtk_widget_set_tooltip_text (row, self->problem);
    }
  return row;
}

static void
rebuild_rows (SnnwbLayerEditor *self)
{
  GtkWidget *child;

  self->rebuilding = TRUE;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->list))))
    gtk_list_box_remove (self->list, child);
  for (int i = 0; self->model && i < self->model->n_layers; i++)
    gtk_list_box_append (self->list, make_row (self, i));
  if (self->selected >= 0)
    gtk_list_box_select_row (self->list, gtk_list_box_get_row_at_index (self->list, self->selected));
  self->rebuilding = FALSE;
}

/* Field editor */

static gpointer
field_ptr (SnnwbLayerEditor *self, const FieldDesc *f)
{
  return (char *) &self->model->layers[self->selected] + f->offset;
}

static void
model_edited (SnnwbLayerEditor *self)
{
  validate (self);
  update_summary (self);
  rebuild_rows (self);
  g_signal_emit (self, signals[CHANGED], 0);
}

static void
spin_changed (GtkSpinButton *spin, SnnwbLayerEditor *self)
{
  const FieldDesc *f = g_object_get_data (G_OBJECT (spin), "field");

  if (self->selected < 0)
    return;
  if (f->kind == FIELD_INT)
    *(int *) field_ptr (self, f) = gtk_spin_button_get_value_as_int (spin);
  else
    *(float *) field_ptr (self, f) = (float) gtk_spin_button_get_value (spin);
  model_edited (self);
}

static void
switch_changed (GtkSwitch *sw, GParamSpec *pspec, SnnwbLayerEditor *self)
{
  const FieldDesc *f = g_object_get_data (G_OBJECT (sw), "field");

  if (self->selected < 0)
    return;
  *(gboolean *) field_ptr (self, f) = gtk_switch_get_active (sw);
  model_edited (self);
}

static void
dropdown_changed (GtkDropDown *dd, GParamSpec *pspec, SnnwbLayerEditor *self)
{
  const FieldDesc *f = g_object_get_data (G_OBJECT (dd), "field");

  if (self->selected < 0)
    return;
  *(int *) field_ptr (self, f) = (int) gtk_drop_down_get_selected (dd);
  model_edited (self);
}

static GtkWidget *
make_field_widget (SnnwbLayerEditor *self, const FieldDesc *f)
{
  static const char *const resets[] = { "Soft (subtract)", "Hard (to zero)", NULL };
  static const char *const surrogates[] = { "Rectangle", "Triangle", "Sigmoid", "Arctangent", NULL };
  gpointer p = field_ptr (self, f);
  GtkWidget *w;

  switch (f->kind)
    {
    case FIELD_INT:
    case FIELD_FLOAT:
      w = gtk_spin_button_new_with_range (f->min, f->max, f->step);
      gtk_spin_button_set_digits (GTK_SPIN_BUTTON (w), f->digits);
      gtk_spin_button_set_value (GTK_SPIN_BUTTON (w), f->kind == FIELD_INT ? *(int *) p : *(float *) p);
      g_signal_connect (w, "value-changed", G_CALLBACK (spin_changed), self);
      break;
    case FIELD_BOOL:
      w = gtk_switch_new ();
      gtk_switch_set_active (GTK_SWITCH (w), *(gboolean *) p);
      gtk_widget_set_halign (w, GTK_ALIGN_END);
      g_signal_connect (w, "notify::active", G_CALLBACK (switch_changed), self);
      break;
    default:
      w = gtk_drop_down_new_from_strings (f->kind == FIELD_RESET ? resets : surrogates);
      gtk_drop_down_set_selected (GTK_DROP_DOWN (w), *(int *) p);
      g_signal_connect (w, "notify::selected", G_CALLBACK (dropdown_changed), self);
      break;
    }
  g_object_set_data (G_OBJECT (w), "field", (gpointer) f);
  gtk_widget_set_hexpand (w, TRUE);
  gtk_widget_set_tooltip_text (w, f->tooltip);
  return w;
}

static void
rebuild_fields (SnnwbLayerEditor *self)
{
  GtkWidget *child;
  int row = 0;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->field_grid))))
    gtk_grid_remove (self->field_grid, child);
  if (!self->model || self->selected < 0 || self->selected >= self->model->n_layers)
    {
      gtk_label_set_text (self->field_title, "No layer selected");
      return;
    }
  {
    const SnnLayerSpec *s = &self->model->layers[self->selected];
    g_autofree char *title = g_strdup_printf ("Layer %d · %s", self->selected, type_titles[s->type]);

    gtk_label_set_text (self->field_title, title);
    for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
      {
        const FieldDesc *f = &fields[i];
        GtkWidget *label;

        if (!(f->types & (1u << s->type)))
          continue;
        label = gtk_label_new (f->label);
        gtk_label_set_xalign (GTK_LABEL (label), 0);
        gtk_grid_attach (self->field_grid, label, 0, row, 1, 1);
        gtk_grid_attach (self->field_grid, make_field_widget (self, f), 1, row, 1, 1);
        row++;
      }
    if (row == 0)
      gtk_grid_attach (self->field_grid,
                       gtk_label_new (s->type == SNN_LAYER_RESIDUAL ? "Its layers are edited in the model file."
                                                                    : "This layer has no settings."),
                       0, 0, 2, 1);
  }
}

static void
row_selected_cb (SnnwbLayerEditor *self, GtkListBoxRow *row)
{
  if (self->rebuilding)
    return;
  self->selected = row ? gtk_list_box_row_get_index (row) : -1;
  rebuild_fields (self);
}

/* Actions */

static SnnLayerType
type_from_name (const char *name)
{
  for (int t = 0; t < SNN_LAYER_N_TYPES; t++)
    if (g_str_equal (snn_layer_type_name (t), name))
      return t;
  return SNN_LAYER_LINEAR;
}

/* A new layer guesses its sizes from the shape it receives, so most
 * additions are valid right away. */
static void
fit_new_layer (SnnwbLayerEditor *self, SnnLayerSpec *spec, int index)
{
  const SnnShape *in = index == 0 ? &self->model->input_shape : &self->model->layers[index - 1].out_shape;
  gboolean known = index == 0 || !self->problem || index - 1 < self->bad_layer;
  int features = known ? (int) snn_shape_numel (in) : 128;
  int channels = known && in->ndim == 3 ? in->d[0] : features;

  spec->in = features > 0 ? features : 128;
  spec->out = 128;
  spec->in_ch = channels > 0 ? channels : 1;
  spec->out_ch = 16;
  spec->pad = 1;
  spec->num_features = spec->in_ch;
  if (spec->type == SNN_LAYER_BN_STEP && (!known || in->ndim == 1))
    spec->num_features = spec->in;
}

void
snnwb_layer_editor_add_layer (SnnwbLayerEditor *self, SnnLayerType type)
{
  SnnLayerSpec spec;
  int at = self->selected >= 0 ? self->selected + 1 : self->model->n_layers;

  snn_layer_spec_init (&spec, type);
  fit_new_layer (self, &spec, at);
  snn_model_append_layer (self->model, &spec);
  snn_model_move_layer (self->model, self->model->n_layers - 1, at);
  self->selected = at;
  model_edited (self);
  rebuild_fields (self);
}

void
snnwb_layer_editor_remove_selected (SnnwbLayerEditor *self)
{
  if (self->selected < 0 || self->selected >= self->model->n_layers)
    return;
  snn_model_remove_layer (self->model, self->selected);
  self->selected = MIN (self->selected, self->model->n_layers - 1);
  model_edited (self);
  rebuild_fields (self);
}

void
snnwb_layer_editor_move_selected (SnnwbLayerEditor *self, int delta)
{
  int to = self->selected + delta;

  if (self->selected < 0 || to < 0 || to >= self->model->n_layers)
    return;
  snn_model_move_layer (self->model, self->selected, to);
  self->selected = to;
  model_edited (self);
  rebuild_fields (self);
}

static void
add_action (GtkWidget *widget, const char *name, GVariant *param)
{
  snnwb_layer_editor_add_layer (SNNWB_LAYER_EDITOR (widget), type_from_name (g_variant_get_string (param, NULL)));
}

static void
remove_action (GtkWidget *widget, const char *name, GVariant *param)
{
  snnwb_layer_editor_remove_selected (SNNWB_LAYER_EDITOR (widget));
}

static void
move_action (GtkWidget *widget, const char *name, GVariant *param)
{
  snnwb_layer_editor_move_selected (SNNWB_LAYER_EDITOR (widget), g_str_equal (name, "layer.move-up") ? -1 : 1);
}

/* GObject */

static void
snnwb_layer_editor_dispose (GObject *object)
{
  /* Rows are unselected while the list is torn down; ignore that. */
  SNNWB_LAYER_EDITOR (object)->rebuilding = TRUE;
  G_OBJECT_CLASS (snnwb_layer_editor_parent_class)->dispose (object);
}

static void
snnwb_layer_editor_finalize (GObject *object)
{
  g_free (SNNWB_LAYER_EDITOR (object)->problem);
  G_OBJECT_CLASS (snnwb_layer_editor_parent_class)->finalize (object);
}

static void
snnwb_layer_editor_class_init (SnnwbLayerEditorClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  G_OBJECT_CLASS (klass)->dispose = snnwb_layer_editor_dispose;
  G_OBJECT_CLASS (klass)->finalize = snnwb_layer_editor_finalize;
  signals[CHANGED] = g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                   0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /* Referencing the bundle links it (and its registration) in from the
   * static library. */
  snnwb_get_resource ();
  gtk_widget_class_set_template_from_resource (widget_class, "/org/snnworkbench/Workbench/snnwb-layer-editor.ui");
  gtk_widget_class_bind_template_child (widget_class, SnnwbLayerEditor, input_label);
  gtk_widget_class_bind_template_child (widget_class, SnnwbLayerEditor, memory_label);
  gtk_widget_class_bind_template_child (widget_class, SnnwbLayerEditor, memory_grid);
  gtk_widget_class_bind_template_child (widget_class, SnnwbLayerEditor, list);
  gtk_widget_class_bind_template_child (widget_class, SnnwbLayerEditor, count_label);
  gtk_widget_class_bind_template_child (widget_class, SnnwbLayerEditor, field_title);
  gtk_widget_class_bind_template_child (widget_class, SnnwbLayerEditor, field_grid);
  gtk_widget_class_bind_template_callback (widget_class, row_selected_cb);

  gtk_widget_class_install_action (widget_class, "layer.add", "s", add_action);
  gtk_widget_class_install_action (widget_class, "layer.remove", NULL, remove_action);
  gtk_widget_class_install_action (widget_class, "layer.move-up", NULL, move_action);
  gtk_widget_class_install_action (widget_class, "layer.move-down", NULL, move_action);
}

static void
snnwb_layer_editor_init (SnnwbLayerEditor *self)
{
  self->selected = -1;
  self->batch = 64;
  self->T = 4;
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
snnwb_layer_editor_new (void)
{
  return g_object_new (SNNWB_TYPE_LAYER_EDITOR, NULL);
}

void
snnwb_layer_editor_set_model (SnnwbLayerEditor *self, SnnModel *model)
{
  self->model = model;
  self->selected = model && model->n_layers ? 0 : -1;
  snnwb_layer_editor_refresh (self);
}

void
snnwb_layer_editor_set_run_size (SnnwbLayerEditor *self, int batch, int T)
{
  self->batch = batch;
  self->T = T;
  if (self->model)
    update_summary (self);
}

void
snnwb_layer_editor_refresh (SnnwbLayerEditor *self)
{
  if (!self->model)
    return;
  if (self->selected >= self->model->n_layers)
    self->selected = self->model->n_layers - 1;
  validate (self);
  update_summary (self);
  rebuild_rows (self);
  rebuild_fields (self);
}

gboolean
snnwb_layer_editor_is_valid (SnnwbLayerEditor *self)
{
  return self->model && self->problem == NULL;
}

const char *
snnwb_layer_editor_get_problem (SnnwbLayerEditor *self)
{
  return self->problem;
}

int
snnwb_layer_editor_get_bad_layer (SnnwbLayerEditor *self)
{
  return self->problem ? self->bad_layer : -2;
}

int
snnwb_layer_editor_get_selected (SnnwbLayerEditor *self)
{
  return self->selected;
}

void
snnwb_layer_editor_select (SnnwbLayerEditor *self, int index)
{
  if (!self->model || index < 0 || index >= self->model->n_layers)
    return;
  gtk_list_box_select_row (self->list, gtk_list_box_get_row_at_index (self->list, index));
}
