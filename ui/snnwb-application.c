#include "snnwb-application.h"
#include "snnwb-walkthrough.h"
#include "snnwb-window.h"
#include "snn-config.h"
#include "pool.h"

struct _SnnwbApplication {
  GtkApplication parent_instance;
  char *screenshot_path;
  int screenshot_iters, screenshot_runs;
  char *screenshot_panel;
  char *walkthrough_dir;
  char *experiment_arg;
  char *session_arg;
};

G_DEFINE_FINAL_TYPE (SnnwbApplication, snnwb_application, GTK_TYPE_APPLICATION)

static void
quit_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  GList *windows = g_list_copy (gtk_application_get_windows (GTK_APPLICATION (user_data)));

  /* Closing each window stops its training cleanly. */
  for (GList *l = windows; l; l = l->next)
    gtk_window_close (GTK_WINDOW (l->data));
  g_list_free (windows);
}

static void
about_activated (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  static const char *const authors[] = { "SNN Workbench developers", NULL };
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (user_data));

  gtk_show_about_dialog (parent,
                         "program-name", "SNN Workbench",
                         "logo-icon-name", SNNWB_APP_ID,
                         "version", SNN_VERSION,
                         "comments", "Assemble, train and inspect leaky integrate-and-fire spiking networks",
                         "license-type", GTK_LICENSE_GPL_3_0,
                         "authors", authors,
                         NULL);
}

static const GActionEntry app_entries[] = {
  { .name = "quit", .activate = quit_activated },
  { .name = "about", .activate = about_activated },
};

