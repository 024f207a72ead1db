// The shared header of the mma.sync FlashAttention kernels (cuda/flash_attention_fwd.cu,
// _fwd_d8.cu, _bwd_kv.cu, _bwd_q.cu; the sm90 kernels use its launch and softmax pieces): which
// tile of which head a CTA works on and the launch, the tile loads into shared memory, the
// fragment loads and the two products every kernel needs (scores = rows x keys^T, out += P V),
// the online-softmax step on score tiles held in mma fragments, and the output stores. The
// instructions underneath (mma.sync, ldmatrix, cp.async) and their fragment layouts are in
// cuda/flash_attention_mma.cuh.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/check.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_mma.cuh"

namespace mt::cuda::fa {

// ---- launch ------------------------------------------------------------------------------------

// Which tile of which head a CTA works on. Causal attention gives the tiles of one head very
// different amounts of work: the last query tile of the forward visits every key tile, the first
// one a single tile (the backward's key tiles the other way round). The GPU hands out CTAs in
// the order of their linear index, so a head-major grid starts the last heads' heaviest tiles
// near the very end and the kernel finishes on a tail of them. Heaviest first across all heads
// removes the tail but spreads the running CTAs over every head, whose K and V (read by all its
// tiles) then fall out of L2 at large D. So the heads go in groups, each group's K/V at most
// kGroupKvBytes (a third of an H100's L2), heaviest tile first inside a group:
//   grid = (heads a group, tiles of a head, groups), and the linear order runs x fastest.
// The seed shape (D = 8, 64 KiB of K/V a head) fits all 256 heads in one group; D = 128 at T =
// 2048 takes 16 a group. rank 0 is the heaviest tile when causal; each kernel maps rank to its
// own rows (tiles - 1 - rank for the query tiles of the forward, rank for the backward's keys).
// docs/benchmarks.md (Attention, A/B runs) has the order's and the group size's measurements.
constexpr int64_t kGroupKvBytes = int64_t{16} << 20;

struct BlockTile {
  int bh;     // b * H + h
  int b, h;   // batch, head
  int rank;   // 0 .. tiles - 1, the heaviest first
  int tiles;  // tiles of a head
};
__device__ __forceinline__ BlockTile block_tile(const FlashAttentionParams& p) {
  const int bh = static_cast<int>(blockIdx.z * gridDim.x + blockIdx.x);
  return {bh, bh / p.H, bh % p.H, static_cast<int>(blockIdx.y), static_cast<int>(gridDim.y)};
}

// Row 0 of head (b, h) of a [B, T, H, D] view: row t is head_rows(...) + t * s.t.
template <typename E>
__device__ __forceinline__ const E* head_rows(const void* base, const AttnStrides& s,
                                              const BlockTile& tile) {
  return static_cast<const E*>(base) + tile.b * s.b + tile.h * s.h;
}

// Key tiles of kBlockN that a block of kBlockM query rows from m0 visits: all of them, or under
// causal masking only those up to its last row.
template <int kBlockM, int kBlockN>
__device__ __forceinline__ int key_tiles(const FlashAttentionParams& p, int m0) {
  const int n_end = p.causal ? min(p.T, m0 + kBlockM) : p.T;
  return (n_end + kBlockN - 1) / kBlockN;
}

// The heads a group: the largest divisor of B * H whose K and V fit kGroupKvBytes (at least 1),
// so that every group is whole and no CTA of the grid is idle.
inline int heads_per_group(const FlashAttentionParams& p) {
  const int heads = p.B * p.H;
  const int64_t kv_bytes = int64_t{2} * p.T * p.D * 2;  // K and V of one head, 16-bit elements
  const int64_t fit = std::max<int64_t>(1, kGroupKvBytes / std::max<int64_t>(1, kv_bytes));
  for (int g = static_cast<int>(std::min<int64_t>(heads, fit)); g > 1; --g) {
    if (heads % g == 0) return g;
  }
  return 1;
}

// The launch key computed on the device, for a launch whose mask stream has a device-side base
// (AttentionArgs::offset_base): 16 bytes from the caching allocator, written by a one-thread
// kernel queued before the attention kernel and released after it is queued (the allocator's
// stream order keeps it until the kernel has run). words() is null for every other launch.
class DropoutKeyWords {
 public:
  explicit DropoutKeyWords(const FlashAttentionParams& p) {
    if (p.offset_base == nullptr || p.dropout_threshold == 0) return;
    words_ = static_cast<uint32_t*>(allocate(4 * sizeof(uint32_t)));
    launch_dropout_key(words_, p.seed, p.offset, p.offset_base);
  }
  ~DropoutKeyWords() { release(words_); }
  DropoutKeyWords(const DropoutKeyWords&) = delete;
  DropoutKeyWords& operator=(const DropoutKeyWords&) = delete;
  const uint32_t* words() const { return words_; }

