/* snn-workbench: the graphical workbench. */
#include "blas-select.h"
#include "snnwb-application.h"

int
main (int argc, char **argv)
{
  /* OpenMP threads wait as in snnwb train (spinning a while before they
   * sleep): with views drawn at idle priority or in short bursts, waking
   * sleeping threads at every parallel loop cost small networks a third of
   * their speed. The OpenBLAS kernel is chosen before anything else. */
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
