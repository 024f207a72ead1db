// FlashAttention backward for Hopper (sm_90a) on warpgroup MMA (wgmma.mma_async: cuda/wgmma.cuh),
// head dims 64 and 128, bf16 or fp16 inputs, fp32 accumulation, causal or not, any T, no dropout,
// single pass only (p.dq_accum set). It replaces the dK/dV/dQ kernel of
// cuda/flash_attention_bwd_kv.cu and computes exactly what that kernel computes (the delta kernel
// before it and the dQ rounding after it stay): with p_ij = 2^(scale log2 e q_i . k_j - lse_i
// log2 e) and delta_i = dO_i . O_i (the workspace p.delta),
//   dV_j = sum_i p_ij dO_i,  dS_ij = p_ij (dO_i . v_j - delta_i),  dK_j = scale sum_i dS_ij q_i,
//   dq_accum_i += scale sum_j dS_ij k_j     (float32 atomics: red.global.add.v4.f32)
// (docs/flash_attention.md derives them).
//
// The work. A CTA owns kBlockN = 128 keys of one (batch, head): 2 warpgroups (256 threads), 64
// keys each (the M of every wgmma but dQ's). K and V stay in shared memory; the query tiles
// (kBlockM = 64 queries of Q, dO and their lse log2 e, delta) stream through two stages loaded
// with cp.async by all 256 threads. For warpgroup w (keys K_w) and query tile i:
//   S^T  = K_w Q_i^T    D / 16 wgmma m64n64k16, A = K_w, B = Q_i, both K-major in shared memory
//   dP^T = V_w dO_i^T   the same with V and dO
//   P^T  = 2^(S^T scale log2 e - lse log2 e),  dS^T = P^T (dP^T - delta)   on the accumulators
//   dV  += P^T dO_i     4 wgmma m64nDk16, A = P^T from registers (rounded to E), B = dO MN-major
//   dK  += dS^T Q_i     the same with dS^T and Q (dK is scaled once, at the store)
//   dQ_i[:, w half] = dS_i K[:, w half]   8 wgmma m64n(D/2)k16 over all 128 keys: A = dS from
//                       shared memory (dS^T stored [key][query], so A is MN-major: trans-a),
//                       B = K MN-major (K stored [key][d]: trans-b); then atomically added.
// The transposed products (keys as rows) put P^T and dS^T in the A-from-registers layout of the
// dV and dK products (cuda/wgmma.cuh): the accumulators of two neighbouring 8-query tiles are one
// 16-query A fragment. dQ needs the queries as rows and all 128 keys, so both warpgroups write
// dS^T to shared memory and each computes half of dQ's columns (D / 2 = 32 or 64): the dQ
// accumulators cost D / 4 registers a thread instead of D / 2, and no dQ element is added twice.
//
// The schedule of a query tile (2 CTA barriers):
//   1. wait for tile i's copies, fence.proxy.async, barrier (tile i in place; every warpgroup is
//      done with tile i - 1, whose stage is refilled next), start the copies of tile i + 1
//   2. issue S^T, then dP^T (two commit groups); wait for S^T only: the mask and exponentials
//      run while dP^T is on the tensor cores; wait for dP^T, dS^T
//   3. round P^T and dS^T into A fragments, store dS^T (st.shared, 4 bytes a lane, swizzled),
//      fence.proxy.async, barrier (both halves of dS^T in place)
//   4. issue dQ (its group), then dV and dK (one group); wait for dQ only, add it to dq_accum
//      while dV and dK run; wait for everything (the stage and dS^T may be reused after that).
// Every wgmma sits on straight-line code (cuda/README.md: a wgmma under a branch serializes them
// all); the masking and the copies are the only branches of the loop.
//
// Shared memory (bytes; the base rounded up to 1024 so that every swizzle atom is aligned), every
// tile in the 128-byte-swizzled layout of load_tile_sw128 (flash_attention_sm90_common.cuh):
//   K, V    128 x D x 2 each = 16 KiB (D = 64) or 32 KiB (D = 128)
//   Q, dO   2 stages x 64 x D x 2 each = 16 or 32 KiB
//   dS^T    128 keys x 64 queries x 2 = 16 KiB: one 128-byte row a key, 16-byte chunk c of row r
//           at chunk position c ^ (r % 8)
//   stats   2 stages x (64 lse log2 e + 64 delta) x 4 = 1 KiB
//   81 KiB (D = 64) or 145 KiB (D = 128), + 1 KiB of slack: one CTA an SM.
// Descriptors (start address, LBO, SBO; 128-byte swizzle), k-step ks of 16, cb = ks / 4:
//   A of S^T = K_w, K-major: sK + cb 128 128 + w 64 128 + (ks % 4) 32; SBO 1024, LBO unused (16)
//   B of S^T = Q, K-major (N = 64 queries): sQ + cb 64 128 + (ks % 4) 32; SBO 1024
//   (V and dO the same for dP^T)
//   B of dV = dO, MN-major (rows = queries = k): sdO + ks 16 128; SBO 1024 (the next 8 queries),
//     LBO 64 128 = 8192 (the next 64 d's, D = 128)   (Q the same for dK)
//   A of dQ = dS, MN-major (rows = keys = k, 64 queries = m a row): sDs + ks 16 128; SBO 1024,
//     LBO 128 128 (unused: M = 64 is one column block)
//   B of dQ = K[:, w half], MN-major (rows = keys = k): sK + ks 16 128 + the half's offset: at
//     D = 128 the column block w (w 128 128), at D = 64 the second half of the one 128-byte row
//     (w 64 bytes, as a K-major k-step moves by 32 bytes); SBO 1024, LBO 128 128.
// dev/emulate_bwd_sm90.py models these layouts, descriptors and fragments on the CPU.
//
// Causal: a key block skips the query tiles before it (they see none of its keys); only the
// tiles that cross a warp's diagonal or the end of the sequence are masked; keys >= T are masked
// too (their rows of K and V are zero, but a score of 0 against a very negative lse could
// overflow 2^x and make inf * 0 = NaN in dQ). Grid: fa::block_tile(), rank = key block, so the
// heaviest (first, under causal) key blocks are launched first.
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
struct Sm90BwdTraits {
  static constexpr int kWarpgroups = 2;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kBlockN = 64 * kWarpgroups;  // keys a CTA: the M of S^T, 64 a warpgroup
  static constexpr int kBlockM = 64;                // queries a tile: the N of S^T, the M of dQ
  static constexpr int kRowBytes = 128;             // one 128-byte swizzle row: 64 elements
  static constexpr int kAtomBytes = 8 * kRowBytes;  // 8 rows: the SBO of every descriptor
  static constexpr int kStages = 2;                 // Q, dO and stats double buffers
  static constexpr int kKVBytes = kBlockN * D * 2;  // K (or V)
  static constexpr int kQBytes = kBlockM * D * 2;   // one stage of Q (or dO)
  static constexpr int kDsBytes = kBlockN * kBlockM * 2;
  static constexpr int kStatFloats = 2 * kBlockM;  // one stage: lse log2 e, then delta
  static constexpr int kSmemBytes =
      2 * kKVBytes + 2 * kStages * kQBytes + kDsBytes + kStages * kStatFloats * 4 + 1024;
  static constexpr int kScoreTiles = kBlockM / 8;  // 8-query tiles of S^T a thread holds (8)
  static constexpr int kGradTiles = D / 8;         // of dK and dV
  static constexpr int kPSteps = kBlockM / 16;     // 16-query A fragments: wgmma of dV (4)
  static constexpr int kDqN = D / kWarpgroups;     // dQ columns a warpgroup: 32 or 64
  static constexpr int kDqTiles = kDqN / 8;
  static constexpr int kDqSteps = kBlockN / 16;  // 16-key k-steps of dQ (8)

