/* The model editor's memory figures: for every method as training runs it,
 * the predicted bytes held for backward and the predicted arena equal what
 * a net allocates and holds in a real training step. */
#include "test-util.h"
#include "experiment.h"

static const SnnPredictMethod order[] = {
  SNN_PREDICT_BPTT_STORED, SNN_PREDICT_BPTT_RECOMPUTE, SNN_PREDICT_SLTT, SNN_PREDICT_SLTT_K,
};

/* One training step of a fresh net with the method predicted[i] stands for. */
static void
measure (const SnnModel *m, SnnPredictMethod i, int B, int T, int64_t *held, int64_t *arena)
{
  SnnNet *net = snn_net_new (m, tu_cpu ());
  int64_t in = snn_shape_numel (&m->input_shape);
  float *x = tu_input (B * in, 1, 0, 1);
  int32_t *y = g_new0 (int32_t, B);
  SnnTrainConfig cfg;
  SnnRng rng;
  SnnBatchResult r;

  snn_train_config_init (&cfg);
  cfg.method = i <= SNN_PREDICT_BPTT_RECOMPUTE ? SNN_METHOD_BPTT : i == SNN_PREDICT_SLTT ? SNN_METHOD_SLTT : SNN_METHOD_SLTT_K;
  cfg.recompute = i == SNN_PREDICT_BPTT_RECOMPUTE;
  cfg.T = T;
  cfg.K = 2;
  snn_rng_seed (&rng, 3);
  for (int b = 0; b < B; b++)
    y[b] = b % m->num_classes;
  g_assert_true (snn_train_batch (net, &cfg, x, FALSE, B, y, NULL, 0, &rng, NULL, NULL, NULL, &r, NULL));
  *held = r.peak_held_bytes;
  *arena = snn_net_stats (net)->arena_bytes;
  g_free (x);
  g_free (y);
  snn_net_free (net);
}

static void
check_preset (const char *name, int B, int T)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = snn_preset_find (name, ".json");
  SnnModel *m = snn_model_load_file (path, &error);
  SnnMemoryPrediction p[SNN_PREDICT_N];

  g_assert_no_error (error);
  snn_model_predict_memory (m, B, T, p);
  for (guint k = 0; k < G_N_ELEMENTS (order); k++)
    {
      int64_t held, arena;

      measure (m, order[k], B, T, &held, &arena);
      g_test_message ("%s B %d T %d method %d: held %" G_GINT64_FORMAT " (predicted %" G_GINT64_FORMAT
                      "), arena %" G_GINT64_FORMAT " (predicted %" G_GINT64_FORMAT ")",
                      name, B, T, order[k], held, p[order[k]].held_bytes, arena, p[order[k]].arena_bytes);
      g_assert_cmpint (held, ==, p[order[k]].held_bytes);
      g_assert_cmpint (arena, ==, p[order[k]].arena_bytes);
    }
  snn_model_free (m);
}

static void
test_matches_mlp (void)
{
  check_preset ("mlp-small", 8, 5);
}

static void
test_matches_conv (void)
{
  check_preset ("conv-small", 4, 3);
  /* Trained in three lanes of 9 samples: the sums over the lanes. */
  g_autofree char *path = snn_preset_find ("conv-small", ".json");
  SnnModel *m = snn_model_load_file (path, NULL);
  g_assert_cmpint (snn_model_lanes (m, tu_cpu (), 27), ==, 3);
  snn_model_free (m);
  check_preset ("conv-small", 27, 3);
}

/* The lesson the editor shows: BPTT with Recompute holds little for
 * backward, but its arena grows with T; SLTT's arena does not. */
static void
test_arena_grows_with_T (void)
{
  g_autofree char *path = snn_preset_find ("conv-small", ".json");
  SnnModel *m = snn_model_load_file (path, NULL);
  SnnMemoryPrediction p4[SNN_PREDICT_N], p16[SNN_PREDICT_N];

  snn_model_predict_memory (m, 64, 4, p4);
  snn_model_predict_memory (m, 64, 16, p16);
  g_assert_true (p16[SNN_PREDICT_BPTT_RECOMPUTE].recomputes);
  g_assert_cmpint (p16[SNN_PREDICT_SLTT].arena_bytes, ==, p4[SNN_PREDICT_SLTT].arena_bytes);
  g_assert_cmpint (p16[SNN_PREDICT_BPTT_RECOMPUTE].arena_bytes, >, 3 * p4[SNN_PREDICT_BPTT_RECOMPUTE].arena_bytes);
  g_assert_cmpint (p16[SNN_PREDICT_BPTT_RECOMPUTE].arena_bytes, >, 8 * p16[SNN_PREDICT_SLTT].arena_bytes);
  g_assert_cmpint (p16[SNN_PREDICT_BPTT_RECOMPUTE].held_bytes, <, p16[SNN_PREDICT_BPTT_STORED].held_bytes / 8);
  snn_model_free (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/predict/matches-training-mlp", test_matches_mlp);
  g_test_add_func ("/predict/matches-training-conv", test_matches_conv);
  g_test_add_func ("/predict/arena-grows-with-T", test_arena_grows_with_T);
  return g_test_run ();
}
