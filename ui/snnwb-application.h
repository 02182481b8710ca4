/* The workbench application: one window per activation, app-wide actions
 * and keyboard accelerators. */
#pragma once
#include <gtk/gtk.h>

G_BEGIN_DECLS

#define SNNWB_APP_ID "org.snnworkbench.Workbench"

#define SNNWB_TYPE_APPLICATION (snnwb_application_get_type ())
G_DECLARE_FINAL_TYPE (SnnwbApplication, snnwb_application, SNNWB, APPLICATION, GtkApplication)

SnnwbApplication *snnwb_application_new (void);

/* The workbench's style sheet, for every window of the display. */
void              snnwb_application_load_css (void);

G_END_DECLS
