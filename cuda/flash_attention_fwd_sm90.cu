// FlashAttention forward for Hopper (sm_90a) on warpgroup MMA (wgmma.mma_async: cuda/wgmma.cuh),
// head dims 64 and 128, bf16 or fp16 inputs, fp32 accumulation, causal or not, any T, no dropout
// (dropout stays on the mma.sync kernel of cuda/flash_attention_fwd.cu). It computes exactly what
// that kernel computes: out = softmax(scale Q K^T) V and lse = the row log-sum-exp (natural log)
// of the scaled, masked scores, with the same online softmax (2^x with log2 e in the scale).
//
// Why: mma.sync tops out near 60% of the H100's tensor-core rate; wgmma reaches it, reads B (and
// optionally A) straight from shared memory with no ldmatrix, and runs asynchronously, so the
// softmax of one tile can overlap the tensor-core work of another.
//
// The work. A CTA owns kBlockM query rows of one (batch, head): 2 warpgroups (256 threads, 128
// rows) at D = 128, 3 (384 threads, 192 rows) at D = 64, 64 rows each (the M of every wgmma).
// It streams the keys and values in tiles of kBlockN = 128 through shared memory, two stages
// each, loaded with cp.async by all the CTA's threads. For a
// warpgroup and key tile j:
//   S_j  = Q K_j^T     D / 16 wgmma m64n128k16, A = Q and B = K from shared memory (K-major)
//   P_j  = 2^(S_j scale log2 e - m)   online softmax on the fp32 accumulators, in registers
//   O   += P_j V_j     8 wgmma m64nDk16, A = P_j from registers (rounded to E), B = V from shared
//                      memory; V is stored [key][d], d contiguous = MN-major: the transpose bit
// Accumulator layout (cuda/wgmma.cuh): a thread holds rows g and g + 8 of its warp's 16, 2
// columns of every 8, exactly the mma.sync C layout, so the row max and row sum reduce over the 4
// lanes of a quad, and two neighbouring 8-column tiles of P form one A fragment of P V.
//
// The schedule (FlashAttention-3's intra-warpgroup overlap). Iteration j issues S_{j+1} and then
// P_j V_j, waits only for S_{j+1} (wgmma.wait_group 1) and runs the softmax of S_{j+1} on the
// FMA and MUFU pipes while P_j V_j runs on the tensor cores. P_{j+1} stays in fp32 in S's
// registers; the top of iteration j + 1 waits for P_j V_j, rescales O by 2^(m_j - m_{j+1}) and
// only then rounds P_{j+1} into the A registers that P_j V_j was reading (finish_pv). Two ptxas
// behaviours shape this (both visible in the SASS, cuda/README.md): a wgmma under a branch
// makes it serialize every wgmma of the kernel (hence first_tile, tile_step and last_tile, no
// wgmma in an if), and it hoists a wgmma wait to the top of its basic block, above the softmax,
// so the wait sits behind the loop's back edge instead.
// Loads: at the top of iteration j, after one barrier that says every warpgroup is done with tile
// j - 1, the CTA starts the copies of K_{j+2} (into K_j's stage, read by S_j last iteration) and
// V_{j+1} (into V_{j-1}'s stage): both land during iteration j and are waited for at the top of
// j + 1. Shared memory written by cp.async (the generic proxy) is read by wgmma through the async
// proxy: every thread waits for its copies, executes fence.proxy.async.shared::cta, and only then
// arrives at the barrier after which the wgmma are issued.
//
// Shared memory (bytes; the base rounded up to 1024 so that every swizzle atom is aligned):
//   Q  kBlockM x D x 2 = 24 KiB (D = 64, 192 rows) or 32 KiB (D = 128, 128 rows), loaded once;
//   K  2 stages x 128 x D x 2 = 32 or 64 KiB;  V the same;
//   88 or 160 KiB in all (+ 1 KiB of slack): one CTA an SM (registers allow no more).
// Every tile is stored in the 128-byte-swizzled canonical layout: a row of D elements is split
// into D / 64 column blocks of 128 bytes; in an R-row tile, column block cb of row r lives at
// tile + cb R 128 + r 128, and its 16-byte chunk c (elements 8c .. 8c + 7) at chunk position
// c ^ (r % 8) of those 128 bytes.
// Descriptors (start address >> 4, LBO >> 4, SBO >> 4, swizzle mode 1 = 128 B in bits 62-63),
// for k-step ks (16 elements of the reduced dimension), cb = ks / 4:
//   Q, A of S, K-major: start = Q + cb kBlockM 128 + w 64 128 + (ks % 4) 32 for warpgroup w;
//     SBO = 8 rows x 128 B = 1024 (the next 8 rows); LBO unused (16).
//   K, B of S, K-major: start = K[stage] + cb 128 128 + (ks % 4) 32; SBO = 1024, LBO 16; the
//     wgmma's N = 128 keys are 16 groups of 8 rows.
//   V, B of P V, MN-major (trans-b = 1): start = V[stage] + ks 16 128 (16 keys further);
//     SBO = 1024 (the next 8 keys); LBO = 128 x 128 = 16384 (the next 64 d's, used at D = 128).
//
// Registers a thread: S 64 + O D / 2 + P 32, plus addresses: about 160 (D = 64, under the 168
// that 384 threads allow) and about 206 (D = 128, of 255), with no spills (ptxas -v).
//
// Causal: key tiles past the CTA's last row are never loaded; only tiles that cross a warp's
// diagonal or the end of the sequence are masked; the heaviest query blocks launch first.
#include <atomic>

