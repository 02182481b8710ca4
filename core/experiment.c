#include "experiment.h"
#include "atomic-file.h"
#include "backend.h"
#include "net.h"
#include "snn-error.h"
#include "snn-config.h"
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

static const char *dataset_names[SNN_DATASET_N_KINDS] = {
  "fashion-mnist", "mnist", "synthetic", "cifar10", "cifar100", "dvs-gesture", "cifar10-dvs", "n-mnist",
  "synthetic-events",
};

const char *
snn_dataset_kind_name (SnnDatasetKind k)
{
  return k < SNN_DATASET_N_KINDS ? dataset_names[k] : "?";
}

gboolean
snn_dataset_kind_from_name (const char *name, SnnDatasetKind *out)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);
  g_strdelimit (lower, "_", '-');
  if (g_str_equal (lower, "synthetic-temporal"))
    {
      *out = SNN_DATASET_SYNTHETIC;
      return TRUE;
    }
  for (int i = 0; i < SNN_DATASET_N_KINDS; i++)
    if (g_str_equal (lower, dataset_names[i]))
      {
        *out = (SnnDatasetKind) i;
        return TRUE;
      }
  return FALSE;
}

gboolean
snn_dataset_kind_is_events (SnnDatasetKind k)
{
  return k == SNN_DATASET_DVS_GESTURE || k == SNN_DATASET_CIFAR10_DVS || k == SNN_DATASET_NMNIST
         || k == SNN_DATASET_SYNTHETIC_EVENTS;
}

void
snn_experiment_init_defaults (SnnExperiment *e)
{
  memset (e, 0, sizeof *e);
  e->name = g_strdup ("experiment");
  e->dataset = SNN_DATASET_FASHION_MNIST;
  e->normalize = TRUE;
  e->frame_cache = TRUE;
  snn_train_config_init (&e->train);
  snn_optim_config_init (&e->optim);
  e->batch_size = 64;
  e->epochs = 1;
  e->seed = 2022;
  e->backend = g_strdup (snn_backend_default_name ());
  e->source = g_strdup ("<experiment>");
}

SnnExperiment *
snn_experiment_new_default (void)
{
  SnnExperiment *e = g_new0 (SnnExperiment, 1);
  snn_experiment_init_defaults (e);
  return e;
}

void
snn_experiment_free (SnnExperiment *e)
{
  if (!e)
    return;
  g_free (e->name);
  g_free (e->model_ref);
  snn_model_free (e->model);
  g_free (e->dataset_path);
  g_free (e->backend);
  g_free (e->source);
  g_free (e);
}

SnnExperiment *
snn_experiment_copy (const SnnExperiment *e)
{
  SnnExperiment *c = g_new0 (SnnExperiment, 1);
  *c = *e;
  c->name = g_strdup (e->name);
  c->model_ref = g_strdup (e->model_ref);
  c->model = e->model ? snn_model_copy (e->model) : NULL;
  c->dataset_path = g_strdup (e->dataset_path);
  c->backend = g_strdup (e->backend);
  c->source = g_strdup (e->source);
  return c;
}

static char *
models_dir_candidates (int i)
{
  switch (i)
    {
    case 0:
      return g_strdup (g_getenv ("SNNWB_MODELS_DIR"));
    case 1:
      return g_strdup (SNN_SOURCE_MODELS_DIR);
    case 2:
      return g_strdup (SNN_MODELS_DIR);
    default:
      return NULL;
    }
}

char *
snn_preset_find (const char *name, const char *suffix)
{
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *dir = models_dir_candidates (i);
      if (!dir)
        continue;
      g_autofree char *file = g_strconcat (name, suffix, NULL);
      char *path = g_build_filename (dir, file, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return path;
      g_free (path);
    }
  return NULL;
}

/* g_ptr_array_sort hands over pointers to the elements. */
static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

