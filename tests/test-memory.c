/* What the core holds for backward: constant in T for SLTT, proportional to
 * T for BPTT, and equal to the model's prediction; recomputing BPTT holds
 * spike bits and gives the same results. */
#include "test-util.h"

static const char *conv_json =
  "{\"input_shape\": [1, 12, 12], \"num_classes\": 4, \"layers\": ["
  "{\"type\": \"conv\", \"in_ch\": 1, \"out_ch\": 4, \"k\": 3, \"pad\": 1}, {\"type\": \"bn_step\", \"num_features\": 4},"
  "{\"type\": \"lif\"}, {\"type\": \"avgpool\", \"k\": 2}, {\"type\": \"flatten\"},"
  "{\"type\": \"linear\", \"in\": 144, \"out\": 32}, {\"type\": \"lif\"},"
  "{\"type\": \"linear\", \"in\": 32, \"out\": 4}]}";

static int64_t
peak_full (SnnMethod method, int T, int K, gboolean sequence, gboolean recompute)
{
  SnnModel *m = tu_model (conv_json);
  SnnNet *net = snn_net_new (m, tu_cpu ());
  int B = 8;
  float *x = tu_input (B * 144 * (sequence ? T : 1), 1, 0, 1);
  int32_t y[8] = { 0, 1, 2, 3, 0, 1, 2, 3 };
  SnnTrainConfig cfg = tu_config (method, T, K, recompute);
  SnnRng rng;
  snn_rng_seed (&rng, 1);
  SnnBatchResult r;
  gboolean bptt = method == SNN_METHOD_BPTT;
  g_assert_true (snn_train_batch (net, &cfg, x, sequence, B, y, NULL, 0, &rng, NULL, NULL, NULL, &r, NULL));
  g_assert_cmpint (r.peak_held_bytes, ==, snn_model_held_bytes_full (m, B, bptt ? T : 1, !sequence, bptt && recompute));
  g_assert_cmpint (snn_net_recomputes (net), ==, bptt && recompute);
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
  return r.peak_held_bytes;
}

static int64_t
peak_for_input (SnnMethod method, int T, int K, gboolean sequence)
{
  return peak_full (method, T, K, sequence, FALSE);
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
  g_assert_cmpint (peak_full (SNN_METHOD_SLTT, 16, 0, FALSE, TRUE), ==, p2); /* recompute is for BPTT only */
}

