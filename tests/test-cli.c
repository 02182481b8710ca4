/* The snnwb command line as a user meets it: clear errors with exit code 2
 * for bad files, nothing of the user's overwritten, outputs that load back. */
#include "test-util.h"
#include "npy.h"
#include <glib/gstdio.h>

typedef struct {
  char *dir;
} Fixture;

static void
setup (Fixture *f, gconstpointer d)
{
  f->dir = g_dir_make_tmp ("snnwb-cli-XXXXXX", NULL);
}

static void
teardown (Fixture *f, gconstpointer d)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", f->dir);
  g_assert_cmpint (system (cmd), ==, 0);
  g_free (f->dir);
}

static int
snnwb (const char *args, char **out, char **err)
{
  g_autofree char *cmd = g_strdup_printf ("'%s' %s", g_getenv ("SNNWB"), args);
  int status;
  g_assert_true (g_spawn_command_line_sync (cmd, out, err, &status, NULL));
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

static char *
write_file (Fixture *f, const char *name, const char *text)
{
  char *path = g_build_filename (f->dir, name, NULL);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  return path;
}

static const char *model_json =
  "{\"input_shape\": [6], \"num_classes\": 3, \"layers\": [{\"type\": \"linear\", \"in\": 6, \"out\": 8},"
  "{\"type\": \"lif\"}, {\"type\": \"linear\", \"in\": 8, \"out\": 3}]}";

/* Weights, input and labels for model_json. */
static void
write_case (Fixture *f)
{
  g_autofree char *mpath = write_file (f, "model.json", model_json);
  SnnModel *m = snn_model_load_file (mpath, NULL);
  SnnNet *net = snn_net_new (m, tu_cpu ());
  tu_randomize (net, 1, 3.0f);
  g_autofree char *w = g_build_filename (f->dir, "w.npz", NULL);
  g_assert_true (snn_net_save_npz (net, w, NULL));
  int64_t xs[2] = { 4, 6 }, ys[1] = { 4 };
  float *xv = tu_input (24, 2, 0, 1);
  SnnArray *x = snn_array_new_f32 (2, xs, xv);
  SnnArray *y = snn_array_new (SNN_DTYPE_I64, 1, ys);
  for (int i = 0; i < 4; i++)
    ((int64_t *) y->data)[i] = i % 3;
  g_autofree char *xp = g_build_filename (f->dir, "x.npy", NULL);
  g_autofree char *yp = g_build_filename (f->dir, "y.npy", NULL);
  g_assert_true (snn_npy_save (xp, x, NULL));
  g_assert_true (snn_npy_save (yp, y, NULL));
  snn_array_free (x);
  snn_array_free (y);
  g_free (xv);
  snn_net_free (net);
  snn_model_free (m);
}

static char *
grad_args (Fixture *f, const char *model, const char *extra)
{
  return g_strdup_printf ("grad --model %s/%s --weights %s/w.npz --input %s/x.npy --labels %s/y.npy --T 4 %s",
                          f->dir, model, f->dir, f->dir, f->dir, extra);
}

static void
test_grad_writes_everything (Fixture *f, gconstpointer d)
{
  write_case (f);
  g_autofree char *extra = g_strdup_printf ("--method bptt --out %s/g.npz", f->dir);
  g_autofree char *args = grad_args (f, "model.json", extra);
  g_autofree char *err = NULL;
  g_assert_cmpint (snnwb (args, NULL, &err), ==, 0);
  g_autofree char *gp = g_build_filename (f->dir, "g.npz", NULL);
  SnnNpz *g = snn_npz_load (gp, NULL);
  g_assert_nonnull (g);
  const char *names[] = { "loss", "o", "grad.0.weight", "grad.0.bias", "grad.2.weight", "grad.2.bias", "spikes.1", "v.1" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    g_assert_nonnull (snn_npz_get (g, names[i]));
  g_assert_cmpint (snn_npz_get (g, "loss")->ndim, ==, 0);
  SnnArray *s = snn_npz_get (g, "spikes.1");
  g_assert_cmpint (s->ndim, ==, 3);
  g_assert_cmpint (s->shape[0], ==, 4);
  g_assert_cmpint (s->shape[1], ==, 4);
  g_assert_cmpint (s->shape[2], ==, 8);
  snn_npz_free (g);
  /* The same command again must not replace the file. */
  g_autofree char *err2 = NULL;
  g_assert_cmpint (snnwb (args, NULL, &err2), ==, 2);
  g_assert_nonnull (strstr (err2, "already exists"));
}

static void
test_bad_model_file (Fixture *f, gconstpointer d)
{
  write_case (f);
  g_autofree char *bad = write_file (f, "bad.json",
                                     "{\"input_shape\": [6], \"num_classes\": 3, \"layers\": [{\"type\": \"linear\", \"in\": 6, \"out\": 8},"
                                     "{\"type\": \"lif\"}, {\"type\": \"linear\", \"in\": 16, \"out\": 3}]}");
  g_autofree char *extra = g_strdup_printf ("--method sltt --out %s/g.npz", f->dir);
  g_autofree char *args = grad_args (f, "bad.json", extra);
  g_autofree char *err = NULL;
  g_assert_cmpint (snnwb (args, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "bad.json"));
  g_assert_nonnull (strstr (err, "layer 2: linear expects 16 input features, gets 8"));
  g_autofree char *gp = g_build_filename (f->dir, "g.npz", NULL);
  g_assert_false (g_file_test (gp, G_FILE_TEST_EXISTS));
}

static void
test_bad_weights_and_input (Fixture *f, gconstpointer d)
{
  write_case (f);
  g_autofree char *trunc = write_file (f, "trunc.npz", "PK\003\004 not really");
  g_autofree char *args = g_strdup_printf ("grad --model %s/model.json --weights %s --input %s/x.npy --labels %s/y.npy "
                                           "--T 4 --method sltt --out %s/g.npz", f->dir, trunc, f->dir, f->dir, f->dir);
  g_autofree char *err = NULL;
  g_assert_cmpint (snnwb (args, NULL, &err), ==, 2);
  g_assert_nonnull (strstr (err, "trunc.npz"));
  /* An input of the wrong shape */
  int64_t xs[2] = { 4, 5 };
  SnnArray *x = snn_array_new (SNN_DTYPE_F32, 2, xs);
  g_autofree char *xp = g_build_filename (f->dir, "x5.npy", NULL);
  g_assert_true (snn_npy_save (xp, x, NULL));
  snn_array_free (x);
  g_autofree char *args2 = g_strdup_printf ("grad --model %s/model.json --weights %s/w.npz --input %s --labels %s/y.npy "
                                            "--T 4 --method sltt --out %s/g.npz", f->dir, f->dir, xp, f->dir, f->dir);
  g_autofree char *err2 = NULL;
  g_assert_cmpint (snnwb (args2, NULL, &err2), ==, 2);
  g_assert_nonnull (strstr (err2, "x5.npy"));
  g_assert_nonnull (strstr (err2, "does not fit"));
}

static void
test_version_names_blas (Fixture *f, gconstpointer d)
{
  g_autofree char *out = NULL;
  g_assert_cmpint (snnwb ("--version", &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "OpenBLAS"));
  g_assert_nonnull (strstr (out, "core"));
}

static void
test_version_names_backends (Fixture *f, gconstpointer d)
{
  g_autofree char *out = NULL;
  g_assert_cmpint (snnwb ("--version", &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "backends built: cpu"));
  g_assert_nonnull (strstr (out, snn_backend_built ()));
}

/* Without a usable GPU, asking for one fails before any data is read,
 * names the problem and leaves no run folder behind. */
static void
test_cuda_without_gpu (Fixture *f, gconstpointer d)
{
  g_autoptr (GError) probe = NULL;
  if (snn_backend_get ("cuda", &probe))
    {
      g_test_skip ("a CUDA device is present here");
      return;
    }
  g_autofree char *args = g_strdup_printf ("train mlp --backend cuda --quiet --out %s/run", f->dir);
  g_autofree char *err = NULL, *run = g_build_filename (f->dir, "run", NULL);
  gint64 t0 = g_get_monotonic_time ();
  g_assert_cmpint (snnwb (args, NULL, &err), ==, 2);
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 10 * G_USEC_PER_SEC);
  g_assert_nonnull (strstr (err, "cuda"));
  g_assert_nonnull (strstr (err, probe->message));
  g_assert_false (g_file_test (run, G_FILE_TEST_EXISTS));
  /* The same through the environment, and an unknown name. */
  g_autofree char *err2 = NULL, *args2 = g_strdup_printf ("train mlp --quiet --out %s/run", f->dir);
  g_setenv ("SNNWB_BACKEND", "tpu", TRUE);
  g_assert_cmpint (snnwb (args2, NULL, &err2), ==, 2);
  g_unsetenv ("SNNWB_BACKEND");
  g_assert_nonnull (strstr (err2, "unknown backend \"tpu\""));
  /* An experiment file naming a backend that does not exist names the file. */
  g_autofree char *path = write_file (f, "e.json", "{\"model\": \"mlp-small\", \"backend\": \"gpu\"}");
  g_autofree char *err3 = NULL, *args3 = g_strdup_printf ("train %s --quiet --out %s/run", path, f->dir);
  g_assert_cmpint (snnwb (args3, NULL, &err3), ==, 2);
  g_assert_nonnull (strstr (err3, "e.json"));
  g_assert_nonnull (strstr (err3, "'backend'"));
}

static void
test_train_writes_metrics (Fixture *f, gconstpointer d)
{
  g_autofree char *args = g_strdup_printf ("train temporal-mlp epochs=2 train_subset=256 test_subset=64 --quiet --out %s/run",
                                           f->dir);
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint (snnwb (args, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "epoch 1/2"));
  g_assert_nonnull (strstr (out, "epoch 2/2"));
  g_autofree char *csv_path = g_build_filename (f->dir, "run", "metrics.csv", NULL);
  g_autofree char *csv = NULL;
  g_assert_true (g_file_get_contents (csv_path, &csv, NULL, NULL));
  g_assert_true (g_str_has_prefix (csv, "epoch,train_loss,train_acc,test_acc"));
  g_autofree char *w = g_build_filename (f->dir, "run", "weights.npz", NULL);
  g_autofree char *e = g_build_filename (f->dir, "run", "experiment.json", NULL);
  g_autofree char *eval = g_strdup_printf ("eval %s --weights %s", e, w);
  g_autofree char *out2 = NULL;
  g_assert_cmpint (snnwb (eval, &out2, NULL), ==, 0);
  g_assert_nonnull (strstr (out2, "test accuracy"));
  /* Training into the same folder again must not replace its results. */
  g_autofree char *err2 = NULL;
  g_assert_cmpint (snnwb (args, NULL, &err2), ==, 2);
  g_assert_nonnull (strstr (err2, "already holds a run"));
  g_assert_nonnull (strstr (err2, "--resume"));
  g_assert_null (strstr (err2, "--force"));
  /* Nor a folder holding only an experiment. */
  g_autofree char *only = g_build_filename (f->dir, "only", NULL);
  g_assert_cmpint (g_mkdir (only, 0755), ==, 0);
  g_autofree char *only_e = write_file (f, "only/experiment.json", "{}");
  g_autofree char *args4 = g_strdup_printf ("train temporal-mlp epochs=1 --quiet --out %s", only);
  g_autofree char *err4 = NULL, *kept = NULL;
  g_assert_cmpint (snnwb (args4, NULL, &err4), ==, 2);
  g_assert_true (g_file_get_contents (only_e, &kept, NULL, NULL));
  g_assert_cmpstr (kept, ==, "{}");
  /* A bad override is named. */
  g_autofree char *err3 = NULL;
  g_assert_cmpint (snnwb ("train temporal-mlp method=rprop", NULL, &err3), ==, 2);
  g_assert_nonnull (strstr (err3, "rprop"));
}

/* A small AEDAT 2.0 file: a diagonal line of events whose slope depends on
 * the class, so the folder is learnable. */
static void
write_aedat2 (const char *path, int cls, int k)
{
  GByteArray *b = g_byte_array_new ();
  const char *header = "#!AER-DAT2.0\r\n# test file\r\n";
  g_byte_array_append (b, (const guint8 *) header, strlen (header));
  for (int i = 0; i < 200; i++)
    {
      guint32 x = (i * (cls + 1) + k) % 128, y = i % 128, p = i & 1, ts = 1000 + i * 10;
      guint32 be[2] = { GUINT32_TO_BE ((y << 8) | (x << 1) | p), GUINT32_TO_BE (ts) };
      g_byte_array_append (b, (const guint8 *) be, sizeof be);
    }
  g_assert_true (g_file_set_contents (path, (const char *) b->data, b->len, NULL));
  g_byte_array_unref (b);
}

static void
test_train_on_event_folder (Fixture *f, gconstpointer d)
{
  static const char *classes[] = { "airplane", "automobile", "bird", "cat", "deer",
                                   "dog", "frog", "horse", "ship", "truck" };
  g_autofree char *root = g_build_filename (f->dir, "cifar10-dvs", NULL);
  for (int c = 0; c < 10; c++)
    {
      g_autofree char *cdir = g_build_filename (root, classes[c], NULL);
      g_assert_cmpint (g_mkdir_with_parents (cdir, 0755), ==, 0);
      for (int k = 0; k < 10; k++)
        {
          g_autofree char *name = g_strdup_printf ("cifar10_%s_%d.aedat", classes[c], k);
          g_autofree char *path = g_build_filename (cdir, name, NULL);
          write_aedat2 (path, c, k);
        }
    }
  g_autofree char *model = write_file (f, "dvs.json",
    "{\"input_shape\": [2, 16, 16], \"num_classes\": 10, \"layers\": ["
    "{\"type\": \"conv\", \"in_ch\": 2, \"out_ch\": 4, \"k\": 3, \"pad\": 1}, {\"type\": \"lif\"},"
    "{\"type\": \"avgpool\", \"k\": 2}, {\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 256, \"out\": 10}]}");
  g_autofree char *exp_text = g_strdup_printf (
    "{\"name\": \"dvs\", \"model\": \"dvs.json\", \"T\": 4, \"epochs\": 1, \"batch_size\": 16,"
    " \"dataset\": {\"name\": \"cifar10-dvs\", \"path\": \"%s\", \"cache\": false, \"augment\": true,"
    " \"frames\": {\"split\": \"number\", \"size\": 16}}}", root);
  g_autofree char *exp = write_file (f, "dvs.experiment.json", exp_text);
  g_autofree char *args = g_strdup_printf ("train %s --quiet --out %s/dvs-run", exp, f->dir);
  g_autofree char *out = NULL, *err = NULL;
  int rc = snnwb (args, &out, &err);
  if (rc != 0)
    g_error ("snnwb train on an event folder failed: %s", err);
  g_assert_nonnull (strstr (out, "90 train / 10 test samples"));
  g_assert_nonnull (strstr (out, "epoch 1/1"));
  /* A missing folder is named. */
  g_autofree char *args2 = g_strdup_printf ("train %s dataset_path=%s/nowhere --quiet --out %s/dvs-run2", exp, f->dir, f->dir);
  g_autofree char *err2 = NULL;
  g_assert_cmpint (snnwb (args2, NULL, &err2), ==, 2);
  g_assert_nonnull (strstr (err2, "nowhere"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/cli/grad-writes-everything", Fixture, NULL, setup, test_grad_writes_everything, teardown);
  g_test_add ("/cli/bad-model-file", Fixture, NULL, setup, test_bad_model_file, teardown);
  g_test_add ("/cli/bad-weights-and-input", Fixture, NULL, setup, test_bad_weights_and_input, teardown);
  g_test_add ("/cli/version-names-blas", Fixture, NULL, setup, test_version_names_blas, teardown);
  g_test_add ("/cli/version-names-backends", Fixture, NULL, setup, test_version_names_backends, teardown);
  g_test_add ("/cli/cuda-without-gpu", Fixture, NULL, setup, test_cuda_without_gpu, teardown);
  g_test_add ("/cli/train-writes-metrics", Fixture, NULL, setup, test_train_writes_metrics, teardown);
  g_test_add ("/cli/train-on-an-event-folder", Fixture, NULL, setup, test_train_on_event_folder, teardown);
  return g_test_run ();
}
