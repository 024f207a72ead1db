// The attention-dropout keep mask, defined once for the CPU reference and the CUDA kernels.
//
// Dropout on the attention probabilities P[b, h, row, col] (row = query, col = key) never stores
// its mask: it is a pure function of (seed, offset, b, h, row, col), so the backward pass (and the
// CPU reference) regenerates exactly the bits the forward used. One byte a score:
//   key      = Philox4x32-10(seed, counter (kKeyIndex, offset))        4 words, once a launch
//   head     = row_key, col_key: fold(bh ^ key[0], .) ^ key[1], fold(bh ^ key[2], .) ^ key[3]
//   label    = fold(row + row_key, kRowMul)  ^  (col / 16) * kColStep + col_key
//   byte     = byte col % 4 of word (col % 16) / 4,   word w = fold(label, kWordMul[w])
//   keep     = byte >= threshold,   threshold = min(round(p * 256), 255)
// where fold(x, m) = lo32(x m) ^ hi32(x m), the 64-bit product of two 32-bit words folded in half
// (one IMAD.WIDE and one XOR on the GPU). So one label covers 16 consecutive keys of one query
// row (a "draw": 4 words, 16 bytes), as Philox4x32-7's 128-bit output did before.
//
// Why this shape (docs/flash_attention.md, "Dropout without a stored mask", has the statistics
// and the instruction counts):
//  - what a kernel draws over is cheap: the forward's lane keeps one query row and walks the
//    keys, so its row label is computed once and a draw's column label is an add of the golden-
//    ratio step (a Weyl sequence: by the three-distance theorem no two of a row's chunks get
//    labels closer than about 2^32 / (2.2 n) for n chunks); the dK/dV kernel's warp keeps 16
//    keys and walks the queries, so its column label is fixed and a draw's row label is one
//    fold. Rows are folded rather than stepped so that the labels are no 2D lattice (a stepped
//    row and a stepped column would make cells (r + d, c) and (r, c + e) echo each other where
//    d and e steps nearly agree).
//  - a word is one fold of the label: lo32 alone would leave byte 0 a function of the label's
//    byte 0 (rows with equal low bytes would share masks), hi32 alone its top byte a smooth
//    function of the label's; their XOR gives every byte a part that depends on all 32 bits.
//  - what varies between launches and heads goes through Philox4x32-10 (the framework's
//    generator, base/philox.h) once a launch and one fold a head, so that steps (offsets),
//    seeds and heads get unrelated masks.
// A draw costs four IMAD.WIDE and five XORs in the forward (one fold more in the dK/dV kernel),
// where Philox4x32-7 took twelve and thirteen. tests/test_attention_dropout.cpp checks the
// mask's statistics.
//
// p is quantized to 1/256: the seed model's p = 0.05 becomes threshold 13, an effective drop rate
// of 13/256 = 0.0508, and kept probabilities are scaled by 256 / (256 - threshold). The cap keeps
// that scale finite for p near 1 (p >= 0.998 would round to 256: every element dropped, and
// 0 * inf = NaN outputs).
#pragma once

#include <cstdint>

#include "base/hostdevice.h"
#include "base/philox.h"

namespace mt {

namespace attention_dropout_detail {
// Philox counter word pair of the launch key ("ATTNDROP"): apart from the counters of the
// framework's other random ops, which count elements from 0.
constexpr uint64_t kKeyIndex = 0x4154544E44524F50ull;
constexpr uint32_t kHeadMul0 = 0xC2B2AE35u, kHeadMul1 = 0x85EBCA6Bu;  // MurmurHash3's finalizer
constexpr uint32_t kRowMul = 0x9E3779B1u;                             // xxHash's prime 1
constexpr uint32_t kColStep = 0x9E3779B9u;  // 2^32 / golden ratio, rounded to odd

// The word multipliers: odd, above 2^31 (so hi32 spans most of its range), unrelated.
MT_HOST_DEVICE constexpr uint32_t word_mul(int w) {
  return w == 0 ? 0xD2511F53u : w == 1 ? 0xCD9E8D57u : w == 2 ? 0xC2B2AE3Du : 0x85EBCA77u;
}

// lo32(x m) ^ hi32(x m).
MT_HOST_DEVICE uint32_t fold(uint32_t x, uint32_t m) {
  const uint64_t product = static_cast<uint64_t>(x) * m;
  return static_cast<uint32_t>(product) ^ static_cast<uint32_t>(product >> 32);
}
}  // namespace attention_dropout_detail

// The 16 mask bytes of one draw (16 consecutive keys of one query row): byte j in bits
// 8 (j % 4) .. 8 (j % 4) + 7 of word j / 4.
struct DropoutDraw {
  uint32_t v[4];