char **
snn_preset_list (void)
{
  GPtrArray *names = g_ptr_array_new ();
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *dir = models_dir_candidates (i);
      GDir *d = dir ? g_dir_open (dir, 0, NULL) : NULL;
      if (!d)
        continue;
      const char *f;
      while ((f = g_dir_read_name (d)))
        if (g_str_has_suffix (f, ".experiment.json"))
          {
            char *n = g_strndup (f, strlen (f) - strlen (".experiment.json"));
            gboolean dup = FALSE;
            for (guint j = 0; j < names->len; j++)
              dup |= g_str_equal (names->pdata[j], n);
            if (dup)
              g_free (n);
            else
              g_ptr_array_add (names, n);
          }
      g_dir_close (d);
      if (names->len)
        break;
    }
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (names, FALSE);
}

/* ---- parsing ---- */

static gboolean G_GNUC_PRINTF (3, 4)
fail (GError **error, const char *source, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_INVALID, "%s: %s", source, msg);
  g_free (msg);
  return FALSE;
}

static gboolean
num_member (JsonObject *o, const char *key, double *out, const char *source, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n)
    return TRUE;
  GType t = JSON_NODE_HOLDS_VALUE (n) ? json_node_get_value_type (n) : G_TYPE_INVALID;
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE)
    return fail (error, source, "'%s' must be a number", key);
  *out = json_node_get_double (n);
  if (!isfinite (*out))
    return fail (error, source, "'%s' is not finite", key);
  return TRUE;
}

static gboolean
int_member (JsonObject *o, const char *key, int min, int *out, const char *source, GError **error)
{
  double v = *out;
  if (!num_member (o, key, &v, source, error))
    return FALSE;
  if (v != floor (v) || v < min || v > 1e9)
    return fail (error, source, "'%s' must be an integer of at least %d", key, min);
  *out = (int) v;
  return TRUE;
}

/* A string member (def when absent); any other type is an error naming field. */
static gboolean
str_member (JsonObject *o, const char *key, const char *field, const char *def, const char **out, const char *source,
            GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  *out = def;
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return fail (error, source, "'%s' must be a string", field);
  *out = json_node_get_string (n);
  return TRUE;
}

static gboolean
bool_member (JsonObject *o, const char *key, const char *field, gboolean *out, const char *source, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return fail (error, source, "'%s' must be true or false", field);
  *out = json_node_get_boolean (n);
  return TRUE;
}

/* Seeds are whole numbers in [0, 2^63); doubles only up to 2^53, where they are exact. */
static gboolean
seed_member (JsonObject *o, guint64 *out, const char *source, GError **error)
{
  JsonNode *n = json_object_get_member (o, "seed");
  if (!n)
    return TRUE;
  GType t = JSON_NODE_HOLDS_VALUE (n) ? json_node_get_value_type (n) : G_TYPE_INVALID;
  if (t == G_TYPE_INT64 && json_node_get_int (n) >= 0)
    {
      *out = (guint64) json_node_get_int (n);
      return TRUE;
    }
  double v = t == G_TYPE_DOUBLE ? json_node_get_double (n) : -1;
  if (t == G_TYPE_DOUBLE && v >= 0 && v <= 9007199254740992.0 && v == floor (v))
    {
      *out = (guint64) v;
      return TRUE;
    }
  return fail (error, source, "'seed' must be a whole number from 0 to 2^53");
}

