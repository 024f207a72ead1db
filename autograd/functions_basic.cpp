// Elementwise and reduction autograd functions (see functions_basic.h). The matrix products and
// the view/shape functions are in functions_basic_shape.cpp.
#include "autograd/functions_basic.h"

#include "cuda/nvtx.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace mt {

namespace {

using Grads = std::vector<Tensor>;

// The shape a reduction over `dims` keeps with keepdim: reduced dims become 1.
Shape kept_shape(const Shape& shape, const std::vector<int>& dims, const char* op) {
  Shape kept = shape;
  for (int d : ops::normalize_dims(dims, shape, op)) kept[d] = 1;
  return kept;
}

// dy of a reduction, broadcast back over the reduced dims of x (contiguous, so that a backward
// further down never meets a stride-0 gradient).
Tensor spread(const Tensor& dy, const Shape& kept, const Shape& x_shape) {
  return dy.reshape(kept).expand(x_shape).contiguous();
}

}  // namespace

// ---- elementwise --------------------------------------------------------------------------

Var add(const Var& a, const Var& b) {
  cuda::NvtxRange range("add");
  return make_result(ops::add(a.value(), b.value()), {a, b}, "add",
                     [sa = a.shape(), sb = b.shape()](const Tensor& dy) {
                       // y = a + b  =>  da = dy, db = dy, each summed over its broadcast dims
                       return Grads{ops::sum_to(dy, sa), ops::sum_to(dy, sb)};
                     });
}

Var sub(const Var& a, const Var& b) {
  return make_result(ops::sub(a.value(), b.value()), {a, b}, "sub",
                     [sa = a.shape(), sb = b.shape()](const Tensor& dy) {
                       // y = a - b  =>  da = dy, db = -dy
                       return Grads{ops::sum_to(dy, sa), ops::neg(ops::sum_to(dy, sb))};
                     });
}

Var mul(const Var& a, const Var& b) {
  cuda::NvtxRange range("mul");
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  // da needs b and db needs a: each is saved only when the other's gradient is wanted.
  return make_result(
      ops::mul(a.value(), b.value()), {a, b}, "mul",
      [ga, gb, sa = a.shape(), sb = b.shape(), a_saved = gb ? save(a) : SavedTensor(),
       b_saved = ga ? save(b) : SavedTensor()](const Tensor& dy) {
        // y = a * b  =>  da = dy * b, db = dy * a
        return Grads{ga ? ops::sum_to(ops::mul(dy, b_saved.get()), sa) : Tensor(),
                     gb ? ops::sum_to(ops::mul(dy, a_saved.get()), sb) : Tensor()};
      });
}

Var div(const Var& a, const Var& b) {
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  // da needs b; db needs a and b.
  return make_result(
      ops::div(a.value(), b.value()), {a, b}, "div",
      [ga, gb, sa = a.shape(), sb = b.shape(), a_saved = gb ? save(a) : SavedTensor(),
       b_saved = save(b)](const Tensor& dy) {
        // y = a / b  =>  da = dy / b, db = -dy * a / b^2
        const Tensor bv = b_saved.get();
        const Tensor da = ga ? ops::sum_to(ops::div(dy, bv), sa) : Tensor();
        const Tensor db =
            gb ? ops::sum_to(ops::neg(ops::div(ops::mul(dy, a_saved.get()), ops::mul(bv, bv))), sb)
               : Tensor();
        return Grads{da, db};
      });
}

Var pow(const Var& a, const Var& b) {
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  const Tensor y = ops::pow(a.value(), b.value());
  // da needs a and b; db needs a and the output y.
  return make_result(
      y, {a, b}, "pow",
      [ga, gb, sa = a.shape(), sb = b.shape(), a_saved = save(a),
       b_saved = ga ? save(b) : SavedTensor(), y = gb ? y : Tensor()](const Tensor& dy) {
        // y = a ^ b  =>  da = dy * b * a^(b - 1), db = dy * y * log(a)
        const Tensor av = a_saved.get();
        Tensor da, db;
        if (ga) {
          const Tensor bv = b_saved.get();
          const Tensor d = ops::mul(bv, ops::pow(av, ops::sub_scalar(bv, 1.0)));
          da = ops::sum_to(ops::mul(dy, d), sa);
        }
        if (gb) db = ops::sum_to(ops::mul(dy, ops::mul(y, ops::log(av))), sb);
        return Grads{da, db};
      });
}

