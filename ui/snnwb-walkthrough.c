#include "snnwb-walkthrough.h"
#include <math.h>

/* A step's set-up is a list of stages, each polled until it is done, as a
 * user watching the window would wait; none blocks the main loop. */
#define POLL_MS       100
#define STAGE_TIMEOUT (300 * G_USEC_PER_SEC)

typedef struct _Stage Stage;
typedef gboolean (*StageFunc) (SnnwbWalkthrough *w, const Stage *st);

struct _Stage {
  StageFunc func;
  int method, T;              /* configure */
  double value;               /* pace, tau, count */
  const char *name;           /* screenshot file, panel */
};

typedef struct {
  const char *title;
  const char *body;           /* Pango markup */
  const char *button;         /* NULL: nothing to set up */
  const Stage *stages;
  const char *shot;           /* saved once set up, while playing */
} Step;

struct _SnnwbWalkthrough {
  GtkBox parent_instance;
  SnnwbWindow *win;           /* not owned: the window owns the panel */
  GtkLabel *counter, *title, *body, *status;
  GtkWidget *action, *back, *next;
  guint step;
  int iterations;

  /* the set-up under way */
  const Stage *stage;
  guint tick_id;
  gint64 stage_start, settle_until;
  long target;                /* iterations a stage waits for */
  gboolean stage_begun;

  /* playing for screenshots */
  char *shot_dir;
  gboolean playing, failed;
};

G_DEFINE_FINAL_TYPE (SnnwbWalkthrough, snnwb_walkthrough, GTK_TYPE_BOX)

/* Stages */

static void
activate (SnnwbWalkthrough *w, const char *action)
{
  if (g_action_group_get_action_enabled (G_ACTION_GROUP (w->win), action))
    g_action_group_activate_action (G_ACTION_GROUP (w->win), action, NULL);
}

static SnnwbRunState
state (SnnwbWalkthrough *w)
{
  return snnwb_window_get_run_state (w->win);
}

static gboolean
st_load (SnnwbWalkthrough *w, const Stage *st)
{
  g_autofree char *preset = snnwb_window_default_preset ();

  snnwb_window_open_experiment (w->win, preset);
  return TRUE;
}

static gboolean
st_stop (SnnwbWalkthrough *w, const Stage *st)
{
  if (state (w) < SNNWB_RUN_STOPPED && !w->stage_begun)
    activate (w, "stop");
  w->stage_begun = TRUE;
  return state (w) >= SNNWB_RUN_STOPPED;
}

/* Method, T and BPTT storing its activations (as the paper's BPTT does);
 * -1 leaves a setting as it is. */
static gboolean
st_configure (SnnwbWalkthrough *w, const Stage *st)
{
  SnnwbSettingsPanel *settings = snnwb_window_get_settings_panel (w->win);
  SnnExperiment *e = snnwb_window_get_experiment (w->win);

  if (st->method >= 0)
    snnwb_settings_panel_set_method (settings, st->method, e->train.K);
  if (st->value >= 0)
    snnwb_settings_panel_set_recompute (settings, st->value > 0);
  if (st->T > 0)
    {
      e->train.T = st->T;
      snnwb_window_experiment_changed (w->win);
    }
  return TRUE;
}

static gboolean
st_pace (SnnwbWalkthrough *w, const Stage *st)
{
  snnwb_window_set_pace (w->win, st->value);
  return TRUE;
}

static gboolean
st_train (SnnwbWalkthrough *w, const Stage *st)
{
  if (!w->stage_begun)
    activate (w, "train");
  w->stage_begun = TRUE;
  return state (w) == SNNWB_RUN_RUNNING || state (w) >= SNNWB_RUN_STOPPED;
}

static gboolean
st_trained (SnnwbWalkthrough *w, const Stage *st)
{
  return snnwb_window_get_reported_iters (w->win) >= w->iterations || state (w) >= SNNWB_RUN_STOPPED;
}

/* Only a picture needs the run to have gone some way; the class watches. */
static gboolean
st_trained_for_shot (SnnwbWalkthrough *w, const Stage *st)
{
  return !w->playing || st_trained (w, st);
}

