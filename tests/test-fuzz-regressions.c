/* Every input under tests/fuzz/regressions/<target>/ (what once crashed a
 * reader) and tests/fuzz/corpus/<target>/ (the seeds) goes through the
 * fuzz target's code: each must end in a clean error or a success. Built
 * with the ordinary compiler, so no clang is needed; under
 * scripts/test.sh --sanitize, ASan and UBSan watch every byte. */
#include "fuzz/fuzz-targets.h"
#include <glib.h>

static int
replay_dir (const SnnFuzzTarget *t, const char *kind)
{
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fuzz", kind, t->name, NULL);
  GDir *d = g_dir_open (dir, 0, NULL);
  if (!d)
    return 0;
  int n = 0;
  const char *name;
  while ((name = g_dir_read_name (d)))
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *data = NULL;
      gsize len;
      if (name[0] == '.' || !g_file_get_contents (path, &data, &len, NULL))
        continue;
      g_test_message ("%s", path);
      t->run ((const guint8 *) data, len);
      n++;
    }
  g_dir_close (d);
  return n;
}

static void
test_target (gconstpointer data)
{
  const SnnFuzzTarget *t = data;
  int seeds = replay_dir (t, "corpus");
  replay_dir (t, "regressions");
  /* Every target has a seed corpus; an empty one would test nothing. */
  g_assert_cmpint (seeds, >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  snn_fuzz_setup ();
  for (const SnnFuzzTarget *t = snn_fuzz_targets; t->name; t++)
    {
      g_autofree char *path = g_strdup_printf ("/fuzz/%s", t->name);
      g_test_add_data_func (path, t, test_target);
    }
  return g_test_run ();
}
