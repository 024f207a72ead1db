// FlashAttention backward, part 1: dK and dV.
//
// From the forward's saved row log-sum-exp the probabilities are recomputed exactly:
//     p_ij = exp(scale q_i . k_j - lse_i)                      (= the forward's softmax)
// and with delta_i = sum_d dO_id O_id (flash_attention_bwd_q.cu computes it first),
//     dV_j = sum_i drop_ij(p_ij) dO_i
//     dP_ij = drop_ij(dO_i . v_j)         (drop = keep ? 1 / (1 - p) : 0, the forward's mask)
//     dS_ij = p_ij (dP_ij - delta_i)      (the softmax backward: delta_i = sum_j p_ij dP_ij)
//     dK_j = scale sum_i dS_ij q_i
// One CTA owns 64 keys (16 a warp) and streams every query tile that sees them, so each dK/dV
// row is summed by one warp in a fixed order: no atomics, the same bits on every run.
//
// Each warp computes the transposed tiles S^T = K Q^T and dP^T = V dO^T (16 keys x kBlockM
// queries), so that P^T and dS^T come out of the mma in the A-operand layout that the next
// products, dV += P^T dO and dK += dS^T Q, take from registers.
#include "cuda/check.cuh"
#include "cuda/flash_attention_bwd.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_softmax.cuh"
#include "cuda/flash_attention_traits.cuh"

namespace mt::cuda::fa {

namespace {

// Queues the copies of the log2-domain lse and the delta of query rows [m0, m0 + M) into
// shared memory (part of the caller's cp.async group). Rows past T get 0: their scores are
// masked to -inf, so p = 2^(-inf - 0) = 0, never a NaN.
template <int M, int THREADS>
__device__ __forceinline__ void load_stats(float* s_lse, float* s_delta,
                                           const FlashAttentionParams& p, int64_t bh, int m0) {
  const int64_t plane = static_cast<int64_t>(p.B) * p.H * p.T;
  for (int i = threadIdx.x; i < M; i += THREADS) {
    const int row = m0 + i;
    const bool valid = row < p.T;
    const int64_t at = valid ? bh * p.T + row : 0;
    cp_async4(smem_addr(s_lse + i), p.delta + plane + at, valid);
    cp_async4(smem_addr(s_delta + i), p.delta + at, valid);
  }
}

// Keep bits of the warp's 16 keys (k0.., a multiple of 16) x MT * 8 queries (q0..): one
// Philox call per query covers the 16 keys. Bit 4 nt + i is C element i of tile nt.
template <int MT>
__device__ __forceinline__ uint32_t dropout_keys(uint8_t* buf, const AttentionDropout& drop,
                                                 uint32_t bh, int q0, int k0, int lane) {
  static_assert(MT * 4 <= 32, "one bit an element in a 32-bit word");
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < MT / 4; ++i) {
    const int q = lane + 32 * i;
    Philox4 r = drop.bytes16(bh, static_cast<uint32_t>(q0 + q), static_cast<uint32_t>(k0 / 16));
    *reinterpret_cast<uint4*>(buf + q * 16) = make_uint4(r.v[0], r.v[1], r.v[2], r.v[3]);
  }
  __syncwarp();
  uint32_t bits = 0;
#pragma unroll
  for (int nt = 0; nt < MT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int q = nt * 8 + 2 * t + (i % 2), key = g + 8 * (i / 2);
      bits |= static_cast<uint32_t>(buf[q * 16 + key] >= drop.threshold) << (4 * nt + i);
    }
  }
  __syncwarp();
  return bits;
}

// P^T and dS^T of one tile from S^T (in s, overwritten by drop(P^T)) and dP^T (in dp,
// overwritten by dS^T).
template <int MT>
__device__ __forceinline__ void probs_and_ds(float (*s)[4], float (*dp)[4], const float* s_lse,
                                             const float* s_delta, float scale_log2,
                                             uint32_t keep_bits, float keep_scale, bool dropout,
                                             int lane) {
  const int t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < MT; ++nt) {
    const float2 lse = *reinterpret_cast<const float2*>(s_lse + nt * 8 + 2 * t);
    const float2 delta = *reinterpret_cast<const float2*>(s_delta + nt * 8 + 2 * t);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float pr = ex2(fmaf(s[nt][i], scale_log2, -(i % 2 ? lse.y : lse.x)));
      const bool keep = !dropout || ((keep_bits >> (4 * nt + i)) & 1u);
      const float dpv = keep ? dp[nt][i] * keep_scale : 0.0f;
      dp[nt][i] = pr * (dpv - (i % 2 ? delta.y : delta.x));
      s[nt][i] = keep ? pr : 0.0f;
    }
  }
}

// Writes the warp's 16 rows of a contiguous [B, T, H, D] gradient, times `factor`.
template <typename E, int D>
__device__ __forceinline__ void store_rows(void* dst, const FlashAttentionParams& p,
                                           float (*acc)[4], float factor, int b, int h, int r0,
                                           int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r0 + g + 8 * r;
    if (row >= p.T) continue;
    E* out = static_cast<E*>(dst) + ((static_cast<int64_t>(b) * p.T + row) * p.H + h) * D;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(out + dt * 8 + 2 * t) =
          Elem<E>::pack(acc[dt][2 * r] * factor, acc[dt][2 * r + 1] * factor);
    }
  }
}

