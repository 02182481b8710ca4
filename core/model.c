#include "model.h"
#include "atomic-file.h"
#include "snn-error.h"
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

static const char *layer_type_names[SNN_LAYER_N_TYPES] = {
  "linear", "conv", "avgpool", "flatten", "bn_step", "lif", "dropout", "residual", "scale", "global_avgpool",
};
static const char *surrogate_names[SNN_SURROGATE_N] = {
  "rectangle", "triangle", "sigmoid", "atan",
};

const char *
snn_layer_type_name (SnnLayerType type)
{
  return type < SNN_LAYER_N_TYPES ? layer_type_names[type] : "?";
}

const char *
snn_surrogate_name (SnnSurrogate s)
{
  return s < SNN_SURROGATE_N ? surrogate_names[s] : "?";
}

gboolean
snn_surrogate_from_name (const char *name, SnnSurrogate *out)
{
  for (int i = 0; i < SNN_SURROGATE_N; i++)
    if (g_strcmp0 (name, surrogate_names[i]) == 0)
      {
        *out = (SnnSurrogate) i;
        return TRUE;
      }
  return FALSE;
}

int64_t
snn_shape_numel (const SnnShape *s)
{
  int64_t n = 1;
  for (int i = 0; i < s->ndim; i++)
    if (__builtin_mul_overflow (n, (int64_t) s->d[i], &n))
      return G_MAXINT64; /* saturates: shape inference refuses it */
  return n;
}

char *
snn_shape_to_string (const SnnShape *s)
{
  GString *str = g_string_new ("[");
  for (int i = 0; i < s->ndim; i++)
    g_string_append_printf (str, i ? ", %d" : "%d", s->d[i]);
  g_string_append_c (str, ']');
  return g_string_free (str, FALSE);
}

void
snn_lif_params_init (SnnLifParams *p)
{
  p->tau = 1.1f;
  p->vth = 1.0f;
  p->width = 1.0f;
  p->alpha = 0.0f;
  p->reset = SNN_RESET_SOFT;
  p->surrogate = SNN_SURROGATE_TRIANGLE;
  p->detach_reset = FALSE;
}

void
snn_layer_spec_init (SnnLayerSpec *spec, SnnLayerType type)
{
  memset (spec, 0, sizeof *spec);
  spec->type = type;
  spec->bias = TRUE;
  spec->stride = 1;
  spec->ws_gamma = 1.0f;
  spec->ws_eps = 1e-4f;
  spec->eps = 1e-5f;
  spec->momentum = 0.1f;
  spec->k = 3;
  spec->pool_k = 2;
  spec->pool_stride = 2;
  spec->p = 0.5f;
  spec->scale = 1.0f;
  snn_lif_params_init (&spec->lif);
  spec->lif.alpha = 4.0f;
}

SnnModel *
snn_model_new (const SnnShape *input_shape, int num_classes)
{
  SnnModel *m = g_new0 (SnnModel, 1);
  m->input_shape = *input_shape;
  m->num_classes = num_classes;
  m->source = g_strdup ("<model>");
  return m;
}

void
snn_model_append_layer (SnnModel *model, const SnnLayerSpec *spec)
{
  model->layers = g_renew (SnnLayerSpec, model->layers, model->n_layers + 1);
  model->layers[model->n_layers++] = *spec;
}

static void
list_clear (SnnLayerList *list)
{
  for (int i = 0; i < list->n; i++)
    snn_layer_spec_clear (&list->layers[i]);
  g_free (list->layers);
  list->layers = NULL;
  list->n = 0;
}

void
snn_layer_spec_clear (SnnLayerSpec *spec)
{
  if (!spec->block)
    return;
  list_clear (&spec->block->pre);
  list_clear (&spec->block->main);
  list_clear (&spec->block->shortcut);
  g_clear_pointer (&spec->block, g_free);
}

static void
list_copy (SnnLayerList *dst, const SnnLayerList *src)
{
  dst->n = src->n;
  dst->layers = src->n ? g_memdup2 (src->layers, src->n * sizeof (SnnLayerSpec)) : NULL;
  for (int i = 0; i < src->n; i++)
    snn_layer_spec_copy_block (&dst->layers[i], &src->layers[i]);
}

void
snn_layer_spec_copy_block (SnnLayerSpec *dst, const SnnLayerSpec *src)
{
  if (!src->block)
    {
      dst->block = NULL;
      return;
    }
  dst->block = g_new0 (SnnBlock, 1);
  *dst->block = *src->block;
  list_copy (&dst->block->pre, &src->block->pre);
  list_copy (&dst->block->main, &src->block->main);
  list_copy (&dst->block->shortcut, &src->block->shortcut);
}

void
snn_model_remove_layer (SnnModel *model, int index)
{
  g_return_if_fail (index >= 0 && index < model->n_layers);
  snn_layer_spec_clear (&model->layers[index]);
  memmove (model->layers + index, model->layers + index + 1,
           (model->n_layers - index - 1) * sizeof (SnnLayerSpec));
  model->n_layers--;
}

void
snn_model_move_layer (SnnModel *model, int from, int to)
{
  g_return_if_fail (from >= 0 && from < model->n_layers && to >= 0 && to < model->n_layers);
  SnnLayerSpec tmp = model->layers[from];
  if (from < to)
    memmove (model->layers + from, model->layers + from + 1, (to - from) * sizeof tmp);
  else
    memmove (model->layers + to + 1, model->layers + to, (from - to) * sizeof tmp);
  model->layers[to] = tmp;
}