#include "cuda/check.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_sm90.cuh"
#include "cuda/flash_attention_sm90_common.cuh"
#include "cuda/nvtx.h"
#include "cuda/wgmma.cuh"

namespace mt::cuda {

namespace {

template <int D>
struct Sm90FwdTraits {
  // Warpgroups a CTA, 64 query rows each. 3 at D = 64 (FlashAttention-3's choice there: 12 warps
  // an SM instead of 8 to overlap the exponentials, which bound D = 64; 158 registers, under the
  // 168 of 384 threads, no spills), although 192-row blocks against 128-key tiles compute about
  // 18% more causal scores than needed at T = 2048 (6% with 128 rows): faster all the same
  // (docs/benchmarks.md, A/B runs). D = 128 has the registers for 2 only.
  static constexpr int kWarpgroups = D == 64 ? 3 : 2;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kBlockM = 64 * kWarpgroups;  // query rows a CTA
  static constexpr int kBlockN = 128;               // keys a tile: the N of S's wgmma
  static constexpr int kRowBytes = 128;             // one 128-byte swizzle row: 64 elements
  static constexpr int kAtomBytes = 8 * kRowBytes;  // 8 rows: the SBO of every descriptor
  static constexpr int kStages = 2;                 // K and V double buffers
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kKVBytes = kBlockN * D * 2;  // one stage of K (or of V)
  static constexpr int kSmemBytes = kQBytes + 2 * kStages * kKVBytes + 1024;  // + alignment
  static constexpr int kScoreTiles = kBlockN / 8;  // 8-column tiles of S a thread holds (16)
  static constexpr int kOutTiles = D / 8;          // of O
  static constexpr int kPSteps = kBlockN / 16;     // 16-key A fragments of P = wgmma of P V

  static_assert(D == 64 || D == 128, "wgmma kernel: head dims 64 and 128");
  static_assert(kBlockN == 128, "S = Q K^T is one m64n128k16 a k-step (wgmma.cuh has that shape)");
  static_assert(kThreads % (D / 8) == 0 && kThreads / (D / 8) % 8 == 0,
                "the tile copy keeps one 16-byte column and one swizzle phase a thread");
  static_assert(kQBytes % 1024 == 0 && kKVBytes % 1024 == 0, "stages start on swizzle atoms");
  static_assert(kSmemBytes <= 227 * 1024, "fits an H100 SM's shared memory");
};

// What a CTA works on: its (batch, head), first query row m0, key-tile count, the heads' base
// pointers, and its shared memory (addresses in the shared window): Q, K[2], V[2].
template <typename E, int D>
struct Sm90Block {
  using Tr = Sm90FwdTraits<D>;
  int b, h, m0, n_tiles;
  const E *q, *k, *v;
  uint32_t sQ, sK, sV;

