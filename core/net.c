#include "net.h"
#include <sys/resource.h>
#include <unistd.h>
#include "snn-error.h"
#include <math.h>
#include <string.h>

/* The network runs as a list of nodes in execution order: every layer of
 * the model, the layers inside residual blocks, and one "add" node per block
 * (its spec is the residual layer). A node reads the output of node src
 * (-1: the network input); an add node also reads src2. */
typedef struct {
  SnnLayerSpec *spec;
  char name[40];                  /* "3" or "3.main.1": prefix of its parameters */
  int top;                        /* the top-level layer it belongs to */
  gboolean is_top;                /* it produces that layer's output */
  int src, src2;
  int64_t in_size, out_size;      /* per sample */
  SnnParam *w, *b, *gain;         /* linear, conv */
  SnnParam *bn_w, *bn_b, *rmean, *rvar;
  SnnParam *skip;                 /* residual add: skipinit_gain */
  SnnLifParams lif;
  float *out;                     /* [chunk][batch][out_size] */
  float *u, *v;                   /* lif: u per step, carried v [batch][out] */
  uint64_t *bits;                 /* lif, recomputing: the spikes of every step as bits */
  float *xhat, *invstd;           /* bn_step */
  float *out_seq, *xhat_seq;      /* where out and xhat point for a sequence input */
  float *out_pre, *xhat_pre;      /* recomputing: the prefix's own step, for a static input */
  float *mask;                    /* dropout [batch][out] */
  float *what, *inv_scale, *dwhat;/* weight standardisation */
  float *wt;                      /* linear on spikes: W^T [in][out] for the sparse product */
  float *bn_mean;                 /* bn_step in the prefix: the batch mean */
} Node;

enum { N_GBUF = 8 };

struct SnnNet {
  SnnModel *model;
  const SnnBackend *be;
  int n_params;
  SnnParam *params;
  const SnnLayerSpec **param_spec; /* the layer each parameter belongs to */
  Node *N;
  int nn;
  int *top_node;                  /* top-level layer -> node */
  int64_t in_size, max_size;
  int batch, batch_cap, chunk;
  void *arena;
  float *in_buf, *col, *cm;
  int *fired_idx;                 /* scratch of the sparse spike products */
  float *gbuf[N_GBUF];            /* gradient buffers, handed out during backward */
  gboolean gbuf_used[N_GBUF];
  int n_gbuf;                     /* how many this network can have in use at once */
  float **grad;                   /* per node: the buffer holding dL/doutput, or NULL */
  float *out_host;
  float *mask_host;               /* dropout masks drawn on the host */
  float *loss_scratch;            /* [chunk or T][batch][classes] x 2, for the trainer */
  size_t loss_scratch_floats;
  int cur_steps, step_in_seq, chunk_first;
  gboolean training, kept;
  /* A static input makes every layer before the first LIF layer (the prefix)
   * compute the same thing at every step: it runs once per sequence, and its
   * backward runs once on the gradient summed over steps. */
  int prefix;                     /* node of the first LIF layer, -1: none */
  gboolean input_static;          /* x holds one step for all */
  gboolean static_in, prefix_ready, prefix_grad_ready;
  float *prefix_grad;
  int64_t held_per_seq;
  /* Recomputing (BPTT on a chain): forward keeps only the spikes of each
   * LIF layer as bits; backward rebuilds each segment (the layers after one
   * LIF layer up to the next) from them, replaying the LIF recurrence from
   * v = 0. Segments alternate between two regions of the arena, so the
   * arena holds two segments rather than the whole network. */
  gboolean can_recompute, want_recompute, layout_recompute, packed, replaying;
  int n_seg, *seg_first, *seg_last;
  int *seg_gemm;                  /* a segment that keeps u: its linear or conv node, else -1 */
  SnnNetStats stats;
  SnnLifBackwardHook hook;
  gpointer hook_data;
  SnnLifForwardHook fhook;
  gpointer fhook_data;
  gboolean check_finite;
  SnnNonFinite nonfinite;
  /* Lanes (see snn_net_lanes_begin): networks of a few samples each that share
   * this one's parameters, with gradients of their own. */
  SnnNet *parent;
  SnnNet *lanes[SNN_NET_MAX_LANES];
  int n_lanes;
  int64_t own_arena_bytes;
};

static int64_t
conv_patch (const SnnLayerSpec *s)
{
  return (int64_t) s->in_ch * s->k * s->k;
}

static int64_t
layer_fan_in (const SnnLayerSpec *s)
{
  return s->type == SNN_LAYER_CONV ? conv_patch (s) : s->in;
}

/* The first top-level LIF layer, when only plain layers come before it:
 * those run once per sequence for a static input. -1 otherwise. */
static int
model_prefix (const SnnModel *m)
{
  for (int l = 0; l < m->n_layers; l++)
    {
      if (m->layers[l].type == SNN_LAYER_LIF)
        return l;
      if (m->layers[l].type == SNN_LAYER_RESIDUAL)
        return -1;
    }
  return -1;
}

/* Rebuilding a layer's outputs costs fan_in multiply-adds each and frees
 * the 4 bytes of the membrane potential behind each: above this fan-in a
 * segment keeps its potentials (and bn_step's normalised inputs) instead,
 * and backward rebuilds only the cheap layers before its linear or conv
 * layer, whose input that layer's weight gradient needs. */
#define RECOMPUTE_MAX_FAN_IN 256

/* For the segment of top-level layers first..last (ending with a LIF layer,
 * not the first segment): the index of its one linear or conv layer when it
 * keeps u, that layer followed only by bn_step layers; -1 otherwise. */
static int
segment_kept_gemm (const SnnLayerSpec *layers, int first, int last)
{
  if (first == 0 || layers[last].type != SNN_LAYER_LIF)
    return -1;
  int g = -1;
  for (int l = first; l < last; l++)
    {
      SnnLayerType t = layers[l].type;
      if (t == SNN_LAYER_LINEAR || t == SNN_LAYER_CONV)
        {
          if (g >= 0)
            return -1;
          g = l;
        }
      else if (g >= 0 && t != SNN_LAYER_BN_STEP)
        return -1;
    }
  return g >= 0 && layer_fan_in (&layers[g]) > RECOMPUTE_MAX_FAN_IN ? g : -1;
}

/* ---- construction ---- */

static int
list_depth (const SnnLayerSpec *layers, int n)
{
  int depth = 0;
  for (int i = 0; i < n; i++)
    if (layers[i].block)
      {
        const SnnBlock *b = layers[i].block;
        int d = MAX (list_depth (b->pre.layers, b->pre.n), list_depth (b->main.layers, b->main.n));
        depth = MAX (depth, 1 + MAX (d, list_depth (b->shortcut.layers, b->shortcut.n)));
      }
  return depth;
}

static int add_list_nodes (SnnNet *net, SnnLayerSpec *layers, int n, const char *prefix, int top, int src);

static int
new_node (SnnNet *net, SnnLayerSpec *spec, const char *name, int top, int src)
{
  net->N = g_renew (Node, net->N, net->nn + 1);
  Node *r = &net->N[net->nn];
  memset (r, 0, sizeof *r);
  r->spec = spec;
  g_strlcpy (r->name, name, sizeof r->name);
  r->top = top;
  r->src = src;
  r->src2 = -1;
  r->in_size = snn_shape_numel (&spec->in_shape);
  r->out_size = snn_shape_numel (&spec->out_shape);
  r->lif = spec->lif;
  return net->nn++;
}

static int
add_block_nodes (SnnNet *net, SnnLayerSpec *spec, const char *name, int top, int src)
{
  SnnBlock *b = spec->block;
  g_autofree char *pre = g_strconcat (name, ".pre", NULL);
  g_autofree char *main = g_strconcat (name, ".main", NULL);
  g_autofree char *shortcut = g_strconcat (name, ".shortcut", NULL);
  int p = add_list_nodes (net, b->pre.layers, b->pre.n, pre, top, src);
  int m = add_list_nodes (net, b->main.layers, b->main.n, main, top, p);
  int s = add_list_nodes (net, b->shortcut.layers, b->shortcut.n, shortcut, top, b->shortcut_from_pre ? p : src);
  int add = new_node (net, spec, name, top, m);
  net->N[add].src2 = s;
  return add;
}

static int
add_list_nodes (SnnNet *net, SnnLayerSpec *layers, int n, const char *prefix, int top, int src)
{
  for (int i = 0; i < n; i++)
    {
      g_autofree char *name = prefix ? g_strdup_printf ("%s.%d", prefix, i) : g_strdup_printf ("%d", i);
      int t = prefix ? top : i;
      if (layers[i].type == SNN_LAYER_RESIDUAL)
        src = add_block_nodes (net, &layers[i], name, t, src);
      else
        src = new_node (net, &layers[i], name, t, src);
      if (!prefix)
        {
          net->N[src].is_top = TRUE;
          net->top_node[i] = src;
        }
    }
  return src;
}

static SnnParam *
node_param (SnnNet *net, const Node *r, const char *want)
{
  g_autofree char *full = g_strdup_printf ("%s.%s", r->name, want);
  return snn_net_find_param (net, full);
}