SnnModel *
snn_model_copy (const SnnModel *model)
{
  SnnModel *m = g_new0 (SnnModel, 1);
  *m = *model;
  m->layers = g_memdup2 (model->layers, sizeof (SnnLayerSpec) * MAX (model->n_layers, 1));
  for (int i = 0; i < model->n_layers; i++)
    snn_layer_spec_copy_block (&m->layers[i], &model->layers[i]);
  m->source = g_strdup (model->source);
  return m;
}

void
snn_model_free (SnnModel *model)
{
  if (!model)
    return;
  for (int i = 0; i < model->n_layers; i++)
    snn_layer_spec_clear (&model->layers[i]);
  g_free (model->layers);
  g_free (model->source);
  g_free (model);
}

/* ---- parsing ---- */

typedef struct {
  const char *source;
  const char *path;   /* "3" or "3.main.1"; NULL outside the layer list */
  GError **error;
} ParseCtx;

static gboolean G_GNUC_PRINTF (3, 4)
parse_fail (ParseCtx *ctx, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (ctx->path)
    g_set_error (ctx->error, SNN_MODEL_ERROR, code, "%s: layer %s: %s", ctx->source, ctx->path, msg);
  else
    g_set_error (ctx->error, SNN_MODEL_ERROR, code, "%s: %s", ctx->source, msg);
  g_free (msg);
  return FALSE;
}

static gboolean
get_int (ParseCtx *ctx, JsonObject *obj, const char *key, gboolean required,
         int min, int *out)
{
  JsonNode *n = json_object_get_member (obj, key);
  if (!n)
    return required ? parse_fail (ctx, SNN_ERROR_MISSING, "missing field '%s'", key) : TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' must be an integer", key);
  gint64 v = json_node_get_int (n);
  if (v < min || v > G_MAXINT / 2)
    return parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' is %" G_GINT64_FORMAT ", must be at least %d", key, v, min);
  *out = (int) v;
  return TRUE;
}

static gboolean
get_float (ParseCtx *ctx, JsonObject *obj, const char *key, float *out)
{
  JsonNode *n = json_object_get_member (obj, key);
  if (!n)
    return TRUE;
  GType t = JSON_NODE_HOLDS_VALUE (n) ? json_node_get_value_type (n) : G_TYPE_INVALID;
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE)
    return parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' must be a number", key);
  double v = json_node_get_double (n);
  if (!isfinite (v))
    return parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' is not finite", key);
  *out = (float) v;
  return TRUE;
}

static gboolean
get_bool (ParseCtx *ctx, JsonObject *obj, const char *key, gboolean *out)
{
  JsonNode *n = json_object_get_member (obj, key);
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' must be true or false", key);
  *out = json_node_get_boolean (n);
  return TRUE;
}

static const char *
get_string (ParseCtx *ctx, JsonObject *obj, const char *key, gboolean *ok)
{
  JsonNode *n = json_object_get_member (obj, key);
  *ok = TRUE;
  if (!n)
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    {
      *ok = parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' must be a string", key);
      return NULL;
    }
  return json_node_get_string (n);
}

static gboolean
check_known_fields (ParseCtx *ctx, JsonObject *obj, const char *const *known)
{
  GList *members = json_object_get_members (obj);
  gboolean ok = TRUE;
  for (GList *l = members; l && ok; l = l->next)
    {
      if (g_strcmp0 (l->data, "type") == 0 || g_strcmp0 (l->data, "comment") == 0)
        continue;
      if (!g_strv_contains (known, l->data))
        ok = parse_fail (ctx, SNN_ERROR_INVALID, "unknown field '%s'", (char *) l->data);
    }
  g_list_free (members);
  return ok;
}

static gboolean
parse_ws (ParseCtx *ctx, JsonObject *obj, SnnLayerSpec *spec)
{
  JsonNode *n = json_object_get_member (obj, "ws");
  if (!n)
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_BOOLEAN)
    {
      spec->ws = json_node_get_boolean (n);
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return parse_fail (ctx, SNN_ERROR_INVALID, "field 'ws' must be true, false or {\"gamma\": g, \"eps\": e}");
  JsonObject *o = json_node_get_object (n);
  static const char *const known[] = { "gamma", "eps", NULL };
  spec->ws = TRUE;
  if (!check_known_fields (ctx, o, known) || !get_float (ctx, o, "gamma", &spec->ws_gamma)
      || !get_float (ctx, o, "eps", &spec->ws_eps))
    return FALSE;
  if (spec->ws_eps <= 0)
    return parse_fail (ctx, SNN_ERROR_INVALID, "ws eps must be positive");
  return TRUE;
}

