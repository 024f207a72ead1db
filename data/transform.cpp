#include "data/transform.h"

#include <cmath>

#include "base/error.h"
#include "cuda/nvtx.h"

namespace mt::data {

void to_log_features(Candles& rows) {
  for (Candle& c : rows) {
    for (int f = 0; f < 4; ++f) c.v[f] = std::log(c.v[f]);
    c.v[4] = std::log1p(c.v[4]);
  }
}

FeatureStats compute_stats(const Candles& features, const std::vector<Segment>& ranges) {
  cuda::NvtxRange range("data_stats");
  const int64_t n = static_cast<int64_t>(features.size());
  int64_t count = 0;
  double sum[kFeatures] = {0, 0, 0, 0, 0};
  for (const Segment& r : ranges) {
    CHECK(r.begin >= 0 && r.begin <= r.end && r.end <= n,
          "compute_stats: row range [{}, {}) is outside the {} rows", r.begin, r.end, n);
    for (int64_t i = r.begin; i < r.end; ++i) {
      for (int f = 0; f < kFeatures; ++f) sum[f] += features[static_cast<size_t>(i)].v[f];
    }
    count += r.length();
  }
  CHECK(count > 0, "compute_stats: no rows to compute the z-score statistics from");
  FeatureStats s(kFeatures);
  for (int f = 0; f < kFeatures; ++f) s.mean[f] = sum[f] / static_cast<double>(count);
  // Second pass around the mean: no cancellation of the kind sum(x^2) - n mean^2 suffers when
  // the log price (~10) is much larger than its spread.
  double sq[kFeatures] = {0, 0, 0, 0, 0};
  for (const Segment& r : ranges) {
    for (int64_t i = r.begin; i < r.end; ++i) {
      for (int f = 0; f < kFeatures; ++f) {
        const double d = features[static_cast<size_t>(i)].v[f] - s.mean[f];
        sq[f] += d * d;
      }
    }
  }
  for (int f = 0; f < kFeatures; ++f) {
    const double sd = std::sqrt(sq[f] / static_cast<double>(count));
    s.std[f] = sd > 0 ? sd : 1.0;
  }
  return s;
}

std::vector<float> normalize(const Candles& features, const FeatureStats& stats) {
  cuda::NvtxRange range("data_normalize");
  std::vector<float> out(features.size() * kFeatures);
  double inv_std[kFeatures];
  for (int f = 0; f < kFeatures; ++f) inv_std[f] = 1.0 / stats.std[f];
  for (size_t i = 0; i < features.size(); ++i) {
    for (int f = 0; f < kFeatures; ++f) {
      out[i * kFeatures + f] = static_cast<float>((features[i].v[f] - stats.mean[f]) * inv_std[f]);
    }
  }
  return out;
}

FeatureStats compute_column_stats(const std::vector<double>& table, int F, int first, int count,
                                  const std::vector<Segment>& ranges) {
  CHECK(F > 0 && first >= 0 && count >= 0 && first + count <= F &&
            table.size() % static_cast<size_t>(F) == 0,
        "compute_column_stats: columns [{}, {}) of a table of {} values in rows of {}", first,
        first + count, table.size(), F);
  const int64_t n = static_cast<int64_t>(table.size()) / F;
  FeatureStats s(count);
  int64_t rows = 0;
  std::vector<double> sum(static_cast<size_t>(count), 0.0), sq(static_cast<size_t>(count), 0.0);
  for (const Segment& r : ranges) {
    CHECK(r.begin >= 0 && r.begin <= r.end && r.end <= n,
          "compute_column_stats: row range [{}, {}) is outside the {} rows", r.begin, r.end, n);
    for (int64_t i = r.begin; i < r.end; ++i) {
      for (int c = 0; c < count; ++c) sum[c] += table[static_cast<size_t>(i * F + first + c)];
    }
    rows += r.length();
  }
  CHECK(rows > 0, "compute_column_stats: no rows to compute the statistics from");
  for (int c = 0; c < count; ++c) s.mean[c] = sum[c] / static_cast<double>(rows);
  for (const Segment& r : ranges) {  // around the mean, as compute_stats
    for (int64_t i = r.begin; i < r.end; ++i) {
      for (int c = 0; c < count; ++c) {
        const double d = table[static_cast<size_t>(i * F + first + c)] - s.mean[c];
        sq[c] += d * d;
      }
    }
  }
  for (int c = 0; c < count; ++c) {
    const double sd = std::sqrt(sq[c] / static_cast<double>(rows));
    s.std[c] = sd > 0 ? sd : 1.0;
  }
  return s;
}

std::vector<float> standardize(const std::vector<double>& table, int F, const FeatureStats& stats) {
  CHECK(stats.columns() == F && table.size() % static_cast<size_t>(F) == 0,
        "standardize: {} statistics for rows of {} columns ({} values)", stats.columns(), F,
        table.size());
  std::vector<double> inv_std(static_cast<size_t>(F));
  for (int c = 0; c < F; ++c) inv_std[c] = 1.0 / stats.std[c];
  std::vector<float> out(table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    const size_t c = i % static_cast<size_t>(F);
    out[i] = static_cast<float>((table[i] - stats.mean[c]) * inv_std[c]);  // as normalize()
  }
  return out;
}

double from_zscore(double z, int feature, const FeatureStats& stats) {
  CHECK(feature >= 0 && feature < kFeatures && stats.columns() >= kFeatures,
        "from_zscore: feature {} is outside [0, {})", feature, kFeatures);
  const double x = z * stats.std[feature] + stats.mean[feature];
  // Inverse of x = log(price) and of x = log1p(volume).
  return feature < 4 ? std::exp(x) : std::expm1(x);
}

Tensor to_prices(const Tensor& z, const FeatureStats& stats) {
  CHECK(z.defined() && z.dim() >= 1 && z.size(-1) == kFeatures,
        "to_prices: expected a tensor [..., {}] of z-scored features, got {}", kFeatures,
        z.defined() ? z.describe() : std::string("an undefined tensor"));
  CHECK(is_floating(z.dtype()), "to_prices: expected a floating dtype, got {}", z.describe());
  std::vector<double> values = z.to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = from_zscore(values[i], static_cast<int>(i % kFeatures), stats);
  }
  return Tensor::from_doubles(values, z.shape(), kFloat64);
}

}  // namespace mt::data