 private:
  uint32_t* words_ = nullptr;
};

// Launches an attention kernel on the framework's stream over ceil(T / kTileRows) tiles of each
// of the B * H heads, in the order block_tile() describes, CTAs of kThreads threads with
// kSmemBytes of dynamic shared memory, first lifting the kernel's shared-memory cap where it asks
// for more than the default 48 KiB. kTileRows is the rows of T a CTA owns: query rows for the
// forward and dQ kernels, keys for dK/dV. The callers check B * H <= 65535 (gridDim.z). The
// kernel gets a copy of p with the dropout key filled in (or the device-computed key's address).
template <int kTileRows, int kThreads, int kSmemBytes>
void launch_over_tiles(void (*kernel)(FlashAttentionParams), const FlashAttentionParams& p) {
  if (kSmemBytes > 48 * 1024) {
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  }
  const int tiles = (p.T + kTileRows - 1) / kTileRows;
  CHECK(tiles <= 65535, "attention: T = {} needs {} tiles of {} rows, over the grid's 65535", p.T,
        tiles, kTileRows);
  const int group = heads_per_group(p);
  dim3 grid(group, tiles, p.B * p.H / group);
  FlashAttentionParams launch = p;
  launch.dropout_key = DropoutKey::of(p.seed, p.offset);
  DropoutKeyWords device_key(p);
  launch.dropout_key_words = device_key.words();
  kernel<<<grid, kThreads, kSmemBytes, stream()>>>(launch);
  LAUNCH_CHECK();
}

// ---- tile loads --------------------------------------------------------------------------------

// Shared-memory row stride in elements: D plus 8 (16 bytes) of padding, so that the 8 row
// addresses of one ldmatrix 8x8 load fall in 8 different 16-byte bank groups (D = 64 without
// padding would put all 8 rows in the same banks: an 8-way conflict). D = 8 needs none: 8 rows
// of 16 bytes are already 128 consecutive bytes.
template <int D>
constexpr int smem_stride() {
  return D == 8 ? 8 : D + 8;
}

// Rows [row0, row0 + ROWS) of one head of a [B, T, H, D] tensor into shared memory (row stride
// STRIDE elements), all threads of the CTA cooperating, 16 bytes a thread a step. Rows >= T are
// zero-filled so that they contribute nothing to any product.
template <int ROWS, int D, int STRIDE, int THREADS, typename E>
__device__ __forceinline__ void load_tile(E* smem, const E* head_base, int64_t row_stride, int row0,
                                          int T) {
  constexpr int kChunks = D / 8;  // 16-byte chunks a row
  constexpr int kTotal = ROWS * kChunks, kSteps = (kTotal + THREADS - 1) / THREADS;
  // A compile-time trip count (threadIdx.x < THREADS): straight-line code, no loop remainder
  // handling (a loop from threadIdx.x costs about 60 instructions a tile at D = 8).
#pragma unroll
  for (int i = 0; i < kSteps; ++i) {
    const int c = static_cast<int>(threadIdx.x) + i * THREADS;
    if (kTotal % THREADS != 0 && c >= kTotal) break;
    const int r = c / kChunks, part = c % kChunks;
    const bool valid = row0 + r < T;
    const E* src =
        valid ? head_base + static_cast<int64_t>(row0 + r) * row_stride + part * 8 : head_base;
    cp_async16(smem_addr(smem + r * STRIDE + part * 8), src, valid);
  }
}

// ---- fragment loads from shared memory ---------------------------------------------------------

// A fragments of a 16 x 16 block (rows r0.., cols k0..) of a row-major [rows][STRIDE] tile.
template <int STRIDE, typename E>
__device__ __forceinline__ void load_a(uint32_t* a, const E* tile, int r0, int k0, int lane) {
  const int mi = lane / 8, r = lane % 8;
  ldmatrix_x4(a, smem_elem(tile, (r0 + (mi % 2) * 8 + r) * STRIDE + k0 + (mi / 2) * 8));
}
// A fragments of a 16 x 8 block, for m16n8k8 (D = 8).
template <int STRIDE, typename E>
__device__ __forceinline__ void load_a_k8(uint32_t* a, const E* tile, int r0, int lane) {
  const int r = lane % 16;
  ldmatrix_x2(a, smem_elem(tile, (r0 + r) * STRIDE));
}

// B fragments for two neighbouring n-tiles (n0.., n0 + 8..) and one k-step (k0..k0 + 16) from a
// tile stored [n][k] (K for Q K^T: B[d][key] = K[key][d]): b[0..1] for n-tile n0, b[2..3] n0+8.
template <int STRIDE, typename E>
__device__ __forceinline__ void load_b_nk(uint32_t* b, const E* tile, int n0, int k0, int lane) {
  const int mi = lane / 8, r = lane % 8;
  ldmatrix_x4(b, smem_elem(tile, (n0 + (mi / 2) * 8 + r) * STRIDE + k0 + (mi % 2) * 8));
}
// The m16n8k8 B fragments of four neighbouring n-tiles (n0 + 8 i) from a [n][8] tile (D = 8).
template <int STRIDE, typename E>
__device__ __forceinline__ void load_b_nk_k8(uint32_t* b, const E* tile, int n0, int lane) {
  ldmatrix_x4(b, smem_elem(tile, (n0 + lane) * STRIDE));
}
// B fragments for two neighbouring n-tiles (n0.., n0 + 8..) and one k-step from a tile stored
// [k][n] (V for P V: B[key][d] = V[key][d]), transposed by ldmatrix.
template <int STRIDE, typename E>
__device__ __forceinline__ void load_b_kn(uint32_t* b, const E* tile, int k0, int n0, int lane) {
  const int mi = lane / 8, r = lane % 8;
  ldmatrix_x4_trans(b, smem_elem(tile, (k0 + (mi % 2) * 8 + r) * STRIDE + n0 + (mi / 2) * 8));
}
// The B fragments of one n-tile (n0..n0 + 8) for two k-steps (k0.., k0 + 16..) from a [k][n]
// tile: b[0..1] for k-step k0, b[2..3] for k0 + 16 (D = 8 has a single n-tile).
template <int STRIDE, typename E>
__device__ __forceinline__ void load_b_kn_2k(uint32_t* b, const E* tile, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, smem_elem(tile, (k0 + lane) * STRIDE + n0));
}

