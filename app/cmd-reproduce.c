/* snnwb reproduce: small-scale versions of the SLTT paper's Fig. 3 (cosine
 * between BPTT's and the spatial gradients), Tab. 1 (BPTT against SLTT),
 * Tab. 2 (SLTT against SLTT-K) and Fig. 4 (accuracy against T and tau).
 * Each writes CSV files, plots and a report.md that checks the paper's
 * claims against the numbers just measured. */
#include "snnwb.h"
#include "atomic-file.h"
#include "analysis.h"
#include "data.h"
#include "snn-error.h"
#include "trainer.h"
#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef SNNWB_HAVE_CAIRO
#include "viz.h"
#endif

typedef struct {
  char *name, *dir;
  gboolean quick;
  GString *report;     /* the body of report.md */
  GString *claims;     /* its "against the paper" list */
  GPtrArray *files;    /* written, relative to dir */
} Repro;

/* ---- output ---- */

static gboolean
write_file (Repro *r, const char *name, const char *text, GError **error)
{
  g_autofree char *path = g_build_filename (r->dir, name, NULL);
  if (!snn_file_write_atomic (path, text, -1, error))
    return FALSE;
  g_ptr_array_add (r->files, g_strdup (name));
  return TRUE;
}

enum { INCONCLUSIVE = -1 };

/* verdict: TRUE (agrees), FALSE (differs) or INCONCLUSIVE. */
static void G_GNUC_PRINTF (3, 4)
claim (Repro *r, int verdict, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  const char *word = verdict == INCONCLUSIVE ? "inconclusive" : verdict ? "agrees" : "differs";
  g_string_append_printf (r->claims, "- **%s**: %s\n", word, text);
}

/* Accuracies compare only when at least one run learned something: two
 * runs at chance level agree about nothing. */
static int
acc_verdict (gboolean agrees, double a, double b, int classes)
{
  if (isnan (a) || isnan (b) || MAX (a, b) < 1.0 / classes + 0.05)
    return INCONCLUSIVE;
  return agrees;
}

static void
csv_num (GString *s, double v)
{
  if (isnan (v))
    g_string_append (s, ",nan");
  else
    g_string_append_printf (s, ",%.6g", v);
}

/* ---- plots ---- */

typedef struct {
  char *label;
  GArray *x, *y;       /* double */
} Series;

static Series *
series_new (const char *fmt, ...)
{
  Series *s = g_new0 (Series, 1);
  va_list ap;
  va_start (ap, fmt);
  s->label = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  s->x = g_array_new (FALSE, FALSE, sizeof (double));
  s->y = g_array_new (FALSE, FALSE, sizeof (double));
  return s;
}

static void
series_add (Series *s, double x, double y)
{
  g_array_append_val (s->x, x);
  g_array_append_val (s->y, y);
}

static void
series_free (gpointer p)
{
  Series *s = p;
  g_free (s->label);
  g_array_unref (s->x);
  g_array_unref (s->y);
  g_free (s);
}

typedef struct {
  const char *title, *xlabel, *ylabel;
  gboolean logx;
} Chart;

#ifdef SNNWB_HAVE_CAIRO
enum { PLOT_W = 720, PLOT_H = 440 };

/* base.png and base.svg, drawn by viz/ like every other chart. */
static gboolean
plot (Repro *r, const char *base, const Chart *c, GPtrArray *series, GError **error)
{
  g_autofree char *png_name = g_strconcat (base, ".png", NULL), *svg_name = g_strconcat (base, ".svg", NULL);
  g_autofree char *png = g_build_filename (r->dir, png_name, NULL), *svg = g_build_filename (r->dir, svg_name, NULL);
  g_autofree VizSeries *vs = g_new0 (VizSeries, MAX (series->len, 1));
  for (guint i = 0; i < series->len; i++)
    {
      Series *s = series->pdata[i];
      vs[i] = (VizSeries) { (const double *) s->x->data, (const double *) s->y->data, (int) s->x->len,
                            s->label, FALSE, TRUE, NULL };
    }
  VizLineChart chart = {
    .series = vs, .n_series = (int) series->len, .title = c->title,
    .x_title = c->xlabel, .y_title = c->ylabel, .log_x = c->logx,
  };
  if (!viz_export (png, PLOT_W, PLOT_H, viz_draw_line_chart, &chart, viz_style_light (), error)
      || !viz_export (svg, PLOT_W, PLOT_H, viz_draw_line_chart, &chart, viz_style_light (), error))
    return FALSE;
  g_ptr_array_add (r->files, g_steal_pointer (&png_name));
  g_ptr_array_add (r->files, g_steal_pointer (&svg_name));
  return TRUE;
}
#else
static gboolean
plot (Repro *r, const char *base, const Chart *c, GPtrArray *series, GError **error)
{
  return TRUE; /* built without Cairo: the report says so */
}
#endif

/* ---- experiments ---- */

static SnnExperiment *
experiment (const char *preset, GError **error)
{
  SnnExperiment *e = snn_experiment_load (preset, error);
  if (!e)
    g_prefix_error (error, "preset %s: ", preset);
  return e;
}

static gboolean G_GNUC_PRINTF (3, 4)
set (SnnExperiment *e, GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *kv = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return snn_experiment_apply_override (e, kv, error);
}

