// Matrix-product and view/shape autograd functions (see functions_basic.h).
#include "autograd/functions_basic.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace mt {

namespace {

using Grads = std::vector<Tensor>;

// The last two dims swapped: a transposed view, no copy (the GEMM reads through strides).
Tensor mT(const Tensor& t) { return t.transpose(t.dim() - 2, t.dim() - 1); }

// A zero tensor shaped like x with dy written into the part `region` picks out: the backward of
// every view that selects part of its input (narrow, slice, select).
template <typename Region>
Tensor scatter_into_zeros(const Tensor& dy, const Shape& shape, Region region) {
  Tensor dx = Tensor::zeros(shape, dy.dtype(), dy.device());
  region(dx).copy_(dy);
  return dx;
}

}  // namespace

// ---- matrix products ----------------------------------------------------------------------

Var matmul(const Var& a, const Var& b) {
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return make_result(ops::matmul(a.value(), b.value()), {a, b}, "matmul",
                     [ga, gb, av = a.value(), bv = b.value()](const Tensor& dy) {
                       // y = a . b  =>  da = dy . b^T, db = a^T . dy, summed over broadcast batch
                       // dims. A 1-D operand was a row [1, K] (a) or a column [K, 1] (b) whose dim
                       // y dropped.
                       const Tensor A = av.dim() == 1 ? av.unsqueeze(0) : av;
                       const Tensor B = bv.dim() == 1 ? bv.unsqueeze(1) : bv;
                       Tensor g = bv.dim() == 1 ? dy.unsqueeze(dy.dim()) : dy;
                       if (av.dim() == 1) g = g.unsqueeze(g.dim() - 1);
                       Tensor da, db;
                       if (ga)
                         da = ops::sum_to(ops::matmul(g, mT(B)), A.shape()).reshape(av.shape());
                       if (gb)
                         db = ops::sum_to(ops::matmul(mT(A), g), B.shape()).reshape(bv.shape());
                       return Grads{da, db};
                     });
}

Var bmm(const Var& a, const Var& b) {
  CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
        "bmm: expected [B, M, K] . [B, K, N], got {} . {}", shape_str(a.shape()),
        shape_str(b.shape()));
  return matmul(a, b);  // the same products, with no batch broadcasting to undo
}

Var linear(const Var& x, const Var& w, const Var& b) {
  const bool gx = x.requires_grad(), gw = w.requires_grad();
  const bool gb = b.defined() && b.requires_grad();
  const Tensor y = ops::linear(x.value(), w.value(), b.defined() ? b.value() : Tensor());
  return make_result(y, {x, w, b}, "linear",
                     [gx, gw, gb, xv = x.value(), wv = w.value()](const Tensor& dy) {
                       // y = x . w^T + b  =>  dx = dy . w, dw = dy^T . x, db = sum of dy over all
                       // rows (dw and db in one GEMM on the GPU: ops::linear_weight_grad)
                       const int64_t out_f = wv.size(0), in = wv.size(1);
                       const Tensor dy2 = dy.reshape({-1, out_f});
                       Tensor dx, dw, db;
                       Tensor* db_out = gb ? &db : nullptr;
                       if (gx) dx = ops::matmul(dy2, wv).reshape(xv.shape());
                       if (gw) dw = ops::linear_weight_grad(dy2, xv.reshape({-1, in}), db_out);
                       if (gb && !gw) db = ops::sum(dy2, {0});
                       return Grads{dx, dw, db};
                     });
}

// ---- views and shape ops ------------------------------------------------------------------

Var reshape(const Var& x, const Shape& shape) {
  return make_result(x.value().reshape(shape), {x}, "reshape", [s = x.shape()](const Tensor& dy) {
    return Grads{dy.reshape(s)};  // y = x.reshape(shape)  =>  dx = dy.reshape(x.shape)
  });
}

Var view(const Var& x, const Shape& shape) {
  return make_result(x.value().view(shape), {x}, "view", [s = x.shape()](const Tensor& dy) {
    return Grads{dy.reshape(s)};  // y = x.view(shape)  =>  dx = dy.reshape(x.shape)
  });
}

Var permute(const Var& x, const std::vector<int>& dims) {
  const Tensor y = x.value().permute(dims);
  std::vector<int> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    inverse[dims[i] < 0 ? dims[i] + x.dim() : dims[i]] = static_cast<int>(i);
  }
  return make_result(y, {x}, "permute", [inverse](const Tensor& dy) {
    return Grads{dy.permute(inverse)};  // y = x.permute(dims)  =>  dx = dy.permute(dims^-1)
  });
}

