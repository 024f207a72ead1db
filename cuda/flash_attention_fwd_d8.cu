// FlashAttention forward at head dim 8 (the seed model): the algorithm of
// cuda/flash_attention_fwd.cu with the per-score work cut down, because at D = 8 the exponential
// unit, not the tensor cores, is the budget. A score costs one MUFU.EX2 (16 results a clock an
// SM, so a warp may issue only about 8 other instructions per exponential before issue, not
// MUFU, is the limit), and the general kernel spends about 8 more on it: the row max (FMNMX),
// the scale and shift (FFMA), the row sum (FADD), the packing to bf16, the rescale of o, and the
// bookkeeping. What changes here, and why:
//   1. Row sums on the tensor core: once P is packed into A fragments, one more mma against a B
//      of ones gives rowsum(P): 1 mma per 8 scores a thread instead of 1 FADD per score. It sums
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
//      m_i up to it and rescales o and l. After the first tile the scores of a row rarely climb
//      15 (log2 units) above their running max, so the slow path is rare. Its test also catches
//      inf and NaN.
//   4. 64-key tiles and 5 CTAs an SM: the kernel is latency-bound (mma -> exp -> mma chains),
//      so resident warps matter more than the per-tile work that a larger tile would amortize.
//      K and V are copied one row a thread from pointers set up once (KvRowCopy), and the tiles
//      to mask are found with one compare (first_edge_tile).
// docs/flash_attention.md ("Head dim 8") walks through the scheme; docs/benchmarks.md
// (Attention) has the instruction counts, the Nsight Compute profile and the A/B runs behind
// points 1-4 (128-key tiles, polynomial exponentials on the FMA pipe, 4, 6 or 7 CTAs an SM).
#include "cuda/check.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_common.cuh"
#include "cuda/flash_attention_dropout.cuh"
#include "cuda/flash_attention_fwd_d8.cuh"

namespace mt::cuda {

namespace fa {

namespace {

// ---- operands: the scale split into the mma, the row sums against ones -------------------------

// The bits of the pair (1, 1) in E. As an mma B operand it turns the product into row sums:
// C[i][n] += sum_k A[i][k] for every column n.
template <typename E>
__device__ __forceinline__ uint32_t one_pair() {
  return std::is_same_v<E, __nv_bfloat16> ? 0x3F803F80u : 0x3C003C00u;  // 1.0 in bf16 / fp16
}

// c * (x0, x1) for a pair x of E (low half first) as hi + lo, two pairs of E: hi = E(c x),
// lo = E(c x - hi), together exact to about 2^-16 (bf16) relative instead of hi's 2^-9.
template <typename E>
__device__ __forceinline__ void scale_split_pair(uint32_t x, float c, uint32_t* hi, uint32_t* lo) {
  const E* e = reinterpret_cast<const E*>(&x);
  const float x0 = Elem<E>::to_float(e[0]) * c, x1 = Elem<E>::to_float(e[1]) * c;
  const float h0 = Elem<E>::to_float(Elem<E>::from_float(x0));
  const float h1 = Elem<E>::to_float(Elem<E>::from_float(x1));
  *hi = Elem<E>::pack(h0, h1);
  *lo = Elem<E>::pack(x0 - h0, x1 - h1);
}

// d = a * b + c on a 16 x 8 x 16 tile, with the accumulator input c apart from the output d: one
// C tile (say, a per-row offset) can start many products without a copy into each.
template <typename E>
__device__ __forceinline__ void mma16816_cd(float* d, const uint32_t* a, const uint32_t* b,
                                            const float* c) {
  if constexpr (std::is_same_v<E, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
  }
}

// The B fragments of two neighbouring n-tiles (n0.., n0 + 8..) from a [n][8] tile (D = 8) with
// the 8 d's repeated as k = 8..15: B = [K^T; K^T], so b[0] = b[1] (n-tile n0), b[2] = b[3]
// (n0 + 8); lanes 8..15 give the same row addresses as lanes 0..7. Against an A of [hi | lo]
// the m16n8k16 then sums (hi + lo) K^T.
template <int STRIDE, typename E>
__device__ __forceinline__ void load_b_nk_k8_twice(uint32_t* b, const E* tile, int n0, int lane) {
  const int mi = lane / 8, r = lane % 8;
  ldmatrix_x4(b, smem_addr(tile + (n0 + (mi / 2) * 8 + r) * STRIDE));
}

// ---- the lazy online softmax (point 3). Here s holds scale_log2 * score - m_run already: the
// Q K^T mma starts from -m_run.

// The most a row of one tile's P may sum to before the tile is redone with its row max taken
// into m_run: every p is then at most 2^15, which fp16 (max 65504) and bf16 hold, and l and O
// grow by at most 2^15 a key over the old scale, far inside fp32 range. A row of a tile's 64 keys
// all near its running max sums to at most 64, so only a real rise of the max (by about 9 to 15
// in log2 units) takes the slow path. An inf or NaN sum fails the test too.
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
// a chain of KS dependent mma, which the SM's other warps cover (a second one costs 4 registers).
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

}  // namespace

}  // namespace fa

namespace {

// Tile sizes: 4 warps of 16 query rows (one m16n8k8 / m16n8k16 row tile each), 64-key tiles
// (point 4), K and V double-buffered. Shared memory: Q, K and V (two stages each), then each
// warp's dropout buffer of 16 rows x 80 bytes.
struct D8Traits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;  // 64 query rows
  static constexpr int kBlockN = 64;           // keys a tile
  // The CTAs an SM that __launch_bounds__ asks for, i.e. the register cap: 5 -> 96 a thread
  // (ptxas -v: 93 without dropout, 96 with, no spills; 6 CTAs would cap it at 80 and spill).
  static constexpr int kMinBlocks = 5;
  static constexpr int kStride = fa::smem_stride<8>();
  static constexpr int kStages = 2;  // K/V double buffer: loads of tile j+1 overlap tile j
  static constexpr int kSmemQ = kBlockM * kStride * 2;
  static constexpr int kSmemKV = kStages * 2 * kBlockN * kStride * 2;
  static constexpr int kMaskStride = kBlockN + 16;  // dropout bytes a row, 16-aligned, padded
  static constexpr int kSmemMask = kWarps * 16 * kMaskStride;
  static constexpr int kSmemBytes = kSmemQ + kSmemKV + kSmemMask;