static void
set_lif_tau (SnnLayerSpec *lif, const char *path, gpointer data)
{
  lif->lif.tau = (float) *(const double *) data;
}

/* Every LIF layer, those inside residual blocks too. */
static void
set_tau (SnnExperiment *e, double tau)
{
  snn_model_foreach_lif (e->model, set_lif_tau, &tau);
}

static void
first_tau (SnnLayerSpec *lif, const char *path, gpointer data)
{
  double *tau = data;
  if (isnan (*tau))
    *tau = lif->lif.tau;
}

static double
model_tau (const SnnModel *m)
{
  double tau = NAN;
  snn_model_foreach_lif ((SnnModel *) m, first_tau, &tau);
  return tau;
}

/* The process's peak memory restarts from now, so that each run is
 * measured on its own (Linux: "5" clears VmHWM). */
static void
reset_process_peak (void)
{
  FILE *f = fopen ("/proc/self/clear_refs", "w");
  if (f)
    {
      fputs ("5", f);
      fclose (f);
    }
}

typedef struct {
  gboolean diverged;
  double seconds, ms_per_iter, backward_ms, test_acc, train_acc;
  int64_t peak_held, process_peak;
  int epochs, classes;
} RunResult;

/* Trains e to the end. A diverged run is a result (reported), not an error;
 * only setting up the run can fail. */
static gboolean
train_run (const SnnExperiment *e, RunResult *res, GError **error)
{
  memset (res, 0, sizeof *res);
  res->classes = e->model->num_classes;
  reset_process_peak ();
  SnnTrainer *tr = snn_trainer_new (e, error);
  if (!tr)
    return FALSE;
  while (!snn_trainer_finished (tr))
    {
      SnnIterInfo info;
      g_autoptr (GError) err = NULL;
      if (!snn_trainer_step (tr, &info, &err))
        {
          res->diverged = TRUE;
          break;
        }
      if (!info.epoch_done)
        continue;
      const SnnEpochInfo *ep = snn_trainer_last_epoch (tr);
      res->epochs++;
      res->seconds += ep->seconds;
      res->ms_per_iter += ep->ms_per_iter;
      res->backward_ms += ep->backward_ms;
      res->test_acc = ep->test_acc;
      res->train_acc = ep->train_acc;
      res->peak_held = MAX (res->peak_held, ep->peak_held_bytes);
      res->process_peak = MAX (res->process_peak, ep->process_peak_bytes);
    }
  if (res->epochs)
    {
      res->seconds /= res->epochs;
      res->ms_per_iter /= res->epochs;
      res->backward_ms /= res->epochs;
    }
  if (res->diverged)
    res->test_acc = res->train_acc = NAN;
  snn_trainer_free (tr);
  return TRUE;
}

typedef struct {
  const char *preset, *dataset;
} Setup;

static const Setup setups[] = { { "conv-small", "fashion-mnist" }, { "temporal-mlp", "synthetic" } };

/* Training runs on small subsets. conv-small needs a few hundred
 * iterations to leave chance level, temporal-mlp many epochs of its cheap
 * iterations. */
typedef struct {
  int train_n, test_n, epochs, batch;
} RunSize;

static RunSize
run_size (const Repro *r, int setup)
{
  static const RunSize quick[2] = { { 4096, 512, 1, 32 }, { 2000, 500, 15, 32 } };
  static const RunSize full[2] = { { 20000, 2000, 1, 32 }, { 4000, 1000, 40, 32 } };
  return r->quick ? quick[setup] : full[setup];
}

static gboolean
size_experiment (SnnExperiment *e, int train_n, int test_n, int epochs, int batch, GError **error)
{
  return set (e, error, "train_subset=%d", train_n) && set (e, error, "test_subset=%d", test_n)
         && set (e, error, "epochs=%d", epochs) && set (e, error, "batch_size=%d", batch);
}

static gboolean
size_run (Repro *r, SnnExperiment *e, int setup, GError **error)
{
  RunSize z = run_size (r, setup);
  return size_experiment (e, z.train_n, z.test_n, z.epochs, z.batch, error);
}

/* ---- fig3 ---- */

typedef struct {
  int iters, every, batch, probe;
} Fig3Size;

typedef struct {
  const char *dataset;
  int T;
  double tau;
  GArray *cos;          /* cosine_mean per analysis point */
  Series *series;
} Fig3Run;

/* Temporal against spatial size of dL/du over all LIF layers and steps. */
static double
temporal_ratio (const SnnAnalysis *an)
{
  double s = 0, t = 0;
  for (int i = 0; i < an->n_lif; i++)
    for (int k = 0; k < an->T; k++)
      {
        s += an->lif[i].spatial_norm[k] * an->lif[i].spatial_norm[k];
        t += an->lif[i].temporal_norm[k] * an->lif[i].temporal_norm[k];
      }
  return s > 0 ? sqrt (t / s) : NAN;
}

