#include "ops/rotary.h"

#include <cmath>
#include <type_traits>
#include <vector>

#include "base/compute_type.h"
#include "cuda/rotary.cuh"
#include "ops/cuda_dispatch.h"

namespace mt::ops {
namespace {

// Validates x [B, T, H, D] and the options; returns R, the rotated channel count.
int64_t check_rotary(const Tensor& x, const RotaryOptions& o, const char* op) {
  CHECK(x.dim() == 4, "{}: expected x of shape [B, T, H, D], got {}", op, x.describe());
  CHECK(is_floating(x.dtype()), "{}: expected a floating tensor, got {}", op, x.describe());
  const int64_t D = x.size(3);
  const int64_t R = o.rotary_dim < 0 ? D : o.rotary_dim;
  CHECK(R % 2 == 0 && R <= D, "{}: rotary_dim must be even and <= D = {} for x {}, got {}", op, D,
        x.describe(), R);
  CHECK(o.base > 0, "{}: base must be > 0, got {}", op, o.base);
  CHECK(o.position_offset >= 0, "{}: position_offset must be >= 0, got {}", op, o.position_offset);
  return R;
}

// cos and sin of theta[t, i] = (t + offset) * base^(-2i / R), [T, R/2] row-major, in float64.
void make_tables(int64_t T, int64_t R, double base, int64_t offset, std::vector<double>& cos_t,
                 std::vector<double>& sin_t) {
  const int64_t half = R / 2;
  cos_t.resize(T * half);
  sin_t.resize(T * half);
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(base, -2.0 * double(i) / double(R));
    for (int64_t t = 0; t < T; ++t) {
      const double theta = double(t + offset) * inv_freq;
      cos_t[t * half + i] = std::cos(theta);
      sin_t[t * half + i] = std::sin(theta);
    }
  }
}

// A [B, T, H, D] view as the loops and the kernel take it: its base pointer and four strides.
struct RowsView {
  void* data;
  int64_t strides[4];
};
RowsView rows_of(const Tensor& t) {
  return {t.raw_data(), {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}};
}

// Rotates each pair (c, c + R/2) of every [t, h] row with h < rotated_heads by +theta (forward)
// or -theta (backward, sign = -1):  y[c] = x[c] cos - sign x[c+h] sin,  y[c+h] = x[c+h] cos +
// sign x[c] sin; channels >= R, and every channel of the heads >= rotated_heads, are copied.
// x and y are read and written through their strides, and may be the same view (in place:
// each pair is read before it is written).
template <typename scalar_t>
void rotary_cpu(const RowsView& x, const RowsView& y, const Shape& shape, int64_t R,
                int64_t rotated_heads, const std::vector<double>& cos_t,
                const std::vector<double>& sin_t, int sign) {
  using acc = compute_t<scalar_t>;
  const int64_t B = shape[0], T = shape[1], H = shape[2], D = shape[3], half = R / 2;
  const int64_t *xs = x.strides, *ys = y.strides;
  const scalar_t* xp = static_cast<const scalar_t*>(x.data);
  scalar_t* yp = static_cast<scalar_t*>(y.data);
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const int64_t b = bt / T, t = bt % T;
    for (int64_t h = 0; h < H; ++h) {
      const scalar_t* xr = xp + b * xs[0] + t * xs[1] + h * xs[2];
      scalar_t* yr = yp + b * ys[0] + t * ys[1] + h * ys[2];
      const int64_t pairs = h < rotated_heads ? half : 0;
      for (int64_t c = 0; c < pairs; ++c) {
        const acc cs = static_cast<acc>(cos_t[t * half + c]);
        const acc sn = static_cast<acc>(sign * sin_t[t * half + c]);
        const acc a = static_cast<acc>(xr[c * xs[3]]);
        const acc bv = static_cast<acc>(xr[(c + half) * xs[3]]);
        yr[c * ys[3]] = static_cast<scalar_t>(a * cs - bv * sn);
        yr[(c + half) * ys[3]] = static_cast<scalar_t>(bv * cs + a * sn);
      }
      if (xr == yr && xs[3] == ys[3]) continue;  // in place: the rest is already there
      for (int64_t c = 2 * pairs; c < D; ++c) yr[c * ys[3]] = xr[c * xs[3]];
    }
  }
}

#ifdef MT_WITH_CUDA
// One kernel reads x and writes y through their strides (a view of the fused projection is not
// copied) and computes the angles itself: no table upload.
void rotary_rows_cuda(const Tensor& x, const Tensor& y, int64_t R, int64_t rotated_heads,
                      const RotaryOptions& options, int sign) {
  cuda::launch_rotary(to_elem_type(x.dtype()), y.raw_data(), y.strides().data(), x.raw_data(),
                      x.strides().data(), x.size(0), x.size(1), x.size(2), x.size(3), R,
                      rotated_heads, options.base, options.position_offset, sign < 0);
}
#endif  // MT_WITH_CUDA

