// The arithmetic type an op computes in for a storage type, on the CPU and the GPU alike:
// float64 stays float64; float32 and bfloat16 compute in float32 (bf16 is loaded, computed in
// float32 and rounded once on store).
#pragma once

#include <type_traits>

namespace mt {

template <typename T>
using compute_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

}  // namespace mt
