#include "tests/test_util.h"

#include <limits>

namespace mt::testing {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  MT_CHECK(a.shape() == b.shape(), "max_abs_diff: shapes differ: {} vs {}", shape_str(a.shape()),
        shape_str(b.shape()));
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}

double rel_error(const Tensor& a, const Tensor& b) {
  MT_CHECK(a.shape() == b.shape(), "rel_error: shapes differ: {} vs {}", shape_str(a.shape()),
        shape_str(b.shape()));
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  if (std::isnan(num)) return std::numeric_limits<double>::infinity();
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

bool all_written(const Tensor& t) {
  for (double v : t.to_vector<double>()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

void poison(Tensor& t) { t.fill_(std::numeric_limits<double>::quiet_NaN()); }

}  // namespace mt::testing