  // The draw of a label (DropoutHead::row_label(row) ^ DropoutHead::col_label(col16)).
  MT_HOST_DEVICE static DropoutDraw of(uint32_t label) {
    using namespace attention_dropout_detail;
    DropoutDraw d;
    for (int w = 0; w < 4; ++w) d.v[w] = fold(label, word_mul(w));
    return d;
  }
  MT_HOST_DEVICE uint32_t byte(int j) const { return (v[j >> 2] >> (8 * (j & 3))) & 0xFFu; }
};

// The two keys of one head (bh = b * H + h) and the labels made from them.
struct DropoutHead {
  uint32_t row_key, col_key;

  MT_HOST_DEVICE uint32_t row_label(uint32_t row) const {
    return attention_dropout_detail::fold(row + row_key, attention_dropout_detail::kRowMul);
  }
  MT_HOST_DEVICE uint32_t col_label(uint32_t col16) const {
    return col16 * attention_dropout_detail::kColStep + col_key;
  }
  // The mask byte of element (row, col). The slow path, one element at a time.
  MT_HOST_DEVICE uint32_t byte(uint32_t row, uint32_t col) const {
    return DropoutDraw::of(row_label(row) ^ col_label(col >> 4)).byte(static_cast<int>(col & 15));
  }
};

// The key of one launch (seed, offset): Philox4x32-10's four words.
struct DropoutKey {
  uint32_t k[4];

  MT_HOST_DEVICE static DropoutKey of(uint64_t seed, uint64_t offset) {
    const Philox4 r = philox4x32(seed, attention_dropout_detail::kKeyIndex, offset);
    return DropoutKey{{r.v[0], r.v[1], r.v[2], r.v[3]}};
  }
  MT_HOST_DEVICE DropoutHead head(uint32_t bh) const {
    using namespace attention_dropout_detail;
    return DropoutHead{fold(bh ^ k[0], kHeadMul0) ^ k[1], fold(bh ^ k[2], kHeadMul1) ^ k[3]};
  }
};

struct AttentionDropout {
  uint64_t seed = 0;
  uint64_t offset = 0;
  uint32_t threshold = 0;  // round(p * 256); 0 means no dropout

  // The threshold for a drop probability p in [0, 1).
  MT_HOST_DEVICE static uint32_t threshold_for(float p) {
    const auto t = static_cast<uint32_t>(p * 256.0f + 0.5f);
    return t < 255u ? t : 255u;
  }
  // 1 / (1 - p_effective): the factor applied to kept probabilities.
  MT_HOST_DEVICE float keep_scale() const { return 256.0f / static_cast<float>(256u - threshold); }
  MT_HOST_DEVICE DropoutKey key() const { return DropoutKey::of(seed, offset); }
};

// A launch's dropout with its key computed once: what the CPU loops and the exact kernels ask
// element by element.
struct DropoutMask : AttentionDropout {
  DropoutKey key;

  MT_HOST_DEVICE explicit DropoutMask(const AttentionDropout& d)
      : AttentionDropout(d), key(d.key()) {}
  // Is element (row, col) of head bh kept? (The slow path: two folds for the head, one for the
  // row and one for the word, every element.)
  MT_HOST_DEVICE bool keep(uint32_t bh, uint32_t row, uint32_t col) const {
    return key.head(bh).byte(row, col) >= threshold;
  }
};

// Keep flags of four mask bytes at once, in bit 7 of each byte (the other bits are garbage):
// byte >= threshold iff byte + (256 - threshold) >= 256, i.e. iff adding c = 256 - threshold
// carries out of the byte. Add the low 7 bits of every byte (no carry can cross a byte), and
// the carry out of bit 7 is the majority of bit 7 of x, bit 7 of c and the carry into bit 7:
// one AND, one add, one LOP3 for four compares. Right for thresholds 1 .. 256 (0 is no
// dropout; threshold_for() gives at most 255).
struct KeepFlags4 {
  uint32_t c4, c4_low7;  // c in every byte; its low 7 bits

  MT_HOST_DEVICE explicit KeepFlags4(uint32_t threshold)
      : c4((256u - threshold) * 0x01010101u), c4_low7(c4 & 0x7F7F7F7Fu) {}
  MT_HOST_DEVICE uint32_t operator()(uint32_t x) const {
    const uint32_t sum = (x & 0x7F7F7F7Fu) + c4_low7;  // bit 7 of each byte: the carry in
    return (x & c4) | (sum & (x | c4));                // majority
  }
};

}  // namespace mt
