// Linear + tanh-GELU (see linear_gelu.cuh): a cuBLASLt GEMM with an epilogue, through
// launch_gemm (cuda/matmul.cu), which keeps its plan. No kernel of its own: the epilogue applies
// the bias and the GELU to the float32 accumulator before the bf16 store.
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

}  // namespace mt::cuda
