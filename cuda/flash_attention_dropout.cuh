// The attention-dropout mask inside the mma.sync kernels: the keep flags of a score tile drawn
// from cuda/attention_dropout.h's labels, exchanged through a small per-warp shared-memory
// buffer into the lanes that hold the scores, and applied. One draw (a label, four folds) gives
// the 16 mask bytes of 16 keys of one query row; the layouts below decide which lane makes which
// draw, what it keeps from one draw to the next, and how the bytes reach the lanes that own
// those scores (docs/flash_attention.md, "Dropout without a stored mask").
//   dropout_rows     a 16 x 8 NT tile in C fragments, queries as rows (general forward, dQ)
//   dropout_packed   packed bf16/fp16 A fragments of P (the D = 8 forward)
//   dropout_flags    the transposed tiles of the dK/dV kernel (keys as rows)
#pragma once

#include <cstdint>

#include "cuda/attention_dropout.h"
#include "cuda/flash_attention_common.cuh"

namespace mt::cuda::fa {

// The launch's dropout key: from the parameters, or (a launch under a CUDA graph, whose offset
// lives on the device) from the 4 words the launch computed on the device just before.
__device__ __forceinline__ DropoutKey launch_key(const FlashAttentionParams& p) {
  if (p.dropout_key_words == nullptr) return p.dropout_key;
  const uint4 w = __ldg(reinterpret_cast<const uint4*>(p.dropout_key_words));
  return DropoutKey{{w.x, w.y, w.z, w.w}};
}

// Dropout for a 16 x 8 NT tile of rows r0.. (queries) and keys n0.. (n0 a multiple of 16):
// the warp draws the 16 x 8 NT mask bytes, one draw per 16 keys of a row (8 NT draws, NT / 4 a
// lane; lane l draws row r0 + l % 16, so its row label serves all of them) into its buffer
// buf[16][STRIDE], then every lane zeroes its dropped elements. The 1 / (1 - p) factor is applied
// by the caller, once per row.
template <int NT, int STRIDE>
__device__ __forceinline__ void dropout_rows(float (*s)[4], uint8_t* buf,
                                             const FlashAttentionParams& p, uint32_t bh, int r0,
                                             int n0, int lane) {
  const int g = lane / 4, t = lane % 4;
  static_assert(NT % 4 == 0, "a whole number of draws a lane");
  const DropoutHead head = launch_key(p).head(bh);
  const uint32_t row_label = head.row_label(static_cast<uint32_t>(r0 + lane % 16));
#pragma unroll
  for (int i = 0; i < NT / 4; ++i) {
    const int c = lane + 32 * i, row = c % 16, col16 = c / 16;
    const DropoutDraw r =
        DropoutDraw::of(row_label ^ head.col_label(static_cast<uint32_t>(n0 / 16 + col16)));
    *reinterpret_cast<uint4*>(buf + row * STRIDE + col16 * 16) =
        make_uint4(r.v[0], r.v[1], r.v[2], r.v[3]);
  }
  __syncwarp();
  const uint32_t threshold = p.dropout_threshold;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const uint32_t lo = *reinterpret_cast<const uint16_t*>(buf + g * STRIDE + nt * 8 + 2 * t);
    const uint32_t hi = *reinterpret_cast<const uint16_t*>(buf + (g + 8) * STRIDE + nt * 8 + 2 * t);
    s[nt][0] = (lo & 0xFFu) >= threshold ? s[nt][0] : 0.0f;
    s[nt][1] = (lo >> 8) >= threshold ? s[nt][1] : 0.0f;
    s[nt][2] = (hi & 0xFFu) >= threshold ? s[nt][2] : 0.0f;
    s[nt][3] = (hi >> 8) >= threshold ? s[nt][3] : 0.0f;
  }
  __syncwarp();  // the buffer is rewritten by the next tile
}

// What every draw of a lane in dropout_packed shares, computed once a kernel: the lane draws
// for row r0 + lane % 16 of head bh only, so its row label is fixed and a draw's column label
// is one multiply-add (cuda/attention_dropout.h); and the keep compare's constants.
struct PackedDropoutLane {
  DropoutHead head;  // of which the draws use col_key
  uint32_t row_label;
  KeepFlags4 keep;

  __device__ PackedDropoutLane(const FlashAttentionParams& p, uint32_t bh, int r0, int lane)
      : head(launch_key(p).head(bh)),
        row_label(head.row_label(static_cast<uint32_t>(r0 + lane % 16))),
        keep(p.dropout_threshold) {}
};