static gboolean
parse_lif (ParseCtx *ctx, JsonObject *obj, SnnLayerSpec *spec)
{
  static const char *const known[] = { "tau", "vth", "reset", "surrogate", "width", "alpha", "detach_reset", NULL };
  SnnLifParams *p = &spec->lif;
  gboolean ok;
  snn_lif_params_init (p);
  p->width = NAN;
  p->alpha = NAN;
  if (!check_known_fields (ctx, obj, known) || !get_float (ctx, obj, "tau", &p->tau)
      || !get_float (ctx, obj, "vth", &p->vth) || !get_float (ctx, obj, "width", &p->width)
      || !get_float (ctx, obj, "alpha", &p->alpha) || !get_bool (ctx, obj, "detach_reset", &p->detach_reset))
    return FALSE;
  const char *reset = get_string (ctx, obj, "reset", &ok);
  if (!ok)
    return FALSE;
  if (reset && g_strcmp0 (reset, "soft") == 0)
    p->reset = SNN_RESET_SOFT;
  else if (reset && g_strcmp0 (reset, "hard") == 0)
    p->reset = SNN_RESET_HARD;
  else if (reset)
    return parse_fail (ctx, SNN_ERROR_INVALID, "reset must be \"soft\" or \"hard\", not \"%s\"", reset);
  const char *sg = get_string (ctx, obj, "surrogate", &ok);
  if (!ok)
    return FALSE;
  if (sg && !snn_surrogate_from_name (sg, &p->surrogate))
    return parse_fail (ctx, SNN_ERROR_INVALID, "unknown surrogate \"%s\" (rectangle, triangle, sigmoid, atan)", sg);
  if (p->tau < 1.0f)
    return parse_fail (ctx, SNN_ERROR_INVALID, "tau must be at least 1 (the step size is 1), is %g", p->tau);
  if (p->vth <= 0)
    return parse_fail (ctx, SNN_ERROR_INVALID, "vth must be positive, is %g", p->vth);
  if (isnan (p->width))
    p->width = p->vth;
  if (isnan (p->alpha))
    p->alpha = p->surrogate == SNN_SURROGATE_ATAN ? 2.0f : 4.0f;
  if (p->width <= 0 || p->alpha <= 0)
    return parse_fail (ctx, SNN_ERROR_INVALID, "width and alpha must be positive");
  return TRUE;
}

static gboolean parse_layer (ParseCtx *ctx, JsonNode *node, SnnLayerSpec *spec);

static void
list_append (SnnLayerList *list, const SnnLayerSpec *spec)
{
  list->layers = g_renew (SnnLayerSpec, list->layers, list->n + 1);
  list->layers[list->n++] = *spec;
}