static void
test_bptt_linear (void)
{
  /* Activations stored: a sequence input holds everything per step, so
   * bytes are T times those of one step. */
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
test_bptt_recompute_bits (void)
{
  /* Recomputing, each step adds one bit per spike of each LIF layer (8
   * samples: 4x12x12 and 32 neurons, in 64-bit words) and, for a sequence,
   * the step's input (8 x 144 floats). */
  const int64_t bits = (8 * 4 * 144 / 64 + 8 * 32 / 64) * 8, input = 8 * 144 * 4;
  int64_t s1 = peak_full (SNN_METHOD_BPTT, 1, 0, FALSE, TRUE), s2 = peak_full (SNN_METHOD_BPTT, 2, 0, FALSE, TRUE);
  int64_t s16 = peak_full (SNN_METHOD_BPTT, 16, 0, FALSE, TRUE);
  g_assert_cmpint (s2 - s1, ==, bits);
  g_assert_cmpint (s16 - s1, ==, 15 * bits);
  int64_t p1 = peak_full (SNN_METHOD_BPTT, 1, 0, TRUE, TRUE), p16 = peak_full (SNN_METHOD_BPTT, 16, 0, TRUE, TRUE);
  g_assert_cmpint (p1, ==, bits + input);
  g_assert_cmpint (p16, ==, 16 * p1);
  /* Against storing the activations at T = 6: less (a static input keeps
   * what the prefix computed once), and under a quarter for a sequence. */
  g_assert_cmpint (peak_full (SNN_METHOD_BPTT, 6, 0, FALSE, TRUE), <, peak_for (SNN_METHOD_BPTT, 6, 0));
  g_assert_cmpint (4 * peak_full (SNN_METHOD_BPTT, 6, 0, TRUE, TRUE), <, peak_for_input (SNN_METHOD_BPTT, 6, 0, TRUE));
}

/* The same batch with and without recomputing: the same loss, outputs,
 * gradients and running statistics, bit for bit. */
static void
check_recompute_exact (const char *json, int T, gboolean sequence)
{
  SnnModel *m = tu_model (json);
  int B = 8, in = (int) snn_shape_numel (&m->input_shape);
  float *x = tu_input (B * in * (sequence ? T : 1), 3, 0, 1);
  int32_t y[8] = { 0, 1, 2, 3, 0, 1, 2, 3 };
  SnnNpz *got[2], *par[2];
  float *o[2];
  double loss[2];
  for (int rc = 0; rc < 2; rc++)
    {
      SnnNet *net = snn_net_new (m, tu_cpu ());
      tu_randomize (net, 5, 2.5f);
      SnnTrainConfig cfg;
      snn_train_config_init (&cfg);
      cfg.method = SNN_METHOD_BPTT;
      cfg.T = T;
      cfg.lambda = 0.05f;
      cfg.recompute = rc;
      SnnRng rng;
      snn_rng_seed (&rng, 11);
      SnnBatchResult r;
      o[rc] = g_new (float, T * B * m->num_classes);
      snn_net_zero_grad (net);
      g_assert_true (snn_train_batch (net, &cfg, x, sequence, B, y, NULL, 0, &rng, NULL, NULL, o[rc], &r, NULL));
      g_assert_cmpint (snn_net_recomputes (net), ==, rc);
      g_assert_cmpint (r.peak_held_bytes, ==, snn_model_held_bytes_full (m, B, T, !sequence, rc));
      loss[rc] = r.loss;
      got[rc] = snn_net_to_npz (net, TRUE);
      par[rc] = snn_net_to_npz (net, FALSE);
      snn_net_free (net);
    }
  g_assert_cmpfloat (loss[0], ==, loss[1]);
  g_assert_cmpmem (o[0], T * B * m->num_classes * sizeof (float), o[1], T * B * m->num_classes * sizeof (float));
  double gsum = 0;
  for (int set = 0; set < 2; set++)
    {
      SnnNpz **z = set ? par : got;
      g_assert_cmpuint (snn_npz_count (z[0]), ==, snn_npz_count (z[1]));
      for (guint i = 0; i < snn_npz_count (z[0]); i++)
        {
          const char *name = snn_npz_name (z[0], i);
          SnnArray *a = snn_npz_get (z[0], name), *b = snn_npz_get (z[1], name);
          g_assert_nonnull (b);
          size_t bytes = snn_array_numel (a) * sizeof (float);
          g_assert_cmpmem (a->data, bytes, b->data, bytes);
          for (int64_t j = 0; !set && j < snn_array_numel (a); j++)
            gsum += fabsf (((float *) a->data)[j]);
        }
    }
  g_assert_cmpfloat (gsum, >, 0); /* the gradients are not all zero */
  for (int rc = 0; rc < 2; rc++)
    {
      snn_npz_free (got[rc]);
      snn_npz_free (par[rc]);
      g_free (o[rc]);
    }
  g_free (x);
  snn_model_free (m);
}

static void
test_recompute_exact (void)
{
  /* conv + bn_step before the first LIF layer (a prefix for a static input),
   * dropout, pooling and flatten between LIF layers, and a LIF layer of another surrogate. */
  const char *net =
    "{\"input_shape\": [1, 12, 12], \"num_classes\": 4, \"layers\": ["
    "{\"type\": \"conv\", \"in_ch\": 1, \"out_ch\": 4, \"k\": 3, \"pad\": 1}, {\"type\": \"bn_step\", \"num_features\": 4},"
    "{\"type\": \"lif\"}, {\"type\": \"conv\", \"in_ch\": 4, \"out_ch\": 6, \"k\": 3, \"pad\": 1, \"ws\": true},"
    "{\"type\": \"bn_step\", \"num_features\": 6}, {\"type\": \"lif\", \"reset\": \"hard\"}, {\"type\": \"avgpool\", \"k\": 2},"
    "{\"type\": \"flatten\"}, {\"type\": \"dropout\", \"p\": 0.2},"
    "{\"type\": \"linear\", \"in\": 216, \"out\": 32}, {\"type\": \"lif\", \"surrogate\": \"sigmoid\"},"
    "{\"type\": \"linear\", \"in\": 32, \"out\": 4}]}";
  check_recompute_exact (net, 5, FALSE);
  check_recompute_exact (net, 5, TRUE);
  check_recompute_exact (conv_json, 1, FALSE);
  /* Fan-ins above 256: those segments keep u (and bn_step's xhat) and
   * rebuild only what comes before their linear layer. */
  const char *wide =
    "{\"input_shape\": [40], \"num_classes\": 4, \"layers\": ["
    "{\"type\": \"linear\", \"in\": 40, \"out\": 300}, {\"type\": \"lif\"},"
    "{\"type\": \"linear\", \"in\": 300, \"out\": 64}, {\"type\": \"bn_step\", \"num_features\": 64},"
    "{\"type\": \"lif\"}, {\"type\": \"dropout\", \"p\": 0.1},"
    "{\"type\": \"linear\", \"in\": 64, \"out\": 300}, {\"type\": \"lif\"},"
    "{\"type\": \"linear\", \"in\": 300, \"out\": 4}]}";
  check_recompute_exact (wide, 4, FALSE);
  check_recompute_exact (wide, 4, TRUE);
}

static void
test_arena_fixed (void)
{
  /* The training loop does not grow the arena: a second batch reuses it. */
  SnnModel *m = tu_model (conv_json);
  SnnNet *net = snn_net_new (m, tu_cpu ());
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
  g_test_add_func ("/memory/bptt-recompute-holds-bits", test_bptt_recompute_bits);
  g_test_add_func ("/memory/recompute-same-results", test_recompute_exact);
  g_test_add_func ("/memory/arena-sized-once", test_arena_fixed);
  return g_test_run ();
}
