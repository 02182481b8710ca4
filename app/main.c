/* snn-workbench: the graphical workbench. */
#include "blas-select.h"
#include "snnwb-application.h"

int
main (int argc, char **argv)
{
  /* Before anything else: the chosen OpenBLAS kernel needs a fresh start. */
  snnwb_blas_select (argc, argv);
  g_autoptr (SnnwbApplication) app = snnwb_application_new ();

  g_set_application_name ("SNN Workbench");
  return g_application_run (G_APPLICATION (app), argc, argv);
}
