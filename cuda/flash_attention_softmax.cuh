// Per-warp pieces of the attention kernels that act on a 16 x 8 NT score tile held in mma C
// fragments (cuda/flash_attention_common.cuh): masking, the online softmax, and the dropout mask
// regenerated through a small per-warp shared-memory buffer.
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda/attention_dropout.h"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_packed.cuh"

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

// Dropout for a 16 x 8 NT tile of rows r0.. (queries) and keys n0.. (n0 a multiple of 16):
// the warp draws the 16 x 8 NT mask bytes with one Philox call per 16 keys of a row (8 NT
// calls, NT / 4 a lane) into its buffer buf[16][STRIDE], then every lane zeroes its dropped
// elements. The 1 / (1 - p) factor is applied by the caller, once per row.
template <int NT, int STRIDE>
__device__ __forceinline__ void dropout_rows(float (*s)[4], uint8_t* buf,
                                             const FlashAttentionParams& p, uint32_t bh, int r0,
                                             int n0, int lane) {
  const int g = lane / 4, t = lane % 4;
  static_assert(NT % 4 == 0, "a whole number of Philox calls a lane");
  const MulHiLo head = head_product(bh);
#pragma unroll
  for (int i = 0; i < NT / 4; ++i) {
    const int c = lane + 32 * i, row = c % 16, col16 = c / 16;
    const Philox4 r =
        draw(p.dropout_schedule, chunk_product(static_cast<uint32_t>(n0 / 16 + col16)), head,
             static_cast<uint32_t>(r0 + row));
    *reinterpret_cast<uint4*>(buf + row * STRIDE + col16 * 16) =
        make_uint4(r.v[0], r.v[1], r.v[2], r.v[3]);
  }
  __syncwarp();
  const uint32_t threshold = p.dropout_threshold;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const uint32_t lo = *reinterpret_cast<const uint16_t*>(buf + g * STRIDE + nt * 8 + 2 * t);
    const uint32_t hi = *reinterpret_cast<const uint16_t*>(buf + (g + 8) * STRIDE + nt * 8 + 2 * t);
    s[nt][0] = (lo & 0xFFu) >= threshold ? s[nt][0] : 0.0f;
    s[nt][1] = (lo >> 8) >= threshold ? s[nt][1] : 0.0f;
    s[nt][2] = (hi & 0xFFu) >= threshold ? s[nt][2] : 0.0f;
    s[nt][3] = (hi >> 8) >= threshold ? s[nt][3] : 0.0f;
  }
  __syncwarp();  // the buffer is rewritten by the next tile
}

// ---- the D = 8 forward: lazy max, row sums on the tensor core, packed dropout ---------------
// (cuda/flash_attention_fwd.cu explains the scheme.) Here s holds scale_log2 * score - m_run
// already: the Q K^T mma starts from -m_run.

// The most a row of one tile's P may sum to before the tile is redone with its row max taken
// into m_run: every p is then at most 2^15, which fp16 (max 65504) and bf16 hold, and l and O
// grow by at most 2^15 a key over the old scale, far inside fp32 range. A row of a tile's 128 (or
// 64) keys all near its running max sums to at most 128 (64), so only a real rise of the max (by
// about 8 to 15 in log2 units) takes the slow path. An inf or NaN sum fails the test too.
constexpr float kMaxTileRowSum = 32768.0f;

// p = 2^s for a 16 x 8 NT tile, rounded into the A fragments of the P V product (16 keys a
// fragment, NT / 2 of them). s is left holding p in fp32.
template <typename E, int NT>
__device__ __forceinline__ void exp2_to_a(uint32_t (*pa)[4], float (*s)[4]) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) s[nt][i] = ex2(s[nt][i]);
  }
#pragma unroll
  for (int ks = 0; ks < NT / 2; ++ks) c_to_a<E>(pa[ks], s[2 * ks], s[2 * ks + 1]);
}

// The row sums of the rounded P (the A fragments) on the tensor core: one mma against a B of
// ones a 16-key fragment, instead of one FADD a score. Every column of the C tile then holds
// the full row sum (no quad reduction): sum[0] for row g, sum[1] for row g + 8. One accumulator:
// a chain of KS dependent mma, which the SM's other warps cover (a second one pushed the lazy
// kernel past 128 registers).
template <typename E, int KS>
__device__ __forceinline__ void row_sums_mma(const uint32_t (*pa)[4], float* sum) {
  static_assert(KS % 2 == 0, "pairs of 16-key fragments");
  const uint32_t ones[2] = {one_pair<E>(), one_pair<E>()};
  float acc[4] = {};
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) mma16816<E>(acc, pa[ks], ones);
  sum[0] = acc[0];
  sum[1] = acc[2];
}

