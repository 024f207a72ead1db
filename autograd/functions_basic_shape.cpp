// Matrix-product and view/shape autograd functions (see functions_basic.h).
#include "autograd/functions_basic.h"
#include "autograd/recompute.h"
#include "cuda/nvtx.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace mt {

namespace {

using Grads = std::vector<Tensor>;

// The last two dims swapped: a transposed view, no copy (the GEMM reads through strides).
Tensor mT(const Tensor& t) { return t.transpose(t.dim() - 2, t.dim() - 1); }

// matmul's b as the matrix it stands for: a 1-D b [K] is a column [K, 1].
Shape b_matrix_shape(const Shape& sb) { return sb.size() == 1 ? Shape{sb[0], 1} : sb; }

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
  cuda::NvtxRange range("matmul");
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  // da needs b and db needs a: each is saved only when the other's gradient is wanted.
  return make_result(
      ops::matmul(a.value(), b.value()), {a, b}, "matmul",
      [ga, gb, sa = a.shape(), sb = b.shape(), a_saved = gb ? save(a) : SavedTensor(),
       b_saved = ga ? save(b) : SavedTensor()](const Tensor& dy) {
        // y = a . b  =>  da = dy . b^T, db = a^T . dy, summed over broadcast batch
        // dims. A 1-D operand was a row (a) or a column (b) whose dim y dropped.
        const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
        Tensor g = b1 ? dy.unsqueeze(dy.dim()) : dy;
        if (a1) g = g.unsqueeze(g.dim() - 1);
        Tensor da, db;
        if (ga) {
          const Tensor bv = b_saved.get();
          const Tensor B = b1 ? bv.unsqueeze(1) : bv;
          const Shape A = a1 ? Shape{1, sa[0]} : sa;
          da = ops::sum_to(ops::matmul(g, mT(B)), A).reshape(sa);
        }
        if (gb) {
          const Tensor av = a_saved.get();
          const Tensor A = a1 ? av.unsqueeze(0) : av;
          db = ops::sum_to(ops::matmul(mT(A), g), b_matrix_shape(sb)).reshape(sb);
        }
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
  cuda::NvtxRange range("linear");
  const bool gx = x.requires_grad(), gw = w.requires_grad();
  const bool gb = b.defined() && b.requires_grad();
  const Tensor y = ops::linear(x.value(), w.value(), b.defined() ? b.value() : Tensor());
  // dx needs w and dw needs x (the activation, usually the larger): each is saved only when the
  // other's gradient is wanted; db needs neither.
  return make_result(y, {x, w, b}, "linear",
                     [gx, gw, gb, sx = x.shape(), out_f = w.size(0), in = w.size(1),
                      x_saved = gw ? save(x) : SavedTensor(),
                      w_saved = gx ? save(w) : SavedTensor()](const Tensor& dy) {
                       // y = x . w^T + b  =>  dx = dy . w, dw = dy^T . x, db = sum of dy over all
                       // rows. A plain GEMM and a column sum: the bias-gradient epilogue
                       // (ops::linear_weight_grad) ran these tall, narrow dW GEMMs an order of
                       // magnitude slower (docs/benchmarks.md, "The training step").
                       const Tensor dy2 = dy.reshape({-1, out_f});
                       Tensor dx, dw, db;
                       // dw first: a recomputed x (recompute.h) is then freed before dx exists.
                       if (gw) dw = ops::matmul(mT(dy2), x_saved.get().reshape({-1, in}));
                       if (gx) dx = ops::matmul(dy2, w_saved.get()).reshape(sx);
                       if (gb) db = ops::sum(dy2, {0});
                       return Grads{dx, dw, db};
                     });
}

// ---- views and shape ops ------------------------------------------------------------------

Var reshape(const Var& x, const Shape& shape) {
  Var y = make_result(x.value().reshape(shape), {x}, "reshape", [s = x.shape()](const Tensor& dy) {
    return Grads{dy.reshape(s)};  // y = x.reshape(shape)  =>  dx = dy.reshape(x.shape)
  });
  // The same elements: recomputable when x is, at no extra memory (recompute.h).
  if (x.recipe() != nullptr)
    set_recipe(y, x, [shape](const Tensor& v) { return v.reshape(shape); });
  return y;
}

Var view(const Var& x, const Shape& shape) {
  Var y = make_result(x.value().view(shape), {x}, "view", [s = x.shape()](const Tensor& dy) {
    return Grads{dy.reshape(s)};  // y = x.view(shape)  =>  dx = dy.reshape(x.shape)
  });
  if (x.recipe() != nullptr) set_recipe(y, x, [shape](const Tensor& v) { return v.view(shape); });
  return y;
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
  cuda::NvtxRange range("cast");
  Var y =
      make_result(ops::cast(x.value(), dtype), {x}, "cast", [from = x.dtype()](const Tensor& dy) {
        return Grads{dy.to(from)};  // y = x.to(dtype)  =>  dx = dy.to(x.dtype)
      });
  // Recomputable (recompute.h) when x is, and a widening cast always: the narrower x is the
  // cheaper thing to keep, and casting it again gives the same bits.
  const bool widening = is_floating(x.dtype()) && dtype_size(dtype) > dtype_size(x.dtype());
  if (x.recipe() != nullptr || widening) {
    set_recipe(y, x, [dtype](const Tensor& v) { return ops::cast(v, dtype); });
  }
  return y;
}

Var cast_cached(const Var& x, const Tensor& copy) {
  CHECK(copy.defined() && copy.shape() == x.shape() && copy.device() == x.device(),
        "cast_cached: expected a converted copy of {}, got {}", x.value().describe(),
        copy.defined() ? copy.describe() : std::string("an undefined tensor"));
  return make_result(copy, {x}, "cast", [from = x.dtype()](const Tensor& dy) {
    return Grads{dy.to(from)};  // y = x.to(dtype)  =>  dx = dy.to(x.dtype)
  });
}

}  // namespace mt
