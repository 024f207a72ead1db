// Linear + tanh-GELU as a fused cuBLASLt GEMM (cuda/linear_gelu.cu): the GPU side of
// ops/linear_gelu.cpp's forward. All matrices dense and row-major, of one element type.
//
// The launcher takes bf16 only. cuBLASLt's GELU epilogue is the tanh form (tests/
// test_linear_gelu.cpp checks it against the erf form), computed in float32, but its accuracy
// is not documented and fast paths use an approximate tanh: bf16's rounding (2^-9) hides such
// an error, float32's test bound (1e-5) may not. It returns false, having launched nothing, for
// another type or where cuBLASLt refuses the epilogue (the GELU input's row stride, M here, must
// be a multiple of 8); the caller then runs the unfused ops.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// h = gelu_tanh(x . w^T + b), and pre = x . w^T + b unless pre is null, in one GEMM (epilogue
// GELU_AUX_BIAS, or GELU_BIAS without pre). x [N, K], w [M, K], b [M], h and pre [N, M].
bool launch_linear_gelu_forward(ElemType type, void* h, void* pre, const void* x, const void* w,
                                const void* b, int64_t N, int64_t M, int64_t K);

}  // namespace mt::cuda
