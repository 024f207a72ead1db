#include "ops/rmsnorm.h"

#include <cmath>
#include <type_traits>
#include <vector>

#include "base/compute_type.h"
#include "cuda/rmsnorm.cuh"
#include "ops/cuda_dispatch.h"
#include "ops/elementwise.h"
#include "ops/norm_checks.h"

namespace mt::ops {
namespace {

template <typename acc>
std::vector<acc> weights_as(const Tensor& w) {
  std::vector<acc> out;
  for (double v : w.to_vector<double>()) out.push_back(static_cast<acc>(v));
  return out;
}

template <typename scalar_t>
void rmsnorm_forward_cpu(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) {
  using acc = compute_t<scalar_t>;
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  const std::vector<acc> wv = weights_as<acc>(w);
  const scalar_t* xp = x.data<scalar_t>();
  scalar_t* yp = y.data<scalar_t>();
  acc* rp = rstd.data<acc>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const scalar_t* xr = xp + n * C;
    double sum_sq = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double v = static_cast<acc>(xr[c]);
      sum_sq += v * v;
    }
    // The rounded rstd is both what y uses and what backward reads: the two stay consistent.
    const acc r = static_cast<acc>(1.0 / std::sqrt(sum_sq / double(C) + double(eps)));
    rp[n] = r;
    for (int64_t c = 0; c < C; ++c) {
      yp[n * C + c] = static_cast<scalar_t>(static_cast<acc>(xr[c]) * r * wv[c]);
    }
  }
}

// Forward, per row n:  y[c] = x[c] r w[c],  r = (sum_k x[k]^2 / C + eps)^(-1/2).
// dr/dx[c] = -r^3 x[c] / C, so
//   dx[c] = dy[c] w[c] r - x[c] r^3 / C * sum_k dy[k] w[k] x[k]
//   dw[c] = sum_n dy[n,c] x[n,c] r_n
template <typename scalar_t>
void rmsnorm_dx_cpu(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                    Tensor& dx) {
  using acc = compute_t<scalar_t>;
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  const std::vector<acc> wv = weights_as<acc>(w);
  const scalar_t *dyp = dy.data<scalar_t>(), *xp = x.data<scalar_t>();
  const acc* rp = rstd.data<acc>();
  scalar_t* dxp = dx.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const scalar_t *g = dyp + n * C, *xr = xp + n * C;
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) {
      dot += double(static_cast<acc>(g[c]) * wv[c]) * double(static_cast<acc>(xr[c]));
    }
    const acc r = rp[n], coef = static_cast<acc>(double(r) * r * r * dot / double(C));
    for (int64_t c = 0; c < C; ++c) {
      const acc v = static_cast<acc>(g[c]) * wv[c] * r - static_cast<acc>(xr[c]) * coef;
      dxp[n * C + c] = static_cast<scalar_t>(v);
    }
  }
}

// dw is a reduction over rows: one column per iteration, rows summed in order, so the result
// does not depend on the thread count.
template <typename scalar_t>
std::vector<double> rmsnorm_dw_cpu(const Tensor& dy, const Tensor& x, const Tensor& rstd) {
  using acc = compute_t<scalar_t>;
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  const scalar_t *dyp = dy.data<scalar_t>(), *xp = x.data<scalar_t>();
  const acc* rp = rstd.data<acc>();
  std::vector<double> dw(C, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      s += double(static_cast<acc>(dyp[n * C + c])) * double(static_cast<acc>(xp[n * C + c])) *
           double(rp[n]);
    }
    dw[c] = s;
  }
  return dw;
}

#ifdef MT_WITH_CUDA
Tensor rmsnorm_forward_cuda(const Tensor& x_in, const Tensor& w_in, float eps, Tensor* rstd_out) {
  const Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor rstd = Tensor::empty({N}, norm_stat_dtype(x.dtype()), x.device());
  cuda::launch_rmsnorm_forward(to_elem_type(x.dtype()), to_elem_type(w.dtype()), y.raw_data(),
                               rstd.raw_data(), x.raw_data(), w.raw_data(), N, C, eps);
  if (rstd_out) *rstd_out = rstd;
  return y;
}

Tensor add_rmsnorm_forward_cuda(const Tensor& x_in, const Tensor& r_in, const Tensor& w_in,
                                float eps, Tensor* h_out, Tensor* rstd_out) {
  const Tensor x = x_in.contiguous(), r = r_in.contiguous(), w = w_in.contiguous();
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor h = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor rstd = Tensor::empty({N}, norm_stat_dtype(x.dtype()), x.device());
  cuda::launch_add_rmsnorm_forward(to_elem_type(x.dtype()), to_elem_type(w.dtype()), y.raw_data(),
                                   h.raw_data(), rstd.raw_data(), x.raw_data(), r.raw_data(),
                                   w.raw_data(), N, C, eps);
  *h_out = h;
  *rstd_out = rstd;
  return y;
}