static void
create_params (SnnNet *net)
{
  int cap = 0;
  for (int i = 0; i < net->nn; i++)
    {
      SnnParamInfo info[6];
      int n = snn_layer_params (net->N[i].spec, info);
      net->params = g_renew (SnnParam, net->params, cap + n + 1);
      net->param_spec = g_renew (const SnnLayerSpec *, net->param_spec, cap + n + 1);
      for (int k = 0; k < n; k++)
        {
          SnnParam *p = &net->params[cap];
          memset (p, 0, sizeof *p);
          g_snprintf (p->name, sizeof p->name, "%s.%s", net->N[i].name, info[k].name);
          p->layer = net->N[i].top;
          p->info = info[k];
          /* A lane reads its parent's parameters (same model, same order). */
          p->data = net->parent ? net->parent->params[cap].data : net->be->alloc (info[k].numel * sizeof (float));
          p->grad = info[k].trainable ? net->be->alloc (info[k].numel * sizeof (float)) : NULL;
          net->param_spec[cap++] = net->N[i].spec;
          net->stats.param_bytes += info[k].numel * sizeof (float) * ((info[k].trainable ? 1 : 0) + !net->parent);
        }
    }
  net->n_params = cap;
}

/* Whether a node's input is a LIF layer's spikes (through flatten). */
static gboolean
reads_spikes (const SnnNet *net, const Node *r)
{
  int src = r->src;
  while (src >= 0 && net->N[src].spec->type == SNN_LAYER_FLATTEN)
    src = net->N[src].src;
  return src >= 0 && net->N[src].spec->type == SNN_LAYER_LIF;
}

static void
bind_params (SnnNet *net, Node *r)
{
  const SnnLayerSpec *s = r->spec;
  gboolean bn = s->type == SNN_LAYER_BN_STEP;
  gboolean affine = s->type == SNN_LAYER_LINEAR || s->type == SNN_LAYER_CONV;
  r->w = affine ? node_param (net, r, "weight") : NULL;
  r->b = affine ? node_param (net, r, "bias") : NULL;
  r->gain = affine ? node_param (net, r, "gain") : NULL;
  r->bn_w = bn ? node_param (net, r, "weight") : NULL;
  r->bn_b = bn ? node_param (net, r, "bias") : NULL;
  r->rmean = bn ? node_param (net, r, "running_mean") : NULL;
  r->rvar = bn ? node_param (net, r, "running_var") : NULL;
  r->skip = s->type == SNN_LAYER_RESIDUAL ? node_param (net, r, "skipinit_gain") : NULL;
  if (r->gain)
    {
      int64_t n = r->w->info.numel, rows = r->w->info.shape[0];
      r->what = net->be->alloc (n * sizeof (float));
      r->dwhat = net->be->alloc (n * sizeof (float));
      r->inv_scale = net->be->alloc (rows * sizeof (float));
    }
  if (s->type == SNN_LAYER_LINEAR && reads_spikes (net, r))
    r->wt = net->be->alloc ((r->w->info.numel + SNN_SPIKE_SLACK) * sizeof (float));
}

/* Segment k ends with the k-th LIF layer; a last one holds the layers after
 * the last LIF layer. Only chains are cut (no residual blocks). */
static void
find_segments (SnnNet *net)
{
  net->can_recompute = snn_model_can_recompute (net->model);
  net->seg_first = g_new (int, net->nn + 1);
  net->seg_last = g_new (int, net->nn + 1);
  net->seg_gemm = g_new (int, net->nn + 1);
  int k = 0, first = 0;
  for (int i = 0; i < net->nn; i++)
    {
      if (net->N[i].spec->type == SNN_LAYER_LIF)
        {
          net->seg_first[k] = first;
          net->seg_last[k++] = i;
          first = i + 1;
        }
    }
  if (first < net->nn)
    {
      net->seg_first[k] = first;
      net->seg_last[k++] = net->nn - 1;
    }
  net->n_seg = k;
  /* Chains only: node i is top-level layer i. */
  for (k = 0; k < net->n_seg; k++)
    net->seg_gemm[k] = net->can_recompute ? segment_kept_gemm (net->model->layers, net->seg_first[k], net->seg_last[k]) : -1;
}

/* A net with its parameters allocated but not initialised (a lane of
 * parent: sharing its parameters). */
static SnnNet *
net_new_uninit (const SnnModel *model, const SnnBackend *backend, SnnNet *parent)
{
  SnnNet *net = g_new0 (SnnNet, 1);
  net->parent = parent;
  net->model = snn_model_copy (model);
  net->be = backend;
  net->top_node = g_new0 (int, model->n_layers);
  net->in_size = snn_shape_numel (&model->input_shape);
  net->max_size = net->in_size;
  add_list_nodes (net, net->model->layers, net->model->n_layers, NULL, 0, -1);
  create_params (net);
  for (int i = 0; i < net->nn; i++)
    {
      bind_params (net, &net->N[i]);
      net->max_size = MAX (net->max_size, net->N[i].out_size);
    }
  int p = model_prefix (model);
  net->prefix = p >= 0 ? net->top_node[p] : -1;
  find_segments (net);
  /* A chain needs a gradient in and one out, and a spare for the prefix;
   * each level of residual nesting keeps two more waiting at its fork. */
  net->n_gbuf = MIN (N_GBUF, 3 + 2 * list_depth (net->model->layers, net->model->n_layers));
  return net;
}

SnnNet *
snn_net_new (const SnnModel *model, const SnnBackend *backend)
{
  SnnNet *net = net_new_uninit (model, backend, NULL);
  snn_net_init_default (net, 0);
  return net;
}

static void bind_buffers (SnnNet *net);

void
snn_net_set_static_input (SnnNet *net, gboolean is_static)
{
  net->input_static = is_static;
  net->static_in = is_static && net->prefix >= 0;
  if (net->arena)
    bind_buffers (net);
}

static gboolean
in_prefix (const SnnNet *net, int i)
{
  return net->static_in && i < net->prefix;
}

static void
free_arena (SnnNet *net)
{
  if (net->arena)
    net->be->free (net->arena);
  net->arena = NULL;
  g_clear_pointer (&net->out_host, g_free);
  g_clear_pointer (&net->mask_host, g_free);
}

void
snn_net_free (SnnNet *net)
{
  if (!net)
    return;
  for (int k = 0; k < net->n_lanes; k++)
    snn_net_free (net->lanes[k]);
  free_arena (net);
  for (int i = 0; i < net->n_params; i++)
    {
      if (!net->parent)
        net->be->free (net->params[i].data);
      if (net->params[i].grad)
        net->be->free (net->params[i].grad);
    }
  for (int i = 0; i < net->nn; i++)
    {
      if (net->N[i].what)
        {
          net->be->free (net->N[i].what);
          net->be->free (net->N[i].dwhat);
          net->be->free (net->N[i].inv_scale);
        }
      if (net->N[i].wt)
        net->be->free (net->N[i].wt);
    }
  g_free (net->params);
  g_free (net->param_spec);
  g_free (net->loss_scratch);
  g_free (net->grad);
  g_free (net->N);
  g_free (net->seg_first);
  g_free (net->seg_last);
  g_free (net->seg_gemm);
  g_free (net->top_node);
  snn_model_free (net->model);
  g_free (net);
}

const SnnModel *snn_net_model (const SnnNet *net) { return net->model; }
const SnnBackend *snn_net_backend (const SnnNet *net) { return net->be; }
int snn_net_n_params (const SnnNet *net) { return net->n_params; }
SnnParam *snn_net_param (SnnNet *net, int i) { return &net->params[i]; }
int snn_net_batch (const SnnNet *net) { return net->batch; }
const SnnNetStats *snn_net_stats (const SnnNet *net) { return &net->stats; }
int64_t snn_net_layer_size (const SnnNet *net, int layer) { return net->N[net->top_node[layer]].out_size; }
SnnLifParams *snn_net_lif_params (SnnNet *net, int layer) { return &net->N[net->top_node[layer]].lif; }

float *
snn_net_host_scratch (SnnNet *net, size_t floats)
{
  if (floats > net->loss_scratch_floats)
    {
      g_free (net->loss_scratch);
      net->loss_scratch = g_new (float, floats);
      net->loss_scratch_floats = floats;
    }
  return net->loss_scratch;
}

int
snn_net_foreach_lif (SnnNet *net, SnnNetLifFunc fn, gpointer user_data)
{
  int n = 0;
  for (int i = 0; i < net->nn; i++)
    if (net->N[i].spec->type == SNN_LAYER_LIF)
      {
        if (fn)
          fn (net->N[i].name, &net->N[i].lif, user_data);
        n++;
      }
  return n;
}

void
snn_net_set_tau (SnnNet *net, float tau)
{
  for (int i = 0; i < net->nn; i++)
    if (net->N[i].spec->type == SNN_LAYER_LIF)
      net->N[i].lif.tau = tau;
}

void
snn_net_set_lif_hook (SnnNet *net, SnnLifBackwardHook hook, gpointer user_data)
{
  net->hook = hook;
  net->hook_data = user_data;
}

void
snn_net_set_lif_forward_hook (SnnNet *net, SnnLifForwardHook hook, gpointer user_data)
{
  net->fhook = hook;
  net->fhook_data = user_data;
}

void
snn_net_set_check_finite (SnnNet *net, gboolean on)
{
  net->check_finite = on;
  memset (&net->nonfinite, 0, sizeof net->nonfinite);
}

