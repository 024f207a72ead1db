// Rotary position embedding on x [B, T, H, D] into y, both through their strides (rotary.cuh).
//
// One thread per channel pair (c, c + R/2) of one (b, t, h) row: it computes theta in float64
// exactly as ops/rotary.cpp builds its tables (base^(-2c/R), then cos/sin in float64), so the
// GPU needs no table upload (no host-to-device copy inside a training step) and agrees with the
// CPU to the last float32 bit. Pass-through channels c >= R are copied by the same threads, and
// so are the heads past rotated_heads (the v part of a packed q, k, v), pair by pair.
#include "cuda/kernel_utils.cuh"
#include "cuda/rotary.cuh"

namespace mt::cuda {

namespace {

struct RotaryShape {
  int64_t B, T, H, D, R;
  int64_t rotated_heads;  // heads h >= this are copied
  int64_t xs[4], ys[4];   // x and y strides of b, t, h, d
  double base;
  int64_t position_offset;
  double sign;  // +1 forward, -1 backward (rotation by -theta)
};

template <typename T>
__global__ void rotary_kernel(T* y, const T* x, RotaryShape s) {
  using A = compute_t<T>;
  const int64_t half = s.R / 2;
  // Work items per row: the R/2 pairs, then the D - R pass-through channels.
  const int64_t per_row = half + (s.D - s.R);
  const int64_t total = s.B * s.T * s.H * per_row;
  const bool in_place = x == y && s.xs[3] == s.ys[3];
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t item = j % per_row;
    int64_t row = j / per_row;  // (b, t, h) row-major
    const int64_t h = row % s.H;
    row /= s.H;
    const int64_t t = row % s.T;
    const int64_t b = row / s.T;
    const T* xr = x + b * s.xs[0] + t * s.xs[1] + h * s.xs[2];
    T* yr = y + b * s.ys[0] + t * s.ys[1] + h * s.ys[2];
    if (item < half && h < s.rotated_heads) {
      const int64_t c = item;
      const double inv_freq = ::pow(s.base, -2.0 * double(c) / double(s.R));
      const double theta = double(t + s.position_offset) * inv_freq;
      const A cs = A(::cos(theta)), sn = A(s.sign * ::sin(theta));
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
                base,
                position_offset,
                inverse ? -1.0 : 1.0};
  dispatch_float(type, "rotary", [&](auto tag) {
    using Tp = typename decltype(tag)::type;
    rotary_kernel<Tp><<<grid_for(work), kThreads, 0, stream()>>>(static_cast<Tp*>(y),
                                                                 static_cast<const Tp*>(x), s);
    LAUNCH_CHECK();
  });
}

}  // namespace mt::cuda