  static_assert(D == 64 || D == 128, "wgmma kernel: head dims 64 and 128");
  static_assert(kBlockM * 2 == kRowBytes, "a dS^T row (64 queries) is one 128-byte swizzle row");
  static_assert(kBlockN % kBlockM == 0, "causal: a key block starts on a query tile");
  static_assert(kDqN == 32 || kDqN == 64, "dQ halves: m64n32k16 or m64n64k16");
  static_assert(kKVBytes % 1024 == 0 && kQBytes % 1024 == 0 && kDsBytes % 1024 == 0,
                "tiles start on swizzle atoms");
  static_assert(kSmemBytes <= 227 * 1024, "fits an H100 SM's shared memory");
};

// *addr += (a, b, c, d) for four consecutive floats (16-byte aligned), in L2, no return value.
__device__ __forceinline__ void red_add_v4(float* addr, float a, float b, float c, float d) {
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(addr), "f"(a), "f"(b),
               "f"(c), "f"(d)
               : "memory");
}

// What a CTA works on: its (batch, head), first key n0, the first query tile it sees and the
// number of tiles, the heads' base pointers, and its shared memory (shared-window addresses,
// and a generic pointer to the aligned base for the plain loads and stores).
template <typename E, int D>
struct BwdBlock {
  using Tr = Sm90BwdTraits<D>;
  int bh, b, h, n0, m_begin, n_tiles;
  const E *q, *k, *v, *dout;
  unsigned char* base;
  uint32_t sK, sV, sQ, sdO, sDs, sStats;

