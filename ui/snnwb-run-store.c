#include "snnwb-run-store.h"
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <unistd.h>
#include "npy.h"

#define FORMAT 1
/* Iterations already in their files, per run (object data). */
#define SAVED_ITERS "snnwb-store-saved-iters"

G_DEFINE_QUARK (snnwb-store-error-quark, snnwb_store_error)

static gboolean
set_errno_error (GError **error, const char *path, const char *what)
{
  int err = errno;

  g_set_error (error, SNNWB_STORE_ERROR, g_file_error_from_errno (err), "%s: %s: %s", path, what, g_strerror (err));
  return FALSE;
}

static gboolean
sync_and_rename (const char *tmp, const char *path, GError **error)
{
  int fd = g_open (tmp, O_RDONLY, 0);

  if (fd < 0 || fsync (fd) != 0)
    {
      if (fd >= 0)
        close (fd);
      g_unlink (tmp);
      return set_errno_error (error, path, "could not sync");
    }
  close (fd);
  if (g_rename (tmp, path) != 0)
    {
      g_unlink (tmp);
      return set_errno_error (error, path, "could not rename into place");
    }
  return TRUE;
}

gboolean
snnwb_store_write_atomic (const char *path, const char *data, gsize len, GError **error)
{
  g_autofree char *tmp = g_strdup_printf ("%s.XXXXXX", path);
  int fd = g_mkstemp (tmp);
  gsize done = 0;

  if (fd < 0)
    return set_errno_error (error, path, "could not create a temporary file beside it");
  while (done < len)
    {
      gssize n = write (fd, data + done, len - done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          set_errno_error (error, path, "could not write");
          close (fd);
          g_unlink (tmp);
          return FALSE;
        }
      done += n;
    }
  if (fsync (fd) != 0 || close (fd) != 0)
    {
      set_errno_error (error, path, "could not sync");
      g_unlink (tmp);
      return FALSE;
    }
  if (g_rename (tmp, path) != 0)
    {
      g_unlink (tmp);
      return set_errno_error (error, path, "could not rename into place");
    }
  return TRUE;
}

static gboolean
write_data (const char *dir, const char *name, const char *data, gsize len, GError **error)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);

  return snnwb_store_write_atomic (path, data, len, error);
}

static gboolean
write_string (const char *dir, const char *name, GString *s, GError **error)
{
  return write_data (dir, name, s->str, s->len, error);
}

/* Saving */

static const char *const state_keys[] = { "loading", "running", "paused", "stopped", "finished", "failed" };
static const char *const method_keys[] = { "bptt", "sltt", "sltt_k" };

static char *
run_json (SnnwbRun *run)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  const SnnwbMethodChange *h;
  guint n;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, FORMAT);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, snnwb_run_get_name (run));
  json_builder_set_member_name (b, "number");
  json_builder_add_int_value (b, snnwb_run_get_number (run));
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (b, state_keys[snnwb_run_get_state (run)]);
  json_builder_set_member_name (b, "total_iters");
  json_builder_add_int_value (b, snnwb_run_get_total_iters (run));
  json_builder_set_member_name (b, "methods");
  json_builder_begin_array (b);
  h = snnwb_run_get_method_history (run, &n);
  for (guint i = 0; i < n; i++)
    {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "iter");
      json_builder_add_int_value (b, h[i].iter);
      json_builder_set_member_name (b, "method");
      json_builder_add_string_value (b, method_keys[h[i].method]);
      json_builder_set_member_name (b, "K");
      json_builder_add_int_value (b, h[i].K);
      json_builder_set_member_name (b, "recompute");
      json_builder_add_boolean_value (b, h[i].recompute);
      json_builder_set_member_name (b, "label");
      json_builder_add_string_value (b, h[i].label);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  return json_generator_to_data (gen, NULL);
}

#define ITER_HEADER "iter,epoch,loss,acc,forward_ms,backward_ms,held_bytes,process_peak_bytes,lr,wall_s,arena_bytes\n"
#define ITER_FIELDS 11

static void
append_iter (GString *s, const SnnwbIterRecord *r)
{
  g_string_append_printf (s, "%ld,%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", r->iter, r->epoch,
                          r->loss, r->acc, r->forward_ms, r->backward_ms, r->held_bytes, r->process_peak_bytes,
                          r->lr, r->wall_s, r->arena_bytes);
}

/* Rewrites the chunk files from the one that holds the first unsaved
 * iteration; earlier chunks are complete and stay as they are. */