const SnnNonFinite *
snn_net_first_nonfinite (const SnnNet *net)
{
  return &net->nonfinite;
}

/* Records the first non-finite value of buf, [steps][batch][size] in
 * backend memory, as node i's at step first + t. */
static void
check_finite (SnnNet *net, int i, const float *buf, int first, int steps, int64_t size, gboolean backward)
{
  if (!net->check_finite || net->nonfinite.found || !buf)
    return;
  int64_t per_step = (int64_t) net->batch * size, n = per_step * steps;
  float *h = g_new (float, n);
  net->be->download (h, buf, n * sizeof (float));
  for (int64_t k = 0; k < n; k++)
    if (!isfinite (h[k]))
      {
        SnnNonFinite *nf = &net->nonfinite;
        nf->found = TRUE;
        nf->backward = backward;
        g_strlcpy (nf->node, net->N[i].name, sizeof nf->node);
        nf->type = snn_layer_type_name (net->N[i].spec->type);
        nf->step = first + (int) (k / per_step);
        nf->value = h[k];
        break;
      }
  g_free (h);
}

SnnParam *
snn_net_find_param (SnnNet *net, const char *name)
{
  for (int i = 0; i < net->n_params; i++)
    if (g_strcmp0 (net->params[i].name, name) == 0)
      return &net->params[i];
  return NULL;
}

void
snn_net_reset_stats (SnnNet *net)
{
  net->stats.peak_held_bytes = net->stats.held_bytes;
  net->stats.forward_ms = net->stats.backward_ms = 0;
}

/* ---- lanes ---- */

/* Whether the model's samples train independently of each other (no batch
 * statistics, no dropout masks drawn for the whole batch) and a lane would
 * pay: a convolution's GEMMs stay large in a lane of a few samples (their
 * width is samples x pixels), a linear layer's would not. */
static gboolean
model_splits (const SnnLayerSpec *layers, int n, gboolean *conv)
{
  for (int l = 0; l < n; l++)
    {
      const SnnLayerSpec *s = &layers[l];
      if (s->type == SNN_LAYER_BN_STEP || s->type == SNN_LAYER_DROPOUT)
        return FALSE;
      *conv |= s->type == SNN_LAYER_CONV;
      const SnnBlock *b = s->block;
      if (b && !(model_splits (b->pre.layers, b->pre.n, conv) && model_splits (b->main.layers, b->main.n, conv)
                 && model_splits (b->shortcut.layers, b->shortcut.n, conv)))
        return FALSE;
    }
  return TRUE;
}

int
snn_model_lanes (const SnnModel *model, const SnnBackend *be, int batch)
{
  gboolean conv = FALSE;
  if (be->lane_samples <= 0 || !model_splits (model->layers, model->n_layers, &conv) || !conv)
    return 1;
  return CLAMP (batch / be->lane_samples, 1, SNN_NET_MAX_LANES);
}

int
snn_net_lanes (const SnnNet *net, int batch)
{
  /* Hooks and the non-finite scan look at the whole batch in one network. */
  if (net->parent || net->hook || net->check_finite)
    return 1;
  return snn_model_lanes (net->model, net->be, batch);
}

void
snn_net_lanes_begin (SnnNet *net, int lanes)
{
  g_return_if_fail (lanes >= 1 && lanes <= SNN_NET_MAX_LANES && !net->parent);
  while (net->n_lanes < lanes)
    {
      SnnNet *lane = net_new_uninit (net->model, net->be, net);
      net->stats.param_bytes += lane->stats.param_bytes;
      net->lanes[net->n_lanes++] = lane;
    }
  /* The run-time LIF parameters (tau set for an analysis) follow the parent's. */
  for (int k = 0; k < lanes; k++)
    for (int i = 0; i < net->nn; i++)
      net->lanes[k]->N[i].lif = net->N[i].lif;
}

SnnNet *
snn_net_lane (SnnNet *net, int k)
{
  g_return_val_if_fail (k >= 0 && k < net->n_lanes, NULL);
  return net->lanes[k];
}

/* The network's own arena and its lanes'. */
static int64_t
arena_with_lanes (const SnnNet *net)
{
  int64_t bytes = net->own_arena_bytes;
  for (int k = 0; k < net->n_lanes; k++)
    bytes += net->lanes[k]->stats.arena_bytes;
  return bytes;
}

void
snn_net_lanes_finish (SnnNet *net, int lanes, gboolean grads)
{
  /* Added in lane order, whichever thread ran which lane. */
  for (int i = 0; grads && i < net->n_params; i++)
    if (net->params[i].grad)
      for (int k = 0; k < lanes; k++)
        net->be->axpy (net->params[i].info.numel, 1.0f, net->lanes[k]->params[i].grad, net->params[i].grad);
  int64_t held = 0, peak = 0;
  for (int k = 0; k < lanes; k++)
    held += net->lanes[k]->stats.held_bytes, peak += net->lanes[k]->stats.peak_held_bytes;
  net->stats.held_bytes = held;
  net->stats.peak_held_bytes = MAX (net->stats.peak_held_bytes, peak);
  net->stats.arena_bytes = arena_with_lanes (net);
}

/* ---- parameters in and out ---- */

void
snn_net_init_default (SnnNet *net, uint64_t seed)
{
  SnnRng rng;
  snn_rng_seed (&rng, seed);
  for (int i = 0; i < net->n_params; i++)
    {
      SnnParam *p = &net->params[i];
      const SnnLayerSpec *s = net->param_spec[i];
      float *h = g_new (float, p->info.numel);
      const char *n = p->info.name;
      gboolean affine = s->type == SNN_LAYER_LINEAR || s->type == SNN_LAYER_CONV;
      float bound = affine ? (float) (1.0 / sqrt ((double) layer_fan_in (s))) : 0.0f;
      for (int64_t j = 0; j < p->info.numel; j++)
        {
          if (affine && (g_str_equal (n, "weight") || g_str_equal (n, "bias")))
            h[j] = snn_rng_uniform_range (&rng, -bound, bound);
          else if (g_str_equal (n, "running_mean") || g_str_equal (n, "bias") || g_str_equal (n, "skipinit_gain"))
            h[j] = 0.0f;
          else
            h[j] = 1.0f; /* gain, BN weight, running_var */
        }
      net->be->upload (p->data, h, p->info.numel * sizeof (float));
      g_free (h);
    }
}

gboolean
snn_net_set_from_npz (SnnNet *net, const SnnNpz *npz, const char *source, GError **error)
{
  for (guint i = 0; i < snn_npz_count (npz); i++)
    {
      const char *name = snn_npz_name (npz, i);
      if (!snn_net_find_param (net, name) && !g_str_has_suffix (name, ".num_batches_tracked"))
        {
          g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_SHAPE,
                       "%s: entry '%s' is not a parameter of this model", source, name);
          return FALSE;
        }
    }
  for (int i = 0; i < net->n_params; i++)
    {
      SnnParam *p = &net->params[i];
      SnnArray *a = snn_npz_get (npz, p->name);
      if (!a)
        {
          g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_MISSING, "%s: parameter '%s' is missing", source, p->name);
          return FALSE;
        }
      gboolean same = a->ndim == p->info.ndim;
      for (int d = 0; same && d < a->ndim; d++)
        same = a->shape[d] == p->info.shape[d];
      if (!same)
        {
          g_autofree char *got = snn_array_shape_string (a);
          GString *want = g_string_new ("(");
          for (int d = 0; d < p->info.ndim; d++)
            g_string_append_printf (want, d ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, p->info.shape[d]);
          g_string_append (want, p->info.ndim == 1 ? ",)" : ")");
          g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_SHAPE, "%s: parameter '%s' has shape %s, the model needs %s",
                       source, p->name, got, want->str);
          g_string_free (want, TRUE);
          return FALSE;
        }
      SnnArray *f = snn_array_to_f32 (a);
      const float *v = f->data;
      for (int64_t j = 0; j < p->info.numel; j++)
        if (!isfinite (v[j]))
          {
            g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_NONFINITE, "%s: parameter '%s' holds a NaN or infinity at index %" G_GINT64_FORMAT,
                         source, p->name, j);
            snn_array_free (f);
            return FALSE;
          }
      net->be->upload (p->data, f->data, p->info.numel * sizeof (float));
      snn_array_free (f);
    }
  return TRUE;
}

gboolean
snn_net_load_npz (SnnNet *net, const char *path, GError **error)
{
  SnnNpz *npz = snn_npz_load (path, error);
  if (!npz)
    return FALSE;
  gboolean ok = snn_net_set_from_npz (net, npz, path, error);
  snn_npz_free (npz);
  return ok;
}

SnnNpz *
snn_net_to_npz (SnnNet *net, gboolean grads)
{
  SnnNpz *npz = snn_npz_new ();
  for (int i = 0; i < net->n_params; i++)
    {
      SnnParam *p = &net->params[i];
      if (grads && !p->grad)
        continue;
      SnnArray *a = snn_array_new (SNN_DTYPE_F32, p->info.ndim, p->info.shape);
      net->be->download (a->data, grads ? p->grad : p->data, p->info.numel * sizeof (float));
      g_autofree char *name = grads ? g_strdup_printf ("grad.%s", p->name) : g_strdup (p->name);
      snn_npz_add (npz, name, a);
    }
  return npz;
}