/* A paused run: the current one, or a new one started paused. */
static gboolean
st_pause (SnnwbWalkthrough *w, const Stage *st)
{
  if (!w->stage_begun)
    {
      if (state (w) >= SNNWB_RUN_STOPPED)
        activate (w, "step");
      else if (state (w) == SNNWB_RUN_RUNNING)
        activate (w, "pause");
    }
  w->stage_begun = TRUE;
  return state (w) == SNNWB_RUN_PAUSED || state (w) >= SNNWB_RUN_STOPPED;
}

static gboolean
st_step (SnnwbWalkthrough *w, const Stage *st)
{
  if (!w->stage_begun)
    {
      w->target = snnwb_window_get_reported_iters (w->win) + 1;
      activate (w, "step");
    }
  w->stage_begun = TRUE;
  return snnwb_window_get_reported_iters (w->win) >= w->target || state (w) >= SNNWB_RUN_STOPPED;
}

static gboolean
st_select (SnnwbWalkthrough *w, const Stage *st)
{
  snnwb_window_select_last_runs (w->win, (guint) st->value);
  return TRUE;
}

static gboolean
st_tau (SnnwbWalkthrough *w, const Stage *st)
{
  SnnwbGradientView *view = snnwb_window_get_gradient_view (w->win);
  SnnwbGradient *g;

  if (!w->stage_begun)
    snnwb_gradient_view_set_tau (view, st->value);
  w->stage_begun = TRUE;
  g = snnwb_gradient_view_get_gradient (view);
  return g && fabs (g->tau_override - st->value) < 1e-4;
}

static gboolean
st_show (SnnwbWalkthrough *w, const Stage *st)
{
  snnwb_window_show_view (w->win, st->name);
  return TRUE;
}

static gboolean
st_neurons (SnnwbWalkthrough *w, const Stage *st)
{
  snnwb_window_set_traced_neurons (w->win, st->name);
  return TRUE;
}

/* Only while playing: waits for the views to draw, then saves the window. */
static gboolean
st_shot (SnnwbWalkthrough *w, const Stage *st)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = NULL;
  gint64 now = g_get_monotonic_time ();

  if (!w->playing)
    return TRUE;
  if (w->settle_until == 0)
    w->settle_until = now + 900 * 1000;
  if (now < w->settle_until)
    return FALSE;
  w->settle_until = 0;
  path = g_build_filename (w->shot_dir, st->name, NULL);
  if (!snnwb_window_save_png (w->win, path, &error))
    {
      g_printerr ("walk-through: %s\n", error->message);
      w->failed = TRUE;
    }
  else
    g_print ("Saved %s\n", path);
  return TRUE;
}

#define END { NULL }
#define CONFIGURE(m, T, recompute) { st_configure, (m), (T), (recompute) }

static const Stage learn_stages[] = {
  /* At 20 iterations a second the class run lasts a minute and a quarter
   * on any machine; at full speed a fast one finishes it in seconds. */
  { st_stop }, { st_load }, { st_pace, .value = 20 }, { st_show, .name = "raster" }, { st_train }, { st_trained_for_shot }, END
};

static const Stage step_stages[] = {
  { st_show, .name = "raster" }, { st_pause }, { st_step }, { st_step }, { st_step }, { st_pace, .value = 1 }, END
};

static const Stage memory_stages[] = {
  { st_stop }, { st_pace, .value = 0 },
  CONFIGURE (SNN_METHOD_BPTT, 4, 0), { st_train }, { st_trained }, { st_stop },
  CONFIGURE (SNN_METHOD_SLTT, 4, -1), { st_train }, { st_trained }, { st_stop },
  CONFIGURE (SNN_METHOD_BPTT, 8, 0), { st_train }, { st_trained }, { st_stop },
  CONFIGURE (SNN_METHOD_SLTT, 8, -1), { st_train }, { st_trained }, { st_stop },
  { st_select, .value = 4 }, { st_show, .name = "loss" }, END
};

static const Stage gradient_stages[] = {
  { st_stop }, { st_pace, .value = 0 }, CONFIGURE (SNN_METHOD_BPTT, 6, 1), { st_train }, { st_trained },
  { st_pause }, { st_show, .name = "gradients" }, { st_tau, .value = 1.1 }, END
};