static gboolean
parse_list (ParseCtx *ctx, JsonObject *obj, const char *key, gboolean required, SnnLayerList *list)
{
  JsonNode *n = json_object_get_member (obj, key);
  if (!n)
    return required ? parse_fail (ctx, SNN_ERROR_MISSING, "missing field '%s' (a list of layers)", key) : TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' must be a list of layers", key);
  JsonArray *arr = json_node_get_array (n);
  if (required && json_array_get_length (arr) == 0)
    return parse_fail (ctx, SNN_ERROR_INVALID, "field '%s' must not be empty", key);
  for (guint j = 0; j < json_array_get_length (arr); j++)
    {
      g_autofree char *path = g_strdup_printf ("%s.%s.%u", ctx->path, key, j);
      ParseCtx sub = { ctx->source, path, ctx->error };
      SnnLayerSpec spec;
      gboolean ok = parse_layer (&sub, json_array_get_element (arr, j), &spec);
      list_append (list, &spec);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static gboolean
parse_block (ParseCtx *ctx, JsonObject *obj, SnnLayerSpec *spec)
{
  static const char *const known[] = { "pre", "main", "shortcut", "shortcut_from", "alpha", "skipinit", NULL };
  SnnBlock *b = spec->block = g_new0 (SnnBlock, 1);
  /* Each level adds two parts to the path ("3.main.1"); every walk over a
   * model recurses per level, so a bound keeps a crafted file off the stack. */
  int depth = 0;
  for (const char *c = ctx->path; c && *c; c++)
    depth += *c == '.';
  if (depth / 2 >= SNN_MAX_NESTING)
    return parse_fail (ctx, SNN_ERROR_INVALID, "residual blocks nested more than %d deep", SNN_MAX_NESTING);
  b->alpha = 1.0f;
  gboolean ok;
  if (!check_known_fields (ctx, obj, known) || !parse_list (ctx, obj, "pre", FALSE, &b->pre)
      || !parse_list (ctx, obj, "main", TRUE, &b->main) || !parse_list (ctx, obj, "shortcut", FALSE, &b->shortcut)
      || !get_float (ctx, obj, "alpha", &b->alpha) || !get_bool (ctx, obj, "skipinit", &b->skipinit))
    return FALSE;
  const char *from = get_string (ctx, obj, "shortcut_from", &ok);
  if (!ok)
    return FALSE;
  b->shortcut_from_pre = b->pre.n > 0;
  if (from && g_str_equal (from, "pre"))
    b->shortcut_from_pre = TRUE;
  else if (from && g_str_equal (from, "input"))
    b->shortcut_from_pre = FALSE;
  else if (from)
    return parse_fail (ctx, SNN_ERROR_INVALID, "shortcut_from must be \"input\" or \"pre\"");
  return TRUE;
}

static gboolean
parse_layer (ParseCtx *ctx, JsonNode *node, SnnLayerSpec *spec)
{
  snn_layer_spec_init (spec, SNN_LAYER_LINEAR);
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return parse_fail (ctx, SNN_ERROR_PARSE, "must be an object with a \"type\"");
  JsonObject *obj = json_node_get_object (node);
  gboolean ok;
  const char *type = get_string (ctx, obj, "type", &ok);
  if (!ok)
    return FALSE;
  if (!type)
    return parse_fail (ctx, SNN_ERROR_MISSING, "missing field 'type'");
  int t = -1;
  for (int i = 0; i < SNN_LAYER_N_TYPES; i++)
    if (g_strcmp0 (type, layer_type_names[i]) == 0)
      t = i;
  if (t < 0)
    return parse_fail (ctx, SNN_ERROR_INVALID,
                       "unknown layer type \"%s\" (linear, conv, avgpool, flatten, bn_step, lif, dropout, "
                       "residual, scale, global_avgpool)", type);
  snn_layer_spec_init (spec, (SnnLayerType) t);
  switch (spec->type)
    {
    case SNN_LAYER_LINEAR:
      {
        static const char *const known[] = { "in", "out", "bias", "ws", NULL };
        return check_known_fields (ctx, obj, known) && get_int (ctx, obj, "in", TRUE, 1, &spec->in)
               && get_int (ctx, obj, "out", TRUE, 1, &spec->out) && get_bool (ctx, obj, "bias", &spec->bias)
               && parse_ws (ctx, obj, spec);
      }
    case SNN_LAYER_CONV:
      {
        static const char *const known[] = { "in_ch", "out_ch", "k", "stride", "pad", "bias", "ws", NULL };
        return check_known_fields (ctx, obj, known) && get_int (ctx, obj, "in_ch", TRUE, 1, &spec->in_ch)
               && get_int (ctx, obj, "out_ch", TRUE, 1, &spec->out_ch) && get_int (ctx, obj, "k", TRUE, 1, &spec->k)
               && get_int (ctx, obj, "stride", FALSE, 1, &spec->stride) && get_int (ctx, obj, "pad", FALSE, 0, &spec->pad)
               && get_bool (ctx, obj, "bias", &spec->bias) && parse_ws (ctx, obj, spec);
      }
    case SNN_LAYER_AVGPOOL:
      {
        static const char *const known[] = { "k", "stride", "pad", NULL };
        spec->pool_stride = 0;
        if (!check_known_fields (ctx, obj, known) || !get_int (ctx, obj, "k", TRUE, 1, &spec->pool_k)
            || !get_int (ctx, obj, "stride", FALSE, 1, &spec->pool_stride)
            || !get_int (ctx, obj, "pad", FALSE, 0, &spec->pool_pad))
          return FALSE;
        if (spec->pool_pad * 2 > spec->pool_k)
          return parse_fail (ctx, SNN_ERROR_INVALID, "avgpool pad must be at most half the window");
        if (spec->pool_stride == 0)
          spec->pool_stride = spec->pool_k;
        return TRUE;
      }
    case SNN_LAYER_FLATTEN:
      {
        static const char *const known[] = { NULL };
        return check_known_fields (ctx, obj, known);
      }
    case SNN_LAYER_BN_STEP:
      {
        static const char *const known[] = { "num_features", "eps", "momentum", NULL };
        if (!check_known_fields (ctx, obj, known) || !get_int (ctx, obj, "num_features", TRUE, 1, &spec->num_features)
            || !get_float (ctx, obj, "eps", &spec->eps) || !get_float (ctx, obj, "momentum", &spec->momentum))
          return FALSE;
        if (spec->eps <= 0 || spec->momentum < 0 || spec->momentum > 1)
          return parse_fail (ctx, SNN_ERROR_INVALID, "bn_step needs eps > 0 and momentum in [0, 1]");
        return TRUE;
      }
    case SNN_LAYER_LIF:
      return parse_lif (ctx, obj, spec);
    case SNN_LAYER_SCALE:
      {
        static const char *const known[] = { "value", NULL };
        if (!json_object_has_member (obj, "value"))
          return parse_fail (ctx, SNN_ERROR_MISSING, "missing field 'value'");
        return check_known_fields (ctx, obj, known) && get_float (ctx, obj, "value", &spec->scale);
      }
    case SNN_LAYER_GLOBAL_AVGPOOL:
      {
        static const char *const known[] = { NULL };
        return check_known_fields (ctx, obj, known);
      }
    case SNN_LAYER_RESIDUAL:
      return parse_block (ctx, obj, spec);
    case SNN_LAYER_DROPOUT:
      {
        static const char *const known[] = { "p", NULL };
        spec->p = -1;
        if (!check_known_fields (ctx, obj, known) || !get_float (ctx, obj, "p", &spec->p))
          return FALSE;
        if (spec->p < 0 || spec->p >= 1)
          return parse_fail (ctx, SNN_ERROR_INVALID, "dropout needs a field 'p' in [0, 1)");
        return TRUE;
      }
    default:
      return FALSE;
    }
}

static gboolean
parse_shape (ParseCtx *ctx, JsonNode *n, SnnShape *shape)
{
  if (!n || !JSON_NODE_HOLDS_ARRAY (n))
    return parse_fail (ctx, SNN_ERROR_MISSING, "'input_shape' must be an array [C, H, W] or [F]");
  JsonArray *a = json_node_get_array (n);
  guint len = json_array_get_length (a);
  if (len != 1 && len != 3)
    return parse_fail (ctx, SNN_ERROR_SHAPE, "'input_shape' must have 1 or 3 entries, has %u", len);
  shape->ndim = (int) len;
  for (guint i = 0; i < len; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64 || json_node_get_int (e) < 1
          || json_node_get_int (e) > (1 << 20))
        return parse_fail (ctx, SNN_ERROR_SHAPE, "'input_shape' entries must be positive integers");
      shape->d[i] = (int) json_node_get_int (e);
    }
  return TRUE;
}

SnnModel *
snn_model_from_json_node (JsonNode *root, const char *source, GError **error)
{
  ParseCtx ctx = { source, NULL, error };
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    {
      parse_fail (&ctx, SNN_ERROR_PARSE, "a model must be a JSON object with input_shape, num_classes and layers");
      return NULL;
    }
  JsonObject *obj = json_node_get_object (root);
  static const char *const known[] = { "input_shape", "num_classes", "layers", "name", "description", NULL };
  SnnShape shape = { 0 };
  int num_classes = 0;
  if (!check_known_fields (&ctx, obj, known) || !parse_shape (&ctx, json_object_get_member (obj, "input_shape"), &shape)
      || !get_int (&ctx, obj, "num_classes", TRUE, 1, &num_classes))
    return NULL;
  JsonNode *layers = json_object_get_member (obj, "layers");
  if (!layers || !JSON_NODE_HOLDS_ARRAY (layers) || json_array_get_length (json_node_get_array (layers)) == 0)
    {
      parse_fail (&ctx, SNN_ERROR_MISSING, "'layers' must be a non-empty array");
      return NULL;
    }
  SnnModel *model = snn_model_new (&shape, num_classes);
  g_free (model->source);
  model->source = g_strdup (source);
  JsonArray *arr = json_node_get_array (layers);
  for (guint i = 0; i < json_array_get_length (arr); i++)
    {
      SnnLayerSpec spec;
      g_autofree char *path = g_strdup_printf ("%u", i);
      ctx.path = path;
      gboolean ok = parse_layer (&ctx, json_array_get_element (arr, i), &spec);
      snn_model_append_layer (model, &spec); /* appended even on failure, so the model frees it */
      if (!ok)
        {
          snn_model_free (model);
          return NULL;
        }
    }
  if (!snn_model_infer_shapes (model, NULL, error))
    {
      g_prefix_error (error, "%s: ", source);
      snn_model_free (model);
      return NULL;
    }
  return model;
}

gboolean
snn_json_check_depth (const char *json, gssize length, const char *source, GError **error)
{
  gsize n = length < 0 ? strlen (json) : (gsize) length;
  int depth = 0;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < n; i++)
    {
      char c = json[i];
      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if ((c == '[' || c == '{') && ++depth > SNN_JSON_MAX_DEPTH)
        {
          g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_PARSE, "%s: nested more than %d levels deep at byte offset %zu",
                       source, SNN_JSON_MAX_DEPTH, i);
          return FALSE;
        }
      else if (c == ']' || c == '}')
        depth--;
    }
  return TRUE;
}

