// Dropout with the counter-based Philox mask of base/philox.h: element i is kept iff
// philox_uniform_at(seed, stream, i) >= p, the very function the CPU op calls, so the GPU and
// CPU masks are bit-identical and the backward regenerates the mask instead of storing it.
#include "base/philox.h"
#include "cuda/dropout.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

// One Philox call yields 4 uniforms: each thread handles the 4 elements of one Philox block,
// so no random bits are thrown away (4x fewer Philox rounds than one call per element).
template <typename T>
__global__ void dropout_kernel(T* y, const T* x, int64_t n, float p, compute_t<T> scale,
                               uint64_t seed, uint64_t stream_id) {
  using A = compute_t<T>;
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks;
       b += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32(seed, uint64_t(b), stream_id);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t i = 4 * b + lane;
      if (i < n) store(y, i, philox_uniform(r.v[lane]) >= p ? load(x, i) * scale : A(0));
    }
  }
}

__global__ void dropout_mask_kernel(float* mask, int64_t n, float p, uint64_t seed,
                                    uint64_t stream_id) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    mask[i] = philox_uniform_at(seed, stream_id, uint64_t(i)) >= p ? 1.0f : 0.0f;
  }
}

}  // namespace

void launch_dropout(ElemType type, void* y, const void* x, int64_t n, float p, uint64_t seed,
                    uint64_t stream_id) {
  if (n == 0) return;
  NvtxRange range("dropout");
  dispatch_float(type, "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = compute_t<T>;
    // As the CPU op: p = 1 keeps nothing and scales by 0 (zeros, never 0 * inf).
    const A scale = p >= 1.0f ? A(0) : A(1) / (A(1) - A(p));
    dropout_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(
        static_cast<T*>(y), static_cast<const T*>(x), n, p, scale, seed, stream_id);
    LAUNCH_CHECK();
  });
}

void launch_dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t stream_id) {
  if (n == 0) return;
  NvtxRange range("dropout_mask");
  dropout_mask_kernel<<<grid_for(n), kThreads, 0, stream()>>>(mask, n, p, seed, stream_id);
  LAUNCH_CHECK();
}

}  // namespace mt::cuda
