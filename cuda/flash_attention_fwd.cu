// FlashAttention forward on tensor cores (mma.sync m16n8k16 / m16n8k8, bf16 or fp16 inputs,
// fp32 accumulation).
//
// The algorithm (Dao et al., FlashAttention-2). For one (batch, head), one CTA owns kBlockM = 64
// query rows, 16 per warp, and streams the keys and values through shared memory in tiles of
// kBlockN, never materializing the T x T scores. Each warp keeps, for each of its rows i,
//     m_i  the running max of the (log2-scaled) scores seen so far,
//     l_i  the running sum of 2^(score - m_i),
//     o_i  the running, unnormalized output (16 x D fp32 in mma C fragments),
// and for each key tile j:
//     S     = Q K_j^T                         (tensor cores; Q stays in registers)
//     m_i'  = max(m_i, rowmax(S) * scale log2 e)
//     P     = 2^(S scale log2 e - m_i')       (MUFU.EX2; log2 e folded into the scale)
//     l_i   = 2^(m_i - m_i') l_i + rowsum(P)
//     o_i   = 2^(m_i - m_i') o_i + dropout(P) V_j   (P goes from C to A fragments in registers)
// At the end o_i / l_i is the output and lse_i = (m_i + log2 l_i) ln 2 the row log-sum-exp:
// these two are all the backward needs (cuda/flash_attention_bwd.cu recomputes P from them).
//
// Head dim 8 (the seed model) takes a leaner path, flash_fwd_kernel_lazy. There a score costs
// one exponential on the special-function unit (MUFU.EX2: 16 results a clock an SM, so a warp
// may issue only 8 other instructions per exponential before issue, not MUFU, is the limit), and
// the path above spends about 8 more: the row max (FMNMX), the scale and shift (FFMA), the row
// sum (FADD), the packing to bf16, the rescale of o, and the bookkeeping. Three changes remove
// all but the packing from the common case:
//   1. Row sums on the tensor core: once P is packed into A fragments, one more mma against a B
//      of ones gives rowsum(P), 1 mma per 8 scores a thread instead of 1 FADD per score. It sums
//      the rounded P that P V uses, so numerator and denominator agree (and every column of its
//      C tile holds the whole row sum: no quad reduction at the end).
//   2. Scale and shift inside the mma: at D = 8, m16n8k16 has 8 spare columns of k. Q scale
//      log2 e is kept as a pair hi + lo of bf16 (exact to about 2^-16) in columns 0..7 and
//      8..15, against K^T in B's rows 0..7 and again in 8..15, and the mma's accumulator input
//      is -m_i (one C tile, shared by every n-tile): the mma itself returns S scale log2 e -
//      m_i, no FFMA a score.
//   3. A lazy max (as in FlashAttention-4): m_i need not be the exact running max, only close
//      enough above it that no 2^(s - m_i) overflows. The kernel first computes P = 2^(S - m_i)
//      with the old m_i; if every row sum of the tile's P stays below 2^15 (tested on the
//      tensor-core row sums, one vote a warp) the tile is done: no row max, no rescale of o and
//      l. Otherwise (and always on a warp's first tile) it recomputes S, takes the row max, moves
//      m_i up to it and rescales o and l as above.
//      After the first tile the scores of a row rarely climb 15 (log2 units) above their
//      running max, so the slow path is rare. Its test also catches inf and NaN.
// A common tile (not a warp's first, no mask) then issues 337 instructions a warp for its 16 x
// 128 scores, K/V prefetch, barriers and loop included (sm_90 SASS, nvcc 13.0): 5.3 per 32
// scores, against about 8.6 for the general kernel at D = 8, and the exponential unit, 64
// MUFU.EX2 x 8 cycles, becomes the limit on paper. So
//   4. a few exponentials of each such tile (FwdTraits::kPolyExp2Tiles) run on the FMA pipe as a
//      polynomial (exp2_poly, relative error 7.5e-5, far below P's bf16 rounding): 9 issue slots
//      each, but off the busy unit.
// (Measured, the kernel is bound by neither alone: with 64-key tiles, below, the MUFU pipe is
// 77% busy and the issue slots 54%, and the polynomial no longer pays: kPolyExp2Tiles is 0
// there. Nor is it short of warps: 32-key sub-tiles, at 72 registers and 7 CTAs an SM, were no
// faster; docs/benchmarks.md has the A/B runs and the stall reasons.)
//
// Key tiles of 128 or 64 (FwdTraits<8>::kLazyBlockN, an A/B switch; the traits say why): 64
// keys take the thread from 128 registers to at most 96, so 5 CTAs (20 warps) share an SM
// instead of 4, against that latency; a common tile is then 197 instructions (6.2 per 32
// scores: the per-tile work is paid twice as often). At 64 keys K and V are copied by different
// warps, one row a thread from a pointer set up once (KvRowCopy), and the tiles to mask are found
// with one compare (first_edge_tile); everything else is the same code with 8 n-tiles, not 16.
//
// Work skipped: with causal masking, key tiles past a query block's last row are never loaded,
// and only tiles that touch the diagonal or the end of the sequence pay for the mask. Causal
// blocks are launched heaviest first (the last query block sees every key) so that the grid's
// tail is made of short blocks.
#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_packed.cuh"
#include "cuda/flash_attention_sm90.cuh"
#include "cuda/flash_attention_softmax.cuh"
#include "cuda/flash_attention_traits.cuh"
#include "cuda/nvtx.h"

