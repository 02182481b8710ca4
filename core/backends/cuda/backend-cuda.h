/* The CUDA backend, built as a module (libsnnwb-cuda.so) that the registry
 * loads only when "cuda" is asked for: a CPU run never maps the CUDA
 * libraries. The module speaks plain strings, not GError, so that it needs
 * no symbol of the program. */
#pragma once
#include "backend.h"

G_BEGIN_DECLS

/* Opens the first device, its stream and cuBLAS handle (once). NULL, with
 * the reason in why, when there is no usable device. */
typedef const SnnBackend *(*SnnCudaOpenFunc) (char *why, size_t len);
/* Device name, capability, memory, cuBLAS version and GEMM precision. */
typedef void (*SnnCudaDescribeFunc) (char *out, size_t len);

#define SNN_CUDA_OPEN_SYMBOL "snn_cuda_module_open"
#define SNN_CUDA_DESCRIBE_SYMBOL "snn_cuda_module_describe"
/* const SnnBackend *(void): the table, no device opened (for tests) */
#define SNN_CUDA_TABLE_SYMBOL "snn_cuda_module_table"

G_END_DECLS
