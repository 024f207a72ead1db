#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/gather_windows.cuh"
#include "cuda/nvtx.h"

namespace mt::cuda {

namespace {

// One window is a contiguous block of T * F floats in the series, so the gather is B plain
// copies: blockIdx.y picks the window, the x dimension strides over its T * F elements with
// consecutive threads on consecutive floats (coalesced loads and stores). A window of 2048 x 5
// floats is 40 KB: 40 blocks of 256 threads each, B of them.
__global__ void gather_windows_kernel(float* __restrict__ out, const float* __restrict__ series,
                                      const int64_t* __restrict__ starts, int64_t window_elems,
                                      int64_t features) {
  const int64_t b = blockIdx.y;
  const float* src = series + starts[b] * features;
  float* dst = out + b * window_elems;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < window_elems;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = src[i];
  }
}

}  // namespace

void launch_gather_windows(float* out, const float* series, const int64_t* starts, int64_t batch,
                           int64_t window, int64_t features) {
  if (batch == 0) return;
  NvtxRange range("data_gather_windows");
  constexpr int kThreads = 256;
  const int64_t window_elems = window * features;
  // Enough x blocks to cover one window once, at most 1024 (the loop covers the rest).
  const int64_t blocks_x = std::min<int64_t>((window_elems + kThreads - 1) / kThreads, 1024);
  CHECK(batch <= 65535, "gather_windows: batch {} exceeds the grid's y limit 65535", batch);
  dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(batch));
  gather_windows_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream_handle())>>>(
      out, series, starts, window_elems, features);
  LAUNCH_CHECK();
}

}  // namespace mt::cuda
