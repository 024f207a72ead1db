// FlashAttention forward on tensor cores (mma.sync m16n8k16, bf16 or fp16 inputs, fp32
// accumulation): the FlashAttention-2 algorithm for every head dim, and the public launcher.
//
// For one (batch, head), one CTA owns kBlockM query rows, 16 per warp (32 at D = 64), and
// streams the keys and values through shared memory in tiles of kBlockN, never materializing
// the T x T scores. Each warp keeps, for each of its rows i,
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
// these two are all the backward needs (cuda/flash_attention_bwd_kv.cu recomputes P from them).
//
// Work skipped: with causal masking, key tiles past a query block's last row are never loaded,
// and only tiles that touch the diagonal or the end of the sequence pay for the mask. Causal
// blocks are launched heaviest first (fa::block_tile) so that the grid's tail is short blocks.
//
// Two specializations take over where they apply (docs/flash_attention.md says why):
// cuda/flash_attention_fwd_d8.cu at D = 8 (the seed model; the exponential unit is the budget
// there) and cuda/flash_attention_fwd_sm90.cu at D = 64 and 128 on Hopper (wgmma).
#include "cuda/check.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_dropout.cuh"
#include "cuda/flash_attention_fwd_d8.cuh"
#include "cuda/flash_attention_sm90.cuh"
#include "cuda/nvtx.h"

namespace mt::cuda {

namespace {

// Tile sizes. Every warp owns 16 rows (the M of one mma.sync.m16n8k16) a row tile, so a CTA of
// kWarps warps owns 16 kWarps kRowTiles query rows and streams keys and values in tiles of
// kBlockN rows through double-buffered shared memory. The sizes come from the register budget
// of one thread (a warp's 16 x N fp32 tile is N / 2 registers a thread) and, at small D, from
// the exponential unit (larger key tiles amortize the per-tile row max and rescale).
template <int D>
struct FwdTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  // Row tiles of 16 a warp: 2 at D = 64, so that each K/V fragment read from shared memory
  // serves two mma (the S and O tiles of 32 rows, 64 + 64 registers, still fit); 1 elsewhere
  // (D <= 32 is bound by the exponentials, D = 128 has no registers left).
  static constexpr int kRowTiles = D == 64 ? 2 : 1;
  static constexpr int kBlockM = 16 * kWarps * kRowTiles;  // 64 or 128 query rows
  // 128 keys for D <= 32: each key tile's row max/rescale is paid once per 128 keys (the S
  // tile is 64 fp32 registers a thread); 64 for D >= 64, where the O accumulator (D / 2
  // registers) and the Q fragments (D / 4) need the room.
  static constexpr int kBlockN = D <= 32 ? 128 : 64;
  static constexpr int kStride = fa::smem_stride<D>();
  static constexpr int kStages = 2;  // K/V double buffer: loads of tile j+1 overlap tile j
  static constexpr int kSmemQ = kBlockM * kStride * 2;
  static constexpr int kSmemKV = kStages * 2 * kBlockN * kStride * 2;
  static constexpr int kMaskStride = kBlockN + 16;  // dropout bytes a row, 16-aligned, padded
  static constexpr int kSmemMask = kWarps * 16 * kMaskStride;
  static constexpr int kSmemBytes = kSmemQ + kSmemKV + kSmemMask;

  static_assert(D == 16 || D == 32 || D == 64 || D == 128, "head dims 16..128 (8: _fwd_d8.cu)");
  static_assert(kBlockN % 32 == 0, "key tiles are loaded as pairs of 16-key mma steps");
  static_assert(kBlockN % kBlockM == 0 || kBlockM % kBlockN == 0,
                "causal tile skipping assumes nested tiles");
  static_assert(kSmemBytes <= 227 * 1024, "fits an H100 SM's shared memory");
};

// The header's formulas: the exact row max every tile.
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

  const fa::BlockTile tile = fa::block_tile(p);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int m0 = (tile.tiles - 1 - tile.rank) * Tr::kBlockM;  // heaviest causal blocks first
  const int r0 = m0 + 16 * MW * warp;                         // the warp's first row
  const E* q = fa::head_rows<E>(p.q, p.q_strides, tile);
  const E* k = fa::head_rows<E>(p.k, p.k_strides, tile);
  const E* v = fa::head_rows<E>(p.v, p.v_strides, tile);
  const int n_tiles = fa::key_tiles<Tr::kBlockM, Tr::kBlockN>(p, m0);

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
    fa::store_output<E, D>(p, o[mw], m_run[mw], l_run[mw], tile.b, tile.h, r0 + 16 * mw, keep_scale,
                           lane);
  }
}

template <typename E, int D>
void launch_forward(const FlashAttentionParams& p) {
  using Tr = FwdTraits<D>;
  fa::launch_over_tiles<Tr::kBlockM, Tr::kThreads, Tr::kSmemBytes>(flash_fwd_kernel<E, D>, p);
}

template <typename E>
void dispatch_forward(const FlashAttentionParams& p) {
  switch (p.D) {
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
  // The Hopper wgmma kernel (cuda/flash_attention_fwd_sm90.cu) where it applies.
  if (fa::kUseSm90Forward && fa::launch_forward_sm90(p)) return;
  if (p.D == 8) return fa::launch_forward_d8(p);
  if (p.elem == AttnElem::BF16) {
    dispatch_forward<__nv_bfloat16>(p);
  } else {
    dispatch_forward<__half>(p);
  }
}

}  // namespace mt::cuda
