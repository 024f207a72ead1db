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

// Rotates each pair (c, c + R/2) of every [t, h] row by +theta (forward) or -theta (backward,
// sign = -1):  y[c] = x[c] cos - sign x[c+h] sin,  y[c+h] = x[c+h] cos + sign x[c] sin.
template <typename scalar_t>
void rotary_cpu(const Tensor& x, Tensor& y, int64_t R, const std::vector<double>& cos_t,
                const std::vector<double>& sin_t, int sign) {
  using acc = compute_t<scalar_t>;
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = R / 2;
  const scalar_t* xp = x.data<scalar_t>();
  scalar_t* yp = y.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const int64_t t = bt % T;
    for (int64_t h = 0; h < H; ++h) {
      const scalar_t* xr = xp + (bt * H + h) * D;
      scalar_t* yr = yp + (bt * H + h) * D;
      for (int64_t c = 0; c < half; ++c) {
        const acc cs = static_cast<acc>(cos_t[t * half + c]);
        const acc sn = static_cast<acc>(sign * sin_t[t * half + c]);
        const acc a = static_cast<acc>(xr[c]), b = static_cast<acc>(xr[c + half]);
        yr[c] = static_cast<scalar_t>(a * cs - b * sn);
        yr[c + half] = static_cast<scalar_t>(b * cs + a * sn);
      }
      for (int64_t c = R; c < D; ++c) yr[c] = xr[c];
    }
  }
}

#ifdef MT_WITH_CUDA
// The kernel reads x [B, T, H, D] through its strides (a q or k view of the fused projection is
// not copied) and computes the angles itself: no table upload.
Tensor rotary_cuda(const Tensor& x, int64_t R, const RotaryOptions& options, int sign) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  cuda::launch_rotary(to_elem_type(x.dtype()), y.raw_data(), x.raw_data(), x.strides().data(),
                      x.size(0), x.size(1), x.size(2), x.size(3), R, options.base,
                      options.position_offset, sign < 0);
  return y;
}
#endif  // MT_WITH_CUDA

Tensor rotary_impl(const Tensor& x_in, const RotaryOptions& options, int sign, const char* op) {
  const int64_t R = check_rotary(x_in, options, op);
  MT_RETURN_IF_CUDA(x_in.is_cuda(), rotary_cuda(x_in, R, options, sign));
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  std::vector<double> cos_t, sin_t;
  make_tables(x.size(1), R, options.base, options.position_offset, cos_t, sin_t);
  MT_DISPATCH_FLOAT(x.dtype(), op, [&] { rotary_cpu<scalar_t>(x, y, R, cos_t, sin_t, sign); });
  return y;
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