// A fragments of the 16 x 16 block (rows m0.., cols k0..) of a matrix that shared memory holds
// transposed ([k][m], row stride STRIDE): ldmatrix .trans turns each stored 8 x 8 block around,
// so lane 8 i + r points at stored row k0 + 8 (i / 2) + r, column m0 + 8 (i % 2) (the A
// fragment's blocks a0..a3 are (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)).
template <int STRIDE, typename E>
__device__ __forceinline__ void load_a_trans(uint32_t* a, const E* tile, int m0, int k0, int lane) {
  const int mi = lane / 8, r = lane % 8;
  ldmatrix_x4_trans(a, smem_elem(tile, (k0 + (mi / 2) * 8 + r) * STRIDE + m0 + (mi % 2) * 8));
}

// The A fragment of a 16 x 16 block from two neighbouring fp32 C tiles
// (cuda/flash_attention_mma.cuh).
template <typename E>
__device__ __forceinline__ void c_to_a(uint32_t* a, const float* c0, const float* c1) {
  a[0] = Elem<E>::pack(c0[0], c0[1]);
  a[1] = Elem<E>::pack(c0[2], c0[3]);
  a[2] = Elem<E>::pack(c1[0], c1[1]);
  a[3] = Elem<E>::pack(c1[2], c1[3]);
}

