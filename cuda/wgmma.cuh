// Hopper warpgroup matrix multiply (wgmma.mma_async, PTX ISA 8.0+, sm_90a only) through inline
// PTX: the shared-memory matrix descriptor, the fences and waits, and the instruction shapes
// that cuda/flash_attention_fwd_sm90.cu and cuda/flash_attention_bwd_sm90.cu use. Nothing here is
// specific to attention.
//
// A warpgroup is 4 consecutive warps (threads 128 w .. 128 w + 127). One wgmma.mma_async
// computes D[64 x N] (+)= A[64 x 16] B[16 x N] for the whole warpgroup, asynchronously:
//   - A comes from shared memory (a descriptor) or from registers (4 x 32-bit a thread);
//   - B always comes from shared memory (a descriptor);
//   - D (fp32) is N / 2 registers a thread, in the layout below.
// Issue: wgmma.fence (orders this thread's earlier register writes, e.g. of A fragments or of a
// rescaled D, before the asynchronous reads), the wgmma.mma_async, then wgmma.commit_group
// closes a group; wgmma.wait_group n waits until at most n groups are still in flight. Until
// then neither D nor the A registers may be touched.
//
// Register layouts (thread = 128 w + 32 v + lane within the warpgroup, v = warp of the
// warpgroup, g = lane / 4, t = lane % 4), the mma.sync m16n8 layouts stacked over 4 warps:
//   D, fp32, m64nN: d[4 j + i] (j < N / 8) = D[16 v + g + 8 (i / 2)][8 j + 2 t + i % 2]
//   A, 16-bit, 64 x 16 from registers, with r = 16 v + g:
//     a[0] = A[r][2t, 2t+1]      a[1] = A[r + 8][2t, 2t+1]
//     a[2] = A[r][2t+8, 2t+9]    a[3] = A[r + 8][2t+8, 2t+9]
//   (the low half of each 32-bit register holds the lower column). So the D fragments of two
//   neighbouring 8-column tiles j = 2 k, 2 k + 1, rounded to 16 bits, are exactly the A fragment
//   of columns 16 k .. 16 k + 15: a P tile computed by one wgmma feeds the next from registers.
//
// Shared-memory matrix descriptor (64 bits):
//   bits  0-13  start address >> 4          bits 16-29  leading-dimension byte offset (LBO) >> 4
//   bits 32-45  stride-dimension byte offset (SBO) >> 4
//   bits 49-51  base offset (0: every swizzle atom 1024-byte aligned)
//   bits 62-63  swizzle: 0 none, 1 = 128 B, 2 = 64 B, 3 = 32 B
// The 128-byte swizzle (the only one used here) stores a matrix as rows of 64 16-bit elements
// (128 bytes) in atoms of 8 rows (1024 bytes, 1024-byte aligned); within an atom the 16-byte
// chunk c of row r lives at chunk position c ^ r (byte address bits 4-6 ^= bits 7-9), so that
// the 8 rows of any 16-byte column hit 8 different bank groups. The canonical layouts:
//   K-major (the reduced dimension k contiguous; A = Q and B = K of S = Q K^T): row = an m (or n)
//     index, 64 k's a row. SBO = the step between 8-row groups (1024 B when the rows are packed);
//     LBO is unused (field value 1, i.e. 16 bytes, as CUTLASS sets it). A k-step of 16 elements
//     inside the atom is a start address + 32 bytes: the hardware applies the XOR on the final
//     address, which is why the atoms must be 1024-byte aligned.
//   MN-major (the non-reduced dimension contiguous; B = V of O = P V, with the transpose bit):
//     row = a k index, 64 n's a row. SBO = the step between groups of 8 k rows (1024 B packed),
//     LBO = the step between blocks of 64 n's (the next 128-byte-wide column block). An A
//     operand may be MN-major too (trans-a = 1, 16-bit types from shared memory only): the same
//     layout with m in place of n. An N of 32 starting mid-row (start + 64 bytes: n = 32 .. 63
//     of a 64-wide block) is the same address arithmetic as a K-major k-step (start + 32 bytes):
//     the hardware swizzles the final address.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

// wgmma exists only in the architecture-specific sm_90a target (nvcc -arch=sm_90a defines this).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MT_WGMMA_ENABLED 1
#else
#define MT_WGMMA_ENABLED 0
#endif