void rmsnorm_backward_cuda(const Tensor& dy_in, const Tensor& x_in, const Tensor& w_in,
                           const Tensor& rstd_in, Tensor* dx, Tensor* dw) {
  const Tensor dy = dy_in.contiguous(), x = x_in.contiguous(), w = w_in.contiguous(),
               rstd = rstd_in.contiguous();
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  if (dx) *dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (dw) *dw = Tensor::empty(w.shape(), w.dtype(), w.device());
  cuda::launch_rmsnorm_backward(to_elem_type(x.dtype()), to_elem_type(w.dtype()),
                                dx ? dx->raw_data() : nullptr, dw ? dw->raw_data() : nullptr,
                                dy.raw_data(), x.raw_data(), w.raw_data(), rstd.raw_data(), N, C);
}
#endif  // MT_WITH_CUDA

}  // namespace

Tensor rmsnorm_forward(const Tensor& x_in, const Tensor& w, float eps, Tensor* rstd_out) {
  const int64_t C = check_norm_inputs(x_in, w, "rmsnorm_forward");
  CHECK(eps >= 0, "rmsnorm_forward: eps must be >= 0, got {}", eps);
  MT_RETURN_IF_CUDA(x_in.is_cuda(), rmsnorm_forward_cuda(x_in, w, eps, rstd_out));
  const Tensor x = x_in.contiguous();
  const int64_t N = C == 0 ? 0 : x.numel() / C;
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor rstd = Tensor::empty({N}, norm_stat_dtype(x.dtype()));
  MT_DISPATCH_FLOAT(x.dtype(), "rmsnorm_forward",
                    [&] { rmsnorm_forward_cpu<scalar_t>(x, w, eps, y, rstd); });
  if (rstd_out) *rstd_out = rstd;
  return y;
}

Tensor add_rmsnorm_forward(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor* h,
                           Tensor* rstd) {
  check_norm_inputs(x, w, "add_rmsnorm_forward");
  CHECK(r.shape() == x.shape() && r.dtype() == x.dtype() && r.device() == x.device(),
        "add_rmsnorm_forward: expected r like x {}, got r {}", x.describe(), r.describe());
  CHECK(h != nullptr && rstd != nullptr, "add_rmsnorm_forward: h and rstd must be given");
  CHECK(eps >= 0, "add_rmsnorm_forward: eps must be >= 0, got {}", eps);
  MT_RETURN_IF_CUDA(x.is_cuda(), add_rmsnorm_forward_cuda(x, r, w, eps, h, rstd));
  *h = ops::add(x, r);
  return rmsnorm_forward(*h, w, eps, rstd);
}

void rmsnorm_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& w,
                      const Tensor& rstd_in, Tensor* dx, Tensor* dw) {
  const int64_t C = check_norm_inputs(x_in, w, "rmsnorm_backward");
  const int64_t N = C == 0 ? 0 : x_in.numel() / C;
  CHECK(dy_in.shape() == x_in.shape() && dy_in.dtype() == x_in.dtype(),
        "rmsnorm_backward: dy and x must have the same shape and dtype, got dy {} and x {}",
        dy_in.describe(), x_in.describe());
  CHECK(rstd_in.dim() == 1 && rstd_in.size(0) == N &&
            rstd_in.dtype() == norm_stat_dtype(x_in.dtype()),
        "rmsnorm_backward: expected rstd {}[{}] for x {}, got {}",
        dtype_name(norm_stat_dtype(x_in.dtype())), N, x_in.describe(), rstd_in.describe());
  CHECK(dy_in.device() == x_in.device() && rstd_in.device() == x_in.device(),
        "rmsnorm_backward: dy on {}, x on {}, rstd on {}: expected one device",
        dy_in.device().str(), x_in.device().str(), rstd_in.device().str());
  MT_RETURN_IF_CUDA(x_in.is_cuda(), rmsnorm_backward_cuda(dy_in, x_in, w, rstd_in, dx, dw));
  const Tensor dy = dy_in.contiguous(), x = x_in.contiguous(), rstd = rstd_in.contiguous();
  if (dx) {
    *dx = Tensor::empty(x.shape(), x.dtype());
    MT_DISPATCH_FLOAT(x.dtype(), "rmsnorm_backward",
                      [&] { rmsnorm_dx_cpu<scalar_t>(dy, x, w, rstd, *dx); });
  }
  if (dw) {
    std::vector<double> sums = MT_DISPATCH_FLOAT(
        x.dtype(), "rmsnorm_backward", [&] { return rmsnorm_dw_cpu<scalar_t>(dy, x, rstd); });
    *dw = Tensor::from_doubles(sums, {C}, w.dtype());
  }
}

}  // namespace mt::ops