  __device__ BwdBlock(const FlashAttentionParams& p, unsigned char* smem) {
    const fa::BlockTile tile = fa::block_tile(p);  // rank 0: keys 0.., the heaviest causal block
    bh = tile.bh, b = tile.b, h = tile.h, n0 = tile.rank * Tr::kBlockN;
    m_begin = p.causal ? n0 : 0;  // causal: queries before n0 see none of these keys
    n_tiles = (p.T - m_begin + Tr::kBlockM - 1) / Tr::kBlockM;
    q = fa::head_rows<E>(p.q, p.q_strides, tile);
    k = fa::head_rows<E>(p.k, p.k_strides, tile);
    v = fa::head_rows<E>(p.v, p.v_strides, tile);
    dout = fa::head_rows<E>(p.dout, p.dout_strides, tile);
    const uint32_t raw = fa::smem_addr(smem);
    sK = (raw + 1023u) & ~1023u;  // swizzle atoms 1024-byte aligned
    base = smem + (sK - raw);
    sV = sK + Tr::kKVBytes;
    sQ = sV + Tr::kKVBytes;
    sdO = sQ + Tr::kStages * Tr::kQBytes;
    sDs = sdO + Tr::kStages * Tr::kQBytes;
    sStats = sDs + Tr::kDsBytes;
  }
  __device__ void load_kv(const FlashAttentionParams& p) const {
    fa::load_tile_sw128<Tr::kBlockN, D, Tr::kThreads>(sK, k, p.k_strides.t, n0, p.T);
    fa::load_tile_sw128<Tr::kBlockN, D, Tr::kThreads>(sV, v, p.v_strides.t, n0, p.T);
  }
  // Query tile i (Q, dO, lse log2 e, delta of rows m0 .. m0 + 63) into stage i % 2. Rows >= T
  // are zeros: their scores are masked, so p = 2^(-inf - 0) = 0, never a NaN.
  __device__ void load_query_tile(const FlashAttentionParams& p, int i) const {
    const int m0 = m_begin + i * Tr::kBlockM, stage = i % Tr::kStages;
    fa::load_tile_sw128<Tr::kBlockM, D, Tr::kThreads>(sQ + stage * Tr::kQBytes, q, p.q_strides.t,
                                                      m0, p.T);
    fa::load_tile_sw128<Tr::kBlockM, D, Tr::kThreads>(sdO + stage * Tr::kQBytes, dout,
                                                      p.dout_strides.t, m0, p.T);
    const int t = static_cast<int>(threadIdx.x);
    if (t < Tr::kStatFloats) {  // t < 64: lse log2 e (workspace plane 1), else delta (plane 0)
      const int row = m0 + t % Tr::kBlockM;
      const bool valid = row < p.T;
      const int64_t plane = t < Tr::kBlockM ? static_cast<int64_t>(p.B) * p.H * p.T : 0;
      const float* src = p.delta + (valid ? plane + static_cast<int64_t>(bh) * p.T + row : 0);
      fa::cp_async4(sStats + (stage * Tr::kStatFloats + t) * 4, src, valid);
    }
  }
  __device__ const float* stats(int i) const {
    return reinterpret_cast<const float*>(base + (sStats - sK)) +
           (i % Tr::kStages) * Tr::kStatFloats;
  }
  __device__ unsigned char* ds_tile() const { return base + (sDs - sK); }

