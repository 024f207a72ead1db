// The optimizer's arithmetic (see optim_ops.h): a plain CPU loop, the reference, and on the GPU
// one fused multi-tensor kernel (cuda/optim_ops.cuh) plus device-side counters, global norm and
// clip coefficient.
#include "ops/optim_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

// Its adam_bias_correction is the formula the CPU loop and the kernel share.
#include "cuda/optim_ops.cuh"
#include "ops/cuda_dispatch.h"
#include "ops/elementwise.h"
#include "ops/strided_loop.h"

namespace mt::ops {

namespace {

void check_lists(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& m, const std::vector<Tensor>& v, const Tensor& lr) {
  CHECK(grads.size() == params.size() && m.size() == params.size() && v.size() == params.size(),
        "adamw_step_: {} params, {} grads, {} exp_avg, {} exp_avg_sq: expected equal counts",
        params.size(), grads.size(), m.size(), v.size());
  CHECK(lr.defined() && lr.numel() == 1 && lr.dtype() == kFloat32,
        "adamw_step_: lr must be a one-element float32 tensor, got {}",
        lr.defined() ? lr.describe() : "undefined");
  for (size_t k = 0; k < params.size(); ++k) {
    for (const Tensor* t : {&params[k], &grads[k], &m[k], &v[k]}) {
      CHECK(t->defined() && t->dtype() == kFloat32 && t->is_contiguous() &&
                t->shape() == params[k].shape() && t->device() == params[k].device(),
            "adamw_step_: tensor {}: expected contiguous float32 {} on {}, got {}", k,
            shape_str(params[k].shape()), params[k].device().str(),
            t->defined() ? t->describe() : "undefined");
    }
    CHECK(lr.device() == params[k].device(), "adamw_step_: lr on {} but params on {}",
          lr.device().str(), params[k].device().str());
  }
}

// A one-element tensor of `dtype` on `device`, or undefined when `optional`.
void check_scalar(const char* op, const char* what, const Tensor& t, DType dtype,
                  const Device& device, bool optional) {
  if (optional && !t.defined()) return;
  CHECK(t.defined() && t.numel() == 1 && t.dtype() == dtype && t.device() == device,
        "{}: {} must be a one-element {} tensor on {}, got {}", op, what, dtype_name(dtype),
        device.str(), t.defined() ? t.describe() : "undefined");
}

void adamw_cpu(std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               std::vector<Tensor>& m, std::vector<Tensor>& v, float lr, float bc1, float bc2,
               const AdamWHyper& h, float scale) {
  for (size_t k = 0; k < params.size(); ++k) {
    float* p = params[k].data<float>();
    const float* g = grads[k].data<float>();
    float* mk = m[k].data<float>();
    float* vk = v[k].data<float>();
    const int64_t n = params[k].numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] * scale;
      float pi = p[i];
      pi -= lr * h.weight_decay * pi;
      mk[i] = h.beta1 * mk[i] + (1.0f - h.beta1) * gi;
      vk[i] = h.beta2 * vk[i] + (1.0f - h.beta2) * gi * gi;
      pi -= lr * (mk[i] / bc1) / (std::sqrt(vk[i] / bc2) + h.eps);
      p[i] = pi;
    }
  }
}

// One tensor's sum of squares, in float64 over the threads. (OpenMP pragmas cannot sit inside
// the MT_DISPATCH_FLOAT macro's argument, hence this small function.)
template <typename T>
double parallel_sum_squares(const T* p, int64_t n) {
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n >= detail::kParallelGrain)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * static_cast<double>(p[i]);
  return s;
}

#ifdef MT_WITH_CUDA
// The kernel takes the whole list in one launch (kMaxAdamTensors a launch) and reads lr, the
// scale, the step count and the guard from device memory.
void adamw_step_cuda(std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                     std::vector<Tensor>& exp_avg, std::vector<Tensor>& exp_avg_sq,
                     const Tensor& lr, const Tensor& step_count, const AdamWHyper& hyper,
                     const Tensor& grad_scale, const Tensor& nonfinite_guard) {
  std::vector<cuda::AdamWTensor> list;
  for (size_t k = 0; k < params.size(); ++k) {
    list.push_back({params[k].data<float>(), grads[k].data<float>(), exp_avg[k].data<float>(),
                    exp_avg_sq[k].data<float>(), params[k].numel()});
  }
  const cuda::AdamWScalars s{hyper.beta1, hyper.beta2, hyper.eps, hyper.weight_decay};
  cuda::launch_adamw_step(list.data(), int(list.size()), s, lr.data<float>(),
                          grad_scale.defined() ? grad_scale.data<float>() : nullptr,
                          step_count.data<int64_t>(),
                          nonfinite_guard.defined() ? nonfinite_guard.data<float>() : nullptr);
}

void optimizer_counters_advance_cuda(Tensor& counters, const Tensor& nonfinite_guard) {
  const float* guard = nonfinite_guard.defined() ? nonfinite_guard.data<float>() : nullptr;
  cuda::launch_optimizer_counters_advance(counters.data<int64_t>(), guard);
}

// The kernel reads float32: other dtypes are converted first.
Tensor grad_global_norm_cuda(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> keep;
  std::vector<cuda::NormTensor> list;
  for (const Tensor& t : tensors) {
    keep.push_back(t.dtype() == kFloat32 ? t.contiguous() : t.to(kFloat32).contiguous());
    list.push_back({keep.back().data<float>(), keep.back().numel()});
  }
  Tensor norm = Tensor::empty({}, kFloat32, tensors[0].device());
  cuda::launch_grad_global_norm(list.data(), int(list.size()), norm.data<float>());
  return norm;
}

