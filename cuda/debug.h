// Test hooks for the device runtime, callable from plain C++ (tests/): the allocator's
// poisoning and the cuBLASLt GEMM's plan cache and epilogues (cuda/matmul.cu).
#pragma once

#include <cstdint>

namespace mt::cuda {

// While on, every block the caching allocator hands out is first filled with 0xFF bytes: NaN in
// float32, float64 and bf16 (all exponent and mantissa bits set), -1 in the integer types. A
// kernel that leaves an output element unwritten then shows a NaN that tests detect
// (testing::all_written). Off by default; a no-op in builds without CUDA.
void set_poison_allocations(bool on);

// How many times the GEMM has asked cuBLASLt's heuristic for an algorithm so far. A problem it
// has seen before asks nothing, so a training step after the first leaves this unchanged.
int64_t gemm_heuristic_queries();
// How many GEMMs with a fused epilogue (bias and GELU) fell back to the unfused ops so
// far: cuBLASLt refused the epilogue, its constraints were not met, or it was switched off.
int64_t gemm_epilogue_fallbacks();
// While off, every fused epilogue falls back (a plain bias add stays fused), so that tests run
// the fallback paths on shapes cuBLASLt would take. On by default.
void set_gemm_epilogues(bool on);

}  // namespace mt::cuda