namespace mt::cuda {

namespace {

using fa::FwdTraits;

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
    const float l = kFullSums ? l_run[r] : fa::quad_sum(l_run[r]);
    const int row = r0 + g + 8 * r;
    if (row >= p.T) continue;
    const float inv = l > 0.0f ? keep_scale / l : 0.0f;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(out + row * p.out_strides.t + dt * 8 + 2 * t) =
          fa::Elem<E>::pack(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
    if (t == 0) {
      p.lse[(static_cast<int64_t>(b) * p.H + h) * p.T + row] =
          l > 0.0f ? (m_run[r] + __log2f(l)) * fa::kLn2 : -INFINITY;
    }
  }
}

// The general path (every head dim): exact row max each tile, as the header's first formulas.
template <typename E, int D>
__global__ void __launch_bounds__(FwdTraits<D>::kThreads)
    flash_fwd_kernel(const FlashAttentionParams p) {
  using Tr = FwdTraits<D>;
  constexpr int NT = Tr::kBlockN / 8, DT = fa::acc_tiles<D>(), S = Tr::kStride;
  constexpr int MW = Tr::kRowTiles;
  extern __shared__ __align__(16) unsigned char smem[];
  E* sQ = reinterpret_cast<E*>(smem);
  E* sK = sQ + Tr::kBlockM * S;                // [stage][kBlockN][S]
  E* sV = sK + Tr::kStages * Tr::kBlockN * S;  // [stage][kBlockN][S]
  uint8_t* sMask = reinterpret_cast<uint8_t*>(sV + Tr::kStages * Tr::kBlockN * S);

  const fa::BlockTile tile = fa::block_tile();
  const int m_block = tile.tiles - 1 - tile.rank;  // heaviest causal blocks first
  const int b = tile.bh / p.H, h = tile.bh % p.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int m0 = m_block * Tr::kBlockM, r0 = m0 + 16 * MW * warp;  // the warp's first row
  const E* q = static_cast<const E*>(p.q) + b * p.q_strides.b + h * p.q_strides.h;
  const E* k = static_cast<const E*>(p.k) + b * p.k_strides.b + h * p.k_strides.h;
  const E* v = static_cast<const E*>(p.v) + b * p.v_strides.b + h * p.v_strides.h;
  const int n_end = p.causal ? min(p.T, m0 + Tr::kBlockM) : p.T;
  const int n_tiles = (n_end + Tr::kBlockN - 1) / Tr::kBlockN;

  fa::load_tile<Tr::kBlockM, D, S, Tr::kThreads>(sQ, q, p.q_strides.t, m0, p.T);
  fa::load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sK, k, p.k_strides.t, 0, p.T);
  fa::load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sV, v, p.v_strides.t, 0, p.T);
  fa::cp_async_commit();

  AttentionDropout drop{p.seed, p.offset, p.dropout_threshold};
  const float scale_log2 = p.scale * fa::kLog2e;
  float o[MW][DT][4] = {}, m_run[MW][2], l_run[MW][2] = {};
