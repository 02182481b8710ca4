/* The model file: a JSON description of a feed-forward LIF network.
 * Parsing checks every field; shape inference checks that layers fit and
 * names the layer that breaks. */
#pragma once
#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef enum {
  SNN_LAYER_LINEAR,
  SNN_LAYER_CONV,
  SNN_LAYER_AVGPOOL,
  SNN_LAYER_FLATTEN,
  SNN_LAYER_BN_STEP,
  SNN_LAYER_LIF,
  SNN_LAYER_DROPOUT,
  SNN_LAYER_RESIDUAL,       /* a block of sub-lists whose outputs are added */
  SNN_LAYER_SCALE,          /* y = value * x */
  SNN_LAYER_GLOBAL_AVGPOOL, /* [C, H, W] -> [C, 1, 1] */
  SNN_LAYER_N_TYPES
} SnnLayerType;

typedef enum {
  SNN_SURROGATE_RECTANGLE,
  SNN_SURROGATE_TRIANGLE,
  SNN_SURROGATE_SIGMOID,
  SNN_SURROGATE_ATAN,
  SNN_SURROGATE_N
} SnnSurrogate;

typedef enum { SNN_RESET_SOFT, SNN_RESET_HARD } SnnReset;

#define SNN_MAX_DIMS 3
#define SNN_MAX_NESTING 32  /* residual blocks inside residual blocks */

typedef struct {
  int ndim;          /* 1: [F], 3: [C, H, W] */
  int d[SNN_MAX_DIMS];
} SnnShape;

typedef struct {
  float tau, vth, width, alpha;
  SnnReset reset;
  SnnSurrogate surrogate;
  gboolean detach_reset;
} SnnLifParams;

typedef struct _SnnLayerSpec SnnLayerSpec;

typedef struct {
  int n;
  SnnLayerSpec *layers;
} SnnLayerList;

/* A residual block: p = pre(x) (x when pre is empty), m = main(p),
 * s = shortcut(p or x) (the identity when empty), output alpha * g * m + s
 * where g is the learnable scalar skipinit_gain (starting at 0) or 1. */
typedef struct {
  SnnLayerList pre, main, shortcut;
  gboolean shortcut_from_pre;
  float alpha;
  gboolean skipinit;
} SnnBlock;

struct _SnnLayerSpec {
  SnnLayerType type;
  /* linear */
  int in, out;
  /* conv */
  int in_ch, out_ch, k, stride, pad;
  /* linear and conv */
  gboolean bias;
  gboolean ws;
  float ws_gamma, ws_eps;
  /* avgpool */
  int pool_k, pool_stride, pool_pad;
  /* scale */
  float scale;
  /* bn_step */
  int num_features;
  float eps, momentum;
  /* lif */
  SnnLifParams lif;
  /* dropout */
  float p;
  /* residual: owned by the spec (deep-copied with the model) */
  SnnBlock *block;
  /* filled by shape inference */
  SnnShape in_shape, out_shape;
};

typedef struct {
  SnnShape input_shape;
  int num_classes;
  int n_layers;
  SnnLayerSpec *layers;
  char *source;       /* file name or "<string>", for messages */
} SnnModel;

const char  *snn_layer_type_name (SnnLayerType type);
const char  *snn_surrogate_name (SnnSurrogate s);
gboolean     snn_surrogate_from_name (const char *name, SnnSurrogate *out);
int64_t      snn_shape_numel (const SnnShape *s);
char        *snn_shape_to_string (const SnnShape *s);     /* "[8, 28, 28]" */

/* A layer with the defaults of the model format. */
void         snn_layer_spec_init (SnnLayerSpec *spec, SnnLayerType type);
void         snn_lif_params_init (SnnLifParams *p);

SnnModel    *snn_model_new (const SnnShape *input_shape, int num_classes);
void         snn_model_append_layer (SnnModel *model, const SnnLayerSpec *spec);
void         snn_model_remove_layer (SnnModel *model, int index);
void         snn_model_move_layer (SnnModel *model, int from, int to);
SnnModel    *snn_model_copy (const SnnModel *model);
void         snn_model_free (SnnModel *model);

SnnModel    *snn_model_load_file (const char *path, GError **error);
/* Parses and infers shapes; source names the input in messages. */
SnnModel    *snn_model_parse (const char *json, gssize length, const char *source, GError **error);
/* JSON nested deeper than SNN_JSON_MAX_DEPTH is refused before parsing:
 * the parser recurses once per level, and a crafted file would take the
 * whole stack. */
#define SNN_JSON_MAX_DEPTH 256
gboolean     snn_json_check_depth (const char *json, gssize length, const char *source, GError **error);
/* From a JSON object node (e.g. embedded in an experiment file). */
struct _JsonNode;
SnnModel    *snn_model_from_json_node (struct _JsonNode *node, const char *source, GError **error);
struct _JsonNode *snn_model_to_json_node (const SnnModel *model);
char        *snn_model_to_json (const SnnModel *model);
gboolean     snn_model_save (const SnnModel *model, const char *path, GError **error);

/* Checks that every layer fits its input and fills in_shape/out_shape.
 * On failure, *bad_layer (if not NULL) is the index of the layer that breaks,
 * or -1 for a model-level problem. Messages look like
 * "layer 3: conv expects 8 input channels, gets 16". */
gboolean     snn_model_infer_shapes (SnnModel *model, int *bad_layer, GError **error);

/* Calls fn on every LIF layer of the model, those inside residual blocks
 * (pre, main and shortcut, at any depth) too, in saving order. path is the
 * layer's name as in parameter names ("3" or "3.main.1"). */
typedef void (*SnnLifFunc) (SnnLayerSpec *lif, const char *path, gpointer user_data);
int          snn_model_foreach_lif (SnnModel *model, SnnLifFunc fn, gpointer user_data); /* the count */

/* Trainable parameters and buffers of a layer, in saving order. */
typedef struct {
  char name[32];      /* "weight", "bias", "gain", "running_mean", "running_var" */
  int ndim;
  int64_t shape[4];
  int64_t numel;
  gboolean trainable;
} SnnParamInfo;

/* A layer's own parameters; a residual block's sub-layers have theirs,
 * named "<i>.main.<j>.<name>" and so on (see snn_model_param_names). */
int          snn_layer_params (const SnnLayerSpec *spec, SnnParamInfo out[6]);
int64_t      snn_model_param_count (const SnnModel *model); /* trainable scalars */
int64_t      snn_layer_param_count (const SnnLayerSpec *spec); /* including sub-layers */
/* Deep copy and release of a spec's block (for editors holding specs). */
void         snn_layer_spec_copy_block (SnnLayerSpec *dst, const SnnLayerSpec *src);
void         snn_layer_spec_clear (SnnLayerSpec *spec);

G_END_DECLS
