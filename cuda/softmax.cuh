// Softmax and log-softmax over the last dim of dense [rows, K] (cuda/softmax.cu): the GPU side of
// ops/softmax.cpp, which brings the softmax dim last and makes the input contiguous first.
// Floating element types; bf16 computes in float32, float64 in float64.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// y = softmax(x) (or log_softmax when `log`).
void launch_softmax_forward(ElemType type, void* y, const void* x, int64_t rows, int64_t K,
                            bool log);
// dx = y (dy - sum(dy y))  or, for log_softmax, dx = dy - exp(y) sum(dy).
void launch_softmax_backward(ElemType type, void* dx, const void* dy, const void* y, int64_t rows,
                             int64_t K, bool log);

}  // namespace mt::cuda
