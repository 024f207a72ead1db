// Per-process CUDA state beyond cuda/runtime.h that only cuda/ code needs: the cuBLASLt handle
// and its workspace. Created lazily on first use, on the framework's device and stream.
#pragma once

#include <cublasLt.h>

#include <cstddef>

namespace mt::cuda {

cublasLtHandle_t cublaslt_handle();

// The scratch memory cuBLASLt may use per matmul (split-K and stream-K tilings need it):
// kDefaultCublasWorkspaceMiB, or MT_CUBLAS_WORKSPACE_MIB from the environment (read once; 0
// allowed: then no algorithm that needs scratch is chosen). Allocated once from the caching
// allocator and never released, so that memory_stats() and a benchmark's peak count it.
constexpr size_t kDefaultCublasWorkspaceMiB = 32;
size_t cublas_workspace_bytes();
void* cublas_workspace();

}  // namespace mt::cuda
