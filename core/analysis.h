/* Gradient analysis of one batch (section 4.1 of the SLTT paper): how much
 * of BPTT's dL/du comes through the temporal routes, the sensitivities
 * epsilon[t] = du[t+1]/du[t] (Eq. 8) that carry it, and how close the
 * weight gradients are when those routes are dropped (SLTT, Fig. 3).
 *
 * snn_analyze_batch runs on a scratch copy of the network, so the caller's
 * parameters, running statistics, gradients, LIF settings, hook and memory
 * counters are left exactly as they were. It is cheap enough to run every
 * few iterations on a probe batch from a worker thread (one BPTT and one
 * SLTT pass on the batch). */
#pragma once
#include <glib.h>
#include <stdint.h>
#include "net.h"
#include "npy.h"
#include "train.h"

G_BEGIN_DECLS

typedef struct {
  float tau_override;       /* > 0: every LIF layer runs with this tau */
  gboolean keep_diag;       /* fill SnnLifAnalysis.eps_diag */
  gboolean keep_components; /* fill SnnLifAnalysis.spatial and .temporal */
  gboolean keep_grads;      /* fill SnnAnalysis.grads_bptt and .grads_spatial */
  uint64_t seed;            /* dropout masks, the same for both passes */
} SnnAnalysisOptions;

void snn_analysis_options_init (SnnAnalysisOptions *opt);

/* One LIF layer. Arrays over steps are [T]; span matrices are [T][T] with
 * entry [t][t'] for t <= t': the diagonal is 1 (the empty product) and the
 * entries below it are NaN (no such span). N below is batch * neurons. */
typedef struct {
  int layer;                 /* index in the model */
  int64_t neurons;           /* per sample */
  SnnLifParams lif;          /* as run (tau_override applied) */
  /* dL/du[t] = spatial[t] + temporal[t] (Eqs. 9-10): spatial[t] = ds[t] *
   * sg'(u[t]), temporal[t] = dL/du[t+1] * epsilon[t]. Norms are L2 over
   * batch and neurons; cosine_du is NaN where either part is zero. */
  double *spatial_norm, *temporal_norm, *cosine_du;
  /* max over steps of |spatial + temporal - du| / |du| (L2): the check that
   * the decomposition adds up to what the backend computed */
  double residual;
  /* epsilon[t] per step: mean, largest magnitude (the spectral norm of the
   * diagonal matrix), share of entries with |eps| <= 1e-6 */
  double *eps_mean, *eps_max, *eps_zero_share;
  /* prod_{k=t}^{t'-1} epsilon[k] over spans: mean and largest magnitude */
  double *eps_prod_mean, *eps_prod_max;
  float *eps_diag;           /* [T][N], NULL unless keep_diag */
  float *spatial, *temporal; /* [T][N], NULL unless keep_components */
} SnnLifAnalysis;

/* One linear or conv layer: BPTT's weight gradient against the spatial
 * (SLTT) one. */
typedef struct {
  int layer;
  double cosine;             /* NaN if either gradient is zero */
  double norm_bptt, norm_spatial;
} SnnAffineAnalysis;

typedef struct {
  int T, batch;
  double loss;               /* of the BPTT pass */
  int n_lif;
  SnnLifAnalysis *lif;
  int n_affine;
  SnnAffineAnalysis *affine;
  double cosine_mean;        /* mean of the affine cosines (Fig. 3) */
  SnnNpz *grads_bptt, *grads_spatial;  /* "grad.<layer>.<param>"; NULL unless keep_grads */
} SnnAnalysis;

/* x is host memory, static [B][input] or a sequence [T][B][input]; cfg gives
 * T and the loss (its method is ignored: both BPTT and SLTT are run). opt
 * may be NULL for the defaults. Fails on a NaN/inf loss. */
SnnAnalysis *snn_analyze_batch (SnnNet *net, const SnnTrainConfig *cfg, const float *x, gboolean sequence,
                                int batch, const int32_t *y, const SnnAnalysisOptions *opt, GError **error);
void         snn_analysis_free (SnnAnalysis *a);

/* For analyses repeated during training: an analyzer keeps its scratch
 * network and buffers from one run to the next of the same model, so a
 * run allocates (and faults in) almost nothing. snn_analyzer_run gives what
 * snn_analyze_batch gives, bit for bit. One thread at a time; the analyzer
 * holds a pointer to the network's model and must not outlive it. */
typedef struct _SnnAnalyzer SnnAnalyzer;

SnnAnalyzer *snn_analyzer_new (void);
SnnAnalysis *snn_analyzer_run (SnnAnalyzer *z, SnnNet *net, const SnnTrainConfig *cfg, const float *x,
                               gboolean sequence, int batch, const int32_t *y, const SnnAnalysisOptions *opt,
                               GError **error);
void         snn_analyzer_free (SnnAnalyzer *z);

/* epsilon of Eq. (8) for one neuron at potential u (before reset) and its
 * spike s: soft reset lam * (1 - vth * sg'), hard reset lam * ((1 - s) -
 * u * sg') (Eq. S11); with detach_reset the reset route carries nothing:
 * lam and lam * (1 - s). */
float        snn_lif_epsilon (const SnnLifParams *p, float u);

/* Cosine of two float vectors; NaN if either is zero. */
double       snn_cosine (const float *a, const float *b, int64_t n);

G_END_DECLS
