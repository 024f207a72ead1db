// Multi-tensor dtype conversion (cuda/convert_many.cu): the GPU side of ops/convert_many.cpp.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// 64 pairs of 24 B = 1.5 KB of kernel parameters, under the classic 4 KB limit. More pairs take
// ceil(count / 64) launches.
constexpr int kMaxConvertTensors = 64;

struct ConvertPair {
  void* dst;
  const void* src;
  int64_t n;  // elements, contiguous on both sides
};

// dst <- convert(src) for each of `count` pairs, every dst of dst_type, every src of src_type.
void launch_convert_many(ElemType dst_type, ElemType src_type, const ConvertPair* pairs, int count);

}  // namespace mt::cuda