  // K-major operands of S^T and dP^T: keys (or queries) as rows, d contiguous.
  __device__ uint64_t kv_desc(uint32_t tile, int w) const {  // A: warpgroup w's 64 keys
    return wg::make_desc(tile + w * 64 * Tr::kRowBytes, 16, Tr::kAtomBytes, wg::Swizzle::k128B);
  }
  __device__ uint64_t query_kmajor_desc(uint32_t tiles, int i) const {  // B: the 64 queries
    return wg::make_desc(tiles + (i % Tr::kStages) * Tr::kQBytes, 16, Tr::kAtomBytes,
                         wg::Swizzle::k128B);
  }
  // MN-major B of dV and dK: queries (k) as rows, d (n) contiguous; LBO = the next 64 d's.
  __device__ uint64_t query_mnmajor_desc(uint32_t tiles, int i) const {
    return wg::make_desc(tiles + (i % Tr::kStages) * Tr::kQBytes, Tr::kBlockM * Tr::kRowBytes,
                         Tr::kAtomBytes, wg::Swizzle::k128B);
  }
  // MN-major A of dQ: dS^T's keys (k) as rows, 64 queries (m) a row.
  __device__ uint64_t ds_desc() const {
    return wg::make_desc(sDs, Tr::kBlockN * Tr::kRowBytes, Tr::kAtomBytes, wg::Swizzle::k128B);
  }
  // MN-major B of dQ: K's keys (k) as rows, warpgroup w's D / 2 columns (n).
  __device__ uint64_t k_half_desc(int w) const {
    const int col = w * Tr::kDqN;  // first d of the half
    const uint32_t off = (col / 64) * Tr::kBlockN * Tr::kRowBytes + (col % 64) * 2;
    return wg::make_desc(sK + off, Tr::kBlockN * Tr::kRowBytes, Tr::kAtomBytes, wg::Swizzle::k128B);
  }
};

// A thread's share of its warpgroup's state: rows (keys) 16 v + g and + 8 of the accumulators.
template <int D>
struct BwdRows {
  using Tr = Sm90BwdTraits<D>;
  float dk[Tr::kGradTiles][4] = {};   // sum dS^T Q (unscaled)
  float dv[Tr::kGradTiles][4] = {};   // sum P^T dO
  float s[Tr::kScoreTiles][4] = {};   // S^T of the tile, then P^T (fp32)
  float dp[Tr::kScoreTiles][4] = {};  // dP^T of the tile, then dS^T (fp32)
  float dq[Tr::kDqTiles][4] = {};     // the tile's dQ, the warpgroup's half of the columns
  uint32_t pa[Tr::kPSteps][4] = {};   // P^T as the A fragments of dV
  uint32_t dsa[Tr::kPSteps][4] = {};  // dS^T as the A fragments of dK
};

// acc[64 x 64] = A[64 x D] B[64 x D]^T, both K-major (S^T = K_w Q^T or dP^T = V_w dO^T): D / 16
// k-steps, the first overwriting acc. A k-step moves the start by 32 bytes inside a 128-byte
// row, a column block by a whole block (kBlockN rows for K and V, kBlockM rows for Q and dO).
template <typename E, int D>
__device__ __forceinline__ void issue_transposed_scores(float* acc, uint64_t a_desc,
                                                        uint64_t b_desc) {
  using Tr = Sm90BwdTraits<D>;
  wg::mma_ss_m64nNk16<E, Tr::kBlockM, false>(acc, a_desc, b_desc);
#pragma unroll
  for (int ks = 1; ks < D / 16; ++ks) {
    const uint32_t a_off = (ks / 4) * Tr::kBlockN * Tr::kRowBytes + (ks % 4) * 32;
    const uint32_t b_off = (ks / 4) * Tr::kBlockM * Tr::kRowBytes + (ks % 4) * 32;
    wg::mma_ss_m64nNk16<E, Tr::kBlockM, true>(acc, wg::desc_add(a_desc, a_off),
                                              wg::desc_add(b_desc, b_off));
  }
}

// acc[64 x D] += A[64 x 64 queries] B[64 queries x D]: A from registers, B MN-major; 16 queries
// (2 atoms of 8 rows) a k-step.
template <typename E, int D>
__device__ __forceinline__ void issue_grad(float* acc, const uint32_t (*a)[4], uint64_t b_desc) {
  using Tr = Sm90BwdTraits<D>;
#pragma unroll
  for (int ks = 0; ks < Tr::kPSteps; ++ks) {
    wg::mma_rs_m64nNk16_bt<E, D>(acc, a[ks], wg::desc_add(b_desc, ks * 16 * Tr::kRowBytes));
  }
}

