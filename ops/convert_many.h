// Many dtype conversions in one pass: dst[i] = src[i] converted to dst[i]'s dtype (bf16 rounds
// to nearest even, exactly as Tensor::to), over two parallel lists of contiguous tensors of one
// shape per pair, all on one device, every src of one dtype and every dst of one dtype.
//
// Why an op: the bf16-mixed model keeps a bf16 copy of each float32 weight and refreshes them
// together after an optimizer step (models/layers.h). On the GPU one kernel launch converts up
// to cuda::kMaxConvertTensors pairs (the seed model's 36 weights and biases: one launch instead
// of 36). The CPU converts pair by pair; it is the reference.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace mt::ops {

// dst[i] <- src[i] converted, in place in dst (whose storage is written, not replaced).
void convert_many_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src);

}  // namespace mt::ops
