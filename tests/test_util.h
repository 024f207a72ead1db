// Shared helpers for the test suites.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "cuda/runtime.h"
#include "tensor/tensor.h"

// A test case that needs a GPU: in the 'cuda' suite, and skipped (and counted as skipped by
// doctest) when no GPU is present. Name it "cuda: <what>".
#define CUDA_TEST_CASE(name) \
  TEST_CASE(name* doctest::test_suite("cuda") * doctest::skip(!::mt::cuda::available()))

// A data-parallel case that runs on the CPU (ranks simulated by threads, or launched as
// processes): in the 'distributed' suite, `tests -ts=distributed`.
#define DIST_TEST_CASE(name) TEST_CASE(name* doctest::test_suite("distributed"))

// Checks that `expr` throws mt::Error whose message contains `needle`.
#define CHECK_THROWS_WITH_TEXT(expr, needle)                             \
  do {                                                                   \
    bool thrown_ = false;                                                \
    try {                                                                \
      (void)(expr);                                                      \
    } catch (const ::mt::Error& e_) {                                    \
      thrown_ = true;                                                    \
      INFO("message: " << e_.message());                                 \
      CHECK(e_.message().find(needle) != std::string::npos);             \
    }                                                                    \
    CHECK_MESSAGE(thrown_, "expected mt::Error containing: " << needle); \
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

// Uniform values in [lo, hi), float64, on the CPU: the inputs of the CUDA-vs-CPU checks.
Tensor random_uniform(const Shape& shape, uint64_t seed, double lo = -2.0, double hi = 2.0);

// While alive, every block the device allocator hands out is filled with 0xFF bytes (NaN in
// every float type: cuda/debug.h), so an output element a kernel forgets to write fails
// all_written.
struct PoisonAllocations {
  PoisonAllocations();
  ~PoisonAllocations();
};

// While alive, the GEMM's fused epilogue (bias and GELU) is switched off, so every op
// that uses one runs its fallback (cuda/debug.h: set_gemm_epilogues).
struct GemmEpiloguesOff {
  GemmEpiloguesOff();
  ~GemmEpiloguesOff();
};

// An op under test: its inputs in, one tensor out.
using TensorOp = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs op on the GPU in `dtype` and checks it against the float64 CPU op on the same inputs,
// rounded to dtype first (so only the op's own error is measured): float32 within 1e-5
// relative, float64 within 1e-12, bf16 at most twice as far from the reference as the CPU op
// run in bf16 (a naive bf16 implementation). Every device allocation is poisoned and the result
// must be fully written; the result's dtype must be the CPU op's.
void check_cuda_vs_cpu(const TensorOp& op, const std::vector<Tensor>& inputs, DType dtype,
                       const char* what);
// The same in float32, float64 and (when bf16) bfloat16.
void check_cuda_vs_cpu_float_types(const TensorOp& op, const std::vector<Tensor>& inputs,
                                   const char* what, bool bf16 = true);

}  // namespace mt::testing
