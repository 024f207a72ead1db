// The attention-dropout keep mask, defined once for the CPU reference and the CUDA kernels.
//
// Dropout on the attention probabilities P[b, h, row, col] (row = query, col = key) never stores
// its mask: it is a pure function of (seed, offset, b, h, row, col), so the backward pass (and the
// CPU reference) regenerates exactly the bits the forward used.
//
// The mapping (one Philox4x32-7 call gives 128 bits = 16 bytes, one byte per element):
//   key     = seed                                          (64 bits)
//   index   = (row << 32) | (col / 16)                      (counter words 0, 1)
//   stream  = (offset << 32) + (b * H + h)                  (counter words 2, 3; offset mod 2^32)
//   byte    = bits 8*(col % 4) .. 8*(col % 4) + 7 of output word (col % 16) / 4
//   keep    = byte >= threshold,   threshold = min(round(p * 256), 255)
// so one call covers 16 consecutive keys of one query row. p is quantized to 1/256: the seed
// model's p = 0.05 becomes threshold 13, an effective drop rate of 13/256 = 0.0508, and kept
// probabilities are scaled by 256 / (256 - threshold). The cap keeps that scale finite for p
// near 1 (p >= 0.998 would round to 256: every element dropped, and 0 * inf = NaN outputs).
// 8 bits an element keeps the generator's cost at 1/16 of a Philox call per element (about 4
// integer instructions), which matters where the kernel is bound by the exponential unit
// (D = 8).
//
// Why 7 rounds, not the 10 of every other random op (base/philox.h): at D = 8 the generator is
// a third of the attention kernels' integer work (its 64-bit multiplies share the FMA pipe with
// the softmax), and 3 rounds fewer remove 30% of it. Salmon et al. found 7 rounds to be the
// fewest with which Philox4x32 passes TestU01's BigCrush (10 is their safety margin), and
// FlashAttention's own dropout generator runs 7 rounds too. tests/test_tensor.cpp checks both
// round counts against Random123's published known-answer vectors.
#pragma once

#include <cstdint>

#include "base/hostdevice.h"
#include "base/philox.h"

namespace mt {

struct AttentionDropout {
  static constexpr int kRounds = 7;  // Philox rounds (see above)
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

  // The 16 mask bytes of keys [16 * col16, 16 * col16 + 16) of one query row, head bh = b*H + h.
  MT_HOST_DEVICE Philox4 bytes16(uint32_t bh, uint32_t row, uint32_t col16) const {
    uint64_t index = (static_cast<uint64_t>(row) << 32) | col16;
    uint64_t stream = (offset << 32) + bh;
    return philox4x32_rounds<kRounds>(seed, index, stream);
  }

  // Byte j (0..15) of a bytes16() draw.
  MT_HOST_DEVICE static uint32_t byte_at(const Philox4& r, int j) {
    return (r.v[j >> 2] >> (8 * (j & 3))) & 0xFFu;
  }

  // Is element (row, col) of head bh kept? The slow path, one element at a time.
  MT_HOST_DEVICE bool keep(uint32_t bh, uint32_t row, uint32_t col) const {
    return byte_at(bytes16(bh, row, col >> 4), col & 15) >= threshold;
  }
};

// ---- the same draws, split for kernels that make millions of them ---------------------------
// A FlashAttention kernel draws the masks of one head, so two parts of every draw repeat:
//  - the key schedule (round r's key is seed + r (kWeyl0, kWeyl1)) depends on the seed alone.
//    The launcher computes it once into the kernel's parameters (DropoutSchedule), where each
//    round's key is an operand read from constant memory instead of two adds a round;
//  - round 1 multiplies counter word 0 (the 16-key chunk) and word 2 (the head) apart
//    (philox_round). A kernel computes the head's product once, and the chunk's once where a
//    warp's draws share it (the dK/dV kernel's 16 keys).
// draw() equals AttentionDropout::bytes16() for every split (tests/test_attention.cpp).
struct DropoutSchedule {
  uint32_t key[AttentionDropout::kRounds][2];
  uint32_t offset;  // counter word 3: the low word of AttentionDropout::offset

  MT_HOST_DEVICE static DropoutSchedule of(const AttentionDropout& d) {
    DropoutSchedule s{};
    uint32_t k0 = static_cast<uint32_t>(d.seed), k1 = static_cast<uint32_t>(d.seed >> 32);
    for (int r = 0; r < AttentionDropout::kRounds; ++r) {
      s.key[r][0] = k0, s.key[r][1] = k1;
      k0 += philox_detail::kWeyl0;
      k1 += philox_detail::kWeyl1;
    }
    s.offset = static_cast<uint32_t>(d.offset);
    return s;
  }
};

struct MulHiLo {
  uint32_t hi, lo;
};
// Round 1's product of the chunk word (kMul0 col16) and of the head word (kMul1 bh).
MT_HOST_DEVICE MulHiLo chunk_product(uint32_t col16) {
  MulHiLo m;
  philox_detail::mulhilo(philox_detail::kMul0, col16, m.hi, m.lo);
  return m;
}
MT_HOST_DEVICE MulHiLo head_product(uint32_t bh) {
  MulHiLo m;
  philox_detail::mulhilo(philox_detail::kMul1, bh, m.hi, m.lo);
  return m;
}
// Round 1's output words 0 and 2 (words 1 and 3 are head.lo and chunk.lo).
MT_HOST_DEVICE uint32_t round1_word0(const DropoutSchedule& s, MulHiLo head, uint32_t row) {
  return head.hi ^ row ^ s.key[0][0];
}
MT_HOST_DEVICE uint32_t round1_word2(const DropoutSchedule& s, MulHiLo chunk) {
  return chunk.hi ^ s.offset ^ s.key[0][1];
}
// Rounds 2.. of a draw from round 1's output (w0, head.lo, w2, chunk.lo).
MT_HOST_DEVICE Philox4 draw_from_round1(const DropoutSchedule& s, uint32_t w0, uint32_t w1,
                                        uint32_t w2, uint32_t w3) {
  uint32_t c[4] = {w0, w1, w2, w3};
  for (int r = 1; r < AttentionDropout::kRounds; ++r) philox_round(c, s.key[r][0], s.key[r][1]);
  return Philox4{{c[0], c[1], c[2], c[3]}};
}
// AttentionDropout::bytes16(bh, row, col16), with head = head_product(bh) and chunk =
// chunk_product(col16).
MT_HOST_DEVICE Philox4 draw(const DropoutSchedule& s, MulHiLo chunk, MulHiLo head, uint32_t row) {
  return draw_from_round1(s, round1_word0(s, head, row), head.lo, round1_word2(s, chunk), chunk.lo);
}

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