#pragma unroll
  for (int mw = 0; mw < MW; ++mw) m_run[mw][0] = m_run[mw][1] = -INFINITY;
  uint32_t qa[MW][fa::a_steps<D>()][4];
  for (int j = 0; j < n_tiles; ++j) {
    const int stage = j % 2, n0 = j * Tr::kBlockN;
    if (j + 1 < n_tiles) {  // prefetch the next K/V tile into the other stage
      const int next = (stage ^ 1) * Tr::kBlockN * S;
      fa::load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sK + next, k, p.k_strides.t, n0 + Tr::kBlockN,
                                                     p.T);
      fa::load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sV + next, v, p.v_strides.t, n0 + Tr::kBlockN,
                                                     p.T);
      fa::cp_async_commit();
      fa::cp_async_wait<1>();
    } else {
      fa::cp_async_wait<0>();
    }
    __syncthreads();
    if (j == 0) {
#pragma unroll
      for (int mw = 0; mw < MW; ++mw) fa::load_rows_a<D, S>(qa[mw], sQ, r0 - m0 + 16 * mw, lane);
    }
    const E* k_tile = sK + stage * Tr::kBlockN * S;
    const E* v_tile = sV + stage * Tr::kBlockN * S;

    float s[MW][NT][4] = {};
    fa::gemm_rows_nk_mw<D, NT, S, MW>(s, qa, k_tile, lane);
#pragma unroll
    for (int mw = 0; mw < MW; ++mw) {
      const int rm = r0 + 16 * mw;
      if (n0 + Tr::kBlockN > p.T || (p.causal && n0 + Tr::kBlockN - 1 > rm)) {
        fa::mask_scores<NT>(s[mw], rm, n0, p.T, p.causal, lane);
      }
      fa::online_softmax<NT, DT>(s[mw], o[mw], m_run[mw], l_run[mw], scale_log2);
      if (drop.threshold != 0) {
        fa::dropout_rows<NT, Tr::kMaskStride>(s[mw], sMask + warp * 16 * Tr::kMaskStride, p,
                                              static_cast<uint32_t>(tile.bh), rm, n0, lane);
      }
    }
    fa::gemm_p_kn_mw<D, NT, DT, S, MW>(o, s, v_tile, lane);
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  const float keep_scale = drop.threshold != 0 ? drop.keep_scale() : 1.0f;
#pragma unroll
  for (int mw = 0; mw < MW; ++mw) {
    fa::fold_acc<D>(o[mw]);
    store_output<E, D>(p, o[mw], m_run[mw], l_run[mw], b, h, r0 + 16 * mw, keep_scale, lane);
  }
}

// ---- head dim 8: the lazy-max path (the header's points 1-3) --------------------------------

// Partial P V accumulators: 2, not the 4 of gemm_p_kn at D = 8. The 8 mma of a 128-key tile then
// form chains of 4 (about 4 x 33 cycles; 2 at 64 keys), which the other warps of the SM
// sub-partition (3 or more, from other CTAs) cover easily, while the 8 registers saved keep the
// 128-key kernel under 128 without spills.
// (Their rescale only runs on the rare slow tiles now, so the count costs no FMULs.)
constexpr int kLazyAcc = 2;

// A warp's running state for its 16 rows (the thread's rows g and g + 8).
struct LazyRows {
  float o[kLazyAcc][4] = {};  // 16 x 8 output in partial accumulators (gemm_pv_lazy)
  float m[2] = {};            // running max (log2 units); 0 until the first tile sets it
  float l[2] = {};            // the whole row sum of the rounded P (no quad reduction)
  uint32_t qa[4] = {};        // A fragment [hi | lo] of Q scale log2 e (scores_lazy)
};

// The 64-key K/V copy of the lazy kernel: one 16-byte row a thread a tile, K in warps 0-1 and V
// in warps 2-3 (a warp-uniform choice). The thread's source pointer is set up once and advanced
// a tile at a time: computed afresh, a row's 64-bit address costs about 20 integer instructions
// a tile, which 64 keys (twice the tiles of 128) would pay twice as often.
template <typename E>
struct KvRowCopy {
  using Tr = FwdTraits<8>;
  const E* src;  // this thread's row of the next tile to load
  int64_t step;  // kBlockN rows of the thread's tensor, in elements
  uint32_t dst;  // shared address of the thread's row in stage 0
  int row;       // the row of a tile the thread copies