static gboolean
fig3_point (SnnTrainer *tr, Fig3Run *run, long iter, const float *x, gboolean seq, int B, const int32_t *y,
            GString *csv, GString *layers, GError **error)
{
  SnnExperiment *e = snn_trainer_experiment (tr);
  SnnAnalysis *an = snn_analyze_batch (snn_trainer_net (tr), &e->train, x, seq, B, y, NULL, error);
  if (!an)
    return FALSE;
  g_string_append_printf (csv, "%s,%d,%g,%ld", run->dataset, run->T, run->tau, iter);
  csv_num (csv, an->cosine_mean);
  csv_num (csv, temporal_ratio (an));
  csv_num (csv, an->loss);
  g_string_append_c (csv, '\n');
  for (int i = 0; i < an->n_affine; i++)
    {
      g_string_append_printf (layers, "%s,%d,%g,%ld,%d", run->dataset, run->T, run->tau, iter, an->affine[i].layer);
      csv_num (layers, an->affine[i].cosine);
      g_string_append_c (layers, '\n');
    }
  g_array_append_val (run->cos, an->cosine_mean);
  series_add (run->series, (double) iter, an->cosine_mean);
  snn_analysis_free (an);
  return TRUE;
}

static gboolean
fig3_run (Repro *r, const Setup *su, const Fig3Size *sz, Fig3Run *run, GString *csv, GString *layers,
          GError **error)
{
  SnnExperiment *e = experiment (su->preset, error);
  if (!e)
    return FALSE;
  gboolean ok = set (e, error, "T=%d", run->T) && set (e, error, "method=bptt")
                && size_experiment (e, sz->iters * sz->batch, 32, 1, sz->batch, error);
  set_tau (e, run->tau);
  SnnTrainer *tr = ok ? snn_trainer_new (e, error) : NULL;
  snn_experiment_free (e);
  if (!tr)
    return FALSE;
  float *x;
  int32_t *y;
  gboolean seq;
  snn_trainer_probe_batch (tr, sz->probe, &x, &y, &seq);
  int B = MIN (sz->probe, snn_trainer_train_set (tr)->n);
  for (long it = 0; ok; it++)
    {
      if (it % sz->every == 0 || snn_trainer_finished (tr))
        ok = fig3_point (tr, run, it, x, seq, B, y, csv, layers, error);
      if (!ok || snn_trainer_finished (tr))
        break;
      SnnIterInfo info;
      g_autoptr (GError) err = NULL;
      if (!snn_trainer_step (tr, &info, &err))
        {
          g_string_append_printf (r->report, "- %s, T = %d, tau = %g: training stopped at iteration %ld (%s)\n",
                                  run->dataset, run->T, run->tau, it, err->message);
          break;
        }
    }
  g_free (x);
  g_free (y);
  snn_trainer_free (tr);
  return ok;
}

static double
mean_of (GArray *a)
{
  double s = 0;
  int n = 0;
  for (guint i = 0; i < a->len; i++)
    if (!isnan (g_array_index (a, double, i)))
      s += g_array_index (a, double, i), n++;
  return n ? s / n : NAN;
}

static void
fig3_claims (Repro *r, Fig3Run *runs, int n_runs, const double *taus, int n_tau)
{
  g_string_append (r->report, "\n| dataset | T | tau | mean cosine | last cosine |\n|---|---|---|---|---|\n");
  for (int i = 0; i < n_runs; i++)
    g_string_append_printf (r->report, "| %s | %d | %g | %.4f | %.4f |\n", runs[i].dataset, runs[i].T, runs[i].tau,
                            mean_of (runs[i].cos),
                            runs[i].cos->len ? g_array_index (runs[i].cos, double, runs[i].cos->len - 1) : NAN);
  for (int i = 0; i < n_runs; i += n_tau)
    {
      Fig3Run *g = &runs[i];
      double m0 = mean_of (g[0].cos);
      claim (r, m0 > 0.9, "%s, T = %d: at tau = %g the mean cosine is %.3f (paper: above 0.9)", g->dataset, g->T,
             taus[0], m0);
      gboolean falling = TRUE;
      GString *seq = g_string_new (NULL);
      for (int k = 0; k < n_tau; k++)
        {
          g_string_append_printf (seq, "%s%.3f", k ? ", " : "", mean_of (g[k].cos));
          if (k && !(mean_of (g[k].cos) < mean_of (g[k - 1].cos)))
            falling = FALSE;
        }
      claim (r, falling, "%s, T = %d: mean cosine for tau = %g..%g is %s (paper: falls as tau grows)", g->dataset,
             g->T, taus[0], taus[n_tau - 1], seq->str);
      g_string_free (seq, TRUE);
    }
}

