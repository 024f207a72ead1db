// GEMM through cuBLASLt (cuda/matmul.cu): the GPU side of ops/matmul.cpp (matmul, bmm, linear),
// with row-major semantics (the framework's layout):
//
//   C[b] = alpha * op(A[b]) . op(B[b]) (+ C[b] when accumulate) (+ bias broadcast over rows)
//
// op(A) is M x K: element (i, k) at A[i * lda + k], or at A[k * lda + i] when trans_a (A is
// stored K x M). op(B) is K x N likewise; C is M x N with row stride ldc. Batches are
// `batch_stride_*` elements apart (0 broadcasts one operand over the batch).
//
// Precision: bf16 A and B accumulate in float32 (CUBLAS_COMPUTE_32F) and C is bf16 or float32;
// float32 runs true float32 (no TF32: tests compare to a float64 reference at 1e-5); float64
// runs float64. `bias` [N] has C's element type (cuBLASLt's bias epilogue for float32/bf16, a
// small kernel for float64).
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

struct GemmOperand {
  const void* data;
  int64_t ld;            // row stride of the stored matrix, in elements
  int64_t batch_stride;  // elements between batches (0: the same matrix for every batch)
  bool transpose;        // stored transposed (see above)
};

void launch_gemm(ElemType ab_type, ElemType c_type, int64_t M, int64_t N, int64_t K, int64_t batch,
                 const GemmOperand& a, const GemmOperand& b, void* c, int64_t ldc,
                 int64_t c_batch_stride, float alpha, bool accumulate, const void* bias);

}  // namespace mt::cuda
