// FlashAttention backward (FlashAttention-2) on mma.sync, every head dim: the dK/dV kernel, which
// in the single pass (the default) also adds dQ. cuda/flash_attention_bwd_q.cu has the rest: the
// delta kernel before it, the dQ rounding after it, the deterministic backward's dQ kernel, and
// the public launcher. cuda/flash_attention_bwd_d8.cuh says what changes at D = 8;
// cuda/flash_attention_bwd_sm90.cu replaces this kernel on Hopper at D = 64 and 128.
//
// From the forward's saved row log-sum-exp the probabilities are recomputed exactly:
//     p_ij = exp(scale q_i . k_j - lse_i)                      (= the forward's softmax)
// and with delta_i = sum_d dO_id O_id (flash_attention_bwd_q.cu computes it first),
//     dV_j = sum_i drop_ij(p_ij) dO_i
//     dP_ij = drop_ij(dO_i . v_j)         (drop = keep ? 1 / (1 - p) : 0, the forward's mask)
//     dS_ij = p_ij (dP_ij - delta_i)      (the softmax backward: delta_i = sum_j p_ij dP_ij)
//     dK_j = scale sum_i dS_ij q_i
// One CTA owns 64 keys (16 a warp) and streams every query tile that sees them, so each dK/dV
// row is summed by one warp in a fixed order: no atomics, the same bits on every run (dQ is
// another matter, below).
//
// Each warp computes the transposed tiles S^T = K Q^T and dP^T = V dO^T (16 keys x kBlockM
// queries), so that P^T and dS^T come out of the mma in the A-operand layout that the next
// products, dV += P^T dO and dK += dS^T Q, take from registers.
//
// Single pass (p.dq_accum set): the same tile also gives the query rows' share of dQ,
//     dQ_i += scale sum_{j in the CTA's keys} dS_ij k_j,
// so the probabilities are computed once instead of twice (the dQ kernel of
// flash_attention_bwd_q.cu recomputes them). dS^T goes through shared memory (the dQ product
// needs the queries as rows, ldmatrix .trans turns it around), and each warp adds its 16 x D
// block of the product to a float32 accumulator with vector atomics (red.global.add.v2.f32):
// T / 64 key blocks add into every dQ row, in an order that can change from run to run.
#include "cuda/check.cuh"
#include "cuda/flash_attention_bwd.cuh"
#include "cuda/flash_attention_bwd_d8.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_dropout.cuh"

namespace mt::cuda::fa {

namespace {

// Tile sizes: a CTA owns kBlockN keys (16 a warp) and streams query tiles of kBlockM rows (with
// their dO, lse and delta).
template <int D>
struct BwdKVTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = 16 * kWarps;  // 64 keys
  // dK and dV accumulators are 16 x D fp32 each (D / 2 registers a thread, twice); S^T and
  // dP^T are 16 x kSubM (kSubM / 2 registers each): 32 queries a tile at D = 128 keeps the
  // thread under 255 registers. At D = 8, 32 as well (of a 64-query loaded tile): 96 instead
  // of 162 registers, so 5 CTAs (20 warps) fit an SM instead of 3.
  static constexpr int kBlockM = D == 128 ? 32 : 64;
  // Queries computed at once (the S^T / dP^T registers): 32 at D = 8, in two halves of each
  // loaded 64-query tile, so that the per-tile loads, barriers and dQ product are amortized over
  // 64 queries (at D = 8 a warp's share of a 32-query tile is only 16 scores a thread).
  static constexpr int kSubM = D == 8 ? 32 : kBlockM;
  // D = 8: hold the kernel to 5 CTAs an SM (<= 102 registers); it is bound by issue latency,
  // so the 20 warps matter more than a few registers.
  static constexpr int kMinBlocks = D == 8 ? 5 : 1;
  static constexpr int kStride = smem_stride<D>();
  static constexpr int kStages = 3;  // one barrier a tile (see the kernel's loop)
  static constexpr int kSmemKV = 2 * kBlockN * kStride * 2;
  static constexpr int kSmemQdO = kStages * 2 * kBlockM * kStride * 2;
  static constexpr int kSmemStats = kStages * 2 * kBlockM * 4;  // lse and delta, fp32
  static constexpr int kSmemMask = kWarps * kSubM * 16;         // 16 key bytes a query
  // Single-pass backward: the tile's dS^T (kBlockN keys x kBlockM queries, E) goes through
  // shared memory so that dQ = dS K can be computed with the queries as rows. 8 elements of
  // padding a row keep the 8 rows of each ldmatrix in different banks.
  static constexpr int kDsStride = kBlockM + 8;
  static constexpr int kSmemDs = 2 * kBlockN * kDsStride * 2;  // double-buffered
  static constexpr int kSmemBytes = kSmemKV + kSmemQdO + kSmemStats + kSmemMask + kSmemDs;