static gboolean
save_iters (SnnwbRun *run, const char *dir, GError **error)
{
  guint n, saved = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (run), SAVED_ITERS));
  const SnnwbIterRecord *it = snnwb_run_get_iters (run, &n);

  /* Fewer than saved: the run was cut back to a checkpoint. */
  saved = MIN (saved, n);
  for (guint c = saved / SNNWB_STORE_CHUNK; c * SNNWB_STORE_CHUNK < n; c++)
    {
      g_autoptr (GString) s = g_string_new (ITER_HEADER);
      g_autofree char *name = g_strdup_printf ("iters-%04u.csv", c);

      for (guint i = c * SNNWB_STORE_CHUNK; i < MIN (n, (c + 1) * SNNWB_STORE_CHUNK); i++)
        append_iter (s, &it[i]);
      if (!write_string (dir, name, s, error))
        return FALSE;
    }
  g_object_set_data (G_OBJECT (run), SAVED_ITERS, GUINT_TO_POINTER (n));
  return TRUE;
}

static gboolean
save_epochs_cosines (SnnwbRun *run, const char *dir, GError **error)
{
  g_autoptr (GString) ep = g_string_new ("epoch,end_iter,train_loss,train_acc,test_acc,ms_per_iter\n");
  g_autoptr (GString) co = g_string_new ("iter,mean,n");
  guint n;
  const SnnwbEpochRecord *e = snnwb_run_get_epochs (run, &n);
  const SnnwbCosineRecord *c;

  for (guint i = 0; i < n; i++)
    g_string_append_printf (ep, "%d,%ld,%.17g,%.17g,%.17g,%.17g\n", e[i].epoch, e[i].end_iter, e[i].train_loss,
                            e[i].train_acc, e[i].test_acc, e[i].ms_per_iter);
  for (int k = 0; k < SNNWB_MAX_AFFINE; k++)
    g_string_append_printf (co, ",cosine_%d", k);
  g_string_append_c (co, '\n');
  c = snnwb_run_get_cosines (run, &n);
  for (guint i = 0; i < n; i++)
    {
      g_string_append_printf (co, "%ld,%.17g,%d", c[i].iter, c[i].mean, c[i].n);
      for (int k = 0; k < SNNWB_MAX_AFFINE; k++)
        g_string_append_printf (co, ",%.17g", c[i].cosine[k]);
      g_string_append_c (co, '\n');
    }
  return write_string (dir, "epochs.csv", ep, error) && write_string (dir, "cosines.csv", co, error);
}

static gboolean
save_weights (SnnwbRun *run, const char *dir, SnnNet *net, GError **error)
{
  g_autofree char *path = g_build_filename (dir, "weights.npz", NULL);
  g_autofree char *part = g_build_filename (dir, "weights.npz.part", NULL);
  SnnNpz *npz = snn_net_to_npz (net, FALSE);
  gboolean ok = snn_npz_save (part, npz, error) && sync_and_rename (part, path, error);

  snn_npz_free (npz);
  if (ok)
    snnwb_run_set_weights_path (run, path);
  return ok;
}

static char *
pick_folder (const char *session_dir, GError **error)
{
  if (g_mkdir_with_parents (session_dir, 0755) != 0)
    {
      set_errno_error (error, session_dir, "could not create the session folder");
      return NULL;
    }
  for (int i = 1; i < 100000; i++)
    {
      g_autofree char *name = g_strdup_printf ("run-%03d", i);
      char *dir = g_build_filename (session_dir, name, NULL);

      if (g_mkdir (dir, 0755) == 0)
        return dir;
      if (errno != EEXIST)
        {
          set_errno_error (error, dir, "could not create the run's folder");
          g_free (dir);
          return NULL;
        }
      g_free (dir);
    }
  g_set_error (error, SNNWB_STORE_ERROR, 0, "%s: no free run folder name", session_dir);
  return NULL;
}

gboolean
snnwb_store_save_run (SnnwbRun *run, const char *session_dir, SnnNet *net, GError **error)
{
  guint64 changes = snnwb_run_get_changes (run);
  g_autofree char *meta = NULL;
  g_autofree char *exp = NULL;
  const char *dir;

  if (!snnwb_run_get_folder (run))
    {
      g_autofree char *folder = pick_folder (session_dir, error);

      if (!folder)
        return FALSE;
      snnwb_run_set_folder (run, folder);
    }
  dir = snnwb_run_get_folder (run);
  exp = snn_experiment_to_json (snnwb_run_get_experiment (run));
  meta = run_json (run);
  if (!write_data (dir, "experiment.json", exp, strlen (exp), error)
      || !save_iters (run, dir, error) || !save_epochs_cosines (run, dir, error)
      || (net && !save_weights (run, dir, net, error))
      /* run.json last: a folder without it is not a run yet. */
      || !write_data (dir, "run.json", meta, strlen (meta), error))
    return FALSE;
  snnwb_run_mark_saved (run, changes);
  return TRUE;
}

