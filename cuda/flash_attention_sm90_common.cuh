// What the Hopper FlashAttention kernels (cuda/flash_attention_fwd_sm90.cu, _bwd_sm90.cu) share
// beyond cuda/wgmma.cuh: the 128-byte-swizzled tile copy. Internal to cuda/.
#pragma once

#include <cstdint>

#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_sm90.cuh"

namespace mt::cuda::fa {

// Rows [row0, row0 + ROWS) of one head of a [B, T, H, D] tensor into the 128-byte-swizzled
// layout at shared address dst, all THREADS threads cooperating with 16-byte cp.async; rows >= T
// are zero-filled (no NaN can reach a product). The layout: a row of D elements is split into
// D / 64 column blocks of 128 bytes; column block cb of row r lives at dst + cb ROWS 128 + r 128,
// and its 16-byte chunk c (elements 8c .. 8c + 7) at chunk position c ^ (r % 8) of those 128
// bytes. A thread keeps one chunk column c and rows r_first + i (THREADS / (D / 8)), a multiple
// of 8 apart, so its swizzled position is the same for every row it copies.
template <int ROWS, int D, int THREADS, typename E>
__device__ __forceinline__ void load_tile_sw128(uint32_t dst, const E* head, int64_t row_stride,
                                                int row0, int T) {
  constexpr int kChunks = D / 8, kRowStep = THREADS / kChunks, kTotal = ROWS * kChunks;
  static_assert(THREADS % kChunks == 0 && kRowStep % 8 == 0, "one swizzle phase a thread");
  const int c = static_cast<int>(threadIdx.x) % kChunks;
  const int r_first = static_cast<int>(threadIdx.x) / kChunks;
  const uint32_t col = (c / 8) * ROWS * 128 + ((c % 8) ^ (r_first % 8)) * 16;
#pragma unroll
  for (int i = 0; i < (kTotal + THREADS - 1) / THREADS; ++i) {
    const int r = r_first + i * kRowStep;
    if (kTotal % THREADS != 0 && r >= ROWS) break;
    const bool valid = row0 + r < T;
    const E* src = valid ? head + static_cast<int64_t>(row0 + r) * row_stride + c * 8 : head;
    cp_async16(dst + col + r * 128, src, valid);
  }
}

}  // namespace mt::cuda::fa
