// Linear followed by the tanh GELU, the first half of the model's MLP, as one op so that the GPU
// runs its forward inside a cuBLASLt GEMM (cuda/linear_gelu.cu):
//
//   pre = x . w^T + b        x [N, K], w [M, K], b [M]  ->  pre [N, M]
//   h   = gelu_tanh(pre)                                ->  h   [N, M]
//
// Forward: one GEMM whose epilogue adds the bias, applies the GELU to the float32 accumulator
// and stores h, and pre too when asked (the GELU's input, which the backward needs).
//
// Backward: h feeds a linear layer y = h . v^T + c (v [P, M]: the MLP's second layer), so h's
// gradient is the product dy . v of y's gradient dy [N, P], and the GELU's derivative follows:
//
//   dpre = (dy . v) * gelu_tanh'(pre)     db = sum over rows of dpre
//   dx   = dpre . w                       dw = dpre^T . x
//
// It runs as those ops (matmul, gelu_backward, linear_weight_grad, sum) on every device: on the
// GPU cuBLASLt's epilogue for the first line (DGELU_BGRAD) was slower than a plain GEMM and our
// kernels (cuda/matmul.cuh). The fused forward runs for bf16 on the GPU; everywhere else (the
// CPU, float32 and float64, M not a multiple of 8, an epilogue cuBLASLt refuses) linear then
// gelu give the same results. On the CPU these are the very calls, in the same dtypes, that the
// model made before this op existed, so its numbers are unchanged to the bit
// (tests/test_train_golden.cpp's loss curve).
#pragma once

#include "tensor/tensor.h"

namespace mt::ops {

// h = gelu_tanh(x . w^T + b) [N, M]; when pre is given, *pre = x . w^T + b [N, M] for the
// backward. x, w, b share one floating dtype and device.
Tensor linear_gelu_forward(const Tensor& x /*[N,K]*/, const Tensor& w /*[M,K]*/,
                           const Tensor& b /*[M]*/, Tensor* pre /*[N,M]*/);

// The gradients of linear_gelu_forward's inputs when h feeds y = h . v^T + c, from y's
// gradient dy (see the top): *dx [N, K], *dw [M, K], *db [M], each only when asked for. pre is
// taken by value: passed with std::move, its memory is freed as soon as the GELU's derivative
// has read it, before dx and dw are formed.
void linear_gelu_backward(const Tensor& dy /*[N,P]*/, const Tensor& v /*[P,M]*/,
                          const Tensor& x /*[N,K]*/, const Tensor& w /*[M,K]*/,
                          Tensor pre /*[N,M]*/, Tensor* dx, Tensor* dw, Tensor* db);

}  // namespace mt::ops
