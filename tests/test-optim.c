/* The optimizers against their update rules worked out by hand (PyTorch's
 * SGD with momentum and weight decay, Adam), and the cosine schedule. */
#include "test-util.h"
#include "optim.h"

static SnnNet *
one_weight_net (void)
{
  SnnModel *m = tu_model ("{\"input_shape\": [1], \"num_classes\": 1, \"layers\": ["
                          "{\"type\": \"linear\", \"in\": 1, \"out\": 1, \"bias\": false}]}");
  SnnNet *net = snn_net_new (m, tu_cpu ());
  snn_model_free (m);
  return net;
}

static void
test_sgd (void)
{
  SnnNet *net = one_weight_net ();
  SnnParam *w = snn_net_find_param (net, "0.weight");
  tu_put (net, w->data, (float[]) { 1.0f }, 1);
  SnnOptimConfig cfg;
  snn_optim_config_init (&cfg);
  cfg.momentum = 0.9;
  cfg.weight_decay = 0.1;
  SnnOptim *opt = snn_optim_new (net, &cfg);
  /* step 1: d = 0.5 + 0.1*1 = 0.6, buf = 0.6, w = 1 - 0.1*0.6 = 0.94
   * step 2: d = 0.5 + 0.094 = 0.594, buf = 0.54 + 0.594 = 1.134, w = 0.94 - 0.1134 */
  tu_put (net, w->grad, (float[]) { 0.5f }, 1);
  snn_optim_step (opt, 0.1);
  g_assert_cmpfloat_with_epsilon (tu_get1 (net, w->data), 0.94f, 1e-6);
  snn_optim_step (opt, 0.1);
  g_assert_cmpfloat_with_epsilon (tu_get1 (net, w->data), 0.94f - 0.1134f, 1e-6);
  snn_optim_free (opt);
  snn_net_free (net);
}

static void
test_adam (void)
{
  SnnNet *net = one_weight_net ();
  SnnParam *w = snn_net_find_param (net, "0.weight");
  tu_put (net, w->data, (float[]) { 1.0f }, 1);
  SnnOptimConfig cfg;
  snn_optim_config_init (&cfg);
  cfg.type = SNN_OPTIM_ADAM;
  SnnOptim *opt = snn_optim_new (net, &cfg);
  /* The first Adam step moves by lr * g / (|g| + eps / sqrt(c2)) ~ lr. */
  tu_put (net, w->grad, (float[]) { 0.3f }, 1);
  snn_optim_step (opt, 0.01);
  g_assert_cmpfloat_with_epsilon (tu_get1 (net, w->data), 0.99f, 1e-6);
  /* Second step with gradient -0.3: m = 0.9*0.03 - 0.03 = -0.003, v as before
   * (0.999*0.00009 + 0.001*0.09 = 0.00017991); mh = m / 0.19, vh = v / 0.001999. */
  tu_put (net, w->grad, (float[]) { -0.3f }, 1);
  snn_optim_step (opt, 0.01);
  double mh = -0.003 / 0.19, vh = 0.00017991 / (1 - 0.999 * 0.999);
  g_assert_cmpfloat_with_epsilon (tu_get1 (net, w->data), 0.99 - 0.01 * mh / (sqrt (vh) + 1e-8), 1e-6);
  snn_optim_free (opt);
  snn_net_free (net);
}

static void
test_cosine (void)
{
  SnnOptimConfig cfg;
  snn_optim_config_init (&cfg);
  cfg.lr = 0.1;
  g_assert_cmpfloat_with_epsilon (snn_optim_lr_at (&cfg, 0, 100), 0.1, 1e-12);
  g_assert_cmpfloat_with_epsilon (snn_optim_lr_at (&cfg, 50, 100), 0.05, 1e-12);
  g_assert_cmpfloat_with_epsilon (snn_optim_lr_at (&cfg, 100, 100), 0.0, 1e-12);
  cfg.cosine = FALSE;
  g_assert_cmpfloat (snn_optim_lr_at (&cfg, 50, 100), ==, 0.1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/optim/sgd-momentum-weight-decay", test_sgd);
  g_test_add_func ("/optim/adam", test_adam);
  g_test_add_func ("/optim/cosine", test_cosine);
  return g_test_run ();
}
