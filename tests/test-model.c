/* The model file: parsing, defaults, shape inference and its messages. */
#include "test-util.h"
#include "experiment.h"
#include "snn-error.h"

static void
expect_error (const char *json, const char *fragment)
{
  GError *error = NULL;
  SnnModel *m = snn_model_parse (json, -1, "net.json", &error);
  g_assert_null (m);
  g_assert_nonnull (error);
  g_assert_true (error->domain == SNN_MODEL_ERROR);
  if (!strstr (error->message, fragment) || !strstr (error->message, "net.json"))
    g_error ("message \"%s\" lacks \"%s\" or the file name", error->message, fragment);
  g_error_free (error);
}

static void
test_errors (void)
{
  expect_error ("{\"input_shape\": [1, 8, 8], \"num_classes\": 2, \"layers\": ["
                "{\"type\": \"conv\", \"in_ch\": 1, \"out_ch\": 16, \"k\": 3},"
                "{\"type\": \"lif\"}, {\"type\": \"avgpool\", \"k\": 2},"
                "{\"type\": \"conv\", \"in_ch\": 8, \"out_ch\": 4, \"k\": 3}]}",
                "layer 3: conv expects 8 input channels, gets 16");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"linear\", \"in\": 5, \"out\": 2}]}",
                "layer 0: linear expects 5 input features, gets 4");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"linear\", \"in\": 4, \"out\": 2, \"kernel\": 3}]}",
                "layer 0: unknown field 'kernel'");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"lstm\"}]}",
                "layer 0: unknown layer type \"lstm\"");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"linear\", \"in\": 4, \"out\": 2}, {\"type\": \"lif\"}]}",
                "linear readout");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 3, \"layers\": [{\"type\": \"linear\", \"in\": 4, \"out\": 2}]}",
                "2 outputs but the model has 3 classes");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"lif\", \"surrogate\": \"gauss\"}, {\"type\": \"linear\", \"in\": 4, \"out\": 2}]}",
                "unknown surrogate");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"lif\", \"tau\": 0.5}, {\"type\": \"linear\", \"in\": 4, \"out\": 2}]}",
                "tau must be at least 1");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"linear\", \"in\": \"4\", \"out\": 2}]}",
                "'in' must be an integer");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [", "not valid JSON");
  expect_error ("{\"input_shape\": [1, 4, 4], \"num_classes\": 2, \"layers\": [{\"type\": \"linear\", \"in\": 16, \"out\": 2}]}",
                "add a flatten layer");
}

static void
test_defaults (void)
{
  SnnModel *m = tu_model ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": ["
                          "{\"type\": \"lif\"}, {\"type\": \"lif\", \"vth\": 0.5, \"surrogate\": \"atan\"},"
                          "{\"type\": \"linear\", \"in\": 4, \"out\": 2, \"ws\": {\"gamma\": 2}}]}");
  const SnnLifParams *a = &m->layers[0].lif, *b = &m->layers[1].lif;
  g_assert_cmpfloat (a->tau, ==, 1.1f);
  g_assert_cmpfloat (a->vth, ==, 1.0f);
  g_assert_cmpint (a->surrogate, ==, SNN_SURROGATE_TRIANGLE);
  g_assert_cmpfloat (a->width, ==, 1.0f);
  g_assert_cmpint (a->reset, ==, SNN_RESET_SOFT);
  g_assert_false (a->detach_reset);
  g_assert_cmpfloat (b->width, ==, 0.5f);  /* width defaults to vth */
  g_assert_cmpfloat (b->alpha, ==, 2.0f);  /* atan's alpha */
  g_assert_true (m->layers[2].ws);
  g_assert_cmpfloat (m->layers[2].ws_gamma, ==, 2.0f);
  g_assert_cmpfloat (m->layers[2].ws_eps, ==, 1e-4f);
  snn_model_free (m);
}

