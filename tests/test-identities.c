/* Identities between the training methods that follow from their definitions. */
#include "test-util.h"

static const char *mlp_json =
  "{\"input_shape\": [20], \"num_classes\": 5, \"layers\": ["
  "{\"type\": \"linear\", \"in\": 20, \"out\": 32}, {\"type\": \"lif\", \"tau\": TAU},"
  "{\"type\": \"linear\", \"in\": 32, \"out\": 24}, {\"type\": \"bn_step\", \"num_features\": 24},"
  "{\"type\": \"lif\", \"tau\": TAU, \"surrogate\": \"sigmoid\"},"
  "{\"type\": \"linear\", \"in\": 24, \"out\": 5}]}";

static const char *conv_json =
  "{\"input_shape\": [2, 8, 8], \"num_classes\": 3, \"layers\": ["
  "{\"type\": \"conv\", \"in_ch\": 2, \"out_ch\": 4, \"k\": 3, \"pad\": 1, \"ws\": true}, {\"type\": \"lif\", \"tau\": TAU},"
  "{\"type\": \"avgpool\", \"k\": 2}, {\"type\": \"conv\", \"in_ch\": 4, \"out_ch\": 6, \"k\": 3},"
  "{\"type\": \"bn_step\", \"num_features\": 6},"
  "{\"type\": \"lif\", \"tau\": TAU, \"reset\": \"hard\"}, {\"type\": \"flatten\"},"
  "{\"type\": \"linear\", \"in\": 24, \"out\": 3}]}";

typedef struct {
  SnnNet *net;
  float *x;
  int32_t y[6];
  int B, in;
} Fixture;

static void
setup_with (Fixture *f, const char *tmpl, const char *tau)
{
  g_autoptr (GString) s = g_string_new (tmpl);
  g_string_replace (s, "TAU", tau, 0);
  SnnModel *m = tu_model (s->str);
  f->net = snn_net_new (m, tu_cpu ());
  tu_randomize (f->net, 3, 2.5f);
  f->B = 6;
  f->in = (int) snn_shape_numel (&m->input_shape);
  f->x = tu_input (f->B * f->in * 8, 5, -0.5f, 1.5f);
  for (int b = 0; b < f->B; b++)
    f->y[b] = b % m->num_classes;
  snn_model_free (m);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  snn_net_free (f->net);
  g_free (f->x);
}

static void
assert_all_equal (SnnNpz *a, SnnNpz *b, double tol)
{
  for (guint i = 0; i < snn_npz_count (a); i++)
    {
      const char *n = snn_npz_name (a, i);
      double d = tu_rel_diff (a, b, n);
      if (d > tol)
        g_error ("%s differs by %g (relative)", n, d);
    }
}

static void
test_sltt_k_all_steps (Fixture *f, gconstpointer tmpl)
{
  setup_with (f, tmpl, "1.1");
  int T = 5, all[5] = { 0, 1, 2, 3, 4 };
  SnnNpz *a = tu_grads (f->net, SNN_METHOD_SLTT, T, NULL, 0, f->x, FALSE, f->B, f->y, NULL);
  SnnNpz *b = tu_grads (f->net, SNN_METHOD_SLTT_K, T, all, T, f->x, FALSE, f->B, f->y, NULL);
  assert_all_equal (a, b, 0.0);
  snn_npz_free (a);
  snn_npz_free (b);
}

static void
test_t1_bptt_is_sltt (Fixture *f, gconstpointer tmpl)
{
  setup_with (f, tmpl, "2.0");
  SnnNpz *a = tu_grads (f->net, SNN_METHOD_BPTT, 1, NULL, 0, f->x, FALSE, f->B, f->y, NULL);
  SnnNpz *b = tu_grads (f->net, SNN_METHOD_SLTT, 1, NULL, 0, f->x, FALSE, f->B, f->y, NULL);
  assert_all_equal (a, b, 1e-6);
  snn_npz_free (a);
  snn_npz_free (b);
}

static void
test_tau1_bptt_is_sltt (Fixture *f, gconstpointer tmpl)
{
  /* 1 - 1/tau = 0: no route leads from one step to the next. */
  setup_with (f, tmpl, "1.0");
  SnnNpz *a = tu_grads (f->net, SNN_METHOD_BPTT, 6, NULL, 0, f->x, FALSE, f->B, f->y, NULL);
  SnnNpz *b = tu_grads (f->net, SNN_METHOD_SLTT, 6, NULL, 0, f->x, FALSE, f->B, f->y, NULL);
  assert_all_equal (a, b, 1e-4);
  snn_npz_free (a);
  snn_npz_free (b);
}

static void
test_tau2_differs (Fixture *f, gconstpointer tmpl)
{
  setup_with (f, tmpl, "2.0");
  SnnNpz *a = tu_grads (f->net, SNN_METHOD_BPTT, 6, NULL, 0, f->x, FALSE, f->B, f->y, NULL);
  SnnNpz *b = tu_grads (f->net, SNN_METHOD_SLTT, 6, NULL, 0, f->x, FALSE, f->B, f->y, NULL);
  const SnnModel *m = snn_net_model (f->net);
  int checked = 0;
  /* Every weight that feeds a LIF layer sees the temporal routes. */
  for (int l = 0; l + 1 < m->n_layers; l++)
    if (m->layers[l].type == SNN_LAYER_LINEAR || m->layers[l].type == SNN_LAYER_CONV)
      {
        g_autofree char *name = g_strdup_printf ("grad.%d.weight", l);
        double d = tu_rel_diff_floor (a, b, name, 1e-30);
        if (d < 1e-3)
          g_error ("%s: BPTT and SLTT agree (%g) although tau = 2", name, d);
        checked++;
      }
  g_assert_cmpint (checked, >=, 2);
  /* The readout sees no temporal route: equal. */
  g_autofree char *last = g_strdup_printf ("grad.%d.weight", m->n_layers - 1);
  g_assert_cmpfloat (tu_rel_diff (a, b, last), <, 1e-5);
  snn_npz_free (a);
  snn_npz_free (b);
}