gboolean
snn_net_save_npz (SnnNet *net, const char *path, GError **error)
{
  SnnNpz *npz = snn_net_to_npz (net, FALSE);
  gboolean ok = snn_npz_save (path, npz, error);
  snn_npz_free (npz);
  return ok;
}

void
snn_net_zero_grad (SnnNet *net)
{
  for (int i = 0; i < net->n_params; i++)
    if (net->params[i].grad)
      net->be->zero (net->params[i].grad, net->params[i].info.numel * sizeof (float));
}

/* ---- bytes held for backward ---- */

static void
layer_held (const SnnLayerSpec *s, int batch, int64_t *per_step, int64_t *per_seq)
{
  int64_t in = snn_shape_numel (&s->in_shape), out = snn_shape_numel (&s->out_shape);
  *per_step = *per_seq = 0;
  switch (s->type)
    {
    case SNN_LAYER_LINEAR:
    case SNN_LAYER_CONV:
      *per_step = in * batch * 4;   /* the input, for the weight gradient */
      if (s->ws)
        {
          int64_t rows = s->type == SNN_LAYER_CONV ? s->out_ch : s->out;
          *per_seq = (rows * layer_fan_in (s) + rows) * 4;
        }
      break;
    case SNN_LAYER_BN_STEP:
      *per_step = out * batch * 4 + (int64_t) s->num_features * 4; /* xhat, 1/std */
      break;
    case SNN_LAYER_LIF:
      *per_step = out * batch * 4;  /* u, for the surrogate and the reset */
      break;
    case SNN_LAYER_DROPOUT:
      *per_seq = out * batch * 4;   /* the mask */
      break;
    case SNN_LAYER_RESIDUAL:
      if (s->block->skipinit)
        *per_step = out * batch * 4; /* the main path's output, for the gain */
      break;
    default:
      break;
    }
}

/* Sums what a list of layers (and the blocks inside it) holds. */
static void
list_held (const SnnLayerSpec *layers, int n, int batch, int steps, int prefix, int64_t *total)
{
  for (int l = 0; l < n; l++)
    {
      int64_t ps, pq;
      layer_held (&layers[l], batch, &ps, &pq);
      *total += ps * (l < prefix ? 1 : steps) + pq;
      const SnnBlock *b = layers[l].block;
      if (b)
        {
          list_held (b->pre.layers, b->pre.n, batch, steps, 0, total);
          list_held (b->main.layers, b->main.n, batch, steps, 0, total);
          list_held (b->shortcut.layers, b->shortcut.n, batch, steps, 0, total);
        }
    }
}

gboolean
snn_model_can_recompute (const SnnModel *model)
{
  gboolean lif = FALSE;
  for (int l = 0; l < model->n_layers; l++)
    {
      if (model->layers[l].type == SNN_LAYER_RESIDUAL)
        return FALSE;
      lif = lif || model->layers[l].type == SNN_LAYER_LIF;
    }
  return lif;
}

/* Recomputing, backward needs: the input (every step of a sequence, one
 * for a static input), the spike bits of each LIF layer, what is drawn once
 * per sequence (dropout masks, standardised weights), for a static input
 * what the prefix computed once (it is not recomputed), and what segments
 * of a large fan-in keep (see RECOMPUTE_MAX_FAN_IN). */
static int64_t
chain_held_recompute (const SnnModel *model, int batch, int steps, gboolean static_input)
{
  int prefix = static_input ? model_prefix (model) : -1;
  int64_t in = snn_shape_numel (&model->input_shape);
  int64_t total = (prefix >= 0 ? 1 : steps) * batch * in * 4;
  for (int l = 0, first = 0; l < model->n_layers; l++)
    {
      if (model->layers[l].type != SNN_LAYER_LIF)
        continue;
      int g = segment_kept_gemm (model->layers, first, l);
      for (int j = g + 1; g >= 0 && j <= l; j++)
        {
          const SnnLayerSpec *s = &model->layers[j];
          total += steps * batch * snn_shape_numel (&s->out_shape) * 4; /* u or xhat */
          if (s->type == SNN_LAYER_BN_STEP)
            total += steps * (int64_t) s->num_features * 4;
        }
      first = l + 1;
    }
  for (int l = 0; l < model->n_layers; l++)
    {
      const SnnLayerSpec *s = &model->layers[l];
      int64_t ps, pq, out = snn_shape_numel (&s->out_shape);
      layer_held (s, batch, &ps, &pq);
      total += pq;
      if (l < prefix && s->type != SNN_LAYER_FLATTEN)
        total += batch * out * 4;
      if (l < prefix && s->type == SNN_LAYER_BN_STEP)
        total += batch * out * 4 + (int64_t) s->num_features * 4;
      if (s->type == SNN_LAYER_LIF)
        total += steps * snn_spike_words ((int64_t) batch * out) * 8;
    }
  return total;
}

int64_t
snn_model_held_bytes_full (const SnnModel *model, int batch, int steps, gboolean static_input, gboolean recompute)
{
  if (recompute && snn_model_can_recompute (model))
    return chain_held_recompute (model, batch, steps, static_input);
  int64_t total = 0;
  int prefix = static_input ? model_prefix (model) : -1;
  list_held (model->layers, model->n_layers, batch, steps, prefix, &total);
  return total;
}

int64_t
snn_model_held_bytes (const SnnModel *model, int batch, int T, gboolean bptt)
{
  return snn_model_held_bytes_full (model, batch, bptt ? T : 1, TRUE, bptt);
}

static int64_t
held_per_step (SnnNet *net)
{
  int64_t total = 0;
  for (int i = 0; i < net->nn; i++)
    {
      int64_t ps, pq;
      layer_held (net->N[i].spec, net->batch, &ps, &pq);
      if (!in_prefix (net, i))
        total += ps;
    }
  return total;
}

static void
set_held (SnnNet *net, int64_t bytes)
{
  net->stats.held_bytes = bytes;
  net->stats.peak_held_bytes = MAX (net->stats.peak_held_bytes, bytes);
}

/* ---- arena ---- */

typedef struct {
  size_t offset;
  gboolean dry;
  char *base;
} Carver;

static float *
carve (Carver *c, int64_t floats)
{
  size_t bytes = ((size_t) floats * sizeof (float) + 63) & ~(size_t) 63;
  float *p = c->dry ? NULL : (float *) (c->base + c->offset);
  c->offset += bytes;
  return p;
}

/* What a node keeps for the whole sequence. */
static void
carve_state (SnnNet *net, Node *r, Carver *c)
{
  const SnnLayerSpec *s = r->spec;
  if (s->type == SNN_LAYER_LIF)
    {
      r->v = carve (c, (int64_t) net->batch * r->out_size);
      int64_t words = net->layout_recompute ? net->chunk * snn_spike_words ((int64_t) net->batch * r->out_size) : 0;
      r->bits = (uint64_t *) carve (c, 2 * words);
    }
  if (s->type == SNN_LAYER_BN_STEP)
    {
      r->invstd = carve (c, (int64_t) net->chunk * s->num_features);
      r->bn_mean = carve (c, s->num_features);
    }
  if (s->type == SNN_LAYER_DROPOUT)
    r->mask = carve (c, (int64_t) net->batch * r->out_size);
}

/* A node's activations for `rows` rows (steps x batch); kept: u and xhat
 * are carved elsewhere. */
static void
carve_work (Node *r, Carver *c, int64_t rows, gboolean kept)
{
  const SnnLayerSpec *s = r->spec;
  r->out = s->type == SNN_LAYER_FLATTEN ? NULL : carve (c, rows * r->out_size);
  if (!kept)
    {
      r->u = s->type == SNN_LAYER_LIF ? carve (c, rows * r->out_size) : NULL;
      r->xhat = s->type == SNN_LAYER_BN_STEP ? carve (c, rows * r->out_size) : NULL;
    }
  r->out_seq = r->out;
  r->xhat_seq = r->xhat;
}

static gboolean
node_kept (const SnnNet *net, int k, int i)
{
  return net->seg_gemm[k] >= 0 && i > net->seg_gemm[k];
}

static void
carve_scratch (SnnNet *net, Carver *c)
{
  int64_t rows = (int64_t) net->chunk * net->batch, col = 0, cm = 0;
  for (int i = 0; i < net->nn; i++)
    {
      const SnnLayerSpec *s = net->N[i].spec;
      if (s->type != SNN_LAYER_CONV)
        continue;
      int64_t p = (int64_t) s->out_shape.d[1] * s->out_shape.d[2];
      col = MAX (col, conv_patch (s) * net->batch * p); /* one step: see conv_chunk */
      cm = MAX (cm, (int64_t) s->out_ch * net->batch * p);
    }
  net->prefix_grad = carve (c, net->prefix >= 0 ? (int64_t) net->batch * net->N[net->prefix].in_size : 0);
  for (int k = 0; k < net->n_gbuf; k++)
    net->gbuf[k] = carve (c, rows * net->max_size);
  net->col = carve (c, col);
  net->cm = carve (c, cm);
  int64_t fired = 0;
  for (int i = 0; i < net->nn; i++)
    if (net->N[i].wt)
      fired = MAX (fired, snn_spike_linear_scratch ((int) rows, net->N[i].spec->in));
  net->fired_idx = (int *) carve (c, fired); /* ints and floats have one size */
}