  static_assert(D == 8 || D == 16 || D == 32 || D == 64 || D == 128, "head dims 8..128");
  static_assert(kBlockM % 32 == 0, "query tiles are loaded as pairs of 16-row mma steps");
  static_assert(kBlockM / 16 <= kWarps, "every 16-query block of dQ has a warp");
  static_assert(kBlockM % kSubM == 0 && kSubM % 32 == 0, "whole sub-tiles of 16-row pairs");
  static_assert(kSmemBytes <= 227 * 1024, "fits an H100 SM's shared memory");
};

// Queues the copies of the log2-domain lse and the delta of query rows [m0, m0 + M) into
// shared memory (part of the caller's cp.async group), interleaved by pairs of rows:
// s_stats[4 j ..] = {lse[2 j], lse[2 j + 1], delta[2 j], delta[2 j + 1]}, the four numbers a
// lane needs for its two query columns of a C tile, so one 16-byte load fetches them. Rows past
// T get 0: their scores are masked to -inf, so p = 2^(-inf - 0) = 0, never a NaN.
template <int M, int THREADS>
__device__ __forceinline__ void load_stats(float* s_stats, const FlashAttentionParams& p,
                                           int64_t bh, int m0) {
  const int64_t plane = static_cast<int64_t>(p.B) * p.H * p.T;
#pragma unroll
  for (int step = 0; step < (M + THREADS - 1) / THREADS; ++step) {  // compile-time trip count
    const int i = static_cast<int>(threadIdx.x) + step * THREADS;
    if (M % THREADS != 0 && i >= M) break;
    const int row = m0 + i;
    const bool valid = row < p.T;
    const int64_t at = valid ? bh * p.T + row : 0;
    float* pair = s_stats + (i / 2) * 4 + i % 2;
    cp_async4(smem_addr(pair), p.delta + plane + at, valid);  // lse * log2(e)
    cp_async4(smem_addr(pair + 2), p.delta + at, valid);      // delta
  }
}

// P^T and dS^T of one tile from S^T (in s, overwritten by drop(P^T)) and dP^T (in dp,
// overwritten by dS^T). Without dropout (kDropout false, chosen once per launch) a score costs
// FFMA, EX2, FADD, FMUL. With it, a flag test and one select more: dS / keep_scale = drop(P) dP
// - P delta / keep_scale reuses the selected drop(P) (an FFMA where the FADD was), and the
// 1 / (1 - p) factor is folded into the final scales instead (the dK and dQ scales carry
// keep_scale, and dV's store applies it to drop(P)); one select a score fewer than selecting dP
// too (docs/benchmarks.md, A/B runs).
template <int MT, bool kDropout>
__device__ __forceinline__ void probs_and_ds(float (*s)[4], float (*dp)[4], const float* s_stats,
                                             float scale_log2, const uint8_t* flag_buf,
                                             float inv_keep_scale, int lane) {
  const int t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < MT; ++nt) {
    // Columns nt * 8 + 2 t and + 1: lse in .x, .y, delta in .z, .w (see load_stats).
    const float4 st = *reinterpret_cast<const float4*>(s_stats + (nt * 4 + t) * 4);
    const float2 lse = make_float2(st.x, st.y), delta = make_float2(st.z, st.w);
    const uint32_t flags = kDropout ? flag_word(flag_buf, nt, lane) : 0u;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float pr = ex2(fmaf(s[nt][i], scale_log2, -(i % 2 ? lse.y : lse.x)));
      const float dl = i % 2 ? delta.y : delta.x;
      if constexpr (kDropout) {
        const bool keep = (flags >> (8 * i + 7)) & 1u;
        s[nt][i] = keep ? pr : 0.0f;
        dp[nt][i] = fmaf(s[nt][i], dp[nt][i], -pr * (dl * inv_keep_scale));
      } else {
        dp[nt][i] = pr * (dp[nt][i] - dl);
        s[nt][i] = pr;
      }
    }
  }
}

// 1 / (1 - p) under dropout, else 1: the factor of dV; dS comes out of probs_and_ds divided by
// it, so dK's and dQ's factor ds_scale carries it besides the softmax scale. (Computed where
// used: kept in registers across the query loop, they made the D = 8 kernel spill.)
__device__ __forceinline__ float keep_scale(const FlashAttentionParams& p) {
  return p.dropout_threshold != 0
             ? AttentionDropout{p.seed, p.offset, p.dropout_threshold}.keep_scale()
             : 1.0f;
}
__device__ __forceinline__ float ds_scale(const FlashAttentionParams& p) {
  return p.scale * keep_scale(p);
}