gboolean
snnwb_store_delete_run (SnnwbRun *run, GError **error)
{
  const char *dir = snnwb_run_get_folder (run);
  static const char *const fixed[] = { "run.json", "experiment.json", "epochs.csv", "cosines.csv", "weights.npz",
                                       "checkpoint.npz", "metrics.csv", "weights-last-good.npz" };
  g_autoptr (GDir) d = NULL;
  const char *name;

  if (!dir)
    return TRUE;
  d = g_dir_open (dir, 0, error);
  if (!d)
    return FALSE;
  /* Only the files the store writes: anything the user put there stays,
   * and then so does the folder. */
  while ((name = g_dir_read_name (d)))
    {
      gboolean ours = g_str_has_prefix (name, "iters-") && g_str_has_suffix (name, ".csv");
      g_autofree char *path = g_build_filename (dir, name, NULL);

      for (gsize i = 0; i < G_N_ELEMENTS (fixed); i++)
        ours |= g_str_equal (name, fixed[i]);
      if (ours && g_unlink (path) != 0)
        return set_errno_error (error, path, "could not remove");
    }
  g_rmdir (dir);
  snnwb_run_set_folder (run, NULL);
  return TRUE;
}

/* Loading */

typedef gboolean (*RowFunc) (SnnwbRun *run, const double *v, int n);

/* Reads a CSV of numbers with a header line; rows must have at least
 * min_fields fields. */
static gboolean
read_csv (SnnwbRun *run, const char *path, int min_fields, RowFunc func, GError **error)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents (path, &text, NULL, error))
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  for (int l = 1; lines[l]; l++)
    {
      g_auto (GStrv) f = NULL;
      double v[3 + SNNWB_MAX_AFFINE + 8];
      int n = 0;

      if (!*lines[l])
        continue;
      f = g_strsplit (lines[l], ",", -1);
      for (; f[n] && n < (int) G_N_ELEMENTS (v); n++)
        {
          char *end;

          v[n] = g_ascii_strtod (f[n], &end);
          if (end == f[n] || *end)
            {
              g_set_error (error, SNNWB_STORE_ERROR, 0, "%s: line %d: \"%s\" is not a number", path, l + 1, f[n]);
              return FALSE;
            }
        }
      if (n < min_fields)
        {
          g_set_error (error, SNNWB_STORE_ERROR, 0, "%s: line %d: %d fields, expected %d", path, l + 1, n, min_fields);
          return FALSE;
        }
      func (run, v, n);
    }
  return TRUE;
}

static gboolean
iter_row (SnnwbRun *run, const double *v, int n)
{
  SnnwbIterRecord r = {
    .iter = (long) v[0], .epoch = (int) v[1], .loss = v[2], .acc = v[3], .forward_ms = v[4],
    .backward_ms = v[5], .held_bytes = v[6], .process_peak_bytes = v[7], .lr = v[8], .wall_s = v[9],
    .arena_bytes = v[10],
  };

  snnwb_run_append_iter (run, &r);
  return TRUE;
}

static gboolean
epoch_row (SnnwbRun *run, const double *v, int n)
{
  SnnwbEpochRecord r = {
    .epoch = (int) v[0], .end_iter = (long) v[1], .train_loss = v[2], .train_acc = v[3], .test_acc = v[4],
    .ms_per_iter = v[5],
  };

  snnwb_run_append_epoch (run, &r);
  return TRUE;
}

static gboolean
cosine_row (SnnwbRun *run, const double *v, int n)
{
  SnnwbCosineRecord r = { .iter = (long) v[0], .mean = v[1], .n = CLAMP ((int) v[2], 0, SNNWB_MAX_AFFINE) };

  for (int k = 0; k < SNNWB_MAX_AFFINE && 3 + k < n; k++)
    r.cosine[k] = v[3 + k];
  snnwb_run_append_cosine (run, &r);
  return TRUE;
}

static int
index_of (const char *const *keys, int n, const char *key)
{
  for (int i = 0; i < n; i++)
    if (key && g_str_equal (keys[i], key))
      return i;
  return -1;
}