static void
test_sltt_k_subset_scaled (Fixture *f, gconstpointer tmpl)
{
  /* SLTT-K's gradient is the sum of the per-step SLTT gradients of its steps:
   * K = {1} plus K = {3} equals K = {1, 3}. */
  setup_with (f, tmpl, "1.1");
  int s1 = 1, s3 = 3, both[2] = { 1, 3 };
  SnnNpz *a = tu_grads (f->net, SNN_METHOD_SLTT_K, 5, &s1, 1, f->x, FALSE, f->B, f->y, NULL);
  SnnNpz *b = tu_grads (f->net, SNN_METHOD_SLTT_K, 5, &s3, 1, f->x, FALSE, f->B, f->y, NULL);
  SnnNpz *c = tu_grads (f->net, SNN_METHOD_SLTT_K, 5, both, 2, f->x, FALSE, f->B, f->y, NULL);
  for (guint i = 0; i < snn_npz_count (c); i++)
    {
      const char *n = snn_npz_name (c, i);
      SnnArray *x = snn_npz_get (a, n), *y = snn_npz_get (b, n), *z = snn_npz_get (c, n);
      double m = 0, d = 0;
      for (int64_t j = 0; j < snn_array_numel (z); j++)
        {
          float sum = ((float *) x->data)[j] + ((float *) y->data)[j];
          d = MAX (d, fabs (sum - ((float *) z->data)[j]));
          m = MAX (m, fabs (((float *) z->data)[j]));
        }
      /* The WS backward is linear in dW_hat, so the sum holds with ws too. */
      g_assert_cmpfloat (d, <=, 1e-5 * MAX (m, 1e-12) + 1e-12);
    }
  snn_npz_free (a);
  snn_npz_free (b);
  snn_npz_free (c);
}

static void
test_residual_tau1 (void)
{
  /* LIF layers inside residual blocks follow snn_net_set_tau too: at tau 1
   * no route leads from one step to the next anywhere, so BPTT = SLTT;
   * at tau 2 they differ. */
  SnnModel *m = tu_model ("{\"input_shape\": [12], \"num_classes\": 3, \"layers\": ["
                          "{\"type\": \"linear\", \"in\": 12, \"out\": 16}, {\"type\": \"lif\"},"
                          "{\"type\": \"residual\", \"main\": [{\"type\": \"linear\", \"in\": 16, \"out\": 16},"
                          " {\"type\": \"lif\"}, {\"type\": \"linear\", \"in\": 16, \"out\": 16}], \"alpha\": 0.5},"
                          "{\"type\": \"lif\"}, {\"type\": \"linear\", \"in\": 16, \"out\": 3}]}");
  SnnNet *net = snn_net_new (m, tu_cpu ());
  tu_randomize (net, 11, 3.0f);
  float *x = tu_input (6 * 12, 4, -0.5f, 1.5f);
  int32_t y[6] = { 0, 1, 2, 0, 1, 2 };
  snn_net_set_tau (net, 1.0f);
  SnnNpz *a = tu_grads (net, SNN_METHOD_BPTT, 5, NULL, 0, x, FALSE, 6, y, NULL);
  SnnNpz *b = tu_grads (net, SNN_METHOD_SLTT, 5, NULL, 0, x, FALSE, 6, y, NULL);
  assert_all_equal (a, b, 1e-4);
  snn_net_set_tau (net, 2.0f);
  SnnNpz *c = tu_grads (net, SNN_METHOD_BPTT, 5, NULL, 0, x, FALSE, 6, y, NULL);
  SnnNpz *d = tu_grads (net, SNN_METHOD_SLTT, 5, NULL, 0, x, FALSE, 6, y, NULL);
  g_assert_cmpfloat (tu_rel_diff_floor (c, d, "grad.2.main.0.weight", 1e-30), >, 1e-3);
  snn_npz_free (a), snn_npz_free (b), snn_npz_free (c), snn_npz_free (d);
  g_free (x);
  snn_net_free (net);
  snn_model_free (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  const char *nets[2][2] = { { "mlp", NULL }, { "conv", NULL } };
  nets[0][1] = mlp_json;
  nets[1][1] = conv_json;
  for (int i = 0; i < 2; i++)
    {
      const char *tag = nets[i][0], *json = nets[i][1];
      g_autofree char *p1 = g_strdup_printf ("/identities/%s/sltt-k-all-steps-is-sltt", tag);
      g_autofree char *p2 = g_strdup_printf ("/identities/%s/t1-bptt-is-sltt", tag);
      g_autofree char *p3 = g_strdup_printf ("/identities/%s/tau1-bptt-is-sltt", tag);
      g_autofree char *p4 = g_strdup_printf ("/identities/%s/tau2-bptt-differs", tag);
      g_autofree char *p5 = g_strdup_printf ("/identities/%s/sltt-k-sums-steps", tag);
      g_test_add (p1, Fixture, json, NULL, test_sltt_k_all_steps, teardown);
      g_test_add (p2, Fixture, json, NULL, test_t1_bptt_is_sltt, teardown);
      g_test_add (p3, Fixture, json, NULL, test_tau1_bptt_is_sltt, teardown);
      g_test_add (p4, Fixture, json, NULL, test_tau2_differs, teardown);
      g_test_add (p5, Fixture, json, NULL, test_sltt_k_subset_scaled, teardown);
    }
  g_test_add_func ("/identities/residual/tau1-bptt-is-sltt", test_residual_tau1);
  return g_test_run ();
}
