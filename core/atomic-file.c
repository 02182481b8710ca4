#include "atomic-file.h"
#include "snn-error.h"
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct SnnAtomicFile {
  char *path, *tmp, *dir;
  FILE *f;
  guint64 offset;
  int err;          /* first write error (errno), 0: none */
};

/* A temporary file's writer is gone when its pid names no process here.
 * A reused pid only keeps a stale file until a later sweep. */
static gboolean
tmp_is_stale (const char *name)
{
  const char *p = name + strlen (SNN_ATOMIC_TMP_PREFIX);
  char *end;
  long pid = strtol (p, &end, 10);
  if (end == p || *end != '.' || pid <= 0)
    return FALSE;
  return kill ((pid_t) pid, 0) != 0 && errno == ESRCH;
}

int
snn_atomic_sweep (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  if (!d)
    return 0;
  int removed = 0;
  const char *name;
  while ((name = g_dir_read_name (d)))
    if (g_str_has_prefix (name, SNN_ATOMIC_TMP_PREFIX) && tmp_is_stale (name))
      {
        g_autofree char *p = g_build_filename (dir, name, NULL);
        removed += g_unlink (p) == 0;
      }
  g_dir_close (d);
  return removed;
}

static void
set_io_error (GError **error, const char *path, const char *what, int e)
{
  g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: %s: %s", path, what,
               g_strerror (e));
}

SnnAtomicFile *
snn_atomic_file_open (const char *path, GError **error)
{
  SnnAtomicFile *af = g_new0 (SnnAtomicFile, 1);
  af->path = g_strdup (path);
  af->dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  /* Long names are cut so the temporary name stays within NAME_MAX. */
  if (strlen (base) > 160)
    base[160] = 0;
  snn_atomic_sweep (af->dir);
  g_autofree char *name = g_strdup_printf (SNN_ATOMIC_TMP_PREFIX "%ld.XXXXXX.%s", (long) getpid (), base);
  af->tmp = g_build_filename (af->dir, name, NULL);
  /* mkstemp wants the Xs last: fill them in by hand. */
  char *x = af->tmp + strlen (af->tmp) - strlen (base) - 7;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; attempt++)
    {
      static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
      for (int i = 0; i < 6; i++)
        x[i] = chars[g_random_int_range (0, sizeof chars - 1)];
      /* Mode 0666 lets the umask decide, as for any newly created file. */
      fd = open (af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd < 0 && errno != EEXIST)
        break;
    }
  if (fd < 0)
    {
      set_io_error (error, path, "cannot create a temporary file next to it", errno);
      g_clear_pointer (&af->tmp, g_free);
      snn_atomic_file_abort (af);
      return NULL;
    }
  af->f = fdopen (fd, "wb");
  if (!af->f)
    {
      set_io_error (error, path, "cannot write", errno);
      close (fd);
      snn_atomic_file_abort (af);
      return NULL;
    }
  return af;
}

gboolean
snn_atomic_file_write (SnnAtomicFile *af, const void *data, size_t len, GError **error)
{
  if (len && fwrite (data, 1, len, af->f) != len)
    {
      af->err = af->err ? af->err : (errno ? errno : EIO);
      set_io_error (error, af->path, "cannot write", af->err);
      return FALSE;
    }
  af->offset += len;
  return TRUE;
}

FILE *
snn_atomic_file_stream (SnnAtomicFile *af)
{
  return af->f;
}

guint64
snn_atomic_file_offset (const SnnAtomicFile *af)
{
  return af->offset;
}

void
snn_atomic_file_abort (SnnAtomicFile *af)
{
  if (!af)
    return;
  if (af->f)
    fclose (af->f);
  if (af->tmp)
    g_unlink (af->tmp);
  g_free (af->tmp);
  g_free (af->path);
  g_free (af->dir);
  g_free (af);
}

/* Without this a crash soon after the rename could lose the new name. */
static void
sync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0)
    {
      fsync (fd);
      close (fd);
    }
}

gboolean
snn_atomic_file_commit (SnnAtomicFile *af, GError **error)
{
  /* fsync before the rename: a rename that lands before the data would
   * leave an empty file after a crash. */
  int e = af->err || ferror (af->f) ? (af->err ? af->err : EIO) : 0;
  if (!e && (fflush (af->f) != 0 || fsync (fileno (af->f)) != 0))
    e = errno;
  if (fclose (af->f) != 0 && !e)
    e = errno;
  af->f = NULL;
  if (!e && g_rename (af->tmp, af->path) != 0)
    e = errno;
  if (e)
    {
      set_io_error (error, af->path, "cannot write", e);
      snn_atomic_file_abort (af);
      return FALSE;
    }
  g_clear_pointer (&af->tmp, g_free);
  sync_dir (af->dir);
  snn_atomic_file_abort (af);
  return TRUE;
}

gboolean
snn_file_write_atomic (const char *path, const void *data, gssize len, GError **error)
{
  SnnAtomicFile *af = snn_atomic_file_open (path, error);
  if (!af)
    return FALSE;
  size_t n = len < 0 ? strlen (data) : (size_t) len;
  if (!snn_atomic_file_write (af, data, n, error))
    {
      snn_atomic_file_abort (af);
      return FALSE;
    }
  return snn_atomic_file_commit (af, error);
}
