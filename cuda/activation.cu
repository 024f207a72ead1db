// GELU forward and backward (exact erf form and tanh approximation), elementwise over dense
// memory; the same formulas as ops/activation.cpp, in the same compute type.
#include "cuda/activation.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kCubic = 0.044715;  // the tanh approximation's cubic coefficient

template <typename A>
__device__ __forceinline__ A gelu_value(A x, bool tanh_approx) {
  if (tanh_approx) {
    const A u = A(kSqrt2OverPi) * (x + A(kCubic) * x * x * x);
    return A(0.5) * x * (A(1) + tanh(u));
  }
  return A(0.5) * x * (A(1) + erf(x * A(kInvSqrt2)));
}

// tanh form: 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'; erf form: Phi(x) + x phi(x).
template <typename A>
__device__ __forceinline__ A gelu_derivative(A x, bool tanh_approx) {
  if (tanh_approx) {
    const A u = A(kSqrt2OverPi) * (x + A(kCubic) * x * x * x);
    const A du = A(kSqrt2OverPi) * (A(1) + A(3 * kCubic) * x * x);
    const A t = tanh(u);
    return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * du;
  }
  const A cdf = A(0.5) * (A(1) + erf(x * A(kInvSqrt2)));
  return cdf + x * A(kInvSqrt2Pi) * exp(A(-0.5) * x * x);
}

// Each thread takes kUnroll elements a grid stride apart per turn, loading all of them before it
// computes any: kUnroll loads in flight per thread instead of one, which a streaming kernel
// needs to approach the memory bandwidth (each sweep over u is still coalesced).
constexpr int kUnroll = 4;

template <typename T>
__global__ void gelu_fwd_kernel(T* y, const T* x, int64_t n, bool tanh_approx) {
  using A = compute_t<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i0 = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i0 < n;
       i0 += stride * kUnroll) {
    A v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      v[u] = i < n ? load(x, i) : A(0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < n) store(y, i, gelu_value(v[u], tanh_approx));
    }
  }
}

template <typename T>
__global__ void gelu_bwd_kernel(T* dx, const T* dy, const T* x, int64_t n, bool tanh_approx) {
  using A = compute_t<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i0 = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i0 < n;
       i0 += stride * kUnroll) {
    A g[kUnroll], v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      g[u] = i < n ? load(dy, i) : A(0);
      v[u] = i < n ? load(x, i) : A(0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < n) store(dx, i, g[u] * gelu_derivative(v[u], tanh_approx));
    }
  }
}

}  // namespace

void launch_gelu_forward(ElemType type, void* y, const void* x, int64_t n, bool tanh_approx) {
  if (n == 0) return;
  NvtxRange range("gelu_fwd");
  dispatch_float(type, "gelu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_fwd_kernel<T><<<grid_for((n + kUnroll - 1) / kUnroll), kThreads, 0, stream()>>>(
        static_cast<T*>(y), static_cast<const T*>(x), n, tanh_approx);
    LAUNCH_CHECK();
  });
}

void launch_gelu_backward(ElemType type, void* dx, const void* dy, const void* x, int64_t n,
                          bool tanh_approx) {
  if (n == 0) return;
  NvtxRange range("gelu_bwd");
  dispatch_float(type, "gelu_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_bwd_kernel<T><<<grid_for((n + kUnroll - 1) / kUnroll), kThreads, 0, stream()>>>(
        static_cast<T*>(dx), static_cast<const T*>(dy), static_cast<const T*>(x), n, tanh_approx);
    LAUNCH_CHECK();
  });
}

}  // namespace mt::cuda