  __device__ KvRowCopy(const FlashAttentionParams& p, const E* k, const E* v, const E* sK,
                       const E* sV) {
    const bool is_v = threadIdx.x >= Tr::kBlockN;
    const int64_t stride = is_v ? p.v_strides.t : p.k_strides.t;
    row = threadIdx.x % Tr::kBlockN;
    src = (is_v ? v : k) + row * stride;
    step = Tr::kBlockN * stride;
    dst = fa::smem_addr((is_v ? sV : sK) + row * Tr::kStride);
  }
  // Starts the copy of tile j (the tiles in order, one call each) into stage j % 2. Rows past T
  // are zero-filled, and give the address any_row (none is read): K's first row, the same for
  // every thread, so that it needs no register of its own.
  __device__ void issue(int j, int T, const E* any_row) {
    constexpr uint32_t kStageBytes = Tr::kBlockN * Tr::kStride * sizeof(E);
    const bool valid = j * Tr::kBlockN + row < T;
    fa::cp_async16(dst + (j % 2) * kStageBytes, valid ? src : any_row, valid);
    src += step;
  }
};

// What a CTA of the lazy kernel works on: its (batch, head), its first query row m0, the heads'
// base pointers and the number of key tiles it visits. Its shared memory: Q, then K (rows of
// K and V (two stages each), then the warps' dropout buffers.
template <typename E>
struct LazyBlock {
  using Tr = FwdTraits<8>;
  int bh, b, h, m0, n_tiles;
  const E *q, *k, *v;
  E *sQ, *sK, *sV;  // sK, sV: [stage][kBlockN][kStride]
  uint8_t* sMask;

  __device__ LazyBlock(const FlashAttentionParams& p, unsigned char* smem) {
    const fa::BlockTile tile = fa::block_tile();
    const int m_block = tile.tiles - 1 - tile.rank;  // heaviest causal blocks first
    bh = tile.bh, b = bh / p.H, h = bh % p.H, m0 = m_block * Tr::kBlockM;
    q = static_cast<const E*>(p.q) + b * p.q_strides.b + h * p.q_strides.h;
    k = static_cast<const E*>(p.k) + b * p.k_strides.b + h * p.k_strides.h;
    v = static_cast<const E*>(p.v) + b * p.v_strides.b + h * p.v_strides.h;
    const int n_end = p.causal ? min(p.T, m0 + Tr::kBlockM) : p.T;
    n_tiles = (n_end + Tr::kBlockN - 1) / Tr::kBlockN;
    sQ = reinterpret_cast<E*>(smem);
    sK = sQ + Tr::kBlockM * Tr::kStride;
    sV = sK + Tr::kStages * Tr::kBlockN * Tr::kStride;
    sMask = reinterpret_cast<uint8_t*>(sV + Tr::kStages * Tr::kBlockN * Tr::kStride);
  }
  // Starts the loads of Q and of key/value tile 0.
  __device__ void load_first(const FlashAttentionParams& p, KvRowCopy<E>& kv) const {
    fa::load_tile<Tr::kBlockM, 8, Tr::kStride, Tr::kThreads>(sQ, q, p.q_strides.t, m0, p.T);
    load_kv(p, kv, 0);
  }
  // Starts the load of key/value tile j into stage j % 2 (one cp.async group): one 16-byte row
  // a thread (KvRowCopy) instead of load_tile's loop.
  __device__ void load_kv(const FlashAttentionParams& p, KvRowCopy<E>& kv, int j) const {
    kv.issue(j, p.T, k);
    fa::cp_async_commit();
  }
  // Prefetches tile j + 1 into the other stage, then waits until tile j (and Q) has landed and
  // every thread sees it.
  __device__ void wait_kv(const FlashAttentionParams& p, KvRowCopy<E>& kv, int j) const {
    if (j + 1 < n_tiles) {
      load_kv(p, kv, j + 1);
      fa::cp_async_wait<1>();
    } else {
      fa::cp_async_wait<0>();
    }
    __syncthreads();
  }
  __device__ const E* k_tile(int j) const { return sK + (j % 2) * Tr::kBlockN * Tr::kStride; }
  __device__ const E* v_tile(int j) const { return sV + (j % 2) * Tr::kBlockN * Tr::kStride; }
};

