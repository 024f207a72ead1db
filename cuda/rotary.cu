// Rotary position embedding on x [B, T, H, D] into y, both through their strides (rotary.cuh).
//
// Two kernels a call:
// - rotary_table_kernel computes cos and sin of theta[t, c] = (t + offset) * base^(-2c/R) once
//   per (position, pair), in float64 exactly as ops/rotary.cpp builds its tables, and stores
//   them rounded to the compute type (the CPU rounds the same float64 values the same way), so
//   the GPU agrees with the CPU to the last bit with no host-to-device copy inside a step.
//   Every (b, h) row of a position shares these values: evaluating the float64 transcendentals
//   per element instead made them most of the kernel's time.
// - rotary_kernel: one thread per channel pair (c, c + R/2) of one (b, t, h) row, reading the
//   table. Pass-through channels c >= R are copied by the same threads, and so are the heads
//   past rotated_heads (the v part of a packed q, k, v), pair by pair. Consecutive threads take
//   consecutive pairs of consecutive rows, so a warp's loads and stores cover whole rows.
//   Indices are 32-bit when the work fits: 64-bit division by the runtime row sizes costs
//   several times the element's arithmetic.
// - rotary_head_kernel, the fast path when every head is rotated whole (R = D) and a head is 16
//   or 32 contiguous, 16-byte aligned bytes (bf16 at D = 8, the seed model; D = 16; float32 at
//   D = 4, 8): one thread per head, which loads it in one or two 16-byte vectors, rotates its
//   pairs in registers and stores it the same way. A warp then moves 512 or 1024 contiguous bytes
//   a load instead of 2-byte elements, and the per-element index arithmetic is gone.
#include "cuda/kernel_utils.cuh"
#include "cuda/rotary.cuh"

namespace mt::cuda {

namespace {

struct RotaryShape {
  int64_t B, T, H, D, R;
  int64_t rotated_heads;  // heads h >= this are copied
  int64_t xs[4], ys[4];   // x and y strides of b, t, h, d
  float sign;             // +1 forward, -1 backward (rotation by -theta)
};

// cos_t[t * R/2 + c] = cos theta and sin_t[t * R/2 + c] = sin theta, for t < T, c < R/2.
template <typename A>
__global__ void rotary_table_kernel(A* cos_t, A* sin_t, int64_t T, int64_t R, double base,
                                    int64_t position_offset) {
  const int64_t half = R / 2;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < T * half;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = j / half, c = j % half;
    const double inv_freq = ::pow(base, -2.0 * double(c) / double(R));
    const double theta = double(t + position_offset) * inv_freq;
    cos_t[j] = A(::cos(theta));
    sin_t[j] = A(::sin(theta));
  }
}

template <typename T, typename Index>
__global__ void rotary_kernel(T* y, const T* x, const compute_t<T>* cos_t,
                              const compute_t<T>* sin_t, RotaryShape s) {
  using A = compute_t<T>;
  const Index half = Index(s.R / 2), H = Index(s.H), Tn = Index(s.T);
  // Work items per row: the R/2 pairs, then the D - R pass-through channels.
  const Index per_row = half + Index(s.D - s.R);
  const Index total = Index(s.B) * Tn * H * per_row;
  const bool in_place = x == y && s.xs[3] == s.ys[3];
  for (Index j = blockIdx.x * Index(blockDim.x) + threadIdx.x; j < total;
       j += Index(gridDim.x) * blockDim.x) {
    const Index item = j % per_row;
    Index row = j / per_row;  // (b, t, h) row-major
    const Index h = row % H;
    row /= H;
    const Index t = row % Tn;
    const Index b = row / Tn;
    const T* xr = x + b * s.xs[0] + t * s.xs[1] + h * s.xs[2];
    T* yr = y + b * s.ys[0] + t * s.ys[1] + h * s.ys[2];
    if (item < half && h < Index(s.rotated_heads)) {
      const Index c = item;
      const A cs = cos_t[t * half + c], sn = A(s.sign) * sin_t[t * half + c];
      const A a = load(xr, c * s.xs[3]), bv = load(xr, (c + half) * s.xs[3]);
      store(yr, c * s.ys[3], a * cs - bv * sn);
      store(yr, (c + half) * s.ys[3], bv * cs + a * sn);
    } else if (!in_place && item < half) {  // a pair of a copied head
      yr[item * s.ys[3]] = xr[item * s.xs[3]];
      yr[(item + half) * s.ys[3]] = xr[(item + half) * s.xs[3]];
    } else if (!in_place) {
      const int64_t c = s.R + (item - half);
      yr[c * s.ys[3]] = xr[c * s.xs[3]];
    }
  }
}

template <typename T, int D>
__global__ void rotary_head_kernel(T* y, const T* x, const compute_t<T>* cos_t,
                                   const compute_t<T>* sin_t, RotaryShape s) {
  using A = compute_t<T>;
  constexpr int kHalf = D / 2;
  const uint32_t H = uint32_t(s.H), Tn = uint32_t(s.T);
  const uint32_t total = uint32_t(s.B) * Tn * H;
  for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < total; j += gridDim.x * blockDim.x) {
    const uint32_t h = j % H, row = j / H, t = row % Tn, b = row / Tn;
    const auto* src =
        reinterpret_cast<const uint4*>(x + b * s.xs[0] + t * s.xs[1] + int64_t(h) * s.xs[2]);
    auto* dst = reinterpret_cast<uint4*>(y + b * s.ys[0] + t * s.ys[1] + int64_t(h) * s.ys[2]);
    constexpr int kVectors = int(D * sizeof(T)) / 16;
    static_assert(kVectors >= 1 && D * sizeof(T) % 16 == 0, "whole 16-byte vectors");
    uint4 in[kVectors];
#pragma unroll
    for (int i = 0; i < kVectors; ++i) in[i] = src[i];
    if (h < uint32_t(s.rotated_heads)) {
      const T* e = reinterpret_cast<const T*>(in);
      uint4 out[kVectors];
      T* o = reinterpret_cast<T*>(out);
      const A* cs_row = cos_t + t * kHalf;
      const A* sn_row = sin_t + t * kHalf;
#pragma unroll
      for (int c = 0; c < kHalf; ++c) {
        const A cs = cs_row[c], sn = A(s.sign) * sn_row[c];
        const A a = convert_value<A>(e[c]), bv = convert_value<A>(e[c + kHalf]);
        o[c] = convert_value<T>(a * cs - bv * sn);
        o[c + kHalf] = convert_value<T>(bv * cs + a * sn);
      }
#pragma unroll
      for (int i = 0; i < kVectors; ++i) dst[i] = out[i];
    } else if (static_cast<const void*>(src) != static_cast<const void*>(dst)) {
#pragma unroll
      for (int i = 0; i < kVectors; ++i) dst[i] = in[i];
    }
  }
}

