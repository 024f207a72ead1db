// Small helpers shared by the kernels in cuda/: launch geometry, element-type dispatch and the
// load/store conversions between storage types (float, bf16, double, int) and compute types.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "base/bf16.h"
#include "cuda/check.cuh"
#include "cuda/nvtx.h"
#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// 256 threads a block: 8 warps, enough to hide latency on simple streaming kernels while
// leaving room for several blocks per SM (an H100 SM holds 2048 threads).
constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: one element per thread up to a cap of
// 132 SMs x 32 blocks (well past the 2048 threads/SM occupancy limit), after which the
// grid-stride loop covers the rest with no launch-size limit to worry about.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 132 * 32)));
}

// The arithmetic type for a storage type: double stays double, everything else computes in
// float (bf16 in particular: load, compute in fp32, round once on store).
template <typename T>
struct compute_type {
  using type = float;
};
template <>
struct compute_type<double> {
  using type = double;
};
template <typename T>
using compute_t = typename compute_type<T>::type;

// Conversions that match the CPU's casts: bf16 goes through float and rounds to nearest even.
template <typename Dst, typename Src>
__host__ __device__ __forceinline__ Dst convert_value(Src x) {
  if constexpr (std::is_same_v<Dst, bf16>) {
    if constexpr (std::is_same_v<Src, bf16>) {
      return x;
    } else {
      return bf16(static_cast<float>(x));
    }
  } else if constexpr (std::is_same_v<Src, bf16>) {
    return static_cast<Dst>(static_cast<float>(x));
  } else {
    return static_cast<Dst>(x);
  }
}

template <typename T>
__device__ __forceinline__ compute_t<T> load(const T* p, int64_t i) {
  return convert_value<compute_t<T>>(p[i]);
}

template <typename T, typename V>
__device__ __forceinline__ void store(T* p, int64_t i, V value) {
  p[i] = convert_value<T>(value);
}

template <typename T>
struct elem_tag {
  using type = T;
};

// Calls f(elem_tag<T>{}) with T the C++ type of `type`.
template <typename F>
void dispatch_elem(ElemType type, F&& f) {
  switch (type) {
    case ElemType::F32:
      f(elem_tag<float>{});
      return;
    case ElemType::BF16:
      f(elem_tag<bf16>{});
      return;
    case ElemType::F64:
      f(elem_tag<double>{});
      return;
    case ElemType::I32:
      f(elem_tag<int32_t>{});
      return;
    case ElemType::I64:
      f(elem_tag<int64_t>{});
      return;
  }
  FAIL("cuda: unknown element type {}", static_cast<int>(type));
}

// The same over the three floating types only (float, bf16, double).
template <typename F>
void dispatch_float(ElemType type, const char* op, F&& f) {
  switch (type) {
    case ElemType::F32:
      f(elem_tag<float>{});
      return;
    case ElemType::BF16:
      f(elem_tag<bf16>{});
      return;
    case ElemType::F64:
      f(elem_tag<double>{});
      return;
    default:
      break;
  }
  FAIL("{} (cuda): expected a floating element type, got {}", op, static_cast<int>(type));
}

}  // namespace mt::cuda
