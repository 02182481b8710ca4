/* Optimizers (PyTorch semantics) and the learning-rate schedule. */
#pragma once
#include "net.h"

G_BEGIN_DECLS

typedef enum { SNN_OPTIM_SGD, SNN_OPTIM_ADAM } SnnOptimType;

typedef struct {
  SnnOptimType type;
  double lr, momentum, weight_decay;
  double beta1, beta2, eps;   /* Adam */
  gboolean cosine;            /* cosine annealing to 0 over all iterations */
} SnnOptimConfig;

void snn_optim_config_init (SnnOptimConfig *cfg);

typedef struct SnnOptim SnnOptim;

SnnOptim *snn_optim_new (SnnNet *net, const SnnOptimConfig *cfg);
void      snn_optim_free (SnnOptim *opt);
/* One step with learning rate lr on the gradients held by the net. */
void      snn_optim_step (SnnOptim *opt, double lr);
/* The state (momentum buffers or Adam moments, step count) as npz entries
 * "optim.m.<param>", "optim.v.<param>" and "optim.steps", and back: every
 * entry the optimizer has must be present with the parameter's size. */
void      snn_optim_save_state (SnnOptim *opt, SnnNpz *npz);
gboolean  snn_optim_load_state (SnnOptim *opt, const SnnNpz *npz, const char *source, GError **error);
/* The scheduled learning rate at iteration `iter` of `total`. */
double    snn_optim_lr_at (const SnnOptimConfig *cfg, long iter, long total);

G_END_DECLS
