/* LIF dynamics and surrogates against values worked out by hand. */
#include "test-util.h"
#include "surrogate.h"

static void
test_surrogates (void)
{
  SnnLifParams p;
  snn_lif_params_init (&p);
  p.width = 1.0f;
  p.surrogate = SNN_SURROGATE_RECTANGLE;
  g_assert_cmpfloat (snn_surrogate_grad (&p, 0.49f), ==, 1.0f);
  g_assert_cmpfloat (snn_surrogate_grad (&p, 0.5f), ==, 0.0f);   /* strict */
  g_assert_cmpfloat (snn_surrogate_grad (&p, -0.5f), ==, 0.0f);
  p.surrogate = SNN_SURROGATE_TRIANGLE;
  p.width = 2.0f;
  g_assert_cmpfloat_with_epsilon (snn_surrogate_grad (&p, 0.0f), 0.5f, 1e-7);
  g_assert_cmpfloat_with_epsilon (snn_surrogate_grad (&p, 1.0f), 0.25f, 1e-7);
  g_assert_cmpfloat (snn_surrogate_grad (&p, 2.5f), ==, 0.0f);
  p.surrogate = SNN_SURROGATE_SIGMOID;
  p.alpha = 4.0f;
  g_assert_cmpfloat_with_epsilon (snn_surrogate_grad (&p, 0.0f), 1.0f, 1e-6);
  p.surrogate = SNN_SURROGATE_ATAN;
  p.alpha = 2.0f;
  g_assert_cmpfloat_with_epsilon (snn_surrogate_grad (&p, 0.0f), 1.0f, 1e-6);
  g_assert_cmpfloat_with_epsilon (snn_surrogate_grad (&p, 1.0f), 2.0 / (2.0 * (1.0 + M_PI * M_PI)), 1e-6);
}

static void
test_forward (void)
{
  /* tau = 2: u = 0.5 v + x. Inputs 0.6, 0.6, 0.6, 0.0 with vth 1:
   * soft: u1 .6 (no spike), u2 .9, u3 1.05 -> spike, v3 .05, u4 .025.
   * hard: the same until u3, then v3 = 0 and u4 = 0. */
  const SnnBackend *be = tu_cpu ();
  SnnLifParams p;
  snn_lif_params_init (&p);
  p.tau = 2.0f;
  float x[4] = { 0.6f, 0.6f, 0.6f, 0.0f }, v = 0, u[4], s[4];
  be->lif_forward (&p, x, FALSE, &v, 4, 1, u, s, NULL);
  float eu[4] = { 0.6f, 0.9f, 1.05f, 0.025f }, es[4] = { 0, 0, 1, 0 };
  for (int t = 0; t < 4; t++)
    {
      g_assert_cmpfloat_with_epsilon (u[t], eu[t], 1e-6);
      g_assert_cmpfloat (s[t], ==, es[t]);
    }
  p.reset = SNN_RESET_HARD;
  v = 0;
  be->lif_forward (&p, x, FALSE, &v, 4, 1, u, s, NULL);
  g_assert_cmpfloat (u[3], ==, 0.0f);
  /* u exactly at threshold fires */
  float at[1] = { 1.0f };
  v = 0;
  be->lif_forward (&p, at, FALSE, &v, 1, 1, u, s, NULL);
  g_assert_cmpfloat (s[0], ==, 1.0f);
}

static void
test_spike_bits (void)
{
  /* 3 steps of 200 neurons (a last word of 8): the bits written by the
   * forward pass, those packed from its spikes and the spikes unpacked from
   * them agree, bit i % 64 of word i / 64 being neuron i. */
  const SnnBackend *be = tu_cpu ();
  SnnLifParams p;
  snn_lif_params_init (&p);
  enum { T = 3, N = 200 };
  const int64_t words = snn_spike_words (N);
  g_assert_cmpint (words, ==, 4);
  float *x = tu_input (T * N, 2, 0.0f, 1.4f), v[N] = { 0 }, u[T * N], s[T * N], back[T * N];
  uint64_t bits[T * 4], packed[T * 4];
  be->lif_forward (&p, x, FALSE, v, T, N, u, s, bits);
  be->pack_spikes (s, T, N, packed);
  g_assert_cmpmem (bits, sizeof bits, packed, sizeof packed);
  int fired = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i++)
      {
        gboolean bit = (bits[t * words + i / 64] >> (i % 64)) & 1;
        g_assert_cmpint (bit, ==, s[t * N + i] == 1.0f);
        fired += bit;
      }
  g_assert_cmpint (fired, >, 0);
  g_assert_cmpint (fired, <, T * N);
  be->unpack_spikes (bits, T, N, back);
  g_assert_cmpmem (back, sizeof back, s, sizeof s);
  g_free (x);
}