namespace mt::cuda::wg {

// Descriptor bits 62-63.
enum class Swizzle : uint64_t { kNone = 0, k128B = 1, k64B = 2, k32B = 3 };

// The descriptor of a matrix at shared-memory byte address addr (the CTA's window: < 256 KiB,
// so addr >> 4 fits the 14-bit field; the 16-byte granule bits are dropped, as the hardware does).
__host__ __device__ constexpr uint64_t make_desc(uint32_t addr, uint32_t lbo_bytes,
                                                 uint32_t sbo_bytes, Swizzle swizzle) {
  return static_cast<uint64_t>((addr & 0x3FFFFu) >> 4) |
         static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFFu) << 16 |
         static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFFu) << 32 |
         static_cast<uint64_t>(swizzle) << 62;
}
// Bit positions checked once: address 0x400, LBO 16 B, SBO 1024 B, 128-byte swizzle.
static_assert(make_desc(0x400, 16, 1024, Swizzle::k128B) == 0x4000004000010040ull,
              "descriptor fields: address bits 0-13, LBO 16-29, SBO 32-45, swizzle 62-63");

// The same matrix moved by `bytes` (a multiple of 16): only the start-address field changes.
// The caller keeps the address inside the 14-bit field (no carry into LBO).
__device__ __forceinline__ uint64_t desc_add(uint64_t desc, uint32_t bytes) {
  return desc + (bytes >> 4);
}

// ---- ordering -------------------------------------------------------------------------------

