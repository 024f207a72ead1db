// Shared helpers for the test suites.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "base/error.h"
#include "cuda/runtime.h"
#include "tensor/tensor.h"

// A test case that needs a GPU: in the 'cuda' suite, and skipped (and counted as skipped by
// doctest) when no GPU is present. Name it "cuda: <what>".
#define CUDA_TEST_CASE(name) \
  TEST_CASE(name * doctest::test_suite("cuda") * doctest::skip(!::mt::cuda::available()))

// Checks that `expr` throws mt::Error whose message contains `needle`.
#define CHECK_THROWS_WITH_TEXT(expr, needle)                                             \
  do {                                                                                   \
    bool thrown_ = false;                                                                \
    try {                                                                                \
      (void)(expr);                                                                      \
    } catch (const ::mt::Error& e_) {                                                    \
      thrown_ = true;                                                                    \
      INFO("message: " << e_.message());                                                 \
      CHECK(e_.message().find(needle) != std::string::npos);                             \
    }                                                                                    \
    CHECK_MESSAGE(thrown_, "expected mt::Error containing: " << needle);                 \
  } while (0)

namespace mt::testing {

// max |a - b| over all elements (both converted to float64 on the CPU); shapes must match.
double max_abs_diff(const Tensor& a, const Tensor& b);
// ||a - b|| / ||b|| in float64: the relative error docs/design.md's tolerances are stated in.
double rel_error(const Tensor& a, const Tensor& b);
// True when every element is finite and differs from the poison value (NaN by default):
// outputs are poisoned before a kernel runs, and this checks that every element was written.
bool all_written(const Tensor& t);
// Fills t with NaN (float types) so that an element a kernel forgets to write shows up.
void poison(Tensor& t);

}  // namespace mt::testing