// S' = (Q scale log2 e) K^T - m for a 16 x 8 NT tile, one m16n8k16 an 8-key n-tile. Q scale
// log2 e is the pair hi + lo of E (scale_split_pair: exact to about 2^-16, where hi alone would
// round every product by up to 2^-9), A = [hi | lo] against B = [K^T; K^T] (load_b_nk_k8_twice),
// and every mma starts from the same C tile cm = -m (mma16816_cd), so no instruction a score
// is spent on the scale or the shift.
template <typename E, int NT, int STRIDE>
__device__ __forceinline__ void scores_lazy(float (*s)[4], const uint32_t* qa, const float* cm,
                                            const E* k_tile, int lane) {
#pragma unroll
  for (int nt = 0; nt < NT; nt += 2) {
    uint32_t b[4];
    fa::load_b_nk_k8_twice<STRIDE>(b, k_tile, nt * 8, lane);
    fa::mma16816_cd<E>(s[nt], qa, b, cm);
    fa::mma16816_cd<E>(s[nt + 1], qa, b + 2, cm);
  }
}

// o[16 x 8] += P V for KS 16-key A fragments of P (packed, dropout applied), alternating over
// the kLazyAcc partial accumulators so that consecutive mma do not wait on each other.
template <typename E, int KS, int STRIDE>
__device__ __forceinline__ void gemm_pv_lazy(float (*o)[4], const uint32_t (*pa)[4],
                                             const E* v_tile, int lane) {
#pragma unroll
  for (int ks = 0; ks < KS; ks += 2) {
    uint32_t b[4];
    fa::load_b_kn_2k<STRIDE>(b, v_tile, ks * 16, 0, lane);
    fa::mma16816<E>(o[ks % kLazyAcc], pa[ks], b);
    fa::mma16816<E>(o[(ks + 1) % kLazyAcc], pa[ks + 1], b + 2);
  }
}

// The first key tile that the warp's rows r0.. must mask: tile j has keys past T - 1 iff j >=
// T / kBlockN and, causal, keys past row r0 iff j >= (r0 + 1) / kBlockN; every later tile is
// masked too. Kept in a register, it tests a tile with one compare.
__device__ __forceinline__ int first_edge_tile(const FlashAttentionParams& p, int r0) {
  constexpr int N = FwdTraits<8>::kBlockN;
  return p.causal ? min(p.T / N, (r0 + 1) / N) : p.T / N;
}

// One key tile of the lazy path for a warp's 16 rows r0..: P into packed A fragments, l, o.
// edge: the tile has keys to mask (past T, or causal ones past a row).
template <typename E, bool kDropout>
__device__ __forceinline__ void tile_lazy(const FlashAttentionParams& p, LazyRows& w,
                                          const LazyBlock<E>& blk, const fa::PackedDropoutLane& d,
                                          int j, bool edge, int r0, int lane) {
  using Tr = FwdTraits<8>;
  constexpr int NT = Tr::kBlockN / 8, KS = NT / 2, S = Tr::kStride;
  const int n0 = j * Tr::kBlockN;
  const bool first = j == 0;
  const float cm[4] = {-w.m[0], -w.m[0], -w.m[1], -w.m[1]};  // C tile: rows g, g + 8
  float s[NT][4], sum[2];
  uint32_t pa[KS][4];
  scores_lazy<E, NT, S>(s, w.qa, cm, blk.k_tile(j), lane);
  if (edge) fa::mask_scores<NT>(s, r0, n0, p.T, p.causal, lane);
  bool rebase = first;
  if (!first) {  // the fast path: P against the old m, kept if no row sum outgrew the bound
    fa::exp2_to_a<E, NT>(pa, s);  // masked keys: MUFU.EX2 gives them an exact 0
    fa::row_sums_mma<E, KS>(pa, sum);
    rebase = !__all_sync(0xffffffffu, sum[0] <= fa::kMaxTileRowSum && sum[1] <= fa::kMaxTileRowSum);
    if (rebase) {  // s now holds P: recompute the scores
      scores_lazy<E, NT, S>(s, w.qa, cm, blk.k_tile(j), lane);
      if (edge) fa::mask_scores<NT>(s, r0, n0, p.T, p.causal, lane);
    }
  }
  if (rebase) {
    float alpha[2];
    fa::rebase_rows<NT>(s, w.m, alpha, first);
    fa::exp2_to_a<E, NT>(pa, s);
    fa::row_sums_mma<E, KS>(pa, sum);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      w.l[r] *= alpha[r];
#pragma unroll
      for (int i = 0; i < kLazyAcc; ++i) w.o[i][2 * r] *= alpha[r], w.o[i][2 * r + 1] *= alpha[r];
    }
  }
  w.l[0] += sum[0];
  w.l[1] += sum[1];
  if constexpr (kDropout) {
    fa::dropout_packed<KS, Tr::kMaskStride>(
        pa, blk.sMask + (threadIdx.x / 32) * 16 * Tr::kMaskStride, p.dropout_schedule, d, n0, lane);
  }
  gemm_pv_lazy<E, KS, S>(w.o, pa, blk.v_tile(j), lane);
}