static gboolean
reproduce_fig3 (Repro *r, GError **error)
{
  static const double taus[] = { 1.1, 2.0, 4.0 };
  static const int Ts[] = { 6, 20 };
  Fig3Size sizes[2];
  if (r->quick)
    sizes[0] = (Fig3Size) { 12, 4, 16, 16 }, sizes[1] = (Fig3Size) { 24, 6, 16, 32 };
  else
    sizes[0] = (Fig3Size) { 200, 20, 32, 32 }, sizes[1] = (Fig3Size) { 300, 30, 32, 64 };
  enum { N_RUNS = 2 * 2 * 3 };
  Fig3Run runs[N_RUNS];
  GString *csv = g_string_new ("dataset,T,tau,iteration,cosine_mean,temporal_ratio,loss\n");
  GString *layers = g_string_new ("dataset,T,tau,iteration,layer,cosine\n");
  gboolean ok = TRUE;
  int n = 0;
  g_string_append_printf (r->report,
                          "Training with BPTT; every few iterations the gradients of a fixed probe batch are computed "
                          "by BPTT and by the spatial routes only (SLTT), and their cosine is averaged over the "
                          "linear and conv layers. Iterations: %d (conv-small, batch %d), %d (temporal-mlp, batch %d).\n\n",
                          sizes[0].iters, sizes[0].batch, sizes[1].iters, sizes[1].batch);
  for (int d = 0; d < 2 && ok; d++)
    {
      GPtrArray *plot_series = g_ptr_array_new ();
      for (int t = 0; t < 2 && ok; t++)
        for (int k = 0; k < 3 && ok; k++, n++)
          {
            runs[n] = (Fig3Run) { setups[d].dataset, Ts[t], taus[k], g_array_new (FALSE, FALSE, sizeof (double)),
                                  series_new ("tau %g, T %d", taus[k], Ts[t]) };
            g_ptr_array_add (plot_series, runs[n].series);
            ok = fig3_run (r, &setups[d], &sizes[d], &runs[n], csv, layers, error);
          }
      g_autofree char *base = g_strdup_printf ("fig3-%s", setups[d].dataset);
      g_autofree char *title = g_strdup_printf ("BPTT vs spatial gradients (%s)", setups[d].preset);
      Chart c = { title, "iteration", "cosine similarity", FALSE };
      if (ok)
        ok = plot (r, base, &c, plot_series, error);
      g_ptr_array_free (plot_series, TRUE);
    }
  ok = ok && write_file (r, "fig3.csv", csv->str, error) && write_file (r, "fig3-layers.csv", layers->str, error);
  if (ok)
    fig3_claims (r, runs, n, taus, 3);
  for (int i = 0; i < n; i++)
    {
      g_array_unref (runs[i].cos);
      series_free (runs[i].series);
    }
  g_string_free (csv, TRUE);
  g_string_free (layers, TRUE);
  return ok;
}

/* ---- table1 ---- */

static const int bytes_Ts[] = { 1, 2, 4, 6, 8, 16 };
#define N_BYTES_T G_N_ELEMENTS (bytes_Ts)

/* Bytes held for backward, measured on one batch of random input. */
static gboolean
held_bytes (const SnnModel *m, SnnMethod method, gboolean recompute, int T, int B, int64_t *held, double *ms,
            GError **error)
{
  const SnnBackend *be = snn_backend_get (NULL, error);
  *held = 0, *ms = 0;
  if (!be)
    return FALSE;
  SnnNet *net = snn_net_new (m, be);
  int64_t in = snn_shape_numel (&m->input_shape);
  float *x = g_new (float, (size_t) B * in);
  int32_t *y = g_new (int32_t, B);
  SnnRng rng;
  snn_rng_seed (&rng, 1);
  for (int64_t i = 0; i < (int64_t) B * in; i++)
    x[i] = snn_rng_uniform (&rng);
  for (int b = 0; b < B; b++)
    y[b] = b % m->num_classes;
  SnnTrainConfig cfg;
  snn_train_config_init (&cfg);
  cfg.method = method;
  cfg.T = T;
  cfg.recompute = recompute;
  SnnBatchResult res;
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = snn_train_batch (net, &cfg, x, FALSE, B, y, NULL, 0, &rng, NULL, NULL, NULL, &res, error);
  *ms = (g_get_monotonic_time () - t0) / 1000.0;
  *held = res.peak_held_bytes;
  g_free (x);
  g_free (y);
  snn_net_free (net);
  return ok;
}

/* Largest distance of the points from their least-squares line, relative
 * to the largest value. */
static double
line_misfit (const double *x, const double *y, int n, double *slope)
{
  double sx = 0, sy = 0, sxx = 0, sxy = 0, ymax = 0, worst = 0;
  for (int i = 0; i < n; i++)
    sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i], ymax = MAX (ymax, fabs (y[i]));
  double den = n * sxx - sx * sx;
  *slope = den != 0 ? (n * sxy - sx * sy) / den : 0;
  double icpt = (sy - *slope * sx) / n;
  for (int i = 0; i < n; i++)
    worst = MAX (worst, fabs (y[i] - (icpt + *slope * x[i])));
  return ymax > 0 ? worst / ymax : 0;
}

