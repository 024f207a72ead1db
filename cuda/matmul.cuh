// GEMM through cuBLASLt (cuda/matmul.cu): the GPU side of ops/matmul.cpp (matmul, bmm, linear,
// linear_weight_grad) and ops/linear_gelu.cpp, with row-major semantics (the framework's layout):
//
//   C[b] = alpha * op(A[b]) . op(B[b]) (+ C[b] when accumulate), then the epilogue
//
// op(A) is M x K: element (i, k) at A[i * lda + k], or at A[k * lda + i] when trans_a (A is
// stored K x M). op(B) is K x N likewise; C is M x N with row stride ldc. Batches are
// `batch_stride_*` elements apart (0 broadcasts one operand over the batch).
//
// Precision: bf16 A and B accumulate in float32 (CUBLAS_COMPUTE_32F) and C is bf16 or float32;
// float32 runs true float32 (no TF32: tests compare to a float64 reference at 1e-5); float64
// runs float64. Every vector and matrix an epilogue reads or writes has C's element type.
//
// Plans: the first call for a problem (sizes, strides, types, transposes, epilogue, operand
// alignments, device) asks cuBLASLt's heuristic for an algorithm and keeps it with the call's
// descriptors; every later call of that problem reuses them and asks nothing.
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

// What the GEMM does after the product, in the row-major terms above (cuBLASLt's name after it).
enum class Epilogue {
  kNone,
  kBias,      // C += vec[n] on every row; vec [N], read (BIAS)
  kBiasGelu,  // aux = A.B + vec[n]; C = gelu_tanh(aux); vec [N] read, aux written
              // (GELU_AUX_BIAS; GELU_BIAS when aux is null)
};
// (cuBLASLt's gradient epilogues, BGRADB for a bias gradient beside dW and DGELU_BGRAD for the
// GELU's backward, are not used: at the model's shapes it runs each as a separate epilogue
// kernel after the GEMM, several times slower than the GEMM itself (docs/benchmarks.md); a
// column sum and the GELU's backward kernel do that work instead.)

struct GemmEpilogue {
  Epilogue kind = Epilogue::kNone;
  void* vec = nullptr;  // the bias (read), dense
  void* aux = nullptr;  // the GELU's input: an M x N matrix with row stride aux_ld
  int64_t aux_ld = 0;   // cuBLASLt needs it a multiple of 8 and >= N
};

// Runs the GEMM with its epilogue. kNone and kBias always run (an error is thrown if cuBLASLt
// has no algorithm). The other epilogues need batch == 1 and a float32 or bf16 GEMM; where
// cuBLASLt refuses one (an unsupported combination, an aux stride it cannot take) the call
// launches nothing and returns false, and the caller computes the same result unfused.
bool launch_gemm(ElemType ab_type, ElemType c_type, int64_t M, int64_t N, int64_t K, int64_t batch,
                 const GemmOperand& a, const GemmOperand& b, void* c, int64_t ldc,
                 int64_t c_batch_stride, float alpha, bool accumulate,
                 const GemmEpilogue& epilogue = {});

}  // namespace mt::cuda