SnnModel *
snn_model_parse (const char *json, gssize length, const char *source, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *local = NULL;
  if (!snn_json_check_depth (json, length, source, error))
    return NULL;
  if (!json_parser_load_from_data (parser, json, length, &local))
    {
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_PARSE, "%s: not valid JSON: %s", source, local->message);
      g_error_free (local);
      return NULL;
    }
  return snn_model_from_json_node (json_parser_get_root (parser), source, error);
}

SnnModel *
snn_model_load_file (const char *path, GError **error)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  GError *local = NULL;
  if (g_file_test (path, G_FILE_TEST_EXISTS) && !g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_INVALID, "%s: not a regular file", path);
      return NULL;
    }
  if (!g_file_get_contents (path, &text, &len, &local))
    {
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_MISSING, "%s: cannot read: %s", path, local->message);
      g_error_free (local);
      return NULL;
    }
  return snn_model_parse (text, (gssize) len, path, error);
}

/* ---- shape inference ---- */

static gboolean G_GNUC_PRINTF (3, 4)
shape_fail (GError **error, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_SHAPE, "layer %s: %s", path, msg);
  g_free (msg);
  return FALSE;
}

static gboolean infer_list (SnnLayerSpec *layers, int n, const char *prefix, SnnShape in, SnnShape *out,
                            GError **error);

static gboolean
same_shape (const SnnShape *a, const SnnShape *b)
{
  if (a->ndim != b->ndim)
    return FALSE;
  for (int i = 0; i < a->ndim; i++)
    if (a->d[i] != b->d[i])
      return FALSE;
  return TRUE;
}

static gboolean
infer_block (SnnLayerSpec *L, const char *path, SnnShape in, SnnShape *out, GError **error)
{
  SnnBlock *b = L->block;
  SnnShape p = in, m, sc;
  g_autofree char *pre = g_strconcat (path, ".pre", NULL);
  g_autofree char *main = g_strconcat (path, ".main", NULL);
  g_autofree char *shortcut = g_strconcat (path, ".shortcut", NULL);
  if (!infer_list (b->pre.layers, b->pre.n, pre, in, &p, error)
      || !infer_list (b->main.layers, b->main.n, main, p, &m, error)
      || !infer_list (b->shortcut.layers, b->shortcut.n, shortcut, b->shortcut_from_pre ? p : in, &sc, error))
    return FALSE;
  if (!same_shape (&m, &sc))
    {
      g_autofree char *ms = snn_shape_to_string (&m);
      g_autofree char *ss = snn_shape_to_string (&sc);
      return shape_fail (error, path, "the main path gives %s but the shortcut %s (add a 1x1 conv shortcut)", ms, ss);
    }
  *out = m;
  return TRUE;
}

/* The output length of a window k with stride and padding over n, in 64
 * bits (inputs are below 2^31, so nothing here overflows); 0: it does not fit. */
