// Tile sizes of the FlashAttention kernels, one traits struct per kernel and head dim.
//
// Every warp owns 16 rows (the M of one mma.sync.m16n8k16), so a CTA of W warps owns 16 W
// rows and streams the other operand in tiles of N rows through double-buffered shared memory.
// The sizes come from the register budget of one thread (a warp's 16 x N fp32 tile is N / 2
// registers a thread) and from the exponential unit at small D (larger key tiles amortize the
// per-tile row max and rescale).
#pragma once

namespace mt::cuda::fa {

// Shared-memory row stride in elements: D plus 8 (16 bytes) of padding, so that the 8 row
// addresses of one ldmatrix 8x8 load fall in 8 different 16-byte bank groups (D = 64 without
// padding would put all 8 rows in the same banks: an 8-way conflict). D = 8 needs none: 8 rows
// of 16 bytes are already 128 consecutive bytes.
template <int D>
constexpr int smem_stride() {
  return D == 8 ? 8 : D + 8;
}

// Forward: a CTA owns kBlockM query rows and streams keys/values in tiles of kBlockN.
template <int D>
struct FwdTraits {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  // Row tiles of 16 a warp: 2 at D = 64, so that each K/V fragment read from shared memory
  // serves two mma (the S and O tiles of 32 rows, 64 + 64 registers, still fit); 1 elsewhere
  // (D <= 32 is bound by the exponentials, D = 128 has no registers left).
  static constexpr int kRowTiles = D == 64 ? 2 : 1;
  static constexpr int kBlockM = 16 * kWarps * kRowTiles;  // 64 or 128 query rows
  // D = 8 runs the lazy-max kernel (cuda/flash_attention_fwd.cu: scale and -m inside the Q K^T
  // mma, row sums on the tensor core, no row max or rescale on most tiles); it needs the 8
  // spare k columns of m16n8k16 that only D = 8 has. false selects the general kernel.
  static constexpr bool kLazyMax = D == 8;
  // 128 keys for D <= 32: each key tile's row max/rescale is paid once per 128 keys (the S
  // tile is 64 fp32 registers a thread); 64 for D >= 64, where the O accumulator (D / 2
  // registers) and the Q fragments (D / 4) need the room.
  static constexpr int kBlockN = kLazyMax ? 64 : D <= 32 ? 128 : 64;
  // CTAs an SM that the lazy kernel's __launch_bounds__ asks for, i.e. its register cap (5 ->
  // 96 a thread); the general kernel asks for none.
  static constexpr int kMinBlocks = !kLazyMax ? 1 : 5;
  static constexpr int kStride = smem_stride<D>();
  static constexpr int kStages = 2;  // K/V double buffer: loads of tile j+1 overlap tile j
  static constexpr int kSmemQ = kBlockM * kStride * 2;
  static constexpr int kSmemKV = kStages * 2 * kBlockN * kStride * 2;
  static constexpr int kMaskStride = kBlockN + 16;  // dropout bytes a row, 16-aligned, padded
  static constexpr int kSmemMask = kWarps * 16 * kMaskStride;
  static constexpr int kSmemBytes = kSmemQ + kSmemKV + kSmemMask;

  static_assert(D == 8 || D == 16 || D == 32 || D == 64 || D == 128, "head dims 8..128");
  static_assert(kBlockN % 32 == 0, "key tiles are loaded as pairs of 16-key mma steps");
  static_assert(kBlockN % kBlockM == 0 || kBlockM % kBlockN == 0,
                "causal tile skipping assumes nested tiles");
  static_assert(!kLazyMax || (D == 8 && kRowTiles == 1 && kBlockN == 64),
                "the lazy kernel is written for D = 8, one row tile, 64-key tiles");
  static_assert(!kLazyMax || 2 * kBlockN == kThreads,
                "the lazy kernel's K/V copy: one row of K or of V a thread");
  static_assert(kSmemBytes <= 227 * 1024, "fits an H100 SM's shared memory");
};

// Backward, dK/dV kernel: a CTA owns kBlockN keys (16 a warp) and streams query tiles of
// kBlockM rows (with their dO, lse and delta).
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

// Backward, dQ kernel: the forward's shape (a CTA owns query rows, streams keys), with dO
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

}  // namespace mt::cuda::fa
