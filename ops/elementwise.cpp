// Elementwise ops: validation, the CPU loops, and the CUDA glue (see elementwise.h).
#include "ops/elementwise.h"

#include <cmath>
#include <limits>

#include "base/compute_type.h"
#include "cuda/elementwise.cuh"
#include "ops/cuda_dispatch.h"
#include "ops/strided_loop.h"

namespace mt::ops {

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
    case BinaryOp::Pow:
      return "pow";
    case BinaryOp::Max:
      return "maximum";
    case BinaryOp::Min:
      return "minimum";
    case BinaryOp::Eq:
      return "eq";
    case BinaryOp::Gt:
      return "gt";
    case BinaryOp::Ge:
      return "ge";
  }
  return "binary";
}

const char* unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Affine:
      return "affine";
    case UnaryOp::RDiv:
      return "rdiv";
    case UnaryOp::PowScalar:
      return "pow_scalar";
    case UnaryOp::Clamp:
      return "clamp";
    case UnaryOp::InRange:
      return "in_range";
    case UnaryOp::Exp:
      return "exp";
    case UnaryOp::Log:
      return "log";
    case UnaryOp::Log1p:
      return "log1p";
    case UnaryOp::Sqrt:
      return "sqrt";
    case UnaryOp::Rsqrt:
      return "rsqrt";
    case UnaryOp::Tanh:
      return "tanh";
    case UnaryOp::Abs:
      return "abs";
    case UnaryOp::Sign:
      return "sign";
  }
  return "unary";
}