static int64_t
window_out (int64_t n, int64_t k, int64_t stride, int64_t pad)
{
  return n + 2 * pad < k ? 0 : (n + 2 * pad - k) / stride + 1;
}

static gboolean
infer_pool (SnnLayerSpec *L, const char *path, const char *ins, SnnShape in, SnnShape *out)
{
  for (int a = 1; a < 3; a++)
    {
      int64_t o = window_out (in.d[a], L->pool_k, L->pool_stride, L->pool_pad);
      if (o < 1)
        return FALSE;
      out->d[a] = (int) o;
    }
  return TRUE;
}

/* Activations per sample and parameter tensors stay below 2^31 elements,
 * so every count the layers compute fits an int and every byte count an
 * int64; bigger models are refused here, by name, not by a crash later. */
#define SNN_MAX_NUMEL ((int64_t) G_MAXINT)

static gboolean
check_sizes (SnnLayerSpec *L, const char *path, const SnnShape *out, GError **error)
{
  if (snn_shape_numel (out) > SNN_MAX_NUMEL)
    {
      g_autofree char *os = snn_shape_to_string (out);
      return shape_fail (error, path, "%s gives %s, more than 2^31 values per sample", snn_layer_type_name (L->type), os);
    }
  SnnParamInfo info[6];
  int np = snn_layer_params (L, info);
  for (int k = 0; k < np; k++)
    if (info[k].numel > SNN_MAX_NUMEL)
      return shape_fail (error, path, "%s has more than 2^31 values in its %s", snn_layer_type_name (L->type),
                         info[k].name);
  return TRUE;
}

static gboolean
infer_layer (SnnLayerSpec *L, const char *path, SnnShape in, GError **error)
{
  SnnShape out = in;
  g_autofree char *ins = snn_shape_to_string (&in);
  switch (L->type)
    {
    case SNN_LAYER_LINEAR:
      if (in.ndim != 1)
        return shape_fail (error, path, "linear expects a flat input, gets %s (add a flatten layer)", ins);
      if (in.d[0] != L->in)
        return shape_fail (error, path, "linear expects %d input features, gets %d", L->in, in.d[0]);
      out.d[0] = L->out;
      break;
    case SNN_LAYER_CONV:
      if (in.ndim != 3)
        return shape_fail (error, path, "conv expects a [C, H, W] input, gets %s", ins);
      if (in.d[0] != L->in_ch)
        return shape_fail (error, path, "conv expects %d input channels, gets %d", L->in_ch, in.d[0]);
      for (int a = 1; a < 3; a++)
        {
          int64_t o = window_out (in.d[a], L->k, L->stride, L->pad);
          if (o < 1)
            return shape_fail (error, path, "conv kernel %d does not fit the input %s with padding %d", L->k, ins, L->pad);
          if (o > SNN_MAX_NUMEL)
            return shape_fail (error, path, "conv padding %d on the input %s gives more than 2^31 values", L->pad, ins);
          out.d[a] = (int) o;
        }
      out.d[0] = L->out_ch;
      break;
    case SNN_LAYER_AVGPOOL:
      if (in.ndim != 3)
        return shape_fail (error, path, "avgpool expects a [C, H, W] input, gets %s", ins);
      if (!infer_pool (L, path, ins, in, &out))
        return shape_fail (error, path, "avgpool window %d is larger than the input %s", L->pool_k, ins);
      break;
    case SNN_LAYER_GLOBAL_AVGPOOL:
      if (in.ndim != 3)
        return shape_fail (error, path, "global_avgpool expects a [C, H, W] input, gets %s", ins);
      out.d[1] = out.d[2] = 1;
      break;
    case SNN_LAYER_FLATTEN:
      out.ndim = 1;
      if (snn_shape_numel (&in) > SNN_MAX_NUMEL)
        return shape_fail (error, path, "flatten of %s gives more than 2^31 features", ins);
      out.d[0] = (int) snn_shape_numel (&in);
      break;
    case SNN_LAYER_BN_STEP:
      if (in.d[0] != L->num_features)
        return shape_fail (error, path, "bn_step expects %d features (channels), gets %d", L->num_features, in.d[0]);
      break;
    case SNN_LAYER_RESIDUAL:
      if (!infer_block (L, path, in, &out, error))
        return FALSE;
      break;
    default:
      break;
    }
  if (!check_sizes (L, path, &out, error))
    return FALSE;
  L->in_shape = in;
  L->out_shape = out;
  return TRUE;
}

static gboolean
infer_list (SnnLayerSpec *layers, int n, const char *prefix, SnnShape in, SnnShape *out, GError **error)
{
  SnnShape cur = in;
  for (int i = 0; i < n; i++)
    {
      g_autofree char *path = prefix ? g_strdup_printf ("%s.%d", prefix, i) : g_strdup_printf ("%d", i);
      if (!infer_layer (&layers[i], path, cur, error))
        return FALSE;
      cur = layers[i].out_shape;
    }
  *out = cur;
  return TRUE;
}

