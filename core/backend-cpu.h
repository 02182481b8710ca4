/* The CPU backend's own functions, outside the backend table. */
#pragma once
#include "backend.h"

G_BEGIN_DECLS

/* The table of the CPU loops (backend-cpu.c); snn_backend_get ("cpu", ...)
 * hands it out with the ops of backend-cpu-scalars.c filled in. */
const SnnBackend *snn_backend_cpu (void);
/* The BLAS configuration in words (core type, threads), for --version. */
char *snn_backend_cpu_describe (void);
/* Threads the CPU loops run on (SNNWB_THREADS, or one per core). */
int snn_backend_cpu_threads (void);
/* Fills the ops kept outside the loops' file into a copy of the table. */
void snn_backend_cpu_complete (SnnBackend *be);

G_END_DECLS
