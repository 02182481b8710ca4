/* Main-loop helpers shared by the GUI tests. */
#pragma once
#include <gtk/gtk.h>

static gboolean
tgu_wake_up (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main loop until cond holds; fails after timeout_s. */
static inline void
iterate_until (gboolean (*cond) (gpointer), gpointer data, double timeout_s, const char *what)
{
  gint64 end = g_get_monotonic_time () + (gint64) (timeout_s * G_USEC_PER_SEC);
  guint tick = g_timeout_add (10, tgu_wake_up, NULL);

  while (!cond (data))
    {
      if (g_get_monotonic_time () > end)
        g_error ("timed out waiting for %s", what);
      g_main_context_iteration (NULL, TRUE);
    }
  g_source_remove (tick);
}
