// FlashAttention backward, part 2: delta and dQ, and the backward's public launcher.
//
//     delta_i = sum_d dO_id O_id                          (one pass over O and dO)
//     dQ_i    = scale sum_j dS_ij k_j,   dS_ij = p_ij (drop_ij(dO_i . v_j) - delta_i)
// The dQ kernel has the forward's shape: one CTA owns 64 query rows (16 a warp, Q and dO
// fragments in registers) and streams the key/value tiles that those rows see, recomputing
// p_ij = 2^(scale log2e q_i . k_j - lse_i log2e) from the saved lse. Each dQ row is summed by one
// warp in key order, so, with the dK/dV kernel (flash_attention_bwd_kv.cu), the whole backward
// is deterministic. The price is that S and dP are computed twice (once per kernel): 7 tile
// products instead of the 5 of the single pass (p.dq_accum set), where the dK/dV kernel also
// adds dQ atomically into a float32 accumulator and this file only zeroes it (in the delta
// kernel) and rounds it into dq at the end.
#include "cuda/check.cuh"
#include "cuda/flash_attention_bwd.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_dropout.cuh"
#include "cuda/flash_attention_sm90.cuh"
#include "cuda/nvtx.h"

namespace mt::cuda {

namespace fa {

namespace {

// Tile sizes: the forward's shape (a CTA owns query rows, streams keys), with dO
// fragments beside Q's and two 16 x kBlockN tiles (S and dP) live at once.
template <int D>
struct BwdQTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = D == 128 ? 32 : 64;
  static constexpr int kStride = smem_stride<D>();
  static constexpr int kStages = 2;
  static constexpr int kSmemQdO = 2 * kBlockM * kStride * 2;
  static constexpr int kSmemKV = kStages * 2 * kBlockN * kStride * 2;
  static constexpr int kMaskStride = kBlockN + 16;
  static constexpr int kSmemMask = kWarps * 16 * kMaskStride;
  static constexpr int kSmemBytes = kSmemQdO + kSmemKV + kSmemMask;

