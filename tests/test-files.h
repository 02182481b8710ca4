/* Shared by the file-format tests: a fixture that gives each test a fresh
 * temporary folder and removes it, with everything in it, afterwards; and a
 * check that an error names the file and the problem. */
#pragma once
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

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

/* The error is of this domain and code, and its message mentions `name`
 * (usually the file) and, if given, `also` (the problem). */
static inline void
assert_error_mentions (GError *error, GQuark domain, int code, const char *name, const char *also)
{
  g_assert_error (error, domain, code);
  if (!strstr (error->message, name) || (also && !strstr (error->message, also)))
    g_error ("message \"%s\" lacks \"%s\"%s%s", error->message, name, also ? " or " : "", also ? also : "");
}
