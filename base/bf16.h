// bfloat16 on the host: the top 16 bits of an IEEE float32 (8 exponent bits, 7 mantissa bits).
// Conversion rounds to nearest, ties to even, exactly as CUDA's __float2bfloat16_rn, so that a
// tensor cast on the CPU and on the GPU gives the same bits.
#pragma once

#include <cstdint>
#include <cstring>

#include "base/hostdevice.h"

namespace mt {

struct bf16 {
  uint16_t bits = 0;

  bf16() = default;
  MT_HOST_DEVICE explicit bf16(float value) : bits(round_to_bits(value)) {}
  MT_HOST_DEVICE operator float() const { return bits_to_float(bits); }

  MT_HOST_DEVICE static bf16 from_bits(uint16_t b) {
    bf16 h;
    h.bits = b;
    return h;
  }

  MT_HOST_DEVICE static uint16_t round_to_bits(float value) {
    uint32_t u;
    std::memcpy(&u, &value, sizeof(u));
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0) {
      return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN stays a (quiet) NaN
    }
    // Add 0x7FFF plus the lowest kept bit: rounds half to even on the 16 dropped bits.
    uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
    return static_cast<uint16_t>((u + rounding) >> 16);
  }

  MT_HOST_DEVICE static float bits_to_float(uint16_t b) {
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
  }
};

// Rounds a float to the nearest bf16 value and back: what a bf16 store-and-load does to it.
MT_HOST_DEVICE float round_to_bf16(float value) { return static_cast<float>(bf16(value)); }

}  // namespace mt