static const Stage tau_stages[] = {
  { st_pause }, { st_show, .name = "gradients" }, { st_tau, .value = 2 }, { st_shot, .name = "walkthrough-5-gradients-tau2.png" },
  { st_tau, .value = 4 }, END
};

static const Stage question_stages[] = {
  { st_neurons, .name = "0, 1, 2, 3" }, END
};

static const Step steps[] = {
  { "Watch a network learn",
    "A small spiking network (two convolutions with leaky integrate-and-fire neurons, pooling and a linear "
    "read-out) learns to tell ten kinds of clothing apart (Fashion-MNIST; without it installed, a synthetic "
    "task where only the order of the inputs tells the classes apart). Every image is shown for T time steps.\n\n"
    "Press <b>Start training</b>: it trains with SLTT at 20 iterations a second, for about a minute "
    "(<b>Pace</b> in the header: <i>Full speed</i> takes seconds).\n\n"
    "<b>Look at</b>\n"
    "• <b>Loss</b> falls and <b>Accuracy</b> rises within seconds.\n"
    "• <b>Spike raster</b>: one mark per spike of a LIF layer, for the first image of the batch, step by step.\n"
    "• The status bar: iterations per second, and the learning rate as its schedule lowers it.",
    "Start training", learn_stages, "walkthrough-1-learn.png" },
  { "One step at a time",
    "Training is paused. Each press of <b>Step</b> (Ctrl+.) trains one batch, and every view shows it. "
    "The button pauses and takes three steps.\n\n"
    "The <b>Pace</b> drop-down in the header slows training down: at <i>1 it/s</i> or in <i>Slow motion</i> "
    "every iteration is shown. Press Space to go on at that pace.\n\n"
    "<b>Look at</b>\n"
    "• <b>Membrane traces</b>: the potential u[t] of a few neurons rises with the input; when it crosses the "
    "dashed threshold the neuron spikes and u is reset.\n"
    "• Type other neuron numbers above the traces; numbers the layer does not have turn the field red.",
    "Pause and step", step_stages, "walkthrough-2-step.png" },
  { "Memory: BPTT against SLTT as T grows",
    "BPTT keeps every time step of every layer, to backpropagate through time. SLTT backpropagates each step "
    "right away and keeps only that one.\n\n"
    "The button trains four short runs on the same seed: BPTT and SLTT at T = 4, then at T = 8, BPTT storing "
    "its activations as in the paper, and overlays them.\n\n"
    "<b>Look at</b>\n"
    "• The <b>Memory</b> chart and the <b>Runs</b> list (<i>held</i> for backward, and the whole <i>arena</i> "
    "of a step): BPTT's memory doubles from T = 4 to T = 8. SLTT's stays flat.\n"
    "• <b>Time per iteration</b>: both grow with T, since both still run every step forward.\n"
    "• A run's ⋯ menu shows its summary and renames it.",
    "Train the four runs", memory_stages, "walkthrough-3-memory-vs-T.png" },
  { "Where the gradient flows",
    "The <b>Gradients</b> panel at the bottom splits ∂L/∂u of the chosen LIF layer, step by step, into a "
    "<b>spatial</b> part (through the layer's own spikes at that step: what SLTT keeps) and a <b>temporal</b> "
    "part (through u[t+1]: what only BPTT follows).\n\n"
    "The button trains BPTT at T = 6, pauses, and asks the analysis again with every LIF layer at τ = 1.1, "
    "a leak so fast that little flows back in time.\n\n"
    "<b>Look at</b>\n"
    "• The temporal bars are close to zero, and the last step never has one.\n"
    "• The cosine between BPTT's and SLTT's weight gradients is close to 1: SLTT moves the weights as BPTT would.",
    "Train BPTT and look at τ = 1.1", gradient_stages, "walkthrough-4-gradients-tau1.png" },
  { "A longer memory: τ = 2, then 4",
    "Drag the <b>τ</b> slider of the Gradients panel, or press the button, to ask the same question with a "
    "slower leak (τ = 2, then 4). Nothing is trained: the run's own weights are used.\n\n"
    "<b>Look at</b>\n"
    "• The temporal part grows with τ: more of the gradient flows back through time, and SLTT leaves more of "
    "it out.\n"
    "• The weight-gradient cosine moves below 1, yet the spatial part still dominates.\n"
    "• Resume (Space) to go back to the model's own τ.",
    "Try τ = 2, then 4", tau_stages, "walkthrough-6-gradients-tau4.png" },
  { "Questions for the class",
    "1. Why is the temporal part of the last step always zero?\n\n"
    "2. The <b>Network</b> panel predicts the memory of each method. Does it agree with the runs?\n\n"
    "3. Set τ = 4 in the LIF settings and train SLTT and BPTT again. Does SLTT still reach BPTT's accuracy?\n\n"
    "4. Turn <i>Recompute (BPTT)</i> on: BPTT then keeps only each LIF layer's spikes, as bits, and rebuilds the "
    "rest during backward. What happens to its memory held for backward, to its arena, and to its time per "
    "iteration? What still grows with T?\n\n"
    "5. Save the session (menu ▸ Save Session in a Folder) and reopen it with <tt>snn-workbench --session DIR</tt>.",
    NULL, question_stages, NULL },
};

