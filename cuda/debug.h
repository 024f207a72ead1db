// Test hooks for the device memory allocator, callable from plain C++ (tests/).
#pragma once

namespace mt::cuda {

// While on, every block the caching allocator hands out is first filled with 0xFF bytes: NaN in
// float32, float64 and bf16 (all exponent and mantissa bits set), -1 in the integer types. A
// kernel that leaves an output element unwritten then shows a NaN that tests detect
// (testing::all_written). Off by default; a no-op in builds without CUDA.
void set_poison_allocations(bool on);

}  // namespace mt::cuda