/* Recomputing: the prefix gets one step of its own for a static input, and
 * the segments alternate between two regions. */
static void
carve_segments (SnnNet *net, Carver *c, int64_t rows)
{
  int64_t size[2] = { 0, 0 };
  for (int k = 0; k < net->n_seg; k++)
    {
      Carver d = { 0, TRUE, NULL };
      for (int i = net->seg_first[k]; i <= net->seg_last[k]; i++)
        carve_work (&net->N[i], &d, rows, node_kept (net, k, i));
      size[k % 2] = MAX (size[k % 2], (int64_t) d.offset);
    }
  for (int k = 0; k < net->n_seg; k++)
    for (int i = net->seg_first[k]; i <= net->seg_last[k]; i++)
      if (node_kept (net, k, i))
        {
          Node *r = &net->N[i];
          r->u = r->spec->type == SNN_LAYER_LIF ? carve (c, rows * r->out_size) : NULL;
          r->xhat = r->spec->type == SNN_LAYER_BN_STEP ? carve (c, rows * r->out_size) : NULL;
        }
  for (int i = 0; i < net->prefix; i++)
    {
      Node *r = &net->N[i];
      SnnLayerType type = r->spec->type;
      r->out_pre = type == SNN_LAYER_FLATTEN ? NULL : carve (c, (int64_t) net->batch * r->out_size);
      r->xhat_pre = type == SNN_LAYER_BN_STEP ? carve (c, (int64_t) net->batch * r->out_size) : NULL;
    }
  size_t base[2] = { c->offset, c->offset + size[0] };
  for (int k = 0; k < net->n_seg; k++)
    {
      Carver region = { base[k % 2], c->dry, c->base };
      for (int i = net->seg_first[k]; i <= net->seg_last[k]; i++)
        carve_work (&net->N[i], &region, rows, node_kept (net, k, i));
    }
  c->offset = base[1] + size[1];
}

static void
carve_all (SnnNet *net, Carver *c)
{
  int64_t rows = (int64_t) net->chunk * net->batch;
  net->in_buf = carve (c, rows * net->in_size);
  for (int i = 0; i < net->nn; i++)
    carve_state (net, &net->N[i], c);
  carve_scratch (net, c);
  if (net->layout_recompute)
    carve_segments (net, c, rows);
  else
    for (int i = 0; i < net->nn; i++)
      carve_work (&net->N[i], c, rows, FALSE);
}

static const float *
node_input (SnnNet *net, int src)
{
  return src < 0 ? net->in_buf : net->N[src].out;
}

/* Points the prefix at its own step (static input) or at its segment, and
 * each flatten node at its source's memory. */
static void
bind_buffers (SnnNet *net)
{
  for (int i = 0; i < net->nn; i++)
    {
      Node *r = &net->N[i];
      gboolean pre = net->layout_recompute && net->static_in && i < net->prefix;
      r->out = pre ? r->out_pre : r->out_seq;
      r->xhat = pre ? r->xhat_pre : r->xhat_seq;
      if (r->spec->type == SNN_LAYER_FLATTEN)
        r->out = (float *) node_input (net, r->src); /* same memory, new shape */
    }
}

void
snn_net_set_recompute (SnnNet *net, gboolean recompute)
{
  net->want_recompute = recompute && net->can_recompute;
}

gboolean
snn_net_recomputes (const SnnNet *net)
{
  return net->layout_recompute;
}

void
snn_net_configure (SnnNet *net, int batch, int chunk_steps)
{
  g_return_if_fail (batch >= 1 && chunk_steps >= 1);
  if (net->arena && batch <= net->batch_cap && chunk_steps <= net->chunk && net->want_recompute == net->layout_recompute)
    {
      net->batch = batch;
      return;
    }
  free_arena (net);
  net->layout_recompute = net->want_recompute;
  net->batch = MAX (batch, net->batch_cap);
  net->chunk = MAX (chunk_steps, net->chunk);
  Carver c = { 0, TRUE, NULL };
  carve_all (net, &c);
  net->arena = net->be->alloc (c.offset);
  net->own_arena_bytes = (int64_t) c.offset;
  net->stats.arena_bytes = arena_with_lanes (net);
  Carver real = { 0, FALSE, net->arena };
  carve_all (net, &real);
  bind_buffers (net);
  net->out_host = g_new0 (float, (size_t) net->chunk * net->batch * net->model->num_classes);
  int64_t mask = 0;
  for (int i = 0; i < net->nn; i++)
    if (net->N[i].spec->type == SNN_LAYER_DROPOUT)
      mask = MAX (mask, (int64_t) net->batch * net->N[i].out_size);
  net->mask_host = mask ? g_new (float, mask) : NULL;
  net->grad = g_renew (float *, net->grad, net->nn);
  net->batch_cap = net->batch;
  net->batch = batch;
}

static const float *
node_weight (Node *r)
{
  return r->gain ? r->what : r->w->data;
}

/* ---- a sequence ---- */

void
snn_net_begin_sequence (SnnNet *net, gboolean training, SnnRng *rng)
{
  g_return_if_fail (net->arena != NULL);
  const SnnBackend *be = net->be;
  net->training = training;
  net->step_in_seq = 0;
  net->kept = FALSE;
  net->prefix_ready = net->prefix_grad_ready = FALSE;
  net->held_per_seq = 0;
  for (int i = 0; i < net->nn; i++)
    {
      Node *r = &net->N[i];
      const SnnLayerSpec *s = r->spec;
      int64_t ps, pq;
      layer_held (s, net->batch, &ps, &pq);
      if (s->type == SNN_LAYER_LIF)
        be->zero (r->v, (size_t) net->batch * r->out_size * sizeof (float));
      if (s->type == SNN_LAYER_DROPOUT && training)
        {
          /* One mask per sample, the same at every step, scaled by 1/(1-p). */
          int64_t n = (int64_t) net->batch * r->out_size;
          float *h = net->mask_host, keep = 1.0f / (1.0f - s->p);
          for (int64_t k = 0; k < n; k++)
            h[k] = snn_rng_uniform (rng) >= s->p ? keep : 0.0f;
          be->upload (r->mask, h, n * sizeof (float));
        }
      if (r->gain)
        {
          int rows = (int) r->w->info.shape[0];
          be->ws_forward (r->w->data, r->gain->data, rows, (int) layer_fan_in (s), s->ws_gamma, s->ws_eps,
                          r->what, r->inv_scale);
          be->zero (r->dwhat, r->w->info.numel * sizeof (float));
        }
      if (r->wt)
        be->transpose (node_weight (r), s->out, s->in, r->wt);
      if (training && !net->layout_recompute)
        net->held_per_seq += pq + (in_prefix (net, i) ? ps : 0);
    }
  if (net->layout_recompute && training)
    net->held_per_seq = snn_model_held_bytes_full (net->model, net->batch, 0, net->static_in, TRUE);
  set_held (net, net->held_per_seq);
}


/* The learned gain of a residual add, in device memory (NULL: 1). */
static const float *
skip_gain (Node *r)
{
  return r->skip ? r->skip->data : NULL;
}

/* Convolutions run one time step (batch samples) at a time: the patches
 * and the GEMM output then take one step's memory, not T steps'. */
static int
conv_chunk (SnnNet *net, int n)
{
  return MIN (n, net->batch);
}

static void
conv_forward (SnnNet *net, Node *r, const float *x, int n)
{
  const SnnBackend *be = net->be;
  const SnnLayerSpec *s = r->spec;
  int h = s->in_shape.d[1], w = s->in_shape.d[2], oh = s->out_shape.d[1], ow = s->out_shape.d[2];
  int nb = conv_chunk (net, n);
  for (int c0 = 0; c0 < n; c0 += nb)
    be->conv_forward (x + (size_t) c0 * r->in_size, node_weight (r), r->b ? r->b->data : NULL, MIN (nb, n - c0),
                      s->in_ch, h, w, s->out_ch, s->k, s->stride, s->pad, oh, ow, net->col,
                      r->out + (size_t) c0 * r->out_size);
}

static void
bn_forward (SnnNet *net, Node *r, const float *x, int steps)
{
  const SnnBackend *be = net->be;
  const SnnLayerSpec *s = r->spec;
  int B = net->batch, c = s->num_features, hw = (int) (r->out_size / c);
  for (int t = 0; t < steps; t++)
    {
      size_t off = (size_t) t * B * r->out_size;
      if (net->training)
        be->bn_forward_train (x + off, B, c, hw, r->bn_w->data, r->bn_b->data, s->eps, s->momentum,
                              net->replaying ? NULL : r->rmean->data, net->replaying ? NULL : r->rvar->data,
                              r->xhat + off, r->invstd + (size_t) t * c, r->out + off);
      else
        be->bn_forward_eval (x + off, B, c, hw, r->bn_w->data, r->bn_b->data, s->eps, r->rmean->data, r->rvar->data,
                             r->out + off);
    }
}