static gboolean
read_history (JsonObject *o, const char *path, GArray *out, GError **error)
{
  JsonArray *a = json_object_has_member (o, "methods") ? json_object_get_array_member (o, "methods") : NULL;

  for (guint i = 0; a && i < json_array_get_length (a); i++)
    {
      JsonObject *m = json_array_get_object_element (a, i);
      SnnwbMethodChange c = { 0 };
      int method = m ? index_of (method_keys, 3, json_object_get_string_member_with_default (m, "method", NULL)) : -1;

      if (method < 0)
        {
          g_set_error (error, SNNWB_STORE_ERROR, 0, "%s: methods[%u]: unknown method", path, i);
          return FALSE;
        }
      c.iter = json_object_get_int_member_with_default (m, "iter", 0);
      c.method = method;
      c.K = (int) json_object_get_int_member_with_default (m, "K", 1);
      c.recompute = json_object_get_boolean_member_with_default (m, "recompute", FALSE);
      g_strlcpy (c.label, json_object_get_string_member_with_default (m, "label", ""), sizeof c.label);
      g_array_append_val (out, c);
    }
  return TRUE;
}

static SnnwbRun *
load_run (const char *dir, GError **error)
{
  g_autofree char *meta_path = g_build_filename (dir, "run.json", NULL);
  g_autofree char *exp_path = g_build_filename (dir, "experiment.json", NULL);
  g_autofree char *weights = g_build_filename (dir, "weights.npz", NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GArray) history = g_array_new (FALSE, FALSE, sizeof (SnnwbMethodChange));
  g_autoptr (SnnwbRun) run = NULL;
  SnnExperiment *e;
  JsonObject *o;
  int state;

  if (!json_parser_load_from_file (parser, meta_path, error))
    return NULL;
  o = JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)) ? json_node_get_object (json_parser_get_root (parser)) : NULL;
  if (!o || json_object_get_int_member_with_default (o, "format", 0) != FORMAT)
    {
      g_set_error (error, SNNWB_STORE_ERROR, 0, "%s: not a run of this format (\"format\": %d expected)", meta_path, FORMAT);
      return NULL;
    }
  if (!read_history (o, meta_path, history, error) || !(e = snn_experiment_load (exp_path, error)))
    return NULL;
  run = snnwb_run_new (e, (int) json_object_get_int_member_with_default (o, "number", 1));
  snn_experiment_free (e);
  snnwb_run_set_name (run, json_object_get_string_member_with_default (o, "name", "run"));
  for (int c = 0;; c++)
    {
      g_autofree char *name = g_strdup_printf ("iters-%04d.csv", c);
      g_autofree char *path = g_build_filename (dir, name, NULL);

      if (!g_file_test (path, G_FILE_TEST_EXISTS))
        break;
      if (!read_csv (run, path, ITER_FIELDS, iter_row, error))
        return NULL;
    }
  {
    g_autofree char *ep = g_build_filename (dir, "epochs.csv", NULL);
    g_autofree char *co = g_build_filename (dir, "cosines.csv", NULL);

    if (!read_csv (run, ep, 6, epoch_row, error) || !read_csv (run, co, 3, cosine_row, error))
      return NULL;
  }
  state = index_of (state_keys, G_N_ELEMENTS (state_keys), json_object_get_string_member_with_default (o, "state", NULL));
  /* A run that was training when it was last saved ended there. */
  if (state < SNNWB_RUN_STOPPED)
    state = SNNWB_RUN_STOPPED;
  snnwb_run_restore (run, state, json_object_get_int_member_with_default (o, "total_iters", 0),
                     (const SnnwbMethodChange *) history->data, history->len);
  if (g_file_test (weights, G_FILE_TEST_IS_REGULAR))
    snnwb_run_set_weights_path (run, weights);
  snnwb_run_set_folder (run, dir);
  {
    guint n;

    snnwb_run_get_iters (run, &n);
    g_object_set_data (G_OBJECT (run), SAVED_ITERS, GUINT_TO_POINTER (n));
  }
  snnwb_run_mark_saved (run, snnwb_run_get_changes (run));
  return g_steal_pointer (&run);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

GPtrArray *
snnwb_store_load_session (const char *session_dir, GError **error)
{
  g_autoptr (GDir) d = g_dir_open (session_dir, 0, error);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) runs = g_ptr_array_new_with_free_func (g_object_unref);
  const char *name;

  if (!d)
    return NULL;
  while ((name = g_dir_read_name (d)))
    {
      g_autofree char *meta = g_build_filename (session_dir, name, "run.json", NULL);

      /* A folder without run.json was never completely written. */
      if (g_str_has_prefix (name, "run-") && g_file_test (meta, G_FILE_TEST_IS_REGULAR))
        g_ptr_array_add (names, g_strdup (name));
    }
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *dir = g_build_filename (session_dir, names->pdata[i], NULL);
      SnnwbRun *run = load_run (dir, error);

      if (!run)
        return NULL;
      g_ptr_array_add (runs, run);
    }
  return g_steal_pointer (&runs);
}