// y = rope(x) on the heads h < rotated_heads of x [B, T, H, D], the other heads copied; y has
// x's shape, dtype and device, any layout, and may be x itself (in place).
void rotary_rows(const Tensor& x, const Tensor& y, int64_t R, int64_t rotated_heads,
                 const RotaryOptions& options, int sign, const char* op) {
  MT_RETURN_IF_CUDA(x.is_cuda(), rotary_rows_cuda(x, y, R, rotated_heads, options, sign));
  std::vector<double> cos_t, sin_t;
  make_tables(x.size(1), R, options.base, options.position_offset, cos_t, sin_t);
  MT_DISPATCH_FLOAT(x.dtype(), op, [&] {
    rotary_cpu<scalar_t>(rows_of(x), rows_of(y), x.shape(), R, rotated_heads, cos_t, sin_t, sign);
  });
}

Tensor rotary_impl(const Tensor& x, const RotaryOptions& options, int sign, const char* op) {
  const int64_t R = check_rotary(x, options, op);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  rotary_rows(x, y, R, x.size(2), options, sign, op);
  return y;
}

// The parts of a packed t [B, T, P, H, D] as one [B, T, P H, D] view when its layout allows
// (the parts' stride is H times the heads', as in a dense tensor); else an undefined tensor.
Tensor merge_parts(const Tensor& t) {
  if (t.stride(2) != t.size(3) * t.stride(3)) return Tensor();
  return Tensor::make_view(t.storage(), {t.size(0), t.size(1), t.size(2) * t.size(3), t.size(4)},
                           {t.stride(0), t.stride(1), t.stride(3), t.stride(4)}, t.offset(),
                           t.dtype());
}

// Validates a packed [B, T, 3, H, D] tensor; returns R.
int64_t check_packed(const Tensor& qkv, const RotaryOptions& o, const char* op) {
  CHECK(qkv.dim() == 5 && qkv.size(2) == 3,
        "{}: expected a packed q, k, v tensor of shape [B, T, 3, H, D], got {}", op,
        qkv.describe());
  return check_rotary(qkv.select(2, 0), o, op);
}

}  // namespace

Tensor rotary_forward(const Tensor& x, const RotaryOptions& options) {
  return rotary_impl(x, options, +1, "rotary_forward");
}

// Forward: y = Rot(theta) x per pair, an orthogonal map; its transpose is Rot(-theta), so
// dx = Rot(-theta) dy.
Tensor rotary_backward(const Tensor& dy, const RotaryOptions& options) {
  return rotary_impl(dy, options, -1, "rotary_backward");
}

Tensor rotary_qkv_forward(const Tensor& qkv_in, const RotaryOptions& options) {
  const int64_t R = check_packed(qkv_in, options, "rotary_qkv_forward");
  const Tensor qkv = merge_parts(qkv_in).defined() ? qkv_in : qkv_in.contiguous();
  Tensor y = Tensor::empty(qkv.shape(), qkv.dtype(), qkv.device());
  // One pass over the 3 H heads of each (b, t): the first 2 H (q and k) rotated, v copied.
  rotary_rows(merge_parts(qkv), merge_parts(y), R, 2 * qkv.size(3), options, +1,
              "rotary_qkv_forward");
  return y;
}

// Forward: q, k rotated by theta, v passed through; the backward rotates dq and dk by -theta
// and leaves dv.
void rotary_qkv_backward_(const Tensor& dqkv, const RotaryOptions& options) {
  const int64_t R = check_packed(dqkv, options, "rotary_qkv_backward_");
  const Tensor qk = merge_parts(dqkv.narrow(2, 0, 2));
  if (qk.defined()) {
    rotary_rows(qk, qk, R, qk.size(2), options, -1, "rotary_qkv_backward_");
    return;
  }
  for (int64_t part : {0, 1}) {  // a layout whose parts do not merge: q, then k
    const Tensor t = dqkv.select(2, part);
    rotary_rows(t, t, R, t.size(2), options, -1, "rotary_qkv_backward_");
  }
}

void rotary_tables(int64_t T, int64_t rotary_dim, double base, int64_t position_offset,
                   Tensor* cos_table, Tensor* sin_table) {
  CHECK(T >= 0 && rotary_dim >= 0 && rotary_dim % 2 == 0 && base > 0 && position_offset >= 0,
        "rotary_tables: expected T >= 0, even rotary_dim >= 0, base > 0, offset >= 0; got T {}, "
        "rotary_dim {}, base {}, offset {}",
        T, rotary_dim, base, position_offset);
  std::vector<double> cos_t, sin_t;
  make_tables(T, rotary_dim, base, position_offset, cos_t, sin_t);
  if (cos_table) *cos_table = Tensor::from_doubles(cos_t, {T, rotary_dim / 2}, kFloat64);
  if (sin_table) *sin_table = Tensor::from_doubles(sin_t, {T, rotary_dim / 2}, kFloat64);
}

}  // namespace mt::ops
