/* snnwb bench: time per SGD step of each method, against the SGEMM ceiling
 * of the BLAS measured in the same run. */
#include "snnwb.h"
#include "atomic-file.h"
#include "blas-select.h"
#include "experiment.h"
#include "optim.h"
#include "trainer.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  char net[32];
  SnnMethod method;
  gboolean stored;                /* BPTT without recomputing */
  int T, K, batch;
  double median_ms, min_ms, gflops, sgemm_share;
  int64_t held, arena, process_peak, device_peak;  /* device_peak: -1 without device memory */
} BenchRow;

/* Multiply-adds of the GEMMs of one SGD step, times two. */
static double
step_flops (const SnnModel *m, int batch, int T, int bp_steps)
{
  double fwd = 0, bwd = 0;
  gboolean first = TRUE;
  for (int l = 0; l < m->n_layers; l++)
    {
      const SnnLayerSpec *s = &m->layers[l];
      double f = 0;
      if (s->type == SNN_LAYER_LINEAR)
        f = 2.0 * batch * s->in * s->out;
      else if (s->type == SNN_LAYER_CONV)
        f = 2.0 * batch * s->out_shape.d[1] * s->out_shape.d[2] * s->out_ch * s->in_ch * s->k * s->k;
      else
        continue;
      fwd += f * T;
      bwd += f * bp_steps * (first ? 1 : 2); /* the first layer needs no input gradient */
      first = FALSE;
    }
  return fwd + bwd;
}

/* The SGEMM rate of the backend (all its threads) on a square product of
 * size n, in the backend's memory; repeated so that a fast device runs long
 * enough to time. */
