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
    if (work < (int64_t(1) << 31)) {
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
