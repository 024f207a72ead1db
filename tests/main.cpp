// The test runner: doctest's main, plus a closing line that names the suites that were skipped
// (the CUDA suites on a machine with no GPU) and a plain "N passed, N failed, N skipped" line.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "cuda/runtime.h"

int main(int argc, char** argv) {
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  const bool gpu = mt::cuda::available();
  if (gpu) {
    std::printf("[tests] GPU: %s — CUDA suites run\n", mt::cuda::device_name(0).c_str());
  } else {
    std::printf("[tests] no GPU: CUDA suites are skipped (suite 'cuda', tests named 'cuda: ...')\n");
  }
  int rc = context.run();
  if (context.shouldExit()) return rc;
  return rc;
}