/* The ranges every experiment keeps, whether it came from a file or from overrides. */
static gboolean
validate (const SnnExperiment *e, const char *source, GError **error)
{
  const SnnOptimConfig *o = &e->optim;
  if (e->train.T < 1 || e->train.T > 64)
    return fail (error, source, "'T' = %d must be in 1..64", e->train.T);
  if (e->train.method == SNN_METHOD_SLTT_K && (e->train.K < 1 || e->train.K > e->train.T))
    return fail (error, source, "'K' = %d must be in 1..T (T = %d)", e->train.K, e->train.T);
  if (e->batch_size < 1 || e->epochs < 1)
    return fail (error, source, "'batch_size' and 'epochs' must be at least 1");
  if (e->train_subset < 0 || e->test_subset < 0)
    return fail (error, source, "'dataset.train_subset' and 'dataset.test_subset' must be at least 0 (0: all)");
  if (e->frame_size < 0)
    return fail (error, source, "'dataset.frames.size' must be at least 0 (0: the sensor's size)");
  if (!isfinite (o->lr) || o->lr <= 0)
    return fail (error, source, "'optimizer.lr' must be a positive finite number");
  if (!isfinite (o->momentum) || o->momentum < 0 || !isfinite (o->weight_decay) || o->weight_decay < 0)
    return fail (error, source, "'optimizer.momentum' and 'optimizer.weight_decay' must be finite and at least 0");
  if (!isfinite (o->beta1) || !isfinite (o->beta2) || !isfinite (o->eps) || o->beta1 < 0 || o->beta1 >= 1
      || o->beta2 < 0 || o->beta2 >= 1 || o->eps <= 0)
    return fail (error, source, "'optimizer.beta1' and 'beta2' must be in [0, 1), 'optimizer.eps' positive");
  if (!isfinite (e->train.lambda) || e->train.lambda < 0 || e->train.lambda > 1)
    return fail (error, source, "'loss.lambda' must be in [0, 1]");
  if (!isfinite (e->train.mse_target))
    return fail (error, source, "'loss.mse_target' must be finite");
  if (e->seed > (guint64) G_MAXINT64)
    return fail (error, source, "'seed' must be below 2^63");
  return TRUE;
}

static gboolean
resolve_model (SnnExperiment *e, const char *ref, const char *base_dir, GError **error)
{
  g_autofree char *path = NULL;
  if (g_path_is_absolute (ref) || strchr (ref, '/') || g_str_has_suffix (ref, ".json"))
    path = g_path_is_absolute (ref) || !base_dir ? g_strdup (ref) : g_build_filename (base_dir, ref, NULL);
  else if (!(path = snn_preset_find (ref, ".json")))
    return fail (error, e->source, "no preset model named \"%s\"", ref);
  e->model = snn_model_load_file (path, error);
  return e->model != NULL;
}

static gboolean
parse_dataset (SnnExperiment *e, JsonNode *n, GError **error)
{
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return fail (error, e->source, "'dataset' must be an object");
  JsonObject *o = json_node_get_object (n);
  const char *name, *path;
  if (!str_member (o, "name", "dataset.name", "fashion-mnist", &name, e->source, error)
      || !str_member (o, "path", "dataset.path", NULL, &path, e->source, error))
    return FALSE;
  if (!snn_dataset_kind_from_name (name, &e->dataset))
    return fail (error, e->source,
                 "unknown dataset \"%s\" (fashion-mnist, mnist, synthetic, cifar10, cifar100, dvs-gesture, "
                 "cifar10-dvs, n-mnist, synthetic-events)", name);
  if (path && *path)
    e->dataset_path = g_strdup (path);
  if (!bool_member (o, "normalize", "dataset.normalize", &e->normalize, e->source, error)
      || !bool_member (o, "augment", "dataset.augment", &e->augment, e->source, error)
      || !bool_member (o, "cache", "dataset.cache", &e->frame_cache, e->source, error))
    return FALSE;
  JsonNode *frames = json_object_get_member (o, "frames");
  if (frames && !JSON_NODE_HOLDS_OBJECT (frames))
    return fail (error, e->source, "'dataset.frames' must be an object");
  if (frames)
    {
      JsonObject *f = json_node_get_object (frames);
      const char *split, *resize;
      if (!str_member (f, "split", "dataset.frames.split", "number", &split, e->source, error)
          || !str_member (f, "resize", "dataset.frames.resize", "area", &resize, e->source, error))
        return FALSE;
      if (!g_str_equal (split, "number") && !g_str_equal (split, "time"))
        return fail (error, e->source, "'dataset.frames.split' must be \"number\" or \"time\"");
      if (!g_str_equal (resize, "area") && !g_str_equal (resize, "bilinear"))
        return fail (error, e->source, "'dataset.frames.resize' must be \"area\" or \"bilinear\"");
      e->frame_split_time = g_str_equal (split, "time");
      e->frame_resize_bilinear = g_str_equal (resize, "bilinear");
      if (!int_member (f, "size", 0, &e->frame_size, e->source, error))
        return FALSE;
    }
  return int_member (o, "train_subset", 0, &e->train_subset, e->source, error)
         && int_member (o, "test_subset", 0, &e->test_subset, e->source, error);
}

