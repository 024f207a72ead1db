// Helpers of the D = 8 kernels, which work on packed pairs of E and on the mma's operands
// directly: the ones that turn an mma into row sums, the hi + lo split that carries the softmax
// scale into an mma at full precision, the mma whose accumulator input is apart from its output,
// the doubled K fragments, and prmt for byte masks (cuda/flash_attention_fwd.cu explains the
// scheme; the dropout masks of cuda/flash_attention_softmax.cuh and the dK/dV kernel use prmt).
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/flash_attention_common.cuh"

namespace mt::cuda::fa {

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

// prmt.b32: byte i of the result is the byte of {b, a} (a = bytes 0..3) picked by nibble i of
// sel; a nibble with its msb set (8 + byte) instead replicates that byte's sign bit over all 8
// bits, which turns a flag in bit 7 into a 0x00 / 0xFF byte mask.
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

}  // namespace mt::cuda::fa
