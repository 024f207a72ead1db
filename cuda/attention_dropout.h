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
//   keep    = byte >= threshold,   threshold = round(p * 256)
// so one call covers 16 consecutive keys of one query row. p is quantized to 1/256: the seed
// model's p = 0.05 becomes threshold 13, an effective drop rate of 13/256 = 0.0508, and kept
// probabilities are scaled by 256 / (256 - threshold). 8 bits an element keeps the generator's
// cost at 1/16 of a Philox call per element (about 4 integer instructions), which matters where
// the kernel is bound by the exponential unit (D = 8).
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
    return static_cast<uint32_t>(p * 256.0f + 0.5f);
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

}  // namespace mt