namespace {

void check_pair(const Tensor& a, const Tensor& b, const char* name) {
  CHECK(a.defined() && b.defined(), "{}: got an undefined tensor", name);
  CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch: {} vs {}", name, a.describe(), b.describe());
  CHECK(a.device() == b.device(), "{}: device mismatch: {} vs {}", name, a.describe(),
        b.describe());
}

// out = f(a, b) over out's shape; a and b are already broadcastable to it. The contiguous and
// scalar-broadcast cases get their own loops so the compiler vectorizes them (stride 1 or 0 is
// known at compile time there).
template <typename T, typename F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  using A = compute_t<T>;
  const Tensor ae = a.expand(out.shape());
  const Tensor be = b.expand(out.shape());
  const auto plan =
      detail::make_loop_plan<3>(out.shape(), {out.strides(), ae.strides(), be.strides()});
  T* po = out.data<T>();
  const T* pa = ae.data<T>();
  const T* pb = be.data<T>();
  detail::for_each_row(plan, [&](int64_t n, const auto& off, const auto& st) {
    T* o = po + off[0];
    const T* x = pa + off[1];
    const T* y = pb + off[2];
    if (st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(f(A(x[i]), A(y[i])));
    } else if (st[1] == 1 && st[2] == 0) {
      const A yv = A(y[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(f(A(x[i]), yv));
    } else if (st[1] == 0 && st[2] == 1) {
      const A xv = A(x[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(f(xv, A(y[i])));
    } else {
      for (int64_t i = 0; i < n; ++i) {
        o[i * st[0]] = static_cast<T>(f(A(x[i * st[1]]), A(y[i * st[2]])));
      }
    }
  });
}

template <typename A>
A nan_max(A a, A b) {
  return (std::isnan(a) || a > b) ? a : b;  // NaN in either input wins, as torch.maximum
}
template <typename A>
A nan_min(A a, A b) {
  return (std::isnan(a) || a < b) ? a : b;
}

template <typename T>
void binary_cpu(const Tensor& a, const Tensor& b, Tensor& out, BinaryOp op) {
  using A = compute_t<T>;
  switch (op) {
    case BinaryOp::Add:
      return binary_loop<T>(a, b, out, [](A x, A y) { return x + y; });
    case BinaryOp::Sub:
      return binary_loop<T>(a, b, out, [](A x, A y) { return x - y; });
    case BinaryOp::Mul:
      return binary_loop<T>(a, b, out, [](A x, A y) { return x * y; });
    case BinaryOp::Div:
      return binary_loop<T>(a, b, out, [](A x, A y) { return x / y; });
    case BinaryOp::Pow:
      return binary_loop<T>(a, b, out, [](A x, A y) { return std::pow(x, y); });
    case BinaryOp::Max:
      return binary_loop<T>(a, b, out, nan_max<A>);
    case BinaryOp::Min:
      return binary_loop<T>(a, b, out, nan_min<A>);
    case BinaryOp::Eq:
      return binary_loop<T>(a, b, out, [](A x, A y) { return A(x == y); });
    case BinaryOp::Gt:
      return binary_loop<T>(a, b, out, [](A x, A y) { return A(x > y); });
    case BinaryOp::Ge:
      return binary_loop<T>(a, b, out, [](A x, A y) { return A(x >= y); });
  }
}

// out = f(x) over x's shape (out is contiguous, x any strides).
template <typename T, typename F>
void unary_loop(const Tensor& x, Tensor& out, F f) {
  using A = compute_t<T>;
  const auto plan = detail::make_loop_plan<2>(out.shape(), {out.strides(), x.strides()});
  T* po = out.data<T>();
  const T* px = x.data<T>();
  detail::for_each_row(plan, [&](int64_t n, const auto& off, const auto& st) {
    T* o = po + off[0];
    const T* in = px + off[1];
    if (st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(f(A(in[i])));
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = static_cast<T>(f(A(in[i * st[1]])));
    }
  });
}

template <typename T>
void unary_cpu(const Tensor& x, Tensor& out, UnaryOp op, double p0_in, double p1_in) {
  using A = compute_t<T>;
  const A p0 = static_cast<A>(p0_in);
  const A p1 = static_cast<A>(p1_in);
  switch (op) {
    case UnaryOp::Affine:
      return unary_loop<T>(x, out, [=](A v) { return v * p0 + p1; });
    case UnaryOp::RDiv:
      return unary_loop<T>(x, out, [=](A v) { return p0 / v; });
    case UnaryOp::PowScalar:
      return unary_loop<T>(x, out, [=](A v) { return std::pow(v, p0); });
    case UnaryOp::Clamp:
      // NaN stays NaN (as torch.clamp): both comparisons are false for it.
      return unary_loop<T>(x, out, [=](A v) { return v < p0 ? p0 : (v > p1 ? p1 : v); });
    case UnaryOp::InRange:
      return unary_loop<T>(x, out, [=](A v) { return A(v >= p0 && v <= p1); });
    case UnaryOp::Exp:
      return unary_loop<T>(x, out, [](A v) { return std::exp(v); });
    case UnaryOp::Log:
      return unary_loop<T>(x, out, [](A v) { return std::log(v); });
    case UnaryOp::Log1p:
      return unary_loop<T>(x, out, [](A v) { return std::log1p(v); });
    case UnaryOp::Sqrt:
      return unary_loop<T>(x, out, [](A v) { return std::sqrt(v); });
    case UnaryOp::Rsqrt:
      return unary_loop<T>(x, out, [](A v) { return A(1) / std::sqrt(v); });
    case UnaryOp::Tanh:
      return unary_loop<T>(x, out, [](A v) { return std::tanh(v); });
    case UnaryOp::Abs:
      return unary_loop<T>(x, out, [](A v) { return std::abs(v); });
    case UnaryOp::Sign:
      return unary_loop<T>(x, out, [](A v) { return A((v > 0) - (v < 0)); });
  }
}

template <typename T>
void where_cpu(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const Tensor ce = cond.expand(out.shape());
  const Tensor ae = a.expand(out.shape());
  const Tensor be = b.expand(out.shape());
  const auto plan = detail::make_loop_plan<4>(
      out.shape(), {out.strides(), ce.strides(), ae.strides(), be.strides()});
  T* po = out.data<T>();
  const T* pc = ce.data<T>();
  const T* pa = ae.data<T>();
  const T* pb = be.data<T>();
  detail::for_each_row(plan, [&](int64_t n, const auto& off, const auto& st) {
    for (int64_t i = 0; i < n; ++i) {
      const bool c = static_cast<double>(pc[off[1] + i * st[1]]) != 0.0;
      po[off[0] + i * st[0]] = c ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
    }
  });
}

}  // namespace

#ifdef MT_WITH_CUDA
namespace {

static_assert(int(BinaryOp::Ge) == int(cuda::BinaryKind::Ge) &&
                  int(UnaryOp::Sign) == int(cuda::UnaryKind::Sign),
              "cuda::BinaryKind/UnaryKind mirror ops::BinaryOp/UnaryOp");

// The kernels read each input through its strides over out's shape (stride 0 where it
// broadcasts); `out` is the dense result the op allocated.
Tensor binary_cuda(const Tensor& a, const Tensor& b, BinaryOp op, Tensor& out) {
  const Tensor ae = a.expand(out.shape()), be = b.expand(out.shape());
  cuda::launch_binary(static_cast<cuda::BinaryKind>(op), to_elem_type(out.dtype()), out.raw_data(),
                      out.shape().data(), out.dim(), ae.raw_data(), ae.strides().data(),
                      be.raw_data(), be.strides().data());
  return out;
}

Tensor unary_cuda(const Tensor& x, UnaryOp op, double p0, double p1, Tensor& out) {
  cuda::launch_unary(static_cast<cuda::UnaryKind>(op), to_elem_type(out.dtype()), out.raw_data(),
                     out.shape().data(), out.dim(), x.raw_data(), x.strides().data(), p0, p1);
  return out;
}

Tensor where_cuda(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const Tensor ce = cond.expand(out.shape()), ae = a.expand(out.shape()),
               be = b.expand(out.shape());
  cuda::launch_where(to_elem_type(out.dtype()), out.raw_data(), out.shape().data(), out.dim(),
                     ce.raw_data(), ce.strides().data(), ae.raw_data(), ae.strides().data(),
                     be.raw_data(), be.strides().data());
  return out;
}

}  // namespace
#endif  // MT_WITH_CUDA

Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op) {
  const char* name = binary_op_name(op);
  check_pair(a, b, name);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), name), a.dtype(), a.device());
  MT_RETURN_IF_CUDA(a.is_cuda(), binary_cuda(a, b, op, out));
  MT_DISPATCH_FLOAT(a.dtype(), name, [&] { binary_cpu<scalar_t>(a, b, out, op); });
  return out;
}

Tensor unary(const Tensor& x, UnaryOp op, double p0, double p1) {
  const char* name = unary_op_name(op);
  CHECK(x.defined(), "{}: got an undefined tensor", name);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  MT_RETURN_IF_CUDA(x.is_cuda(), unary_cuda(x, op, p0, p1, out));
  MT_DISPATCH_FLOAT(x.dtype(), name, [&] { unary_cpu<scalar_t>(x, out, op, p0, p1); });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_pair(a, b, "where");
  CHECK(cond.defined(), "where: got an undefined condition");
  CHECK(cond.device() == a.device(), "where: device mismatch: condition {} vs values {}",
        cond.describe(), a.describe());
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  // The condition is read in the values' dtype: a 0/1 mask from a comparison op already is,
  // and any nonzero integer stays nonzero after the cast.
  const Tensor c = cond.to(a.dtype());
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  MT_RETURN_IF_CUDA(a.is_cuda(), where_cuda(c, a, b, out));
  MT_DISPATCH_FLOAT(a.dtype(), "where", [&] { where_cpu<scalar_t>(c, a, b, out); });
  return out;
}

}  // namespace mt::ops