  static_assert(D == 8 || D == 16 || D == 32 || D == 64 || D == 128, "head dims 8..128");
  static_assert(kBlockN % 32 == 0, "key tiles are loaded as pairs of 16-key mma steps");
  static_assert(kBlockN % kBlockM == 0 || kBlockM % kBlockN == 0,
                "causal tile skipping assumes nested tiles");
  static_assert(kSmemBytes <= 227 * 1024, "fits an H100 SM's shared memory");
};

// D / 8 lanes a row, each with one 16-byte load of O and of dO, reduced by shuffles: the
// loads are coalesced (a warp reads 512 contiguous bytes when the rows are dense).
constexpr int kDeltaThreads = 256;

template <typename E, int D>
__global__ void __launch_bounds__(kDeltaThreads)
    flash_bwd_delta_kernel(const FlashAttentionParams p) {
  constexpr int L = D / 8;
  const int64_t rows = static_cast<int64_t>(p.B) * p.H * p.T;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kDeltaThreads / L) + threadIdx.x / L;
  const int part = threadIdx.x % L;
  float acc = 0.0f;
  if (row < rows) {
    const int t = static_cast<int>(row % p.T);
    const int bh = static_cast<int>(row / p.T), b = bh / p.H, h = bh % p.H;
    const uint4 o =
        *reinterpret_cast<const uint4*>(static_cast<const E*>(p.out) + b * p.out_strides.b +
                                        t * p.out_strides.t + h * p.out_strides.h + part * 8);
    const uint4 d =
        *reinterpret_cast<const uint4*>(static_cast<const E*>(p.dout) + b * p.dout_strides.b +
                                        t * p.dout_strides.t + h * p.dout_strides.h + part * 8);
    const E* oe = reinterpret_cast<const E*>(&o);
    const E* de = reinterpret_cast<const E*>(&d);
#pragma unroll
    for (int c = 0; c < 8; ++c) acc += Elem<E>::to_float(oe[c]) * Elem<E>::to_float(de[c]);
  }
#pragma unroll
  for (int off = L / 2; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (row < rows && part == 0) {
    p.delta[row] = acc;
    p.delta[rows + row] = p.lse[row] * kLog2e;
  }
  if (row < rows && p.dq_accum != nullptr) {
    // Single pass: the dQ accumulator starts at zero. It has 8 floats for each thread of this
    // grid (rows x D / 8 lanes), zeroed in memory order (thread i: floats 8 i .. 8 i + 7) so
    // that a warp's stores are contiguous.
    const int64_t i = row * L + part;
    float4* acc = reinterpret_cast<float4*>(p.dq_accum) + 2 * i;
    acc[0] = acc[1] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
}

// Single pass, last step: dq = dq_accum rounded to E (the scale is already in), 8 elements a
// thread (two 16-byte loads, one 16-byte store). The accumulator is contiguous [B, T, H, D];
// dq is written through its strides. Thread c takes the accumulator's chunk c, so a warp's
// loads are contiguous, and so are its stores wherever dq's H x D elements of one (b, t) are
// (a contiguous dq, or the q part of a packed [B, T, 3, H, D] gradient). Index is uint32_t when
// the chunks fit (32-bit division is a few instructions, 64-bit a software routine).
constexpr int kConvertThreads = 256;
template <typename E, typename Index>
__global__ void __launch_bounds__(kConvertThreads)
    flash_bwd_dq_convert_kernel(const float* acc, E* dq, AttnStrides st, Index T, Index H,
                                Index row_chunks, Index chunks, bool dense) {
  const Index c = static_cast<Index>(blockIdx.x) * kConvertThreads + threadIdx.x;
  if (c >= chunks) return;
  const float4* chunk = reinterpret_cast<const float4*>(acc) + 2 * static_cast<int64_t>(c);
  const float4 lo = chunk[0], hi = chunk[1];
  int64_t at = static_cast<int64_t>(c) * 8;  // dense: dq has the accumulator's layout
  if (!dense) {
    const Index row = c / row_chunks, part = c - row * row_chunks;  // row = (b T + t) H + h
    const Index bt = row / H, h = row - bt * H;
    const Index b = bt / T, t = bt - b * T;
    at = b * st.b + t * st.t + h * st.h + static_cast<int64_t>(part) * 8;
  }
  *reinterpret_cast<uint4*>(dq + at) =
      make_uint4(Elem<E>::pack(lo.x, lo.y), Elem<E>::pack(lo.z, lo.w), Elem<E>::pack(hi.x, hi.y),
                 Elem<E>::pack(hi.z, hi.w));
}

template <typename E, int D>
__global__ void __launch_bounds__(BwdQTraits<D>::kThreads)
    flash_bwd_q_kernel(const FlashAttentionParams p) {
  using Tr = BwdQTraits<D>;
  constexpr int NT = Tr::kBlockN / 8, DT = acc_tiles<D>(), S = Tr::kStride, A = a_steps<D>();
  extern __shared__ __align__(16) unsigned char smem[];
  E* sQ = reinterpret_cast<E*>(smem);
  E* sdO = sQ + Tr::kBlockM * S;
  E* sK = sdO + Tr::kBlockM * S;               // [stage][kBlockN][S]
  E* sV = sK + Tr::kStages * Tr::kBlockN * S;  // [stage][kBlockN][S]
  uint8_t* sMask = reinterpret_cast<uint8_t*>(sV + Tr::kStages * Tr::kBlockN * S);

  const BlockTile tile = block_tile(p);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4;
  const int m0 = (tile.tiles - 1 - tile.rank) * Tr::kBlockM;  // heaviest causal blocks first
  const int r0 = m0 + 16 * warp;                              // the warp's first row
  const E* q = head_rows<E>(p.q, p.q_strides, tile);
  const E* k = head_rows<E>(p.k, p.k_strides, tile);
  const E* v = head_rows<E>(p.v, p.v_strides, tile);
  const E* dout = head_rows<E>(p.dout, p.dout_strides, tile);
  const int n_tiles = key_tiles<Tr::kBlockM, Tr::kBlockN>(p, m0);

  load_tile<Tr::kBlockM, D, S, Tr::kThreads>(sQ, q, p.q_strides.t, m0, p.T);
  load_tile<Tr::kBlockM, D, S, Tr::kThreads>(sdO, dout, p.dout_strides.t, m0, p.T);
  load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sK, k, p.k_strides.t, 0, p.T);
  load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sV, v, p.v_strides.t, 0, p.T);
  cp_async_commit();

