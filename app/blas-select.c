#include "blas-select.h"
#include <cblas.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char choice[160] = "OpenBLAS's own detection";

/* Candidates, fastest first, each only where the CPU has its instructions;
 * the last (NULL) is OpenBLAS's own detection. Returns how many. */
static int
candidates (const char *order[3])
{
  int n = 0;
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw") && __builtin_cpu_supports ("avx512vl")
      && __builtin_cpu_supports ("avx512dq"))
    order[n++] = "SkylakeX";
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
    order[n++] = "Haswell";
  order[n++] = NULL;
  return n;
}

static const char *
candidate (int i)
{
  const char *order[3];
  return i < candidates (order) ? order[i] : NULL;
}

static int
n_candidates (void)
{
  const char *order[3];
  return candidates (order);
}

/* A small SGEMM against a plain loop: a wrong kernel shows at once. */
static gboolean
sgemm_is_correct (void)
{
  enum { M = 37, N = 29, K = 53 };
  static float a[M * K], b[K * N], c[M * N];
  for (int i = 0; i < M * K; i++)
    a[i] = (float) ((i * 7919) % 17) / 8.0f - 1.0f;
  for (int i = 0; i < K * N; i++)
    b[i] = (float) ((i * 104729) % 13) / 6.0f - 1.0f;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++)
      {
        double ref = 0;
        for (int k = 0; k < K; k++)
          ref += (double) a[i * K + k] * b[k * N + j];
        if (fabs (ref - c[i * N + j]) > 1e-3 * (1 + fabs (ref)))
          return FALSE;
      }
  return TRUE;
}

static void
reexec_with (int index, char **argv)
{
  const char *core = candidate (index);
  char idx[16];
  g_snprintf (idx, sizeof idx, "%d", index);
  setenv ("SNNWB_BLAS_TRY", idx, 1);
  if (core)
    setenv ("OPENBLAS_CORETYPE", core, 1);
  else
    unsetenv ("OPENBLAS_CORETYPE");
  execv ("/proc/self/exe", argv);
  /* If exec fails we carry on with what is loaded. */
}

void
snnwb_blas_select (int argc, char **argv)
{
  const char *off = g_getenv ("SNNWB_BLAS_SELECT");
  const char *tried = g_getenv ("SNNWB_BLAS_TRY");
  if (off && g_str_equal (off, "0"))
    {
      g_snprintf (choice, sizeof choice, "%s (automatic choice off)", openblas_get_corename ());
      return;
    }
  if (!tried)
    {
      if (g_getenv ("OPENBLAS_CORETYPE"))
        {
          g_snprintf (choice, sizeof choice, "%s (from OPENBLAS_CORETYPE)%s", openblas_get_corename (),
                      sgemm_is_correct () ? "" : " WRONG RESULTS in a test SGEMM");
          return;
        }
      reexec_with (0, argv);
      return;
    }
  int index = atoi (tried);
  if (sgemm_is_correct ())
    {
      g_snprintf (choice, sizeof choice, "%s (chosen for this CPU, checked by a test SGEMM)", openblas_get_corename ());
      unsetenv ("SNNWB_BLAS_TRY");
      return;
    }
  if (index + 1 < n_candidates ())
    {
      fprintf (stderr, "snnwb: OpenBLAS kernel %s gave wrong results; trying the next one\n", openblas_get_corename ());
      reexec_with (index + 1, argv);
    }
  g_snprintf (choice, sizeof choice, "%s (no kernel passed the test SGEMM)", openblas_get_corename ());
}

const char *
snnwb_blas_choice (void)
{
  return choice;
}
