// Weighted smooth-L1 (Huber) and MSE losses, forward and backward (see loss.cuh).
#include <type_traits>

#include "cuda/kernel_utils.cuh"
#include "cuda/loss.cuh"

namespace mt::cuda {

namespace {

// Forward partial sums: at most 1024 blocks of 256 threads (enough to stream at full bandwidth
// on 132 SMs); the grid depends only on the element count, so the reduction order is fixed.
constexpr int kMaxLossBlocks = 1024;

template <typename A>
__device__ __forceinline__ A smooth_l1(A d, A beta) {
  const A a = fabs(d);
  return a < beta ? A(0.5) * d * d / beta : a - A(0.5) * beta;
}

template <typename A>
__device__ __forceinline__ A smooth_l1_grad(A d, A beta) {
  if (fabs(d) < beta) return d / beta;
  return d > A(0) ? A(1) : (d < A(0) ? A(-1) : A(0));
}

template <typename T>
__global__ void loss_partial_kernel(double* partial, const T* pred, const T* target,
                                    const double* weight, int64_t n, int64_t F, float beta) {
  using A = compute_t<T>;
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const A d = load(pred, i) - load(target, i);
    if (beta < 0) {
      s += double(d) * double(d);
    } else {
      s += (weight ? weight[i % F] : 1.0) * double(smooth_l1(d, A(beta)));
    }
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <typename L>
__global__ void loss_final_kernel(L* loss, const double* partial, int blocks, double divisor) {
  double s = 0;
  for (int j = threadIdx.x; j < blocks; j += blockDim.x) s += partial[j];
  s = block_sum(s);
  if (threadIdx.x == 0) *loss = L(s / divisor);
}

template <typename T>
__global__ void loss_grad_kernel(T* dpred, const double* dloss, const T* pred, const T* target,
                                 const double* weight, int64_t n, int64_t F, float beta,
                                 double divisor) {
  using A = compute_t<T>;
  const double scale = *dloss / divisor;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const A d = load(pred, i) - load(target, i);
    if (beta < 0) {
      store(dpred, i, A(2.0 * scale) * d);  // d/dp (p - t)^2 = 2 (p - t)
    } else {
      const A coef = A(scale * (weight ? weight[i % F] : 1.0));
      store(dpred, i, coef * smooth_l1_grad(d, A(beta)));
    }
  }
}

}  // namespace

void launch_loss_forward(ElemType type, void* loss, const void* pred, const void* target,
                         const double* weight, int64_t N, int64_t F, float beta) {
  const int64_t n = N * F;
  CHECK(n > 0, "loss (cuda): empty input [{}, {}]", N, F);
  NvtxRange range(beta < 0 ? "mse_loss" : "smooth_l1_loss");
  const int blocks = int(std::min<int64_t>(kMaxLossBlocks, (n + kThreads - 1) / kThreads));
  double* partial = static_cast<double*>(allocate(sizeof(double) * blocks));
  // smooth L1 averages over positions N; MSE over all N * F elements.
  const double divisor = beta < 0 ? double(n) : double(N);
  dispatch_float(type, "loss", [&](auto tag) {
    using T = typename decltype(tag)::type;
    loss_partial_kernel<T><<<blocks, kThreads, 0, stream()>>>(
        partial, static_cast<const T*>(pred), static_cast<const T*>(target), weight, n, F, beta);
    LAUNCH_CHECK();
    using L = std::conditional_t<std::is_same_v<T, double>, double, float>;
    loss_final_kernel<L>
        <<<1, kThreads, 0, stream()>>>(static_cast<L*>(loss), partial, blocks, divisor);
    LAUNCH_CHECK();
  });
  release(partial);
}

void launch_loss_backward(ElemType type, void* dpred, const double* dloss, const void* pred,
                          const void* target, const double* weight, int64_t N, int64_t F,
                          float beta) {
  const int64_t n = N * F;
  if (n == 0) return;
  NvtxRange range(beta < 0 ? "mse_loss_bwd" : "smooth_l1_loss_bwd");
  const double divisor = beta < 0 ? double(n) : double(N);
  dispatch_float(type, "loss_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    loss_grad_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        static_cast<T*>(dpred), dloss, static_cast<const T*>(pred), static_cast<const T*>(target),
        weight, n, F, beta, divisor);
    LAUNCH_CHECK();
  });
}

}  // namespace mt::cuda
