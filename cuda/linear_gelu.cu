// Linear + tanh-GELU (see linear_gelu.cuh): cuBLASLt GEMMs with epilogues, through launch_gemm
// (cuda/matmul.cu), which keeps their plans. No kernel of its own: the epilogue applies the
// bias, the GELU and their derivatives to the float32 accumulator before the bf16 store.
#include "cuda/linear_gelu.cuh"
#include "cuda/matmul.cuh"
#include "cuda/nvtx.h"

namespace mt::cuda {

bool launch_linear_gelu_forward(ElemType type, void* h, void* pre, const void* x, const void* w,
                                const void* b, int64_t N, int64_t M, int64_t K) {
  if (type != ElemType::BF16) return false;
  NvtxRange range("linear_gelu_fwd");
  const GemmOperand xa{x, K, 0, false};
  const GemmOperand wt{w, K, 0, true};  // w^T: w [M, K] read transposed
  const GemmEpilogue epilogue{Epilogue::kBiasGelu, const_cast<void*>(b), pre, M};
  return launch_gemm(type, type, N, M, K, 1, xa, wt, h, M, 0, 1.0f, false, epilogue);
}

bool launch_linear_gelu_backward(ElemType type, void* dpre, void* db, void* dx, void* dw,
                                 const void* dy, const void* v, const void* pre, const void* x,
                                 const void* w, int64_t N, int64_t M, int64_t K, int64_t P) {
  if (type != ElemType::BF16) return false;
  NvtxRange range("linear_gelu_bwd");
  // dpre = (dy . v) * gelu'(pre), db = sum over rows of dpre: the GELU's and the bias's
  // backward in the epilogue of the product that forms h's gradient.
  const GemmEpilogue epilogue{Epilogue::kDGeluBiasGrad, db, const_cast<void*>(pre), M};
  if (!launch_gemm(type, type, N, M, P, 1, {dy, P, 0, false}, {v, M, 0, false}, dpre, M, 0, 1.0f,
                   false, epilogue)) {
    return false;
  }
  // pre = x . w^T + b  =>  dx = dpre . w, dw = dpre^T . x (dpre [N, M] read transposed).
  if (dx != nullptr) {
    launch_gemm(type, type, N, K, M, 1, {dpre, M, 0, false}, {w, K, 0, false}, dx, K, 0, 1.0f,
                false);
  }
  if (dw != nullptr) {
    launch_gemm(type, type, M, K, N, 1, {dpre, M, 0, true}, {x, K, 0, false}, dw, K, 0, 1.0f,
                false);
  }
  return true;
}

}  // namespace mt::cuda