  // The thread's two rows' statistics (rows past T: 0, their products are never stored).
  float lse2[2], delta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r0 + g + 8 * r;
    const int64_t at = static_cast<int64_t>(tile.bh) * p.T + row;
    lse2[r] = row < p.T ? p.lse[at] * kLog2e : 0.0f;
    delta[r] = row < p.T ? p.delta[at] : 0.0f;
  }
  const AttentionDropout drop{p.seed, p.offset, p.dropout_threshold};
  const float keep_scale = drop.threshold != 0 ? drop.keep_scale() : 1.0f;
  const float scale_log2 = p.scale * kLog2e;
  float dq[DT][4] = {};
  uint32_t qa[A][4], doa[A][4];
  for (int j = 0; j < n_tiles; ++j) {
    const int stage = j % 2, n0 = j * Tr::kBlockN;
    if (j + 1 < n_tiles) {
      const int next = (stage ^ 1) * Tr::kBlockN * S;
      load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sK + next, k, p.k_strides.t, n0 + Tr::kBlockN,
                                                 p.T);
      load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sV + next, v, p.v_strides.t, n0 + Tr::kBlockN,
                                                 p.T);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (j == 0) {
      load_rows_a<D, S>(qa, sQ, 16 * warp, lane);
      load_rows_a<D, S>(doa, sdO, 16 * warp, lane);
    }
    const E* k_tile = sK + stage * Tr::kBlockN * S;
    const E* v_tile = sV + stage * Tr::kBlockN * S;

    float s[NT][4] = {}, dp[NT][4] = {};
    gemm_rows_nk<D, NT, S>(s, qa, k_tile, 0, lane);    // S = Q K^T
    gemm_rows_nk<D, NT, S>(dp, doa, v_tile, 0, lane);  // dP = dO V^T (before dropout)
    if (n0 + Tr::kBlockN > p.T || (p.causal && n0 + Tr::kBlockN - 1 > r0)) {
      mask_scores<NT>(s, r0, n0, p.T, p.causal, lane);
    }
    if (drop.threshold != 0) {
      dropout_rows<NT, Tr::kMaskStride>(dp, sMask + warp * 16 * Tr::kMaskStride, p,
                                        static_cast<uint32_t>(tile.bh), r0, n0, lane);
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float pr = ex2(fmaf(s[nt][i], scale_log2, -lse2[i / 2]));
        s[nt][i] = pr * (dp[nt][i] * keep_scale - delta[i / 2]);  // dS
      }
    gemm_p_kn<D, NT, S>(dq, s, k_tile, 0, lane);  // dQ += dS K
    __syncthreads();
  }
  fold_acc<D>(dq);
  store_grad_rows<E, D>(p.dq, p.dq_strides, p, dq, p.scale, tile.b, tile.h, r0, lane);
}

template <typename E, int D>
void launch_q(const FlashAttentionParams& p) {
  using Tr = BwdQTraits<D>;
  fa::launch_over_tiles<Tr::kBlockM, Tr::kThreads, Tr::kSmemBytes>(flash_bwd_q_kernel<E, D>, p);
}

template <typename E, int D>
void launch_delta(const FlashAttentionParams& p) {
  const int64_t rows = static_cast<int64_t>(p.B) * p.H * p.T;
  const int64_t per_block = kDeltaThreads / (D / 8);
  const int64_t blocks = (rows + per_block - 1) / per_block;
  CHECK(blocks < (int64_t(1) << 31), "flash_attention_backward: {} rows is too many", rows);
  flash_bwd_delta_kernel<E, D><<<static_cast<unsigned>(blocks), kDeltaThreads, 0, stream()>>>(p);
  LAUNCH_CHECK();
}

