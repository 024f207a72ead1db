// cuBLASLt GEMM with row-major semantics (see matmul.cuh).
//
// cuBLASLt is column-major. A row-major M x N matrix with row stride ld is, read column-major,
// its N x M transpose with the same ld. So C = A B is computed as C^T = B^T A^T: cuBLASLt's
// "A" is our B and its "B" is our A, with m = N and n = M, and nothing is copied.
#include "cuda/context.cuh"
#include "cuda/kernel_utils.cuh"
#include "cuda/matmul.cuh"

namespace mt::cuda {

namespace {

cudaDataType_t cuda_type(ElemType t) {
  switch (t) {
    case ElemType::F32:
      return CUDA_R_32F;
    case ElemType::BF16:
      return CUDA_R_16BF;
    case ElemType::F64:
      return CUDA_R_64F;
    default:
      break;
  }
  FAIL("gemm (cuda): element type {} is not a GEMM type", int(t));
}

// Largest power of two <= 16 dividing the address: cuBLASLt picks vectorized kernels only for
// operands it is told are aligned, and a sliced view (q out of a fused qkv) may not be.
uint32_t alignment(const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 16;
  while (a > 1 && addr % a != 0) a /= 2;
  return a;
}

// RAII owners of the cuBLASLt descriptors of one call.
struct Layout {
  cublasLtMatrixLayout_t h = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
         int64_t stride) {
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&h, type, rows, cols, ld));
    if (batch > 1) {
      const int32_t count = int32_t(batch);
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                    sizeof(count)));
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                    &stride, sizeof(stride)));
    }
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(h); }
};

template <typename T>
__global__ void add_bias_kernel(T* c, const T* bias, int64_t rows, int64_t N, int64_t ldc) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < rows * N;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = j / N, n = j % N;
    c[r * ldc + n] += bias[n];
  }
}

}  // namespace

void launch_gemm(ElemType ab_type, ElemType c_type, int64_t M, int64_t N, int64_t K, int64_t batch,
                 const GemmOperand& a, const GemmOperand& b, void* c, int64_t ldc,
                 int64_t c_batch_stride, float alpha_f, bool accumulate, const void* bias) {
  if (M == 0 || N == 0 || batch == 0) return;
  NvtxRange range("gemm");
  const bool f64 = ab_type == ElemType::F64;
  CHECK(f64 == (c_type == ElemType::F64), "gemm (cuda): float64 operands need a float64 output");
  const cudaDataType_t ab = cuda_type(ab_type), ct = cuda_type(c_type);
  cublasLtMatmulDesc_t desc = nullptr;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F,
                                        f64 ? CUDA_R_64F : CUDA_R_32F));
  // cuBLASLt "A" = our B, "B" = our A (see the file comment).
  const cublasOperation_t op_a = b.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = a.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  const bool epilogue_bias = bias != nullptr && !f64;
  if (epilogue_bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof(bias)));
    const cudaDataType_t bias_type = ct;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                &bias_type, sizeof(bias_type)));
  }
  // Stored shapes, column-major: our B is N x K (K x N when transposed), our A K x M (M x K).
  Layout la(ab, b.transpose ? K : N, b.transpose ? N : K, b.ld, batch, b.batch_stride);
  Layout lb(ab, a.transpose ? M : K, a.transpose ? K : M, a.ld, batch, a.batch_stride);
  Layout lc(ct, N, M, ldc, batch, c_batch_stride);

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t workspace_bytes = kCublasWorkspaceBytes;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace_bytes, sizeof(workspace_bytes)));
  const uint32_t align_a = alignment(b.data), align_b = alignment(a.data), align_c = alignment(c);
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c)));

  cublasLtHandle_t handle = cublaslt_handle();
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, desc, la.h, lb.h, lc.h, lc.h, pref, 1,
                                              &heuristic, &found));
  cublasLtMatmulPreferenceDestroy(pref);
  if (found == 0) {
    cublasLtMatmulDescDestroy(desc);
    FAIL("gemm (cuda): cuBLASLt has no algorithm for M={} N={} K={} batch={}", M, N, K, batch);
  }
  const double alpha_d = alpha_f, beta_d = accumulate ? 1.0 : 0.0;
  const float beta_f = accumulate ? 1.0f : 0.0f;
  const void* alpha = f64 ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* beta = f64 ? static_cast<const void*>(&beta_d) : &beta_f;
  CUBLAS_CHECK(cublasLtMatmul(handle, desc, alpha, b.data, la.h, a.data, lb.h, beta, c, lc.h, c,
                              lc.h, &heuristic.algo, cublas_workspace(), kCublasWorkspaceBytes,
                              stream()));
  cublasLtMatmulDescDestroy(desc);
  if (bias != nullptr && f64) {
    for (int64_t i = 0; i < batch; ++i) {
      double* ci = static_cast<double*>(c) + i * c_batch_stride;
      add_bias_kernel<double><<<grid_for(M * N), kThreads, 0, stream()>>>(
          ci, static_cast<const double*>(bias), M, N, ldc);
      LAUNCH_CHECK();
    }
  }
}

}  // namespace mt::cuda
