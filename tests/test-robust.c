/* Bad input of every kind ends in a clear error: experiment fields of the
 * wrong type or range, models whose sizes overflow, networks that cannot
 * fit in memory, non-finite numbers, output folders that hold a run. On
 * the command line each ends within seconds with exit 2 and a message
 * naming the field or file, never a signal or a silent success. Also: the
 * one walk over LIF layers reaches those inside residual blocks. */
#include "test-util.h"
#include "experiment.h"
#include "npy.h"
#include "snn-error.h"
#include <glib/gstdio.h>
#include <sys/wait.h>

/* ------------------------------------------------------ experiment file */

static SnnExperiment *
parse (const char *json, GError **error)
{
  return snn_experiment_parse (json, -1, "<test>", NULL, error);
}

static void
assert_refused (const char *json, const char *field)
{
  GError *error = NULL;
  SnnExperiment *e = parse (json, &error);
  if (e)
    g_error ("accepted: %s", json);
  g_assert_nonnull (error);
  if (!strstr (error->message, field))
    g_error ("%s: the message \"%s\" does not name %s", json, error->message, field);
  g_error_free (error);
}

static void
test_member_types (void)
{
  static const char *const cases[][2] = {
    { "{\"model\":\"mlp-small\",\"dataset\":{\"name\":2}}", "dataset.name" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"path\":[]}}", "dataset.path" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"normalize\":1}}", "dataset.normalize" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"name\":\"n-mnist\",\"frames\":{\"split\":1}}}", "dataset.frames.split" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"name\":\"n-mnist\",\"frames\":{\"resize\":null}}}", "dataset.frames.resize" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"frames\":3}}", "dataset.frames" },
    { "{\"model\":\"mlp-small\",\"optimizer\":{\"schedule\":{}}}", "optimizer.schedule" },
    { "{\"model\":\"mlp-small\",\"optimizer\":{\"type\":1}}", "optimizer.type" },
    { "{\"model\":\"mlp-small\",\"method\":false}", "method" },
    { "{\"model\":\"mlp-small\",\"name\":7}", "name" },
    { "{\"model\":\"mlp-small\",\"seed\":-1}", "seed" },
    { "{\"model\":\"mlp-small\",\"seed\":1e30}", "seed" },
    { "{\"model\":\"mlp-small\",\"seed\":0.5}", "seed" },
    { "{\"model\":\"mlp-small\",\"seed\":\"1\"}", "seed" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"train_subset\":-5}}", "train_subset" },
    { "{\"model\":\"mlp-small\",\"optimizer\":{\"lr\":0}}", "lr" },
    { "{\"model\":\"mlp-small\",\"optimizer\":{\"beta1\":1.5}}", "beta1" },
    { "{\"model\":\"mlp-small\",\"loss\":{\"mse_target\":1e300}}", "mse_target" },
    { "{\"model\":\"/dev/zero\"}", "/dev/zero" },
    { "", "JSON object" },
    { "[]", "JSON object" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_refused (cases[i][0], cases[i][1]);
}

static void
test_seed_range (void)
{
  GError *error = NULL;
  SnnExperiment *e = parse ("{\"model\":\"mlp-small\",\"seed\":9007199254740993}", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (e->seed, ==, G_GUINT64_CONSTANT (9007199254740993));
  /* Written and read back unchanged. */
  g_autofree char *json = snn_experiment_to_json (e);
  SnnExperiment *again = parse (json, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (again->seed, ==, e->seed);
  snn_experiment_free (again);
  snn_experiment_free (e);
}

static void
test_overrides (void)
{
  static const char *const bad[][2] = {
    { "lr=nan", "lr" }, { "lr=inf", "lr" }, { "lr=-1", "lr" }, { "train_subset=-5", "train_subset" },
    { "test_subset=0.5", "test_subset" }, { "T=1e30", "T" }, { "epochs=nan", "epochs" }, { "seed=-1", "seed" },
    { "seed=1e30", "seed" }, { "batch_size=0", "batch_size" }, { "momentum=nan", "momentum" },
    { "tau=nan", "tau" }, { "vth=inf", "vth" }, { "schedule=linear", "schedule" }, { "lambda=2", "lambda" },
    { "frame_size=-1", "frame_size" }, { "detach_reset=maybe", "detach_reset" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      GError *error = NULL;
      SnnExperiment *e = snn_experiment_load ("mlp-small", &error);
      g_assert_no_error (error);
      if (snn_experiment_apply_override (e, bad[i][0], &error))
        g_error ("accepted %s", bad[i][0]);
      if (!strstr (error->message, bad[i][1]))
        g_error ("%s: \"%s\" does not name %s", bad[i][0], error->message, bad[i][1]);
      g_error_free (error);
      /* Whatever was refused, the written experiment stays valid JSON. */
      g_autofree char *json = snn_experiment_to_json (e);
      g_assert_null (strstr (json, "nan"));
      snn_experiment_free (e);
    }
}

/* ------------------------------------------------------ model sizes */

static void
assert_model_refused (const char *json, const char *what)
{
  GError *error = NULL;
  SnnModel *m = snn_model_parse (json, -1, "<test>", &error);
  if (m)
    g_error ("accepted: %s", json);
  if (!strstr (error->message, what))
    g_error ("\"%s\" does not say %s", error->message, what);
  g_error_free (error);
}

static void
test_model_overflow (void)
{
  /* The padded length overflows an int. */
  assert_model_refused ("{\"input_shape\":[1,1048576,1],\"num_classes\":2,\"layers\":[{\"type\":\"conv\",\"in_ch\":1,"
                        "\"out_ch\":1,\"k\":1,\"pad\":1073741823},{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":1,\"out\":2}]}",
                        "layer 0");
  /* 10^15 weights. */
  assert_model_refused ("{\"input_shape\":[1000000],\"num_classes\":2,\"layers\":[{\"type\":\"linear\",\"in\":1000000,"
                        "\"out\":1000000000},{\"type\":\"linear\",\"in\":1000000000,\"out\":2}]}",
                        "2^31");
  /* 5478275 * 784 = 2^32 + 304: an int cast would make it 304. */
  assert_model_refused ("{\"input_shape\":[1,28,28],\"num_classes\":2,\"layers\":[{\"type\":\"conv\",\"in_ch\":1,"
                        "\"out_ch\":5478275,\"k\":1},{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":304,\"out\":2}]}",
                        "2^31");
}

static void
test_model_nesting (void)
{
  GString *json = g_string_new ("{\"input_shape\":[4],\"num_classes\":4,\"layers\":[");
  for (int i = 0; i < 100000; i++)
    g_string_append (json, "{\"type\":\"residual\",\"main\":[");
  g_string_append (json, "{\"type\":\"lif\"}");
  for (int i = 0; i < 100000; i++)
    g_string_append (json, "]}");
  g_string_append (json, ",{\"type\":\"linear\",\"in\":4,\"out\":4}]}");
  /* Refused before the JSON parser recurses 100000 levels deep. */
  assert_model_refused (json->str, "nested more than 256 levels deep");
  GError *error = NULL;
  g_autofree char *exp = g_strdup_printf ("{\"model\":%s}", json->str);
  g_assert_null (snn_experiment_parse (exp, -1, "<test>", NULL, &error));
  g_assert_nonnull (strstr (error->message, "nested"));
  g_error_free (error);
  g_string_free (json, TRUE);
  /* Within the JSON bound, residual blocks nest at most 32 deep. */
  json = g_string_new ("{\"input_shape\":[4],\"num_classes\":4,\"layers\":[");
  for (int i = 0; i < 40; i++)
    g_string_append (json, "{\"type\":\"residual\",\"main\":[");
  g_string_append (json, "{\"type\":\"lif\"}");
  for (int i = 0; i < 40; i++)
    g_string_append (json, "]}");
  g_string_append (json, ",{\"type\":\"linear\",\"in\":4,\"out\":4}]}");
  assert_model_refused (json->str, "nested more than 32 deep");
  g_string_free (json, TRUE);
}

static void
test_memory_prediction (void)
{
  SnnModel *m = tu_model ("{\"input_shape\":[784],\"num_classes\":10,\"layers\":[{\"type\":\"linear\",\"in\":784,"
                          "\"out\":128},{\"type\":\"lif\"},{\"type\":\"linear\",\"in\":128,\"out\":10}]}");
  int64_t small = snn_model_predict_bytes (m, 64, 1, 1);
  /* At least the parameters, their gradients and momentum. */
  g_assert_cmpint (small, >=, snn_model_param_count (m) * 4 * 3);
  g_assert_cmpint (small, <, 64 << 20);
  /* A billion samples of 784 inputs: at least their 3.1 TB of input. */
  int64_t huge = snn_model_predict_bytes (m, 1000000000, 4, 1);
  g_assert_cmpint (huge, >=, (int64_t) 4000000000 * 784 * 4);
  GError *error = NULL;
  g_assert_false (snn_memory_check (huge, "big", &error));
  g_assert_nonnull (strstr (error->message, "bytes"));
  g_assert_nonnull (strstr (error->message, "big"));
  g_error_free (error);
  g_assert_true (snn_memory_check (small, "small", NULL));
  g_assert_cmpint (snn_memory_available (), >, 0);
  snn_model_free (m);
}

/* ------------------------------------------------------ LIF walk */

static void
count_tau (SnnLayerSpec *lif, const char *path, gpointer data)
{
  int *n = data;
  n[0]++;
  n[1] += lif->lif.tau == 3.0f;
}

static void
count_net_tau (const char *name, SnnLifParams *p, gpointer data)
{
  int *n = data;
  n[0]++;
  n[1] += p->tau == 3.0f;
}

static void
test_lif_walk (gconstpointer data)
{
  const char *preset = data;
  int want = g_str_equal (preset, "resnet18-w16") ? 17 : 32;
  g_autofree char *path = snn_preset_find (preset, ".json");
  g_assert_nonnull (path);
  g_autofree char *json = g_strdup_printf ("{\"model\":\"%s\",\"dataset\":{\"name\":\"cifar10\"}}", path);
  GError *error = NULL;
  SnnExperiment *e = parse (json, &error);
  g_assert_no_error (error);
  g_assert_cmpint (snn_model_foreach_lif (e->model, NULL, NULL), ==, want);
  g_assert_true (snn_experiment_apply_override (e, "tau=3", &error));
  g_assert_true (snn_experiment_apply_override (e, "surrogate=atan", &error));
  int n[2] = { 0, 0 };
  snn_model_foreach_lif (e->model, count_tau, n);
  g_assert_cmpint (n[0], ==, want);
  g_assert_cmpint (n[1], ==, want);
  /* In the written experiment. */
  g_autofree char *written = snn_experiment_to_json (e);
  SnnExperiment *back = parse (written, &error);
  g_assert_no_error (error);
  int m[2] = { 0, 0 };
  snn_model_foreach_lif (back->model, count_tau, m);
  g_assert_cmpint (m[1], ==, want);
  /* In the network that trains: one step, then every LIF layer still has tau 3. */
  SnnNet *net = snn_net_new (back->model, tu_cpu ());
  int k[2] = { 0, 0 };
  snn_net_foreach_lif (net, count_net_tau, k);
  g_assert_cmpint (k[0], ==, want);
  g_assert_cmpint (k[1], ==, want);
  snn_net_free (net);
  snn_experiment_free (back);
  snn_experiment_free (e);
}

/* ------------------------------------------------------ command line */

typedef struct {
  char *dir;
} Fixture;

static void
setup (Fixture *f, gconstpointer d)
{
  f->dir = g_dir_make_tmp ("snnwb-robust-XXXXXX", NULL);
}

static void
teardown (Fixture *f, gconstpointer d)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", f->dir);
  g_assert_cmpint (system (cmd), ==, 0);
  g_free (f->dir);
}

static char *
put (Fixture *f, const char *name, const char *text)
{
  char *path = g_build_filename (f->dir, name, NULL);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  return path;
}

/* Runs snnwb under a 60 s limit (a shell prefix may set ulimits); the exit
 * status, or -signal. */
static int
run (const char *prefix, const char *args, char **err)
{
  g_autofree char *cmd = g_strdup_printf ("%s timeout -s KILL 60 '%s' %s", prefix ? prefix : "", g_getenv ("SNNWB"), args);
  g_autofree char *argv_cmd = g_strdup_printf ("sh -c \"%s\"", cmd);
  char *argv[] = { "sh", "-c", cmd, NULL };
  int status;
  g_assert_true (g_spawn_sync (NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, err, &status, NULL));
  if (WIFSIGNALED (status))
    return -WTERMSIG (status);
  return WEXITSTATUS (status);
}

static void
assert_exit2 (const char *prefix, const char *args, const char *mention)
{
  g_autofree char *err = NULL;
  gint64 t0 = g_get_monotonic_time ();
  int rc = run (prefix, args, &err);
  double s = (g_get_monotonic_time () - t0) / 1e6;
  if (rc != 2 || !strstr (err, mention))
    g_error ("snnwb %s: exit %d after %.1f s, \"%s\" (expected exit 2 naming %s)", args, rc, s, err, mention);
  g_assert_cmpfloat (s, <, 30);
}

static void
test_cli_experiments (Fixture *f, gconstpointer d)
{
  static const char *const cases[][3] = {
    { "{\"model\":\"mlp-small\",\"dataset\":{\"name\":2}}", "", "dataset.name" },
    { "{\"model\":\"mlp-small\",\"optimizer\":{\"schedule\":2}}", "", "optimizer.schedule" },
    { "{\"model\":\"mlp-small\",\"optimizer\":{\"type\":1}}", "", "optimizer.type" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"name\":\"n-mnist\",\"frames\":{\"split\":2}}}", "", "dataset.frames.split" },
    { "{\"model\":\"mlp-small\",\"dataset\":{\"name\":\"n-mnist\",\"frames\":{\"resize\":2}}}", "", "dataset.frames.resize" },
    { "{\"model\":\"mlp-small\",\"seed\":-1}", "", "seed" },
    { "{\"model\":\"mlp-small\",\"seed\":1e30}", "", "seed" },
    { "{\"model\":\"mlp-small\"}", "lr=nan", "lr" },
    { "{\"model\":\"mlp-small\"}", "train_subset=-5", "train_subset" },
    /* Sizes: refused before anything is allocated. */
    { "{\"model\":\"mlp-small\"}", "batch_size=1000000000", "bytes" },
    { "{\"model\":{\"input_shape\":[784],\"num_classes\":10,\"layers\":[{\"type\":\"linear\",\"in\":784,"
      "\"out\":1000000000},{\"type\":\"lif\"},{\"type\":\"linear\",\"in\":1000000000,\"out\":10}]}}", "", "2^31" },
    { "{\"model\":{\"input_shape\":[784],\"num_classes\":10,\"layers\":[{\"type\":\"linear\",\"in\":784,"
      "\"out\":3000000},{\"type\":\"lif\"},{\"type\":\"linear\",\"in\":3000000,\"out\":10}]}}", "", "2^31" },
    { "{\"model\":{\"input_shape\":[1,1048576,1],\"num_classes\":2,\"layers\":[{\"type\":\"conv\",\"in_ch\":1,"
      "\"out_ch\":1,\"k\":1,\"pad\":1073741823},{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":1,\"out\":2}]}}", "",
      "layer 0" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *name = g_strdup_printf ("e%u.json", i);
      g_autofree char *path = put (f, name, cases[i][0]);
      g_autofree char *args = g_strdup_printf ("train '%s' %s --out '%s/run%u' -q", path, cases[i][1], f->dir, i);
      assert_exit2 (NULL, args, cases[i][2]);
      g_autofree char *run_dir = g_strdup_printf ("%s/run%u", f->dir, i);
      g_assert_false (g_file_test (run_dir, G_FILE_TEST_EXISTS));
    }
}

/* Under an address-space limit of 3 GiB, a model that fits the int
 * ranges but not the limit is refused by its predicted bytes. (ASan
 * reserves terabytes of address space, so not under the sanitizers.) */
static void
test_cli_rlimit (Fixture *f, gconstpointer d)
{
#if defined(__SANITIZE_ADDRESS__)
  g_test_skip ("ASan needs more address space than the limit");
  return;
#endif
  g_autofree char *path = put (f, "big.json",
                               "{\"model\":{\"input_shape\":[784],\"num_classes\":10,\"layers\":[{\"type\":\"linear\","
                               "\"in\":784,\"out\":2000000},{\"type\":\"lif\"},{\"type\":\"linear\",\"in\":2000000,"
                               "\"out\":10}]}}");
  g_autofree char *args = g_strdup_printf ("train '%s' --out '%s/run' -q", path, f->dir);
  assert_exit2 ("ulimit -v 3145728;", args, "bytes");
}

static void
test_cli_grad_nan (Fixture *f, gconstpointer d)
{
  g_autofree char *mp = put (f, "m.json", "{\"input_shape\": [3], \"num_classes\": 2, \"layers\": [{\"type\": \"linear\", "
                                          "\"in\": 3, \"out\": 4}, {\"type\": \"lif\"}, {\"type\": \"linear\", \"in\": 4, \"out\": 2}]}");
  SnnModel *m = snn_model_load_file (mp, NULL);
  SnnNet *net = snn_net_new (m, tu_cpu ());
  g_autofree char *wp = g_build_filename (f->dir, "w.npz", NULL);
  g_assert_true (snn_net_save_npz (net, wp, NULL));
  int64_t xs[2] = { 2, 3 }, ys[1] = { 2 };
  float xv[6] = { 0.1f, 0.2f, NAN, 0.4f, 0.5f, 0.6f };
  SnnArray *x = snn_array_new_f32 (2, xs, xv), *y = snn_array_new (SNN_DTYPE_I64, 1, ys);
  g_autofree char *xp = g_build_filename (f->dir, "x.npy", NULL);
  g_autofree char *yp = g_build_filename (f->dir, "y.npy", NULL);
  g_assert_true (snn_npy_save (xp, x, NULL) && snn_npy_save (yp, y, NULL));
  g_autofree char *args = g_strdup_printf ("grad --model %s --weights %s --input %s --labels %s --T 2 --method bptt "
                                           "--out %s/g.npz", mp, wp, xp, yp, f->dir);
  assert_exit2 (NULL, args, "x.npy: value nan at flat index 2 is not finite");
  g_autofree char *gp = g_build_filename (f->dir, "g.npz", NULL);
  g_assert_false (g_file_test (gp, G_FILE_TEST_EXISTS));
  g_autofree char *args2 = g_strdup_printf ("grad --model %s --weights %s --input %s --labels %s --T 2 --method bptt "
                                            "--lambda nan --out %s/g.npz", mp, wp, xp, yp, f->dir);
  assert_exit2 (NULL, args2, "--lambda");
  snn_array_free (x);
  snn_array_free (y);
  snn_net_free (net);
  snn_model_free (m);
}

/* A folder that holds a run (even only its experiment.json) is not written into. */
static void
test_cli_out_folder (Fixture *f, gconstpointer d)
{
  g_autofree char *run_dir = g_build_filename (f->dir, "run", NULL);
  g_assert_cmpint (g_mkdir (run_dir, 0755), ==, 0);
  g_autofree char *ep = g_build_filename (run_dir, "experiment.json", NULL);
  g_assert_true (g_file_set_contents (ep, "mine", -1, NULL));
  g_autofree char *args = g_strdup_printf ("train mlp-small train_subset=64 test_subset=64 --out '%s' -q", run_dir);
  g_autofree char *err = NULL;
  assert_exit2 (NULL, args, "not empty");
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (ep, &text, NULL, NULL));
  g_assert_cmpstr (text, ==, "mine");
  /* The message suggests nothing train does not have. */
  run (NULL, args, &err);
  g_assert_null (strstr (err, "--force"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/robust/experiment/member-types", test_member_types);
  g_test_add_func ("/robust/experiment/seed-range", test_seed_range);
  g_test_add_func ("/robust/experiment/overrides", test_overrides);
  g_test_add_func ("/robust/model/overflow", test_model_overflow);
  g_test_add_func ("/robust/model/nesting", test_model_nesting);
  g_test_add_func ("/robust/memory/prediction", test_memory_prediction);
  g_test_add_data_func ("/robust/lif-walk/resnet18-w16", "resnet18-w16", test_lif_walk);
  g_test_add_data_func ("/robust/lif-walk/nf-resnet34", "nf-resnet34", test_lif_walk);
  g_test_add ("/robust/cli/experiments", Fixture, NULL, setup, test_cli_experiments, teardown);
  g_test_add ("/robust/cli/address-space-limit", Fixture, NULL, setup, test_cli_rlimit, teardown);
  g_test_add ("/robust/cli/grad-nan-input", Fixture, NULL, setup, test_cli_grad_nan, teardown);
  g_test_add ("/robust/cli/out-folder", Fixture, NULL, setup, test_cli_out_folder, teardown);
  return g_test_run ();
}
