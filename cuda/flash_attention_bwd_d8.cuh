// What the dK/dV kernel (cuda/flash_attention_bwd_kv.cu) does differently at head dim 8, the
// seed model's, and why. At D = 8 the products are tiny and the kernel is bound by instruction
// issue and latency, not by the tensor cores, so the per-tile overhead and the resident warps
// decide its speed:
//   - the query tiles are copied by QueryTileCopyD8 below (one 16-byte row and one statistic a
//     thread, from pointers set up once) instead of load_tile and load_stats;
//   - a loaded 64-query tile is computed in two halves of 32 (BwdKVTraits::kSubM), so that the
//     S^T and dP^T tiles take 32 registers instead of 64 while the loads, barriers and the dQ
//     product are still paid once per 64 queries;
//   - __launch_bounds__ holds the kernel to 5 CTAs an SM (BwdKVTraits::kMinBlocks).
// The rest is the general kernel. Internal to cuda/.
#pragma once

#include <cstdint>

#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_mma.cuh"

namespace mt::cuda::fa {

// The query-tile copies at D = 8, where a tile (M rows of one 16-byte chunk) has fewer chunks
// than the CTA has threads: thread t < M copies row t of Q, thread M + t row t of dO, and the
// same threads copy lse (t < M) and delta, from pointers set up once and advanced by M rows a
// tile. (load_tile and load_stats recompute the 64-bit row offsets every tile, and there two
// warps do every copy: about 75 instructions a tile each, against about 15 a thread here.)
template <typename Tr, typename E>
struct QueryTileCopyD8 {
  static constexpr int M = Tr::kBlockM;
  static_assert(2 * M == Tr::kThreads && Tr::kStride == 8, "one chunk and one statistic a thread");
  const E* src;            // this thread's Q or dO row of the next tile to copy
  int64_t src_step;        // M rows of that tensor
  const float* stat;       // its lse * log2(e) or delta of the same row
  uint32_t dst, dst_stat;  // byte offsets in stage 0 (of sQ/sdO, of sStats)
  int row;                 // its row in the tile

  __device__ QueryTileCopyD8(const FlashAttentionParams& p, const E* q, const E* dout, int64_t bh,
                             int m_begin) {
    const int t = static_cast<int>(threadIdx.x), is_do = t >= M;
    row = t - is_do * M;
    const int64_t stride = is_do ? p.dout_strides.t : p.q_strides.t;
    src = (is_do ? dout : q) + (m_begin + row) * stride;
    src_step = M * stride;
    // delta: plane 0 of the workspace, lse * log2(e): plane 1 (flash_attention.cuh)
    stat = p.delta + (is_do ? 0 : static_cast<int64_t>(p.B) * p.H * p.T) + bh * p.T + m_begin + row;
    dst = static_cast<uint32_t>((is_do * Tr::kStages * M + row) * Tr::kStride * sizeof(E));
    dst_stat = static_cast<uint32_t>(((row / 2) * 4 + row % 2 + (is_do ? 2 : 0)) * sizeof(float));
  }
  // Queues tile m0's copies into stage `stage` (sQ: the base of every Q/dO stage, as laid out by
  // the kernel; sStats: of every statistics stage) and moves on to the next tile. Rows past T
  // are zero-filled (src-size 0) from `any`, a valid address, never from past the tensor.
  __device__ void issue(uint32_t sQ, uint32_t sStats, int stage, int m0, int T, const float* any) {
    const bool valid = m0 + row < T;
    cp_async16(sQ + dst + stage * M * Tr::kStride * sizeof(E),
               valid ? static_cast<const void*>(src) : any, valid);
    cp_async4(sStats + dst_stat + stage * 2 * M * sizeof(float), valid ? stat : any, valid);
    src += src_step;
    stat += M;
  }
};

}  // namespace mt::cuda::fa
