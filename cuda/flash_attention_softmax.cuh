// Per-warp pieces of the attention kernels that act on a 16 x 8 NT score tile held in mma C
// fragments (cuda/flash_attention_common.cuh): masking, the online softmax, and the dropout mask
// regenerated through a small per-warp shared-memory buffer.
#pragma once

#include <cstdint>

#include "cuda/attention_dropout.h"
#include "cuda/flash_attention_common.cuh"

namespace mt::cuda::fa {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Sets to -inf the scores of a 16 x 8 NT tile (rows r0.., keys n0..) that causal hides or that
// lie past the sequence (key >= T). Element i of C tile nt is row r0 + g + 8 (i / 2), key
// n0 + 8 nt + 2 t + i % 2. Called only on tiles that touch the diagonal or the end.
template <int NT>
__device__ __forceinline__ void mask_scores(float (*s)[4], int r0, int n0, int T, bool causal,
                                            int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = r0 + g + 8 * (i / 2), col = n0 + 8 * nt + 2 * t + (i % 2);
      if (col >= T || (causal && col > row)) s[nt][i] = -INFINITY;
    }
  }
}

// part[0] = op over part[0 .. 2 W): pairwise, log2(2 W) levels, every index a constant.
template <int W, typename Op>
__device__ __forceinline__ void tree_reduce(float* part, Op op) {
  if constexpr (W > 0) {
#pragma unroll
    for (int i = 0; i < W; ++i) part[i] = op(part[i], part[i + W]);
    tree_reduce<W / 2>(part, op);
  }
}

// The online-softmax step for the thread's two rows (g and g + 8) of a new score tile:
//   m' = max(m, scale_log2 * max_j s_j)          (log2 domain: exp(x) = 2^(x log2 e))
//   alpha = 2^(m - m'),  p_j = 2^(scale_log2 s_j - m'),  l = alpha l + sum_j p_j,  o *= alpha
// The row max is reduced over the quad of 4 lanes that share a row; l stays a per-lane partial
// sum until the end (alpha is the same for the whole quad). s is overwritten with p.
template <int NT, int DT>
__device__ __forceinline__ void online_softmax(float (*s)[4], float (*o)[4], float* m_run,
                                               float* l_run, float scale_log2) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    // Tree reductions (depth log2 NT instead of a chain of NT dependent instructions).
    float part[NT];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) part[nt] = fmaxf(s[nt][2 * r], s[nt][2 * r + 1]);
    tree_reduce<NT / 2>(part, [](float a, float b) { return fmaxf(a, b); });
    float mx = part[0];
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m_run[r], mx * scale_log2);
    // A row that has seen only masked keys keeps m = -inf; subtract 0 instead so that
    // 2^(-inf - (-inf)) never makes a NaN.
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    const float alpha = ex2(m_run[r] - m_use);
    m_run[r] = m_new;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      s[nt][2 * r] = ex2(fmaf(s[nt][2 * r], scale_log2, -m_use));
      s[nt][2 * r + 1] = ex2(fmaf(s[nt][2 * r + 1], scale_log2, -m_use));
      part[nt] = s[nt][2 * r] + s[nt][2 * r + 1];
    }
    tree_reduce<NT / 2>(part, [](float a, float b) { return a + b; });
    l_run[r] = l_run[r] * alpha + part[0];
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      o[dt][2 * r] *= alpha;
      o[dt][2 * r + 1] *= alpha;
    }
  }
}

// The sum of the quad's partial row sums (lanes 4 g .. 4 g + 3 hold one row).
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  x += __shfl_xor_sync(0xffffffffu, x, 2);
  return x;
}

// Dropout for a 16 x 8 NT tile of rows r0.. (queries) and keys n0.. (n0 a multiple of 16):
// the warp draws the 16 x 8 NT mask bytes with one Philox call per 16 keys of a row (8 NT
// calls, NT / 4 a lane) into its buffer buf[16][STRIDE], then every lane zeroes its dropped
// elements. The 1 / (1 - p) factor is applied by the caller, once per row.
template <int NT, int STRIDE>
__device__ __forceinline__ void dropout_rows(float (*s)[4], uint8_t* buf,
                                             const AttentionDropout& drop, uint32_t bh, int r0,
                                             int n0, int lane) {
  const int g = lane / 4, t = lane % 4;
  static_assert(NT % 4 == 0, "a whole number of Philox calls a lane");
#pragma unroll
  for (int i = 0; i < NT / 4; ++i) {
    const int c = lane + 32 * i, row = c % 16, col16 = c / 16;
    Philox4 r =
        drop.bytes16(bh, static_cast<uint32_t>(r0 + row), static_cast<uint32_t>(n0 / 16 + col16));
    *reinterpret_cast<uint4*>(buf + row * STRIDE + col16 * 16) =
        make_uint4(r.v[0], r.v[1], r.v[2], r.v[3]);
  }
  __syncwarp();
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const uint32_t lo = *reinterpret_cast<const uint16_t*>(buf + g * STRIDE + nt * 8 + 2 * t);
    const uint32_t hi = *reinterpret_cast<const uint16_t*>(buf + (g + 8) * STRIDE + nt * 8 + 2 * t);
    s[nt][0] = (lo & 0xFFu) >= drop.threshold ? s[nt][0] : 0.0f;
    s[nt][1] = (lo >> 8) >= drop.threshold ? s[nt][1] : 0.0f;
    s[nt][2] = (hi & 0xFFu) >= drop.threshold ? s[nt][2] : 0.0f;
    s[nt][3] = (hi >> 8) >= drop.threshold ? s[nt][3] : 0.0f;
  }
  __syncwarp();  // the buffer is rewritten by the next tile
}

}  // namespace mt::cuda::fa
