#include "export.h"
#include "atomic-file.h"
#include "backend.h"
#include "net.h"
#include "snn-error.h"
#include "export-resources.h"
#include <glib/gstdio.h>
#include <errno.h>
#include <string.h>

/* A float32 value written so that float32(python value) gives it back. */
static void
put_float (GString *s, float v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd (buf, sizeof buf, "%.9g", v);
  g_string_append (s, buf);
  if (!strpbrk (buf, ".en"))
    g_string_append (s, ".0");
}

static const char *
py_bool (gboolean b)
{
  return b ? "True" : "False";
}

static void put_list (GString *s, const SnnLayerList *list, int indent);

static void
put_ws (GString *s, const SnnLayerSpec *l)
{
  if (!l->ws)
    {
      g_string_append (s, "None");
      return;
    }
  g_string_append_c (s, '(');
  put_float (s, l->ws_gamma);
  g_string_append (s, ", ");
  put_float (s, l->ws_eps);
  g_string_append_c (s, ')');
}

static void
put_lif (GString *s, const SnnLifParams *p)
{
  g_string_append (s, "LIF(tau=");
  put_float (s, p->tau);
  g_string_append (s, ", vth=");
  put_float (s, p->vth);
  g_string_append_printf (s, ", reset=\"%s\", surrogate=\"%s\", width=", p->reset == SNN_RESET_HARD ? "hard" : "soft",
                          snn_surrogate_name (p->surrogate));
  put_float (s, p->width);
  g_string_append (s, ", alpha=");
  put_float (s, p->alpha);
  g_string_append_printf (s, ", detach_reset=%s)", py_bool (p->detach_reset));
}

/* One layer as a constructor call (no trailing comma or newline). */
static void
put_layer (GString *s, const SnnLayerSpec *l, int indent)
{
  switch (l->type)
    {
    case SNN_LAYER_LINEAR:
      g_string_append_printf (s, "Linear(%d, %d, bias=%s, ws=", l->in, l->out, py_bool (l->bias));
      put_ws (s, l);
      g_string_append_c (s, ')');
      break;
    case SNN_LAYER_CONV:
      g_string_append_printf (s, "Conv(%d, %d, %d, stride=%d, pad=%d, bias=%s, ws=", l->in_ch, l->out_ch, l->k,
                              l->stride, l->pad, py_bool (l->bias));
      put_ws (s, l);
      g_string_append_c (s, ')');
      break;
    case SNN_LAYER_AVGPOOL:
      g_string_append_printf (s, "AvgPool(%d, stride=%d, pad=%d)", l->pool_k, l->pool_stride, l->pool_pad);
      break;
    case SNN_LAYER_GLOBAL_AVGPOOL:
      g_string_append (s, "GlobalAvgPool()");
      break;
    case SNN_LAYER_FLATTEN:
      g_string_append (s, "Flatten()");
      break;
    case SNN_LAYER_SCALE:
      g_string_append (s, "Scale(");
      put_float (s, l->scale);
      g_string_append_c (s, ')');
      break;
    case SNN_LAYER_BN_STEP:
      g_string_append_printf (s, "BNStep(%d, eps=", l->num_features);
      put_float (s, l->eps);
      g_string_append (s, ", momentum=");
      put_float (s, l->momentum);
      g_string_append_c (s, ')');
      break;
    case SNN_LAYER_LIF:
      put_lif (s, &l->lif);
      break;
    case SNN_LAYER_DROPOUT:
      {
        g_string_append (s, "Dropout(");
        put_float (s, l->p);
        g_string_append (s, ", (");
        for (int i = 0; i < l->out_shape.ndim; i++)
          g_string_append_printf (s, "%d, ", l->out_shape.d[i]);
        g_string_append (s, "))");
        break;
      }
    case SNN_LAYER_RESIDUAL:
      {
        const SnnBlock *b = l->block;
        const SnnLayerList *parts[3] = { &b->main, &b->pre, &b->shortcut };
        const char *names[3] = { "main", "pre", "shortcut" };
        g_string_append (s, "Residual(\n");
        for (int p = 0; p < 3; p++)
          {
            g_string_append_printf (s, "%*s%s=", indent + 4, "", names[p]);
            put_list (s, parts[p], indent + 4);
            g_string_append (s, ",\n");
          }
        g_string_append_printf (s, "%*sshortcut_from_pre=%s, alpha=", indent + 4, "", py_bool (b->shortcut_from_pre));
        put_float (s, b->alpha);
        g_string_append_printf (s, ", skipinit=%s)", py_bool (b->skipinit));
        break;
      }
    default:
      g_string_append (s, "None");
    }
}

static void
put_list (GString *s, const SnnLayerList *list, int indent)
{
  if (list->n == 0)
    {
      g_string_append (s, "[]");
      return;
    }
  g_string_append (s, "[\n");
  for (int i = 0; i < list->n; i++)
    {
      const SnnLayerSpec *l = &list->layers[i];
      g_string_append_printf (s, "%*s", indent + 4, "");
      put_layer (s, l, indent + 4);
      g_autofree char *shape = snn_shape_to_string (&l->out_shape);
      g_string_append_printf (s, ",  # %d: %s -> %s\n", i, snn_layer_type_name (l->type), shape);
    }
  g_string_append_printf (s, "%*s]", indent, "");
}

char *
snn_export_model_code (const SnnModel *model)
{
  GString *s = g_string_new ("def build_model():\n    \"\"\"The network of model.json.\"\"\"\n");
  g_string_append (s, "    return SpikingNet([");
  for (int i = 0; i < model->input_shape.ndim; i++)
    g_string_append_printf (s, "%s%d", i ? ", " : "", model->input_shape.d[i]);
  g_string_append_printf (s, "], %d, ", model->num_classes);
  SnnLayerList top = { model->n_layers, model->layers };
  put_list (s, &top, 4);
  g_string_append (s, ")\n");
  return g_string_free (s, FALSE);
}

