/* Every committed golden case, written by an independent PyTorch
 * implementation (tests/golden/gen_golden.py), must be reproduced by
 * `snnwb grad`: spikes equal, gradients within 1e-4 of their largest value. */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include "npy.h"

typedef struct {
  char *dir;
  char *tmp;
} Fixture;

static char *
case_root (void)
{
  return g_build_filename (g_getenv ("SNN_SOURCE_ROOT"), "tests", "golden", "cases", NULL);
}

static double
max_abs (const float *a, int64_t n)
{
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    m = MAX (m, fabs (a[i]));
  return m;
}

static void
compare_close (const char *case_name, const char *name, const SnnArray *got, const SnnArray *ref, double rel)
{
  g_assert_nonnull (got);
  g_assert_cmpint (got->ndim, ==, ref->ndim);
  for (int d = 0; d < ref->ndim; d++)
    g_assert_cmpint (got->shape[d], ==, ref->shape[d]);
  SnnArray *r = snn_array_to_f32 (ref);
  const float *g = got->data, *e = r->data;
  int64_t n = snn_array_numel (ref);
  double scale = max_abs (e, n), worst = 0;
  for (int64_t i = 0; i < n; i++)
    worst = MAX (worst, fabs ((double) g[i] - e[i]));
  if (worst > rel * MAX (scale, 1e-30) && !(scale == 0 && worst == 0))
    g_error ("%s: %s differs by %g (largest reference value %g, tolerance %g)", case_name, name, worst, scale,
             rel * scale);
  snn_array_free (r);
}

static void
compare_equal (const char *case_name, const char *name, const SnnArray *got, const SnnArray *ref)
{
  g_assert_nonnull (got);
  SnnArray *r = snn_array_to_f32 (ref);
  int64_t n = snn_array_numel (ref);
  g_assert_cmpint (snn_array_numel (got), ==, n);
  for (int64_t i = 0; i < n; i++)
    if (((float *) got->data)[i] != ((float *) r->data)[i])
      g_error ("%s: %s differs at flat index %" G_GINT64_FORMAT, case_name, name, i);
  snn_array_free (r);
}

static GPtrArray *
grad_argv (const char *dir, const char *out)
{
  g_autofree char *args_path = g_build_filename (dir, "args.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_file (p, args_path, NULL));
  JsonObject *o = json_node_get_object (json_parser_get_root (p));
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (argv, g_strdup (g_getenv ("SNNWB")));
  g_ptr_array_add (argv, g_strdup ("grad"));
#define ADD(flag, value) (g_ptr_array_add (argv, g_strdup (flag)), g_ptr_array_add (argv, value))
  ADD ("--model", g_build_filename (dir, "model.json", NULL));
  ADD ("--weights", g_build_filename (dir, "weights.npz", NULL));
  ADD ("--input", g_build_filename (dir, "input.npy", NULL));
  ADD ("--labels", g_build_filename (dir, "labels.npy", NULL));
  ADD ("--method", g_strdup (json_object_get_string_member (o, "method")));
  ADD ("--T", g_strdup_printf ("%" G_GINT64_FORMAT, json_object_get_int_member (o, "T")));
  if (json_object_has_member (o, "lambda"))
    ADD ("--lambda", g_strdup_printf ("%.9g", json_object_get_double_member (o, "lambda")));
  JsonNode *t = json_object_get_member (o, "mse_target");
  if (t && json_node_get_value_type (t) == G_TYPE_STRING)
    ADD ("--mse-target", g_strdup (json_node_get_string (t)));
  else if (t)
    ADD ("--mse-target", g_strdup_printf ("%.9g", json_node_get_double (t)));
  if (json_object_has_member (o, "k_steps"))
    {
      JsonArray *k = json_object_get_array_member (o, "k_steps");
      GString *s = g_string_new (NULL);
      for (guint i = 0; i < json_array_get_length (k); i++)
        g_string_append_printf (s, i ? ",%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, json_array_get_int_element (k, i));
      ADD ("--k-steps", g_string_free (s, FALSE));
    }
  ADD ("--out", g_strdup (out));
#undef ADD
  g_ptr_array_add (argv, NULL);
  return argv;
}

static void
run_case (gconstpointer data)
{
  const char *name = data;
  g_autofree char *root = case_root ();
  g_autofree char *dir = g_build_filename (root, name, NULL);
  g_autofree char *tmp = g_dir_make_tmp ("golden-XXXXXX", NULL);
  g_autofree char *out = g_build_filename (tmp, "out.npz", NULL);
  g_autoptr (GPtrArray) argv = grad_argv (dir, out);
  g_autofree char *err = NULL;
  int status = 0;
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err, &status, NULL));
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s: snnwb grad failed: %s", name, err);
  g_autofree char *exp_path = g_build_filename (dir, "expected.npz", NULL);
  SnnNpz *got = snn_npz_load (out, NULL), *ref = snn_npz_load (exp_path, NULL);
  g_assert_nonnull (got);
  g_assert_nonnull (ref);
  int n_grads = 0;
  for (guint i = 0; i < snn_npz_count (ref); i++)
    {
      const char *k = snn_npz_name (ref, i);
      SnnArray *r = snn_npz_get (ref, k), *g = snn_npz_get (got, k);
      if (!g)
        g_error ("%s: snnwb grad did not write '%s'", name, k);
      if (g_str_has_prefix (k, "spikes."))
        compare_equal (name, k, g, r);
      else if (g_str_has_prefix (k, "grad."))
        {
          compare_close (name, k, g, r, 1e-4);
          n_grads++;
        }
      else
        compare_close (name, k, g, r, 1e-4); /* loss, o, v */
    }
  g_assert_cmpint (n_grads, >, 0);
  snn_npz_free (got);
  snn_npz_free (ref);
  g_unlink (out);
  g_rmdir (tmp);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autofree char *root = case_root ();
  g_autofree char *manifest_path = g_build_filename (root, "MANIFEST.txt", NULL);
  g_autofree char *manifest = NULL;
  if (!g_file_get_contents (manifest_path, &manifest, NULL, NULL))
    g_error ("cannot read %s", manifest_path);
  g_auto (GStrv) names = g_strsplit (manifest, "\n", -1);
  int n = 0;
  for (int i = 0; names[i]; i++)
    {
      g_strstrip (names[i]);
      if (!*names[i] || names[i][0] == '#')
        continue;
      g_autofree char *path = g_strdup_printf ("/golden/%s", names[i]);
      g_test_add_data_func (path, names[i], run_case);
      n++;
    }
  g_assert_cmpint (n, >=, 20);
  return g_test_run ();
}
