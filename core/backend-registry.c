/* The backends by name: the one place that knows which were built. */
#include "backends/cpu/backend-cpu.h"
#include "snn-config.h"
#include "snn-error.h"
#include <stdlib.h>
#ifdef SNN_HAVE_CUDA
#include "backends/cuda/backend-cuda.h"
#include <gmodule.h>
#endif

const char *
snn_backend_default_name (void)
{
  const char *env = g_getenv ("SNNWB_BACKEND");
  return env && *env ? env : "cpu";
}

const char *
snn_backend_built (void)
{
#ifdef SNN_HAVE_CUDA
  return "cpu, cuda";
#else
  return "cpu";
#endif
}

#ifdef SNN_HAVE_CUDA
static SnnCudaOpenFunc cuda_open;
static SnnCudaDescribeFunc cuda_describe;

/* The module from $SNNWB_CUDA_MODULE, the build tree or the installed
 * library folder: loaded once, never unloaded. */
static gboolean
load_cuda_module (GError **error)
{
  static gsize done = 0;
  static char *why;
  if (g_once_init_enter (&done))
    {
      const char *paths[] = { g_getenv ("SNNWB_CUDA_MODULE"), SNN_CUDA_MODULE_BUILT, SNN_CUDA_MODULE_INSTALLED };
      GString *tried = g_string_new (NULL);
      for (guint i = 0; i < G_N_ELEMENTS (paths) && !cuda_open; i++)
        {
          if (!paths[i] || !g_file_test (paths[i], G_FILE_TEST_EXISTS))
            continue;
          GModule *mod = g_module_open (paths[i], G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
          gpointer open_fn = NULL, describe_fn = NULL;
          if (mod && g_module_symbol (mod, SNN_CUDA_OPEN_SYMBOL, &open_fn)
              && g_module_symbol (mod, SNN_CUDA_DESCRIBE_SYMBOL, &describe_fn))
            {
              g_module_make_resident (mod);
              cuda_describe = (SnnCudaDescribeFunc) describe_fn;
              cuda_open = (SnnCudaOpenFunc) open_fn;
            }
          else
            g_string_append_printf (tried, "; %s", g_module_error ());
        }
      if (!cuda_open)
        why = g_strdup_printf ("backend \"cuda\": its module (libsnnwb-cuda) cannot be loaded%s",
                               tried->len ? tried->str : ": not found");
      g_string_free (tried, TRUE);
      g_once_init_leave (&done, 1);
    }
  if (!cuda_open)
    g_set_error_literal (error, SNN_BACKEND_ERROR, SNN_ERROR_MISSING, why);
  return cuda_open != NULL;
}
#endif

const SnnBackend *
snn_backend_get (const char *name, GError **error)
{
  if (!name)
    name = snn_backend_default_name ();
  if (g_str_equal (name, "cpu"))
    return snn_backend_cpu ();
  if (g_str_equal (name, "cuda"))
    {
#ifdef SNN_HAVE_CUDA
      char why[512];
      const SnnBackend *be = load_cuda_module (error) ? cuda_open (why, sizeof why) : NULL;
      if (!be && cuda_open)
        g_set_error (error, SNN_BACKEND_ERROR, SNN_ERROR_UNSUPPORTED, "backend \"cuda\": %s", why);
      return be;
#else
      g_set_error (error, SNN_BACKEND_ERROR, SNN_ERROR_UNSUPPORTED,
                   "backend \"cuda\": this build has no CUDA backend (nvcc and cuBLAS were not found, or "
                   "-Dcuda=disabled; backends built: %s)", snn_backend_built ());
      return NULL;
#endif
    }
  g_set_error (error, SNN_BACKEND_ERROR, SNN_ERROR_INVALID, "unknown backend \"%s\" (cpu or cuda; built: %s)", name,
               snn_backend_built ());
  return NULL;
}

char *
snn_backend_describe (const SnnBackend *be)
{
  if (g_str_equal (be->name, "cpu"))
    {
      g_autofree char *blas = snn_backend_cpu_describe ();
      return g_strdup_printf ("cpu (%s)", blas);
    }
#ifdef SNN_HAVE_CUDA
  if (g_str_equal (be->name, "cuda"))
    {
      char dev[512];
      cuda_describe (dev, sizeof dev);
      return g_strdup_printf ("cuda (%s)", dev);
    }
#endif
  return g_strdup (be->name);
}