  __device__ Sm90Block(const FlashAttentionParams& p, unsigned char* smem) {
    const fa::BlockTile tile = fa::block_tile(p);
    b = tile.b, h = tile.h;
    m0 = (tile.tiles - 1 - tile.rank) * Tr::kBlockM;  // heaviest causal blocks first
    q = fa::head_rows<E>(p.q, p.q_strides, tile);
    k = fa::head_rows<E>(p.k, p.k_strides, tile);
    v = fa::head_rows<E>(p.v, p.v_strides, tile);
    n_tiles = fa::key_tiles<Tr::kBlockM, Tr::kBlockN>(p, m0);
    sQ = (fa::smem_addr(smem) + 1023u) & ~1023u;  // swizzle atoms 1024-byte aligned
    sK = sQ + Tr::kQBytes;
    sV = sK + Tr::kStages * Tr::kKVBytes;
  }
  __device__ void load_q(const FlashAttentionParams& p) const {
    fa::load_tile_sw128<Tr::kBlockM, D, Tr::kThreads>(sQ, q, p.q_strides.t, m0, p.T);
  }
  // Key tile j into stage j % 2.
  __device__ void load_k(const FlashAttentionParams& p, int j) const {
    fa::load_tile_sw128<Tr::kBlockN, D, Tr::kThreads>(sK + (j % 2) * Tr::kKVBytes, k, p.k_strides.t,
                                                      j * Tr::kBlockN, p.T);
  }
  __device__ void load_v(const FlashAttentionParams& p, int j) const {
    fa::load_tile_sw128<Tr::kBlockN, D, Tr::kThreads>(sV + (j % 2) * Tr::kKVBytes, v, p.v_strides.t,
                                                      j * Tr::kBlockN, p.T);
  }
  // A of S for warpgroup w: its 64 rows of Q, K-major (LBO unused, SBO = one 8-row atom).
  __device__ uint64_t q_desc(int w) const {
    return wg::make_desc(sQ + w * 64 * Tr::kRowBytes, 16, Tr::kAtomBytes, wg::Swizzle::k128B);
  }
  // B of S: the 128 keys of tile j's stage, K-major.
  __device__ uint64_t k_desc(int j) const {
    return wg::make_desc(sK + (j % 2) * Tr::kKVBytes, 16, Tr::kAtomBytes, wg::Swizzle::k128B);
  }
  // B of P V: tile j's values, MN-major: SBO = the next 8 keys, LBO = the next 64 d's.
  __device__ uint64_t v_desc(int j) const {
    return wg::make_desc(sV + (j % 2) * Tr::kKVBytes, Tr::kBlockN * Tr::kRowBytes, Tr::kAtomBytes,
                         wg::Swizzle::k128B);
  }
};

// Issues S[64 x 128] = Q_w K^T: D / 16 k-steps of 16 d's, the first overwriting S (scale-d 0).
// A k-step inside a 64-wide column block moves the start by 32 bytes, the next column block by
// a whole block (kBlockM or kBlockN rows of 128 bytes).
template <typename E, int D>
__device__ __forceinline__ void issue_scores(float* s, uint64_t q_desc, uint64_t k_desc) {
  using Tr = Sm90FwdTraits<D>;
  wg::mma_ss_m64n128k16<E, false>(s, q_desc, k_desc);
#pragma unroll
  for (int ks = 1; ks < D / 16; ++ks) {
    const uint32_t q_off = (ks / 4) * Tr::kBlockM * Tr::kRowBytes + (ks % 4) * 32;
    const uint32_t k_off = (ks / 4) * Tr::kBlockN * Tr::kRowBytes + (ks % 4) * 32;
    wg::mma_ss_m64n128k16<E, true>(s, wg::desc_add(q_desc, q_off), wg::desc_add(k_desc, k_off));
  }
}

// Issues O[64 x D] += P V: one wgmma per 16 keys (8 rows of V are one 1024-byte atom, so 16
// keys are 2048 bytes further).
template <typename E, int D>
__device__ __forceinline__ void issue_pv(float* o, const uint32_t (*pa)[4], uint64_t v_desc) {
  using Tr = Sm90FwdTraits<D>;
#pragma unroll
  for (int ks = 0; ks < Tr::kPSteps; ++ks) {
    wg::mma_rs_m64nNk16_bt<E, D>(o, pa[ks], wg::desc_add(v_desc, ks * 16 * Tr::kRowBytes));
  }
}

// A warpgroup's running state, a thread's share (rows g and g + 8 of its warp's 16).
template <int D>
struct Sm90Rows {
  using Tr = Sm90FwdTraits<D>;
  float s[Tr::kScoreTiles][4] = {};     // S of the newest tile (wgmma accumulator), then its P
  float o[Tr::kOutTiles][4] = {};       // unnormalized output
  float m[2] = {-INFINITY, -INFINITY};  // running max, log2 units
  float l[2] = {};                   // the thread's partial running sums (quad-summed at the end)
  float alpha[2] = {};               // O's pending rescale 2^(m_old - m_new) for the newest P
  uint32_t pa[Tr::kPSteps][4] = {};  // P of the tile in P V: its A fragments
};

// The online softmax of a masked score tile for the thread's two rows (the formulas of
// cuda/flash_attention_fwd.cu): m moves up to the row max, l is rescaled and grows by the row's
// sum, and s is overwritten with P = 2^(S scale log2 e - m) in fp32. O's rescale alpha is only
// recorded: O is still being accumulated by the previous tile's P V.
template <int D>
__device__ __forceinline__ void softmax_tile(Sm90Rows<D>& st, float scale_log2) {
  constexpr int NT = Sm90FwdTraits<D>::kScoreTiles;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float part[NT];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) part[nt] = fmaxf(st.s[nt][2 * r], st.s[nt][2 * r + 1]);
    fa::tree_reduce<NT / 2>(part, [](float a, float b) { return fmaxf(a, b); });
    float mx = part[0];
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(st.m[r], mx * scale_log2);
    // A row that has seen only masked keys keeps m = -inf: subtract 0, not -inf (no NaN).
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    st.alpha[r] = fa::ex2(st.m[r] - m_use);
    st.m[r] = m_new;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      st.s[nt][2 * r] = fa::ex2(fmaf(st.s[nt][2 * r], scale_log2, -m_use));
      st.s[nt][2 * r + 1] = fa::ex2(fmaf(st.s[nt][2 * r + 1], scale_log2, -m_use));
      part[nt] = st.s[nt][2 * r] + st.s[nt][2 * r + 1];
    }
    fa::tree_reduce<NT / 2>(part, [](float a, float b) { return a + b; });
    st.l[r] = st.l[r] * st.alpha[r] + part[0];
  }
}

