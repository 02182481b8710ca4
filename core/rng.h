/* A small deterministic generator (xoshiro256**), seeded by splitmix64, so
 * that every run is reproducible from one 64-bit seed on any platform. */
#pragma once
#include <stdint.h>

typedef struct { uint64_t s[4]; } SnnRng;

void     snn_rng_seed (SnnRng *rng, uint64_t seed);
uint64_t snn_rng_next (SnnRng *rng);
double   snn_rng_uniform (SnnRng *rng);                 /* [0, 1) */
float    snn_rng_uniform_range (SnnRng *rng, float lo, float hi);
double   snn_rng_normal (SnnRng *rng);                  /* N(0, 1), Box-Muller */
uint32_t snn_rng_below (SnnRng *rng, uint32_t n);       /* [0, n), unbiased */
void     snn_rng_permutation (SnnRng *rng, int *out, int n); /* Fisher-Yates over 0..n-1 */