template <typename E, int D>
__global__ void __launch_bounds__(BwdKVTraits<D>::kThreads)
    flash_bwd_kv_kernel(const FlashAttentionParams p) {
  using Tr = BwdKVTraits<D>;
  constexpr int MT = Tr::kBlockM / 8, DT = acc_tiles<D>(), S = Tr::kStride, A = a_steps<D>();
  extern __shared__ __align__(16) unsigned char smem[];
  E* sK = reinterpret_cast<E*>(smem);
  E* sV = sK + Tr::kBlockN * S;
  E* sQ = sV + Tr::kBlockN * S;                 // [stage][kBlockM][S]
  E* sdO = sQ + Tr::kStages * Tr::kBlockM * S;  // [stage][kBlockM][S]
  float* sLse = reinterpret_cast<float*>(sdO + Tr::kStages * Tr::kBlockM * S);
  float* sDelta = sLse + Tr::kStages * Tr::kBlockM;
  uint8_t* sMask = reinterpret_cast<uint8_t*>(sDelta + Tr::kStages * Tr::kBlockM);

  const int b = blockIdx.y / p.H, h = blockIdx.y % p.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n0 = blockIdx.x * Tr::kBlockN, k0 = n0 + 16 * warp;
  const E* q = static_cast<const E*>(p.q) + b * p.q_strides.b + h * p.q_strides.h;
  const E* k = static_cast<const E*>(p.k) + b * p.k_strides.b + h * p.k_strides.h;
  const E* v = static_cast<const E*>(p.v) + b * p.v_strides.b + h * p.v_strides.h;
  const E* dout = static_cast<const E*>(p.dout) + b * p.dout_strides.b + h * p.dout_strides.h;
  // Causal: queries before the key block never see it.
  const int m_begin = p.causal ? (n0 / Tr::kBlockM) * Tr::kBlockM : 0;

  load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sK, k, p.k_strides.t, n0, p.T);
  load_tile<Tr::kBlockN, D, S, Tr::kThreads>(sV, v, p.v_strides.t, n0, p.T);
  load_tile<Tr::kBlockM, D, S, Tr::kThreads>(sQ, q, p.q_strides.t, m_begin, p.T);
  load_tile<Tr::kBlockM, D, S, Tr::kThreads>(sdO, dout, p.dout_strides.t, m_begin, p.T);
  load_stats<Tr::kBlockM, Tr::kThreads>(sLse, sDelta, p, blockIdx.y, m_begin);
  cp_async_commit();

  const AttentionDropout drop{p.seed, p.offset, p.dropout_threshold};
  const bool dropout = drop.threshold != 0;
  const float keep_scale = dropout ? drop.keep_scale() : 1.0f;
  const float scale_log2 = p.scale * kLog2e;
  float dk[DT][4] = {}, dv[DT][4] = {};
  uint32_t ka[A][4], va[A][4];
  for (int m0 = m_begin, j = 0; m0 < p.T; m0 += Tr::kBlockM, ++j) {
    const int stage = j % 2;
    if (m0 + Tr::kBlockM < p.T) {  // prefetch the next query tile into the other stage
      const int next = stage ^ 1;
      load_tile<Tr::kBlockM, D, S, Tr::kThreads>(sQ + next * Tr::kBlockM * S, q, p.q_strides.t,
                                                 m0 + Tr::kBlockM, p.T);
      load_tile<Tr::kBlockM, D, S, Tr::kThreads>(sdO + next * Tr::kBlockM * S, dout,
                                                 p.dout_strides.t, m0 + Tr::kBlockM, p.T);
      load_stats<Tr::kBlockM, Tr::kThreads>(sLse + next * Tr::kBlockM, sDelta + next * Tr::kBlockM,
                                            p, blockIdx.y, m0 + Tr::kBlockM);
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
    const E* q_tile = sQ + stage * Tr::kBlockM * S;
    const E* do_tile = sdO + stage * Tr::kBlockM * S;

    float st[MT][4] = {}, dpt[MT][4] = {};
    gemm_rows_nk<D, MT, S>(st, ka, q_tile, 0, lane);    // S^T = K Q^T
    gemm_rows_nk<D, MT, S>(dpt, va, do_tile, 0, lane);  // dP^T = V dO^T (before dropout)
    if (m0 + Tr::kBlockM > p.T || (p.causal && m0 < k0 + 15)) {
      // Transposed: a score is hidden when its query (column) is past T or before the key.
      const int g = lane / 4, t = lane % 4;
#pragma unroll
      for (int nt = 0; nt < MT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int key = k0 + g + 8 * (i / 2), query = m0 + 8 * nt + 2 * t + (i % 2);
          if (query >= p.T || (p.causal && query < key)) st[nt][i] = -INFINITY;
        }
    }
    const uint32_t keep_bits =
        dropout ? dropout_keys<MT>(sMask + warp * Tr::kBlockM * 16, drop,
                                   static_cast<uint32_t>(blockIdx.y), m0, k0, lane)
                : 0u;
    probs_and_ds<MT>(st, dpt, sLse + stage * Tr::kBlockM, sDelta + stage * Tr::kBlockM, scale_log2,
                     keep_bits, keep_scale, dropout, lane);
    gemm_p_kn<D, MT, S>(dv, st, do_tile, 0, lane);  // dV += drop(P)^T dO
    gemm_p_kn<D, MT, S>(dk, dpt, q_tile, 0, lane);  // dK += dS^T Q
    __syncthreads();
  }
  fold_acc<D>(dk);
  fold_acc<D>(dv);
  store_rows<E, D>(p.dk, p, dk, p.scale, b, h, k0, lane);
  store_rows<E, D>(p.dv, p, dv, keep_scale, b, h, k0, lane);
}

template <typename E, int D>
void launch_kv(const FlashAttentionParams& p) {
  using Tr = BwdKVTraits<D>;
  auto kernel = flash_bwd_kv_kernel<E, D>;
  if (Tr::kSmemBytes > 48 * 1024) {
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes));
  }
  dim3 grid((p.T + Tr::kBlockN - 1) / Tr::kBlockN, p.B * p.H);
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream()>>>(p);
  LAUNCH_CHECK();
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
