/* snnwb reproduce --quick as a user runs it: the CSV files carry the
 * columns the report and the plots are made from, and the measured bytes
 * held for backward grow with T under BPTT and stay flat under SLTT. */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int
snnwb (const char *args, char **err)
{
  g_autofree char *cmd = g_strdup_printf ("'%s' %s", g_getenv ("SNNWB"), args);
  int status;
  g_assert_true (g_spawn_command_line_sync (cmd, NULL, err, &status, NULL));
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

/* The rows of a CSV file, each split at commas; the header is row 0. */
static GPtrArray *
read_csv (const char *dir, const char *name, const char *header)
{
  g_autofree char *path = g_build_filename (dir, name, NULL), *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (g_strchomp (text), "\n", -1);
  g_assert_cmpstr (lines[0], ==, header);
  GPtrArray *rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_auto (GStrv) names = g_strsplit (header, ",", -1);
  int ncols = (int) g_strv_length (names);
  for (int i = 0; lines[i]; i++)
    {
      char **cols = g_strsplit (lines[i], ",", -1);
      g_assert_cmpint (g_strv_length (cols), ==, ncols);
      g_ptr_array_add (rows, cols);
    }
  g_assert_cmpuint (rows->len, >, 1);
  return rows;
}

static void
assert_file (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
}

static char *
run_quick (const char *base, const char *name)
{
  char *dir = g_build_filename (base, name, NULL);
  g_autofree char *args = g_strdup_printf ("reproduce %s --quick --out '%s'", name, dir);
  g_autofree char *err = NULL;
  int rc = snnwb (args, &err);
  if (rc != 0)
    g_printerr ("%s", err);
  g_assert_cmpint (rc, ==, 0);
  assert_file (dir, "report.md");
  return dir;
}

static void
test_fig3 (gconstpointer data)
{
  g_autofree char *dir = run_quick (data, "fig3");
  GPtrArray *rows = read_csv (dir, "fig3.csv", "dataset,T,tau,iteration,cosine_mean,temporal_ratio,loss");
  gboolean seen[2][3] = { { FALSE } };
  for (guint i = 1; i < rows->len; i++)
    {
      char **c = rows->pdata[i];
      double tau = g_ascii_strtod (c[2], NULL), cosine = g_ascii_strtod (c[4], NULL);
      int d = g_str_equal (c[0], "synthetic"), k = tau < 1.5 ? 0 : tau < 3 ? 1 : 2;
      seen[d][k] = TRUE;
      g_assert_true (cosine > -1.0001 && cosine < 1.0001);
    }
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < 3; k++)
      g_assert_true (seen[d][k]);
  g_ptr_array_free (rows, TRUE);
  rows = read_csv (dir, "fig3-layers.csv", "dataset,T,tau,iteration,layer,cosine");
  g_ptr_array_free (rows, TRUE);
  /* The folder is never reused. */
  g_autofree char *args = g_strdup_printf ("reproduce fig3 --quick --out '%s'", dir);
  g_autofree char *err = NULL;
  g_assert_cmpint (snnwb (args, &err), ==, 2);
  g_assert_nonnull (strstr (err, "not overwriting"));
}

static void
test_table1 (gconstpointer data)
{
  g_autofree char *dir = run_quick (data, "table1");
  GPtrArray *rows = read_csv (dir, "table1.csv", "dataset,model,method,T,peak_held_bytes,process_peak_bytes,"
                                                 "seconds_per_epoch,ms_per_iter,test_acc");
  g_assert_cmpuint (rows->len, ==, 5);
  g_ptr_array_free (rows, TRUE);
  rows = read_csv (dir, "table1-bytes.csv", "model,method,T,batch,held_bytes,predicted_bytes,ms_per_batch");
  /* Rows come in increasing T per model and method. */
  /* BPTT (storing or recomputing) grows with T, SLTT does not. */
  static const char *methods[] = { "bptt", "sltt", "bptt_recompute" };
  for (int pass = 0; pass < 3; pass++)
    {
      const char *method = methods[pass];
      g_autofree char *model = NULL;
      double last_T = 0, last_bytes = 0;
      int n = 0;
      for (guint i = 1; i < rows->len; i++)
        {
          char **c = rows->pdata[i];
          if (!g_str_equal (c[1], method))
            continue;
          double T = g_ascii_strtod (c[2], NULL), bytes = g_ascii_strtod (c[4], NULL);
          g_assert_cmpfloat (bytes, >, 0);
          if (g_strcmp0 (model, c[0]) == 0)
            {
              g_assert_cmpfloat (T, >, last_T);
              if (pass == 1)
                g_assert_cmpfloat (bytes, ==, last_bytes);
              else
                g_assert_cmpfloat (bytes, >, last_bytes);
            }
          g_free (model);
          model = g_strdup (c[0]);
          last_T = T, last_bytes = bytes;
          n++;
        }
      g_assert_cmpint (n, >=, 6);
    }
  g_ptr_array_free (rows, TRUE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (!g_getenv ("SNNWB"))
    {
      g_printerr ("SNNWB is not set: nothing to run\n");
      return 77; /* skipped */
    }
  g_autofree char *base = g_dir_make_tmp ("snnwb-reproduce-XXXXXX", NULL);
  g_assert_nonnull (base);
  g_test_add_data_func ("/reproduce/fig3", base, test_fig3);
  g_test_add_data_func ("/reproduce/table1", base, test_table1);
  int rc = g_test_run ();
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", base);
  if (system (cmd) != 0)
    g_printerr ("could not remove %s\n", base);
  return rc;
}
