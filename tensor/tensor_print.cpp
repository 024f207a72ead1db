// Printing in PyTorch's style: nested brackets, 4 decimals for floats, and "..." for long dims
// (the first and last three entries are shown once a tensor has more than 1000 elements).
#include <cmath>

#include "tensor/tensor.h"

namespace mt {

namespace {

constexpr int64_t kSummarizeAbove = 1000;
constexpr int64_t kEdgeItems = 3;

std::string format_value(double v, bool floating) {
  if (!floating) return fmt::format("{}", static_cast<int64_t>(v));
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.4f}", v);
}

void print_dim(std::string& out, const std::vector<double>& values, const Shape& shape,
               const Shape& strides, int dim, int64_t base, bool floating, bool summarize) {
  const int64_t n = shape[dim];
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      out += "..., ";
      i = n - kEdgeItems - 1;
      continue;
    }
    const int64_t at = base + i * strides[dim];
    if (dim + 1 == static_cast<int>(shape.size())) {
      out += format_value(values[at], floating);
    } else {
      print_dim(out, values, shape, strides, dim + 1, at, floating, summarize);
    }
    if (i + 1 < n) out += dim + 1 == static_cast<int>(shape.size()) ? ", " : ",\n ";
  }
  out += ']';
}

}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  const std::vector<double> values = to_vector<double>();
  const bool floating = is_floating(dtype_);
  std::string body;
  if (dim() == 0) {
    body = format_value(values[0], floating);
  } else {
    print_dim(body, values, shape_, contiguous_strides(shape_), 0, 0, floating,
              numel() > kSummarizeAbove);
  }
  return fmt::format("tensor({}, dtype={}, device={})", body, dtype_name(dtype_), device().str());
}

}  // namespace mt
