/* The CUDA backend (built with -Dcuda=enabled or auto where nvcc and cuBLAS
 * are found). */
#pragma once
#include "backend.h"

G_BEGIN_DECLS

/* Opens the first device, its stream and cuBLAS handle (once); fails with
 * SNN_BACKEND_ERROR naming the problem when there is no usable device. */
const SnnBackend *snn_backend_cuda_open (GError **error);
/* Device name, memory and cuBLAS version, after a successful open. */
char *snn_backend_cuda_describe (void);
/* TF32 tensor cores for the GEMMs: off unless asked for ($SNNWB_CUDA_TF32=1). */
gboolean snn_backend_cuda_tf32 (void);

G_END_DECLS