static gboolean
table1_bytes (Repro *r, GError **error)
{
  int B = r->quick ? 16 : 64;
  GString *csv = g_string_new ("model,method,T,batch,held_bytes,predicted_bytes,ms_per_batch\n");
  GPtrArray *series = g_ptr_array_new_with_free_func (series_free);
  gboolean ok = TRUE;
  for (int d = 0; d < 2 && ok; d++)
    {
      SnnExperiment *e = experiment (setups[d].preset, error);
      if (!e)
        {
          ok = FALSE;
          break;
        }
      /* m = 0: BPTT storing every activation (the paper's), 1: SLTT, 2: BPTT
       * recomputing from spike bits. */
      static const char *names[] = { "bptt", "sltt", "bptt_recompute" };
      double held[3][N_BYTES_T], Tv[N_BYTES_T];
      for (int m = 0; m < 3 && ok; m++)
        {
          SnnMethod method = m == 1 ? SNN_METHOD_SLTT : SNN_METHOD_BPTT;
          Series *s = series_new ("%s, %s", setups[d].preset, m == 2 ? "bptt (recomputed)" : snn_method_name (method));
          g_ptr_array_add (series, s);
          for (guint t = 0; t < N_BYTES_T && ok; t++)
            {
              int64_t h;
              double ms;
              ok = held_bytes (e->model, method, m == 2, bytes_Ts[t], B, &h, &ms, error);
              int64_t pred = snn_model_train_held_bytes (e->model, snn_backend_get (NULL, NULL), B, m == 1 ? 1 : bytes_Ts[t], TRUE,
                                                         m == 2);
              g_string_append_printf (csv, "%s,%s,%d,%d,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%.3f\n",
                                      setups[d].preset, names[m], bytes_Ts[t], B, h, pred, ms);
              held[m][t] = (double) h;
              Tv[t] = bytes_Ts[t];
              series_add (s, bytes_Ts[t], h / 1048576.0);
            }
        }
      if (ok)
        {
          double slope, misfit = line_misfit (Tv, held[0], N_BYTES_T, &slope);
          double lo = held[1][0], hi = held[1][0];
          for (guint t = 0; t < N_BYTES_T; t++)
            lo = MIN (lo, held[1][t]), hi = MAX (hi, held[1][t]);
          claim (r, slope > 0 && misfit < 0.01,
                 "%s: BPTT holds %.0f bytes at T = 1 and %.0f at T = 16, %.0f more per step, within %.2f%% of a "
                 "straight line (paper: linear in T)", setups[d].preset, held[0][0], held[0][N_BYTES_T - 1], slope,
                 100 * misfit);
          claim (r, hi <= lo * 1.001, "%s: SLTT holds %.0f to %.0f bytes for T = 1..16 (paper: constant in T)",
                 setups[d].preset, lo, hi);
          claim (r, fabs (held[1][0] - held[0][0]) <= 0.05 * held[0][0],
                 "%s: SLTT at any T holds %.0f bytes, BPTT at T = 1 holds %.0f (paper: about the same)",
                 setups[d].preset, held[1][N_BYTES_T - 1], held[0][0]);
          double rslope, rmisfit = line_misfit (Tv, held[2], N_BYTES_T, &rslope);
          g_string_append_printf (r->report,
                                  "- %s: BPTT recomputing from spike bits holds %.0f bytes at T = 1 and %.0f at "
                                  "T = 16, %.0f more per step (%.1f%% of the %.0f per step stored; within %.2f%% of a "
                                  "straight line): still linear in T, with a smaller slope, for one more forward pass "
                                  "of work in backward.\n",
                                  setups[d].preset, held[2][0], held[2][N_BYTES_T - 1], rslope,
                                  100 * rslope / MAX (slope, 1), slope, 100 * rmisfit);
        }
      snn_experiment_free (e);
    }
  Chart c = { "Bytes held for backward", "T (time steps)", "MiB", FALSE };
  ok = ok && write_file (r, "table1-bytes.csv", csv->str, error) && plot (r, "table1-bytes", &c, series, error);
  g_string_free (csv, TRUE);
  g_ptr_array_free (series, TRUE);
  return ok;
}

static gboolean
table1_runs (Repro *r, GError **error)
{
  static const int Ts[] = { 6, 8 };
  GString *csv = g_string_new ("dataset,model,method,T,peak_held_bytes,process_peak_bytes,seconds_per_epoch,"
                               "ms_per_iter,test_acc\n");
  g_string_append (r->report, "\n| dataset | method | T | held for backward | process peak | s/epoch | test acc |\n"
                              "|---|---|---|---|---|---|---|\n");
  gboolean ok = TRUE;
  for (int d = 0; d < 2 && ok; d++)
    {
      RunResult res[2];
      for (int m = 0; m < 2 && ok; m++)
        {
          SnnExperiment *e = experiment (setups[d].preset, error);
          ok = e && set (e, error, "T=%d", Ts[d]) && set (e, error, "method=%s", m ? "sltt" : "bptt")
               && set (e, error, "recompute=false") && size_run (r, e, d, error)
               && train_run (e, &res[m], error);
          if (e)
            snn_experiment_free (e);
          if (!ok)
            break;
          const char *mn = m ? "sltt" : "bptt";
          g_string_append_printf (csv, "%s,%s,%s,%d,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT, setups[d].dataset,
                                  setups[d].preset, mn, Ts[d], res[m].peak_held, res[m].process_peak);
          csv_num (csv, res[m].seconds);
          csv_num (csv, res[m].ms_per_iter);
          csv_num (csv, res[m].test_acc);
          g_string_append_c (csv, '\n');
          g_string_append_printf (r->report, "| %s | %s | %d | %.2f MiB | %.1f MiB | %.2f | %.2f%% |\n",
                                  setups[d].dataset, mn, Ts[d], res[m].peak_held / 1048576.0,
                                  res[m].process_peak / 1048576.0, res[m].seconds, 100 * res[m].test_acc);
        }
      if (!ok)
        break;
      double ratio = (double) res[1].peak_held / MAX (res[0].peak_held, 1);
      claim (r, ratio < 1.0 / 3, "%s, T = %d: SLTT holds %.2f of BPTT's bytes for backward (paper: under a third)",
             setups[d].dataset, Ts[d], ratio);
      claim (r, res[1].seconds <= res[0].seconds, "%s, T = %d: an epoch takes %.2f s with SLTT, %.2f s with BPTT "
             "(paper: SLTT is faster)", setups[d].dataset, Ts[d], res[1].seconds, res[0].seconds);
      double gap = 100 * (res[1].test_acc - res[0].test_acc);
      claim (r, acc_verdict (fabs (gap) <= 2.0, res[0].test_acc, res[1].test_acc, res[0].classes),
             "%s, T = %d: test accuracy %.2f%% (SLTT) against %.2f%% (BPTT) (paper: similar)",
             setups[d].dataset, Ts[d], 100 * res[1].test_acc, 100 * res[0].test_acc);
    }
  ok = ok && write_file (r, "table1.csv", csv->str, error);
  g_string_free (csv, TRUE);
  return ok;
}