gboolean
snn_model_infer_shapes (SnnModel *model, int *bad_layer, GError **error)
{
  if (bad_layer)
    *bad_layer = -1;
  if (model->n_layers == 0)
    {
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_SHAPE, "the network has no layers");
      return FALSE;
    }
  SnnShape cur = model->input_shape;
  for (int i = 0; i < model->n_layers; i++)
    {
      g_autofree char *path = g_strdup_printf ("%d", i);
      if (!infer_layer (&model->layers[i], path, cur, error))
        {
          if (bad_layer)
            *bad_layer = i;
          return FALSE;
        }
      cur = model->layers[i].out_shape;
    }
  int last_i = model->n_layers - 1;
  g_autofree char *last = g_strdup_printf ("%d", last_i);
  if (model->layers[last_i].type != SNN_LAYER_LINEAR || cur.d[0] != model->num_classes)
    {
      if (bad_layer)
        *bad_layer = last_i;
      if (model->layers[last_i].type != SNN_LAYER_LINEAR)
        return shape_fail (error, last, "the last layer must be a linear readout (no LIF after it), is %s",
                           snn_layer_type_name (model->layers[last_i].type));
      return shape_fail (error, last, "the readout has %d outputs but the model has %d classes", cur.d[0],
                         model->num_classes);
    }
  return TRUE;
}

/* ---- walking the LIF layers ---- */

static int
list_foreach_lif (SnnLayerSpec *layers, int n, const char *prefix, SnnLifFunc fn, gpointer user_data)
{
  int count = 0;
  for (int i = 0; i < n; i++)
    {
      SnnLayerSpec *L = &layers[i];
      g_autofree char *path = prefix ? g_strdup_printf ("%s.%d", prefix, i) : g_strdup_printf ("%d", i);
      if (L->type == SNN_LAYER_LIF)
        {
          if (fn)
            fn (L, path, user_data);
          count++;
        }
      else if (L->type == SNN_LAYER_RESIDUAL && L->block)
        {
          const SnnLayerList *lists[3] = { &L->block->pre, &L->block->main, &L->block->shortcut };
          static const char *const names[3] = { "pre", "main", "shortcut" };
          for (int k = 0; k < 3; k++)
            {
              g_autofree char *sub = g_strdup_printf ("%s.%s", path, names[k]);
              count += list_foreach_lif (lists[k]->layers, lists[k]->n, sub, fn, user_data);
            }
        }
    }
  return count;
}

int
snn_model_foreach_lif (SnnModel *model, SnnLifFunc fn, gpointer user_data)
{
  return list_foreach_lif (model->layers, model->n_layers, NULL, fn, user_data);
}

/* ---- parameters ---- */

static void
param_info (SnnParamInfo *p, const char *name, int ndim, const int64_t *shape, gboolean trainable)
{
  memset (p, 0, sizeof *p);
  g_strlcpy (p->name, name, sizeof p->name);
  p->ndim = ndim;
  p->numel = 1;
  for (int i = 0; i < ndim; i++)
    {
      p->shape[i] = shape[i];
      if (__builtin_mul_overflow (p->numel, shape[i], &p->numel))
        p->numel = G_MAXINT64; /* saturates: shape inference refuses it */
    }
  p->trainable = trainable;
}

int
snn_layer_params (const SnnLayerSpec *L, SnnParamInfo out[6])
{
  int n = 0;
  if (L->type == SNN_LAYER_LINEAR || L->type == SNN_LAYER_CONV)
    {
      gboolean conv = L->type == SNN_LAYER_CONV;
      int64_t o = conv ? L->out_ch : L->out;
      int64_t ws[4] = { o, conv ? L->in_ch : L->in, L->k, L->k };
      param_info (&out[n++], "weight", conv ? 4 : 2, ws, TRUE);
      if (L->bias)
        param_info (&out[n++], "bias", 1, &o, TRUE);
      if (L->ws)
        param_info (&out[n++], "gain", 1, &o, TRUE);
    }
  else if (L->type == SNN_LAYER_RESIDUAL && L->block->skipinit)
    {
      int64_t one = 1;
      param_info (&out[n++], "skipinit_gain", 1, &one, TRUE);
    }
  else if (L->type == SNN_LAYER_BN_STEP)
    {
      int64_t c = L->num_features;
      param_info (&out[n++], "weight", 1, &c, TRUE);
      param_info (&out[n++], "bias", 1, &c, TRUE);
      param_info (&out[n++], "running_mean", 1, &c, FALSE);
      param_info (&out[n++], "running_var", 1, &c, FALSE);
    }
  return n;
}

/* Sums saturate at G_MAXINT64 rather than wrap. */
static int64_t
add_sat (int64_t a, int64_t b)
{
  int64_t r;
  return __builtin_add_overflow (a, b, &r) ? G_MAXINT64 : r;
}

static int64_t
list_param_count (const SnnLayerList *list)
{
  int64_t total = 0;
  for (int i = 0; i < list->n; i++)
    total = add_sat (total, snn_layer_param_count (&list->layers[i]));
  return total;
}

int64_t
snn_layer_param_count (const SnnLayerSpec *spec)
{
  SnnParamInfo info[6];
  int n = snn_layer_params (spec, info);
  int64_t total = 0;
  for (int i = 0; i < n; i++)
    if (info[i].trainable)
      total = add_sat (total, info[i].numel);
  if (spec->block)
    total = add_sat (add_sat (add_sat (total, list_param_count (&spec->block->pre)),
                              list_param_count (&spec->block->main)),
                     list_param_count (&spec->block->shortcut));
  return total;
}

int64_t
snn_model_param_count (const SnnModel *model)
{
  int64_t total = 0;
  for (int i = 0; i < model->n_layers; i++)
    total = add_sat (total, snn_layer_param_count (&model->layers[i]));
  return total;
}

/* ---- writing ---- */

