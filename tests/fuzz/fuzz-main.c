/* One libFuzzer binary per reader: FUZZ_TARGET names it at build time. */
#include "fuzz-targets.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const SnnFuzzTarget *t;
  if (!t)
    {
      snn_fuzz_setup ();
      t = snn_fuzz_target_find (FUZZ_TARGET);
      if (!t)
        abort ();
    }
  t->run (data, size);
  return 0;
}
