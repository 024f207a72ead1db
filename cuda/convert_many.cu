// Multi-tensor dtype conversion (convert_many.cuh).
//
// One launch converts a batch of up to kMaxConvertTensors pairs: grid row y is pair y, and its
// blocks run a grid-stride loop over that pair's elements. The grid is as wide as the largest
// pair needs (grid_for), so the blocks of a small pair (a bias of 64 elements) find nothing to
// do past their first and exit; a batch costs one launch however many pairs it has.
#include "cuda/convert_many.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

struct ConvertBatch {
  ConvertPair pairs[kMaxConvertTensors];
};

template <typename Dst, typename Src>
__global__ void convert_many_kernel(ConvertBatch batch) {
  const ConvertPair& pair = batch.pairs[blockIdx.y];
  Dst* dst = static_cast<Dst*>(pair.dst);
  const Src* src = static_cast<const Src*>(pair.src);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pair.n;
       i += int64_t(gridDim.x) * blockDim.x) {
    dst[i] = convert_value<Dst>(src[i]);
  }
}

}  // namespace

void launch_convert_many(ElemType dst_type, ElemType src_type, const ConvertPair* pairs,
                         int count) {
  if (count == 0) return;
  NvtxRange range("convert_many");
  for (int first = 0; first < count; first += kMaxConvertTensors) {
    const int in_batch = std::min(kMaxConvertTensors, count - first);
    ConvertBatch batch{};
    int64_t largest = 0;
    for (int i = 0; i < in_batch; ++i) {
      batch.pairs[i] = pairs[first + i];
      largest = std::max(largest, pairs[first + i].n);
    }
    if (largest == 0) continue;
    const dim3 grid(grid_for(largest), unsigned(in_batch));
    dispatch_float(dst_type, "convert_many", [&](auto dst_tag) {
      using Dst = typename decltype(dst_tag)::type;
      dispatch_float(src_type, "convert_many", [&](auto src_tag) {
        using Src = typename decltype(src_tag)::type;
        convert_many_kernel<Dst, Src><<<grid, kThreads, 0, stream()>>>(batch);
        LAUNCH_CHECK();
      });
    });
  }
}

}  // namespace mt::cuda
