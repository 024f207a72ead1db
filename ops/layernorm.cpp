// LayerNorm (see layernorm.h): the checks, the CPU reference and the CUDA glue.
#include "ops/layernorm.h"

#include <cmath>
#include <vector>

#include "base/compute_type.h"
#include "cuda/layernorm.cuh"
#include "ops/cuda_dispatch.h"
#include "ops/norm_checks.h"

namespace mt::ops {
namespace {

// A saved statistic (mean or rstd) of the forward for x: [N] in the statistics' dtype.
void check_stat(const Tensor& s, const Tensor& x, int64_t N, const char* what) {
  CHECK(s.dim() == 1 && s.size(0) == N && s.dtype() == norm_stat_dtype(x.dtype()),
        "layernorm_backward: expected {} {}[{}] for x {}, got {}", what,
        dtype_name(norm_stat_dtype(x.dtype())), N, x.describe(), s.describe());
  CHECK(s.device() == x.device(), "layernorm_backward: {} on {} but x on {}", what,
        s.device().str(), x.device().str());
}

template <typename acc>
std::vector<acc> values_as(const Tensor& t) {
  std::vector<acc> out;
  for (double v : t.to_vector<double>()) out.push_back(static_cast<acc>(v));
  return out;
}

// Per row: the mean, then the squared deviations from it (two passes: no cancellation as in
// E[x^2] - E[x]^2), both summed in float64.
template <typename scalar_t>
void layernorm_forward_cpu(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y,
                           Tensor& mean, Tensor& rstd) {
  using acc = compute_t<scalar_t>;
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  const std::vector<acc> wv = values_as<acc>(w), bv = values_as<acc>(b);
  const scalar_t* xp = x.data<scalar_t>();
  scalar_t* yp = y.data<scalar_t>();
  acc* mp = mean.data<acc>();
  acc* rp = rstd.data<acc>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const scalar_t* xr = xp + n * C;
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += double(static_cast<acc>(xr[c]));
    const double mu = sum / double(C);
    double sq = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double d = double(static_cast<acc>(xr[c])) - mu;
      sq += d * d;
    }
    // The rounded mean and rstd are both what y uses and what backward reads.
    const acc m = static_cast<acc>(mu);
    const acc r = static_cast<acc>(1.0 / std::sqrt(sq / double(C) + double(eps)));
    mp[n] = m;
    rp[n] = r;
    for (int64_t c = 0; c < C; ++c) {
      yp[n * C + c] = static_cast<scalar_t>((static_cast<acc>(xr[c]) - m) * r * wv[c] + bv[c]);
    }
  }
}

// Forward, per row: y = xhat w + b with xhat = (x - m) r, m = sum_k x[k] / C and
// r = (sum_k (x[k] - m)^2 / C + eps)^(-1/2). With g = dy w, dm/dx[c] = 1/C and
// dr/dx[c] = -r^3 (x[c] - m) / C, so
//   dx[c] = r (g[c] - sum_k g[k] / C - xhat[c] sum_k g[k] xhat[k] / C)
template <typename scalar_t>
void layernorm_dx_cpu(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                      const Tensor& rstd, Tensor& dx) {
  using acc = compute_t<scalar_t>;
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  const std::vector<acc> wv = values_as<acc>(w);
  const scalar_t *dyp = dy.data<scalar_t>(), *xp = x.data<scalar_t>();
  const acc *mp = mean.data<acc>(), *rp = rstd.data<acc>();
  scalar_t* dxp = dx.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const scalar_t *dyr = dyp + n * C, *xr = xp + n * C;
    const acc m = mp[n], r = rp[n];
    double sum_g = 0, sum_gx = 0;
    for (int64_t c = 0; c < C; ++c) {
      const acc g = static_cast<acc>(dyr[c]) * wv[c];
      const acc xh = (static_cast<acc>(xr[c]) - m) * r;
      sum_g += double(g);
      sum_gx += double(g) * double(xh);
    }
    const acc mean_g = static_cast<acc>(sum_g / double(C));
    const acc mean_gx = static_cast<acc>(sum_gx / double(C));
    for (int64_t c = 0; c < C; ++c) {
      const acc g = static_cast<acc>(dyr[c]) * wv[c];
      const acc xh = (static_cast<acc>(xr[c]) - m) * r;
      dxp[n * C + c] = static_cast<scalar_t>(r * (g - mean_g - xh * mean_gx));
    }
  }
}

// dw[c] = sum_n dy[n,c] xhat[n,c] and db[c] = sum_n dy[n,c] are reductions over rows: one column
// per iteration, rows summed in order, so the result does not depend on the thread count.
template <typename scalar_t>
void layernorm_dw_db_cpu(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         std::vector<double>& dw, std::vector<double>& db) {
  using acc = compute_t<scalar_t>;
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  const scalar_t *dyp = dy.data<scalar_t>(), *xp = x.data<scalar_t>();
  const acc *mp = mean.data<acc>(), *rp = rstd.data<acc>();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double sw = 0, sb = 0;
    for (int64_t n = 0; n < N; ++n) {
      const double g = double(static_cast<acc>(dyp[n * C + c]));
      const double xh = (double(static_cast<acc>(xp[n * C + c])) - double(mp[n])) * double(rp[n]);
      sw += g * xh;
      sb += g;
    }
    dw[c] = sw;
    db[c] = sb;
  }
}