Tensor clip_coefficient_cuda(const Tensor& norm, float max_norm) {
  Tensor coef = Tensor::empty({}, kFloat32, norm.device());
  const Tensor n = norm.contiguous();
  cuda::launch_clip_coefficient(n.data<float>(), max_norm, coef.data<float>());
  return coef;
}
#endif  // MT_WITH_CUDA

}  // namespace

void adamw_step_(std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 std::vector<Tensor>& exp_avg, std::vector<Tensor>& exp_avg_sq, const Tensor& lr,
                 const Tensor& step_count, const AdamWHyper& hyper, const Tensor& grad_scale,
                 const Tensor& nonfinite_guard) {
  check_lists(params, grads, exp_avg, exp_avg_sq, lr);
  check_scalar("adamw_step_", "step_count", step_count, kInt64, lr.device(), false);
  check_scalar("adamw_step_", "grad_scale", grad_scale, kFloat32, lr.device(), true);
  check_scalar("adamw_step_", "nonfinite_guard", nonfinite_guard, kFloat32, lr.device(), true);
  MT_RETURN_IF_CUDA(lr.is_cuda(), adamw_step_cuda(params, grads, exp_avg, exp_avg_sq, lr,
                                                  step_count, hyper, grad_scale, nonfinite_guard));
  // The CPU reads its scalars directly: the same decisions the kernel takes on the device.
  if (nonfinite_guard.defined() && !std::isfinite(nonfinite_guard.item())) return;
  const int64_t count = *step_count.data<int64_t>();
  CHECK(count >= 0, "adamw_step_: step_count (updates taken) must be >= 0, got {}", count);
  const float bc1 = cuda::adam_bias_correction(hyper.beta1, count + 1);
  const float bc2 = cuda::adam_bias_correction(hyper.beta2, count + 1);
  const float scale = grad_scale.defined() ? float(grad_scale.item()) : 1.0f;
  adamw_cpu(params, grads, exp_avg, exp_avg_sq, float(lr.item()), bc1, bc2, hyper, scale);
}

void optimizer_counters_advance_(Tensor& counters, const Tensor& nonfinite_guard) {
  CHECK(counters.defined() && counters.dtype() == kInt64 && counters.is_contiguous() &&
            counters.shape() == Shape{kNumOptimCounters},
        "optimizer_counters_advance_: expected contiguous int64 [{}] counters, got {}",
        int64_t(kNumOptimCounters), counters.defined() ? counters.describe() : "undefined");
  check_scalar("optimizer_counters_advance_", "nonfinite_guard", nonfinite_guard, kFloat32,
               counters.device(), true);
  MT_RETURN_IF_CUDA(counters.is_cuda(), optimizer_counters_advance_cuda(counters, nonfinite_guard));
  int64_t* c = counters.data<int64_t>();
  if (!nonfinite_guard.defined() || std::isfinite(nonfinite_guard.item())) {
    c[kStepsApplied] += 1;
    c[kSkippedInARow] = 0;
  } else {
    c[kSkippedTotal] += 1;
    c[kSkippedInARow] += 1;
  }
}

Tensor finite_mask(const Tensor& x) {
  CHECK(x.defined() && (x.dtype() == kFloat32 || x.dtype() == kBFloat16 || x.dtype() == kFloat64),
        "finite_mask: expected a floating tensor, got {}",
        x.defined() ? x.describe() : "undefined");
  // NaN fails both comparisons and +-Inf lies outside [-max, max]. The bound is the largest
  // finite value of the type the comparison runs in (float for float32 and bf16).
  const double max = x.dtype() == kFloat64 ? std::numeric_limits<double>::max()
                                           : double(std::numeric_limits<float>::max());
  return in_range(x, -max, max);
}

Tensor grad_global_norm(const std::vector<Tensor>& grads) {
  double ss = 0.0;
  for (size_t k = 0; k < grads.size(); ++k) {
    const Tensor& t = grads[k];
    CHECK(t.defined(), "grad_global_norm: tensor {} is undefined", k);
    MT_RETURN_IF_CUDA(t.is_cuda(), grad_global_norm_cuda(grads));
    const Tensor c = t.contiguous();
    const int64_t n = c.numel();
    MT_DISPATCH_FLOAT(c.dtype(), "grad_global_norm",
                      [&] { ss += parallel_sum_squares(c.data<scalar_t>(), n); });
  }
  return Tensor::scalar(std::sqrt(ss), kFloat32);
}

Tensor clip_coefficient(const Tensor& norm, float max_norm) {
  CHECK(norm.defined() && norm.numel() == 1 && norm.dtype() == kFloat32,
        "clip_coefficient: expected a one-element float32 norm, got {}",
        norm.defined() ? norm.describe() : "undefined");
  CHECK(max_norm > 0, "clip_coefficient: max_norm must be > 0, got {}", max_norm);
  MT_RETURN_IF_CUDA(norm.is_cuda(), clip_coefficient_cuda(norm, max_norm));
  const float n = float(norm.item());
  return Tensor::scalar(std::min(1.0f, max_norm / (n + 1e-6f)), kFloat32);
}

}  // namespace mt::ops
