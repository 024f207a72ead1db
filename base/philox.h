// Philox4x32-10: the counter-based random generator (Salmon et al., "Parallel random numbers: as
// easy as 1, 2, 3", SC'11) that the CPU ops and the CUDA kernels share, with the paper's
// recommended 10 rounds. (Attention dropout draws one Philox key a launch and hashes the scores
// more cheaply: cuda/attention_dropout.h.)
//
// Why counter-based: the i-th random number is a pure function of (key, counter), so any thread
// can compute any element directly, in any order, on any device. The same seed therefore gives
// the same numbers on the CPU and on the GPU, and a backward pass can regenerate a dropout mask
// instead of storing it.
//
// Conventions used across the framework:
//   key     = the 64-bit seed, split into two 32-bit words;
//   counter = { lo(index), hi(index), lo(stream), hi(stream) } where `index` counts blocks of four
//             outputs inside one draw and `stream` separates independent draws (a Generator's
//             offset, or a (batch, head, row) triple packed by the attention kernel).
#pragma once

#include <cstdint>

#include "base/hostdevice.h"

namespace mt {

struct Philox4 {
  uint32_t v[4];
};

namespace philox_detail {
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio, the key schedule's increment
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

MT_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}
}  // namespace philox_detail

// One round of the Philox S-box on counter c with round key (k0, k1).
MT_HOST_DEVICE void philox_round(uint32_t (&c)[4], uint32_t k0, uint32_t k1) {
  using namespace philox_detail;
  uint32_t hi0, lo0, hi1, lo1;
  mulhilo(kMul0, c[0], hi0, lo0);
  mulhilo(kMul1, c[2], hi1, lo1);
  const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
  c[0] = n0, c[1] = lo1, c[2] = n2, c[3] = lo0;
}

// Ten rounds of the Philox S-box; returns four independent 32-bit outputs. The key of round r
// is (k0 + r kWeyl0, k1 + r kWeyl1) mod 2^32.
MT_HOST_DEVICE Philox4 philox4x32(uint64_t seed, uint64_t index, uint64_t stream) {
  using namespace philox_detail;
  uint32_t c[4] = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                   static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)};
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    philox_round(c, k0, k1);
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return Philox4{{c[0], c[1], c[2], c[3]}};
}

// A 32-bit output mapped to a float in [0, 1): the top 24 bits, so every value is exact in float.
MT_HOST_DEVICE float philox_uniform(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// The uniform number for element `i` of a draw: block i / 4, lane i % 4.
MT_HOST_DEVICE float philox_uniform_at(uint64_t seed, uint64_t stream, uint64_t i) {
  Philox4 r = philox4x32(seed, i >> 2, stream);
  return philox_uniform(r.v[i & 3]);
}

}  // namespace mt