static gboolean
reproduce_table1 (Repro *r, GError **error)
{
  g_string_append (r->report,
                   "BPTT and SLTT trained on the same experiments; bytes held for backward are the network's own "
                   "count of activations kept for the backward pass, the process peak is VmHWM (reset before each "
                   "run; it includes the dataset). BPTT stores every activation here, as in the paper (and "
                   "PyTorch); the workbench's default BPTT recomputes them from spike bits instead, shown "
                   "separately below. Then one batch at each T measures the bytes held against T.\n");
  return table1_runs (r, error) && table1_bytes (r, error);
}

/* ---- table2 ---- */

static gboolean
reproduce_table2 (Repro *r, GError **error)
{
  static const int Ts[] = { 10, 20 };
  GString *csv = g_string_new ("dataset,model,method,K,T,seconds_per_epoch,ms_per_iter,backward_ms,test_acc\n");
  GPtrArray *series = g_ptr_array_new_with_free_func (series_free);
  g_string_append (r->report, "SLTT against SLTT-K (K = 1, 2, T/5; repeated values run once). As in the paper's "
                              "Algorithm 1, SLTT-K keeps the 1/T of the loss, so its gradient is about K/T of "
                              "SLTT's: with few iterations it has had less to learn from.\n\n"
                              "| dataset | method | T | s/epoch | backward ms/iter | test acc |\n|---|---|---|---|---|---|\n");
  gboolean ok = TRUE;
  for (int d = 0; d < 2 && ok; d++)
    {
      int Ks[4] = { Ts[d], 1, 2, Ts[d] / 5 }, n_k = 3;
      if (Ks[3] != 1 && Ks[3] != 2)
        n_k = 4;
      RunResult base = { 0 };
      Series *s = series_new ("%s (T %d)", setups[d].preset, Ts[d]);
      g_ptr_array_add (series, s);
      for (int k = 0; k < n_k && ok; k++)
        {
          RunResult res;
          SnnExperiment *e = experiment (setups[d].preset, error);
          ok = e && set (e, error, "T=%d", Ts[d]) && set (e, error, "method=%s", k ? "sltt_k" : "sltt")
               && set (e, error, "K=%d", Ks[k])
               && size_run (r, e, d, error)
               && train_run (e, &res, error);
          if (e)
            snn_experiment_free (e);
          if (!ok)
            break;
          g_autofree char *mn = k ? g_strdup_printf ("sltt-%d", Ks[k]) : g_strdup ("sltt");
          g_string_append_printf (csv, "%s,%s,%s,%d,%d", setups[d].dataset, setups[d].preset, mn, Ks[k], Ts[d]);
          csv_num (csv, res.seconds);
          csv_num (csv, res.ms_per_iter);
          csv_num (csv, res.backward_ms);
          csv_num (csv, res.test_acc);
          g_string_append_c (csv, '\n');
          g_string_append_printf (r->report, "| %s | %s | %d | %.2f | %.2f | %.2f%% |\n", setups[d].dataset, mn,
                                  Ts[d], res.seconds, res.backward_ms, 100 * res.test_acc);
          series_add (s, Ks[k], res.seconds);
          if (k == 0)
            {
              base = res;
              continue;
            }
          claim (r, res.seconds < base.seconds, "%s, T = %d: SLTT-%d takes %.2f s per epoch, SLTT %.2f s (paper: "
                 "SLTT-K is faster)", setups[d].dataset, Ts[d], Ks[k], res.seconds, base.seconds);
          double gap = 100 * (res.test_acc - base.test_acc);
          claim (r, acc_verdict (gap >= -2.0, res.test_acc, base.test_acc, res.classes),
                 "%s, T = %d: SLTT-%d reaches %.2f%%, SLTT %.2f%% (paper: competitive, within about "
                 "half a point at full scale)", setups[d].dataset, Ts[d], Ks[k], 100 * res.test_acc,
                 100 * base.test_acc);
        }
    }
  Chart c = { "Time per epoch against K (SLTT at K = T)", "K (steps backpropagated)", "seconds per epoch", FALSE };
  ok = ok && write_file (r, "table2.csv", csv->str, error) && plot (r, "table2-time", &c, series, error);
  g_string_free (csv, TRUE);
  g_ptr_array_free (series, TRUE);
  return ok;
}

