// Per-process CUDA state beyond cuda/runtime.h that only cuda/ code needs: the cuBLASLt handle
// and its workspace. Created lazily on first use, on the framework's device and stream.
#pragma once

#include <cublasLt.h>

#include <cstddef>

namespace mt::cuda {

cublasLtHandle_t cublaslt_handle();

// cuBLASLt may use this much scratch memory per matmul: 32 MiB, as NVIDIA recommends for Hopper
// (larger split-K and stream-K tilings need it). Allocated once and kept.
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;
void* cublas_workspace();

}  // namespace mt::cuda