template <int D>
constexpr int a_steps() {
  return D == 8 ? 1 : D / 16;
}
template <int D>
constexpr int a_steps_v = a_steps<D>();

// ---- the products every kernel needs -----------------------------------------------------------

// acc[16 x 8 NT] = A[16 x D] (fragments in registers, D / 16 k-steps) * B^T, B stored [n][d]
// in shared memory rows n0 .. n0 + 8 NT.
template <int D, int NT, int STRIDE, typename E>
__device__ __forceinline__ void gemm_rows_nk(float (*acc)[4], const uint32_t (*a)[4],
                                             const E* b_tile, int n0, int lane) {
  if constexpr (D == 8) {
#pragma unroll
    for (int nt = 0; nt < NT; nt += 4) {
      uint32_t b[4];
      load_b_nk_k8<STRIDE>(b, b_tile, n0 + nt * 8, lane);
#pragma unroll
      for (int i = 0; i < 4; ++i) mma1688<E>(acc[nt + i], a[0], b[i]);
    }
  } else {
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        uint32_t b[4];
        load_b_nk<STRIDE>(b, b_tile, n0 + nt * 8, ks * 16, lane);
        mma16816<E>(acc[nt], a[ks], b);
        mma16816<E>(acc[nt + 1], a[ks], b + 2);
      }
    }
  }
}

// out[16 x D] += P[16 x 8 NT] (fp32 C tiles, rounded to E here) * V, V stored [key][d] in
// shared memory rows k0 .. k0 + 8 NT.
template <int D, int NT, int STRIDE, typename E>
__device__ __forceinline__ void gemm_p_kn(float (*out)[4], const float (*p)[4], const E* v_tile,
                                          int k0, int lane) {
  static_assert(NT % 4 == 0, "pairs of 16-key steps");
#pragma unroll
  for (int kk = 0; kk < NT / 2; kk += 2) {
    uint32_t a0[4], a1[4];
    c_to_a<E>(a0, p[2 * kk], p[2 * kk + 1]);
    c_to_a<E>(a1, p[2 * kk + 2], p[2 * kk + 3]);
    if constexpr (D == 8) {
      // One 16 x 8 output tile: chaining every mma into it would serialize them on the
      // tensor core's latency (~30 cycles each), so they rotate over acc_tiles<8>() = 4
      // partial accumulators, summed once at the end by fold_acc.
      uint32_t b[4];
      load_b_kn_2k<STRIDE>(b, v_tile, k0 + kk * 16, 0, lane);
      const int slot = (kk / 2) % 2 * 2;
      mma16816<E>(out[slot], a0, b);
      mma16816<E>(out[slot + 1], a1, b + 2);
    } else {
#pragma unroll
      for (int dt = 0; dt < D / 8; dt += 2) {
        uint32_t b[4];
        load_b_kn<STRIDE>(b, v_tile, k0 + kk * 16, dt * 8, lane);
        mma16816<E>(out[dt], a0, b);
        mma16816<E>(out[dt + 1], a0, b + 2);
        load_b_kn<STRIDE>(b, v_tile, k0 + kk * 16 + 16, dt * 8, lane);
        mma16816<E>(out[dt], a1, b);
        mma16816<E>(out[dt + 1], a1, b + 2);
      }
    }
  }
}

// The two products above for a warp that owns MW tiles of 16 rows: each B fragment loaded
// from shared memory feeds MW mma instead of one, dividing the shared-memory traffic per
// FLOP by MW (at D = 64 ldmatrix bandwidth, not the tensor cores, limits one row tile).
template <int D, int NT, int STRIDE, int MW, typename E>
__device__ __forceinline__ void gemm_rows_nk_mw(float (*acc)[NT][4],
                                                const uint32_t (*a)[a_steps_v<D>][4],
                                                const E* b_tile, int lane) {
  if constexpr (MW == 1 || D == 8) {
#pragma unroll
    for (int mw = 0; mw < MW; ++mw) gemm_rows_nk<D, NT, STRIDE>(acc[mw], a[mw], b_tile, 0, lane);
  } else {
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        uint32_t b[4];
        load_b_nk<STRIDE>(b, b_tile, nt * 8, ks * 16, lane);
#pragma unroll
        for (int mw = 0; mw < MW; ++mw) {
          mma16816<E>(acc[mw][nt], a[mw][ks], b);
          mma16816<E>(acc[mw][nt + 1], a[mw][ks], b + 2);
        }
      }
    }
  }
}

