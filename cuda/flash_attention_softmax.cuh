// Per-warp pieces of the attention kernels that act on a 16 x 8 NT score tile held in mma C
// fragments (cuda/flash_attention_common.cuh): masking, the online softmax, and the dropout mask
// regenerated through a small per-warp shared-memory buffer.
#pragma once

#include <cstdint>
#include <cstring>

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

// The max of row g + 8 r of a 16 x 8 NT score tile in C fragments: the thread's 2 NT elements
// by a tree (depth log2 NT instead of a chain of NT dependent instructions), then across the
// quad of 4 lanes that share the row. Every lane of the quad gets it.
template <int NT>
__device__ __forceinline__ float quad_row_max(const float (*s)[4], int r) {
  float part[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) part[nt] = fmaxf(s[nt][2 * r], s[nt][2 * r + 1]);
  tree_reduce<NT / 2>(part, [](float a, float b) { return fmaxf(a, b); });
  float mx = part[0];
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  return fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
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
    const float mx = quad_row_max<NT>(s, r);
    float part[NT];
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

// Writes the warp's 16 x D output rows (normalized) and their log-sum-exp. l_run is the thread's
// partial row sum (summed over the quad here) or, with kFullSums, the whole row sum already.
template <typename E, int D, bool kFullSums = false>
__device__ __forceinline__ void store_output(const FlashAttentionParams& p, float (*o)[4],
                                             const float* m_run, const float* l_run, int b, int h,
                                             int r0, float keep_scale, int lane) {
  const int g = lane / 4, t = lane % 4;
  E* out = static_cast<E*>(p.out) + b * p.out_strides.b + h * p.out_strides.h;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = kFullSums ? l_run[r] : quad_sum(l_run[r]);
    const int row = r0 + g + 8 * r;
    if (row >= p.T) continue;
    const float inv = l > 0.0f ? keep_scale / l : 0.0f;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(out + row * p.out_strides.t + dt * 8 + 2 * t) =
          Elem<E>::pack(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
    if (t == 0) {
      p.lse[(static_cast<int64_t>(b) * p.H + h) * p.T + row] =
          l > 0.0f ? (m_run[r] + __log2f(l)) * kLn2 : -INFINITY;
    }
  }
}

}  // namespace mt::cuda::fa