Var transpose(const Var& x, int dim0, int dim1) {
  return make_result(x.value().transpose(dim0, dim1), {x}, "transpose",
                     [dim0, dim1](const Tensor& dy) {
                       return Grads{dy.transpose(dim0, dim1)};  // a swap is its own inverse
                     });
}

Var narrow(const Var& x, int dim, int64_t start, int64_t length) {
  return make_result(x.value().narrow(dim, start, length), {x}, "narrow",
                     [s = x.shape(), dim, start, length](const Tensor& dy) {
                       // y = x.narrow(dim, start, length)  =>  dx = 0 with dy in that range
                       return Grads{scatter_into_zeros(
                           dy, s, [&](const Tensor& dx) { return dx.narrow(dim, start, length); })};
                     });
}

Var slice(const Var& x, int dim, int64_t start, int64_t end, int64_t step) {
  return make_result(x.value().slice(dim, start, end, step), {x}, "slice",
                     [s = x.shape(), dim, start, end, step](const Tensor& dy) {
                       // y = x[start:end:step] along dim  =>  dx = 0 with dy at those indices
                       return Grads{scatter_into_zeros(dy, s, [&](const Tensor& dx) {
                         return dx.slice(dim, start, end, step);
                       })};
                     });
}

Var select(const Var& x, int dim, int64_t index) {
  return make_result(
      x.value().select(dim, index), {x}, "select", [s = x.shape(), dim, index](const Tensor& dy) {
        // y = x.select(dim, index)  =>  dx = 0 with dy at that index
        return Grads{
            scatter_into_zeros(dy, s, [&](const Tensor& dx) { return dx.select(dim, index); })};
      });
}

Var unsqueeze(const Var& x, int dim) {
  return make_result(x.value().unsqueeze(dim), {x}, "unsqueeze", [s = x.shape()](const Tensor& dy) {
    return Grads{dy.reshape(s)};  // only a size-1 dim was added
  });
}

Var squeeze(const Var& x, int dim) {
  return make_result(x.value().squeeze(dim), {x}, "squeeze", [s = x.shape()](const Tensor& dy) {
    return Grads{dy.reshape(s)};  // only a size-1 dim was removed
  });
}

Var expand(const Var& x, const Shape& shape) {
  return make_result(x.value().expand(shape), {x}, "expand", [s = x.shape()](const Tensor& dy) {
    return Grads{ops::sum_to(dy, s)};  // y = x broadcast to shape  =>  dx = dy summed back
  });
}

Var concat(const std::vector<Var>& xs, int dim) {
  std::vector<Tensor> values;
  std::vector<int64_t> sizes;
  for (const Var& x : xs) {
    CHECK(x.defined(), "concat: got an undefined Var");
    values.push_back(x.value());
  }
  const Tensor y = ops::concat(values, dim);
  const int d = dim < 0 ? dim + y.dim() : dim;
  for (const Tensor& v : values) sizes.push_back(v.size(d));
  return make_result(y, xs, "concat", [sizes, d](const Tensor& dy) {
    return ops::split(dy, sizes, d);  // y = concat(xs)  =>  dx_i = the i-th piece of dy
  });
}

std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes, int dim) {
  const std::vector<Tensor> pieces = ops::split(x.value(), sizes, dim);  // validates
  const int d = dim < 0 ? dim + x.dim() : dim;
  std::vector<Var> out;
  int64_t at = 0;
  for (const Tensor& p : pieces) {
    out.push_back(narrow(x, d, at, p.size(d)));
    at += p.size(d);
  }
  return out;
}

std::vector<Var> chunk(const Var& x, int64_t chunks, int dim) {
  std::vector<int64_t> sizes;
  const int d = dim < 0 ? dim + x.dim() : dim;
  for (const Tensor& p : ops::chunk(x.value(), chunks, dim)) sizes.push_back(p.size(d));
  return split(x, sizes, d);
}

Var cast(const Var& x, DType dtype) {
  return make_result(ops::cast(x.value(), dtype), {x}, "cast",
                     [from = x.dtype()](const Tensor& dy) {
                       return Grads{dy.to(from)};  // y = x.to(dtype)  =>  dx = dy.to(x.dtype)
                     });
}

}  // namespace mt
