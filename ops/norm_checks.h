// What the normalization ops (ops/rmsnorm.h, ops/layernorm.h) check and keep alike.
#pragma once

#include <cstdint>

#include "base/error.h"
#include "tensor/tensor.h"

namespace mt::ops {

// The per-row statistics (mean, rstd) are kept in the compute type (base/compute_type.h):
// float32 for float32 and bfloat16 inputs, float64 for float64.
inline DType norm_stat_dtype(DType x) { return x == kFloat64 ? kFloat64 : kFloat32; }

// x [..., C] and its weight w [C]: floating, on one device. Returns C. `op` names the caller in
// the messages.
inline int64_t check_norm_inputs(const Tensor& x, const Tensor& w, const char* op) {
  CHECK(x.dim() >= 1, "{}: expected x of shape [..., C], got {}", op, x.describe());
  CHECK(is_floating(x.dtype()) && is_floating(w.dtype()),
        "{}: expected floating x and w, got x {} and w {}", op, x.describe(), w.describe());
  const int64_t C = x.size(-1);
  CHECK(w.dim() == 1 && w.size(0) == C, "{}: expected w of shape [{}] for x {}, got w {}", op, C,
        x.describe(), w.describe());
  CHECK(x.device() == w.device(), "{}: x on {} but w on {}", op, x.device().str(),
        w.device().str());
  return C;
}

}  // namespace mt::ops