/* ---- fig4 ---- */

typedef struct {
  const char *sweep;
  int T;
  double tau;
} Fig4Point;

static gboolean
reproduce_fig4 (Repro *r, GError **error)
{
  static const int Ts_full[] = { 2, 4, 8, 16, 32 }, Ts_quick[] = { 4, 8, 16 };
  static const double taus[] = { 1.1, 2.0, 4.0, 8.0 };
  const int *Ts = r->quick ? Ts_quick : Ts_full;
  int n_T = r->quick ? 3 : 5;
  RunSize z = run_size (r, 1);
  GString *csv = g_string_new ("sweep,method,T,tau,train_acc,test_acc\n");
  GPtrArray *vs_T = g_ptr_array_new_with_free_func (series_free), *vs_tau = g_ptr_array_new_with_free_func (series_free);
  GArray *acc[2][2];   /* [sweep][method] */
  gboolean ok = TRUE;
  for (int sw = 0; sw < 2; sw++)
    for (int m = 0; m < 2; m++)
      {
        acc[sw][m] = g_array_new (FALSE, FALSE, sizeof (double));
        g_ptr_array_add (sw ? vs_tau : vs_T, series_new ("%s", m ? "SLTT" : "BPTT"));
      }
  g_string_append_printf (r->report, "temporal-mlp on the synthetic temporal set, %d training samples, %d epochs; "
                                     "the T sweep keeps the preset's tau, the tau sweep keeps T = 8.\n\n"
                                     "| sweep | method | T | tau | test acc |\n|---|---|---|---|---|\n",
                          z.train_n, z.epochs);
  for (int sw = 0; sw < 2 && ok; sw++)
    for (int i = 0; i < (sw ? (int) G_N_ELEMENTS (taus) : n_T) && ok; i++)
      for (int m = 0; m < 2 && ok; m++)
        {
          SnnExperiment *e = experiment ("temporal-mlp", error);
          RunResult res;
          int T = sw ? 8 : Ts[i];
          ok = e && set (e, error, "T=%d", T) && set (e, error, "method=%s", m ? "sltt" : "bptt")
               && size_run (r, e, 1, error);
          if (ok && sw)
            set_tau (e, taus[i]);
          double tau = e ? model_tau (e->model) : NAN;
          ok = ok && train_run (e, &res, error);
          if (e)
            snn_experiment_free (e);
          if (!ok)
            break;
          g_string_append_printf (csv, "%s,%s,%d,%g", sw ? "tau" : "T", m ? "sltt" : "bptt", T, tau);
          csv_num (csv, res.train_acc);
          csv_num (csv, res.test_acc);
          g_string_append_c (csv, '\n');
          g_string_append_printf (r->report, "| %s | %s | %d | %g | %.2f%% |\n", sw ? "tau" : "T", m ? "sltt" : "bptt",
                                  T, tau, 100 * res.test_acc);
          g_array_append_val (acc[sw][m], res.test_acc);
          series_add ((sw ? vs_tau : vs_T)->pdata[m], sw ? tau : T, 100 * res.test_acc);
        }
  if (ok)
    {
      for (int sw = 0; sw < 2; sw++)
        {
          int n = (int) acc[sw][0]->len;
          double worst = 0, best = 0;
          for (int i = 0; i < n; i++)
            {
              double b = g_array_index (acc[sw][0], double, i), s = g_array_index (acc[sw][1], double, i);
              worst = MIN (worst, s - b);
              best = MAX (best, MAX (s, b));
            }
          claim (r, acc_verdict (worst >= -0.03, best, best, SNN_SYNTHETIC_CLASSES), "%s sweep: SLTT's test accuracy is at most %.2f points below BPTT's (paper: "
                 "similar, or better)", sw ? "tau" : "T", -100 * worst);
        }
      /* The drop is SLTT's accuracy at the largest tau against its best. */
      GArray *a = acc[1][1];
      double top = 0, last = g_array_index (a, double, a->len - 1);
      for (guint i = 0; i < a->len; i++)
        top = MAX (top, g_array_index (a, double, i));
      claim (r, acc_verdict (last < top, top, last, SNN_SYNTHETIC_CLASSES), "tau sweep: SLTT reaches %.2f%% at "
             "tau = %g, its best is %.2f%% (paper: a drop for large tau)", 100 * last,
             taus[G_N_ELEMENTS (taus) - 1], 100 * top);
    }
  Chart ct = { "Accuracy against T (synthetic temporal set)", "T (time steps)", "test accuracy (%)", TRUE };
  Chart cu = { "Accuracy against tau (synthetic temporal set, T = 8)", "tau", "test accuracy (%)", TRUE };
  ok = ok && write_file (r, "fig4.csv", csv->str, error) && plot (r, "fig4-T", &ct, vs_T, error)
       && plot (r, "fig4-tau", &cu, vs_tau, error);
  for (int sw = 0; sw < 2; sw++)
    for (int m = 0; m < 2; m++)
      g_array_unref (acc[sw][m]);
  g_ptr_array_free (vs_T, TRUE);
  g_ptr_array_free (vs_tau, TRUE);
  g_string_free (csv, TRUE);
  return ok;
}