static void
forward_node (SnnNet *net, int i, int steps)
{
  const SnnBackend *be = net->be;
  Node *r = &net->N[i];
  const SnnLayerSpec *s = r->spec;
  const float *x = node_input (net, r->src);
  int B = net->batch, n = steps * B;
  switch (s->type)
    {
    case SNN_LAYER_LINEAR:
      /* Spikes are sparse: summing the columns of those that fired beats a GEMM. */
      if (r->wt && be->spike_linear (x, n, s->in, s->out, r->wt, r->b ? r->b->data : NULL, net->fired_idx, r->out))
        break;
      be->gemm (FALSE, TRUE, n, s->out, s->in, 1.0f, x, s->in, node_weight (r), s->in, 0.0f, r->out, s->out);
      if (r->b)
        be->add_bias_rows (r->out, r->b->data, n, s->out);
      break;
    case SNN_LAYER_CONV:
      conv_forward (net, r, x, n);
      break;
    case SNN_LAYER_AVGPOOL:
      be->avgpool_forward (x, n, s->in_shape.d[0], s->in_shape.d[1], s->in_shape.d[2], s->pool_k, s->pool_stride,
                           s->pool_pad, s->out_shape.d[1], s->out_shape.d[2], r->out);
      break;
    case SNN_LAYER_GLOBAL_AVGPOOL:
      be->global_avgpool_forward (x, (int64_t) n * s->in_shape.d[0], s->in_shape.d[1] * s->in_shape.d[2], r->out);
      break;
    case SNN_LAYER_BN_STEP:
      bn_forward (net, r, x, steps);
      break;
    case SNN_LAYER_LIF:
      /* Replaying, only u is wanted: the spikes are the bits already kept. */
      be->lif_forward (&r->lif, x, net->static_in && i == net->prefix, r->v, steps, (int64_t) B * r->out_size, r->u,
                       net->replaying ? NULL : r->out, net->packed && !net->replaying ? r->bits : NULL);
      break;
    case SNN_LAYER_DROPOUT:
      if (net->training)
        be->mul_mask (x, r->mask, steps, B, r->out_size, r->out);
      else
        be->copy (r->out, x, (size_t) n * r->out_size * sizeof (float));
      break;
    case SNN_LAYER_SCALE:
      be->scale ((int64_t) n * r->out_size, s->scale, x, r->out);
      break;
    case SNN_LAYER_RESIDUAL:
      be->copy (r->out, node_input (net, r->src2), (size_t) n * r->out_size * sizeof (float));
      be->axpy_gain ((int64_t) n * r->out_size, r->spec->block->alpha, skip_gain (r), x, r->out);
      break;
    default:
      break;
    }
}

/* The prefix runs on the first chunk; later chunks only repeat the
 * running-statistic updates that each step would have made. */
static void
forward_prefix (SnnNet *net, const float *x, int steps)
{
  const SnnBackend *be = net->be;
  int repeats = steps;
  if (!net->prefix_ready)
    {
      be->upload (net->in_buf, x, (size_t) net->batch * net->in_size * sizeof (float));
      for (int i = 0; i < net->prefix; i++)
        {
          forward_node (net, i, 1);
          check_finite (net, i, net->N[i].out, 0, 1, net->N[i].out_size, FALSE);
        }
      net->prefix_ready = TRUE;
      repeats = steps - 1;
    }
  if (!net->training || repeats == 0)
    return;
  for (int i = 0; i < net->prefix; i++)
    {
      Node *r = &net->N[i];
      if (r->spec->type != SNN_LAYER_BN_STEP)
        continue;
      int c = r->spec->num_features, hw = (int) (r->out_size / c);
      be->channel_mean (node_input (net, r->src), net->batch, c, hw, r->bn_mean);
      be->bn_repeat_running (r->invstd, r->bn_mean, c, net->batch * hw, r->spec->eps, r->spec->momentum, repeats,
                             r->rmean->data, r->rvar->data);
    }
}

void
snn_net_forward (SnnNet *net, const float *x, int steps, gboolean keep)
{
  g_return_if_fail (steps >= 1 && steps <= net->chunk);
  gint64 t0 = g_get_monotonic_time ();
  int n = steps * net->batch, first = 0;
  if (net->static_in)
    {
      forward_prefix (net, x, steps);
      first = net->prefix;
    }
  else if (net->input_static)
    {
      /* No LIF layer to start from: the same input at every step. */
      size_t bytes = (size_t) net->batch * net->in_size * sizeof (float);
      for (int t = 0; t < steps; t++)
        net->be->upload ((char *) net->in_buf + t * bytes, x, bytes);
    }
  else
    net->be->upload (net->in_buf, x, (size_t) n * net->in_size * sizeof (float));
  net->chunk_first = net->step_in_seq;
  net->cur_steps = steps;
  /* Recomputing replays each LIF layer from v = 0: the chunk must start the sequence. */
  net->packed = keep && net->layout_recompute;
  if (net->packed && net->chunk_first != 0)
    g_critical ("snn_net_forward: recomputing needs one chunk per sequence");
  for (int i = first; i < net->nn; i++)
    {
      forward_node (net, i, steps);
      Node *r = &net->N[i];
      check_finite (net, i, r->out, net->chunk_first, steps, r->out_size, FALSE);
      if (r->spec->type != SNN_LAYER_LIF || !r->is_top)
        continue;
      if (net->fhook)
        net->fhook (net, r->top, net->chunk_first, steps, net->fhook_data);
    }
  const Node *last = &net->N[net->nn - 1];
  net->be->download (net->out_host, last->out, (size_t) n * last->out_size * sizeof (float));
  net->kept = keep;
  net->step_in_seq += steps;
  if (net->packed)
    set_held (net, snn_model_held_bytes_full (net->model, net->batch, steps, net->static_in, TRUE));
  else if (keep)
    set_held (net, net->held_per_seq + held_per_step (net) * steps);
  net->stats.forward_ms += (g_get_monotonic_time () - t0) / 1000.0;
}

const float *
snn_net_output (SnnNet *net)
{
  return net->out_host;
}

/* ---- backward ---- */

static float *
gbuf_take (SnnNet *net)
{
  for (int k = 0; k < net->n_gbuf; k++)
    if (!net->gbuf_used[k])
      {
        net->gbuf_used[k] = TRUE;
        return net->gbuf[k];
      }
  g_error ("the network nests residual blocks deeper than its gradient buffers allow");
  return NULL;
}

static void
gbuf_give (SnnNet *net, float *buf)
{
  for (int k = 0; k < N_GBUF; k++)
    if (net->gbuf[k] == buf)
      net->gbuf_used[k] = FALSE;
}

/* Hands dL/doutput of node `to` over: the first gradient to arrive is kept
 * as it is, later ones (a node read twice, as at a residual fork) are added. */
static void
deliver (SnnNet *net, int to, float *buf, int steps)
{
  if (!net->grad[to])
    {
      net->grad[to] = buf;
      return;
    }
  int64_t n = (int64_t) steps * net->batch * net->N[to].out_size;
  net->be->axpy (n, 1.0f, buf, net->grad[to]);
  gbuf_give (net, buf);
}

static void
conv_backward (SnnNet *net, Node *r, const float *x, const float *dy, float *dx, int n)
{
  const SnnBackend *be = net->be;
  const SnnLayerSpec *s = r->spec;
  int h = s->in_shape.d[1], w = s->in_shape.d[2], oh = s->out_shape.d[1], ow = s->out_shape.d[2];
  int nb = conv_chunk (net, n);
  float *dw = r->gain ? r->dwhat : r->w->grad;
  if (r->b)
    be->bias_grad_channels (r->b->grad, dy, n, s->out_ch, oh * ow);
  for (int c0 = 0; c0 < n; c0 += nb)
    {
      int m = MIN (nb, n - c0);
      be->nchw_to_cn (dy + (size_t) c0 * r->out_size, m, s->out_ch, oh * ow, net->cm);
      /* The patches are rebuilt rather than kept: they would be k*k times
       * the input. */
      be->conv_weight_grad (x + (size_t) c0 * r->in_size, net->cm, m, s->in_ch, h, w, s->out_ch, s->k, s->stride,
                            s->pad, oh, ow, net->col, dw);
      if (!dx)
        continue;
      be->conv_input_grad (node_weight (r), net->cm, s->out_ch, m, s->in_ch, h, w, s->k, s->stride, s->pad, oh, ow,
                           net->col, dx + (size_t) c0 * r->in_size);
    }
}

/* dL/dinput of node i into dx; the affine layers skip it when no node
 * before them has parameters (need_dx false). */
