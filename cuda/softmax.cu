// Softmax and log-softmax over the last dim of dense [rows, K]: one block per row.
//
// Three passes over the row (max, sum of exp, write), all reading the row from global memory;
// rows of the model are short (K <= a few thousand), so the second and third reads hit L2/L1.
// The sum runs in float64, matching the CPU reference's statement of its sums.
#include "cuda/kernel_utils.cuh"
#include "cuda/softmax.cuh"

namespace mt::cuda {

namespace {

// 128 threads a row: rows of the model are 64..1024 long, so most threads have work.
constexpr int kRowThreads = 128;

template <typename T>
__global__ void softmax_fwd_kernel(T* y, const T* x, int64_t K, bool log_form) {
  using A = compute_t<T>;
  const T* xr = x + blockIdx.x * K;
  T* yr = y + blockIdx.x * K;
  A m = -INFINITY;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) m = MaxOp{}(m, load(xr, k));
  m = block_reduce(m, MaxOp{}, A(-INFINITY));
  double s = 0;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) s += double(exp(load(xr, k) - m));
  s = block_sum(s);
  const A log_sum = A(::log(s));
  const A inv_sum = A(1.0 / s);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    const A v = load(xr, k) - m;
    store(yr, k, log_form ? v - log_sum : exp(v) * inv_sum);
  }
}

template <typename T>
__global__ void softmax_bwd_kernel(T* dx, const T* dy, const T* y, int64_t K, bool log_form) {
  using A = compute_t<T>;
  const int64_t base = blockIdx.x * K;
  double s = 0;  // sum(dy * y), or sum(dy) for log_softmax
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    const A g = load(dy, base + k);
    s += log_form ? double(g) : double(g * load(y, base + k));
  }
  const A total = A(block_sum(s));
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    const A g = load(dy, base + k), v = load(y, base + k);
    store(dx, base + k, log_form ? g - exp(v) * total : v * (g - total));
  }
}

}  // namespace

void launch_softmax_forward(ElemType type, void* y, const void* x, int64_t rows, int64_t K,
                            bool log) {
  if (rows * K == 0) return;
  NvtxRange range(log ? "log_softmax_fwd" : "softmax_fwd");
  dispatch_float(type, "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_fwd_kernel<T><<<unsigned(rows), kRowThreads, 0, stream()>>>(
        static_cast<T*>(y), static_cast<const T*>(x), K, log);
    LAUNCH_CHECK();
  });
}

void launch_softmax_backward(ElemType type, void* dx, const void* dy, const void* y, int64_t rows,
                             int64_t K, bool log) {
  if (rows * K == 0) return;
  NvtxRange range(log ? "log_softmax_bwd" : "softmax_bwd");
  dispatch_float(type, "softmax_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_bwd_kernel<T><<<unsigned(rows), kRowThreads, 0, stream()>>>(
        static_cast<T*>(dx), static_cast<const T*>(dy), static_cast<const T*>(y), K, log);
    LAUNCH_CHECK();
  });
}

}  // namespace mt::cuda
