#include "ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "base/compute_type.h"
#include "cuda/softmax.cuh"
#include "ops/cuda_dispatch.h"

namespace mt::ops {
namespace {

// The input seen as [outer, N, inner] rows along `dim`: element (o, j, i) of a contiguous
// tensor sits at o * N * inner + j * inner + i, so a row is N elements `inner` apart.
struct RowLayout {
  int64_t outer = 1, n = 1, inner = 1;
};

int normalize_dim(const Tensor& x, int dim, const char* op) {
  CHECK(x.dim() >= 1, "{}: expected a tensor with at least one dim, got {}", op, x.describe());
  CHECK(dim >= -x.dim() && dim < x.dim(), "{}: dim {} out of range for {}", op, dim, x.describe());
  return dim < 0 ? dim + x.dim() : dim;
}

RowLayout row_layout(const Shape& shape, int dim) {
  RowLayout r;
  for (int d = 0; d < dim; ++d) r.outer *= shape[d];
  r.n = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) r.inner *= shape[d];
  return r;
}

// One row: y_j = exp(x_j - m) / s (or x_j - m - log s for log-softmax), s = sum exp(x_k - m).
template <typename scalar_t>
void softmax_row(const scalar_t* x, scalar_t* y, int64_t n, int64_t step, bool log) {
  using acc = compute_t<scalar_t>;
  acc m = -std::numeric_limits<acc>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, static_cast<acc>(x[j * step]));
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<acc>(x[j * step]) - m);
  const acc inv_s = static_cast<acc>(1.0 / s), log_s = static_cast<acc>(std::log(s));
  for (int64_t j = 0; j < n; ++j) {
    acc shifted = static_cast<acc>(x[j * step]) - m;
    y[j * step] = static_cast<scalar_t>(log ? shifted - log_s : std::exp(shifted) * inv_s);
  }
}

// OpenMP over rows; each row is independent. (A pragma can't sit inside the dispatch macro's
// argument, hence one function per loop.)
template <typename scalar_t>
void softmax_cpu(const Tensor& x, Tensor& y, const RowLayout& r, bool log) {
  const scalar_t* xp = x.data<scalar_t>();
  scalar_t* yp = y.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < r.outer * r.inner; ++row) {
    const int64_t base = (row / r.inner) * r.n * r.inner + row % r.inner;
    softmax_row(xp + base, yp + base, r.n, r.inner, log);
  }
}

// dx_j = y_j (dy_j - sum_k dy_k y_k)          (softmax)
// dx_j = dy_j - exp(y_j) sum_k dy_k           (log-softmax)
template <typename scalar_t>
void softmax_backward_row(const scalar_t* dy, const scalar_t* y, scalar_t* dx, int64_t n,
                          int64_t step, bool log) {
  using acc = compute_t<scalar_t>;
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    double g = static_cast<acc>(dy[j * step]);
    s += log ? g : g * static_cast<acc>(y[j * step]);
  }
  const acc sum = static_cast<acc>(s);
  for (int64_t j = 0; j < n; ++j) {
    acc g = static_cast<acc>(dy[j * step]), v = static_cast<acc>(y[j * step]);
    dx[j * step] = static_cast<scalar_t>(log ? g - std::exp(v) * sum : v * (g - sum));
  }
}

template <typename scalar_t>
void softmax_backward_cpu(const Tensor& dy, const Tensor& y, Tensor& dx, const RowLayout& r,
                          bool log) {
  const scalar_t* dyp = dy.data<scalar_t>();
  const scalar_t* yp = y.data<scalar_t>();
  scalar_t* dxp = dx.data<scalar_t>();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < r.outer * r.inner; ++row) {
    const int64_t base = (row / r.inner) * r.n * r.inner + row % r.inner;
    softmax_backward_row(dyp + base, yp + base, dxp + base, r.n, r.inner, log);
  }
}

#ifdef MT_WITH_CUDA
// The kernels normalize the last dim of a dense [rows, K]: another dim is transposed there and
// back.
Tensor softmax_cuda(const Tensor& x, int dim, bool log) {
  const bool last = dim == x.dim() - 1;
  const Tensor xt = last ? x.contiguous() : x.transpose(dim, -1).contiguous();
  Tensor yt = Tensor::empty(xt.shape(), x.dtype(), x.device());
  const int64_t K = x.size(dim), rows = K == 0 ? 0 : x.numel() / K;
  cuda::launch_softmax_forward(to_elem_type(x.dtype()), yt.raw_data(), xt.raw_data(), rows, K, log);
  return last ? yt : yt.transpose(dim, -1).contiguous();
}

Tensor softmax_backward_cuda(const Tensor& dy, const Tensor& y, int dim, bool log) {
  const bool last = dim == y.dim() - 1;
  const Tensor dyt = last ? dy.contiguous() : dy.transpose(dim, -1).contiguous();
  const Tensor yt = last ? y.contiguous() : y.transpose(dim, -1).contiguous();
  Tensor dxt = Tensor::empty(yt.shape(), y.dtype(), y.device());
  const int64_t K = y.size(dim), rows = K == 0 ? 0 : y.numel() / K;
  cuda::launch_softmax_backward(to_elem_type(y.dtype()), dxt.raw_data(), dyt.raw_data(),
                                yt.raw_data(), rows, K, log);
  return last ? dxt : dxt.transpose(dim, -1).contiguous();
}
#endif  // MT_WITH_CUDA

Tensor softmax_impl(const Tensor& x_in, int dim_in, bool log, const char* op) {
  const int dim = normalize_dim(x_in, dim_in, op);
  MT_RETURN_IF_CUDA(x_in.is_cuda(), softmax_cuda(x_in, dim, log));
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const RowLayout r = row_layout(x.shape(), dim);
  MT_DISPATCH_FLOAT(x.dtype(), op, [&] { softmax_cpu<scalar_t>(x, y, r, log); });
  return y;
}

Tensor softmax_backward_impl(const Tensor& dy_in, const Tensor& y_in, int dim_in, bool log,
                             const char* op) {
  const int dim = normalize_dim(y_in, dim_in, op);
  CHECK(dy_in.shape() == y_in.shape() && dy_in.dtype() == y_in.dtype(),
        "{}: dy and y must have the same shape and dtype, got dy {} and y {}", op, dy_in.describe(),
        y_in.describe());
  CHECK(dy_in.device() == y_in.device(), "{}: dy on {} but y on {}", op, dy_in.device().str(),
        y_in.device().str());
  MT_RETURN_IF_CUDA(y_in.is_cuda(), softmax_backward_cuda(dy_in, y_in, dim, log));
  const Tensor dy = dy_in.contiguous(), y = y_in.contiguous();
  Tensor dx = Tensor::empty(y.shape(), y.dtype());
  const RowLayout r = row_layout(y.shape(), dim);
  MT_DISPATCH_FLOAT(y.dtype(), op, [&] { softmax_backward_cpu<scalar_t>(dy, y, dx, r, log); });
  return dx;
}

}  // namespace

Tensor softmax(const Tensor& x, int dim) { return softmax_impl(x, dim, false, "softmax"); }

Tensor log_softmax(const Tensor& x, int dim) { return softmax_impl(x, dim, true, "log_softmax"); }

Tensor softmax_backward(const Tensor& dy, const Tensor& y, int dim) {
  return softmax_backward_impl(dy, y, dim, false, "softmax_backward");
}

Tensor log_softmax_backward(const Tensor& dy, const Tensor& y, int dim) {
  return softmax_backward_impl(dy, y, dim, true, "log_softmax_backward");
}

}  // namespace mt::ops