static void
test_round_trip_and_counts (void)
{
  const char *presets[] = { "mlp", "mlp-small", "conv-small", "temporal-mlp" };
  const int64_t counts[] = { 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10, 784 * 128 + 128 + 128 * 10 + 10,
                             8 * 9 + 8 + 16 * 8 * 9 + 16 + 784 * 10 + 10, 32 * 128 + 128 + 128 * 4 + 4 };
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *path = snn_preset_find (presets[i], ".json");
      g_assert_nonnull (path);
      GError *error = NULL;
      SnnModel *m = snn_model_load_file (path, &error);
      g_assert_no_error (error);
      g_assert_cmpint (snn_model_param_count (m), ==, counts[i]);
      g_autofree char *json = snn_model_to_json (m);
      SnnModel *back = snn_model_parse (json, -1, "round-trip", &error);
      g_assert_no_error (error);
      g_autofree char *json2 = snn_model_to_json (back);
      g_assert_cmpstr (json, ==, json2);
      g_assert_cmpint (back->n_layers, ==, m->n_layers);
      snn_model_free (back);
      snn_model_free (m);
      SnnExperiment *e = snn_experiment_load (presets[i], &error);
      g_assert_no_error (error);
      g_assert_nonnull (e->model);
      snn_experiment_free (e);
    }
}

static void
test_conv_shapes (void)
{
  SnnModel *m = tu_model ("{\"input_shape\": [3, 32, 32], \"num_classes\": 10, \"layers\": ["
                          "{\"type\": \"conv\", \"in_ch\": 3, \"out_ch\": 8, \"k\": 5, \"stride\": 2, \"pad\": 2},"
                          "{\"type\": \"avgpool\", \"k\": 3, \"stride\": 2}, {\"type\": \"flatten\"},"
                          "{\"type\": \"linear\", \"in\": 392, \"out\": 10}]}");
  g_assert_cmpint (m->layers[0].out_shape.d[1], ==, 16);
  g_assert_cmpint (m->layers[1].out_shape.d[1], ==, 7);
  g_assert_cmpint (m->layers[2].out_shape.d[0], ==, 392);
  snn_model_free (m);
}

static void
test_editing (void)
{
  SnnModel *m = tu_model ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": ["
                          "{\"type\": \"linear\", \"in\": 4, \"out\": 2}, {\"type\": \"lif\"},"
                          "{\"type\": \"linear\", \"in\": 2, \"out\": 2}]}");
  int bad = 0;
  snn_model_move_layer (m, 1, 2);
  GError *error = NULL;
  g_assert_false (snn_model_infer_shapes (m, &bad, &error));
  g_assert_cmpint (bad, ==, 2);
  g_clear_error (&error);
  snn_model_move_layer (m, 2, 1);
  g_assert_true (snn_model_infer_shapes (m, &bad, NULL));
  snn_model_remove_layer (m, 1);
  g_assert_cmpint (m->n_layers, ==, 2);
  snn_model_free (m);
}

static const char *res_json =
  "{\"input_shape\": [4, 8, 8], \"num_classes\": 3, \"layers\": ["
  "{\"type\": \"residual\", \"pre\": [{\"type\": \"bn_step\", \"num_features\": 4}, {\"type\": \"lif\"}],"
  " \"main\": [{\"type\": \"conv\", \"in_ch\": 4, \"out_ch\": 8, \"k\": 3, \"stride\": 2, \"pad\": 1},"
  "  {\"type\": \"lif\"}, {\"type\": \"scale\", \"value\": 2.74}],"
  " \"shortcut\": [{\"type\": \"conv\", \"in_ch\": 4, \"out_ch\": 8, \"k\": 1, \"stride\": 2, \"bias\": false}],"
  " \"alpha\": 0.2, \"skipinit\": true},"
  "{\"type\": \"avgpool\", \"k\": 3, \"stride\": 2, \"pad\": 1}, {\"type\": \"global_avgpool\"},"
  "{\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 8, \"out\": 3}]}";

