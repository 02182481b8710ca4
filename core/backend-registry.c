/* The backends by name: the one place that knows which were built. */
#include "backend-cpu.h"
#include "snn-config.h"
#include "snn-error.h"
#include <stdlib.h>
#ifdef SNN_HAVE_CUDA
#include "backends/cuda/backend-cuda.h"
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

static const SnnBackend *
cpu_full (void)
{
  static SnnBackend be;
  static gsize done = 0;
  if (g_once_init_enter (&done))
    {
      be = *snn_backend_cpu ();
      snn_backend_cpu_complete (&be);
      g_once_init_leave (&done, 1);
    }
  return &be;
}

const SnnBackend *
snn_backend_get (const char *name, GError **error)
{
  if (!name)
    name = snn_backend_default_name ();
  if (g_str_equal (name, "cpu"))
    return cpu_full ();
  if (g_str_equal (name, "cuda"))
    {
#ifdef SNN_HAVE_CUDA
      return snn_backend_cuda_open (error);
#else
      g_set_error (error, SNN_BACKEND_ERROR, SNN_ERROR_UNSUPPORTED,
                   "backend \"cuda\": this build has no CUDA backend (it was configured without nvcc and cuBLAS; "
                   "backends built: %s)", snn_backend_built ());
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
      g_autofree char *dev = snn_backend_cuda_describe ();
      return g_strdup_printf ("cuda (%s)", dev);
    }
#endif
  return g_strdup (be->name);
}

int
snn_host_threads (void)
{
  const char *env = g_getenv ("SNNWB_THREADS");
  int n = env ? atoi (env) : (int) g_get_num_processors ();
  return CLAMP (n, 1, 64);
}
