// CUDA_CHECK and LAUNCH_CHECK: every CUDA runtime call and every kernel launch in cuda/ goes
// through one of these, so a failure becomes an mt::Error that names the call, the CUDA error
// string and the file:line, instead of a silent wrong answer several kernels later.
#pragma once

#include <cuda_runtime.h>

// g++ 12 at nvcc's -O3 reports a false -Wstringop-overflow inside fmt 9's format-spec parser
// (fmt/core.h fill_t); the warning is attributed to the header, so silence it there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#include "base/error.h"
#pragma GCC diagnostic pop
#include "cuda/runtime.h"

// CUDA_CHECK(cudaMalloc(&p, n)): throws mt::Error("CUDA error: out of memory in cudaMalloc(...)").
#define CUDA_CHECK(call)                                                                        \
  do {                                                                                          \
    cudaError_t status_ = (call);                                                               \
    if (status_ != cudaSuccess) {                                                               \
      throw ::mt::Error(::fmt::format("CUDA error: {} ({}) in {}", cudaGetErrorString(status_), \
                                      cudaGetErrorName(status_), #call),                        \
                        __FILE__, __LINE__);                                                    \
    }                                                                                           \
  } while (0)

// After every kernel launch: catches bad launch configurations (too many threads, too much
// shared memory) at the launch site. Asynchronous faults surface at the next synchronizing call.
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

// cuBLASLt status codes are plain ints here so that this header needs no cuBLAS include.
#define CUBLAS_CHECK(call)                                                                        \
  do {                                                                                            \
    int status_ = static_cast<int>(call);                                                         \
    if (status_ != 0) {                                                                           \
      throw ::mt::Error(::fmt::format("cuBLAS error: status {} in {}", status_, #call), __FILE__, \
                        __LINE__);                                                                \
    }                                                                                             \
  } while (0)

namespace mt::cuda {

// The compute stream as its CUDA type (cuda/runtime.h hands it out as void*).
inline cudaStream_t stream() { return static_cast<cudaStream_t>(stream_handle()); }

}  // namespace mt::cuda
