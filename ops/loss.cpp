#include "ops/loss.h"

#include <cmath>
#include <type_traits>
#include <vector>

#include "base/compute_type.h"
#include "cuda/loss.cuh"
#include "ops/cuda_dispatch.h"

namespace mt::ops {
namespace {

DType loss_dtype(DType in) { return in == kFloat64 ? kFloat64 : kFloat32; }

void check_pair(const Tensor& pred, const Tensor& target, const char* op) {
  CHECK(pred.shape() == target.shape() && pred.dtype() == target.dtype(),
        "{}: pred and target must have the same shape and dtype, got pred {} and target {}", op,
        pred.describe(), target.describe());
  CHECK(pred.device() == target.device(), "{}: pred on {} but target on {}", op,
        pred.device().str(), target.device().str());
  CHECK(is_floating(pred.dtype()), "{}: expected floating tensors, got {}", op, pred.describe());
}

// Checks pred [..., F] against weight ([F] or undefined); returns F.
int64_t check_weight(const Tensor& pred, const Tensor& weight, const char* op) {
  CHECK(pred.dim() >= 1, "{}: expected pred of shape [..., F], got {}", op, pred.describe());
  const int64_t F = pred.size(-1);
  CHECK(F > 0 && pred.numel() > 0, "{}: empty input {}", op, pred.describe());
  if (weight.defined()) {
    CHECK(weight.dim() == 1 && weight.size(0) == F && is_floating(weight.dtype()),
          "{}: expected a floating weight of shape [{}] for pred {}, got {}", op, F,
          pred.describe(), weight.describe());
  }
  return F;
}

// Per-feature weights as float64 on the host (all ones when `weight` is undefined).
std::vector<double> weight_values(const Tensor& weight, int64_t F) {
  return weight.defined() ? weight.to_vector<double>() : std::vector<double>(F, 1.0);
}

// The upstream gradient of a scalar loss as a host number.
double upstream(const Tensor& dloss, const char* op) {
  CHECK(dloss.numel() == 1, "{}: expected a one-element dloss, got {}", op, dloss.describe());
  return dloss.item();
}

// l(d) = |d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta, and |d| for beta = 0 (the limit).
template <typename acc>
acc smooth_l1(acc d, acc beta) {
  const acc a = std::abs(d);
  return a < beta ? acc(0.5) * d * d / beta : a - acc(0.5) * beta;
}

// l'(d) = d / beta inside the quadratic zone, sign(d) outside (0 at d = 0 when beta = 0).
template <typename acc>
acc smooth_l1_grad(acc d, acc beta) {
  if (std::abs(d) < beta) return d / beta;
  return d > 0 ? acc(1) : (d < 0 ? acc(-1) : acc(0));
}

template <typename scalar_t>
double smooth_l1_sum(const Tensor& pred, const Tensor& target, float beta,
                     const std::vector<double>& w) {
  using acc = compute_t<scalar_t>;
  const int64_t F = static_cast<int64_t>(w.size()), n = pred.numel();
  const scalar_t *p = pred.data<scalar_t>(), *t = target.data<scalar_t>();
  double total = 0;
  // Reduction in a fixed order (single thread): the loss is bitwise reproducible. At the
  // model's size (32 x 2047 x 5 = 327k elements) this is well under a millisecond.
  for (int64_t i = 0; i < n; ++i) {
    const acc d = static_cast<acc>(p[i]) - static_cast<acc>(t[i]);
    total += w[i % F] * double(smooth_l1(d, static_cast<acc>(beta)));
  }
  return total;
}

template <typename scalar_t>
void smooth_l1_backward_cpu(const Tensor& pred, const Tensor& target, float beta,
                            const std::vector<double>& w, double scale, Tensor& dpred) {
  using acc = compute_t<scalar_t>;
  const int64_t F = static_cast<int64_t>(w.size()), n = pred.numel();
  const scalar_t *p = pred.data<scalar_t>(), *t = target.data<scalar_t>();
  scalar_t* g = dpred.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const acc d = static_cast<acc>(p[i]) - static_cast<acc>(t[i]);
    const acc coef = static_cast<acc>(scale * w[i % F]);
    g[i] = static_cast<scalar_t>(coef * smooth_l1_grad(d, static_cast<acc>(beta)));
  }
}

template <typename scalar_t>
double squared_error_sum(const Tensor& pred, const Tensor& target) {
  using acc = compute_t<scalar_t>;
  const scalar_t *p = pred.data<scalar_t>(), *t = target.data<scalar_t>();
  double total = 0;
  const int64_t n = pred.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<acc>(p[i]) - static_cast<acc>(t[i]);
    total += d * d;
  }
  return total;
}

template <typename scalar_t>
void mse_backward_cpu(const Tensor& pred, const Tensor& target, double scale, Tensor& dpred) {
  using acc = compute_t<scalar_t>;
  const scalar_t *p = pred.data<scalar_t>(), *t = target.data<scalar_t>();
  scalar_t* g = dpred.data<scalar_t>();
  const acc coef = static_cast<acc>(scale);
  const int64_t n = pred.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    g[i] = static_cast<scalar_t>(coef * (static_cast<acc>(p[i]) - static_cast<acc>(t[i])));
  }
}

#ifdef MT_WITH_CUDA
// One kernel pair serves both losses: beta < 0 selects MSE. The weight [F] goes to the kernel
// as float64 (or null: all ones).
Tensor weight_f64(const Tensor& weight) {
  return weight.defined() ? weight.to(kFloat64).contiguous() : Tensor();
}