static void
set_accels (GtkApplication *app)
{
  static const struct { const char *action; const char *accels[3]; } accels[] = {
    { "app.quit", { "<Control>q", NULL } },
    { "win.train", { "<Control>Return", NULL } },
    { "win.step", { "<Control>period", NULL } },
    { "win.stop", { "<Control>Escape", NULL } },
    { "win.open", { "<Control>o", NULL } },
    { "win.save", { "<Control>s", NULL } },
    { "win.save-as", { "<Control><Shift>s", NULL } },
    { "win.add-layer('linear')", { "<Control>l", NULL } },
    { "win.show-panel('network')", { "<Alt>1", NULL } },
    { "win.show-panel('settings')", { "<Alt>2", NULL } },
    { "win.show-panel('class')", { "<Alt>3", NULL } },
    { "win.presentation", { "F5", NULL } },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (app, accels[i].action, accels[i].accels);
}

void
snnwb_application_load_css (void)
{
  g_autoptr (GtkCssProvider) css = gtk_css_provider_new ();

  gtk_css_provider_load_from_resource (css, "/org/snnworkbench/Workbench/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
}

static void
snnwb_application_startup (GApplication *app)
{
  G_APPLICATION_CLASS (snnwb_application_parent_class)->startup (app);
  /* Drawing is part of the workbench's work: the training's thread pool
   * does not stand aside for it as it does for other programs. */
  snn_pool_count_as_own ();

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_entries, G_N_ELEMENTS (app_entries), app);
  set_accels (GTK_APPLICATION (app));
  snnwb_application_load_css ();
  gtk_window_set_default_icon_name (SNNWB_APP_ID);
}

static void
snnwb_application_activate (GApplication *app)
{
  SnnwbApplication *self = SNNWB_APPLICATION (app);
  SnnwbWindow *win = snnwb_window_new (GTK_APPLICATION (app));

  if (self->experiment_arg)
    snnwb_window_open_experiment (win, self->experiment_arg);
  if (self->session_arg)
    {
      g_autoptr (GError) error = NULL;

      if (!snnwb_window_open_session (win, self->session_arg, &error))
        g_printerr ("%s\n", error->message);
    }
  if (self->walkthrough_dir)
    {
      /* The documentation's pictures are 1280x720. */
      gtk_window_set_default_size (GTK_WINDOW (win), 1280, 720);
      snnwb_walkthrough_play (win, self->walkthrough_dir, self->screenshot_iters);
    }
  else if (self->screenshot_path)
    snnwb_window_run_screenshot (win, self->screenshot_path, self->screenshot_iters, self->screenshot_runs,
                                 self->screenshot_panel);
  gtk_window_present (GTK_WINDOW (win));
}

static void
snnwb_application_open (GApplication *app, GFile **files, int n_files, const char *hint)
{
  SnnwbApplication *self = SNNWB_APPLICATION (app);

  g_free (self->experiment_arg);
  self->experiment_arg = g_file_get_path (files[0]);
  snnwb_application_activate (app);
}

static int
snnwb_application_handle_local_options (GApplication *app, GVariantDict *options)
{
  SnnwbApplication *self = SNNWB_APPLICATION (app);
  const char *path = NULL, *preset = NULL, *panel = NULL;

  if (g_variant_dict_lookup (options, "screenshot", "^&ay", &path))
    self->screenshot_path = g_strdup (path);
  if (g_variant_dict_lookup (options, "walkthrough", "^&ay", &path))
    self->walkthrough_dir = g_strdup (path);
  if (!g_variant_dict_lookup (options, "iterations", "i", &self->screenshot_iters))
    self->screenshot_iters = 20;
  if (!g_variant_dict_lookup (options, "runs", "i", &self->screenshot_runs))
    self->screenshot_runs = 1;
  if (g_variant_dict_lookup (options, "panel", "&s", &panel))
    self->screenshot_panel = g_strdup (panel);
  if (g_variant_dict_lookup (options, "session", "^&ay", &path))
    self->session_arg = g_strdup (path);
  if (g_variant_dict_lookup (options, "preset", "&s", &preset))
    self->experiment_arg = g_strdup (preset);
  /* A screenshot run must not hand its work to an already running instance. */
  if (self->screenshot_path || self->walkthrough_dir)
    g_application_set_flags (app, g_application_get_flags (app) | G_APPLICATION_NON_UNIQUE);
  return -1;
}

static void
snnwb_application_finalize (GObject *object)
{
  SnnwbApplication *self = SNNWB_APPLICATION (object);

  g_free (self->screenshot_path);
  g_free (self->experiment_arg);
  g_free (self->screenshot_panel);
  g_free (self->walkthrough_dir);
  g_free (self->session_arg);
  G_OBJECT_CLASS (snnwb_application_parent_class)->finalize (object);
}

static void
snnwb_application_class_init (SnnwbApplicationClass *klass)
{
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = snnwb_application_finalize;
  app_class->startup = snnwb_application_startup;
  app_class->activate = snnwb_application_activate;
  app_class->open = snnwb_application_open;
  app_class->handle_local_options = snnwb_application_handle_local_options;
}

static void
snnwb_application_init (SnnwbApplication *self)
{
  static const GOptionEntry entries[] = {
    { "preset", 'p', 0, G_OPTION_ARG_STRING, NULL, "Start from a preset or an experiment file", "NAME" },
    { "session", 's', 0, G_OPTION_ARG_FILENAME, NULL, "Open the runs kept in a session folder", "DIR" },
    { "screenshot", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, NULL,
      "Train a few iterations, save a PNG of the window and quit", "FILE" },
    { "walkthrough", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, NULL,
      "Play the class walk-through, saving its screenshots to a folder, and quit", "DIR" },
    { "iterations", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, NULL, "Iterations per run before the screenshot", "N" },
    { "runs", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, NULL, "Runs to train before the screenshot", "N" },
    { "panel", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, NULL, "Sidebar page of the screenshot (network, settings)", "NAME" },
    { NULL }
  };

  g_application_add_main_option_entries (G_APPLICATION (self), entries);
}

SnnwbApplication *
snnwb_application_new (void)
{
  return g_object_new (SNNWB_TYPE_APPLICATION,
                       "application-id", SNNWB_APP_ID,
                       "flags", G_APPLICATION_HANDLES_OPEN,
                       NULL);
}