static gboolean
parse_method (SnnExperiment *e, JsonObject *root, GError **error)
{
  const char *m;
  if (!str_member (root, "method", "method", "sltt", &m, e->source, error))
    return FALSE;
  if (!snn_method_from_name (m, &e->train.method))
    return fail (error, e->source, "unknown method \"%s\" (bptt, sltt, sltt_k)", m);
  if (!int_member (root, "T", 1, &e->train.T, e->source, error) || !int_member (root, "K", 1, &e->train.K, e->source, error))
    return FALSE;
  if (e->train.T > 64)
    return fail (error, e->source, "T = %d is more than the 64 steps supported", e->train.T);
  if (!bool_member (root, "recompute", "recompute", &e->train.recompute, e->source, error))
    return FALSE;
  if (e->train.method == SNN_METHOD_SLTT_K && e->train.K > e->train.T)
    return fail (error, e->source, "K = %d is larger than T = %d", e->train.K, e->train.T);
  return TRUE;
}

static gboolean
parse_loss (SnnExperiment *e, JsonNode *n, GError **error)
{
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return fail (error, e->source, "'loss' must be an object");
  JsonObject *o = json_node_get_object (n);
  double lam = e->train.lambda;
  if (!num_member (o, "lambda", &lam, e->source, error))
    return FALSE;
  if (lam < 0 || lam > 1)
    return fail (error, e->source, "loss lambda must be in [0, 1]");
  e->train.lambda = (float) lam;
  JsonNode *t = json_object_get_member (o, "mse_target");
  if (t && JSON_NODE_HOLDS_VALUE (t) && json_node_get_value_type (t) == G_TYPE_STRING)
    {
      if (g_strcmp0 (json_node_get_string (t), "onehot") != 0)
        return fail (error, e->source, "mse_target must be a number or \"onehot\"");
      e->train.mse_onehot = TRUE;
    }
  else if (t)
    {
      double v = 1.0;
      if (!num_member (o, "mse_target", &v, e->source, error))
        return FALSE;
      e->train.mse_target = (float) v;
    }
  return TRUE;
}

static gboolean
parse_optim (SnnExperiment *e, JsonNode *n, GError **error)
{
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return fail (error, e->source, "'optimizer' must be an object");
  JsonObject *o = json_node_get_object (n);
  const char *type, *sched;
  if (!str_member (o, "type", "optimizer.type", "sgd", &type, e->source, error)
      || !str_member (o, "schedule", "optimizer.schedule", "cosine", &sched, e->source, error))
    return FALSE;
  if (g_ascii_strcasecmp (type, "sgd") == 0)
    e->optim.type = SNN_OPTIM_SGD;
  else if (g_ascii_strcasecmp (type, "adam") == 0)
    {
      e->optim.type = SNN_OPTIM_ADAM;
      e->optim.momentum = 0;
    }
  else
    return fail (error, e->source, "unknown optimizer \"%s\" (sgd, adam)", type);
  if (g_str_equal (sched, "cosine"))
    e->optim.cosine = TRUE;
  else if (g_str_equal (sched, "constant"))
    e->optim.cosine = FALSE;
  else
    return fail (error, e->source, "unknown schedule \"%s\" (cosine, constant)", sched);
  if (!num_member (o, "lr", &e->optim.lr, e->source, error) || !num_member (o, "momentum", &e->optim.momentum, e->source, error)
      || !num_member (o, "weight_decay", &e->optim.weight_decay, e->source, error)
      || !num_member (o, "beta1", &e->optim.beta1, e->source, error) || !num_member (o, "beta2", &e->optim.beta2, e->source, error)
      || !num_member (o, "eps", &e->optim.eps, e->source, error))
    return FALSE;
  return TRUE;
}

/* Any backend name this program knows is accepted, built or not: a file
 * written for a GPU machine still opens here (training then says why not). */
static gboolean
backend_name_ok (const char *name)
{
  return g_str_equal (name, "cpu") || g_str_equal (name, "cuda");
}