/* ---- driver ---- */

typedef struct {
  const char *name, *title;
  gboolean (*run) (Repro *r, GError **error);
} Target;

static const Target targets[] = {
  { "fig3", "Fig. 3: BPTT against spatial gradients", reproduce_fig3 },
  { "table1", "Tab. 1: BPTT against SLTT", reproduce_table1 },
  { "table2", "Tab. 2: SLTT against SLTT-K", reproduce_table2 },
  { "fig4", "Fig. 4: accuracy against T and tau", reproduce_fig4 },
};

/* The default folder gets the time and, if that is taken, a number: an
 * earlier run is never overwritten. A folder named with --out must be new
 * or empty. */
static char *
output_dir (const char *name, const char *out, GError **error)
{
  if (out)
    {
      GDir *d = g_dir_open (out, 0, NULL);
      gboolean busy = d && g_dir_read_name (d) != NULL;
      if (d)
        g_dir_close (d);
      if (busy || (!d && g_file_test (out, G_FILE_TEST_EXISTS)))
        {
          g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: already exists and is not an empty folder; "
                       "not overwriting it", out);
          return NULL;
        }
      return g_strdup (out);
    }
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y%m%d-%H%M%S");
  char *dir = g_strdup_printf ("reproduce/%s-%s", name, stamp);
  for (int i = 2; g_file_test (dir, G_FILE_TEST_EXISTS); i++)
    {
      g_free (dir);
      dir = g_strdup_printf ("reproduce/%s-%s-%d", name, stamp, i);
    }
  return dir;
}

static gboolean
write_report (Repro *r, const Target *t, double seconds, GError **error)
{
  GString *md = g_string_new (NULL);
  g_string_append_printf (md, "# %s\n\nSmall-scale reproduction (%s run, %.0f s on this machine). The paper's "
                              "experiments use ResNets and VGGs on CIFAR, ImageNet and DVS data; these use the "
                              "conv-small and temporal-mlp presets on small subsets, so only trends compare.\n\n",
                          t->title, r->quick ? "--quick" : "full", seconds);
  g_string_append (md, r->report->str);
  g_string_append (md, "\n## Against the paper\n\n");
  g_string_append (md, r->claims->len ? r->claims->str : "- nothing could be checked (no run finished)\n");
  g_string_append (md, "\n## Files\n\n");
  for (guint i = 0; i < r->files->len; i++)
    g_string_append_printf (md, "- %s\n", (char *) r->files->pdata[i]);
#ifndef SNNWB_HAVE_CAIRO
  g_string_append (md, "- plots: not drawn (snnwb was built without Cairo); the CSV files hold the data\n");
#endif
  gboolean ok = write_file (r, "report.md", md->str, error);
  g_string_free (md, TRUE);
  return ok;
}

static int
run_target (const Target *t, gboolean quick, const char *out)
{
  GError *error = NULL;
  Repro r = { (char *) t->name, output_dir (t->name, out, &error), quick, g_string_new (NULL), g_string_new (NULL),
              g_ptr_array_new_with_free_func (g_free) };
  gboolean ok = r.dir != NULL;
  if (ok && g_mkdir_with_parents (r.dir, 0755) != 0)
    {
      g_set_error (&error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: cannot create the folder: %s", r.dir,
                   g_strerror (errno));
      ok = FALSE;
    }
  gint64 t0 = g_get_monotonic_time ();
  ok = ok && t->run (&r, &error) && write_report (&r, t, (g_get_monotonic_time () - t0) / 1e6, &error);
  if (ok)
    printf ("%s: wrote %s/report.md\n", t->name, r.dir);
  g_free (r.dir);
  g_string_free (r.report, TRUE);
  g_string_free (r.claims, TRUE);
  g_ptr_array_free (r.files, TRUE);
  return ok ? 0 : snnwb_fail (error);
}

int
snnwb_cmd_reproduce (int argc, char **argv)
{
  gboolean quick = FALSE;
  char *out = NULL, *backend = NULL;
  GOptionEntry entries[] = {
    SNNWB_BACKEND_OPTION (backend),
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "Small sizes: minutes, not hours", NULL },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Output folder [reproduce/NAME-<time>]", "DIR" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("fig3|table1|table2|fig4 - the paper's experiments, small");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return snnwb_fail (error);
  /* The default of every experiment and network made below. */
  if (backend && !g_setenv ("SNNWB_BACKEND", backend, TRUE))
    return 1;
  g_free (backend);
  if (!snn_backend_get (NULL, &error))
    return snnwb_fail (error);
  int rc = -1;
  for (guint i = 0; argc == 2 && i < G_N_ELEMENTS (targets); i++)
    if (g_str_equal (argv[1], targets[i].name))
      rc = run_target (&targets[i], quick, out);
  if (rc < 0)
    {
      g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "reproduce needs one of fig3, table1, table2, fig4%s%s", argc >= 2 ? ", not " : "",
                   argc >= 2 ? argv[1] : "");
      rc = snnwb_fail (error);
    }
  g_free (out);
  return rc;
}
