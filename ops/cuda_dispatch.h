// How an op reaches its CUDA kernels. Every ops/<op>.cpp does it the same way:
//
//   #include "cuda/<op>.cuh"          the launchers: plain C++ declarations, in every build
//   #include "ops/cuda_dispatch.h"
//
//   namespace { ...the CPU reference... }
//
//   #ifdef MT_WITH_CUDA               the op's CUDA glue, the file's one #ifdef
//   namespace {
//   // Lays the validated tensors out as the launcher wants them (contiguous, dims permuted),
//   // allocates the outputs on the device, maps the dtypes and launches.
//   Tensor rmsnorm_forward_cuda(const Tensor& x, ...) { ... cuda::launch_rmsnorm_forward(...); }
//   }  // namespace
//   #endif
//
//   Tensor rmsnorm_forward(const Tensor& x, ...) {
//     ...the checks...
//     MT_RETURN_IF_CUDA(x.is_cuda(), rmsnorm_forward_cuda(x, ...));
//     ...the CPU loop...
//   }
//
// Three names, one per layer: ops::rmsnorm_forward (the op), rmsnorm_forward_cuda (its glue in
// ops/rmsnorm.cpp) and cuda::launch_rmsnorm_forward (the launcher in cuda/rmsnorm.cu).
#pragma once

#include "base/error.h"
#include "cuda/tensor_kernels.cuh"
#include "tensor/dtype.h"

// MT_RETURN_IF_CUDA(on_gpu, call): `if (on_gpu) return call;`. In a build without CUDA the glue
// is not compiled and the call is dropped: no tensor can be on a GPU there (allocating device
// memory is an Error in cuda/runtime_stub.cpp), and should one appear anyway (an empty CUDA
// tensor owns no memory) the op fails with a message instead of reading it on the CPU. So an op
// needs no stub for the build without CUDA.
#ifdef MT_WITH_CUDA
#define MT_RETURN_IF_CUDA(on_gpu, ...) \
  do {                                 \
    if (on_gpu) return __VA_ARGS__;    \
  } while (0)
#else
#define MT_RETURN_IF_CUDA(on_gpu, ...)                                                          \
  do {                                                                                          \
    if (on_gpu) MT_FAIL("{}: CUDA tensors need a build with CUDA (nvcc and CUDA=1)", __func__); \
  } while (0)
#endif

namespace mt::ops {

static_assert(int(cuda::ElemType::F32) == int(DType::Float32) &&
                  int(cuda::ElemType::BF16) == int(DType::BFloat16) &&
                  int(cuda::ElemType::F64) == int(DType::Float64) &&
                  int(cuda::ElemType::I32) == int(DType::Int32) &&
                  int(cuda::ElemType::I64) == int(DType::Int64),
              "cuda::ElemType mirrors mt::DType");

// The launchers' name for a dtype (cuda/ knows no mt::DType).
inline cuda::ElemType to_elem_type(DType dtype) { return static_cast<cuda::ElemType>(dtype); }

}  // namespace mt::ops