// dq[64 queries x D / 2] = dS[64 x 128 keys] K[128 keys x D / 2], both MN-major in shared memory
// (trans-a, trans-b); 16 keys a k-step, the first overwriting dq.
template <typename E, int D>
__device__ __forceinline__ void issue_dq(float* dq, uint64_t ds_desc, uint64_t k_desc) {
  using Tr = Sm90BwdTraits<D>;
  wg::mma_ss_m64nNk16<E, Tr::kDqN, false, true, true>(dq, ds_desc, k_desc);
#pragma unroll
  for (int ks = 1; ks < Tr::kDqSteps; ++ks) {
    const uint32_t off = ks * 16 * Tr::kRowBytes;
    wg::mma_ss_m64nNk16<E, Tr::kDqN, true, true, true>(dq, wg::desc_add(ds_desc, off),
                                                       wg::desc_add(k_desc, off));
  }
}

// Sets to -inf the scores of the warp's 16 keys (from key0) x the tile's 64 queries (from m0)
// that lie past T (query or key) or that causal hides (query < key). Element i of 8-query tile nt
// is key key0 + g + 8 (i / 2), query m0 + 8 nt + 2 t + i % 2 (the accumulator layout).
template <int D>
__device__ __forceinline__ void mask_transposed(BwdRows<D>& st, int key0, int m0, int T,
                                                bool causal, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < Sm90BwdTraits<D>::kScoreTiles; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int key = key0 + g + 8 * (i / 2), query = m0 + 8 * nt + 2 * t + (i % 2);
      if (query >= T || key >= T || (causal && query < key)) st.s[nt][i] = -INFINITY;
    }
  }
}

// P^T = 2^(S^T scale log2 e - lse log2 e) in s (masked first if the warp's block needs it) and
// its A fragments: 8-query tiles 2 ks and 2 ks + 1 are the k-step ks of dV (cuda/wgmma.cuh).
template <typename E, int D>
__device__ __forceinline__ void probs(BwdRows<D>& st, const FlashAttentionParams& p,
                                      const float* stats, int key0, int m0, int lane) {
  using Tr = Sm90BwdTraits<D>;
  if (m0 + Tr::kBlockM > p.T || key0 + 15 >= p.T || (p.causal && m0 < key0 + 15)) {
    mask_transposed<D>(st, key0, m0, p.T, p.causal, lane);
  }
  const float scale_log2 = p.scale * fa::kLog2e;
  const int t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < Tr::kScoreTiles; ++nt) {
    const float2 lse = *reinterpret_cast<const float2*>(stats + 8 * nt + 2 * t);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      st.s[nt][i] = fa::ex2(fmaf(st.s[nt][i], scale_log2, -(i % 2 ? lse.y : lse.x)));
    }
  }
#pragma unroll
  for (int ks = 0; ks < Tr::kPSteps; ++ks) fa::c_to_a<E>(st.pa[ks], st.s[2 * ks], st.s[2 * ks + 1]);
}

// dS^T = P^T (dP^T - delta) in dp, its A fragments, and its copy in shared memory for dQ: row
// (key) r = 64 w + 16 v + g (+ 8) of the [128][64] tile, whose 16-byte chunk nt (queries
// 8 nt ..) sits at chunk position nt ^ (r % 8) = nt ^ g; the lane's two queries are 4 t bytes in.
// A warp's 32 stores of one (nt, half) hit 32 different banks.
template <typename E, int D>
__device__ __forceinline__ void grad_scores(BwdRows<D>& st, const float* stats,
                                            unsigned char* ds_tile, int row0, int lane) {
  using Tr = Sm90BwdTraits<D>;
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < Tr::kScoreTiles; ++nt) {
    const float2 delta = *reinterpret_cast<const float2*>(stats + Tr::kBlockM + 8 * nt + 2 * t);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      st.dp[nt][i] = st.s[nt][i] * (st.dp[nt][i] - (i % 2 ? delta.y : delta.x));
    }
  }
#pragma unroll
  for (int ks = 0; ks < Tr::kPSteps; ++ks) {
    fa::c_to_a<E>(st.dsa[ks], st.dp[2 * ks], st.dp[2 * ks + 1]);
    // dsa[ks] = {row g: tile 2 ks, row g + 8: tile 2 ks, row g: tile 2 ks + 1, row g + 8: ...}
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int row = row0 + g + 8 * (j % 2), nt = 2 * ks + j / 2;
      *reinterpret_cast<uint32_t*>(ds_tile + row * Tr::kRowBytes + ((nt ^ g) * 16) + 4 * t) =
          st.dsa[ks][j];
    }
  }
}

