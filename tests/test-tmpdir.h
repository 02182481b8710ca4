/* A fixture that gives each test a fresh temporary folder and removes it,
 * with everything in it, afterwards. */
#pragma once
#include <glib.h>
#include <glib/gstdio.h>

typedef struct {
  char *dir;
} Fixture;

static inline void
setup (Fixture *f, gconstpointer d)
{
  GError *error = NULL;
  f->dir = g_dir_make_tmp ("snn-test-XXXXXX", &error);
  g_assert_no_error (error);
}

static inline void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;
  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *p = g_build_filename (path, name, NULL);
      if (g_file_test (p, G_FILE_TEST_IS_DIR))
        remove_tree (p);
      else
        g_unlink (p);
    }
  if (dir)
    g_dir_close (dir);
  g_rmdir (path);
}

static inline void
teardown (Fixture *f, gconstpointer d)
{
  remove_tree (f->dir);
  g_free (f->dir);
}

static inline char *
tmp_path (Fixture *f, const char *name)
{
  return g_build_filename (f->dir, name, NULL);
}
