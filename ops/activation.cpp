#include "ops/activation.h"

#include <cmath>
#include <type_traits>

#include "base/compute_type.h"
#include "cuda/activation.cuh"
#include "ops/cuda_dispatch.h"

namespace mt::ops {
namespace {

// sqrt(2 / pi), 1 / sqrt(2) and 1 / sqrt(2 pi), to float64 precision.
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kCubic = 0.044715;  // the tanh approximation's cubic coefficient

// gelu(x) and its derivative in the compute type `acc`.
template <typename acc>
acc gelu_value(acc x, GeluApprox approx) {
  if (approx == GeluApprox::kTanh) {
    const acc u = acc(kSqrt2OverPi) * (x + acc(kCubic) * x * x * x);
    return acc(0.5) * x * (acc(1) + std::tanh(u));
  }
  return acc(0.5) * x * (acc(1) + std::erf(x * acc(kInvSqrt2)));
}

// tanh form: d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u',
//            u = sqrt(2/pi) (x + 0.044715 x^3),  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
// erf form:  d/dx [x Phi(x)] = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
template <typename acc>
acc gelu_derivative(acc x, GeluApprox approx) {
  if (approx == GeluApprox::kTanh) {
    const acc u = acc(kSqrt2OverPi) * (x + acc(kCubic) * x * x * x);
    const acc du = acc(kSqrt2OverPi) * (acc(1) + acc(3 * kCubic) * x * x);
    const acc t = std::tanh(u);
    return acc(0.5) * (acc(1) + t) + acc(0.5) * x * (acc(1) - t * t) * du;
  }
  const acc cdf = acc(0.5) * (acc(1) + std::erf(x * acc(kInvSqrt2)));
  return cdf + x * acc(kInvSqrt2Pi) * std::exp(acc(-0.5) * x * x);
}

template <typename scalar_t>
void gelu_cpu(const Tensor& x, Tensor& y, GeluApprox approx) {
  using acc = compute_t<scalar_t>;
  const scalar_t* xp = x.data<scalar_t>();
  scalar_t* yp = y.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < x.numel(); ++i) {
    yp[i] = static_cast<scalar_t>(gelu_value(static_cast<acc>(xp[i]), approx));
  }
}

template <typename scalar_t>
void gelu_backward_cpu(const Tensor& dy, const Tensor& x, Tensor& dx, GeluApprox approx) {
  using acc = compute_t<scalar_t>;
  const scalar_t* dyp = dy.data<scalar_t>();
  const scalar_t* xp = x.data<scalar_t>();
  scalar_t* dxp = dx.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < x.numel(); ++i) {
    const acc g = static_cast<acc>(dyp[i]);
    dxp[i] = static_cast<scalar_t>(g * gelu_derivative(static_cast<acc>(xp[i]), approx));
  }
}

#ifdef MT_WITH_CUDA
Tensor gelu_cuda(const Tensor& x_in, GeluApprox approx) {
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  cuda::launch_gelu_forward(to_elem_type(x.dtype()), y.raw_data(), x.raw_data(), x.numel(),
                            approx == GeluApprox::kTanh);
  return y;
}

Tensor gelu_backward_cuda(const Tensor& dy_in, const Tensor& x_in, GeluApprox approx) {
  const Tensor x = x_in.contiguous(), dy = dy_in.contiguous();
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  cuda::launch_gelu_backward(to_elem_type(x.dtype()), dx.raw_data(), dy.raw_data(), x.raw_data(),
                             x.numel(), approx == GeluApprox::kTanh);
  return dx;
}

// Each element is read and then written by the same thread: in place is safe.
void gelu_backward_cuda_(Tensor& dy, const Tensor& x_in, GeluApprox approx) {
  const Tensor x = x_in.contiguous();
  cuda::launch_gelu_backward(to_elem_type(x.dtype()), dy.raw_data(), dy.raw_data(), x.raw_data(),
                             x.numel(), approx == GeluApprox::kTanh);
}
#endif  // MT_WITH_CUDA

}  // namespace

Tensor gelu(const Tensor& x_in, GeluApprox approx) {
  CHECK(is_floating(x_in.dtype()), "gelu: expected a floating tensor, got {}", x_in.describe());
  MT_RETURN_IF_CUDA(x_in.is_cuda(), gelu_cuda(x_in, approx));
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  MT_DISPATCH_FLOAT(x.dtype(), "gelu", [&] { gelu_cpu<scalar_t>(x, y, approx); });
  return y;
}

namespace {
void check_gelu_backward_args(const Tensor& dy_in, const Tensor& x_in) {
  CHECK(dy_in.shape() == x_in.shape() && dy_in.dtype() == x_in.dtype(),
        "gelu_backward: dy and x must have the same shape and dtype, got dy {} and x {}",
        dy_in.describe(), x_in.describe());
  CHECK(dy_in.device() == x_in.device(), "gelu_backward: dy on {} but x on {}",
        dy_in.device().str(), x_in.device().str());
  CHECK(is_floating(x_in.dtype()), "gelu_backward: expected a floating tensor, got {}",
        x_in.describe());
}
}  // namespace

Tensor gelu_backward(const Tensor& dy_in, const Tensor& x_in, GeluApprox approx) {
  check_gelu_backward_args(dy_in, x_in);
  MT_RETURN_IF_CUDA(x_in.is_cuda(), gelu_backward_cuda(dy_in, x_in, approx));
  const Tensor dy = dy_in.contiguous(), x = x_in.contiguous();
  Tensor dx = Tensor::empty(x.shape(), x.dtype());
  MT_DISPATCH_FLOAT(x.dtype(), "gelu_backward",
                    [&] { gelu_backward_cpu<scalar_t>(dy, x, dx, approx); });
  return dx;
}

void gelu_backward_(Tensor& dy, const Tensor& x_in, GeluApprox approx) {
  check_gelu_backward_args(dy, x_in);
  CHECK(dy.is_contiguous(), "gelu_backward_: dy must be contiguous (it is written in place), got {}",
        dy.describe());
  MT_RETURN_IF_CUDA(dy.is_cuda(), gelu_backward_cuda_(dy, x_in, approx));
  const Tensor x = x_in.contiguous();
  MT_DISPATCH_FLOAT(x.dtype(), "gelu_backward_",
                    [&] { gelu_backward_cpu<scalar_t>(dy, x, dy, approx); });
}

}  // namespace mt::ops
