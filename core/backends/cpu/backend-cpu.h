/* The CPU backend's own functions, outside the backend table. */
#pragma once
#include "backend.h"

G_BEGIN_DECLS

/* The whole table of the CPU backend; snn_backend_get ("cpu", ...) hands
 * it out. */
const SnnBackend *snn_backend_cpu (void);
/* The BLAS configuration in words (core type, threads), for --version. */
char *snn_backend_cpu_describe (void);
/* Threads the CPU loops run on (SNNWB_THREADS, or one per core). */
int snn_backend_cpu_threads (void);

G_END_DECLS
