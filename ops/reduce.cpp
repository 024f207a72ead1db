// Reductions (see reduce.h). Every reduction first becomes "reduce each row of a contiguous
// [outer, inner] matrix": the kept dims are permuted to the front and the reduced ones to the
// back, and contiguous() packs them (a copy only when the layout is not already that). The one
// exception is a sum over leading dims of a contiguous tensor (the bias gradient: [B*T, C] summed
// over B*T), which sums columns in place instead of paying a transposing copy.
#include "ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cuda/reduce.cuh"
#include "ops/cuda_dispatch.h"
#include "ops/strided_loop.h"

namespace mt::ops {

std::vector<int> normalize_dims(const std::vector<int>& dims, const Shape& shape, const char* op) {
  const int rank = static_cast<int>(shape.size());
  std::vector<int> out;
  if (dims.empty()) {
    for (int d = 0; d < rank; ++d) out.push_back(d);
    return out;
  }
  for (int d : dims) {
    CHECK(d >= -std::max(rank, 1) && d < std::max(rank, 1), "{}: dim {} out of range for shape {}",
          op, d, shape_str(shape));
    out.push_back(d < 0 ? d + rank : d);
  }
  std::sort(out.begin(), out.end());
  CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(),
        "{}: dims {} repeat a dim (shape {})", op, dims, shape_str(shape));
  // A 0-dim tensor accepts dim 0 or -1, as torch does, and reduces over nothing.
  if (rank == 0) out.clear();
  return out;
}

namespace {

// x viewed as a contiguous [outer, inner] matrix whose rows are the reductions to do.
struct Rows {
  Tensor data;
  int64_t outer = 1;
  int64_t inner = 1;
  Shape out_shape;  // the result's shape (keepdim applied)
};

Rows to_rows(const Tensor& x, const std::vector<int>& reduced, bool keepdim) {
  Rows rows;
  std::vector<int> perm;
  std::vector<bool> is_reduced(x.dim(), false);
  for (int d : reduced) is_reduced[d] = true;
  for (int d = 0; d < x.dim(); ++d) {
    if (is_reduced[d]) {
      if (keepdim) rows.out_shape.push_back(1);
      continue;
    }
    perm.push_back(d);
    rows.outer *= x.size(d);
    rows.out_shape.push_back(x.size(d));
  }
  for (int d : reduced) {
    perm.push_back(d);
    rows.inner *= x.size(d);
  }
  rows.data = x.dim() == 0 ? x.contiguous() : x.permute(perm).contiguous();
  return rows;
}

// Runs row_fn(r) for every row, in parallel when there is enough work.
template <typename F>
void for_rows(int64_t outer, int64_t inner, F row_fn) {
#pragma omp parallel for schedule(static) if (outer * inner >= detail::kParallelGrain && outer > 1)
  for (int64_t r = 0; r < outer; ++r) row_fn(r);
}

template <typename T>
double row_sum(const T* p, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]);
  return s;
}

// One long row (a global sum) split over the threads. (OpenMP pragmas cannot sit inside the
// MT_DISPATCH_FLOAT macro's argument, hence these small functions.)
template <typename T>
double parallel_sum(const T* p, int64_t n) {
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n >= detail::kParallelGrain)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]);
  return s;
}

