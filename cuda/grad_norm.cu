// Global L2 norm and clip coefficient on the device (see grad_norm.cuh).
//
// Each tensor gets a fixed number of blocks (by its size); each block writes one float64
// partial sum of squares, and one final block adds the partials in order. No atomics: the same
// gradients always give the same norm, so a training run is reproducible bit for bit.
#include <vector>

#include "cuda/grad_norm.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

// 16 Ki elements a block (64 per thread): large tensors get many blocks, and the partials
// array stays small (a 10M-parameter model: ~600 partials).
constexpr int64_t kElemsPerBlock = 16384;

__global__ void sum_squares_kernel(double* partial, const float* data, int64_t n,
                                   int64_t first_block) {
  const int64_t begin = blockIdx.x * kElemsPerBlock;
  const int64_t end = begin + kElemsPerBlock < n ? begin + kElemsPerBlock : n;
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = data[i];
    s += v * v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[first_block + blockIdx.x] = s;
}

__global__ void finish_norm_kernel(float* norm, const double* partial, int64_t count) {
  double s = 0;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) s += partial[j];
  s = block_sum(s);
  if (threadIdx.x == 0) *norm = float(::sqrt(s));
}

__global__ void clip_coefficient_kernel(const float* norm, float max_norm, float* coef) {
  *coef = fminf(1.0f, max_norm / (*norm + 1e-6f));
}

}  // namespace

void global_l2_norm(const NormTensor* tensors, int count, float* norm) {
  NvtxRange range("grad_norm");
  std::vector<int64_t> first(count + 1, 0);
  for (int k = 0; k < count; ++k) {
    first[k + 1] = first[k] + (tensors[k].numel + kElemsPerBlock - 1) / kElemsPerBlock;
  }
  const int64_t blocks = first[count];
  double* partial = static_cast<double*>(allocate(sizeof(double) * std::max<int64_t>(1, blocks)));
  for (int k = 0; k < count; ++k) {
    const int64_t nb = first[k + 1] - first[k];
    if (nb == 0) continue;
    sum_squares_kernel<<<unsigned(nb), kThreads, 0, stream()>>>(partial, tensors[k].data,
                                                                tensors[k].numel, first[k]);
    LAUNCH_CHECK();
  }
  finish_norm_kernel<<<1, kThreads, 0, stream()>>>(norm, partial, blocks);
  LAUNCH_CHECK();
  release(partial);
}

void clip_coefficient(const float* norm, float max_norm, float* coef) {
  clip_coefficient_kernel<<<1, 1, 0, stream()>>>(norm, max_norm, coef);
  LAUNCH_CHECK();
}

}  // namespace mt::cuda