// Before a batch of wgmma: this thread's register writes (A fragments, a rescaled D) are done.
__device__ __forceinline__ void fence() {
#if MT_WGMMA_ENABLED
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void commit_group() {
#if MT_WGMMA_ENABLED
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most N committed groups of this warpgroup are still in flight.
template <int N>
__device__ __forceinline__ void wait_group() {
#if MT_WGMMA_ENABLED
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Makes this thread's generic-proxy writes to shared memory (st.shared, cp.async once waited
// for) visible to the async proxy that wgmma reads shared memory through. Executed by the
// writing threads after their data is in place and before the barrier that publishes it.
__device__ __forceinline__ void fence_proxy_async_smem() {
#if MT_WGMMA_ENABLED
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// A compiler-only fence on registers that an in-flight wgmma reads or writes (CUTLASS's
// warpgroup_fence_operand): it keeps the compiler from moving their uses across the wgmma
// issue or the wait that the volatile asm statements around it pin in place.
template <int N>
__device__ __forceinline__ void fence_operands(float* r) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_operands(uint32_t* r) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// ---- the instructions -----------------------------------------------------------------------

// The accumulator operands with constraint C ("+f": read and written).
#define MT_WG_D16(C)                                                                        \
  C(d[0]), C(d[1]), C(d[2]), C(d[3]), C(d[4]), C(d[5]), C(d[6]), C(d[7]), C(d[8]), C(d[9]), \
      C(d[10]), C(d[11]), C(d[12]), C(d[13]), C(d[14]), C(d[15])
#define MT_WG_D32(C)                                                                            \
  MT_WG_D16(C), C(d[16]), C(d[17]), C(d[18]), C(d[19]), C(d[20]), C(d[21]), C(d[22]), C(d[23]), \
      C(d[24]), C(d[25]), C(d[26]), C(d[27]), C(d[28]), C(d[29]), C(d[30]), C(d[31])
#define MT_WG_D64(C)                                                                            \
  MT_WG_D32(C), C(d[32]), C(d[33]), C(d[34]), C(d[35]), C(d[36]), C(d[37]), C(d[38]), C(d[39]), \
      C(d[40]), C(d[41]), C(d[42]), C(d[43]), C(d[44]), C(d[45]), C(d[46]), C(d[47]), C(d[48]), \
      C(d[49]), C(d[50]), C(d[51]), C(d[52]), C(d[53]), C(d[54]), C(d[55]), C(d[56]), C(d[57]), \
      C(d[58]), C(d[59]), C(d[60]), C(d[61]), C(d[62]), C(d[63])
#define MT_WG_R32                                                                               \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define MT_WG_R64                                                                               \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "  \
  "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "  \
  "%56, %57, %58, %59, %60, %61, %62, %63}"

#define MT_WG_R16 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"

// Both operands from shared memory: after the N / 2 accumulators come the A descriptor, the B
// descriptor, scale-d (0: D = A B, 1: D += A B), then the immediates scale-a = scale-b = 1 and
// trans-a, trans-b (0: K-major, 1: MN-major); A, B, SD, TA, TB name those operands (%n).
#define MT_WGMMA_SS(SHAPE, TYPES, REGS, DOPS, A, B, SD, TA, TB)                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" SD                                     \
               ", 0;\n"                                                                    \
               "wgmma.mma_async.sync.aligned." SHAPE ".f32" TYPES " " REGS ", %" A ", %" B \
               ", p, 1, 1, %" TA ", %" TB ";\n}\n"                                         \
               : DOPS                                                                      \
               : "l"(desc_a), "l"(desc_b), "n"(kAccumulate ? 1 : 0), "n"(kTransA ? 1 : 0), \
                 "n"(kTransB ? 1 : 0))
// The three shapes for one type string and accumulator constraint (inside mma_ss_m64nNk16).
#define MT_WGMMA_SS_N(TYPES)                                                                    \
  if constexpr (N == 32) {                                                                      \
    MT_WGMMA_SS("m64n32k16", TYPES, MT_WG_R16, MT_WG_D16("+f"), "16", "17", "18", "19", "20");  \
  } else if constexpr (N == 64) {                                                               \
    MT_WGMMA_SS("m64n64k16", TYPES, MT_WG_R32, MT_WG_D32("+f"), "32", "33", "34", "35", "36");  \
  } else {                                                                                      \
    MT_WGMMA_SS("m64n128k16", TYPES, MT_WG_R64, MT_WG_D64("+f"), "64", "65", "66", "67", "68"); \
  }

// D[64 x N] (+)= A[64 x 16] B[16 x N], A and B in shared memory (descriptors), N = 32, 64 or
// 128. kTransA / kTransB: the operand is MN-major (the transpose bit) instead of K-major.
// D is always declared read and written ("+f"), even when scale-d = 0 ignores it: declaring it
// written only ("=f") took the forward from 206 to 249 registers at D = 128 (CUDA 13.0) and did
// not change the backward's.
template <typename E, int N, bool kAccumulate, bool kTransA = false, bool kTransB = false>
__device__ __forceinline__ void mma_ss_m64nNk16(float* d, uint64_t desc_a, uint64_t desc_b) {
  static_assert(N == 32 || N == 64 || N == 128, "the shapes instantiated here");
#if MT_WGMMA_ENABLED
  constexpr bool kBf16 = std::is_same_v<E, __nv_bfloat16>;
  static_assert(kBf16 || std::is_same_v<E, __half>, "bf16 or fp16");
  if constexpr (kBf16) {
    MT_WGMMA_SS_N(".bf16.bf16")
  } else {
    MT_WGMMA_SS_N(".f16.f16")
  }
#else
  (void)d, (void)desc_a, (void)desc_b;
#endif
}

// D[64 x 128] (+)= A[64 x 16] B[16 x 128], A and B K-major in shared memory (the forward's S).
template <typename E, bool kAccumulate>
__device__ __forceinline__ void mma_ss_m64n128k16(float* d, uint64_t desc_a, uint64_t desc_b) {
  mma_ss_m64nNk16<E, 128, kAccumulate>(d, desc_a, desc_b);
}

// A from registers, N = 64: %32..%35 = A, %36 = B descriptor, %37 = scale-d (always 1: D += A B),
// then scale-a = scale-b = 1 and trans-b = 1 (B MN-major).
#define MT_WGMMA_RS_N64(TYPES)                                         \
  asm volatile(                                                        \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                     \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32" TYPES " " MT_WG_R32 \
      ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                  \
      : MT_WG_D32("+f")                                                \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1))
// A from registers, N = 128: %64..%67 = A, %68 = B descriptor, %69 = scale-d; as above.
#define MT_WGMMA_RS_N128(TYPES)                                         \
  asm volatile(                                                         \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                      \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32" TYPES " " MT_WG_R64 \
      ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                   \
      : MT_WG_D64("+f")                                                 \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1))

// D[64 x N] += A[64 x 16] B[16 x N]: A from registers (layout above), B MN-major in shared
// memory (stored [k][n], n contiguous; the transpose bit). N = 64 or 128.
template <typename E, int N>
__device__ __forceinline__ void mma_rs_m64nNk16_bt(float* d, const uint32_t* a, uint64_t desc_b) {
  static_assert(N == 64 || N == 128, "the shapes instantiated here");
#if MT_WGMMA_ENABLED
  constexpr bool kBf16 = std::is_same_v<E, __nv_bfloat16>;
  static_assert(kBf16 || std::is_same_v<E, __half>, "bf16 or fp16");
  if constexpr (N == 64 && kBf16) {
    MT_WGMMA_RS_N64(".bf16.bf16");
  } else if constexpr (N == 64) {
    MT_WGMMA_RS_N64(".f16.f16");
  } else if constexpr (kBf16) {
    MT_WGMMA_RS_N128(".bf16.bf16");
  } else {
    MT_WGMMA_RS_N128(".f16.f16");
  }
#else
  (void)d, (void)a, (void)desc_b;
#endif
}

#undef MT_WGMMA_RS_N64
#undef MT_WGMMA_RS_N128
#undef MT_WGMMA_SS_N
#undef MT_WGMMA_SS
#undef MT_WG_R16
#undef MT_WG_R32
#undef MT_WG_R64
#undef MT_WG_D16
#undef MT_WG_D32
#undef MT_WG_D64

}  // namespace mt::cuda::wg
