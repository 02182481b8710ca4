#include "rng.h"
#include <math.h>

static uint64_t
splitmix64 (uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void
snn_rng_seed (SnnRng *rng, uint64_t seed)
{
  uint64_t x = seed;
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64 (&x);
}

static inline uint64_t
rotl (uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

uint64_t
snn_rng_next (SnnRng *rng)
{
  uint64_t *s = rng->s;
  uint64_t result = rotl (s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

double
snn_rng_uniform (SnnRng *rng)
{
  return (snn_rng_next (rng) >> 11) * 0x1.0p-53;
}

float
snn_rng_uniform_range (SnnRng *rng, float lo, float hi)
{
  return (float) (lo + (hi - lo) * snn_rng_uniform (rng));
}

double
snn_rng_normal (SnnRng *rng)
{
  double u1 = snn_rng_uniform (rng);
  double u2 = snn_rng_uniform (rng);
  if (u1 < 1e-300)
    u1 = 1e-300;
  return sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
}

uint32_t
snn_rng_below (SnnRng *rng, uint32_t n)
{
  /* Lemire's multiply-shift with rejection: no modulo bias. */
  uint64_t m = (uint64_t) (uint32_t) (snn_rng_next (rng) >> 32) * n;
  uint32_t l = (uint32_t) m;
  if (l < n)
    {
      uint32_t t = -n % n;
      while (l < t)
        {
          m = (uint64_t) (uint32_t) (snn_rng_next (rng) >> 32) * n;
          l = (uint32_t) m;
        }
    }
  return (uint32_t) (m >> 32);
}

void
snn_rng_permutation (SnnRng *rng, int *out, int n)
{
  for (int i = 0; i < n; i++)
    out[i] = i;
  for (int i = n - 1; i > 0; i--)
    {
      int j = (int) snn_rng_below (rng, (uint32_t) (i + 1));
      int tmp = out[i];
      out[i] = out[j];
      out[j] = tmp;
    }
}