// Masks (if the tile needs it) and softmaxes the freshly computed S of key tile j for the warp
// whose first row is r0.
template <int D>
__device__ __forceinline__ void scores_to_p(const FlashAttentionParams& p, Sm90Rows<D>& st, int j,
                                            int r0, int lane) {
  using Tr = Sm90FwdTraits<D>;
  const int n0 = j * Tr::kBlockN;
  if (n0 + Tr::kBlockN > p.T || (p.causal && n0 + Tr::kBlockN - 1 > r0)) {
    fa::mask_scores<Tr::kScoreTiles>(st.s, r0, n0, p.T, p.causal, lane);
  }
  softmax_tile<D>(st, p.scale * fa::kLog2e);
}

// Waits for the P V in flight (if any), then applies the newest tile's rescale to O and rounds
// its P (fp32 in s) into the A fragments of the next P V: 8-column tiles 2 ks and 2 ks + 1 of S
// are keys 16 ks .. 16 ks + 15, the k-step ks of the product (see cuda/wgmma.cuh). P is packed
// only now, into the registers the finished P V was reading: packing during the softmax would
// need a second set of P registers or a wait before the softmax.
template <typename E, int D>
__device__ __forceinline__ void finish_pv(Sm90Rows<D>& st) {
  using Tr = Sm90FwdTraits<D>;
  wg::wait_group<0>();
  // O and P are accessed by the wgmma until here: their registers stay untouched till now.
  wg::fence_operands<Tr::kOutTiles * 4>(&st.o[0][0]);
  wg::fence_operands<Tr::kPSteps * 4>(&st.pa[0][0]);
#pragma unroll
  for (int dt = 0; dt < Tr::kOutTiles; ++dt) {
    st.o[dt][0] *= st.alpha[0], st.o[dt][1] *= st.alpha[0];
    st.o[dt][2] *= st.alpha[1], st.o[dt][3] *= st.alpha[1];
  }
#pragma unroll
  for (int ks = 0; ks < Tr::kPSteps; ++ks) {
    fa::c_to_a<E>(st.pa[ks], st.s[2 * ks], st.s[2 * ks + 1]);
  }
}