/* The panel */

static void
update_panel (SnnwbWalkthrough *self)
{
  const Step *s = &steps[self->step];
  g_autofree char *counter = g_strdup_printf ("Step %u of %u", self->step + 1, (guint) G_N_ELEMENTS (steps));
  gboolean busy = self->stage != NULL;

  gtk_label_set_text (self->counter, counter);
  gtk_label_set_text (self->title, s->title);
  gtk_label_set_markup (self->body, s->body);
  gtk_widget_set_visible (self->action, s->button != NULL);
  if (s->button)
    gtk_button_set_label (GTK_BUTTON (self->action), busy ? "Setting up…" : s->button);
  gtk_widget_set_sensitive (self->action, !busy);
  gtk_widget_set_sensitive (self->back, self->step > 0);
  gtk_widget_set_sensitive (self->next, self->step + 1 < G_N_ELEMENTS (steps));
}

static void
set_status (SnnwbWalkthrough *self, const char *text)
{
  gtk_label_set_text (self->status, text ? text : "");
  gtk_widget_set_visible (GTK_WIDGET (self->status), text && *text);
}

static void finish_stages (SnnwbWalkthrough *self, const char *problem);

static gboolean
tick (gpointer data)
{
  SnnwbWalkthrough *self = data;
  gint64 now = g_get_monotonic_time ();

  gtk_widget_remove_css_class (GTK_WIDGET (self->status), "error");
  gtk_widget_add_css_class (GTK_WIDGET (self->status), "dim-label");
  if (state (self) == SNNWB_RUN_FAILED && self->stage->func != st_load && self->stage->func != st_stop)
    {
      finish_stages (self, snnwb_window_get_message (self->win) ? snnwb_window_get_message (self->win)
                                                                 : "training failed");
      return G_SOURCE_REMOVE;
    }
  if (now - self->stage_start > STAGE_TIMEOUT)
    {
      finish_stages (self, "a step took too long");
      return G_SOURCE_REMOVE;
    }
  while (self->stage->func && self->stage->func (self, self->stage))
    {
      self->stage++;
      self->stage_begun = FALSE;
      self->stage_start = now;
    }
  /* While runs train for a step, the panel says how far they are. */
  if (self->stage->func == st_trained || self->stage->func == st_trained_for_shot)
    {
      SnnExperiment *e = snnwb_window_get_experiment (self->win);
      char label[32];
      g_autofree char *text = NULL;

      snnwb_method_label (e->model, e->train.method, e->train.K, e->train.recompute, label, sizeof label);
      text = g_strdup_printf ("Training %s at T = %d: iteration %ld of %d", label, e->train.T,
                                               snnwb_window_get_reported_iters (self->win), self->iterations);

      set_status (self, text);
    }
  if (self->stage->func && !self->failed)
    return G_SOURCE_CONTINUE;
  finish_stages (self, self->failed ? "a screenshot failed" : NULL);
  return G_SOURCE_REMOVE;
}