// dq_accum[query][w half] += scale dQ for the tile's rows < T. A lane holds columns 2 t, 2 t + 1
// of rows g and g + 8; lanes t and t ^ 1 swap halves so that each adds 4 consecutive floats
// (even t: row g, columns 2 t .. 2 t + 3; odd t: row g + 8, columns 2 t - 2 .. 2 t + 1).
template <int D>
__device__ __forceinline__ void add_dq(const BwdRows<D>& st, float* dq_head, int64_t row_stride,
                                       float scale, int row0, int col0, int T, int lane) {
  using Tr = Sm90BwdTraits<D>;
  const int g = lane / 4, t = lane % 4;
  const bool odd = t % 2 != 0;
  const int row = row0 + g + (odd ? 8 : 0);
  float* dst = dq_head + static_cast<int64_t>(row) * row_stride + col0 + 2 * (t & ~1);
#pragma unroll
  for (int j = 0; j < Tr::kDqTiles; ++j) {
    const float* d = st.dq[j];
    const float x = __shfl_xor_sync(0xffffffffu, odd ? d[0] : d[2], 1);
    const float y = __shfl_xor_sync(0xffffffffu, odd ? d[1] : d[3], 1);
    const float a = odd ? x : d[0], b = odd ? y : d[1];
    const float c = odd ? d[2] : x, e = odd ? d[3] : y;
    if (row < T) red_add_v4(dst + 8 * j, a * scale, b * scale, c * scale, e * scale);
  }
}

// Step 1 of the header's schedule: tile i is in place and visible to the async proxy (each
// thread waits for its copies and fences them; the barrier publishes them), and every warpgroup
// has waited for its wgmma of tile i - 1, so that tile's stage may take tile i + 1.
template <typename E, int D>
__device__ __forceinline__ void next_stage(const FlashAttentionParams& p, const BwdBlock<E, D>& blk,
                                           int i) {
  fa::cp_async_wait<0>();
  wg::fence_proxy_async_smem();
  __syncthreads();
  if (i + 1 < blk.n_tiles) blk.load_query_tile(p, i + 1);
  fa::cp_async_commit();
}

// Steps 2 and 3: S^T and dP^T of query tile i for warpgroup w, P^T and dS^T, dS^T to shared
// memory. key0 = the warp's first key.
template <typename E, int D>
__device__ __forceinline__ void tile_scores(const FlashAttentionParams& p,
                                            const BwdBlock<E, D>& blk, BwdRows<D>& st, int i, int w,
                                            int key0, int lane) {
  using Tr = Sm90BwdTraits<D>;
  const int m0 = blk.m_begin + i * Tr::kBlockM;
  // The last tile's reads of s and dp (its P^T, dS^T) stay before the wgmma that overwrite them.
  wg::fence_operands<Tr::kScoreTiles * 4>(&st.s[0][0]);
  wg::fence_operands<Tr::kScoreTiles * 4>(&st.dp[0][0]);
  wg::fence();
  issue_transposed_scores<E, D>(&st.s[0][0], blk.kv_desc(blk.sK, w),
                                blk.query_kmajor_desc(blk.sQ, i));
  wg::commit_group();
  issue_transposed_scores<E, D>(&st.dp[0][0], blk.kv_desc(blk.sV, w),
                                blk.query_kmajor_desc(blk.sdO, i));
  wg::commit_group();
  const float* stats = blk.stats(i);
  wg::wait_group<1>();  // S^T done; dP^T may still run
  wg::fence_operands<Tr::kScoreTiles * 4>(&st.s[0][0]);
  probs<E, D>(st, p, stats, key0, m0, lane);
  wg::wait_group<0>();
  wg::fence_operands<Tr::kScoreTiles * 4>(&st.dp[0][0]);
  grad_scores<E, D>(st, stats, blk.ds_tile(), key0 - blk.n0, lane);
  wg::fence_proxy_async_smem();  // the dS^T stores, before the barrier that publishes them
}