// out[c] = scale * sum_r x[r, c] for a contiguous [R, C] x: the leading-dims fast path.
template <typename T>
void column_sums(const T* x, int64_t R, int64_t C, double scale, T* out) {
  constexpr int64_t kCols = 256;  // 256 float64 accumulators: 2 KiB, stays in L1
  const int64_t blocks = (C + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (R * C >= detail::kParallelGrain && blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kCols;
    const int64_t n = std::min(kCols, C - c0);
    double acc[kCols] = {};
    for (int64_t r = 0; r < R; ++r) {
      const T* row = x + r * C + c0;
      for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(row[j]);
    }
    for (int64_t j = 0; j < n; ++j) out[c0 + j] = static_cast<T>(acc[j] * scale);
  }
}

bool is_leading_prefix(const std::vector<int>& reduced, int rank) {
  if (reduced.empty() || static_cast<int>(reduced.size()) == rank) return false;
  for (size_t i = 0; i < reduced.size(); ++i) {
    if (reduced[i] != static_cast<int>(i)) return false;
  }
  return true;
}

#ifdef MT_WITH_CUDA

// x viewed as dense [outer, K, inner] with the reduced dims in the middle, as the kernels take
// it: free when x is contiguous and the reduced dims are adjacent, else the kept dims are
// permuted first and copied.
struct ReduceView {
  Tensor data;
  int64_t outer = 1, K = 1, inner = 1;
  Shape out_shape;
};

ReduceView reduce_view(const Tensor& x, const std::vector<int>& reduced, bool keepdim) {
  ReduceView v;
  std::vector<bool> is_red(x.dim(), false);
  for (int d : reduced) is_red[d] = true;
  for (int d = 0; d < x.dim(); ++d) {
    if (!is_red[d] || keepdim) v.out_shape.push_back(is_red[d] ? 1 : x.size(d));
  }
  const bool adjacent =
      reduced.empty() || reduced.back() - reduced.front() + 1 == int(reduced.size());
  if (x.is_contiguous() && adjacent) {
    v.data = x;
    for (int d = 0; d < x.dim(); ++d) {
      if (is_red[d])
        v.K *= x.size(d);
      else if (!reduced.empty() && d > reduced.back())
        v.inner *= x.size(d);
      else
        v.outer *= x.size(d);
    }
    return v;
  }
  std::vector<int> order;
  for (int d = 0; d < x.dim(); ++d) {
    if (!is_red[d]) {
      order.push_back(d);
      v.outer *= x.size(d);
    }
  }
  for (int d : reduced) {
    order.push_back(d);
    v.K *= x.size(d);
  }
  v.data = x.permute(order).contiguous();
  return v;
}

enum class Reduction { Sum, Mean, Max, Var };

// Over normalized (sorted, unique) dims.
Tensor reduce_cuda(const Tensor& x, const std::vector<int>& reduced, bool keepdim, Reduction what,
                   bool unbiased = true) {
  ReduceView v = reduce_view(x, reduced, keepdim);
  Tensor out = Tensor::empty(v.out_shape, x.dtype(), x.device());
  if (v.K == 0) {  // as the CPU: an empty sum is 0, an empty mean or variance NaN
    return out.fill_(what == Reduction::Sum ? 0.0 : std::nan(""));
  }
  cuda::ReduceKind kind = cuda::ReduceKind::Sum;
  double scale = 1.0;
  if (what == Reduction::Mean) scale = 1.0 / double(v.K);
  if (what == Reduction::Max) kind = cuda::ReduceKind::Max;
  if (what == Reduction::Var) {
    kind = cuda::ReduceKind::Var;
    scale = 1.0 / (double(v.K) - (unbiased ? 1.0 : 0.0));  // K = 1, unbiased: inf * 0 = NaN
  }
  cuda::launch_reduce(kind, to_elem_type(x.dtype()), out.raw_data(), v.data.raw_data(), v.outer,
                      v.K, v.inner, scale);
  return out;
}

Tensor argmax_cuda(const Tensor& x, int dim, bool keepdim) {
  ReduceView v = reduce_view(x, {dim}, keepdim);
  Tensor out = Tensor::empty(v.out_shape, kInt64, x.device());
  cuda::launch_argmax(to_elem_type(x.dtype()), out.data<int64_t>(), v.data.raw_data(), v.outer, v.K,
                      v.inner);
  return out;
}
#endif  // MT_WITH_CUDA

// sum or (mean = true) mean over dims.
Tensor sum_or_mean(const Tensor& x, const std::vector<int>& dims, bool keepdim, bool mean) {
  const char* name = mean ? "mean" : "sum";
  CHECK(x.defined(), "{}: got an undefined tensor", name);
  const std::vector<int> reduced = normalize_dims(dims, x.shape(), name);
  MT_RETURN_IF_CUDA(x.is_cuda(),
                    reduce_cuda(x, reduced, keepdim, mean ? Reduction::Mean : Reduction::Sum));
  if (x.is_contiguous() && is_leading_prefix(reduced, x.dim())) {
    int64_t R = 1;
    Shape out_shape;
    for (int d = 0; d < x.dim(); ++d) {
      const bool red = d < static_cast<int>(reduced.size());
      if (red) R *= x.size(d);
      if (!red || keepdim) out_shape.push_back(red ? 1 : x.size(d));
    }
    const int64_t C = R == 0 ? 0 : x.numel() / R;
    Tensor out = Tensor::empty(out_shape, x.dtype());
    const double scale = mean ? 1.0 / static_cast<double>(R) : 1.0;
    MT_DISPATCH_FLOAT(x.dtype(), name, [&] {
      if (R == 0) return void(out.fill_(mean ? std::nan("") : 0.0));
      column_sums(x.data<scalar_t>(), R, C, scale, out.data<scalar_t>());
    });
    return out;
  }
  const Rows rows = to_rows(x, reduced, keepdim);
  Tensor out = Tensor::empty(rows.out_shape, x.dtype());
  const double scale = mean ? 1.0 / static_cast<double>(rows.inner) : 1.0;
  MT_DISPATCH_FLOAT(x.dtype(), name, [&] {
    const scalar_t* p = rows.data.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    const int64_t inner = rows.inner;
    if (rows.outer == 1) {
      o[0] = static_cast<scalar_t>(parallel_sum(p, inner) * scale);
      return;
    }
    for_rows(rows.outer, inner, [&](int64_t r) {
      o[r] = static_cast<scalar_t>(row_sum(p + r * inner, inner) * scale);
    });
  });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  return sum_or_mean(x, dims, keepdim, false);
}

Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  return sum_or_mean(x, dims, keepdim, true);
}