static void play_next (SnnwbWalkthrough *self);

/* While playing, the picture of a step once it is set up (the panel then
 * shows the step as the user would see it). */
static gboolean
final_shot_cb (gpointer data)
{
  SnnwbWalkthrough *self = data;
  Stage st = { st_shot, .name = steps[self->step].shot };

  if (!st_shot (self, &st))
    return G_SOURCE_CONTINUE;
  self->tick_id = 0;
  play_next (self);
  return G_SOURCE_REMOVE;
}

static void
finish_stages (SnnwbWalkthrough *self, const char *problem)
{
  self->stage = NULL;
  self->tick_id = 0;
  set_status (self, problem);
  gtk_widget_remove_css_class (GTK_WIDGET (self->status), "dim-label");
  gtk_widget_add_css_class (GTK_WIDGET (self->status), "error");
  update_panel (self);
  if (self->playing && !problem && steps[self->step].shot)
    {
      self->tick_id = g_timeout_add (POLL_MS, final_shot_cb, self);
      return;
    }
  if (problem && self->playing)
    {
      g_printerr ("walk-through: step %u: %s\n", self->step + 1, problem);
      self->failed = TRUE;
    }
  if (self->playing)
    play_next (self);
}

gboolean
snnwb_walkthrough_set_up (SnnwbWalkthrough *self)
{
  const Step *s = &steps[self->step];

  if (self->stage || !s->stages)
    return FALSE;
  self->stage = s->stages;
  self->stage_begun = FALSE;
  self->stage_start = g_get_monotonic_time ();
  set_status (self, NULL);
  update_panel (self);
  self->tick_id = g_timeout_add (POLL_MS, tick, self);
  return TRUE;
}

static void
action_clicked_cb (SnnwbWalkthrough *self)
{
  snnwb_walkthrough_set_up (self);
}

void
snnwb_walkthrough_go_to (SnnwbWalkthrough *self, guint step)
{
  if (step >= G_N_ELEMENTS (steps))
    return;
  self->step = step;
  set_status (self, NULL);
  update_panel (self);
}

static void
back_clicked_cb (SnnwbWalkthrough *self)
{
  if (self->step > 0)
    snnwb_walkthrough_go_to (self, self->step - 1);
}

static void
next_clicked_cb (SnnwbWalkthrough *self)
{
  snnwb_walkthrough_go_to (self, self->step + 1);
}

guint
snnwb_walkthrough_get_n_steps (SnnwbWalkthrough *self)
{
  return G_N_ELEMENTS (steps);
}

guint
snnwb_walkthrough_get_step (SnnwbWalkthrough *self)
{
  return self->step;
}

const char *
snnwb_walkthrough_get_title (SnnwbWalkthrough *self)
{
  return steps[self->step].title;
}

gboolean
snnwb_walkthrough_is_busy (SnnwbWalkthrough *self)
{
  return self->stage != NULL;
}

void
snnwb_walkthrough_set_iterations (SnnwbWalkthrough *self, int iterations)
{
  self->iterations = MAX (iterations, 1);
}

/* Playing */

static gboolean
close_cb (gpointer data)
{
  gtk_window_close (GTK_WINDOW (data));
  return G_SOURCE_REMOVE;
}

/* After a step is set up, the next one; after the last, the window goes. */
static void
play_next (SnnwbWalkthrough *self)
{
  if (self->failed || self->step + 1 >= G_N_ELEMENTS (steps))
    {
      g_idle_add (close_cb, self->win);
      return;
    }
  snnwb_walkthrough_go_to (self, self->step + 1);
  if (!snnwb_walkthrough_set_up (self))
    play_next (self);
}

static gboolean
play_start_cb (gpointer data)
{
  SnnwbWalkthrough *self = data;

  snnwb_walkthrough_go_to (self, 0);
  snnwb_walkthrough_set_up (self);
  return G_SOURCE_REMOVE;
}