static double
sgemm_ceiling (const SnnBackend *be, int n)
{
  size_t bytes = (size_t) n * n * sizeof (float);
  float *h = g_new (float, (size_t) n * n);
  for (size_t i = 0; i < (size_t) n * n; i++)
    h[i] = (float) (i % 13) / 13.0f;
  float *a = be->alloc (bytes), *b = be->alloc (bytes), *c = be->alloc (bytes);
  be->upload (a, h, bytes);
  be->upload (b, h, bytes);
  be->gemm (FALSE, FALSE, n, n, n, 1, a, n, b, n, 0, c, n);
  be->finish ();
  int reps = g_str_equal (be->name, "cpu") ? 1 : 20;
  double best = 0;
  for (int r = 0; r < 5; r++)
    {
      gint64 t0 = g_get_monotonic_time ();
      for (int k = 0; k < reps; k++)
        be->gemm (FALSE, FALSE, n, n, n, 1, a, n, b, n, 0, c, n);
      be->finish ();
      double s = (g_get_monotonic_time () - t0) / 1e6;
      best = MAX (best, reps * 2.0 * n * n * n / s / 1e9);
    }
  be->free (a), be->free (b), be->free (c);
  g_free (h);
  return best;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static gboolean
bench_one (const SnnBackend *be, const char *net_name, SnnMethod method, gboolean stored, int T, int K, int batch,
           int steps, int warmup, double ceiling, BenchRow *row, GError **error)
{
  g_autofree char *path = snn_preset_find (net_name, ".json");
  SnnModel *m = path ? snn_model_load_file (path, error) : snn_model_load_file (net_name, error);
  if (!m)
    return FALSE;
  int64_t dev_now = 0, dev_peak = -1;
  if (be->device_memory)
    be->device_memory (&dev_now, &dev_peak, TRUE);
  SnnNet *net = snn_net_new (m, be);
  SnnOptimConfig oc;
  snn_optim_config_init (&oc);
  oc.lr = 1e-3;
  SnnOptim *opt = snn_optim_new (net, &oc);
  int in = (int) snn_shape_numel (&m->input_shape);
  float *x = g_new (float, (size_t) batch * in);
  int32_t *y = g_new (int32_t, batch);
  SnnRng rng;
  snn_rng_seed (&rng, 1);
  for (int i = 0; i < batch * in; i++)
    x[i] = (float) snn_rng_normal (&rng);
  for (int b = 0; b < batch; b++)
    y[b] = b % m->num_classes;
  SnnTrainConfig cfg;
  snn_train_config_init (&cfg);
  cfg.method = method;
  cfg.T = T;
  cfg.K = K;
  cfg.recompute = !stored;
  double *ms = g_new (double, steps);
  int64_t held = 0;
  for (int i = 0; i < warmup + steps; i++)
    {
      SnnBatchResult r;
      gint64 t0 = g_get_monotonic_time ();
      snn_net_zero_grad (net);
      if (!snn_train_batch (net, &cfg, x, FALSE, batch, y, NULL, 0, &rng, NULL, NULL, NULL, &r, error))
        break;
      snn_optim_step (opt, oc.lr);
      be->finish ();
      if (i >= warmup)
        ms[i - warmup] = (g_get_monotonic_time () - t0) / 1000.0;
      held = MAX (held, r.peak_held_bytes);
    }
  qsort (ms, steps, sizeof *ms, cmp_double);
  memset (row, 0, sizeof *row);
  g_strlcpy (row->net, net_name, sizeof row->net);
  row->method = method;
  row->stored = stored;
  row->T = T;
  row->K = K;
  row->batch = batch;
  row->median_ms = steps % 2 ? ms[steps / 2] : 0.5 * (ms[steps / 2 - 1] + ms[steps / 2]);
  row->min_ms = ms[0];
  row->gflops = step_flops (m, batch, T, method == SNN_METHOD_SLTT_K ? K : T) / (row->median_ms / 1000.0) / 1e9;
  row->sgemm_share = row->gflops / ceiling;
  row->held = held;
  row->arena = snn_net_stats (net)->arena_bytes;
  row->process_peak = snn_process_peak_bytes ();
  row->device_peak = be->device_memory && be->device_memory (&dev_now, &dev_peak, FALSE) ? dev_peak : -1;
  g_free (ms), g_free (x), g_free (y);
  snn_optim_free (opt);
  snn_net_free (net);
  snn_model_free (m);
  return error == NULL || *error == NULL;
}

static int
default_batch (const char *net)
{
  return g_str_has_prefix (net, "vgg") ? 32 : 64;
}

int
snnwb_cmd_bench (int argc, char **argv)
{
  char *nets = NULL, *Ts = NULL, *methods = NULL, *csv = NULL, *backend = NULL;
  int steps = 20, warmup = 3, K = 1, batch = 0;
  gboolean no_ceiling = FALSE;
  GOptionEntry entries[] = {
    SNNWB_BACKEND_OPTION (backend),
    { "net", 0, 0, G_OPTION_ARG_STRING, &nets, "Networks (presets or model files) [mlp,conv-small,vgg-bench]", "LIST" },
    { "T", 0, 0, G_OPTION_ARG_STRING, &Ts, "Time steps [6]", "LIST" },
    { "methods", 0, 0, G_OPTION_ARG_STRING, &methods,
      "Methods [bptt,sltt,sltt_k]; bptt_stored: BPTT storing every activation (no recomputing)", "LIST" },
    { "K", 0, 0, G_OPTION_ARG_INT, &K, "K of sltt_k [1]", "K" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch, "Batch size [64; 32 for vgg]", "B" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &steps, "Timed SGD steps [20]", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "Untimed steps first [3]", "N" },
    { "csv", 0, 0, G_OPTION_ARG_FILENAME, &csv, "Also write the table as CSV", "FILE" },
    { "no-ceiling", 0, 0, G_OPTION_ARG_NONE, &no_ceiling, "Skip the SGEMM ceiling (for timing beside other work)", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- time per SGD step, GFLOP/s and memory");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  if (steps < 1 || warmup < 0 || K < 1)
    {
      fprintf (stderr, "snnwb: --steps and --K must be positive\n");
      return 2;
    }
  if (csv && !snnwb_check_new_file (csv, FALSE, &error))
    return snnwb_fail (error);
  g_auto (GStrv) net_list = g_strsplit (nets ? nets : "mlp,conv-small,vgg-bench", ",", -1);
  g_auto (GStrv) t_list = g_strsplit (Ts ? Ts : "6", ",", -1);
  g_auto (GStrv) m_list = g_strsplit (methods ? methods : "bptt,sltt,sltt_k", ",", -1);
  const SnnBackend *be = snn_backend_get (backend, &error);
  if (!be)
    return snnwb_fail (error);
  g_autofree char *desc = snn_backend_describe (be);
  /* A GPU needs a larger product than a CPU to reach its rate. */
  int sq = g_str_equal (be->name, "cpu") ? 1024 : 4096;
  double ceiling = no_ceiling ? NAN : sgemm_ceiling (be, sq);
  printf ("snnwb bench: %s\nBLAS kernel: %s\nSGEMM %d^3 ceiling: %.1f GFLOP/s\n\n", desc, snnwb_blas_choice (), sq,
          ceiling);
  printf ("%-12s %-11s %3s %5s %10s %10s %9s %7s %12s %9s %12s %11s\n", "net", "method", "T", "batch", "median_ms",
          "min_ms", "GFLOP/s", "%SGEMM", "held_bytes", "arena_MB", "proc_peak_MB", "dev_peak_MB");
  GString *out = g_string_new ("net,method,T,K,batch,median_ms,min_ms,gflops,sgemm_gflops,sgemm_share,held_bytes,"
                               "arena_bytes,process_peak_bytes,device_peak_bytes\n");
  int rc = 0;
  for (int n = 0; net_list[n] && !rc; n++)
    for (int t = 0; t_list[t] && !rc; t++)
      for (int mi = 0; m_list[mi] && !rc; mi++)
        {
          SnnMethod method = SNN_METHOD_BPTT;
          int T = atoi (t_list[t]);
          gboolean stored = g_str_equal (m_list[mi], "bptt_stored");
          if ((!stored && !snn_method_from_name (m_list[mi], &method)) || T < 1 || T > 64)
            {
              fprintf (stderr, "snnwb: bad method '%s' or T '%s'\n", m_list[mi], t_list[t]);
              rc = 2;
              break;
            }
          BenchRow r;
          int B = batch > 0 ? batch : default_batch (net_list[n]);
          if (!bench_one (be, net_list[n], method, stored, T, MIN (K, T), B, steps, warmup, ceiling, &r, &error))
            {
              rc = snnwb_fail (error);
              break;
            }
          g_autofree char *mname = method == SNN_METHOD_SLTT_K ? g_strdup_printf ("sltt_k%d", r.K)
                                   : g_strdup (stored ? "bptt_stored" : snn_method_name (method));
          g_autofree char *dev = r.device_peak < 0 ? g_strdup ("-") : g_strdup_printf ("%.1f", r.device_peak / 1048576.0);
          printf ("%-12s %-11s %3d %5d %10.2f %10.2f %9.1f %6.0f%% %12" G_GINT64_FORMAT " %9.1f %12.1f %11s\n", r.net,
                  mname, r.T, r.batch, r.median_ms, r.min_ms, r.gflops, 100 * r.sgemm_share, r.held,
                  r.arena / 1048576.0, r.process_peak / 1048576.0, dev);
          fflush (stdout);
          g_string_append_printf (out, "%s,%s,%d,%d,%d,%.4f,%.4f,%.3f,%.3f,%.4f,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
                                  ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "\n", r.net, stored ? "bptt_stored" : snn_method_name (method), r.T, r.K, r.batch,
                                  r.median_ms, r.min_ms, r.gflops, ceiling, r.sgemm_share, r.held, r.arena,
                                  r.process_peak, r.device_peak);
        }
  if (!rc && csv && !snn_file_write_atomic (csv, out->str, -1, &error))
    rc = snnwb_fail (error);
  g_string_free (out, TRUE);
  g_free (nets), g_free (Ts), g_free (methods), g_free (csv), g_free (backend);
  return rc;
}
