/* The readers under fuzzing: each target takes arbitrary bytes, hands them
 * to one reader, and returns normally whether the reader accepted them or
 * gave an error. A crash, a sanitizer report or an abort is a finding. The
 * libFuzzer binaries and the replay of tests/fuzz/regressions share them. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name;
  void (*run) (const uint8_t *data, size_t size);
} SnnFuzzTarget;

/* NULL-terminated. */
extern const SnnFuzzTarget snn_fuzz_targets[];
const SnnFuzzTarget *snn_fuzz_target_find (const char *name);
/* Once per process: quiet logging, a scratch folder, the frame cache's dataset. */
void snn_fuzz_setup (void);