static gboolean
parse_backend (SnnExperiment *e, JsonNode *n, GError **error)
{
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING
      || !backend_name_ok (json_node_get_string (n)))
    return fail (error, e->source, "'backend' must be \"cpu\" or \"cuda\"");
  g_free (e->backend);
  e->backend = g_strdup (json_node_get_string (n));
  return TRUE;
}

SnnExperiment *
snn_experiment_parse (const char *json, gssize len, const char *source, const char *base_dir, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *local = NULL;
  if (!snn_json_check_depth (json, len, source, error))
    return NULL;
  if (!json_parser_load_from_data (parser, json, len, &local))
    {
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_PARSE, "%s: not valid JSON: %s", source, local->message);
      g_error_free (local);
      return NULL;
    }
  JsonNode *root = json_parser_get_root (parser);
  SnnExperiment *e = snn_experiment_new_default ();
  g_free (e->source);
  e->source = g_strdup (source);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    {
      fail (error, source, "an experiment must be a JSON object");
      goto bad;
    }
  JsonObject *o = json_node_get_object (root);
  const char *name;
  if (!str_member (o, "name", "name", "experiment", &name, source, error))
    goto bad;
  g_free (e->name);
  e->name = g_strdup (name);
  JsonNode *model = json_object_get_member (o, "model");
  if (!model)
    {
      fail (error, source, "missing 'model' (a preset name, a path or an inline model)");
      goto bad;
    }
  if (JSON_NODE_HOLDS_OBJECT (model))
    e->model = snn_model_from_json_node (model, source, error);
  else if (JSON_NODE_HOLDS_VALUE (model) && json_node_get_value_type (model) == G_TYPE_STRING)
    {
      e->model_ref = g_strdup (json_node_get_string (model));
      resolve_model (e, e->model_ref, base_dir, error);
    }
  else
    fail (error, source, "'model' must be a preset name, a path or an object");
  if (!e->model)
    goto bad;
  if (!parse_dataset (e, json_object_get_member (o, "dataset"), error) || !parse_method (e, o, error)
      || !parse_loss (e, json_object_get_member (o, "loss"), error)
      || !parse_optim (e, json_object_get_member (o, "optimizer"), error)
      || !int_member (o, "batch_size", 1, &e->batch_size, source, error)
      || !int_member (o, "epochs", 1, &e->epochs, source, error) || !seed_member (o, &e->seed, source, error) || !validate (e, source, error))
    goto bad;
  if (!parse_backend (e, json_object_get_member (o, "backend"), error))
    goto bad;
  return e;
bad:
  snn_experiment_free (e);
  return NULL;
}

SnnExperiment *
snn_experiment_load (const char *path_or_preset, GError **error)
{
  g_autofree char *path = NULL;
  if (g_file_test (path_or_preset, G_FILE_TEST_IS_REGULAR))
    path = g_strdup (path_or_preset);
  else if (!strchr (path_or_preset, '/') && (path = snn_preset_find (path_or_preset, ".experiment.json")) == NULL)
    {
      g_auto (GStrv) names = snn_preset_list ();
      g_autofree char *list = g_strjoinv (", ", names);
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_MISSING, "%s: no such file or preset (presets: %s)",
                   path_or_preset, list);
      return NULL;
    }
  if (!path)
    path = g_strdup (path_or_preset);
  if (g_file_test (path, G_FILE_TEST_EXISTS) && !g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_INVALID, "%s: not a regular file", path);
      return NULL;
    }
  g_autofree char *text = NULL;
  gsize len;
  GError *local = NULL;
  if (!g_file_get_contents (path, &text, &len, &local))
    {
      g_set_error (error, SNN_MODEL_ERROR, SNN_ERROR_MISSING, "%s: cannot read: %s", path, local->message);
      g_error_free (local);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (path);
  return snn_experiment_parse (text, (gssize) len, path, dir, error);
}

/* json-glib writes a double such as 1e-08 as "1e-08.0", which is not JSON:
 * drop a ".0" that follows an exponent (outside strings). */