static void
add_ws (JsonBuilder *b, const SnnLayerSpec *L)
{
  if (!L->ws)
    return;
  json_builder_set_member_name (b, "ws");
  if (L->ws_gamma == 1.0f && L->ws_eps == 1e-4f)
    {
      json_builder_add_boolean_value (b, TRUE);
      return;
    }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "gamma");
  json_builder_add_double_value (b, L->ws_gamma);
  json_builder_set_member_name (b, "eps");
  json_builder_add_double_value (b, L->ws_eps);
  json_builder_end_object (b);
}

static void
add_int (JsonBuilder *b, const char *k, int v)
{
  json_builder_set_member_name (b, k);
  json_builder_add_int_value (b, v);
}

static void
add_num (JsonBuilder *b, const char *k, float v)
{
  json_builder_set_member_name (b, k);
  /* Print floats with the digits a user wrote: 1.1f must not become 1.100000023841858. */
  char buf[32];
  g_snprintf (buf, sizeof buf, "%.7g", v);
  json_builder_add_double_value (b, g_ascii_strtod (buf, NULL));
}

static void add_layer (JsonBuilder *b, const SnnLayerSpec *L);

static void
add_list (JsonBuilder *b, const char *key, const SnnLayerList *list)
{
  json_builder_set_member_name (b, key);
  json_builder_begin_array (b);
  for (int i = 0; i < list->n; i++)
    add_layer (b, &list->layers[i]);
  json_builder_end_array (b);
}

static void
add_layer (JsonBuilder *b, const SnnLayerSpec *L)
{
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, snn_layer_type_name (L->type));
  switch (L->type)
    {
    case SNN_LAYER_LINEAR:
      add_int (b, "in", L->in);
      add_int (b, "out", L->out);
      break;
    case SNN_LAYER_CONV:
      add_int (b, "in_ch", L->in_ch);
      add_int (b, "out_ch", L->out_ch);
      add_int (b, "k", L->k);
      add_int (b, "stride", L->stride);
      add_int (b, "pad", L->pad);
      break;
    case SNN_LAYER_AVGPOOL:
      add_int (b, "k", L->pool_k);
      add_int (b, "stride", L->pool_stride);
      if (L->pool_pad)
        add_int (b, "pad", L->pool_pad);
      break;
    case SNN_LAYER_SCALE:
      add_num (b, "value", L->scale);
      break;
    case SNN_LAYER_RESIDUAL:
      if (L->block->pre.n)
        add_list (b, "pre", &L->block->pre);
      add_list (b, "main", &L->block->main);
      if (L->block->shortcut.n)
        add_list (b, "shortcut", &L->block->shortcut);
      json_builder_set_member_name (b, "shortcut_from");
      json_builder_add_string_value (b, L->block->shortcut_from_pre ? "pre" : "input");
      add_num (b, "alpha", L->block->alpha);
      json_builder_set_member_name (b, "skipinit");
      json_builder_add_boolean_value (b, L->block->skipinit);
      break;
    case SNN_LAYER_BN_STEP:
      add_int (b, "num_features", L->num_features);
      add_num (b, "eps", L->eps);
      add_num (b, "momentum", L->momentum);
      break;
    case SNN_LAYER_LIF:
      add_num (b, "tau", L->lif.tau);
      add_num (b, "vth", L->lif.vth);
      json_builder_set_member_name (b, "reset");
      json_builder_add_string_value (b, L->lif.reset == SNN_RESET_HARD ? "hard" : "soft");
      json_builder_set_member_name (b, "surrogate");
      json_builder_add_string_value (b, snn_surrogate_name (L->lif.surrogate));
      add_num (b, "width", L->lif.width);
      if (L->lif.surrogate == SNN_SURROGATE_SIGMOID || L->lif.surrogate == SNN_SURROGATE_ATAN)
        add_num (b, "alpha", L->lif.alpha);
      json_builder_set_member_name (b, "detach_reset");
      json_builder_add_boolean_value (b, L->lif.detach_reset);
      break;
    case SNN_LAYER_DROPOUT:
      add_num (b, "p", L->p);
      break;
    default:
      break;
    }
  if (L->type == SNN_LAYER_LINEAR || L->type == SNN_LAYER_CONV)
    {
      json_builder_set_member_name (b, "bias");
      json_builder_add_boolean_value (b, L->bias);
      add_ws (b, L);
    }
  json_builder_end_object (b);
}

JsonNode *
snn_model_to_json_node (const SnnModel *model)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "input_shape");
  json_builder_begin_array (b);
  for (int i = 0; i < model->input_shape.ndim; i++)
    json_builder_add_int_value (b, model->input_shape.d[i]);
  json_builder_end_array (b);
  add_int (b, "num_classes", model->num_classes);
  json_builder_set_member_name (b, "layers");
  json_builder_begin_array (b);
  for (int i = 0; i < model->n_layers; i++)
    add_layer (b, &model->layers[i]);
  json_builder_end_array (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

char *
snn_model_to_json (const SnnModel *model)
{
  JsonNode *root = snn_model_to_json_node (model);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_indent (gen, 2);
  json_generator_set_root (gen, root);
  char *s = json_generator_to_data (gen, NULL);
  json_node_unref (root);
  return s;
}

gboolean
snn_model_save (const SnnModel *model, const char *path, GError **error)
{
  g_autofree char *text = snn_model_to_json (model);
  return snn_file_write_atomic (path, text, -1, error);
}
