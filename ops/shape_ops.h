// Joining and cutting tensors along a dim, and the dtype cast.
//
// split and chunk return views (narrow) that share the input's storage, as torch's do; concat
// copies into a new contiguous tensor. These copy through Tensor::copy_, which already works on
// either device, so they have no CPU-only loop of their own.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace mt::ops {

// Joins tensors of equal shape except along `dim` (same dtype and device) into a new tensor.
Tensor concat(const std::vector<Tensor>& tensors, int dim);
// Pieces of the given sizes along dim; the sizes must add up to x.size(dim).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim);
// Pieces of split_size along dim, the last one smaller when split_size does not divide it.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int dim);
// `chunks` pieces of ceil(size / chunks) along dim, as torch.chunk (possibly fewer pieces).
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int dim);
// x converted to dtype (rounding to nearest even), itself when already that dtype.
Tensor cast(const Tensor& x, DType dtype);

}  // namespace mt::ops