// Dropout on the packed A fragments of a 16 x 16 KS probability tile (rows r0.., keys n0.., n0
// a multiple of 16): one draw per 16 keys of a row (lane l draws row l % 16, chunks
// l / 16 + 2 i), stored as keep flags (bit 7 of each byte) and reordered so that lane t of a
// quad finds the four it needs for one 16-key fragment, keys 2t, 2t+1, 2t+8, 2t+9, in one
// 32-bit word. prmt then widens two flags into the 16-bit halves of an AND mask: one AND per
// pair of elements. Applied after row_sums_mma: l is the sum of P before dropout.
template <int KS, int STRIDE>
__device__ __forceinline__ void dropout_packed(uint32_t (*pa)[4], uint8_t* buf,
                                               const PackedDropoutLane& d, int n0, int lane) {
  const int g = lane / 4, t = lane % 4;
  static_assert(KS % 2 == 0, "a whole number of draws a lane");
#pragma unroll
  for (int i = 0; i < KS / 2; ++i) {
    const int c = lane + 32 * i, row = c % 16, col16 = c / 16;
    const DropoutDraw r =
        DropoutDraw::of(d.row_label ^ d.head.col_label(static_cast<uint32_t>(n0 / 16 + col16)));
    uint32_t k[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) k[w] = d.keep(r.v[w]);
    // Word t = bytes 2t, 2t+1 (word t / 2 of the draw) and 2t+8, 2t+9 (word 2 + t / 2).
    *reinterpret_cast<uint4*>(buf + row * STRIDE + col16 * 16) =
        make_uint4(prmt(k[0], k[2], 0x5410), prmt(k[0], k[2], 0x7632), prmt(k[1], k[3], 0x5410),
                   prmt(k[1], k[3], 0x7632));
  }
  __syncwarp();
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
    const uint32_t lo = *reinterpret_cast<const uint32_t*>(buf + g * STRIDE + ks * 16 + 4 * t);
    const uint32_t hi =
        *reinterpret_cast<const uint32_t*>(buf + (g + 8) * STRIDE + ks * 16 + 4 * t);
    pa[ks][0] &= prmt(lo, 0, 0x9988);  // row g, keys 2t, 2t+1: flags of bytes 0, 1
    pa[ks][1] &= prmt(hi, 0, 0x9988);  // row g + 8
    pa[ks][2] &= prmt(lo, 0, 0xBBAA);  // row g, keys 2t+8, 2t+9: bytes 2, 3
    pa[ks][3] &= prmt(hi, 0, 0xBBAA);
  }
  __syncwarp();  // the buffer is rewritten by the next tile
}

// What every dropout draw of a warp shares: its 16 keys k0.. are one chunk of one head, so
// its column label is fixed and a draw's label is the query's row label (one fold) XOR it
// (cuda/attention_dropout.h); and the keep compare's constants. Computed afresh for every
// sub-tile (a few instructions against its 32 draws): kept across the loop, the dropout
// registers made the D = 8 kernel spill.
struct KeyChunkDropout {
  DropoutHead head;  // of which the draws use row_key
  uint32_t col_label;
  KeepFlags4 keep;

  __device__ KeyChunkDropout(const FlashAttentionParams& p, uint32_t bh, int k0)
      : head(launch_key(p).head(bh)),
        col_label(head.col_label(static_cast<uint32_t>(k0 / 16))),
        keep(p.dropout_threshold) {}
};

// Keep flags of the warp's 16 keys (k0..) x MT * 8 queries (q0..), written to the warp's
// buffer for probs_and_ds to read in the C layout of S^T (flag_word). One draw a query
// covers the 16 keys (lane l draws queries q0 + l + 32 i). Shared memory then holds a 32-byte
// record for each pair of queries (2 P, 2 P + 1), byte 4 (k % 8) + 2 (k / 8) + j the flag of
// key k, query 2 P + j: word g of record 4 nt + t is exactly the four flags that lane 4 g + t
// needs for tile nt (keys g, g + 8 x queries 2 t, 2 t + 1), one 32-bit load. The two lanes of a
// pair build their record together: each swaps two flag words with the other (shuffles), then
// transposes 4 x 4 bytes (prmt) into its half: keys 0-3 and 8-11 the even lane, 4-7 and 12-15
// the odd one.
template <int MT>
__device__ __forceinline__ void dropout_flags(uint8_t* buf, const KeyChunkDropout& d, int q0,
                                              int lane) {
  static_assert(MT % 4 == 0, "whole pairs of queries in every lane pair");
  const bool odd = lane & 1;
  __syncwarp();  // every lane is done reading the previous sub-tile's flags
#pragma unroll
  for (int i = 0; i < MT / 4; ++i) {
    const uint32_t row = static_cast<uint32_t>(q0 + lane + 32 * i);
    const DropoutDraw r = DropoutDraw::of(d.head.row_label(row) ^ d.col_label);
    uint32_t f[4];  // keys 4 w .. 4 w + 3 of this lane's query
#pragma unroll
    for (int w = 0; w < 4; ++w) f[w] = d.keep(r.v[w]);
    // Even lanes keep keys 0-3, 8-11 (words 0, 2) and get the odd query's; odd lanes the rest.
    const uint32_t own0 = odd ? f[1] : f[0], own1 = odd ? f[3] : f[2];
    const uint32_t got0 = __shfl_xor_sync(0xffffffffu, odd ? f[0] : f[1], 1);
    const uint32_t got1 = __shfl_xor_sync(0xffffffffu, odd ? f[2] : f[3], 1);
    // Interleave by query, the even query first: [a0 b0 a1 b1] and [a2 b2 a3 b3].
    const uint32_t sel_lo = odd ? 0x1504u : 0x5140u, sel_hi = odd ? 0x3726u : 0x7362u;
    const uint32_t x_lo = prmt(own0, got0, sel_lo), x_hi = prmt(own0, got0, sel_hi);
    const uint32_t y_lo = prmt(own1, got1, sel_lo), y_hi = prmt(own1, got1, sel_hi);
    *reinterpret_cast<uint4*>(buf + (lane + 32 * i) * 16) =
        make_uint4(prmt(x_lo, y_lo, 0x5410), prmt(x_lo, y_lo, 0x7632), prmt(x_hi, y_hi, 0x5410),
                   prmt(x_hi, y_hi, 0x7632));
  }
  __syncwarp();
}

// The keep flags of C tile nt of S^T in dropout_flags' buffer: element i in bit 8 i + 7.
__device__ __forceinline__ uint32_t flag_word(const uint8_t* buf, int nt, int lane) {
  return *reinterpret_cast<const uint32_t*>(buf + (nt * 4 + lane % 4) * 32 + 4 * (lane / 4));
}

}  // namespace mt::cuda::fa