static char *
resource_text (const char *name)
{
  g_autofree char *path = g_strconcat ("/org/snnwb/export/", name, NULL);
  GBytes *b = g_resource_lookup_data (snn_export_get_resource (), path, 0, NULL);
  g_assert (b != NULL);
  gsize n;
  const char *data = g_bytes_get_data (b, &n);
  char *text = g_strndup (data, n);
  g_bytes_unref (b);
  return text;
}

static char *
replace (const char *text, const char *key, const char *value)
{
  g_auto (GStrv) parts = g_strsplit (text, key, -1);
  return g_strjoinv (value, parts);
}

static char *
model_py (const SnnModel *model, const char *name)
{
  g_autofree char *tmpl = resource_text ("model.py.in");
  g_autofree char *code = snn_export_model_code (model);
  g_autofree char *a = replace (tmpl, "@GENERATED@", code);
  return replace (a, "@NAME@", name);
}

static char *
readme (const SnnExperiment *e, const SnnModel *model, const char *name)
{
  g_autofree char *tmpl = resource_text ("README.md.in");
  g_autofree char *shape = snn_shape_to_string (&model->input_shape);
  g_autofree char *what = e ? g_strdup_printf ("%s, T = %d, batch %d, %d epoch%s, %s", snn_method_name (e->train.method),
                                               e->train.T, e->batch_size, e->epochs, e->epochs == 1 ? "" : "s",
                                               snn_dataset_kind_name (e->dataset))
                            : g_strdup ("no experiment: the network only (training needs --experiment FILE)");
  g_autofree char *params = g_strdup_printf ("%" G_GINT64_FORMAT, snn_model_param_count (model));
  g_autofree char *a = replace (tmpl, "@NAME@", name);
  g_autofree char *b = replace (a, "@INPUT@", shape);
  g_autofree char *c = replace (b, "@PARAMS@", params);
  return replace (c, "@EXPERIMENT@", what);
}

static const char *const written[] = { "model.py", "train.py", "README.md", "model.json", "weights.npz",
                                       "experiment.json", NULL };

static gboolean
write_text (const char *dir, const char *file, const char *text, GError **error)
{
  g_autofree char *path = g_build_filename (dir, file, NULL);
  return snn_file_write_atomic (path, text, -1, error);
}

/* The weights as the network holds them: checked by name and shape, or
 * initialised from the seed. */
static SnnNet *
export_net (const SnnModel *model, const SnnNpz *weights, guint64 seed, GError **error)
{
  /* The export reads the weights on the host, whatever the experiment's backend. */
  const SnnBackend *cpu = snn_backend_get ("cpu", error);
  if (!cpu)
    return NULL;
  SnnNet *net = snn_net_new (model, cpu);
  snn_net_init_default (net, seed);
  if (weights && !snn_net_set_from_npz (net, weights, "weights", error))
    {
      snn_net_free (net);
      return NULL;
    }
  return net;
}

gboolean
snn_export_pytorch (const SnnExperiment *e, const SnnModel *model, const SnnNpz *weights, guint64 seed,
                    const char *dir, GError **error)
{
  if (e)
    model = e->model;
  g_return_val_if_fail (model != NULL && dir != NULL, FALSE);
  for (int i = 0; written[i]; i++)
    {
      g_autofree char *path = g_build_filename (dir, written[i], NULL);
      if (g_file_test (path, G_FILE_TEST_EXISTS))
        {
          g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: already exists; not overwriting it", path);
          return FALSE;
        }
    }
  SnnNet *net = export_net (model, weights, seed, error);
  if (!net)
    return FALSE;
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      int err = errno;
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: cannot create the folder: %s", dir, g_strerror (err));
      snn_net_free (net);
      return FALSE;
    }
  const char *name = e && e->name ? e->name : "model";
  g_autofree char *mpy = model_py (model, name);
  g_autofree char *tpy = resource_text ("train.py");
  g_autofree char *rd = readme (e, model, name);
  g_autofree char *mjson_path = g_build_filename (dir, "model.json", NULL);
  g_autofree char *w_path = g_build_filename (dir, "weights.npz", NULL);
  g_autofree char *e_path = g_build_filename (dir, "experiment.json", NULL);
  gboolean ok = write_text (dir, "model.py", mpy, error) && write_text (dir, "train.py", tpy, error)
                && write_text (dir, "README.md", rd, error) && snn_model_save (model, mjson_path, error)
                && snn_net_save_npz (net, w_path, error) && (!e || snn_experiment_save (e, e_path, error));
  snn_net_free (net);
  return ok;
}

typedef struct {
  SnnExperiment *e;
  SnnNpz *weights;
  char *dir;
} ExportJob;

static void
export_job_free (gpointer data)
{
  ExportJob *j = data;
  snn_experiment_free (j->e);
  snn_npz_free (j->weights);
  g_free (j->dir);
  g_free (j);
}

static void
export_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  ExportJob *j = data;
  GError *error = NULL;
  if (snn_export_pytorch (j->e, NULL, j->weights, j->e->seed, j->dir, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

void
snn_export_pytorch_async (SnnExperiment *e, SnnNpz *weights, const char *dir, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  ExportJob *j = g_new0 (ExportJob, 1);
  j->e = e;
  j->weights = weights;
  j->dir = g_strdup (dir);
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_task_data (task, j, export_job_free);
  g_task_run_in_thread (task, export_thread);
  g_object_unref (task);
}

gboolean
snn_export_pytorch_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
