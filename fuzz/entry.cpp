// A libFuzzer entry point: SSHSOAK_FUZZ_BODY names the body (fuzz_targets.h);
// fuzz/CMakeLists.txt compiles this file once per target.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return SSHSOAK_FUZZ_BODY(data, size); }