// K_{j+1} and V_j are in place and visible to the async proxy (each thread waits for its own
// copies and fences them; the barrier publishes them), and every warpgroup is done with tile
// j - 1 (its P V waited for in finish_pv), so the stages of K_j and V_{j-1} may be refilled with
// K_{j+2} and V_{j+1}.
template <typename E, int D>
__device__ __forceinline__ void next_stage(const FlashAttentionParams& p,
                                           const Sm90Block<E, D>& blk, int j) {
  fa::cp_async_wait<0>();
  wg::fence_proxy_async_smem();
  __syncthreads();
  if (j + 2 < blk.n_tiles) blk.load_k(p, j + 2);
  if (j + 1 < blk.n_tiles) blk.load_v(p, j + 1);
  fa::cp_async_commit();  // possibly empty: cp_async_wait counts groups
}

// Before a batch of wgmma: the rescale of O, the new P and the reads of S (the softmax) stay
// before the wgmma.fence, which orders them before the asynchronous accesses.
template <int D>
__device__ __forceinline__ void fence_state(Sm90Rows<D>& st) {
  using Tr = Sm90FwdTraits<D>;
  wg::fence_operands<Tr::kOutTiles * 4>(&st.o[0][0]);
  wg::fence_operands<Tr::kPSteps * 4>(&st.pa[0][0]);
  wg::fence_operands<Tr::kScoreTiles * 4>(&st.s[0][0]);
  wg::fence();
}

// Tile 0 (before the loop): S_0 = Q K_0^T and its P. (Its alpha is 0, and O is 0.)
template <typename E, int D>
__device__ __forceinline__ void first_tile(const FlashAttentionParams& p,
                                           const Sm90Block<E, D>& blk, Sm90Rows<D>& st,
                                           uint64_t q_desc, int r0, int lane) {
  using Tr = Sm90FwdTraits<D>;
  fence_state<D>(st);
  issue_scores<E, D>(&st.s[0][0], q_desc, blk.k_desc(0));
  wg::commit_group();
  wg::wait_group<0>();
  wg::fence_operands<Tr::kScoreTiles * 4>(&st.s[0][0]);
  scores_to_p<D>(p, st, 0, r0, lane);
}

// Iteration j < n_tiles - 1 of the header's schedule. On entry P_{j-1} V_{j-1} may be in flight
// and P_j is in s. P_j V_j then runs on the tensor cores while the softmax of S_{j+1} runs. The
// wait for P_j V_j is left to the next iteration's finish_pv, behind the loop's back edge: ptxas
// schedules within a basic block and would otherwise hoist the wait above the softmax (it did,
// killing the overlap). No wgmma sits under a branch either: ptxas serializes every wgmma of a
// kernel whose accumulators it cannot track through control flow (C7514), hence last_tile.
template <typename E, int D>
__device__ __forceinline__ void tile_step(const FlashAttentionParams& p, const Sm90Block<E, D>& blk,
                                          Sm90Rows<D>& st, uint64_t q_desc, int j, int r0,
                                          int lane) {
  using Tr = Sm90FwdTraits<D>;
  finish_pv<E, D>(st);
  next_stage<E, D>(p, blk, j);
  fence_state<D>(st);
  issue_scores<E, D>(&st.s[0][0], q_desc, blk.k_desc(j + 1));
  wg::commit_group();
  issue_pv<E, D>(&st.o[0][0], st.pa, blk.v_desc(j));
  wg::commit_group();
  wg::wait_group<1>();  // S_{j+1} done; P_j V_j may still run
  wg::fence_operands<Tr::kScoreTiles * 4>(&st.s[0][0]);
  scores_to_p<D>(p, st, j + 1, r0, lane);
}