#ifdef MT_WITH_CUDA
Tensor layernorm_forward_cuda(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, float eps,
                              Tensor* mean_out, Tensor* rstd_out) {
  const Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.contiguous();
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({N}, norm_stat_dtype(x.dtype()), x.device());
  Tensor rstd = Tensor::empty({N}, norm_stat_dtype(x.dtype()), x.device());
  cuda::launch_layernorm_forward(to_elem_type(x.dtype()), to_elem_type(w.dtype()), y.raw_data(),
                                 mean.raw_data(), rstd.raw_data(), x.raw_data(), w.raw_data(),
                                 b.raw_data(), N, C, eps);
  if (mean_out) *mean_out = mean;
  if (rstd_out) *rstd_out = rstd;
  return y;
}

void layernorm_backward_cuda(const Tensor& dy_in, const Tensor& x_in, const Tensor& w_in,
                             const Tensor& mean_in, const Tensor& rstd_in, Tensor* dx, Tensor* dw,
                             Tensor* db) {
  const Tensor dy = dy_in.contiguous(), x = x_in.contiguous(), w = w_in.contiguous();
  const Tensor mean = mean_in.contiguous(), rstd = rstd_in.contiguous();
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  if (dx) *dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (dw) *dw = Tensor::empty(w.shape(), w.dtype(), w.device());
  if (db) *db = Tensor::empty(w.shape(), w.dtype(), w.device());
  cuda::launch_layernorm_backward(to_elem_type(x.dtype()), to_elem_type(w.dtype()),
                                  dx ? dx->raw_data() : nullptr, dw ? dw->raw_data() : nullptr,
                                  db ? db->raw_data() : nullptr, dy.raw_data(), x.raw_data(),
                                  w.raw_data(), mean.raw_data(), rstd.raw_data(), N, C);
}
#endif  // MT_WITH_CUDA

}  // namespace

Tensor layernorm_forward(const Tensor& x_in, const Tensor& w, const Tensor& b, float eps,
                         Tensor* mean_out, Tensor* rstd_out) {
  const int64_t C = check_norm_inputs(x_in, w, "layernorm_forward");
  CHECK(b.dim() == 1 && b.size(0) == C && b.dtype() == w.dtype() && b.device() == w.device(),
        "layernorm_forward: expected b like w {}, got b {}", w.describe(), b.describe());
  CHECK(eps >= 0, "layernorm_forward: eps must be >= 0, got {}", eps);
  MT_RETURN_IF_CUDA(x_in.is_cuda(), layernorm_forward_cuda(x_in, w, b, eps, mean_out, rstd_out));
  const Tensor x = x_in.contiguous();
  const int64_t N = C == 0 ? 0 : x.numel() / C;
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor mean = Tensor::empty({N}, norm_stat_dtype(x.dtype()));
  Tensor rstd = Tensor::empty({N}, norm_stat_dtype(x.dtype()));
  MT_DISPATCH_FLOAT(x.dtype(), "layernorm_forward",
                    [&] { layernorm_forward_cpu<scalar_t>(x, w, b, eps, y, mean, rstd); });
  if (mean_out) *mean_out = mean;
  if (rstd_out) *rstd_out = rstd;
  return y;
}

void layernorm_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& w,
                        const Tensor& mean_in, const Tensor& rstd_in, Tensor* dx, Tensor* dw,
                        Tensor* db) {
  const int64_t C = check_norm_inputs(x_in, w, "layernorm_backward");
  const int64_t N = C == 0 ? 0 : x_in.numel() / C;
  CHECK(dy_in.shape() == x_in.shape() && dy_in.dtype() == x_in.dtype(),
        "layernorm_backward: dy and x must have the same shape and dtype, got dy {} and x {}",
        dy_in.describe(), x_in.describe());
  CHECK(dy_in.device() == x_in.device(), "layernorm_backward: dy on {} but x on {}",
        dy_in.device().str(), x_in.device().str());
  check_stat(mean_in, x_in, N, "mean");
  check_stat(rstd_in, x_in, N, "rstd");
  MT_RETURN_IF_CUDA(x_in.is_cuda(),
                    layernorm_backward_cuda(dy_in, x_in, w, mean_in, rstd_in, dx, dw, db));
  const Tensor dy = dy_in.contiguous(), x = x_in.contiguous();
  const Tensor mean = mean_in.contiguous(), rstd = rstd_in.contiguous();
  if (dx) {
    *dx = Tensor::empty(x.shape(), x.dtype());
    MT_DISPATCH_FLOAT(x.dtype(), "layernorm_backward",
                      [&] { layernorm_dx_cpu<scalar_t>(dy, x, w, mean, rstd, *dx); });
  }
  if (dw || db) {
    std::vector<double> sw(C, 0.0), sb(C, 0.0);
    MT_DISPATCH_FLOAT(x.dtype(), "layernorm_backward",
                      [&] { layernorm_dw_db_cpu<scalar_t>(dy, x, mean, rstd, sw, sb); });
    if (dw) *dw = Tensor::from_doubles(sw, {C}, w.dtype());
    if (db) *db = Tensor::from_doubles(sb, {C}, w.dtype());
  }
}

}  // namespace mt::ops