static void
fix_exponents (char *s)
{
  gboolean in_str = FALSE, exp = FALSE;
  char *w = s;
  for (char *r = s; *r; r++)
    {
      if (in_str)
        {
          if (*r == '\\' && r[1])
            *w++ = *r++;
          else if (*r == '"')
            in_str = FALSE;
        }
      else if (*r == '"')
        in_str = TRUE;
      else if (*r == 'e' || *r == 'E')
        exp = TRUE;
      else if (exp && r[0] == '.' && r[1] == '0' && !g_ascii_isdigit (r[2]))
        {
          r++;
          continue;
        }
      else if (!g_ascii_isdigit (*r) && *r != '-' && *r != '+')
        exp = FALSE;
      *w++ = *r;
    }
  *w = 0;
}

char *
snn_experiment_to_json (const SnnExperiment *e)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
#define STR(k, v) (json_builder_set_member_name (b, k), json_builder_add_string_value (b, v))
#define INT(k, v) (json_builder_set_member_name (b, k), json_builder_add_int_value (b, v))
#define NUM(k, v) (json_builder_set_member_name (b, k), json_builder_add_double_value (b, v))
  STR ("name", e->name);
  json_builder_set_member_name (b, "model");
  json_builder_add_value (b, snn_model_to_json_node (e->model));
  json_builder_set_member_name (b, "dataset");
  json_builder_begin_object (b);
  STR ("name", snn_dataset_kind_name (e->dataset));
  if (e->dataset_path)
    STR ("path", e->dataset_path);
  INT ("train_subset", e->train_subset);
  INT ("test_subset", e->test_subset);
  json_builder_set_member_name (b, "normalize");
  json_builder_add_boolean_value (b, e->normalize);
  json_builder_set_member_name (b, "augment");
  json_builder_add_boolean_value (b, e->augment);
  if (snn_dataset_kind_is_events (e->dataset))
    {
      json_builder_set_member_name (b, "cache");
      json_builder_add_boolean_value (b, e->frame_cache);
      json_builder_set_member_name (b, "frames");
      json_builder_begin_object (b);
      STR ("split", e->frame_split_time ? "time" : "number");
      INT ("size", e->frame_size);
      STR ("resize", e->frame_resize_bilinear ? "bilinear" : "area");
      json_builder_end_object (b);
    }
  json_builder_end_object (b);
  INT ("T", e->train.T);
  STR ("method", snn_method_name (e->train.method));
  INT ("K", e->train.K);
  json_builder_set_member_name (b, "recompute");
  json_builder_add_boolean_value (b, e->train.recompute);
  json_builder_set_member_name (b, "loss");
  json_builder_begin_object (b);
  NUM ("lambda", e->train.lambda);
  if (e->train.mse_onehot)
    STR ("mse_target", "onehot");
  else
    NUM ("mse_target", e->train.mse_target);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "optimizer");
  json_builder_begin_object (b);
  STR ("type", e->optim.type == SNN_OPTIM_ADAM ? "adam" : "sgd");
  NUM ("lr", e->optim.lr);
  if (e->optim.type == SNN_OPTIM_SGD)
    NUM ("momentum", e->optim.momentum);
  else
    {
      NUM ("beta1", e->optim.beta1);
      NUM ("beta2", e->optim.beta2);
      NUM ("eps", e->optim.eps);
    }
  NUM ("weight_decay", e->optim.weight_decay);
  STR ("schedule", e->optim.cosine ? "cosine" : "constant");
  json_builder_end_object (b);
  INT ("batch_size", e->batch_size);
  INT ("epochs", e->epochs);
  INT ("seed", (gint64) e->seed);
  STR ("backend", e->backend ? e->backend : snn_backend_default_name ());
#undef STR
#undef INT
#undef NUM
  json_builder_end_object (b);
  JsonNode *root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  char *s = json_generator_to_data (gen, NULL);
  json_node_unref (root);
  fix_exponents (s);
  return s;
}

gboolean
snn_experiment_save (const SnnExperiment *e, const char *path, GError **error)
{
  g_autofree char *text = snn_experiment_to_json (e);
  return snn_file_write_atomic (path, text, -1, error);
}