// The last tile: only its P V remains.
template <typename E, int D>
__device__ __forceinline__ void last_tile(const FlashAttentionParams& p, const Sm90Block<E, D>& blk,
                                          Sm90Rows<D>& st) {
  using Tr = Sm90FwdTraits<D>;
  const int j = blk.n_tiles - 1;
  finish_pv<E, D>(st);
  next_stage<E, D>(p, blk, j);
  fence_state<D>(st);
  issue_pv<E, D>(&st.o[0][0], st.pa, blk.v_desc(j));
  wg::commit_group();
  wg::wait_group<0>();
  wg::fence_operands<Tr::kOutTiles * 4>(&st.o[0][0]);
}

template <typename E, int D>
__global__ void __launch_bounds__(Sm90FwdTraits<D>::kThreads, 1)
    flash_fwd_sm90_kernel(const FlashAttentionParams p) {
#if defined(__CUDA_ARCH__) && !MT_WGMMA_ENABLED
  __trap();  // built for a target without wgmma (not sm_90a): the launcher never launches it
#endif
  extern __shared__ unsigned char smem[];
  const Sm90Block<E, D> blk(p, smem);
  const int w = threadIdx.x / 128, lane = threadIdx.x % 32;
  const int r0 = blk.m0 + 64 * w + 16 * (threadIdx.x % 128 / 32);  // the warp's first row
  const uint64_t q_desc = blk.q_desc(w);

  blk.load_q(p);  // group 0: Q and K_0
  blk.load_k(p, 0);
  fa::cp_async_commit();
  if (blk.n_tiles > 1) blk.load_k(p, 1);  // group 1: K_1 and V_0 (waited for in next_stage)
  blk.load_v(p, 0);
  fa::cp_async_commit();
  fa::cp_async_wait<1>();
  wg::fence_proxy_async_smem();
  __syncthreads();

  Sm90Rows<D> st;
  first_tile<E, D>(p, blk, st, q_desc, r0, lane);
  for (int j = 0; j + 1 < blk.n_tiles; ++j) tile_step<E, D>(p, blk, st, q_desc, j, r0, lane);
  last_tile<E, D>(p, blk, st);
  fa::store_output<E, D>(p, st.o, st.m, st.l, blk.b, blk.h, r0, 1.0f, lane);
}

template <typename E, int D>
void launch(const FlashAttentionParams& p) {
  using Tr = Sm90FwdTraits<D>;
  fa::launch_over_tiles<Tr::kBlockM, Tr::kThreads, Tr::kSmemBytes>(flash_fwd_sm90_kernel<E, D>, p);
}

}  // namespace

// Asked once per device (flash_attention_sm90_common.cuh); the cache: 0 unknown, 1 yes, 2 no.
bool fa::device_is_sm90() {
  constexpr int kCachedDevices = 64;
  static std::atomic<int8_t> cache[kCachedDevices] = {};
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  int8_t known = dev < kCachedDevices ? cache[dev].load(std::memory_order_relaxed) : 0;
  if (known == 0) {
    int major = 0, minor = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    known = major == 9 && minor == 0 ? 1 : 2;
    if (dev < kCachedDevices) cache[dev].store(known, std::memory_order_relaxed);
  }
  return known == 1;
}

bool fa::sm90_handles(const FlashAttentionParams& p) {
  if ((p.D != 64 && p.D != 128) || p.dropout_threshold != 0) return false;
  if (p.B <= 0 || p.H <= 0 || p.T <= 0 || static_cast<int64_t>(p.B) * p.H > 65535) return false;
  return fa::device_is_sm90();
}

bool fa::launch_forward_sm90(const FlashAttentionParams& p) {
  if (!fa::sm90_handles(p)) return false;
  NvtxRange range("attention_fwd_sm90");
  const bool bf16 = p.elem == AttnElem::BF16;
  if (p.D == 64) {
    bf16 ? launch<__nv_bfloat16, 64>(p) : launch<__half, 64>(p);
  } else {
    bf16 ? launch<__nv_bfloat16, 128>(p) : launch<__half, 128>(p);
  }
  return true;
}

}  // namespace mt::cuda
