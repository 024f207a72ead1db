// Small helpers shared by the kernels in cuda/: launch geometry, element-type dispatch and the
// load/store conversions between storage types (float, bf16, double, int) and compute types.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "base/bf16.h"
#include "base/compute_type.h"
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
  MT_FAIL("cuda: unknown element type {}", static_cast<int>(type));
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
  MT_FAIL("{} (cuda): expected a floating element type, got {}", op, static_cast<int>(type));
}

}  // namespace mt::cuda

namespace mt::cuda {

// N strided operands read through one shape: operand k's element at row-major index i lives at
// data_k + offset_k(i). The host side merges dims whose layouts line up in every operand and
// drops size-1 dims, so a dense tensor becomes ndim = 1 with stride 1 and the division loop
// disappears; the kernel only pays div/mod for the dims that really broadcast or transpose.
template <int N>
struct StridedIndexer {
  int ndim = 0;
  int64_t sizes[kMaxCopyDims];
  int64_t strides[N][kMaxCopyDims];

  // Index is int64_t, or uint32_t when fits_32bit(): 32-bit div/mod is a few instructions,
  // 64-bit a ~40-instruction software routine, and this loop is the broadcast path's cost.
  template <typename Index>
  __device__ __forceinline__ void offsets(Index i, Index (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const Index size = Index(sizes[d]);
      const Index coord = i % size;
      i /= size;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += coord * Index(strides[k][d]);
    }
  }
  // True when the element count and every operand's largest offset fit 31 bits (strides are
  // never negative here: views are made by permute, narrow, slice with step > 0 and expand).
  bool fits_32bit(int64_t n) const {
    constexpr int64_t kMax = 2147483647;
    if (n > kMax) return false;
    for (int k = 0; k < N; ++k) {
      int64_t extent = 0;
      for (int d = 0; d < ndim; ++d) extent += (sizes[d] - 1) * strides[k][d];
      if (extent > kMax) return false;
    }
    return true;
  }
  // True when every operand is dense in the same order: the kernel can use i itself.
  bool dense() const {
    if (ndim > 1) return false;
    for (int k = 0; k < N; ++k) {
      if (ndim == 1 && strides[k][0] != 1) return false;
    }
    return true;
  }
};

template <int N>
StridedIndexer<N> make_indexer(const int64_t* sizes, int ndim, const int64_t* const* strides) {
  MT_CHECK(ndim <= kMaxCopyDims, "cuda: {} dims, at most {} supported", ndim, kMaxCopyDims);
  StridedIndexer<N> ix;
  for (int d = 0; d < ndim; ++d) {
    if (sizes[d] == 1) continue;
    bool merge = ix.ndim > 0;
    for (int k = 0; k < N && merge; ++k) {
      merge = ix.strides[k][ix.ndim - 1] == strides[k][d] * sizes[d];
    }
    if (merge) {
      ix.sizes[ix.ndim - 1] *= sizes[d];
      for (int k = 0; k < N; ++k) ix.strides[k][ix.ndim - 1] = strides[k][d];
    } else {
      ix.sizes[ix.ndim] = sizes[d];
      for (int k = 0; k < N; ++k) ix.strides[k][ix.ndim] = strides[k][d];
      ix.ndim += 1;
    }
  }
  return ix;
}

struct SumOp {
  template <typename A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    return a + b;
  }
};
struct MaxOp {  // NaN-propagating, as torch.amax
  template <typename A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    return (a != a || a > b) ? a : b;
  }
};

// Combines `value` over the block (blockDim.x a multiple of 32, at most 1024) and returns the
// result to every thread. The shuffle order is fixed, so the same inputs give the same bits.
template <typename A, typename Op>
__device__ A block_reduce(A value, Op op, A identity) {
  __shared__ A partial[32];
  for (int offset = 16; offset > 0; offset /= 2) {
    value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // a previous call's readers of partial[0] are done
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < int(blockDim.x / 32) ? partial[lane] : identity;
    for (int offset = 16; offset > 0; offset /= 2) {
      value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
    }
    if (lane == 0) partial[0] = value;
  }
  __syncthreads();
  return partial[0];
}

// The sum of `value` over the 32 lanes of a full warp, returned to every lane (a butterfly: each
// lane adds in the same order, so all lanes hold the same bits).
template <typename A>
__device__ __forceinline__ A warp_sum(A value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

template <typename A>
__device__ __forceinline__ A block_sum(A value) {
  return block_reduce(value, SumOp{}, A(0));
}

}  // namespace mt::cuda