void
snnwb_walkthrough_play (SnnwbWindow *win, const char *out_dir, int iterations)
{
  SnnwbWalkthrough *self = SNNWB_WALKTHROUGH (snnwb_window_get_walkthrough (win));

  snnwb_window_set_ask_before_close (win, FALSE);
  g_mkdir_with_parents (out_dir, 0755);
  g_free (self->shot_dir);
  self->shot_dir = g_strdup (out_dir);
  self->playing = TRUE;
  snnwb_walkthrough_set_iterations (self, iterations);
  g_action_group_activate_action (G_ACTION_GROUP (win), "show-panel", g_variant_new_string ("class"));
  g_timeout_add (500, play_start_cb, self);
}

/* GObject */

static void
snnwb_walkthrough_dispose (GObject *object)
{
  SnnwbWalkthrough *self = SNNWB_WALKTHROUGH (object);

  g_clear_handle_id (&self->tick_id, g_source_remove);
  self->stage = NULL;
  G_OBJECT_CLASS (snnwb_walkthrough_parent_class)->dispose (object);
}

static void
snnwb_walkthrough_finalize (GObject *object)
{
  g_free (SNNWB_WALKTHROUGH (object)->shot_dir);
  G_OBJECT_CLASS (snnwb_walkthrough_parent_class)->finalize (object);
}

static void
snnwb_walkthrough_class_init (SnnwbWalkthroughClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = snnwb_walkthrough_dispose;
  G_OBJECT_CLASS (klass)->finalize = snnwb_walkthrough_finalize;
}

static GtkLabel *
add_label (GtkBox *box, const char *css)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (label), PANGO_WRAP_WORD_CHAR);
  if (css)
    gtk_widget_add_css_class (label, css);
  gtk_box_append (box, label);
  return GTK_LABEL (label);
}

static void
snnwb_walkthrough_init (SnnwbWalkthrough *self)
{
  GtkBox *box = GTK_BOX (self);
  GtkWidget *scroll = gtk_scrolled_window_new ();
  GtkWidget *text = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *nav = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);

  self->iterations = 60;
  gtk_orientable_set_orientation (GTK_ORIENTABLE (self), GTK_ORIENTATION_VERTICAL);
  gtk_box_set_spacing (box, 8);
  gtk_widget_add_css_class (GTK_WIDGET (self), "walkthrough");
  gtk_widget_set_margin_start (text, 10);
  gtk_widget_set_margin_end (text, 10);
  self->counter = add_label (GTK_BOX (text), "dim-label");
  self->title = add_label (GTK_BOX (text), "panel-title");
  self->body = add_label (GTK_BOX (text), "walkthrough-body");
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroll), GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroll), text);
  gtk_widget_set_vexpand (scroll, TRUE);
  gtk_box_append (box, scroll);

  self->action = gtk_button_new_with_label ("");
  gtk_widget_add_css_class (self->action, "suggested-action");
  gtk_widget_set_margin_start (self->action, 10);
  gtk_widget_set_margin_end (self->action, 10);
  g_signal_connect_swapped (self->action, "clicked", G_CALLBACK (action_clicked_cb), self);
  gtk_box_append (box, self->action);
  self->status = add_label (box, "error");
  gtk_widget_set_margin_start (GTK_WIDGET (self->status), 10);

  self->back = gtk_button_new_with_mnemonic ("_Back");
  self->next = gtk_button_new_with_mnemonic ("_Next Step");
  gtk_widget_set_hexpand (self->back, TRUE);
  gtk_widget_set_hexpand (self->next, TRUE);
  g_signal_connect_swapped (self->back, "clicked", G_CALLBACK (back_clicked_cb), self);
  g_signal_connect_swapped (self->next, "clicked", G_CALLBACK (next_clicked_cb), self);
  gtk_box_append (GTK_BOX (nav), self->back);
  gtk_box_append (GTK_BOX (nav), self->next);
  gtk_widget_set_margin_start (nav, 10);
  gtk_widget_set_margin_end (nav, 10);
  gtk_widget_set_margin_bottom (nav, 10);
  gtk_box_append (box, nav);
  set_status (self, NULL);
  update_panel (self);
}

GtkWidget *
snnwb_walkthrough_new (SnnwbWindow *win)
{
  SnnwbWalkthrough *self = g_object_new (SNNWB_TYPE_WALKTHROUGH, NULL);

  self->win = win;
  return GTK_WIDGET (self);
}
