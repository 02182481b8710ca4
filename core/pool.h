/* One small thread pool for every parallel loop of the CPU code.
 *
 * A job is a number of chunks, taken one at a time from an atomic counter by
 * the submitting thread and by any idle worker. The submitter works through
 * chunks itself and waits only for chunks another thread has already
 * claimed, so a worker the scheduler puts aside costs at most one chunk,
 * never the whole job. Idle workers spin briefly, then sleep. Beside other
 * runnable threads (another program, a second training) the pool stands
 * aside: it takes chunks on fewer threads, down to the submitter alone.
 * A coarse job (a few chunks of milliseconds each: the lanes of a batch)
 * runs on every thread even then, and a worker that runs one of its chunks
 * moves off the submitter's core, so that the two do not take turns on one.
 *
 * Chunk boundaries depend on the job alone, never on the number of threads,
 * so a loop whose chunks write disjoint outputs (or keep per-chunk partial
 * sums added in chunk order afterwards) gives the same bits on any number of
 * threads. A job submitted from inside a chunk, or while every job slot is
 * taken by other submitting threads, runs inline on the calling thread. */
#pragma once
#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Runs chunk `chunk` of `chunks`. */
typedef void (*SnnPoolChunkFunc) (void *data, int chunk, int chunks);
/* Runs items [lo, hi). */
typedef void (*SnnPoolRangeFunc) (void *data, int64_t lo, int64_t hi);

/* Work units: a chunk of about this many simple element operations (some
 * tens of microseconds) is worth handing to another thread. */
#define SNN_POOL_CHUNK_COST 32768.0
/* At most this many chunks per job: enough for a preempted worker to cost
 * little, few enough that claiming them costs nothing. */
#define SNN_POOL_MAX_CHUNKS 256

/* Threads working on a job (the caller included): SNNWB_THREADS, or one per
 * processor. */
int  snn_pool_threads (void);
/* Threads that take chunks now: snn_pool_threads() less one for every other
 * thread the machine keeps runnable (sampled every 10 ms and averaged over a
 * few samples), at least 1. SNNWB_POOL_ADAPT=0 keeps it at
 * snn_pool_threads(). */
int  snn_pool_active (void);
/* Counts the calling thread as part of this program's work, not as other
 * load to stand aside for (a window's drawing thread, say). Threads that
 * submit jobs are counted so without asking. */
void snn_pool_count_as_own (void);
/* Runs fn for every chunk in [0, chunks), in parallel, and returns when all
 * have run. */
void snn_pool_run (int chunks, SnnPoolChunkFunc fn, void *data);
/* The same for a job of a few large chunks (milliseconds each, such as the
 * lanes of a batch): every thread takes its chunks even while the pool
 * stands aside, since a preempted thread then holds up the job by at most
 * its one chunk while the others run the rest, and the other thread's core
 * share (a busy program leaves each of ours part of a core) is not lost. */
void snn_pool_run_coarse (int chunks, SnnPoolChunkFunc fn, void *data);
/* Chunks for n items of `cost` work units each: 1 for tiny jobs (which then
 * run inline), at most SNN_POOL_MAX_CHUNKS and at most n. */
int  snn_pool_chunks_for (int64_t n, double cost);
/* Splits [0, n) into snn_pool_chunks_for (n, cost) ranges of (nearly) equal
 * length, multiples of `align` items except the last, and runs them. */
void snn_pool_for (int64_t n, double cost, int64_t align, SnnPoolRangeFunc fn, void *data);
/* The bounds of chunk i of `chunks` over n items in steps of align. */
static inline void
snn_pool_range (int64_t n, int64_t align, int i, int chunks, int64_t *lo, int64_t *hi)
{
  int64_t units = (n + align - 1) / align;
  *lo = MIN (n, units * i / chunks * align);
  *hi = MIN (n, units * (i + 1) / chunks * align);
}

G_END_DECLS
