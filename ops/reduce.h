// Reductions over any set of dims, as torch's: an empty `dims` list means every dim; negative
// dims count from the end; keepdim leaves the reduced dims in place with size 1.
//
// The CPU loops accumulate in float64 whatever the input dtype (the reference that CUDA kernels
// are checked against should not carry float32 summation error over 10^6 elements); results
// are rounded once to the input's dtype.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace mt::ops {

Tensor sum(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
// Largest value over dims; NaN wins (as torch.amax).
Tensor max(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
// Variance over dims; unbiased divides by n - 1 (Bessel), else by n, as torch.var.
Tensor var(const Tensor& x, const std::vector<int>& dims = {}, bool unbiased = true,
           bool keepdim = false);
// Index (int64) of the first largest value along `dim`.
Tensor argmax(const Tensor& x, int dim, bool keepdim = false);
// Index (int64, 0-dim) of the first largest value of the flattened tensor.
Tensor argmax(const Tensor& x);

// Sums t down to `shape`, which t's shape must be a broadcast of: leading dims t has in excess
// are summed away, and dims where shape has 1 and t does not are summed with keepdim. This is
// the backward of broadcasting: every broadcasting op's dx is sum_to(dy, x.shape()).
Tensor sum_to(const Tensor& t, const Shape& shape);

// The dims list normalized against a rank: negatives wrapped, sorted; all dims when empty.
// An out-of-range or repeated dim is an Error naming `op` and the shape.
std::vector<int> normalize_dims(const std::vector<int>& dims, const Shape& shape, const char* op);

}  // namespace mt::ops