Tensor loss_forward_cuda(const Tensor& pred_in, const Tensor& target_in, const Tensor& weight,
                         float beta) {
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const Tensor w = weight_f64(weight);
  const int64_t F = beta < 0 || pred.dim() == 0 ? 1 : pred.size(-1);
  const int64_t N = pred.numel() / F;
  Tensor loss = Tensor::empty({}, loss_dtype(pred.dtype()), pred.device());
  cuda::launch_loss_forward(to_elem_type(pred.dtype()), loss.raw_data(), pred.raw_data(),
                            target.raw_data(), w.defined() ? w.data<double>() : nullptr, N, F,
                            beta);
  return loss;
}

Tensor loss_backward_cuda(const Tensor& dloss, const Tensor& pred_in, const Tensor& target_in,
                          const Tensor& weight, float beta) {
  CHECK(dloss.numel() == 1, "loss backward: expected a one-element dloss, got {}",
        dloss.describe());
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const Tensor w = weight_f64(weight);
  // dloss stays on the device: a float64 copy of it, no item() and no host sync.
  const Tensor g = dloss.to(pred.device()).to(kFloat64).contiguous();
  const int64_t F = beta < 0 || pred.dim() == 0 ? 1 : pred.size(-1);
  const int64_t N = pred.numel() / F;
  Tensor dpred = Tensor::empty(pred.shape(), pred.dtype(), pred.device());
  cuda::launch_loss_backward(to_elem_type(pred.dtype()), dpred.raw_data(), g.data<double>(),
                             pred.raw_data(), target.raw_data(),
                             w.defined() ? w.data<double>() : nullptr, N, F, beta);
  return dpred;
}
#endif  // MT_WITH_CUDA

}  // namespace

Tensor smooth_l1_loss(const Tensor& pred_in, const Tensor& target_in, float beta,
                      const Tensor& weight) {
  check_pair(pred_in, target_in, "smooth_l1_loss");
  CHECK(beta >= 0, "smooth_l1_loss: beta must be >= 0, got {}", beta);
  const int64_t F = check_weight(pred_in, weight, "smooth_l1_loss");
  MT_RETURN_IF_CUDA(pred_in.is_cuda(), loss_forward_cuda(pred_in, target_in, weight, beta));
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const std::vector<double> w = weight_values(weight, F);
  const double total = MT_DISPATCH_FLOAT(pred.dtype(), "smooth_l1_loss", [&] {
    return smooth_l1_sum<scalar_t>(pred, target, beta, w);
  });
  const int64_t positions = pred.numel() / F;
  return Tensor::scalar(total / double(positions), loss_dtype(pred.dtype()));
}

// Forward: loss = (1/N) sum_n sum_f w[f] l(pred[n,f] - target[n,f])
//   =>  dpred[n,f] = dloss * w[f] * l'(pred[n,f] - target[n,f]) / N
Tensor smooth_l1_loss_backward(const Tensor& dloss, const Tensor& pred_in, const Tensor& target_in,
                               float beta, const Tensor& weight) {
  check_pair(pred_in, target_in, "smooth_l1_loss_backward");
  CHECK(beta >= 0, "smooth_l1_loss_backward: beta must be >= 0, got {}", beta);
  const int64_t F = check_weight(pred_in, weight, "smooth_l1_loss_backward");
  MT_RETURN_IF_CUDA(pred_in.is_cuda(), loss_backward_cuda(dloss, pred_in, target_in, weight, beta));
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const std::vector<double> w = weight_values(weight, F);
  const int64_t positions = pred.numel() / F;
  const double scale = upstream(dloss, "smooth_l1_loss_backward") / double(positions);
  Tensor dpred = Tensor::empty(pred.shape(), pred.dtype());
  MT_DISPATCH_FLOAT(pred.dtype(), "smooth_l1_loss_backward",
                    [&] { smooth_l1_backward_cpu<scalar_t>(pred, target, beta, w, scale, dpred); });
  return dpred;
}

Tensor mse_loss(const Tensor& pred_in, const Tensor& target_in) {
  check_pair(pred_in, target_in, "mse_loss");
  CHECK(pred_in.numel() > 0, "mse_loss: empty input {}", pred_in.describe());
  MT_RETURN_IF_CUDA(pred_in.is_cuda(), loss_forward_cuda(pred_in, target_in, Tensor(), -1.0f));
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const double total = MT_DISPATCH_FLOAT(pred.dtype(), "mse_loss",
                                         [&] { return squared_error_sum<scalar_t>(pred, target); });
  return Tensor::scalar(total / double(pred.numel()), loss_dtype(pred.dtype()));
}

// Forward: loss = (1/n) sum_i (pred_i - target_i)^2  =>  dpred_i = dloss * 2 (pred_i - target_i) /
// n
Tensor mse_loss_backward(const Tensor& dloss, const Tensor& pred_in, const Tensor& target_in) {
  check_pair(pred_in, target_in, "mse_loss_backward");
  CHECK(pred_in.numel() > 0, "mse_loss_backward: empty input {}", pred_in.describe());
  MT_RETURN_IF_CUDA(pred_in.is_cuda(),
                    loss_backward_cuda(dloss, pred_in, target_in, Tensor(), -1.0f));
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const double scale = 2.0 * upstream(dloss, "mse_loss_backward") / double(pred.numel());
  Tensor dpred = Tensor::empty(pred.shape(), pred.dtype());
  MT_DISPATCH_FLOAT(pred.dtype(), "mse_loss_backward",
                    [&] { mse_backward_cpu<scalar_t>(pred, target, scale, dpred); });
  return dpred;
}

}  // namespace mt::ops
