/* What the core holds for backward: constant in T for SLTT, proportional to
 * T for BPTT, and equal to the model's prediction. */
#include "test-util.h"

static const char *conv_json =
  "{\"input_shape\": [1, 12, 12], \"num_classes\": 4, \"layers\": ["
  "{\"type\": \"conv\", \"in_ch\": 1, \"out_ch\": 4, \"k\": 3, \"pad\": 1}, {\"type\": \"bn_step\", \"num_features\": 4},"
  "{\"type\": \"lif\"}, {\"type\": \"avgpool\", \"k\": 2}, {\"type\": \"flatten\"},"
  "{\"type\": \"linear\", \"in\": 144, \"out\": 32}, {\"type\": \"lif\"},"
  "{\"type\": \"linear\", \"in\": 32, \"out\": 4}]}";

static int64_t
peak_for_input (SnnMethod method, int T, int K, gboolean sequence)
{
  SnnModel *m = tu_model (conv_json);
  SnnNet *net = snn_net_new (m, snn_backend_cpu ());
  int B = 8;
  float *x = tu_input (B * 144 * (sequence ? T : 1), 1, 0, 1);
  int32_t y[8] = { 0, 1, 2, 3, 0, 1, 2, 3 };
  SnnTrainConfig cfg;
  snn_train_config_init (&cfg);
  cfg.method = method;
  cfg.T = T;
  cfg.K = K;
  SnnRng rng;
  snn_rng_seed (&rng, 1);
  SnnBatchResult r;
  g_assert_true (snn_train_batch (net, &cfg, x, sequence, B, y, NULL, 0, &rng, NULL, NULL, NULL, &r, NULL));
  g_assert_cmpint (r.peak_held_bytes, ==, snn_model_held_bytes_full (m, B, method == SNN_METHOD_BPTT ? T : 1, !sequence));
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
  return r.peak_held_bytes;
}

static int64_t
peak_for (SnnMethod method, int T, int K)
{
  return peak_for_input (method, T, K, FALSE);
}

static void
test_sltt_constant (void)
{
  int64_t p2 = peak_for (SNN_METHOD_SLTT, 2, 0), p16 = peak_for (SNN_METHOD_SLTT, 16, 0);
  g_assert_cmpint (p2, >, 0);
  g_assert_cmpint (p2, ==, p16);
  g_assert_cmpint (peak_for (SNN_METHOD_SLTT_K, 16, 2), ==, p2);
}

static void
test_bptt_linear (void)
{
  /* A sequence input: everything is held per step, so bytes are T times those of one step. */
  int64_t p1 = peak_for_input (SNN_METHOD_BPTT, 1, 0, TRUE), p2 = peak_for_input (SNN_METHOD_BPTT, 2, 0, TRUE);
  int64_t p16 = peak_for_input (SNN_METHOD_BPTT, 16, 0, TRUE);
  g_assert_cmpint (p2, ==, 2 * p1);
  g_assert_cmpint (p16, ==, 16 * p1);
  g_assert_cmpint (p1, ==, peak_for_input (SNN_METHOD_SLTT, 1, 0, TRUE));
  g_assert_cmpint (peak_for_input (SNN_METHOD_SLTT, 16, 0, TRUE), ==, p1);
  /* A static input: the layers before the first LIF layer hold their input
   * once; the rest grows linearly in T. */
  int64_t s1 = peak_for (SNN_METHOD_BPTT, 1, 0), s2 = peak_for (SNN_METHOD_BPTT, 2, 0);
  int64_t s16 = peak_for (SNN_METHOD_BPTT, 16, 0);
  g_assert_cmpint (s2, >, s1);
  g_assert_cmpint (s16 - s1, ==, 15 * (s2 - s1));
  g_assert_cmpint (s1, ==, peak_for (SNN_METHOD_SLTT, 1, 0));
}

static void
test_arena_fixed (void)
{
  /* The training loop does not grow the arena: a second batch reuses it. */
  SnnModel *m = tu_model (conv_json);
  SnnNet *net = snn_net_new (m, snn_backend_cpu ());
  float *x = tu_input (8 * 144, 1, 0, 1);
  int32_t y[8] = { 0 };
  SnnTrainConfig cfg;
  snn_train_config_init (&cfg);
  cfg.T = 4;
  SnnBatchResult r;
  g_assert_true (snn_train_batch (net, &cfg, x, FALSE, 8, y, NULL, 0, NULL, NULL, NULL, NULL, &r, NULL));
  int64_t arena = snn_net_stats (net)->arena_bytes;
  g_assert_true (snn_train_batch (net, &cfg, x, FALSE, 5, y, NULL, 0, NULL, NULL, NULL, NULL, &r, NULL));
  g_assert_cmpint (snn_net_stats (net)->arena_bytes, ==, arena);
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/memory/sltt-constant-in-T", test_sltt_constant);
  g_test_add_func ("/memory/bptt-proportional-to-T", test_bptt_linear);
  g_test_add_func ("/memory/arena-sized-once", test_arena_fixed);
  return g_test_run ();
}