static void
test_spike_linear (void)
{
  /* Sparse spikes: the sum of the fired inputs' weight columns equals the
   * GEMM to rounding; dense ones are left to the GEMM. */
  const SnnBackend *be = tu_cpu ();
  enum { R = 24, IN = 150, OUT = 70 };
  float *w = tu_input (OUT * IN, 4, -1, 1), *b = tu_input (OUT, 5, -1, 1), *u = tu_input (R * IN, 6, 0, 1);
  float *wt = g_new0 (float, IN * OUT + SNN_SPIKE_SLACK), s[R * IN], y[R * OUT], ref[R * OUT];
  int *idx = g_new (int, snn_spike_linear_scratch (R, IN));
  be->transpose (w, OUT, IN, wt);
  g_assert_cmpfloat (wt[7 * OUT + 3], ==, w[3 * IN + 7]);
  for (int i = 0; i < R * IN; i++)
    s[i] = u[i] < 0.1f ? 1.0f : 0.0f;
  g_assert_true (be->spike_linear (s, R, IN, OUT, wt, b, idx, y));
  be->gemm (FALSE, TRUE, R, OUT, IN, 1.0f, s, IN, w, IN, 0.0f, ref, OUT);
  be->add_bias_rows (ref, b, R, OUT);
  for (int i = 0; i < R * OUT; i++)
    g_assert_cmpfloat_with_epsilon (y[i], ref[i], 1e-5);
  for (int i = 0; i < R * IN; i++)
    s[i] = u[i] < 0.3f ? 1.0f : 0.0f;
  y[0] = 42.0f;
  g_assert_false (be->spike_linear (s, R, IN, OUT, wt, b, idx, y));
  g_assert_cmpfloat (y[0], ==, 42.0f);
  g_free (w), g_free (b), g_free (u), g_free (wt), g_free (idx);
}

static void
test_backward_by_hand (void)
{
  /* Two steps, soft reset, rectangle width 1, tau 2 (lambda 0.5).
   * u1 = 1.2 (spike, sg 1), u2 = 0.5*0.2 + 0.8 = 0.9 (sg 1). ds = (0, 1).
   * du2 = 1. dv1 = 0.5; du1 = dv1 + (ds1 - vth dv1) sg1 = 0.5 + (0 - 0.5) = 0.
   * Without the reset route: du1 = 0.5. SLTT: du1 = 0. */
  const SnnBackend *be = tu_cpu ();
  SnnLifParams p;
  snn_lif_params_init (&p);
  p.tau = 2.0f;
  p.surrogate = SNN_SURROGATE_RECTANGLE;
  float u[2] = { 1.2f, 0.9f }, ds[2] = { 0, 1 }, du[2];
  be->lif_backward (&p, u, ds, 2, 1, TRUE, du);
  g_assert_cmpfloat_with_epsilon (du[1], 1.0f, 1e-7);
  g_assert_cmpfloat_with_epsilon (du[0], 0.0f, 1e-7);
  p.detach_reset = TRUE;
  be->lif_backward (&p, u, ds, 2, 1, TRUE, du);
  g_assert_cmpfloat_with_epsilon (du[0], 0.5f, 1e-7);
  be->lif_backward (&p, u, ds, 2, 1, FALSE, du);
  g_assert_cmpfloat (du[0], ==, 0.0f);
  /* hard reset: v1 = u1 (1 - s1) = 0, dv1/du1 = 0, dv1/ds1 = -u1:
   * du1 = 0 + (0 - 1.2 * 0.5) * 1 = -0.6 */
  p.detach_reset = FALSE;
  p.reset = SNN_RESET_HARD;
  be->lif_backward (&p, u, ds, 2, 1, TRUE, du);
  g_assert_cmpfloat_with_epsilon (du[0], -0.6f, 1e-6);
}

static void
read_u (SnnNet *net, gboolean training, const float *x, int T, float *u)
{
  SnnRng rng;
  snn_rng_seed (&rng, 9);
  snn_net_configure (net, 16, T);
  snn_net_set_static_input (net, TRUE);
  snn_net_begin_sequence (net, training, &rng);
  snn_net_forward (net, x, T, FALSE);
  snn_net_read_lif (net, 2, FALSE, u);
}

static void
test_dropout_mask (void)
{
  /* tau = 1: u[t] is the dropout's output itself. One mask per sample,
   * the same at every step, entries 0 or 1/(1-p); identity in evaluation. */
  SnnModel *m = tu_model ("{\"input_shape\": [10], \"num_classes\": 3, \"layers\": ["
                          "{\"type\": \"linear\", \"in\": 10, \"out\": 50}, {\"type\": \"dropout\", \"p\": 0.25},"
                          "{\"type\": \"lif\", \"tau\": 1.0}, {\"type\": \"linear\", \"in\": 50, \"out\": 3}]}");
  SnnNet *net = snn_net_new (m, tu_cpu ());
  int T = 3, n = 16 * 50, zeros = 0;
  float *x = tu_input (16 * 10, 4, -1, 1), *ut = g_new (float, T * n), *ue = g_new (float, T * n);
  read_u (net, TRUE, x, T, ut);
  read_u (net, FALSE, x, T, ue);
  for (int i = 0; i < n; i++)
    {
      g_assert_cmpfloat (ue[i], !=, 0.0f);
      gboolean dropped = ut[i] == 0.0f;
      zeros += dropped;
      if (!dropped)
        g_assert_cmpfloat_with_epsilon (ut[i], ue[i] / 0.75f, 1e-5);
      for (int t = 1; t < T; t++)
        {
          g_assert_cmpfloat (ut[t * n + i], ==, ut[i]);
          g_assert_cmpfloat (ue[t * n + i], ==, ue[i]);
        }
    }
  g_assert_cmpint (zeros, >, n / 8);
  g_assert_cmpint (zeros, <, 3 * n / 8);
  g_free (x), g_free (ut), g_free (ue);
  snn_net_free (net);
  snn_model_free (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/lif/surrogates", test_surrogates);
  g_test_add_func ("/lif/forward", test_forward);
  g_test_add_func ("/lif/spike-bits", test_spike_bits);
  g_test_add_func ("/lif/spike-linear", test_spike_linear);
  g_test_add_func ("/lif/backward-by-hand", test_backward_by_hand);
  g_test_add_func ("/dropout/one-mask-per-sample", test_dropout_mask);
  return g_test_run ();
}
