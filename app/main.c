/* snn-workbench: the graphical workbench. */
#include "blas-select.h"
#include <unistd.h>
#include "snnwb-application.h"

int
main (int argc, char **argv)
{
  /* Before anything else: the OpenBLAS kernel is read when the library
   * loads, hence a fresh start when it must change. */
  snnwb_blas_select (argc, argv);
  /* Every view is drawn with Cairo: GTK's Cairo renderer shows them without
   * a GL context, which without a GPU means software GL threads competing
   * with training for the cores. GSK_RENDERER still chooses. */
  if (!g_getenv ("GSK_RENDERER"))
    g_setenv ("GSK_RENDERER", "cairo", TRUE);
  /* Training uses every core, as `snnwb train` does: leaving one to the
   * views would cost a whole core's share, while drawing them takes a few
   * per cent of one (and runs at idle priority, see snnwb-offscreen.h). */
  g_autoptr (SnnwbApplication) app = snnwb_application_new ();

  g_set_application_name ("SNN Workbench");
  return g_application_run (G_APPLICATION (app), argc, argv);
}
