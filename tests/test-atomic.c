/* The atomic writer: whole or absent, also under kill -9; stale temporary
 * files swept; errors name the file. */
#include "atomic-file.h"
#include "snn-error.h"
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  char *dir;
} Fixture;

static void
fx_setup (Fixture *fx, gconstpointer data)
{
  fx->dir = g_dir_make_tmp ("snnwb-atomic-XXXXXX", NULL);
  g_assert_nonnull (fx->dir);
}

static void
fx_teardown (Fixture *fx, gconstpointer data)
{
  GDir *d = g_dir_open (fx->dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d)))
    {
      g_autofree char *p = g_build_filename (fx->dir, name, NULL);
      g_unlink (p);
    }
  if (d)
    g_dir_close (d);
  g_rmdir (fx->dir);
  g_free (fx->dir);
}

static int
count_entries (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  int n = 0;
  while (g_dir_read_name (d))
    n++;
  g_dir_close (d);
  return n;
}

static void
test_write_replace (Fixture *fx, gconstpointer data)
{
  g_autofree char *p = g_build_filename (fx->dir, "a.txt", NULL);
  GError *error = NULL;
  g_assert_true (snn_file_write_atomic (p, "first", -1, &error));
  g_assert_no_error (error);
  g_assert_true (snn_file_write_atomic (p, "second", -1, &error));
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (p, &text, NULL, NULL));
  g_assert_cmpstr (text, ==, "second");
  g_assert_cmpint (count_entries (fx->dir), ==, 1);
}

static void
test_error_names_file (Fixture *fx, gconstpointer data)
{
  g_autofree char *p = g_build_filename (fx->dir, "no-such-folder", "a.txt", NULL);
  GError *error = NULL;
  g_assert_false (snn_file_write_atomic (p, "x", -1, &error));
  g_assert_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, p));
  g_clear_error (&error);
  /* An aborted file leaves nothing behind. */
  g_autofree char *q = g_build_filename (fx->dir, "b.txt", NULL);
  SnnAtomicFile *af = snn_atomic_file_open (q, &error);
  g_assert_no_error (error);
  g_assert_true (snn_atomic_file_write (af, "partial", 7, &error));
  snn_atomic_file_abort (af);
  g_assert_cmpint (count_entries (fx->dir), ==, 0);
}

/* Temporary files of a process that is gone are removed at the next write
 * into the folder; those of a live process are kept. */
static void
test_sweep (Fixture *fx, gconstpointer data)
{
  pid_t child = fork ();
  if (child == 0)
    _exit (0);
  waitpid (child, NULL, 0);
  g_autofree char *dead = g_strdup_printf ("%s/" SNN_ATOMIC_TMP_PREFIX "%d.abcdef.w.npz", fx->dir, (int) child);
  g_autofree char *live = g_strdup_printf ("%s/" SNN_ATOMIC_TMP_PREFIX "%d.abcdef.w.npz", fx->dir, (int) getpid ());
  g_autofree char *other = g_build_filename (fx->dir, "user.tmp", NULL);
  g_assert_true (g_file_set_contents (dead, "x", -1, NULL));
  g_assert_true (g_file_set_contents (live, "x", -1, NULL));
  g_assert_true (g_file_set_contents (other, "x", -1, NULL));
  g_autofree char *p = g_build_filename (fx->dir, "w.npz", NULL);
  g_assert_true (snn_file_write_atomic (p, "new", -1, NULL));
  g_assert_false (g_file_test (dead, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (live, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (other, G_FILE_TEST_EXISTS));
}

/* A writer killed with SIGKILL at random moments while it rewrites a file
 * with one of two contents: the file is always one of them, whole. */
static void
test_kill9 (Fixture *fx, gconstpointer data)
{
  g_autofree char *p = g_build_filename (fx->dir, "big.bin", NULL);
  const size_t n = 4 << 20;
  guint8 *a = g_malloc (n), *b = g_malloc (n);
  memset (a, 'a', n);
  memset (b, 'b', n);
  g_assert_true (snn_file_write_atomic (p, a, n, NULL));
  GRand *rand = g_rand_new_with_seed (5);
  for (int round = 0; round < 12; round++)
    {
      pid_t child = fork ();
      if (child == 0)
        {
          for (int i = 0;; i++)
            snn_file_write_atomic (p, i % 2 ? a : b, n, NULL);
        }
      g_usleep (g_rand_int_range (rand, 1000, 60000));
      kill (child, SIGKILL);
      waitpid (child, NULL, 0);
      gsize len;
      g_autofree char *got = NULL;
      g_assert_true (g_file_get_contents (p, &got, &len, NULL));
      g_assert_cmpuint (len, ==, n);
      g_assert_true (memcmp (got, a, n) == 0 || memcmp (got, b, n) == 0);
    }
  /* The killed writers' temporary files go at the next write. */
  g_assert_true (snn_file_write_atomic (p, a, n, NULL));
  g_assert_cmpint (count_entries (fx->dir), ==, 1);
  g_rand_free (rand);
  g_free (a);
  g_free (b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/atomic/write-replace", Fixture, NULL, fx_setup, test_write_replace, fx_teardown);
  g_test_add ("/atomic/error-names-file", Fixture, NULL, fx_setup, test_error_names_file, fx_teardown);
  g_test_add ("/atomic/sweep", Fixture, NULL, fx_setup, test_sweep, fx_teardown);
  g_test_add ("/atomic/kill9", Fixture, NULL, fx_setup, test_kill9, fx_teardown);
  return g_test_run ();
}