static void
test_residual_blocks (void)
{
  SnnModel *m = tu_model (res_json);
  const SnnLayerSpec *b = &m->layers[0];
  g_assert_cmpint (b->type, ==, SNN_LAYER_RESIDUAL);
  g_assert_true (b->block->shortcut_from_pre);  /* the default with a pre list */
  g_assert_cmpint (b->out_shape.d[0], ==, 8);
  g_assert_cmpint (b->out_shape.d[1], ==, 4);
  g_assert_cmpint (m->layers[1].out_shape.d[1], ==, 2);  /* (4 + 2 - 3) / 2 + 1 */
  g_assert_cmpint (m->layers[2].out_shape.d[1], ==, 1);
  /* bn 4+4, conv 8*4*9+8, 1x1 conv 8*4, skipinit 1, readout 8*3+3 */
  g_assert_cmpint (snn_model_param_count (m), ==, 8 + 296 + 32 + 1 + 27);
  SnnNet *net = snn_net_new (m, tu_cpu ());
  g_assert_nonnull (snn_net_find_param (net, "0.pre.0.running_var"));
  g_assert_nonnull (snn_net_find_param (net, "0.main.0.weight"));
  g_assert_nonnull (snn_net_find_param (net, "0.shortcut.0.weight"));
  g_assert_null (snn_net_find_param (net, "0.shortcut.0.bias"));
  SnnParam *gain = snn_net_find_param (net, "0.skipinit_gain");
  g_assert_nonnull (gain);
  g_assert_cmpfloat (tu_get1 (net, gain->data), ==, 0.0f);  /* skipinit starts at 0 */
  snn_net_free (net);
  g_autofree char *json = snn_model_to_json (m);
  SnnModel *back = snn_model_parse (json, -1, "round-trip", NULL);
  g_assert_nonnull (back);
  g_autofree char *json2 = snn_model_to_json (back);
  g_assert_cmpstr (json, ==, json2);
  SnnModel *copy = snn_model_copy (m);
  snn_model_free (m);
  g_assert_cmpint (copy->layers[0].block->main.n, ==, 3);  /* a deep copy outlives the original */
  snn_model_free (copy);
  snn_model_free (back);
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"residual\", \"main\": ["
                "{\"type\": \"linear\", \"in\": 4, \"out\": 4}, {\"type\": \"linear\", \"in\": 5, \"out\": 4}]},"
                "{\"type\": \"linear\", \"in\": 4, \"out\": 2}]}",
                "layer 0.main.1: linear expects 5 input features, gets 4");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"residual\", \"main\": ["
                "{\"type\": \"linear\", \"in\": 4, \"out\": 6}]}, {\"type\": \"linear\", \"in\": 6, \"out\": 2}]}",
                "layer 0: the main path gives [6] but the shortcut [4]");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"residual\", \"main\": [],"
                "\"skipinit\": true}, {\"type\": \"linear\", \"in\": 4, \"out\": 2}]}",
                "layer 0: field 'main' must not be empty");
  expect_error ("{\"input_shape\": [4], \"num_classes\": 2, \"layers\": [{\"type\": \"residual\", \"main\": ["
                "{\"type\": \"lif\", \"tau\": 0.1}]}, {\"type\": \"linear\", \"in\": 4, \"out\": 2}]}",
                "layer 0.main.0: tau must be at least 1");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/model/errors-name-file-and-layer", test_errors);
  g_test_add_func ("/model/defaults", test_defaults);
  g_test_add_func ("/model/presets-round-trip-and-counts", test_round_trip_and_counts);
  g_test_add_func ("/model/conv-shapes", test_conv_shapes);
  g_test_add_func ("/model/editing", test_editing);
  g_test_add_func ("/model/residual-blocks", test_residual_blocks);
  return g_test_run ();
}
