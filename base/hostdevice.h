// MT_HOST_DEVICE marks small inline functions that both the CPU code and the CUDA kernels call,
// so that one definition (the Philox generator, the bf16 rounding) serves both sides and the two
// can never drift apart.
#pragma once

#if defined(__CUDACC__)
#define MT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MT_HOST_DEVICE inline
#endif
