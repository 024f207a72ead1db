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
// Work skipped: with causal masking, key tiles past a query block's last row are never loaded,
// and only tiles that touch the diagonal or the end of the sequence pay for the mask. Causal
// blocks are launched heaviest first (the last query block sees every key) so that the grid's
// tail is made of short blocks.
#include <algorithm>

#include "cuda/check.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_softmax.cuh"
#include "cuda/flash_attention_traits.cuh"
#include "cuda/nvtx.h"

namespace mt::cuda {

namespace {

using fa::FwdTraits;

// Writes the warp's 16 x D output rows (normalized) and their log-sum-exp.
template <typename E, int D>
__device__ __forceinline__ void store_output(const FlashAttentionParams& p, float (*o)[4],
                                             const float* m_run, const float* l_run, int b, int h,
                                             int r0, float keep_scale, int lane) {
  const int g = lane / 4, t = lane % 4;
  E* out = static_cast<E*>(p.out) + b * p.out_strides.b + h * p.out_strides.h;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = fa::quad_sum(l_run[r]);
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

  const int m_block = gridDim.x - 1 - blockIdx.x;  // heaviest causal blocks first
  const int b = blockIdx.y / p.H, h = blockIdx.y % p.H;
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
        fa::dropout_rows<NT, Tr::kMaskStride>(s[mw], sMask + warp * 16 * Tr::kMaskStride, drop,
                                              static_cast<uint32_t>(blockIdx.y), rm, n0, lane);
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

template <typename E, int D>
void launch_forward(const FlashAttentionParams& p) {
  using Tr = FwdTraits<D>;
  auto kernel = flash_fwd_kernel<E, D>;
  if (Tr::kSmemBytes > 48 * 1024) {
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes));
  }
  dim3 grid((p.T + Tr::kBlockM - 1) / Tr::kBlockM, p.B * p.H);
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream()>>>(p);
  LAUNCH_CHECK();
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
  if (p.elem == AttnElem::BF16) {
    dispatch_forward<__nv_bfloat16>(p);
  } else {
    dispatch_forward<__half>(p);
  }
}

}  // namespace mt::cuda
