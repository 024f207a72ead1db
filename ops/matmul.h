// Matrix products: matmul (with broadcast batch dims), bmm and linear.
//
// On the CPU they all run on one GEMM (gemm_cpu below): packed, cache-blocked, with a register
// tile the compiler vectorizes (AVX2/AVX-512 FMA under -march=native) and OpenMP threads over
// row blocks. Operands are read through their strides, so a transposed view (w^T in linear,
// dy^T in a weight gradient) costs no copy. bfloat16 operands are widened to float32 first and
// the product accumulates in float32, then rounds once to bfloat16, as the GPU path does.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mt::ops {

// a [..., M, K] . b [..., K, N] -> [..., M, N]; batch dims broadcast (numpy). A 1-D a is a row
// [K] and a 1-D b a column [K], and their dim is dropped from the result, as torch.matmul.
Tensor matmul(const Tensor& a, const Tensor& b);
// a [B, M, K] . b [B, K, N] -> [B, M, N], with no broadcasting.
Tensor bmm(const Tensor& a, const Tensor& b);
// x [..., in] . w [out, in]^T + bias [out] -> [..., out]; bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());
// The weight and bias gradients of y = linear(x, w, b): dw = dy^T . x [out, in] over every row
// of dy [..., out] and x [..., in], and, when db is given, *db = dy summed over its rows [out].
// db is a column sum (float64 sums, a fixed order) on every device.
Tensor linear_weight_grad(const Tensor& dy, const Tensor& x, Tensor* db = nullptr);

// The CPU GEMM core: C = A . B (C += A . B when accumulate). A is M x K with element (i, k) at
// A[i * a_rs + k * a_cs], B is K x N likewise, C is row-major with row stride ldc. Instantiated
// for float and double. With parallel, it spreads over the OpenMP threads.
template <typename T>
void gemm_cpu(int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* B,
              int64_t b_rs, int64_t b_cs, T* C, int64_t ldc, bool accumulate, bool parallel);

}  // namespace mt::ops