Tensor max(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  CHECK(x.defined(), "max: got an undefined tensor");
  const std::vector<int> reduced = normalize_dims(dims, x.shape(), "max");
  CHECK(x.numel() > 0, "max: cannot reduce an empty tensor {}", x.describe());
  MT_RETURN_IF_CUDA(x.is_cuda(), reduce_cuda(x, reduced, keepdim, Reduction::Max));
  const Rows rows = to_rows(x, reduced, keepdim);
  CHECK(rows.inner > 0, "max: cannot reduce over an empty dim of {}", x.describe());
  Tensor out = Tensor::empty(rows.out_shape, x.dtype());
  MT_DISPATCH_FLOAT(x.dtype(), "max", [&] {
    const scalar_t* p = rows.data.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    for_rows(rows.outer, rows.inner, [&](int64_t r) {
      const scalar_t* row = p + r * rows.inner;
      double m = static_cast<double>(row[0]);
      for (int64_t i = 1; i < rows.inner && !std::isnan(m); ++i) {
        const double v = static_cast<double>(row[i]);
        if (v > m || std::isnan(v)) m = v;
      }
      o[r] = static_cast<scalar_t>(m);
    });
  });
  return out;
}

Tensor var(const Tensor& x, const std::vector<int>& dims, bool unbiased, bool keepdim) {
  CHECK(x.defined(), "var: got an undefined tensor");
  const std::vector<int> reduced = normalize_dims(dims, x.shape(), "var");
  MT_RETURN_IF_CUDA(x.is_cuda(), reduce_cuda(x, reduced, keepdim, Reduction::Var, unbiased));
  const Rows rows = to_rows(x, reduced, keepdim);
  Tensor out = Tensor::empty(rows.out_shape, x.dtype());
  // n - 1 = 0 (one element, unbiased) gives 0/0 = NaN, as torch.var does.
  const double denom = static_cast<double>(rows.inner) - (unbiased ? 1.0 : 0.0);
  MT_DISPATCH_FLOAT(x.dtype(), "var", [&] {
    const scalar_t* p = rows.data.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    for_rows(rows.outer, rows.inner, [&](int64_t r) {
      const scalar_t* row = p + r * rows.inner;
      // Two passes (mean, then squared deviations): no cancellation, unlike E[x^2] - E[x]^2.
      const double mu = row_sum(row, rows.inner) / static_cast<double>(rows.inner);
      double ss = 0.0;
      for (int64_t i = 0; i < rows.inner; ++i) {
        const double d = static_cast<double>(row[i]) - mu;
        ss += d * d;
      }
      o[r] = static_cast<scalar_t>(ss / denom);
    });
  });
  return out;
}

Tensor argmax(const Tensor& x, int dim, bool keepdim) {
  CHECK(x.defined(), "argmax: got an undefined tensor");
  const std::vector<int> reduced = normalize_dims({dim}, x.shape(), "argmax");
  CHECK(x.numel() > 0, "argmax: cannot reduce an empty tensor {}", x.describe());
  MT_RETURN_IF_CUDA(x.is_cuda(), argmax_cuda(x, reduced[0], keepdim));
  const Rows rows = to_rows(x, reduced, keepdim);
  Tensor out = Tensor::empty(rows.out_shape, kInt64);
  int64_t* o = out.data<int64_t>();
  MT_DISPATCH_FLOAT(x.dtype(), "argmax", [&] {
    const scalar_t* p = rows.data.data<scalar_t>();
    for_rows(rows.outer, rows.inner, [&](int64_t r) {
      const scalar_t* row = p + r * rows.inner;
      int64_t best = 0;
      double m = static_cast<double>(row[0]);
      for (int64_t i = 1; i < rows.inner && !std::isnan(m); ++i) {
        const double v = static_cast<double>(row[i]);
        if (v > m || std::isnan(v)) {
          m = v;
          best = i;
        }
      }
      o[r] = best;
    });
  });
  return out;
}

Tensor argmax(const Tensor& x) {
  CHECK(x.defined(), "argmax: got an undefined tensor");
  return argmax(x.reshape({x.numel()}), 0, false);
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  CHECK(t.defined(), "sum_to: got an undefined tensor");
  const Shape& from = t.shape();
  const int lead = static_cast<int>(from.size()) - static_cast<int>(shape.size());
  bool ok = lead >= 0;
  std::vector<int> dims;
  for (int d = 0; ok && d < static_cast<int>(from.size()); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] != from[d]) {
      ok = shape[d - lead] == 1;
      dims.push_back(d);
    }
  }
  CHECK(ok, "sum_to: cannot sum {} down to {}: it is not a broadcast of it", shape_str(from),
        shape_str(shape));
  if (dims.empty()) return t;
  return sum(t, dims, true).reshape(shape);
}

}  // namespace mt::ops