Var pow(const Var& x, double p) {
  return make_result(ops::pow_scalar(x.value(), p), {x}, "pow_scalar",
                     [p, x_saved = save(x)](const Tensor& dy) {
                       // y = x ^ p  =>  dx = dy * p * x^(p - 1)
                       const Tensor xv = x_saved.get();
                       return Grads{ops::mul(dy, ops::mul_scalar(ops::pow_scalar(xv, p - 1.0), p))};
                     });
}

Var neg(const Var& x) {
  return make_result(ops::neg(x.value()), {x}, "neg", [](const Tensor& dy) {
    return Grads{ops::neg(dy)};  // y = -x  =>  dx = -dy
  });
}

Var add_scalar(const Var& x, double s) {
  return make_result(ops::add_scalar(x.value(), s), {x}, "add_scalar", [](const Tensor& dy) {
    return Grads{dy};  // y = x + s  =>  dx = dy
  });
}

Var mul_scalar(const Var& x, double s) {
  return make_result(ops::mul_scalar(x.value(), s), {x}, "mul_scalar", [s](const Tensor& dy) {
    return Grads{ops::mul_scalar(dy, s)};  // y = x * s  =>  dx = dy * s
  });
}

Var rsub_scalar(const Var& x, double s) {
  return make_result(ops::rsub_scalar(x.value(), s), {x}, "rsub_scalar", [](const Tensor& dy) {
    return Grads{ops::neg(dy)};  // y = s - x  =>  dx = -dy
  });
}

Var rdiv_scalar(const Var& x, double s) {
  return make_result(ops::rdiv_scalar(x.value(), s), {x}, "rdiv_scalar",
                     [s, x_saved = save(x)](const Tensor& dy) {
                       // y = s / x  =>  dx = -dy * s / x^2
                       const Tensor xv = x_saved.get();
                       return Grads{ops::mul(dy, ops::rdiv_scalar(ops::mul(xv, xv), -s))};
                     });
}

Var exp(const Var& x) {
  const Tensor y = ops::exp(x.value());
  return make_result(y, {x}, "exp", [y](const Tensor& dy) {
    return Grads{ops::mul(dy, y)};  // y = exp(x)  =>  dx = dy * y
  });
}

Var log(const Var& x) {
  return make_result(ops::log(x.value()), {x}, "log", [x_saved = save(x)](const Tensor& dy) {
    return Grads{ops::div(dy, x_saved.get())};  // y = log(x)  =>  dx = dy / x
  });
}

Var log1p(const Var& x) {
  return make_result(ops::log1p(x.value()), {x}, "log1p", [x_saved = save(x)](const Tensor& dy) {
    // y = log(1 + x)  =>  dx = dy / (1 + x)
    return Grads{ops::div(dy, ops::add_scalar(x_saved.get(), 1.0))};
  });
}

Var sqrt(const Var& x) {
  const Tensor y = ops::sqrt(x.value());
  return make_result(y, {x}, "sqrt", [y](const Tensor& dy) {
    return Grads{ops::div(ops::mul_scalar(dy, 0.5), y)};  // y = sqrt(x)  =>  dx = dy / (2 y)
  });
}

Var rsqrt(const Var& x) {
  const Tensor y = ops::rsqrt(x.value());
  return make_result(y, {x}, "rsqrt", [y](const Tensor& dy) {
    // y = x^(-1/2)  =>  dx = -1/2 * dy * x^(-3/2) = -1/2 * dy * y^3
    return Grads{ops::mul(ops::mul_scalar(dy, -0.5), ops::pow_scalar(y, 3.0))};
  });
}

Var tanh(const Var& x) {
  const Tensor y = ops::tanh(x.value());
  return make_result(y, {x}, "tanh", [y](const Tensor& dy) {
    // y = tanh(x)  =>  dx = dy * (1 - y^2)
    return Grads{ops::mul(dy, ops::rsub_scalar(ops::mul(y, y), 1.0))};
  });
}