// The head width in 16-byte vectors that rotary_head_kernel can take for this call, or 0.
template <typename T>
int head_vectors(const RotaryShape& s, const void* y, const void* x, int64_t work) {
  const int64_t bytes = s.D * int64_t(sizeof(T));
  if (s.R != s.D || (bytes != 16 && bytes != 32) || s.xs[3] != 1 || s.ys[3] != 1) return 0;
  if (s.B * s.T * s.H >= (int64_t(1) << 31) || work == 0) return 0;
  constexpr int64_t kPerVector = 16 / int64_t(sizeof(T));
  for (int i = 0; i < 3; ++i) {
    if (s.xs[i] % kPerVector != 0 || s.ys[i] % kPerVector != 0) return 0;
  }
  const bool aligned =
      reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
  return aligned ? int(bytes / 16) : 0;
}

}  // namespace

void launch_rotary(ElemType type, void* y, const int64_t* y_strides, const void* x,
                   const int64_t* x_strides, int64_t B, int64_t T, int64_t H, int64_t D, int64_t R,
                   int64_t rotated_heads, double base, int64_t position_offset, bool inverse) {
  const int64_t work = B * T * H * (R / 2 + D - R);
  if (work == 0) return;
  NvtxRange range(inverse ? "rotary_bwd" : "rotary_fwd");
  RotaryShape s{B,
                T,
                H,
                D,
                R,
                rotated_heads,
                {x_strides[0], x_strides[1], x_strides[2], x_strides[3]},
                {y_strides[0], y_strides[1], y_strides[2], y_strides[3]},
                inverse ? -1.0f : 1.0f};
  dispatch_float(type, "rotary", [&](auto tag) {
    using Tp = typename decltype(tag)::type;
    using A = compute_t<Tp>;
    const int64_t entries = T * (R / 2);
    // One block holds both tables; released stream-ordered, so the next user of the block
    // queues behind this call's kernels.
    A* cos_t = static_cast<A*>(allocate(sizeof(A) * std::max<int64_t>(1, 2 * entries)));
    A* sin_t = cos_t + entries;
    if (entries > 0) {
      rotary_table_kernel<A>
          <<<grid_for(entries), kThreads, 0, stream()>>>(cos_t, sin_t, T, R, base, position_offset);
      LAUNCH_CHECK();
    }
    // 32-bit work indices when the work fits (the element offsets stay 64-bit products).
    const auto y_ptr = static_cast<Tp*>(y);
    const auto x_ptr = static_cast<const Tp*>(x);
    constexpr int kD16 = int(16 / sizeof(Tp));  // D of a 16-byte head
    const int vectors = head_vectors<Tp>(s, y, x, work);
    const unsigned heads_grid = grid_for(B * T * H);
    if (vectors == 1) {
      rotary_head_kernel<Tp, kD16>
          <<<heads_grid, kThreads, 0, stream()>>>(y_ptr, x_ptr, cos_t, sin_t, s);
    } else if (vectors == 2) {
      rotary_head_kernel<Tp, 2 * kD16>
          <<<heads_grid, kThreads, 0, stream()>>>(y_ptr, x_ptr, cos_t, sin_t, s);
    } else if (work < (int64_t(1) << 31)) {
      rotary_kernel<Tp, uint32_t>
          <<<grid_for(work), kThreads, 0, stream()>>>(y_ptr, x_ptr, cos_t, sin_t, s);
    } else {
      rotary_kernel<Tp, int64_t>
          <<<grid_for(work), kThreads, 0, stream()>>>(y_ptr, x_ptr, cos_t, sin_t, s);
    }
    LAUNCH_CHECK();
    release(cos_t);
  });
}

}  // namespace mt::cuda
