// gradcheck: compares the analytic gradients of f (what backward computes) with float64 central
// differences, as torch.autograd.gradcheck does.
//
// f maps Vars to one Var of any shape. gradcheck reduces it to the scalar L = sum(f(x) * u) with
// a fixed random upstream gradient u (so the backward-with-a-given-gradient path is what gets
// checked, and no element's contribution can cancel out by symmetry), then for every element j
// of every input compares dL/dx_j from backward with (L(x + eps e_j) - L(x - eps e_j)) / (2 eps).
//
//   gradcheck([](const std::vector<Var>& v) { return mul(v[0], v[1]); }, {a, b});
//
// Inputs must be float64 CPU tensors. Constant inputs (a where() condition, a mask) are captured
// by the lambda instead of being passed. Cost: 2 forward calls per input element, so keep the
// inputs small (tens of elements).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/var.h"

namespace mt {

struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step: truncation O(eps^2), rounding O(1e-16 / eps)
  double atol = 1e-6;  // an element passes when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-4;
  bool throw_on_failure = true;  // else only report in the result
  uint64_t seed = 1234;          // for the upstream gradient u, uniform in [0.5, 1.5)
};

struct GradcheckResult {
  bool passed = true;
  double max_abs_error = 0.0;  // worst |analytic - numeric| over every element of every input
  double max_rel_error = 0.0;  // worst |analytic - numeric| / max(|numeric|, 1e-12)
  std::string message;         // the first failure: input index, element, both values
};

using GradcheckFn = std::function<Var(const std::vector<Var>&)>;

// Throws mt::Error naming the input index and element of the first failing element (unless
// options.throw_on_failure is false), and also when an input is not float64, or when backward
// gives an input no gradient although its numeric gradient is not zero.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace mt