/* One LIF override, applied by snn_model_foreach_lif to every LIF layer. */
typedef struct {
  const char *key, *val;
  double num;
  SnnSurrogate sg;
} LifOverride;

static void
apply_lif_override (SnnLayerSpec *L, const char *path, gpointer data)
{
  const LifOverride *o = data;
  SnnLifParams *p = &L->lif;
  if (g_str_equal (o->key, "tau"))
    p->tau = (float) o->num;
  else if (g_str_equal (o->key, "vth"))
    p->vth = (float) o->num;
  else if (g_str_equal (o->key, "width"))
    p->width = (float) o->num;
  else if (g_str_equal (o->key, "surrogate"))
    p->surrogate = o->sg;
  else if (g_str_equal (o->key, "reset"))
    p->reset = g_str_equal (o->val, "hard") ? SNN_RESET_HARD : SNN_RESET_SOFT;
  else
    p->detach_reset = g_str_equal (o->val, "true") || g_str_equal (o->val, "1");
}

static gboolean
lif_override (SnnExperiment *e, const char *kv, const char *key, const char *val, gboolean is_num, double num,
              GError **error)
{
  LifOverride o = { key, val, num, SNN_SURROGATE_TRIANGLE };
  if (g_str_equal (key, "surrogate") && !snn_surrogate_from_name (val, &o.sg))
    return fail (error, kv, "unknown surrogate \"%s\" (rectangle, triangle, sigmoid, atan)", val);
  if (g_str_equal (key, "reset") && !g_str_equal (val, "soft") && !g_str_equal (val, "hard"))
    return fail (error, kv, "reset must be soft or hard");
  if (g_str_equal (key, "detach_reset") && !g_strv_contains ((const char *const[]) { "true", "false", "1", "0", NULL }, val))
    return fail (error, kv, "detach_reset must be true or false");
  if ((g_str_equal (key, "tau") && (!is_num || num < 1 || num > 1e6))
      || ((g_str_equal (key, "vth") || g_str_equal (key, "width")) && (!is_num || num <= 0 || num > 1e6)))
    return fail (error, kv, "'%s' needs a number (tau in [1, 1e6], vth and width in (0, 1e6])", key);
  snn_model_foreach_lif (e->model, apply_lif_override, &o);
  return TRUE;
}

/* A whole number in [min, 1e9] into *out, or an error naming the key. */
static gboolean
int_override (const char *kv, const char *key, gboolean is_num, double num, int min, int *out, GError **error)
{
  if (!is_num || num != floor (num) || num < min || num > 1e9)
    return fail (error, kv, "'%s' needs a whole number of at least %d", key, min);
  *out = (int) num;
  return TRUE;
}