template <int D, int NT, int DT, int STRIDE, int MW, typename E>
__device__ __forceinline__ void gemm_p_kn_mw(float (*out)[DT][4], const float (*p)[NT][4],
                                             const E* v_tile, int lane) {
  if constexpr (MW == 1 || D == 8) {
#pragma unroll
    for (int mw = 0; mw < MW; ++mw) gemm_p_kn<D, NT, STRIDE>(out[mw], p[mw], v_tile, 0, lane);
  } else {
#pragma unroll
    for (int kk = 0; kk < NT / 2; ++kk) {  // 16-key steps
      uint32_t a[MW][4];
#pragma unroll
      for (int mw = 0; mw < MW; ++mw) c_to_a<E>(a[mw], p[mw][2 * kk], p[mw][2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < D / 8; dt += 2) {
        uint32_t b[4];
        load_b_kn<STRIDE>(b, v_tile, kk * 16, dt * 8, lane);
#pragma unroll
        for (int mw = 0; mw < MW; ++mw) {
          mma16816<E>(out[mw][dt], a[mw], b);
          mma16816<E>(out[mw][dt + 1], a[mw], b + 2);
        }
      }
    }
  }
}

// Loads the A fragments of a warp's 16 rows x D (D / 16 k-steps; one m16n8k8 step at D = 8).
template <int D, int STRIDE, typename E>
__device__ __forceinline__ void load_rows_a(uint32_t (*a)[4], const E* tile, int r0, int lane) {
  if constexpr (D == 8) {
    load_a_k8<STRIDE>(a[0], tile, r0, lane);
  } else {
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) load_a<STRIDE>(a[ks], tile, r0, ks * 16, lane);
  }
}

// fp32 C tiles a warp keeps for a 16 x D product: D / 8, but 4 partial sums at D = 8 (see
// gemm_p_kn). fold_acc adds the partials into tile 0 before the epilogue.
template <int D>
constexpr int acc_tiles() {
  return D == 8 ? 4 : D / 8;
}
template <int D>
__device__ __forceinline__ void fold_acc(float (*acc)[4]) {
  if constexpr (D == 8) {
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[0][i] += acc[1][i] + acc[2][i] + acc[3][i];
  }
}

// ---- the online softmax on score tiles in C fragments ------------------------------------------

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

// ---- stores ------------------------------------------------------------------------------------

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
    const float l = kFullSums ? l_run[r] : quad_sum(l_run[r]);
    const int row = r0 + g + 8 * r;
    if (row >= p.T) continue;
    const float inv = l > 0.0f ? keep_scale / l : 0.0f;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(out + row * p.out_strides.t + dt * 8 + 2 * t) =
          Elem<E>::pack(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
    if (t == 0) {
      p.lse[(static_cast<int64_t>(b) * p.H + h) * p.T + row] =
          l > 0.0f ? (m_run[r] + __log2f(l)) * kLn2 : -INFINITY;
    }
  }
}

// Writes a warp's 16 rows (row0 ..) of a [B, T, H, D] gradient (dQ, dK or dV, from the warp's
// 16 x D accumulator in C-fragment layout) through its strides st, times factor; rows past T
// are skipped.
template <typename E, int D>
__device__ __forceinline__ void store_grad_rows(void* dst, const AttnStrides& st,
                                                const FlashAttentionParams& p,
                                                const float (*acc)[4], float factor, int b, int h,
                                                int row0, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= p.T) continue;
    E* out = static_cast<E*>(dst) + b * st.b + row * st.t + h * st.h;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(out + dt * 8 + 2 * t) =
          Elem<E>::pack(acc[dt][2 * r] * factor, acc[dt][2 * r + 1] * factor);
    }
  }
}

}  // namespace mt::cuda::fa