static void
backward_node (SnnNet *net, int i, int steps, const float *dy, float *dx, gboolean need_dx, gboolean temporal)
{
  const SnnBackend *be = net->be;
  Node *r = &net->N[i];
  const SnnLayerSpec *s = r->spec;
  const float *x = node_input (net, r->src);
  int B = net->batch, n = steps * B;
  switch (s->type)
    {
    case SNN_LAYER_LINEAR:
      be->gemm (TRUE, FALSE, s->out, s->in, n, 1.0f, dy, s->out, x, s->in, 1.0f, r->gain ? r->dwhat : r->w->grad, s->in);
      if (r->b)
        be->bias_grad_rows (r->b->grad, dy, n, s->out);
      if (need_dx)
        be->gemm (FALSE, FALSE, n, s->in, s->out, 1.0f, dy, s->out, node_weight (r), s->in, 0.0f, dx, s->in);
      break;
    case SNN_LAYER_CONV:
      conv_backward (net, r, x, dy, need_dx ? dx : NULL, n);
      break;
    case SNN_LAYER_AVGPOOL:
      be->avgpool_backward (dy, n, s->in_shape.d[0], s->in_shape.d[1], s->in_shape.d[2], s->pool_k, s->pool_stride,
                            s->pool_pad, s->out_shape.d[1], s->out_shape.d[2], dx);
      break;
    case SNN_LAYER_GLOBAL_AVGPOOL:
      be->global_avgpool_backward (dy, (int64_t) n * s->in_shape.d[0], s->in_shape.d[1] * s->in_shape.d[2], dx);
      break;
    case SNN_LAYER_FLATTEN:
      be->copy (dx, dy, (size_t) n * r->out_size * sizeof (float));
      break;
    case SNN_LAYER_BN_STEP:
      {
        int c = s->num_features, hw = (int) (r->out_size / c);
        for (int t = 0; t < steps; t++)
          {
            size_t off = (size_t) t * B * r->out_size;
            be->bn_backward (dy + off, r->xhat + off, r->invstd + (size_t) t * c, B, c, hw, r->bn_w->data,
                             r->bn_w->grad, r->bn_b->grad, dx + off);
          }
        break;
      }
    case SNN_LAYER_LIF:
      be->lif_backward (&r->lif, r->u, dy, steps, (int64_t) B * r->out_size, temporal, dx);
      if (net->hook && r->is_top)
        net->hook (net, r->top, net->chunk_first, steps, r->u, dy, dx, net->hook_data);
      break;
    case SNN_LAYER_DROPOUT:
      be->mul_mask (dy, r->mask, steps, B, r->out_size, dx);
      break;
    case SNN_LAYER_SCALE:
      be->scale ((int64_t) n * r->out_size, s->scale, dy, dx);
      break;
    default:
      break;
    }
}

static gboolean
params_before (SnnNet *net, int i)
{
  for (int j = 0; j < i; j++)
    if (snn_layer_param_count (net->N[j].spec) > 0 && net->N[j].spec->type != SNN_LAYER_RESIDUAL)
      return TRUE;
  return FALSE;
}

/* The add node of a residual block: the shortcut gets dy, the main path
 * alpha * g * dy, and the gain alpha * <dy, main output>. */
static void
backward_add (SnnNet *net, int i, int steps, float *dy)
{
  Node *r = &net->N[i];
  int64_t n = (int64_t) steps * net->batch * r->out_size;
  float *dm = gbuf_take (net);
  net->be->scale_gain (n, r->spec->block->alpha, skip_gain (r), dy, dm);
  if (r->skip)
    net->be->dot_add (n, r->spec->block->alpha, dy, node_input (net, r->src), r->skip->grad);
  if (r->src2 >= 0 && r->src2 >= (net->static_in ? net->prefix : 0))
    deliver (net, r->src2, dy, steps);
  else
    gbuf_give (net, dy);
  deliver (net, r->src, dm, steps);
}

/* Backward through nodes from..to (descending) for `steps` steps; grad[]
 * holds the gradients that have arrived. Returns dL/dinput of node `to`
 * (a buffer the caller gives back), or NULL if none was needed. */
static float *
backward_range (SnnNet *net, int from, int to, int steps, gboolean temporal)
{
  float *din = NULL;
  for (int i = from; i >= to; i--)
    {
      float *dy = net->grad[i];
      net->grad[i] = NULL;
      if (!dy)
        continue;
      Node *r = &net->N[i];
      if (r->spec->type == SNN_LAYER_RESIDUAL)
        {
          backward_add (net, i, steps, dy);
          continue;
        }
      gboolean need_dx = params_before (net, i);
      if (!need_dx && snn_layer_param_count (r->spec) == 0 && r->spec->type != SNN_LAYER_LIF)
        {
          gbuf_give (net, dy);
          continue;
        }
      float *dx = gbuf_take (net);
      backward_node (net, i, steps, dy, dx, need_dx, temporal);
      check_finite (net, i, need_dx ? dx : NULL, net->chunk_first, steps, r->in_size, TRUE);
      gbuf_give (net, dy);
      if (r->src >= to && need_dx)
        deliver (net, r->src, dx, steps);
      else if (i == to && need_dx)
        din = dx;
      else
        gbuf_give (net, dx);
    }
  return din;
}

static void
reset_grads (SnnNet *net)
{
  for (int i = 0; i < net->nn; i++)
    net->grad[i] = NULL;
  for (int k = 0; k < N_GBUF; k++)
    net->gbuf_used[k] = FALSE;
}

/* Rebuilds segment k's activations: the spikes that enter it from their
 * bits, then its layers (the LIF layer replayed from v = 0); the prefix
 * kept its own, and the network's output is not needed. */
static void
recompute_segment (SnnNet *net, int k, int steps)
{
  int lo = net->seg_first[k], hi = net->seg_last[k];
  if (lo > 0)
    {
      Node *in = &net->N[lo - 1];
      net->be->unpack_spikes (in->bits, steps, (int64_t) net->batch * in->out_size, in->out);
    }
  /* A segment that kept u rebuilds only the layers before its linear or conv layer. */
  if (net->seg_gemm[k] >= 0)
    hi = net->seg_gemm[k] - 1;
  net->replaying = TRUE;
  for (int i = lo; i <= hi; i++)
    {
      Node *r = &net->N[i];
      SnnLayerType type = r->spec->type;
      if (in_prefix (net, i) || (i == net->nn - 1 && type != SNN_LAYER_LIF && type != SNN_LAYER_BN_STEP))
        continue;
      if (type == SNN_LAYER_LIF)
        net->be->zero (r->v, (size_t) net->batch * r->out_size * sizeof (float));
      forward_node (net, i, steps);
    }
  net->replaying = FALSE;
}

/* Backward segment by segment, from the last; returns what the chain
 * returns (dL/dinput of the first node backpropagated). */
static float *
backward_recomputed (SnnNet *net, int steps, gboolean temporal)
{
  float *din = NULL;
  for (int k = net->n_seg - 1; k >= 0; k--)
    {
      recompute_segment (net, k, steps);
      int lo = net->seg_first[k];
      if (k == 0 && net->static_in)
        lo = net->prefix;
      din = backward_range (net, net->seg_last[k], lo, steps, temporal);
      if (k > 0)
        {
          net->grad[net->seg_first[k] - 1] = din;
          din = NULL;
        }
    }
  return din;
}

void
snn_net_backward (SnnNet *net, const float *dout, gboolean temporal)
{
  g_return_if_fail (net->kept);
  gint64 t0 = g_get_monotonic_time ();
  const SnnBackend *be = net->be;
  int steps = net->cur_steps;
  size_t n = (size_t) steps * net->batch;
  reset_grads (net);
  float *g = gbuf_take (net);
  be->upload (g, dout, n * net->model->num_classes * sizeof (float));
  net->grad[net->nn - 1] = g;
  int to = net->static_in ? net->prefix : 0;
  float *din = net->packed ? backward_recomputed (net, steps, temporal) : backward_range (net, net->nn - 1, to, steps, temporal);
  if (din && net->static_in)
    {
      /* The prefix saw the same input at every step: sum its gradient. */
      be->sum_steps (din, steps, (int64_t) net->batch * net->N[net->prefix].in_size, net->prefix_grad_ready,
                     net->prefix_grad);
      net->prefix_grad_ready = TRUE;
    }
  reset_grads (net);
  net->kept = net->packed = FALSE;
  set_held (net, net->held_per_seq);
  net->stats.backward_ms += (g_get_monotonic_time () - t0) / 1000.0;
}

void
snn_net_end_sequence (SnnNet *net)
{
  if (net->training && net->prefix_grad_ready)
    {
      gint64 t0 = g_get_monotonic_time ();
      int64_t count = (int64_t) net->batch * net->N[net->prefix].in_size;
      reset_grads (net);
      float *g = gbuf_take (net);
      net->be->copy (g, net->prefix_grad, count * sizeof (float));
      net->grad[net->prefix - 1] = g;
      float *din = backward_range (net, net->prefix - 1, 0, 1, FALSE);
      if (din)
        gbuf_give (net, din);
      reset_grads (net);
      net->prefix_grad_ready = FALSE;
      net->stats.backward_ms += (g_get_monotonic_time () - t0) / 1000.0;
    }
  if (net->training)
    for (int i = 0; i < net->nn; i++)
      {
        Node *r = &net->N[i];
        if (!r->gain)
          continue;
        net->be->ws_backward (r->w->data, r->gain->data, r->dwhat, r->inv_scale, (int) r->w->info.shape[0],
                              (int) layer_fan_in (r->spec), r->spec->ws_gamma, r->spec->ws_eps, r->w->grad,
                              r->gain->grad);
      }
  set_held (net, 0);
}

void
snn_net_read_lif_sample (SnnNet *net, int layer, gboolean spikes, int sample, float *dst)
{
  Node *r = &net->N[net->top_node[layer]];
  g_return_if_fail (r->spec->type == SNN_LAYER_LIF && sample >= 0 && sample < net->batch);
  const float *src = spikes ? r->out : r->u;
  for (int t = 0; t < net->cur_steps; t++)
    net->be->download (dst + (size_t) t * r->out_size, src + ((size_t) t * net->batch + sample) * r->out_size,
                       r->out_size * sizeof (float));
}