// Step 4: dQ of tile i (added to dq_accum while dV and dK run), dV and dK.
template <typename E, int D>
__device__ __forceinline__ void tile_grads(const FlashAttentionParams& p, const BwdBlock<E, D>& blk,
                                           BwdRows<D>& st, int i, int w, int warp_row, int lane) {
  using Tr = Sm90BwdTraits<D>;
  __syncthreads();  // both warpgroups' dS^T in place
  wg::fence_operands<Tr::kGradTiles * 4>(&st.dk[0][0]);
  wg::fence_operands<Tr::kGradTiles * 4>(&st.dv[0][0]);
  wg::fence_operands<Tr::kPSteps * 4>(&st.pa[0][0]);
  wg::fence_operands<Tr::kPSteps * 4>(&st.dsa[0][0]);
  wg::fence();
  issue_dq<E, D>(&st.dq[0][0], blk.ds_desc(), blk.k_half_desc(w));
  wg::commit_group();
  issue_grad<E, D>(&st.dv[0][0], st.pa, blk.query_mnmajor_desc(blk.sdO, i));
  issue_grad<E, D>(&st.dk[0][0], st.dsa, blk.query_mnmajor_desc(blk.sQ, i));
  wg::commit_group();
  wg::wait_group<1>();  // dQ done; dV and dK may still run
  wg::fence_operands<Tr::kDqTiles * 4>(&st.dq[0][0]);
  float* dq_head = p.dq_accum + (static_cast<int64_t>(blk.b) * p.T * p.H + blk.h) * D;
  add_dq<D>(st, dq_head, static_cast<int64_t>(p.H) * D, p.scale,
            blk.m_begin + i * Tr::kBlockM + warp_row, w * Tr::kDqN, p.T, lane);
  wg::wait_group<0>();
  wg::fence_operands<Tr::kGradTiles * 4>(&st.dk[0][0]);
  wg::fence_operands<Tr::kGradTiles * 4>(&st.dv[0][0]);
  wg::fence_operands<Tr::kPSteps * 4>(&st.pa[0][0]);
  wg::fence_operands<Tr::kPSteps * 4>(&st.dsa[0][0]);
}

template <typename E, int D>
__global__ void __launch_bounds__(Sm90BwdTraits<D>::kThreads, 1)
    flash_bwd_sm90_kernel(const FlashAttentionParams p) {
#if defined(__CUDA_ARCH__) && !MT_WGMMA_ENABLED
  __trap();  // built for a target without wgmma (not sm_90a): the launcher never launches it
#endif
  extern __shared__ unsigned char smem[];
  const BwdBlock<E, D> blk(p, smem);
  const int w = threadIdx.x / 128, lane = threadIdx.x % 32;
  const int warp_row = 16 * (threadIdx.x % 128 / 32);  // the warp's first row in a 64-row block
  const int key0 = blk.n0 + 64 * w + warp_row;         // the warp's first key

  blk.load_kv(p);  // one group: K, V and query tile 0
  blk.load_query_tile(p, 0);
  fa::cp_async_commit();

  BwdRows<D> st;
  for (int i = 0; i < blk.n_tiles; ++i) {
    next_stage<E, D>(p, blk, i);
    tile_scores<E, D>(p, blk, st, i, w, key0, lane);
    tile_grads<E, D>(p, blk, st, i, w, warp_row, lane);
  }
  fa::store_grad_rows<E, D>(p.dk, p.dk_strides, p, st.dk, p.scale, blk.b, blk.h, key0, lane);
  fa::store_grad_rows<E, D>(p.dv, p.dv_strides, p, st.dv, 1.0f, blk.b, blk.h, key0, lane);
}

template <typename E, int D>
void launch(const FlashAttentionParams& p) {
  using Tr = Sm90BwdTraits<D>;
  fa::launch_over_tiles<Tr::kBlockN, Tr::kThreads, Tr::kSmemBytes>(flash_bwd_sm90_kernel<E, D>, p);
}

}  // namespace

bool fa::launch_backward_sm90(const FlashAttentionParams& p) {
  if (p.dq_accum == nullptr || !fa::sm90_handles(p)) return false;
  NvtxRange range("attention_bwd_sm90");
  const bool bf16 = p.elem == AttnElem::BF16;
  if (p.D == 64) {
    bf16 ? launch<__nv_bfloat16, 64>(p) : launch<__half, 64>(p);
  } else {
    bf16 ? launch<__nv_bfloat16, 128>(p) : launch<__half, 128>(p);
  }
  return true;
}

}  // namespace mt::cuda
