/* snn-workbench: the graphical workbench. */
#include "snnwb-application.h"

int
main (int argc, char **argv)
{
  g_autoptr (SnnwbApplication) app = snnwb_application_new ();

  g_set_application_name ("SNN Workbench");
  return g_application_run (G_APPLICATION (app), argc, argv);
}
