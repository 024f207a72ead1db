#include "ops/convert_many.h"

#include "cuda/convert_many.cuh"
#include "ops/cuda_dispatch.h"

namespace mt::ops {

namespace {

#ifdef MT_WITH_CUDA
void convert_many_cuda(const std::vector<Tensor>& dst, const std::vector<Tensor>& src) {
  std::vector<cuda::ConvertPair> pairs;
  for (size_t i = 0; i < dst.size(); ++i) {
    pairs.push_back({dst[i].raw_data(), src[i].raw_data(), dst[i].numel()});
  }
  cuda::launch_convert_many(to_elem_type(dst[0].dtype()), to_elem_type(src[0].dtype()),
                            pairs.data(), static_cast<int>(pairs.size()));
}
#endif  // MT_WITH_CUDA

}  // namespace

void convert_many_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src) {
  CHECK(dst.size() == src.size(), "convert_many_: {} destinations for {} sources", dst.size(),
        src.size());
  if (dst.empty()) return;
  for (size_t i = 0; i < dst.size(); ++i) {
    const Tensor &d = dst[i], &s = src[i];
    CHECK(d.defined() && s.defined(), "convert_many_: pair {} has an undefined tensor", i);
    CHECK(d.shape() == s.shape() && d.is_contiguous() && s.is_contiguous(),
          "convert_many_: pair {}: expected contiguous tensors of one shape, got dst {} and src {}",
          i, d.describe(), s.describe());
    CHECK(is_floating(d.dtype()) && is_floating(s.dtype()),
          "convert_many_: pair {}: expected floating tensors, got dst {} and src {}", i,
          d.describe(), s.describe());
    CHECK(d.dtype() == dst[0].dtype() && s.dtype() == src[0].dtype(),
          "convert_many_: pair {}: every dst must be {} and every src {} (pair 0's), got dst {} "
          "and src {}",
          i, dtype_name(dst[0].dtype()), dtype_name(src[0].dtype()), d.describe(), s.describe());
    CHECK(d.device() == dst[0].device() && s.device() == dst[0].device(),
          "convert_many_: pair {}: expected every tensor on {}, got dst {} and src {}", i,
          dst[0].device().str(), d.describe(), s.describe());
  }
  MT_RETURN_IF_CUDA(dst[0].is_cuda(), convert_many_cuda(dst, src));
  for (size_t i = 0; i < dst.size(); ++i) {
    Tensor d = dst[i];
    d.copy_(src[i]);
  }
}

}  // namespace mt::ops