gboolean
snn_experiment_apply_override (SnnExperiment *e, const char *kv, GError **error)
{
  const char *eq = strchr (kv, '=');
  if (!eq)
    return fail (error, kv, "an override must look like key=value");
  g_autofree char *key = g_strndup (kv, eq - kv);
  const char *val = eq + 1;
  char *end = NULL;
  double num = g_ascii_strtod (val, &end);
  gboolean is_num = end && end != val && *end == '\0' && isfinite (num);
#define NEED_NUM() if (!is_num) return fail (error, kv, "'%s' needs a finite number", key)
#define INT(min, field) if (!int_override (kv, key, is_num, num, min, &(field), error)) return FALSE
  if (g_str_equal (key, "method"))
    {
      if (!snn_method_from_name (val, &e->train.method))
        return fail (error, kv, "unknown method \"%s\" (bptt, sltt, sltt_k)", val);
    }
  else if (g_str_equal (key, "T")) { INT (1, e->train.T); }
  else if (g_str_equal (key, "K")) { INT (1, e->train.K); }
  else if (g_str_equal (key, "recompute"))
    {
      if (!g_str_equal (val, "true") && !g_str_equal (val, "false"))
        return fail (error, kv, "'recompute' must be true or false");
      e->train.recompute = g_str_equal (val, "true");
    }
  else if (g_str_equal (key, "lr")) { NEED_NUM (); e->optim.lr = num; }
  else if (g_str_equal (key, "epochs")) { INT (1, e->epochs); }
  else if (g_str_equal (key, "batch_size")) { INT (1, e->batch_size); }
  else if (g_str_equal (key, "seed"))
    {
      guint64 seed;
      if (!g_ascii_string_to_unsigned (val, 10, 0, G_MAXINT64, &seed, NULL))
        return fail (error, kv, "'seed' needs a whole number from 0 to 2^63 - 1");
      e->seed = seed;
    }
  else if (g_str_equal (key, "train_subset")) { INT (0, e->train_subset); }
  else if (g_str_equal (key, "test_subset")) { INT (0, e->test_subset); }
  else if (g_str_equal (key, "lambda")) { NEED_NUM (); e->train.lambda = (float) num; }
  else if (g_str_equal (key, "momentum")) { NEED_NUM (); e->optim.momentum = num; }
  else if (g_str_equal (key, "weight_decay")) { NEED_NUM (); e->optim.weight_decay = num; }
  else if (g_str_equal (key, "mse_target"))
    {
      e->train.mse_onehot = g_str_equal (val, "onehot");
      if (!e->train.mse_onehot)
        {
          NEED_NUM ();
          e->train.mse_target = (float) num;
        }
    }
  else if (g_str_equal (key, "optimizer"))
    {
      if (g_str_equal (val, "adam"))
        e->optim.type = SNN_OPTIM_ADAM;
      else if (g_str_equal (val, "sgd"))
        e->optim.type = SNN_OPTIM_SGD;
      else
        return fail (error, kv, "unknown optimizer \"%s\"", val);
    }
  else if (g_str_equal (key, "schedule"))
    {
      if (!g_str_equal (val, "cosine") && !g_str_equal (val, "constant"))
        return fail (error, kv, "unknown schedule \"%s\" (cosine, constant)", val);
      e->optim.cosine = g_str_equal (val, "cosine");
    }
  else if (g_str_equal (key, "dataset"))
    {
      if (!snn_dataset_kind_from_name (val, &e->dataset))
        return fail (error, kv, "unknown dataset \"%s\"", val);
    }
  else if (g_str_equal (key, "frame_size")) { INT (0, e->frame_size); }
  else if (g_str_equal (key, "frame_split"))
    {
      if (!g_str_equal (val, "time") && !g_str_equal (val, "number"))
        return fail (error, kv, "frame_split must be number or time");
      e->frame_split_time = g_str_equal (val, "time");
    }
  else if (g_str_equal (key, "augment"))
    e->augment = g_str_equal (val, "true") || g_str_equal (val, "1");
  else if (g_str_equal (key, "tau") || g_str_equal (key, "vth") || g_str_equal (key, "width")
           || g_str_equal (key, "surrogate") || g_str_equal (key, "reset") || g_str_equal (key, "detach_reset"))
    {
      if (!lif_override (e, kv, key, val, is_num, num, error))
        return FALSE;
    }
  else if (g_str_equal (key, "backend"))
    {
      if (!backend_name_ok (val))
        return fail (error, kv, "unknown backend \"%s\" (cpu or cuda)", val);
      g_free (e->backend);
      e->backend = g_strdup (val);
    }
  else if (g_str_equal (key, "dataset_path"))
    {
      g_free (e->dataset_path);
      e->dataset_path = g_strdup (val);
    }
  else
    return fail (error, kv, "unknown setting '%s'", key);
#undef NEED_NUM
#undef INT
  return validate (e, kv, error);
}

gboolean
snn_experiment_check_memory (const SnnExperiment *e, GError **error)
{
  int steps = e->train.method == SNN_METHOD_BPTT ? e->train.T : 1;
  int states = e->optim.type == SNN_OPTIM_ADAM ? 2 : 1;
  int64_t bytes = snn_model_predict_bytes (e->model, e->batch_size, steps, states);
  g_autofree char *what = g_strdup_printf ("%s (batch_size %d, T %d)", e->source, e->batch_size, e->train.T);
  return snn_memory_check (bytes, what, error);
}