template <typename E>
void launch_convert(const FlashAttentionParams& p) {
  const int64_t chunks = static_cast<int64_t>(p.B) * p.T * p.H * p.D / 8;
  const int64_t blocks = (chunks + kConvertThreads - 1) / kConvertThreads;
  CHECK(blocks < (int64_t(1) << 31), "flash_attention_backward: {} dQ chunks is too many", chunks);
  const AttnStrides& st = p.dq_strides;
  const bool dense = (st.h == p.D || p.H == 1) && (st.t == int64_t(p.H) * p.D || p.T == 1) &&
                     (st.b == int64_t(p.T) * p.H * p.D || p.B == 1);
  auto launch = [&](auto index) {
    using Index = decltype(index);
    flash_bwd_dq_convert_kernel<E, Index>
        <<<static_cast<unsigned>(blocks), kConvertThreads, 0, stream()>>>(
            p.dq_accum, static_cast<E*>(p.dq), st, static_cast<Index>(p.T), static_cast<Index>(p.H),
            static_cast<Index>(p.D / 8), static_cast<Index>(chunks), dense);
  };
  if (blocks * kConvertThreads < (int64_t(1) << 32)) {
    launch(uint32_t{});
  } else {
    launch(int64_t{});
  }
  LAUNCH_CHECK();
}

template <typename E>
void dispatch(const FlashAttentionParams& p, bool delta) {
  switch (p.D) {
    case 8:
      return delta ? launch_delta<E, 8>(p) : launch_q<E, 8>(p);
    case 16:
      return delta ? launch_delta<E, 16>(p) : launch_q<E, 16>(p);
    case 32:
      return delta ? launch_delta<E, 32>(p) : launch_q<E, 32>(p);
    case 64:
      return delta ? launch_delta<E, 64>(p) : launch_q<E, 64>(p);
    case 128:
      return delta ? launch_delta<E, 128>(p) : launch_q<E, 128>(p);
    default:
      FAIL("flash_attention_backward: unsupported head dim {}", p.D);
  }
}

}  // namespace

void launch_backward_delta(const FlashAttentionParams& p) {
  if (p.elem == AttnElem::BF16) {
    dispatch<__nv_bfloat16>(p, true);
  } else {
    dispatch<__half>(p, true);
  }
}

void launch_backward_q(const FlashAttentionParams& p) {
  if (p.elem == AttnElem::BF16) {
    dispatch<__nv_bfloat16>(p, false);
  } else {
    dispatch<__half>(p, false);
  }
}

void launch_backward_dq_convert(const FlashAttentionParams& p) {
  if (p.elem == AttnElem::BF16) {
    launch_convert<__nv_bfloat16>(p);
  } else {
    launch_convert<__half>(p);
  }
}

}  // namespace fa

void flash_attention_backward(const FlashAttentionParams& p) {
  NvtxRange range("attention_bwd");
  CHECK(p.B * p.H <= 65535, "flash_attention_backward: B * H = {} exceeds the grid's 65535",
        p.B * p.H);
  CHECK(p.dropout_threshold <= 255,
        "flash_attention_backward: dropout threshold {} is over 255 "
        "(AttentionDropout::threshold_for)",
        p.dropout_threshold);
  CHECK(grad_strides_set(p),
        "flash_attention_backward: dq_strides, dk_strides and dv_strides must be set "
        "(AttentionArgs)");
  fa::launch_backward_delta(p);  // also zeroes p.dq_accum for the single pass
  // dK, dV (and, single pass, dQ into p.dq_accum): the wgmma kernel where it applies (it declines
  // the deterministic backward, dropout, head dims other than 64 and 128, and non-sm_90 devices).
  if (!(fa::kUseSm90Backward && fa::launch_backward_sm90(p))) fa::launch_backward_kv(p);
  if (p.dq_accum != nullptr) {
    fa::launch_backward_dq_convert(p);
  } else {
    fa::launch_backward_q(p);
  }
}

}  // namespace mt::cuda
