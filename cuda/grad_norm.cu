// Global L2 norm and clip coefficient on the device (see grad_norm.cuh).
//
// One launch covers up to kMaxNormTensors tensors: each tensor gets a fixed number of blocks (by
// its size), laid end to end in blockIdx.x, and each block writes one float64 partial sum of
// squares; one final block adds the partials in order. No atomics: the same gradients always
// give the same norm, so a training run is reproducible bit for bit.
#include <vector>

#include "cuda/grad_norm.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

// 16 Ki elements a block (64 per thread): a 400k-element weight gets 25 blocks, and the
// partials array stays small (a 10M-parameter model: ~600 partials).
constexpr int64_t kElemsPerBlock = 16384;
// 48 tensors x (8 B pointer + 8 B count + 8 B first block) = 1.2 KB of kernel parameters.
constexpr int kMaxNormTensors = 48;

struct NormBatch {
  const float* data[kMaxNormTensors];
  int64_t numel[kMaxNormTensors];
  int64_t first_block[kMaxNormTensors + 1];  // prefix sums of each tensor's block count
  int count;
};

__global__ void sum_squares_kernel(double* partial, NormBatch batch, int64_t partial_offset) {
  // The tensor this block belongs to: a scan over at most 48 prefix sums (uniform per block).
  int t = 0;
  while (blockIdx.x >= batch.first_block[t + 1]) ++t;
  const float* data = batch.data[t];
  const int64_t n = batch.numel[t];
  const int64_t begin = (blockIdx.x - batch.first_block[t]) * kElemsPerBlock;
  const int64_t end = begin + kElemsPerBlock < n ? begin + kElemsPerBlock : n;
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = data[i];
    s += v * v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[partial_offset + blockIdx.x] = s;
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
  int64_t total_blocks = 0;
  for (int k = 0; k < count; ++k) {
    total_blocks += (tensors[k].numel + kElemsPerBlock - 1) / kElemsPerBlock;
  }
  double* partial =
      static_cast<double*>(allocate(sizeof(double) * std::max<int64_t>(1, total_blocks)));
  int64_t offset = 0;
  for (int first = 0; first < count; first += kMaxNormTensors) {
    NormBatch batch{};
    batch.count = std::min(kMaxNormTensors, count - first);
    for (int k = 0; k < batch.count; ++k) {
      batch.data[k] = tensors[first + k].data;
      batch.numel[k] = tensors[first + k].numel;
      batch.first_block[k + 1] =
          batch.first_block[k] + (batch.numel[k] + kElemsPerBlock - 1) / kElemsPerBlock;
    }
    const int64_t blocks = batch.first_block[batch.count];
    if (blocks == 0) continue;
    sum_squares_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(partial, batch, offset);
    LAUNCH_CHECK();
    offset += blocks;
  }
  finish_norm_kernel<<<1, kThreads, 0, stream()>>>(norm, partial, offset);
  LAUNCH_CHECK();
  release(partial);
}

void clip_coefficient(const float* norm, float max_norm, float* coef) {
  clip_coefficient_kernel<<<1, 1, 0, stream()>>>(norm, max_norm, coef);
  LAUNCH_CHECK();
}

}  // namespace mt::cuda