// The slow path of the lazy online softmax (a warp's first tile, or a tile whose P outgrew
// kMaxTileRowSum), for the thread's rows g and g + 8: m_run moves up to the row max (on the
// first tile, to it wherever it lies: m_run starts at 0, not at a true max), s is rebased by the
// same move, and alpha = 2^-move is the factor for what was accumulated against the old m_run.
template <int NT>
__device__ __forceinline__ void rebase_rows(float (*s)[4], float* m_run, float* alpha, bool first) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float mx = quad_row_max<NT>(s, r);
    // Later tiles only ever raise m; a row whose keys are all masked keeps it (no -inf in m).
    float move = first ? mx : fmaxf(mx, 0.0f);
    move = move == -INFINITY ? 0.0f : move;
    const float m_new = m_run[r] + move;
    move = m_new - m_run[r];  // exactly what the next tiles' mma subtracts more
    m_run[r] = m_new;
    // On the first tile nothing has been accumulated (and 2^-move may overflow).
    alpha[r] = first ? 1.0f : ex2(-move);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      s[nt][2 * r] -= move;
      s[nt][2 * r + 1] -= move;
    }
  }
}

// What every draw of a lane in dropout_packed shares, computed once a kernel: the lane draws
// for row r0 + lane % 16 of head bh only, so round 1's output words 0 and 1 are fixed
// (cuda/attention_dropout.h), and the keep compare's constants.
struct PackedDropoutLane {
  uint32_t w0, w1;  // round 1's output words 0 and 1 of the lane's draws
  KeepFlags4 keep;

  __device__ PackedDropoutLane(const FlashAttentionParams& p, uint32_t bh, int r0, int lane)
      : keep(p.dropout_threshold) {
    const MulHiLo head = head_product(bh);
    w0 = round1_word0(p.dropout_schedule, head, static_cast<uint32_t>(r0 + lane % 16));
    w1 = head.lo;
  }
};

// Dropout on the packed A fragments of a 16 x 16 KS probability tile (rows r0.., keys n0.., n0
// a multiple of 16): one Philox call per 16 keys of a row (lane l draws row l % 16, chunks
// l / 16 + 2 i), stored as keep flags (bit 7 of each byte) and reordered so that lane t of a
// quad finds the four it needs for one 16-key fragment, keys 2t, 2t+1, 2t+8, 2t+9, in one
// 32-bit word. prmt then widens two flags into the 16-bit halves of an AND mask: one AND per
// pair of elements. Applied after row_sums_mma: l is the sum of P before dropout.
template <int KS, int STRIDE>
__device__ __forceinline__ void dropout_packed(uint32_t (*pa)[4], uint8_t* buf,
                                               const DropoutSchedule& sched,
                                               const PackedDropoutLane& d, int n0, int lane) {
  const int g = lane / 4, t = lane % 4;
  static_assert(KS % 2 == 0, "a whole number of Philox calls a lane");
#pragma unroll
  for (int i = 0; i < KS / 2; ++i) {
    const int c = lane + 32 * i, row = c % 16, col16 = c / 16;
    const MulHiLo chunk = chunk_product(static_cast<uint32_t>(n0 / 16 + col16));
    const Philox4 r = draw_from_round1(sched, d.w0, d.w1, round1_word2(sched, chunk), chunk.lo);
    uint32_t k[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) k[w] = d.keep(r.v[w]);
    // Word t = bytes 2t, 2t+1 (word t / 2 of the draw) and 2t+8, 2t+9 (word 2 + t / 2).
    *reinterpret_cast<uint4*>(buf + row * STRIDE + col16 * 16) =
        make_uint4(prmt(k[0], k[2], 0x5410), prmt(k[0], k[2], 0x7632), prmt(k[1], k[3], 0x5410),
                   prmt(k[1], k[3], 0x7632));
  }
  __syncwarp();
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
    const uint32_t lo = *reinterpret_cast<const uint32_t*>(buf + g * STRIDE + ks * 16 + 4 * t);
    const uint32_t hi =
        *reinterpret_cast<const uint32_t*>(buf + (g + 8) * STRIDE + ks * 16 + 4 * t);
    pa[ks][0] &= prmt(lo, 0, 0x9988);  // row g, keys 2t, 2t+1: flags of bytes 0, 1
    pa[ks][1] &= prmt(hi, 0, 0x9988);  // row g + 8
    pa[ks][2] &= prmt(lo, 0, 0xBBAA);  // row g, keys 2t+8, 2t+9: bytes 2, 3
    pa[ks][3] &= prmt(hi, 0, 0xBBAA);
  }
  __syncwarp();  // the buffer is rewritten by the next tile
}

}  // namespace mt::cuda::fa
