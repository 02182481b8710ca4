/* Every preset network: it loads, its shapes fit, its parameter count is
 * the one PyTorch gives for the same network (tests/golden/preset_params.json,
 * written by models/gen_presets.py), and it trains with every method. */
#include "test-util.h"
#include "experiment.h"
#include "trainer.h"
#include <json-glib/json-glib.h>

static char *
models_dir (void)
{
  return g_build_filename (g_getenv ("SNN_SOURCE_ROOT"), "models", NULL);
}

/* g_ptr_array_sort hands over pointers to the elements. */
static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

static GPtrArray *
preset_names (void)
{
  g_autofree char *dir = models_dir ();
  GDir *d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *f;
  while ((f = g_dir_read_name (d)))
    if (g_str_has_suffix (f, ".json") && !g_str_has_suffix (f, ".experiment.json"))
      g_ptr_array_add (names, g_strndup (f, strlen (f) - 5));
  g_dir_close (d);
  g_ptr_array_sort (names, compare_names);
  return names;
}

static void
test_one_preset (gconstpointer data)
{
  const char *name = data;
  g_autofree char *dir = models_dir ();
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  GError *error = NULL;
  SnnModel *m = snn_model_load_file (path, &error);
  g_assert_no_error (error);

  g_autofree char *counts_path = g_build_filename (g_getenv ("SNN_SOURCE_ROOT"), "tests", "golden", "preset_params.json", NULL);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_file (p, counts_path, NULL));
  JsonObject *counts = json_node_get_object (json_parser_get_root (p));
  if (json_object_has_member (counts, name))
    g_assert_cmpint (snn_model_param_count (m), ==, json_object_get_int_member (counts, name));

  /* One iteration with each method on a small random batch; the ImageNet
   * networks (224x224) with one sample and two steps. */
  gboolean big = snn_shape_numel (&m->input_shape) > 100000;
  int B = big ? 1 : 2, T = 2, in = (int) snn_shape_numel (&m->input_shape);
  float *x = tu_input (B * in, 3, -1, 1);
  int32_t y[2] = { 0, 1 % m->num_classes };
  SnnNet *net = snn_net_new (m, tu_cpu ());
  for (int method = 0; method < SNN_METHOD_N; method++)
    {
      SnnTrainConfig cfg;
      snn_train_config_init (&cfg);
      cfg.method = (SnnMethod) method;
      cfg.T = T;
      cfg.K = 1;
      SnnRng rng;
      snn_rng_seed (&rng, 1);
      SnnBatchResult r;
      snn_net_zero_grad (net);
      g_assert_true (snn_train_batch (net, &cfg, x, FALSE, B, y, NULL, 0, &rng, NULL, NULL, NULL, &r, &error));
      g_assert_no_error (error);
      g_assert_true (isfinite (r.loss));
      g_assert_cmpint (r.peak_held_bytes, >, 0);
    }
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
}

static void
test_vgg_events_learns (void)
{
  /* The synthetic event set: a disc moving in one of four directions, the
   * same event count at every step. Chance is 0.25. */
  GError *error = NULL;
  SnnExperiment *e = snn_experiment_load ("vgg-events", &error);
  g_assert_no_error (error);
  g_assert_true (snn_experiment_apply_override (e, "train_subset=640", NULL));
  g_assert_true (snn_experiment_apply_override (e, "test_subset=200", NULL));
  g_assert_true (snn_experiment_apply_override (e, "epochs=1", NULL));
  SnnTrainer *tr = snn_trainer_new (e, &error);
  g_assert_no_error (error);
  SnnIterInfo it;
  while (!snn_trainer_finished (tr))
    g_assert_true (snn_trainer_step (tr, &it, NULL));
  double acc = snn_trainer_last_epoch (tr)->test_acc;
  g_test_message ("vgg-events, SLTT, synthetic events, 640 samples, 1 epoch: test accuracy %.3f", acc);
  g_assert_cmpfloat (acc, >=, 0.9);
  snn_trainer_free (tr);
  snn_experiment_free (e);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GPtrArray *names = preset_names ();
  g_assert_cmpint (names->len, >=, 10);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *test = g_strdup_printf ("/presets/%s", (char *) names->pdata[i]);
      g_test_add_data_func (test, names->pdata[i], test_one_preset);
    }
  g_test_add_func ("/presets/vgg-events-learns-synthetic-events", test_vgg_events_learns);
  int rc = g_test_run ();
  g_ptr_array_unref (names);
  return rc;
}
