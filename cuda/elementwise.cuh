// Elementwise kernels with broadcasting: the GPU side of ops/elementwise.h.
//
// The output is dense (row-major over `sizes`); each input is read through its own strides over
// the same sizes (stride 0 where it broadcasts), starting at its element (0, ..., 0). Inputs and
// output share one floating element type; bf16 computes in float32 and rounds once on store.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// The same order as ops::BinaryOp and ops::UnaryOp (ops/ static_asserts it where it casts).
enum class BinaryKind : uint8_t { Add, Sub, Mul, Div, Pow, Max, Min, Eq, Gt, Ge };
enum class UnaryKind : uint8_t {
  Affine,
  RDiv,
  PowScalar,
  Clamp,
  InRange,
  Exp,
  Log,
  Log1p,
  Sqrt,
  Rsqrt,
  Tanh,
  Abs,
  Sign
};

// out = a (op) b.
void launch_binary(BinaryKind op, ElemType type, void* out, const int64_t* sizes, int ndim,
                   const void* a, const int64_t* a_strides, const void* b,
                   const int64_t* b_strides);
// out = op(x; p0, p1).
void launch_unary(UnaryKind op, ElemType type, void* out, const int64_t* sizes, int ndim,
                  const void* x, const int64_t* x_strides, double p0, double p1);
// out = cond != 0 ? a : b (cond in the same element type as a and b).
void launch_where(ElemType type, void* out, const int64_t* sizes, int ndim, const void* cond,
                  const int64_t* cond_strides, const void* a, const int64_t* a_strides,
                  const void* b, const int64_t* b_strides);

}  // namespace mt::cuda