// Head dim 8. FwdTraits<8>::kMinBlocks CTAs an SM (4 at 128 keys: <= 128 registers a thread; 5
// at 64 keys: <= 96, the kernel uses 95): it is latency-bound, and every resident warp helps hide
// the mma, exponential and vote latencies of the others. With dropout (kDropout, chosen once a
// launch) the mask doubles a tile's instructions and the kernel is issue-bound instead:
// kMinBlocksDropout.
template <typename E, bool kDropout>
__global__ void __launch_bounds__(FwdTraits<8>::kThreads, FwdTraits<8>::kMinBlocks)
    flash_fwd_kernel_lazy(const FlashAttentionParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const LazyBlock<E> blk(p, smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r0 = blk.m0 + 16 * warp;                 // the warp's first row
  KvRowCopy<E> kv(p, blk.k, blk.v, blk.sK, blk.sV);
  blk.load_first(p, kv);
  const int edge_from = first_edge_tile(p, r0);
  const fa::PackedDropoutLane drop(p, static_cast<uint32_t>(blk.bh), r0, lane);
  LazyRows w;
  for (int j = 0; j < blk.n_tiles; ++j) {
    blk.wait_kv(p, kv, j);
    if (j == 0) {
      fa::load_a_k8<FwdTraits<8>::kStride>(w.qa, blk.sQ, r0 - blk.m0, lane);
      const float scale_log2 = p.scale * fa::kLog2e;
      fa::scale_split_pair<E>(w.qa[1], scale_log2, &w.qa[1], &w.qa[3]);  // rows g + 8
      fa::scale_split_pair<E>(w.qa[0], scale_log2, &w.qa[0], &w.qa[2]);  // rows g
    }
    const bool edge = j >= edge_from;  // keys to mask (see first_edge_tile)
    tile_lazy<E, kDropout>(p, w, blk, drop, j, edge, r0, lane);
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  const float keep_scale =
      kDropout ? AttentionDropout{p.seed, p.offset, p.dropout_threshold}.keep_scale() : 1.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) w.o[0][i] += w.o[1][i];
  store_output<E, 8, true>(p, w.o, w.m, w.l, blk.b, blk.h, r0, keep_scale, lane);
}

template <typename E, int D>
void launch_forward(const FlashAttentionParams& p) {
  using Tr = FwdTraits<D>;
  void (*kernel)(FlashAttentionParams) = nullptr;
  if constexpr (Tr::kLazyMax) {
    kernel =
        p.dropout_threshold != 0 ? flash_fwd_kernel_lazy<E, true> : flash_fwd_kernel_lazy<E, false>;
  } else {
    kernel = flash_fwd_kernel<E, D>;
  }
  fa::launch_over_tiles<Tr::kBlockM, Tr::kThreads, Tr::kSmemBytes>(kernel, p);
}

template <typename E>
void dispatch_forward(const FlashAttentionParams& p) {
  switch (p.D) {
    case 8:
      return launch_forward<E, 8>(p);
    case 16:
      return launch_forward<E, 16>(p);
    case 32:
      return launch_forward<E, 32>(p);
    case 64:
      return launch_forward<E, 64>(p);
    case 128:
      return launch_forward<E, 128>(p);
    default:
      FAIL("flash_attention_forward: unsupported head dim {}", p.D);
  }
}

}  // namespace

void flash_attention_forward(const FlashAttentionParams& p) {
  NvtxRange range("attention_fwd");
  CHECK(p.B * p.H <= 65535, "flash_attention_forward: B * H = {} exceeds the grid's 65535",
        p.B * p.H);
  CHECK(
      p.dropout_threshold <= 255,
      "flash_attention_forward: dropout threshold {} is over 255 (AttentionDropout::threshold_for)",
      p.dropout_threshold);
  // The Hopper wgmma kernel (cuda/flash_attention_fwd_sm90.cu) where it applies, once enabled.
  if (fa::kUseSm90Forward && fa::launch_forward_sm90(p)) return;
  if (p.elem == AttnElem::BF16) {
    dispatch_forward<__nv_bfloat16>(p);
  } else {
    dispatch_forward<__half>(p);
  }
}

}  // namespace mt::cuda