void
snn_net_read_lif (SnnNet *net, int layer, gboolean spikes, float *dst)
{
  Node *r = &net->N[net->top_node[layer]];
  g_return_if_fail (r->spec->type == SNN_LAYER_LIF);
  net->be->download (dst, spikes ? r->out : r->u, (size_t) net->cur_steps * net->batch * r->out_size * sizeof (float));
}

/* ---- predictions ---- */

/* A net built only to be measured: its buffers are never read or written,
 * so they all share one block (building a large network's parameters would
 * take the editor half a second). */
static void *
dry_alloc (size_t bytes)
{
  static float block[16];
  return block;
}

static void
dry_free (void *p)
{
}

int64_t
snn_model_arena_bytes (const SnnModel *model, int batch, int chunk_steps, gboolean recompute)
{
  g_return_val_if_fail (batch >= 1 && chunk_steps >= 1, 0);
  /* The same carving as snn_net_configure, dry, on a net that never gets
   * an arena: one layout, so the prediction cannot drift from it. */
  SnnBackend dry = *snn_backend_get ("cpu", NULL);
  dry.alloc = dry_alloc;
  dry.free = dry_free;
  SnnNet *net = net_new_uninit (model, &dry, NULL);
  net->batch = batch;
  net->chunk = chunk_steps;
  net->layout_recompute = recompute && net->can_recompute;
  Carver c = { 0, TRUE, NULL };
  carve_all (net, &c);
  snn_net_free (net);
  return (int64_t) c.offset;
}

/* The backend training gets when none is named. */
static const SnnBackend *
default_backend (void)
{
  const SnnBackend *be = snn_backend_get (NULL, NULL);
  return be ? be : snn_backend_get ("cpu", NULL);
}

/* held: snn_model_held_bytes_full, else snn_model_arena_bytes (for a
 * static input), summed over the lanes of a batch. */
static int64_t
sum_over_lanes (const SnnModel *model, const SnnBackend *be, int batch, int steps, gboolean static_input,
                gboolean recompute, gboolean held)
{
  int lanes = snn_model_lanes (model, be, batch);
  int64_t total = 0;
  for (int k = 0, lo, hi; k < lanes; k++)
    {
      snn_lane_range (batch, lanes, k, &lo, &hi);
      total += held ? snn_model_held_bytes_full (model, hi - lo, steps, static_input, recompute)
                    : snn_model_arena_bytes (model, hi - lo, steps, recompute);
    }
  return total;
}

int64_t
snn_model_train_held_bytes (const SnnModel *model, const SnnBackend *be, int batch, int steps, gboolean static_input,
                            gboolean recompute)
{
  return sum_over_lanes (model, be, batch, steps, static_input, recompute, TRUE);
}

void
snn_model_predict_memory (const SnnModel *model, int batch, int T, SnnMemoryPrediction out[SNN_PREDICT_N])
{
  /* As snn_train_batch runs them on the default backend: BPTT one chunk of
   * T steps, SLTT and SLTT-K chunks of one step, never recomputing; a
   * static input; the batch split into lanes where training splits it. */
  static const struct { int steps_is_T; gboolean recompute; } how[SNN_PREDICT_N] = {
    [SNN_PREDICT_BPTT_STORED] = { TRUE, FALSE },
    [SNN_PREDICT_BPTT_RECOMPUTE] = { TRUE, TRUE },
    [SNN_PREDICT_SLTT] = { FALSE, FALSE },
    [SNN_PREDICT_SLTT_K] = { FALSE, FALSE },
  };
  const SnnBackend *be = default_backend ();
  for (int i = 0; i < SNN_PREDICT_N; i++)
    {
      int steps = how[i].steps_is_T ? T : 1;
      gboolean rc = how[i].recompute && snn_model_can_recompute (model);
      out[i].held_bytes = sum_over_lanes (model, be, batch, steps, TRUE, rc, TRUE);
      out[i].arena_bytes = i == SNN_PREDICT_SLTT_K ? out[SNN_PREDICT_SLTT].arena_bytes
                                                   : sum_over_lanes (model, be, batch, steps, TRUE, rc, FALSE);
      out[i].recomputes = rc;
    }
}

/* ---- memory available ---- */

static void
list_predict (const SnnLayerSpec *layers, int n, double rows, double batch, int optim_states, double *params,
              double *acts, double *widest, double *col)
{
  for (int i = 0; i < n; i++)
    {
      const SnnLayerSpec *s = &layers[i];
      SnnParamInfo info[6];
      int np = snn_layer_params (s, info);
      for (int k = 0; k < np; k++)
        *params += (double) info[k].numel * 4 * (info[k].trainable ? 2 + optim_states : 1);
      if (s->ws && np > 0)
        *params += (double) info[0].numel * 4 * 2; /* standardised weights and their gradient */
      if (s->type == SNN_LAYER_LINEAR && np > 0 && i > 0
          && (layers[i - 1].type == SNN_LAYER_LIF || layers[i - 1].type == SNN_LAYER_FLATTEN))
        *params += (double) info[0].numel * 4;     /* the transposed copy for spike inputs */
      double out = (double) snn_shape_numel (&s->out_shape);
      *widest = MAX (*widest, out);
      if (s->type != SNN_LAYER_FLATTEN)
        *acts += rows * out * 4;
      if (s->type == SNN_LAYER_LIF || s->type == SNN_LAYER_BN_STEP)
        *acts += rows * out * 4 + batch * out * 4; /* u or xhat, and the state */
      if (s->type == SNN_LAYER_DROPOUT)
        *acts += batch * out * 8;                  /* the mask, here and on the host */
      if (s->type == SNN_LAYER_CONV)
        *col = MAX (*col, (double) conv_patch (s) * batch * s->out_shape.d[1] * s->out_shape.d[2] * 4
                            + (double) s->out_ch * batch * s->out_shape.d[1] * s->out_shape.d[2] * 4);
      if (s->block)
        {
          const SnnLayerList *l[3] = { &s->block->pre, &s->block->main, &s->block->shortcut };
          for (int k = 0; k < 3; k++)
            list_predict (l[k]->layers, l[k]->n, rows, batch, optim_states, params, acts, widest, col);
        }
    }
}

int64_t
snn_model_predict_bytes (const SnnModel *model, int batch, int steps, int optim_states)
{
  double rows = (double) batch * steps, params = 0, acts = 0, col = 0;
  double widest = (double) snn_shape_numel (&model->input_shape);
  acts += rows * widest * 4; /* the input */
  list_predict (model->layers, model->n_layers, rows, batch, optim_states, &params, &acts, &widest, &col);
  int depth = list_depth (model->layers, model->n_layers);
  double total = params + acts + col + MIN (N_GBUF, 3 + 2 * depth) * rows * widest * 4
                 + rows * model->num_classes * 4 * 3; /* output, loss and its gradient on the host */
  /* Lanes keep gradients, standardised weights and transposed copies of
   * their own (optim_states -1: a trainable value's gradient alone); their
   * activations add up to the batch's. */
  int lanes = snn_model_lanes (model, default_backend (), batch);
  if (lanes > 1)
    {
      double lane = 0, lane_acts = 0, lane_widest = 0, lane_col = 0;
      list_predict (model->layers, model->n_layers, rows, batch, -1, &lane, &lane_acts, &lane_widest, &lane_col);
      total += lanes * lane;
    }
  return total >= (double) G_MAXINT64 ? G_MAXINT64 : (int64_t) total;
}

static int64_t
meminfo_available (void)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL))
    return G_MAXINT64;
  const char *line = strstr (text, "MemAvailable:");
  if (!line)
    return G_MAXINT64;
  guint64 kb = g_ascii_strtoull (line + strlen ("MemAvailable:"), NULL, 10);
  return kb > (guint64) (G_MAXINT64 / 1024) ? G_MAXINT64 : (int64_t) kb * 1024;
}

/* What RLIMIT_AS leaves above the address space this process has now. */
static int64_t
rlimit_available (void)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return G_MAXINT64;
  g_autofree char *statm = NULL;
  guint64 pages = 0;
  if (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    pages = g_ascii_strtoull (statm, NULL, 10);
  guint64 used = pages * (guint64) sysconf (_SC_PAGESIZE);
  return used >= rl.rlim_cur ? 0 : (int64_t) MIN (rl.rlim_cur - used, (guint64) G_MAXINT64);
}

int64_t
snn_memory_available (void)
{
  return MIN (meminfo_available (), rlimit_available ());
}

gboolean
snn_memory_check (int64_t bytes, const char *what, GError **error)
{
  int64_t avail = snn_memory_available ();
  /* A quarter to spare: the prediction leaves out the data set and the
   * allocator's own overhead, and other processes take memory meanwhile. */
  if ((double) bytes * 1.25 <= (double) avail)
    return TRUE;
  g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_INVALID,
               "%s: needs about %" G_GINT64_FORMAT " bytes (%.1f GiB) but only %" G_GINT64_FORMAT
               " bytes (%.1f GiB) are available; use a smaller model, batch_size or T", what, bytes,
               bytes / 1073741824.0, avail, avail / 1073741824.0);
  return FALSE;
}