Var abs(const Var& x) {
  return make_result(ops::abs(x.value()), {x}, "abs", [x_saved = save(x)](const Tensor& dy) {
    return Grads{ops::mul(dy, ops::sign(x_saved.get()))};  // y = |x|  =>  dx = dy * sign(x)
  });
}

Var clamp(const Var& x, double lo, double hi) {
  return make_result(ops::clamp(x.value(), lo, hi), {x}, "clamp",
                     [lo, hi, x_saved = save(x)](const Tensor& dy) {
                       // y = min(max(x, lo), hi)  =>  dx = dy where lo <= x <= hi, else 0
                       return Grads{ops::mul(dy, ops::in_range(x_saved.get(), lo, hi))};
                     });
}

Var where(const Tensor& cond, const Var& a, const Var& b) {
  return make_result(ops::where(cond, a.value(), b.value()), {a, b}, "where",
                     [cond, sa = a.shape(), sb = b.shape()](const Tensor& dy) {
                       // y = cond ? a : b  =>  da = dy where cond, db = dy elsewhere
                       const Tensor zero = Tensor::zeros({}, dy.dtype(), dy.device());
                       return Grads{ops::sum_to(ops::where(cond, dy, zero), sa),
                                    ops::sum_to(ops::where(cond, zero, dy), sb)};
                     });
}

// ---- reductions ---------------------------------------------------------------------------

Var sum(const Var& x, const std::vector<int>& dims, bool keepdim) {
  return make_result(ops::sum(x.value(), dims, keepdim), {x}, "sum",
                     [kept = kept_shape(x.shape(), dims, "sum"), s = x.shape()](const Tensor& dy) {
                       // y = sum over dims of x  =>  dx = dy broadcast over those dims
                       return Grads{spread(dy, kept, s)};
                     });
}

Var mean(const Var& x, const std::vector<int>& dims, bool keepdim) {
  const Tensor y = ops::mean(x.value(), dims, keepdim);
  const double count = y.numel() == 0 ? 1.0 : double(x.value().numel()) / double(y.numel());
  return make_result(
      y, {x}, "mean",
      [kept = kept_shape(x.shape(), dims, "mean"), s = x.shape(), count](const Tensor& dy) {
        // y = sum over dims of x / n  =>  dx = dy / n broadcast over those dims
        return Grads{spread(ops::mul_scalar(dy, 1.0 / count), kept, s)};
      });
}

Var var(const Var& x, const std::vector<int>& dims, bool unbiased, bool keepdim) {
  const Tensor y = ops::var(x.value(), dims, unbiased, keepdim);
  const double n = y.numel() == 0 ? 1.0 : double(x.value().numel()) / double(y.numel());
  return make_result(y, {x}, "var",
                     [dims, kept = kept_shape(x.shape(), dims, "var"), x_saved = save(x),
                      denom = n - (unbiased ? 1.0 : 0.0)](const Tensor& dy) {
                       // y = sum((x - mean)^2) / (n - unbiased)  =>  dx = dy * 2 (x - mean) / denom
                       // (the mean's own gradient term sums to zero)
                       const Tensor xv = x_saved.get();
                       const Tensor centered = ops::sub(xv, ops::mean(xv, dims, true));
                       const Tensor scale = ops::mul_scalar(dy.reshape(kept), 2.0 / denom);
                       return Grads{ops::mul(centered, scale)};
                     });
}

Var max(const Var& x, const std::vector<int>& dims, bool keepdim) {
  const Tensor y = ops::max(x.value(), dims, keepdim);
  return make_result(
      y, {x}, "max",
      [dims, kept = kept_shape(x.shape(), dims, "max"), x_saved = save(x), y](const Tensor& dy) {
        // y = max over dims of x  =>  dx = dy / (number of maxima) at each maximum
        const Tensor mask = ops::eq(x_saved.get(), y.reshape(kept));
        const Tensor count = ops::sum(mask, dims, true);
        return Grads{ops::mul(mask, ops::div(dy.reshape(kept), count))};
      });
}

}  // namespace mt