// The warp's dS^T (16 keys from key0 x MT * 8 queries, fp32 C tiles) into shared memory as E.
template <int MT, int STRIDE, typename E>
__device__ __forceinline__ void store_ds_t(E* sDs, const float (*ds)[4], int key0, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < MT; ++nt) {
    *reinterpret_cast<uint32_t*>(sDs + (key0 + g) * STRIDE + nt * 8 + 2 * t) =
        Elem<E>::pack(ds[nt][0], ds[nt][1]);
    *reinterpret_cast<uint32_t*>(sDs + (key0 + g + 8) * STRIDE + nt * 8 + 2 * t) =
        Elem<E>::pack(ds[nt][2], ds[nt][3]);
  }
}

// dQ rows [m0, m0 + kBlockM) += scale dS K over the CTA's kBlockN keys (sDs holds dS^T, sK the
// keys). Warp w takes 16-query block w % MB and NTW of the D / 8 column tiles; at D = 8 there
// is one column tile, so only MB warps have work. dq_head points at dq_accum[b, 0, h, 0].
template <typename Tr, int D, typename E>
__device__ __forceinline__ void accumulate_dq(float* dq_head, int64_t row_stride, const E* sDs,
                                              const E* sK, int m0, int T, float scale, int warp,
                                              int lane) {
  constexpr int MB = Tr::kBlockM / 16, NT8 = D / 8, WPM = Tr::kWarps / MB;
  constexpr int NTW = NT8 / WPM > 0 ? NT8 / WPM : 1;
  static_assert(NTW == 1 || NTW % 2 == 0, "column tiles are loaded in pairs");
  const int mb = warp % MB, g = lane / 4, t = lane % 4;
  if ((warp / MB) * NTW >= NT8) return;
  // At most 4 column tiles (16 registers) at a time: the dK and dV accumulators are live here.
  constexpr int C = NTW < 4 ? NTW : 4;
#pragma unroll 1
  for (int nt0 = (warp / MB) * NTW; nt0 < (warp / MB + 1) * NTW; nt0 += C) {
    float acc[C][4] = {};
    if constexpr (C == 1) {  // D = 8: one B load covers two 16-key steps
#pragma unroll
      for (int ks = 0; ks < Tr::kBlockN; ks += 32) {
        uint32_t a0[4], a1[4], b[4];
        load_a_trans<Tr::kDsStride>(a0, sDs, mb * 16, ks, lane);
        load_a_trans<Tr::kDsStride>(a1, sDs, mb * 16, ks + 16, lane);
        load_b_kn_2k<Tr::kStride>(b, sK, ks, nt0 * 8, lane);
        mma16816<E>(acc[0], a0, b);
        mma16816<E>(acc[0], a1, b + 2);
      }
    } else {
#pragma unroll
      for (int ks = 0; ks < Tr::kBlockN; ks += 16) {
        uint32_t a[4];
        load_a_trans<Tr::kDsStride>(a, sDs, mb * 16, ks, lane);
#pragma unroll
        for (int nt = 0; nt < C; nt += 2) {
          uint32_t b[4];
          load_b_kn<Tr::kStride>(b, sK, ks, (nt0 + nt) * 8, lane);
          mma16816<E>(acc[nt], a, b);
          mma16816<E>(acc[nt + 1], a, b + 2);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = m0 + mb * 16 + g + 8 * r;
      if (row >= T) continue;
      float* dst = dq_head + row * row_stride + nt0 * 8 + 2 * t;
#pragma unroll
      for (int nt = 0; nt < C; ++nt) {
        red_add_v2(dst + nt * 8, acc[nt][2 * r] * scale, acc[nt][2 * r + 1] * scale);
      }
    }
  }
}

template <typename Tr, int D, typename E>
__device__ __forceinline__ void kv_subtile(float (*dk)[4], float (*dv)[4], const uint32_t (*ka)[4],
                                           const uint32_t (*va)[4], const E* q_sub, const E* do_sub,
                                           const float* stats_sub, E* sDs, uint8_t* mask_buf,
                                           const FlashAttentionParams& p, float scale_log2,
                                           int m_sub, int k0, int warp, int lane) {
  constexpr int MT = Tr::kSubM / 8, S = Tr::kStride;
  // The keep flags first, while the S^T and dP^T tiles (MT * 8 registers) are not yet live.
  const bool dropout = p.dropout_threshold != 0;
  if (dropout) {
    dropout_flags<MT>(mask_buf, KeyChunkDropout(p, static_cast<uint32_t>(block_tile(p).bh), k0),
                      m_sub, lane);
  }
  float st[MT][4] = {}, dpt[MT][4] = {};
  gemm_rows_nk<D, MT, S>(st, ka, q_sub, 0, lane);    // S^T = K Q^T
  gemm_rows_nk<D, MT, S>(dpt, va, do_sub, 0, lane);  // dP^T = V dO^T (before dropout)
  if (m_sub + Tr::kSubM > p.T || (p.causal && m_sub < k0 + 15)) {
    // Transposed: a score is hidden when its query (column) is past T or before the key.
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int nt = 0; nt < MT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int key = k0 + g + 8 * (i / 2), query = m_sub + 8 * nt + 2 * t + (i % 2);
        if (query >= p.T || (p.causal && query < key)) st[nt][i] = -INFINITY;
      }
  }
  if (dropout) {
    const float inv_keep_scale = static_cast<float>(256u - p.dropout_threshold) / 256.0f;
    probs_and_ds<MT, true>(st, dpt, stats_sub, scale_log2, mask_buf, inv_keep_scale, lane);
  } else {
    probs_and_ds<MT, false>(st, dpt, stats_sub, scale_log2, nullptr, 1.0f, lane);
  }
  if (p.dq_accum != nullptr) store_ds_t<MT, Tr::kDsStride>(sDs, dpt, 16 * warp, lane);
  gemm_p_kn<D, MT, S>(dv, st, do_sub, 0, lane);  // dV += drop(P)^T dO
  gemm_p_kn<D, MT, S>(dk, dpt, q_sub, 0, lane);  // dK += dS^T Q
}

template <typename E, int D>
__global__ void __launch_bounds__(BwdKVTraits<D>::kThreads, BwdKVTraits<D>::kMinBlocks)
    flash_bwd_kv_kernel(const FlashAttentionParams p) {
  using Tr = BwdKVTraits<D>;
  constexpr int DT = acc_tiles<D>(), S = Tr::kStride, A = a_steps<D>(), M = Tr::kBlockM;
  extern __shared__ __align__(16) unsigned char smem[];
  E* sK = reinterpret_cast<E*>(smem);
  E* sV = sK + Tr::kBlockN * S;
  E* sQ = sV + Tr::kBlockN * S;                                         // [stage][kBlockM][S]
  E* sdO = sQ + Tr::kStages * M * S;                                    // [stage][kBlockM][S]
  float* sStats = reinterpret_cast<float*>(sdO + Tr::kStages * M * S);  // [stage][2 M], load_stats
  uint8_t* sMask = reinterpret_cast<uint8_t*>(sStats + Tr::kStages * 2 * M);
  E* sDs = reinterpret_cast<E*>(sMask + Tr::kSmemMask);  // [kBlockN][kDsStride], single pass

  const BlockTile tile = block_tile(p);  // rank 0: keys 0.., the heaviest causal block
  const int b = tile.b, h = tile.h;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n0 = tile.rank * Tr::kBlockN, k0 = n0 + 16 * warp;
  const E* q = head_rows<E>(p.q, p.q_strides, tile);
  const E* k = head_rows<E>(p.k, p.k_strides, tile);
  const E* v = head_rows<E>(p.v, p.v_strides, tile);
  const E* dout = head_rows<E>(p.dout, p.dout_strides, tile);
  // Causal: queries before the key block never see it.
  const int m_begin = p.causal ? (n0 / M) * M : 0;

  load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sK, k, p.k_strides.t, n0, p.T);
  load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sV, v, p.v_strides.t, n0, p.T);
  // D = 8: the small-tile copier (QueryTileCopyD8); other head dims: load_tile / load_stats.
  [[maybe_unused]] auto copier = [&] {
    if constexpr (D == 8) {
      return QueryTileCopyD8<Tr, E>(p, q, dout, tile.bh, m_begin);
    } else {
      return 0;
    }
  }();
  auto copy_query_tile = [&](int stage, int m) {
    if constexpr (D == 8) {
      copier.issue(smem_addr(sQ), smem_addr(sStats), stage, m, p.T, p.delta);
    } else {
      load_tile<M, D, S, Tr::kThreads>(sQ + stage * M * S, q, p.q_strides.t, m, p.T);
      load_tile<M, D, S, Tr::kThreads>(sdO + stage * M * S, dout, p.dout_strides.t, m, p.T);
      load_stats<M, Tr::kThreads>(sStats + stage * 2 * M, p, tile.bh, m);
    }
  };
  copy_query_tile(0, m_begin);
  cp_async_commit();

  const float scale_log2 = p.scale * kLog2e;
  float* dq_head = p.dq_accum + (int64_t(b) * p.T * p.H + h) * D;  // used only if dq_accum set
  float dk[DT][4] = {}, dv[DT][4] = {};
  uint32_t ka[A][4], va[A][4];
  // Three stages and a double-buffered sDs make one barrier a tile enough: the barrier of tile
  // j publishes tile j's loads and tile j-1's dS^T (whose dQ product runs first), and proves
  // every warp done with tile j-2, whose stage the prefetch of tile j+1 overwrites and whose
  // sDs buffer tile j rewrites.
  int m_prev = -1;  // the query rows of the tile whose dQ product is pending
  // stage = j % kStages and next = (j + 1) % kStages, kept as counters (no division a tile).
  for (int m0 = m_begin, j = 0, stage = 0, next = 1; m0 < p.T;
       m0 += M, ++j, stage = next, next = next + 1 == Tr::kStages ? 0 : next + 1) {
    if (m0 + M < p.T) {  // prefetch the next query tile
      copy_query_tile(next, m0 + M);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (j == 0 || D == 128) {  // D = 128 reloads them to stay under 255 registers
      load_rows_a<D, S>(ka, sK, 16 * warp, lane);
      load_rows_a<D, S>(va, sV, 16 * warp, lane);
    }
    E* ds_tile = sDs + (j % 2) * Tr::kBlockN * Tr::kDsStride;
    if (p.dq_accum != nullptr && m_prev >= 0) {
      accumulate_dq<Tr, D>(dq_head, int64_t(p.H) * D,
                           sDs + ((j + 1) % 2) * Tr::kBlockN * Tr::kDsStride, sK, m_prev, p.T,
                           ds_scale(p), warp, lane);
    }
    // The loaded tile in sub-tiles of kSubM queries: the loads, barriers and dQ product are
    // paid once per kBlockM queries, the registers only for kSubM.
#pragma unroll 1
    for (int sub = 0; sub < M; sub += Tr::kSubM) {
      if (m0 + sub >= p.T) break;
      kv_subtile<Tr, D>(dk, dv, ka, va, sQ + (stage * M + sub) * S, sdO + (stage * M + sub) * S,
                        sStats + stage * 2 * M + 2 * sub, ds_tile + sub,
                        sMask + warp * Tr::kSubM * 16, p, scale_log2, m0 + sub, k0, warp, lane);
    }
    m_prev = m0;
  }
  if (p.dq_accum != nullptr && m_prev >= 0) {
    const int last = (p.T - 1 - m_begin) / M;  // the last tile's index
    __syncthreads();
    accumulate_dq<Tr, D>(dq_head, int64_t(p.H) * D, sDs + (last % 2) * Tr::kBlockN * Tr::kDsStride,
                         sK, m_prev, p.T, ds_scale(p), warp, lane);
  }
  fold_acc<D>(dk);
  fold_acc<D>(dv);
  store_grad_rows<E, D>(p.dk, p.dk_strides, p, dk, ds_scale(p), b, h, k0, lane);
  store_grad_rows<E, D>(p.dv, p.dv_strides, p, dv, keep_scale(p), b, h, k0, lane);
}

template <typename E, int D>
void launch_kv(const FlashAttentionParams& p) {
  using Tr = BwdKVTraits<D>;
  fa::launch_over_tiles<Tr::kBlockN, Tr::kThreads, Tr::kSmemBytes>(flash_bwd_kv_kernel<E, D>, p);
}

template <typename E>
void dispatch_kv(const FlashAttentionParams& p) {
  switch (p.D) {
    case 8:
      return launch_kv<E, 8>(p);
    case 16:
      return launch_kv<E, 16>(p);
    case 32:
      return launch_kv<E, 32>(p);
    case 64:
      return launch_kv<E, 64>(p);
    case 128:
      return launch_kv<E, 128>(p);
    default:
      FAIL("flash_attention_backward: unsupported head dim {}", p.D);
  }
}

}  // namespace

void launch_backward_kv(const FlashAttentionParams& p) {
  if (p.elem == AttnElem::BF16) {
    dispatch_kv<__nv_bfloat16>(p);
  } else {
    dispatch_kv<__half>(p);
  }
}

}  // namespace mt::cuda::fa