  static_assert(2 * kBlockN == kThreads, "the K/V copy: one row of K or of V a thread");
  static_assert(kBlockN % kBlockM == 0 || kBlockM % kBlockN == 0,
                "causal tile skipping assumes nested tiles");
};

// Partial P V accumulators: 2, not the 4 of gemm_p_kn at D = 8: the 4 mma of a tile form chains
// of 2, which the other warps of the SM cover, and the registers saved go to resident warps.
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
// a tile.
template <typename E>
struct KvRowCopy {
  using Tr = D8Traits;
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
  using Tr = D8Traits;
  int bh, b, h, m0, n_tiles;
  const E *q, *k, *v;
  E *sQ, *sK, *sV;  // sK, sV: [stage][kBlockN][kStride]
  uint8_t* sMask;

  __device__ LazyBlock(const FlashAttentionParams& p, unsigned char* smem) {
    const fa::BlockTile tile = fa::block_tile(p);
    bh = tile.bh, b = tile.b, h = tile.h;
    m0 = (tile.tiles - 1 - tile.rank) * Tr::kBlockM;  // heaviest causal blocks first
    q = fa::head_rows<E>(p.q, p.q_strides, tile);
    k = fa::head_rows<E>(p.k, p.k_strides, tile);
    v = fa::head_rows<E>(p.v, p.v_strides, tile);
    n_tiles = fa::key_tiles<Tr::kBlockM, Tr::kBlockN>(p, m0);
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
  constexpr int N = D8Traits::kBlockN;
  return p.causal ? min(p.T / N, (r0 + 1) / N) : p.T / N;
}

// One key tile of the lazy path for a warp's 16 rows r0..: P into packed A fragments, l, o.
// edge: the tile has keys to mask (past T, or causal ones past a row).
template <typename E, bool kDropout>
__device__ __forceinline__ void tile_lazy(const FlashAttentionParams& p, LazyRows& w,
                                          const LazyBlock<E>& blk, const fa::PackedDropoutLane& d,
                                          int j, bool edge, int r0, int lane) {
  using Tr = D8Traits;
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
        pa, blk.sMask + (threadIdx.x / 32) * 16 * Tr::kMaskStride, d, n0, lane);
  }
  gemm_pv_lazy<E, KS, S>(w.o, pa, blk.v_tile(j), lane);
}

// D8Traits::kMinBlocks CTAs an SM: the kernel is latency-bound, and every resident warp helps
// hide the mma, exponential and vote latencies of the others. Dropout (kDropout, chosen once a
// launch) is its own instantiation: the mask adds about two thirds to a tile's instructions.
template <typename E, bool kDropout>
__global__ void __launch_bounds__(D8Traits::kThreads, D8Traits::kMinBlocks)
    flash_fwd_kernel_lazy(const FlashAttentionParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const LazyBlock<E> blk(p, smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r0 = blk.m0 + 16 * warp;  // the warp's first row
  KvRowCopy<E> kv(p, blk.k, blk.v, blk.sK, blk.sV);
  blk.load_first(p, kv);
  const int edge_from = first_edge_tile(p, r0);
  const fa::PackedDropoutLane drop(p, static_cast<uint32_t>(blk.bh), r0, lane);
  LazyRows w;
  for (int j = 0; j < blk.n_tiles; ++j) {
    blk.wait_kv(p, kv, j);
    if (j == 0) {
      fa::load_a_k8<D8Traits::kStride>(w.qa, blk.sQ, r0 - blk.m0, lane);
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
  fa::store_output<E, 8, true>(p, w.o, w.m, w.l, blk.b, blk.h, r0, keep_scale, lane);
}

template <typename E>
void launch(const FlashAttentionParams& p) {
  using Tr = D8Traits;
  fa::launch_over_tiles<Tr::kBlockM, Tr::kThreads, Tr::kSmemBytes>(
      p.dropout_threshold != 0 ? flash_fwd_kernel_lazy<E, true> : flash_fwd_kernel_lazy<E, false>,
      p);
}

}  // namespace

void fa::launch_forward_d8(const FlashAttentionParams& p) {
  if (p.elem == AttnElem::BF16) {
    launch<__nv_bfloat16>(p);
  } else {
    launch<__half>(p);
  }
}

}  // namespace mt::cuda
