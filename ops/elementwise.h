// Elementwise ops with numpy broadcasting, over inputs of any strides.
//
// Every op returns a new contiguous tensor of the broadcast shape and the inputs' dtype. Inputs
// must share dtype and device (an Error names both tensors otherwise); float32 and float64 are
// computed in their own precision, bfloat16 is loaded into float, computed in float and rounded
// once on store. Comparisons return 1 or 0 in the inputs' dtype (there is no bool dtype): the
// masks that backward passes multiply with.
//
// All binary ops funnel into binary(a, b, op), all unary and scalar ops into unary(x, op, p0,
// p1), and where() is on its own: those three functions hold the one device dispatch each.
#pragma once

#include "tensor/tensor.h"

namespace mt::ops {

enum class BinaryOp : uint8_t {
  Add,  // a + b
  Sub,  // a - b
  Mul,  // a * b
  Div,  // a / b
  Pow,  // a ^ b
  Max,  // max(a, b), NaN-propagating
  Min,  // min(a, b), NaN-propagating
  Eq,   // a == b ? 1 : 0
  Gt,   // a > b ? 1 : 0
  Ge,   // a >= b ? 1 : 0
};

// Unary ops; p0, p1 are the two scalar parameters some of them take.
enum class UnaryOp : uint8_t {
  Affine,     // x * p0 + p1  (neg, add_scalar, mul_scalar, sub/rsub_scalar)
  RDiv,       // p0 / x
  PowScalar,  // x ^ p0
  Clamp,      // min(max(x, p0), p1)
  InRange,    // p0 <= x <= p1 ? 1 : 0  (clamp's backward mask)
  Exp,
  Log,
  Log1p,
  Sqrt,
  Rsqrt,  // 1 / sqrt(x)
  Tanh,
  Abs,
  Sign,  // -1, 0 or 1
};

const char* binary_op_name(BinaryOp op);
const char* unary_op_name(UnaryOp op);

// ---- the three dispatch points ------------------------------------------------------------
Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op);
Tensor unary(const Tensor& x, UnaryOp op, double p0 = 0.0, double p1 = 0.0);
// cond ? a : b, elementwise with broadcasting of all three. cond is any dtype (nonzero = true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- binary, with broadcasting ------------------------------------------------------------
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Add); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Sub); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Mul); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Div); }
inline Tensor pow(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Pow); }
inline Tensor maximum(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Max); }
inline Tensor minimum(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Min); }
inline Tensor eq(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Eq); }
inline Tensor gt(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Gt); }
inline Tensor ge(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Ge); }

// ---- with a scalar ------------------------------------------------------------------------
inline Tensor neg(const Tensor& x) { return unary(x, UnaryOp::Affine, -1.0, 0.0); }
inline Tensor add_scalar(const Tensor& x, double s) { return unary(x, UnaryOp::Affine, 1.0, s); }
inline Tensor sub_scalar(const Tensor& x, double s) { return unary(x, UnaryOp::Affine, 1.0, -s); }
inline Tensor rsub_scalar(const Tensor& x, double s) { return unary(x, UnaryOp::Affine, -1.0, s); }
inline Tensor mul_scalar(const Tensor& x, double s) { return unary(x, UnaryOp::Affine, s, 0.0); }
inline Tensor div_scalar(const Tensor& x, double s) {
  return unary(x, UnaryOp::Affine, 1.0 / s, 0.0);
}
inline Tensor rdiv_scalar(const Tensor& x, double s) { return unary(x, UnaryOp::RDiv, s); }
inline Tensor pow_scalar(const Tensor& x, double p) { return unary(x, UnaryOp::PowScalar, p); }
inline Tensor clamp(const Tensor& x, double lo, double hi) {
  return unary(x, UnaryOp::Clamp, lo, hi);
}
inline Tensor in_range(const Tensor& x, double lo, double hi) {
  return unary(x, UnaryOp::InRange, lo, hi);
}

// ---- unary math ---------------------------------------------------------------------------
inline Tensor exp(const Tensor& x) { return unary(x, UnaryOp::Exp); }
inline Tensor log(const Tensor& x) { return unary(x, UnaryOp::Log); }
inline Tensor log1p(const Tensor& x) { return unary(x, UnaryOp::Log1p); }
inline Tensor sqrt(const Tensor& x) { return unary(x, UnaryOp::Sqrt); }
inline Tensor rsqrt(const Tensor& x) { return unary(x, UnaryOp::Rsqrt); }
inline Tensor tanh(const Tensor& x) { return unary(x, UnaryOp::Tanh); }
inline Tensor abs(const Tensor& x) { return unary(x, UnaryOp::Abs); }
inline Tensor sign(const Tensor& x) { return unary(x, UnaryOp::Sign); }

}  // namespace mt::ops
